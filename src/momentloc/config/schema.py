"""Configuration dataclasses. Frozen: derived values are properties, never set at run time."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

from momentloc.errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    """Base of every model's config dataclass (each model subclasses it with its own fields).

    Attributes:
        loss_weights: weight of each named loss term the model returns; terms not listed
            weigh 1.0, a listed name the model does not return is an error.
    """

    loss_weights: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    """Which data, and how it is turned into tensors.

    Attributes:
        dataset: a dataset card (path to a YAML file) or a benchmark name
            (``charades-sta``, ``activitynet-captions``, ``tacos``, ``didemo``).
        data_root: directory that the card's relative paths are resolved against
            (default: the card's own directory).
        train_split / val_split / test_split: split names; ``None`` takes the card's roles.
            ``val_split: none`` (the string) disables validation.
        val_holdout: fraction of training videos held out for model selection when there is
            no validation split (0 = select on nothing, keep the last epoch).
        num_clips: clips per video after resampling (common spec 3.1).
        resample: ``pool`` mean-pools (or repeats) every video to exactly ``num_clips``
            steps, all valid; ``pad`` mean-pools only videos longer than ``num_clips`` and
            pads shorter ones with a mask; ``tan2d`` is the 2D-TAN release's pipeline
            (L2-normalize every raw clip, then its own averaging rule; data/resample.py), which
            makes ``l2_normalize`` redundant.
        l2_normalize: L2-normalize every clip feature after resampling.
        pca_dim: reduce features with PCA fitted on the training split (0 = off).
        max_query_len: words kept per query (longer queries are truncated).
        oov: out-of-vocabulary words: ``drop`` them, map them to a ``zero`` vector, or to a
            learned-or-zero ``unk`` id.
        vocab_from: the queries whose words make the vocabulary: ``all`` (every split read:
            a test word that has a pretrained vector keeps it instead of becoming out of
            vocabulary, as in the papers' code, which looks words up in GloVe directly; no
            moment of those splits is read for it) or ``train`` (the training split only).
        tokenizer: how a query becomes words (data/text.py ``tokenize``): ``glove`` drops
            punctuation and splits clitics as GloVe's tokenizer; ``whitespace`` splits at white
            space only, as 2D-TAN's release (``door.`` and ``person's`` stay one word);
            ``whitespace_trim_period`` first removes a final ``.``, as the release's
            Charades-STA reader. A run tokenizes at predict time as in training (its config).
        on_bad_input: ``error`` stops at the first bad item; ``skip`` drops it and logs it.
        num_workers: DataLoader worker processes (0 = load in the main process).
        cache_features: keep resampled features of each video in memory once read.
        feature_dim: the clip feature dimension the preset was written for (the card's
            ``features.dim``, before PCA); training refuses a dataset whose features differ, so a
            model is never fed features of another kind. 0 accepts any. ``momentloc bench`` uses
            it as the input width.
    """

    dataset: str = "charades-sta"
    data_root: str | None = None
    train_split: str | None = None
    val_split: str | None = None
    test_split: str | None = None
    val_holdout: float = 0.0
    num_clips: int = 64
    resample: Literal["pool", "pad", "tan2d"] = "pool"
    l2_normalize: bool = False
    pca_dim: int = 0
    max_query_len: int = 20
    oov: Literal["drop", "zero", "unk"] = "drop"
    vocab_from: Literal["train", "all"] = "all"
    tokenizer: Literal["glove", "whitespace", "whitespace_trim_period"] = "glove"
    on_bad_input: Literal["error", "skip"] = "error"
    num_workers: int = 0
    cache_features: bool = True
    feature_dim: int = 0

    def __post_init__(self):
        check_ranges(self)


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and learning-rate schedule.

    ``fairseq_adam`` is fairseq's Adam (the CSMGAN release's solver): weight decay applied to
    the weights like AdamW, and ``eps`` added to ``sqrt(v)`` before the bias correction.
    ``warmup_init_lr``: None, the k-th update (k = 0, 1, ...) of the warm-up uses
    ``lr (k + 1) / warmup_steps``; a value, fairseq's rule ``warmup_init_lr + k (lr -
    warmup_init_lr) / warmup_steps``, with ``inverse_sqrt`` then ``lr sqrt(warmup_steps / k)``.
    ``plateau`` multiplies the lr by ``gamma`` after ``step_size + 1`` validations without a
    new best of the value ``plateau_on`` names (``metric``: the selection metric;
    ``val_loss``: the mean weighted validation loss; ``neg_val_loss``: its negation), best
    meaning largest with ``plateau_mode: max``, smallest with ``min``. 2D-TAN's release steps
    ``mode min`` with the negated validation loss (``neg_val_loss`` + ``min``): its lr decays
    when the validation loss has not reached a new *maximum*.
    """

    name: Literal["adam", "adamw", "fairseq_adam", "sgd"] = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.9
    scheduler: Literal["none", "cosine", "step", "inverse_sqrt", "plateau"] = "none"
    warmup_steps: int = 0
    warmup_init_lr: float | None = None
    step_size: int = 10
    gamma: float = 0.1
    min_lr: float = 0.0
    plateau_on: Literal["metric", "val_loss", "neg_val_loss"] = "metric"
    plateau_mode: Literal["max", "min"] = "max"

    def __post_init__(self):
        check_ranges(self)


@dataclass(frozen=True)
class TrainConfig:
    """The training loop.

    Attributes:
        epochs: epoch budget. batch_size: per process (DDP multiplies it by the world size).
        grad_clip: max global gradient norm (0 = off). amp: bf16/fp16 autocast on CUDA; bf16
            on a CPU with bf16 units (else fp32, with a warning).
        seed: seeds Python, NumPy and torch; deterministic: torch deterministic algorithms.
        select_metric: validation metric for best-checkpoint selection (``R1@0.5``, ``mIoU``).
        early_stop_patience: stop after this many evaluations without improvement (0 = off).
        max_steps: stop after this many optimizer steps in total (0 = no limit; smoke runs).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        progress: draw the training progress bar (only on a terminal; ``--quiet`` turns every
            bar off, and off a terminal a line per epoch is logged instead). Presets never set
            it: it is a user's switch (``--set train.progress=false``).
    """

    epochs: int = 10
    batch_size: int = 32
    eval_batch_size: int = 64
    grad_clip: float = 0.0
    amp: bool = False
    seed: int = 0
    deterministic: bool = True
    select_metric: str = "R1@0.5"
    early_stop_patience: int = 0
    eval_every: int = 1
    max_steps: int = 0
    log_every: int = 20
    device: Literal["auto", "cpu", "cuda"] = "auto"
    progress: bool = True

    def __post_init__(self):
        check_ranges(self)


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation protocol (common spec 5 and 6).

    Attributes:
        iou_thresholds / recall_at: R@n IoU=m computed for every pair. ``None`` takes the
            dataset card's metric set.
        nms_mode: ``fixed`` (one NMS at ``nms_thresh``) or ``per_metric`` (NMS rerun per IoU
            threshold m at ``m - 0.05``, the CMIN/CSMGAN protocol).
        iou_mode: ``seconds`` or the legacy ``inclusive_index`` (CMIN/CSMGAN code).
        iou_cmp: ``ge`` (hit when IoU >= m) or ``gt`` (2D-TAN code's strict >).
        top_k: predictions kept per query after NMS.
        discount: also report the discounted dR@n IoU=m.
        protocol: ``standard`` (the knobs above), or a lineage's official procedure reproduced
            exactly: ``tan2d`` (2D-TAN's ``core/eval.py``) or ``cmin`` (the CMIN/CSMGAN
            ``Runner.eval_new`` + ``criteria.py``). A lineage protocol fixes decoding, NMS, IoU
            and hit rule as its code does (see docs/models/tan2d.md, docs/models/csmgan.md).
    """

    iou_thresholds: tuple[float, ...] | None = None
    recall_at: tuple[int, ...] = (1, 5)
    nms_mode: Literal["fixed", "per_metric"] = "fixed"
    nms_thresh: float = 0.5
    iou_mode: Literal["seconds", "inclusive_index"] = "seconds"
    iou_cmp: Literal["ge", "gt"] = "ge"
    top_k: int = 5
    discount: bool = True
    protocol: Literal["standard", "tan2d", "cmin"] = "standard"

    def __post_init__(self):
        check_ranges(self)


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one run needs. ``model`` is the dataclass registered for ``model_name``."""

    model_name: str
    model: ModelConfig
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self):
        ev = self.eval
        deepest = max(ev.recall_at, default=1)
        if ev.top_k < deepest:
            raise ConfigError(f"eval.top_k = {ev.top_k} keeps fewer predictions than "
                              f"R@{deepest} needs (eval.recall_at = {list(ev.recall_at)}); "
                              f"valid: top_k >= {deepest}")
        # The selection metric must be one the evaluation reports, or training would stop at
        # its first validation.
        sel = self.train.select_metric
        m = re.fullmatch(r"mIoU|(d?)R(\d+)@(\d*\.?\d+)|didemo/(?:mIoU|R(\d+))", sel)
        n = m and (m.group(2) or m.group(4))
        if (m is None or (n and int(n) not in ev.recall_at) or (m.group(1) and not ev.discount)
                or (m.group(3) and not 0 < float(m.group(3)) <= 1)):
            raise ConfigError(f"train.select_metric: {sel!r} is not a metric this config "
                              f"reports; valid: mIoU, R<n>@<iou>, dR<n>@<iou> (with "
                              f"eval.discount), didemo/R<n> or didemo/mIoU, with n in "
                              f"eval.recall_at {list(ev.recall_at)} and iou in (0, 1]")


# ---- valid ranges -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Range:
    """The valid values of a numeric field (each item, for a tuple field).

    ``lo`` / ``hi`` are bounds (None: unbounded), excluded when ``lo_open`` / ``hi_open``.
    NaN and infinities are never valid.
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def __contains__(self, x: float) -> bool:
        if not math.isfinite(x):
            return False
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        return self.hi is None or (x < self.hi if self.hi_open else x <= self.hi)

    def __str__(self) -> str:
        if self.hi is None:
            return (f"{'>' if self.lo_open else '>='} {self.lo:g}" if self.lo is not None
                    else "a finite number")
        if self.lo is None:
            return f"{'<' if self.hi_open else '<='} {self.hi:g}"
        return (f"{'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}"
                f"{')' if self.hi_open else ']'}")


POSITIVE = Range(0.0, lo_open=True)
NON_NEGATIVE = Range(0.0)
AT_LEAST_1 = Range(1.0)
FRACTION = Range(0.0, 1.0, hi_open=True)        # [0, 1)
UNIT = Range(0.0, 1.0, lo_open=True)            # (0, 1]
FINITE = Range()

# Every numeric field of the sections, by section. A float field not listed must still be finite.
RANGES: dict[str, dict[str, Range]] = {
    "data": {"val_holdout": FRACTION, "num_clips": AT_LEAST_1, "pca_dim": NON_NEGATIVE,
             "max_query_len": AT_LEAST_1, "num_workers": NON_NEGATIVE,
             "feature_dim": NON_NEGATIVE},
    "optim": {"lr": POSITIVE, "weight_decay": NON_NEGATIVE, "betas": FRACTION,
              "momentum": FRACTION, "warmup_steps": NON_NEGATIVE, "step_size": AT_LEAST_1,
              "eps": POSITIVE, "warmup_init_lr": NON_NEGATIVE,
              "gamma": Range(0.0, 1.0, lo_open=True, hi_open=True), "min_lr": NON_NEGATIVE},
    "train": {"epochs": AT_LEAST_1, "batch_size": AT_LEAST_1, "eval_batch_size": AT_LEAST_1,
              "grad_clip": NON_NEGATIVE, "seed": Range(0.0, 2.0**32 - 1),
              "early_stop_patience": NON_NEGATIVE, "eval_every": AT_LEAST_1,
              "max_steps": NON_NEGATIVE, "log_every": AT_LEAST_1},
    "eval": {"iou_thresholds": UNIT, "recall_at": AT_LEAST_1, "nms_thresh": UNIT,
             "top_k": AT_LEAST_1},
}

# (a, b): field a may not exceed field b of the same section.
AT_MOST: dict[str, tuple[tuple[str, str], ...]] = {"optim": (("min_lr", "lr"),)}

# Model configs: fields whose meaning the name gives away, in any model (first match wins).
# A model's own ``__post_init__`` adds its specific rules (odd kernels, divisibility).
MODEL_RANGES: tuple[tuple[str, Range], ...] = (
    ("*dropout", FRACTION),
    ("ffn_dim", NON_NEGATIVE),                  # 0: no feed-forward block
    ("dim", AT_LEAST_1), ("*_dim", AT_LEAST_1), ("*_hidden", AT_LEAST_1),
    ("*heads", AT_LEAST_1), ("*_channels", AT_LEAST_1), ("num_candidates", AT_LEAST_1),
    ("num_clips", AT_LEAST_1), ("*rnn_layers", AT_LEAST_1), ("*_layers", NON_NEGATIVE),
    ("pool_kernel", NON_NEGATIVE),              # 0: derived from the input length
    ("*_kernel", AT_LEAST_1), ("*_dilation", AT_LEAST_1),
    ("*_stride_abs", NON_NEGATIVE),             # 0: use the relative stride
    ("*_stride", POSITIVE), ("*_window", NON_NEGATIVE),  # window 0: unrestricted attention
    ("max_*", NON_NEGATIVE),                    # 0: no limit
    ("tmin", Range(0.0, 1.0)), ("tmax", Range(0.0, 1.0)), ("*_threshold", Range(0.0, 1.0)),
    ("*alpha", NON_NEGATIVE), ("loss_weights", NON_NEGATIVE),
)

_SECTION_OF = {"DataConfig": "data", "OptimConfig": "optim", "TrainConfig": "train",
               "EvalConfig": "eval"}


def field_range(cls: type, name: str) -> Range | None:
    """The declared range of field ``name`` of config class ``cls`` (None: any finite value)."""
    section = _SECTION_OF.get(cls.__name__)
    if section is not None:
        return RANGES[section].get(name)
    if issubclass(cls, ModelConfig):
        return next((r for pattern, r in MODEL_RANGES if fnmatchcase(name, pattern)), None)
    return None


def check_ranges(obj: Any, values: dict[str, Any] | None = None, where: str | None = None
                 ) -> None:
    """Raise ConfigError for the first numeric value outside its field's range.

    Args:
        obj: a config dataclass instance, or the class when ``values`` are checked before it
            is built.
        values: field -> value to check (default: every field of ``obj``).
        where: prefix naming the section in the message (default ``data``, ``train``, ...).
    Raises:
        ConfigError: ``"<where>.<key>: <value> is out of range; valid: <range>"``.
    """
    cls = obj if isinstance(obj, type) else type(obj)
    if values is None:
        values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    where = where or _SECTION_OF.get(cls.__name__, "model")
    for name, value in values.items():
        rng = field_range(cls, name)
        each = isinstance(value, (tuple, list, dict))
        items = list(value.values()) if isinstance(value, dict) else list(value) if each else [value]
        if isinstance(value, (tuple, list)) and rng is not None and not items:
            raise ConfigError(f"{where}.{name}: {value!r} is empty; valid: one or more values "
                              f"{rng}")
        for x in items:
            if isinstance(x, bool) or not isinstance(x, (int, float)) or x in (rng or FINITE):
                continue
            raise ConfigError(f"{where}.{name}: {x!r}{f' (in {value!r})' if each else ''} is out "
                              f"of range; valid: {rng or FINITE}{' for each item' if each else ''}")
    for a, b in AT_MOST.get(_SECTION_OF.get(cls.__name__, ""), ()):
        if a in values or b in values:
            va, vb = (values.get(k, _default(cls, k)) for k in (a, b))
            if va > vb:
                raise ConfigError(f"{where}.{a}: {va!r} is out of range; valid: <= {b} ({vb!r})")


def _default(cls: type, name: str) -> Any:
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default

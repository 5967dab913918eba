"""Configuration dataclasses. Frozen: derived values are properties, never set at run time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


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
    on_bad_input: Literal["error", "skip"] = "error"
    num_workers: int = 0
    cache_features: bool = True
    feature_dim: int = 0


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and learning-rate schedule."""

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9
    scheduler: Literal["none", "cosine", "step", "inverse_sqrt", "plateau"] = "none"
    warmup_steps: int = 0
    step_size: int = 10
    gamma: float = 0.1
    min_lr: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """The training loop.

    Attributes:
        epochs: epoch budget. batch_size: per process (DDP multiplies it by the world size).
        grad_clip: max global gradient norm (0 = off). amp: bf16/fp16 autocast on CUDA.
        seed: seeds Python, NumPy and torch; deterministic: torch deterministic algorithms.
        select_metric: validation metric for best-checkpoint selection (``R1@0.5``, ``mIoU``).
        early_stop_patience: stop after this many evaluations without improvement (0 = off).
        max_steps: stop after this many optimizer steps in total (0 = no limit; smoke runs).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
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


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one run needs. ``model`` is the dataclass registered for ``model_name``."""

    model_name: str
    model: ModelConfig
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

"""Using a trained run: rebuild its model from a checkpoint, evaluate it, localize new queries."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from momentloc.config.schema import ExperimentConfig
from momentloc.data.card import DatasetCard
from momentloc.engine.checkpoint import load_checkpoint
from momentloc.engine.runs import load_run
from momentloc.errors import CheckpointError, ConfigError
from momentloc.models.registry import create_model

log = logging.getLogger("momentloc.inference")


def checkpoint_path(run_dir: Path, which: str) -> Path:
    """``best``, ``last`` or a ``.pt`` path; ``best`` never silently means another file."""
    from momentloc.engine.checkpoint import resolve_checkpoint

    return resolve_checkpoint(run_dir, which)


def load_model(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device = "cpu"):
    """``(model, cfg, card, data)`` of a run, the model in eval mode with the checkpoint's weights.

    ``data`` is the run's DataBundle built from its saved artifacts (vocabulary, vectors, PCA).
    """
    from momentloc.data.build import build_data

    run_dir = Path(run_dir)
    cfg, card = load_run(run_dir)
    state = load_checkpoint(checkpoint_path(run_dir, checkpoint), map_location=device)
    if state.get("model_name") != cfg.model_name:
        raise CheckpointError(f"{run_dir}: checkpoint is for {state.get('model_name')!r}, config for "
                              f"{cfg.model_name!r}")
    data = build_data(cfg.data, card, run_dir / "artifacts")
    model = create_model(cfg.model_name, cfg.model, data.context())
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{run_dir}: checkpoint does not fit the model ({str(e).splitlines()[0]})") from e
    return model.to(device).eval(), cfg, card, data


def evaluate_run(run_dir: str | Path, split: str | None = None, checkpoint: str = "best",
                 device: str | torch.device = "cpu", write: bool = True,
                 overwrite: bool = False) -> dict:
    """Evaluate a run's model on ``split`` (default: its test role); see
    :func:`momentloc.engine.runs.evaluate_into_run` (what is written, and where)."""
    from momentloc.engine.runs import evaluate_into_run

    return evaluate_into_run(run_dir, split, checkpoint, device, write, overwrite)


# -- results ---------------------------------------------------------------------------------
MAX_QUERY_CHARS = 1000  # longer text is refused (no sentence of any benchmark comes close)


@dataclass
class Moment:
    """One ranked moment: ``[start, end]`` in seconds, the model's score, rank 1 = best."""

    start: float
    end: float
    score: float
    rank: int = 1

    def to_dict(self) -> dict:
        return {"rank": self.rank, "start": self.start, "end": self.end, "score": self.score}


@dataclass
class Prediction:
    """The ranked moments of one query in one video, with what the run could not read of it.

    ``moments`` is empty when none of the query's words is in the run's vocabulary (the
    model would only score its unknown-word token); ``warning`` then says so. The JSON form
    (:meth:`to_dict`) is what ``momentloc predict --json``, ``--videos`` and the web page write:
    ``{"video", "query", "duration", "moments": [{"rank", "start", "end", "score"}],
    "unknown_words": [...], "warning": str | null}``.
    """

    video: str
    query: str
    duration: float
    moments: list[Moment] = field(default_factory=list)
    unknown_words: list[str] = field(default_factory=list)
    warning: str | None = None

    def to_dict(self) -> dict:
        return {"video": self.video, "query": self.query, "duration": self.duration,
                "moments": [m.to_dict() for m in self.moments],
                "unknown_words": list(self.unknown_words), "warning": self.warning}

    def to_json(self) -> str:
        """One line of JSON (a line of ``momentloc predict --videos``' JSONL output)."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> "Prediction":
        return cls(str(d["video"]), str(d["query"]), float(d["duration"]),
                   [Moment(float(m["start"]), float(m["end"]), float(m["score"]), int(m["rank"]))
                    for m in d.get("moments") or []],
                   list(d.get("unknown_words") or []), d.get("warning"))


@dataclass(frozen=True)
class QueryCheck:
    """What the run can read of a query: its unknown words, a warning, whether to score it."""

    unknown_words: list[str]
    warning: str | None
    scored: bool


def check_duration(duration, what: str = "video duration") -> float:
    """``duration`` as a float, or ConfigError unless it is a finite number of seconds > 0."""
    try:
        value = float(duration)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number of seconds, got {duration!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{what} must be a finite number of seconds > 0, got {duration!r}")
    return value


def _is_video_file(path: Path) -> bool:
    from momentloc.video.decode import VIDEO_EXTENSIONS

    return path.suffix.lower() in VIDEO_EXTENSIONS


# -- the predictor ---------------------------------------------------------------------------
class Predictor:
    """Localize free-text queries in videos with a trained run (loaded once).

    Args:
        run_dir: a run directory (``momentloc train``'s output).
        checkpoint: ``best``, ``last`` or a ``.pt`` path.
        device: where the model runs.
        cache_dir: where features extracted from video files are kept (default
            ``$MOMENTLOC_CACHE_DIR/features``, see :func:`~momentloc.data.build.default_cache_dir`);
            ``False`` keeps none.
        extractor_overrides: extractor parameters for video files, e.g. ``model`` (a CLIP
            checkpoint directory that moved); they may not change what the extractor is.
    """

    def __init__(self, run_dir: str | Path, checkpoint: str = "best", device: str = "cpu",
                 cache_dir: str | Path | bool | None = None, **extractor_overrides):
        self.run_dir = Path(run_dir)
        self.device = torch.device(device)
        self.model, self.cfg, self.card, self.data = load_model(run_dir, checkpoint, device)
        self.encoder = self.data.query_encoder()
        self.cache_dir = cache_dir
        self.extractor_overrides = {"device": device, **extractor_overrides}
        self._extractor = None

    @property
    def config(self) -> ExperimentConfig:
        return self.cfg

    @property
    def dataset_card(self) -> DatasetCard:
        return self.card

    # -- features ----------------------------------------------------------------------------
    @property
    def extractor(self):
        """The run's feature extractor for video files (built once; ConfigError when the run's
        features were not made by a momentloc extractor)."""
        if self._extractor is None:
            from momentloc.video.extractors import extractor_from_spec

            if self.card.features is None:
                raise ConfigError(f"dataset card {self.card.name!r} has no features section")
            self._extractor = extractor_from_spec(self.card.features, **self.extractor_overrides)
        return self._extractor

    def _cache_file(self, path: Path) -> Path | None:
        from momentloc.data.build import default_cache_dir

        if self.cache_dir is False:
            return None
        root = Path(self.cache_dir) if self.cache_dir not in (None, True) else (
            default_cache_dir() / "features")
        st = path.stat()
        key = json.dumps([self.extractor.id, str(path.resolve()), st.st_size, st.st_mtime_ns])
        return root / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.npz"

    def extract_features(self, path: str | Path, **overrides) -> tuple[np.ndarray, float]:
        """``(features (M, D), duration)`` of a video file, extracted with the extractor the
        run's dataset card records (``momentloc.video``).

        Results are cached on disk (see ``cache_dir``), keyed by the extractor's id (name and
        settings) and the file's path, size and modification time. ``overrides`` (e.g.
        ``model``) rebuild the extractor for this call only and bypass the cache.
        """
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such video file")
        if overrides:
            from momentloc.video.extract import features_for_video

            got = features_for_video(self.card, path, **{**self.extractor_overrides, **overrides})
            return got.features, got.duration
        cache = self._cache_file(path)
        if cache is not None and cache.is_file():
            try:
                with np.load(cache, allow_pickle=False) as z:
                    return z["features"], float(z["duration"])
            except (OSError, ValueError, KeyError):
                log.warning("%s: unreadable feature cache entry, extracting again", cache)
        got = self.extractor.extract(path)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.savez(f, features=got.features, duration=np.float64(got.duration))
            os.replace(tmp, cache)
        return got.features, got.duration

    def features_of(self, video: str | Path | np.ndarray, duration: float | None = None
                    ) -> tuple[np.ndarray, float, str]:
        """``(features (M, D), duration, name)`` of one input.

        ``video`` is an ``(M, D)`` array or a ``.npy`` file of clip features of the run's kind
        (``duration`` needed), a video file (decoded and extracted as the run's card records;
        the duration comes from the file), or a video id of the run's feature store.
        ``duration``, when given, replaces the one found.
        """
        if duration is not None:
            duration = check_duration(duration)
        if isinstance(video, np.ndarray):
            if duration is None:
                raise ConfigError("a duration is needed with a features array")
            return video, duration, "<features>"
        path = Path(video)
        if path.suffix == ".npy":
            if not path.is_file():
                raise ConfigError(f"{path}: no such file")
            if duration is None:
                raise ConfigError(f"{path}: a duration (--duration) is needed with a features file")
            try:
                feats = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise ConfigError(f"{path}: not a NumPy array file ({e})") from None
            return feats, duration, path.stem
        if _is_video_file(path) and (path.is_file() or not self.data.store.has(str(video))):
            feats, found = self.extract_features(path)
            return feats, duration if duration is not None else found, path.stem
        vid = str(video)
        if not self.data.store.has(vid):
            raise ConfigError(f"{vid!r} is not a video file, a .npy features file or a video id "
                              f"of the run's feature store ({self.data.store.path})")
        feats, found = self.data.video_features(vid)
        if duration is None and found is None:
            raise ConfigError(f"video {vid!r} is in the feature store but in no annotation; "
                              f"give its duration")
        return feats, duration if duration is not None else found, vid

    # -- queries -----------------------------------------------------------------------------
    def check_query(self, text: str) -> QueryCheck:
        """Unknown words of ``text`` and a warning for what the run cannot read.

        Raises:
            ConfigError: an empty query, one with no word, or one over
                ``MAX_QUERY_CHARS`` characters.
        """
        from momentloc.data.text import UNK, tokenize

        if not isinstance(text, str):
            raise ConfigError(f"a query must be a string, got {type(text).__name__}")
        if len(text) > MAX_QUERY_CHARS:
            raise ConfigError(f"query of {len(text)} characters is too long (at most "
                              f"{MAX_QUERY_CHARS}): {text[:60]!r}...")
        tokens = tokenize(text, self.encoder.tokenizer)
        if not tokens:
            raise ConfigError(f"query {text!r} has no words")
        unknown = list(dict.fromkeys(t for t in tokens if self.encoder.vocab.id(t) == UNK))
        known = sum(self.encoder.vocab.id(t) != UNK for t in tokens)
        if known == 0:
            return QueryCheck(unknown, "none of the query's words is in the run's vocabulary, "
                                       "so no moment is given", False)
        notes = []
        if unknown:
            how = "ignored" if self.encoder.oov == "drop" else "read as the unknown word"
            notes.append(f"{len(unknown)} word(s) not in the run's vocabulary are {how}: "
                         + ", ".join(unknown))
        read = known if self.encoder.oov == "drop" else len(tokens)
        if read > self.encoder.max_len:
            notes.append(f"only the first {self.encoder.max_len} of {read} words are read "
                         f"(the run's data.max_query_len)")
        return QueryCheck(unknown, "; ".join(notes) or None, True)

    # -- features -> moments -----------------------------------------------------------------
    def candidates(self, features: np.ndarray, duration: float, queries: list[str]):
        """The model's scored candidate moments of ``queries`` in one video: the
        :class:`~momentloc.models.base.Candidates` of one forward pass (spans in seconds)."""
        batch = self.data.make_batch(features, duration, queries).to(self.device)
        with torch.no_grad():
            out = self.model(batch)
            return self.model.candidates(out, batch)

    def localize(self, features: np.ndarray, duration: float, queries: list[str], top_k: int = 5
                 ) -> list[list[Moment]]:
        """Ranked moments (seconds) for each query in one video, decoded as the run's
        evaluation decodes them (:func:`~momentloc.engine.predictions.decode_candidates`:
        ``eval.protocol: tan2d`` ranks and suppresses as the 2D-TAN release, the others by NMS
        at ``eval.nms_thresh``), so a run predicts the moments its evaluation scores.

        Args:
            features: ``(M, D)`` raw clip features of the video (the run's feature kind).
            duration: the video's length in seconds.
            queries: sentences; each gets up to ``top_k`` moments.
        """
        from momentloc.engine.predictions import decode_candidates

        if not queries:
            raise ConfigError("no query given")
        duration = check_duration(duration)
        if int(top_k) < 1:
            raise ConfigError(f"top_k must be at least 1, got {top_k}")
        # videos far longer than the trained horizon: sliding windows (momentloc.engine.windows)
        from momentloc.engine.windows import localize_windows, window_length

        if (window := window_length(self, duration)) is not None:
            return localize_windows(self, features, duration, list(queries), int(top_k), window)
        result: list[list[Moment]] = []
        step = max(1, self.cfg.train.eval_batch_size)
        for lo in range(0, len(queries), step):
            cands = self.candidates(features, duration, list(queries[lo:lo + step]))
            # float64 and invalid candidates at score 0, as prediction lines are decoded
            spans = cands.spans.detach().to("cpu", torch.float64)
            scores = cands.scores.detach().to("cpu", torch.float64)
            valid = cands.valid.detach().to("cpu", torch.bool)
            keep, kept = decode_candidates(spans, scores, valid, self.cfg.eval, int(top_k))
            scores = scores.masked_fill(~valid, 0.0)
            keep, kept = keep.cpu(), kept.cpu()
            for i in range(keep.shape[0]):
                idx = keep[i][kept[i]]
                result.append([Moment(float(s), float(e), float(sc), r + 1) for r, ((s, e), sc)
                               in enumerate(zip(spans[i, idx].tolist(), scores[i, idx].tolist()))])
        return result

    def predict(self, video: str | Path | np.ndarray, queries: str | list[str], top_k: int = 5,
                duration: float | None = None) -> list[Prediction]:
        """:class:`Prediction` of each query in one video (see :meth:`features_of` for what
        ``video`` may be)."""
        feats, duration, name = self.features_of(video, duration)
        return self.predict_features(feats, duration, queries, top_k, name)

    def predict_features(self, features: np.ndarray, duration: float, queries: str | list[str],
                         top_k: int = 5, video: str = "<features>") -> list[Prediction]:
        """:class:`Prediction` of each query in one video's ``(M, D)`` features. Queries none
        of whose words the run knows get no moment and a warning."""
        from momentloc.data.features import check_features

        queries = [queries] if isinstance(queries, str) else list(queries)
        if not queries:
            raise ConfigError("no query given")
        duration = check_duration(duration)
        features = check_features(features, self.data.store.dim, video)
        checks = [self.check_query(q) for q in queries]
        scored = [q for q, c in zip(queries, checks) if c.scored]
        moments = iter(self.localize(features, duration, scored, top_k) if scored else [])
        return [Prediction(video, q, duration, next(moments) if c.scored else [],
                           c.unknown_words, c.warning) for q, c in zip(queries, checks)]

    def predict_many(self, videos, queries: str | list[str], top_k: int = 5
                     ) -> Iterator[Prediction]:
        """:class:`Prediction` s of the same ``queries`` in each of ``videos`` (paths or ids as
        :meth:`predict` takes), video by video."""
        for video in videos:
            yield from self.predict(video, queries, top_k)

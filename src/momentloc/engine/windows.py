"""Sliding windows: localizing queries in videos much longer than a model was trained on.

A model sees every video as ``data.num_clips`` steps. Resampled whole, a one-hour video gets
one step every few minutes and a ten-second moment vanishes in the pooling. Here a long
video's raw clip features are cut into overlapping windows of the model's *trained horizon*
(the median duration of its training videos), every window is scored as a video of its own,
its candidates are mapped to absolute seconds, and all of them are merged by temporal NMS
(:func:`momentloc.spans.batched_nms`, the one NMS of the package).

With ``M`` raw clips over ``T`` seconds (``dt = T / M`` seconds per clip), a window of ``W``
clips and a stride of ``S = max(1, round(W * (1 - overlap)))`` clips:

- window ``w`` starts at clip ``s_w = w * S``, plus one last window flush with the end
  (``s = M - W``) when the strides do not land there, so every window is full;
- it is scored as a video of ``W * dt`` seconds; a span ``(a, b)`` it returns is the
  absolute span ``(s_w * dt + a, s_w * dt + b)``;
- a window's edge that is not the video's cuts moments in two, and a model readily scores
  the cut piece as a whole moment; so candidates touching such an edge (within one clip)
  rank after every candidate that does not. Every moment up to ``W - S`` clips long
  (half a window with ``overlap = 0.5``) lies wholly inside some window, away from the cut;
  longer moments need a longer window;
- NMS runs twice: within each (window, query), keeping ``top_k``, then over the kept spans of
  all windows of a query, keeping ``top_k``. Memory is bounded by a batch of windows and
  the ``windows x top_k`` kept spans, never by all candidates of the video.

Scores of different windows are compared as they are (the models score each candidate
independently, e.g. 2D-TAN's sigmoid IoU estimates).

Everything here is a pure function of a feature sequence and a *scorer*, a callable
``score(windows (B, W, D) ndarray, window_seconds) -> (spans (B, Q, K, 2), scores (B, Q, K),
valid (B, Q, K))`` (torch, spans in seconds from the window's start); :func:`model_scorer`
makes one from a trained run, and :func:`localize_windows` is what
:meth:`momentloc.engine.inference.Predictor.localize` calls for long inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

import numpy as np
import torch

from momentloc.errors import ConfigError
from momentloc.spans import batched_nms

if TYPE_CHECKING:
    from momentloc.engine.inference import Predictor

Scorer = Callable[[np.ndarray, float], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class WindowSettings:
    """When and how to slide windows over a long video.

    Attributes:
        mode: ``auto`` (windows when the video is longer than ``factor`` trained horizons),
            ``on`` (windows whenever the video is longer than one window) or ``off`` (the
            whole video is resampled to the model's clip count, as in training).
        seconds: window length; None uses the run's trained horizon (:func:`trained_horizon`).
        overlap: fraction of a window shared with the next, in [0, 1).
        factor: with ``auto``, windows are used when ``duration > factor * seconds``.
    """

    mode: Literal["auto", "on", "off"] = "auto"
    seconds: float | None = None
    overlap: float = 0.5
    factor: float = 3.0

    def __post_init__(self):
        if self.mode not in ("auto", "on", "off"):
            raise ConfigError(f"window mode must be auto, on or off, got {self.mode!r}")
        if self.seconds is not None and not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ConfigError(f"window length must be a positive number of seconds, "
                              f"got {self.seconds}")
        if not 0 <= self.overlap < 1:
            raise ConfigError(f"window overlap must be in [0, 1), got {self.overlap}")
        if not (math.isfinite(self.factor) and self.factor >= 1):
            raise ConfigError(f"window factor must be >= 1, got {self.factor}")


# -- pure functions over clip indices and spans ----------------------------------------------
def window_starts(num_clips: int, window: int, stride: int) -> np.ndarray:
    """First clip of every window: ``0, S, 2S, ...`` and ``M - W`` (the last window ends at
    the last clip). One window at 0 when ``M <= W``. ``(n,)`` int64, increasing."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window} and {stride}")
    if num_clips <= window:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, num_clips - window + 1, stride, dtype=np.int64)
    if starts[-1] != num_clips - window:
        starts = np.append(starts, num_clips - window)
    return starts


def gather_windows(features: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """``(n, W, D)`` windows of ``(M, D)`` features (one fancy-indexing copy, no loop).
    Windows reaching past the end (only when ``M < W``) repeat the last clip."""
    idx = np.minimum(starts[:, None] + np.arange(window)[None, :], features.shape[0] - 1)
    return features[idx]


def to_absolute(spans: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Spans ``(n, ..., 2)`` in seconds from their window's start -> seconds from the video's
    start, for window offsets ``(n,)`` seconds."""
    return spans + offsets.reshape(-1, *([1] * (spans.dim() - 1))).to(spans.dtype)


def rank_key(scores: torch.Tensor, valid: torch.Tensor, cut: torch.Tensor) -> torch.Tensor:
    """Float64 ranking key of ``(R, C)`` candidates: the score, with every ``cut`` candidate
    (touching a window edge inside the video) ranked after every other valid one of its row."""
    x = scores.double()
    lo = x.masked_fill(~valid, float("inf")).amin(1, keepdim=True)
    hi = x.masked_fill(~valid, float("-inf")).amax(1, keepdim=True)
    gap = torch.where(valid.any(1, keepdim=True), hi - lo + 1.0, torch.ones_like(lo))
    return x - gap * cut.double()


def merge_windows(spans: torch.Tensor, scores: torch.Tensor, valid: torch.Tensor,
                  thresh: float, top_k: int, cut: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """NMS over the candidates of all windows of each query.

    Args:
        spans: ``(Q, C, 2)`` absolute seconds (the kept spans of every window, side by side).
        scores, valid: ``(Q, C)``.
        cut: ``(Q, C)`` bool, candidates touching a window edge inside the video (ranked last,
            see :func:`rank_key`); default none.
    Returns:
        ``(spans (Q, k, 2), scores (Q, k), kept (Q, k) bool)`` best first, ``k = top_k``.
    """
    key = scores.double() if cut is None else rank_key(scores, valid, cut)
    keep, kept = batched_nms(spans, key, thresh, top_k, valid)
    picked = torch.gather(spans, 1, keep[..., None].expand(-1, -1, 2))
    return picked, torch.gather(scores, 1, keep), kept


def cut_candidates(spans: torch.Tensor, starts: np.ndarray, window: int, num_clips: int,
                   dt: float) -> torch.Tensor:
    """``(n, ..., 2)`` window-relative spans of windows starting at clips ``starts (n,)`` ->
    ``(n, ...)`` bool: the span starts within one clip of a window start that is not the
    video's, or ends within one clip of a window end that is not the video's."""
    shape = (-1, *([1] * (spans.dim() - 2)))
    inner_left = torch.as_tensor(starts > 0, device=spans.device).reshape(shape)
    inner_right = torch.as_tensor(starts + window < num_clips, device=spans.device).reshape(shape)
    seconds = window * dt
    return ((inner_left & (spans[..., 0] < dt)) | (inner_right & (spans[..., 1] > seconds - dt)))


def slide(features: np.ndarray, duration: float, score: Scorer, window: int, stride: int,
          nms_thresh: float, top_k: int, windows_per_batch: int = 16
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Score every window of ``features`` with ``score`` and merge (module doc).

    Args:
        features: ``(M, D)`` raw clip features covering ``duration`` seconds.
        score: the scorer (module doc); it is called with at most ``windows_per_batch``
            windows at a time.
        window, stride: in clips.
    Returns:
        ``(spans (Q, top_k, 2) seconds, scores (Q, top_k), kept (Q, top_k) bool)``.
    """
    num = features.shape[0]
    dt = float(duration) / num
    window = min(window, num)
    starts = window_starts(num, window, stride)
    seconds = window * dt
    out: dict[str, list[torch.Tensor]] = {"spans": [], "scores": [], "valid": [], "cut": []}

    def by_query(x: torch.Tensor, b: int, q: int) -> torch.Tensor:
        """``(b * q, top_k, ...)`` -> ``(q, b * top_k, ...)``: a query's rows side by side."""
        return x.reshape(b, q, *x.shape[1:]).transpose(0, 1).reshape(q, -1, *x.shape[2:])

    for lo in range(0, len(starts), max(1, windows_per_batch)):
        chunk = starts[lo:lo + windows_per_batch]
        spans, scores, valid = score(gather_windows(features, chunk, window), seconds)
        b, q, k = scores.shape
        spans = spans.double()
        cut = cut_candidates(spans, chunk, window, num, dt).reshape(b * q, k)
        rows, row_scores = spans.reshape(b * q, k, 2), scores.reshape(b * q, k)
        valid = valid.reshape(b * q, k)
        # within each (window, query): NMS down to top_k, every row at once
        keep, kept = batched_nms(rows, rank_key(row_scores, valid, cut), nms_thresh, top_k,
                                 valid)
        picked = torch.gather(rows, 1, keep[..., None].expand(-1, -1, 2)).reshape(b, q, -1, 2)
        offsets = torch.as_tensor(chunk * dt, dtype=torch.float64, device=picked.device)
        picked = to_absolute(picked, offsets).clamp(0.0, float(duration))
        out["spans"].append(by_query(picked.reshape(b * q, -1, 2), b, q))
        out["scores"].append(by_query(torch.gather(row_scores.double(), 1, keep), b, q))
        out["valid"].append(by_query(kept, b, q))
        out["cut"].append(by_query(torch.gather(cut, 1, keep), b, q))
    return merge_windows(*(torch.cat(out[name], 1) for name in ("spans", "scores", "valid")),
                         nms_thresh, top_k, cut=torch.cat(out["cut"], 1))


# -- a trained run as a scorer -----------------------------------------------------------------
def trained_horizon(predictor: "Predictor") -> float:
    """The window length a run's model was trained for, in seconds: the median duration of its
    training videos; without training records, ``data.num_clips`` clips at the feature rate
    of the run's card.

    Raises:
        ConfigError: neither is known (give the window length).
    """
    durations = {}
    for r in predictor.data.records("train"):
        durations[r.video_id] = r.duration
    if durations:
        return float(np.median(np.fromiter(durations.values(), dtype=np.float64)))
    spec = predictor.card.features
    if spec is not None and spec.fps and spec.clip_stride_frames:
        return predictor.cfg.data.num_clips * spec.clip_stride_frames / spec.fps
    raise ConfigError("the run's trained horizon is unknown (no training records, no feature "
                      "rate in its card): give the window length in seconds")


def settings_of(predictor: "Predictor") -> WindowSettings:
    """The predictor's ``windowing`` attribute (set it to change the settings), by default
    ``WindowSettings()`` (auto)."""
    return getattr(predictor, "windowing", None) or WindowSettings()


def cli_settings(window: float | bool | None, no_window: bool, overlap: float = 0.5
                 ) -> WindowSettings:
    """Settings from ``--window [SECONDS]`` (None: not given; True: given without a length),
    ``--no-window`` and ``--window-overlap``.

    Raises:
        ConfigError: ``--window`` and ``--no-window`` together.
    """
    if no_window and window is not None:
        raise ConfigError("--window and --no-window exclude each other")
    if no_window:
        return WindowSettings("off", overlap=overlap)
    if window is None:
        return WindowSettings("auto", overlap=overlap)
    return WindowSettings("on", None if window is True else float(window), overlap)


def window_length(predictor: "Predictor", duration: float) -> float | None:
    """The window length in seconds when the predictor's settings (:func:`settings_of`) say a
    video of ``duration`` seconds is to be windowed, else None."""
    s = settings_of(predictor)
    if s.mode == "off":
        return None
    seconds = s.seconds if s.seconds is not None else trained_horizon(predictor)
    limit = seconds * (s.factor if s.mode == "auto" else 1.0)
    return seconds if duration > limit else None


def model_scorer(predictor: "Predictor", queries: list[str]) -> Scorer:
    """A scorer running the run's model on windows: each window is encoded as training
    encoded a video (resampling to ``data.num_clips``, PCA, normalization) and paired with
    every query; one forward pass per batch of windows."""
    from momentloc.data.batch import Batch
    from momentloc.data.dataset import encode_features

    data, device, model = predictor.data, predictor.device, predictor.model
    query_part: dict = {}

    def score(windows: np.ndarray, seconds: float):
        encoded = [encode_features(w, data.cfg, data.pca) for w in windows]
        feats = torch.from_numpy(np.stack([f for f, _ in encoded]))       # (B, N, Dv)
        mask = torch.from_numpy(np.stack([m for _, m in encoded]))        # (B, N)
        if not query_part:  # the queries' tensors, encoded once as make_batch encodes them
            qb = data.make_batch(windows[0], seconds, queries)
            query_part.update(feats=qb.query_feats, ids=qb.query_ids, mask=qb.query_mask,
                              meta=qb.meta)
        b, q = feats.shape[0], len(queries)
        batch = Batch(video_feats=feats.repeat_interleave(q, 0),
                      video_mask=mask.repeat_interleave(q, 0),
                      query_feats=query_part["feats"].repeat(b, 1, 1),
                      query_ids=query_part["ids"].repeat(b, 1),
                      query_mask=query_part["mask"].repeat(b, 1),
                      spans=torch.zeros(b * q, 2), durations=torch.full((b * q,), seconds),
                      meta=query_part["meta"] * b).to(device)
        with torch.no_grad():
            cands = model.candidates(model(batch), batch)
        k = cands.scores.shape[1]
        return (cands.spans.reshape(b, q, k, 2).cpu(), cands.scores.reshape(b, q, k).cpu(),
                cands.valid.reshape(b, q, k).cpu())

    return score


def localize_windows(predictor: "Predictor", features: np.ndarray, duration: float,
                     queries: list[str], top_k: int, seconds: float):
    """Ranked :class:`~momentloc.engine.inference.Moment` lists of ``queries`` in one long
    video, by windows of ``seconds`` (what ``Predictor.localize`` returns)."""
    from momentloc.data.features import check_features
    from momentloc.engine.inference import Moment

    features = check_features(features, predictor.data.store.dim, "input features")
    s = settings_of(predictor)
    window = max(1, round(seconds * features.shape[0] / duration))
    stride = max(1, round(window * (1 - s.overlap)))
    budget = max(1, predictor.cfg.train.eval_batch_size)
    result = []
    for lo in range(0, len(queries), budget):  # at most ``budget`` samples per forward pass
        group = list(queries[lo:lo + budget])
        spans, scores, kept = slide(features, duration, model_scorer(predictor, group), window,
                                    stride, predictor.cfg.eval.nms_thresh, top_k,
                                    max(1, budget // len(group)))
        for sp, sc, kp in zip(spans.tolist(), scores.tolist(), kept.tolist()):
            ranked = [(start, end, value) for (start, end), value, k in zip(sp, sc, kp) if k]
            result.append([Moment(start, end, value, rank + 1)
                           for rank, (start, end, value) in enumerate(ranked)])
    return result

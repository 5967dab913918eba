"""DiDeMo's annotator-aware evaluation protocol (Hendricks et al., "Localizing Moments in Video
with Natural Language", 2017), beside the standard R@n IoU=m.

Verified against the official ``eval.py`` of the LocalizingMoments release (read, not copied):

- a prediction is a ranked list of segment moments ``(i, j)`` (inclusive indices of the
  5-second segments, 21 moments for six segments);
- for every annotator moment of a query its **rank** is its 1-based position in that list,
  and its **IoU** with the top-1 moment is the inclusive-index IoU
  ``(min(j) - max(i) + 1) / (max(j) - min(i) + 1)`` (clipped at 0);
- per query the rank is the mean of the **3 lowest** annotator ranks and the IoU the mean of
  the **3 highest** annotator IoUs (``np.sort(...)[:3]`` / ``[-3:]``, so with fewer than three
  annotators all of them); duplicate annotator moments count once each, as in the official
  code;
- ``R@1`` / ``R@5`` = fraction of queries whose mean rank is <= 1 / <= 5; ``mIoU`` = mean of
  the per-query IoU.

Two additions the official code does not need, because it always receives all 21 moments:

- predicted spans in seconds are matched to segment moments by rounding each boundary to the
  nearest segment boundary of that video (:func:`spans_to_segments`); when two predictions
  fall on the same moment, only the first counts (ranks are over distinct moments);
- an annotator moment missing from the list gets rank infinity. With a list of at least 13
  distinct moments every R@1 / R@5 decision is exact (a mean of 3 ranks <= 5 needs each rank
  <= 13); with a shorter list R@5 is a lower bound. The predictions file keeps the full
  ranking (``ranked_spans``) for this reason.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from momentloc.spans import temporal_iou

SEGMENT_SECONDS = 5.0
NUM_SEGMENTS = 6


def spans_to_segments(spans, durations=None, segment_seconds: float = SEGMENT_SECONDS,
                      num_segments: int = NUM_SEGMENTS) -> np.ndarray:
    """Seconds -> inclusive segment indices ``(i, j)``, rounding to the nearest boundary.

    A video has ``n = clip(ceil(T / segment_seconds), 1, num_segments)`` segments; the
    boundaries are ``0, 5, 10, ...`` with the last one at the video's end ``T`` (DiDeMo cuts
    the last segment there). The start snaps to the nearest of the first ``n`` boundaries and
    the end to the nearest of the last ``n`` (ties go to the earlier boundary); a span that
    collapses keeps one segment (``j = max(j, i)``). Without durations every video has
    ``num_segments`` full segments.

    Args:
        spans: ``(Q, K, 2)`` seconds. durations: ``(Q,)`` seconds, or None.
    Returns:
        ``(Q, K, 2)`` int64 segment indices with ``0 <= i <= j < n``.
    """
    spans = np.asarray(spans, dtype=np.float64)
    q = spans.shape[0]
    k = np.arange(num_segments + 1, dtype=np.float64)
    bounds = np.broadcast_to(k * segment_seconds, (q, num_segments + 1)).copy()   # (Q, S+1)
    if durations is None:
        nseg = np.full(q, num_segments)
    else:
        dur = np.asarray(durations, dtype=np.float64).reshape(q)
        # 1e-6: a 25.0-s video has five segments, not six.
        nseg = np.clip(np.ceil(dur / segment_seconds - 1e-6), 1, num_segments).astype(np.int64)
        bounds = np.minimum(bounds, dur[:, None])
        bounds[np.arange(q), nseg] = dur
    usable_start = k[None, :num_segments] < nseg[:, None]                          # (Q, S)
    usable_end = k[None, 1:] <= nseg[:, None]                                      # (Q, S)
    d_start = np.abs(spans[..., 0, None] - bounds[:, None, :num_segments])         # (Q, K, S)
    d_end = np.abs(spans[..., 1, None] - bounds[:, None, 1:])
    d_start = np.where(usable_start[:, None, :], d_start, np.inf)
    d_end = np.where(usable_end[:, None, :], d_end, np.inf)
    i = np.argmin(d_start, axis=-1)                                                # first on ties
    j = np.maximum(np.argmin(d_end, axis=-1), i)
    return np.stack([i, j], axis=-1).astype(np.int64)


def _mean_of_first(sorted_vals: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Mean of the first ``count[q]`` entries of each row (count >= 1)."""
    take = np.arange(sorted_vals.shape[1])[None, :] < count[:, None]
    return np.where(take, sorted_vals, 0.0).sum(axis=1) / count


def didemo_metrics(pred_spans, pred_valid, annotator_spans, annotator_valid=None,
                   durations=None, recall_at: Sequence[int] = (1, 5), best_of: int = 3,
                   segment_seconds: float = SEGMENT_SECONDS,
                   num_segments: int = NUM_SEGMENTS) -> dict[str, float]:
    """The official DiDeMo rank / IoU protocol (see the module docstring for the rule).

    Args:
        pred_spans: ``(Q, K, 2)`` ranked predicted spans in seconds, best first.
        pred_valid: ``(Q, K)`` bool (None: all valid).
        annotator_spans: ``(Q, A, 2)`` every annotator's moment in seconds (padded).
        annotator_valid: ``(Q, A)`` bool, at least one True per query (None: all valid).
        durations: ``(Q,)`` seconds, to place the last (cut) segment boundary; None assumes
            full 5-s segments.
        recall_at: ranks reported as ``R{n}``. best_of: annotators averaged (3 officially).
    Returns:
        ``{"R1": .., "R5": .., "mIoU": ..}`` as fractions.
    """
    pred = np.asarray(pred_spans, dtype=np.float64)
    ann = np.asarray(annotator_spans, dtype=np.float64)
    q, k = pred.shape[:2]
    valid = np.ones((q, k), bool) if pred_valid is None else np.asarray(pred_valid, bool)
    ann_valid = (np.ones(ann.shape[:2], bool) if annotator_valid is None
                 else np.asarray(annotator_valid, bool))
    if q == 0:
        raise ValueError("no queries to evaluate")
    if ann.shape[0] != q or ann_valid.shape != ann.shape[:2] or valid.shape != (q, k):
        raise ValueError(f"inconsistent shapes: pred {pred.shape}, valid {valid.shape}, "
                         f"annotators {ann.shape}, annotator_valid {ann_valid.shape}")
    if not ann_valid.any(axis=1).all():
        raise ValueError("every query needs at least one annotator moment")
    if k == 0:  # no predictions: one invalid column keeps the code uniform
        pred, valid, k = np.zeros((q, 1, 2)), np.zeros((q, 1), bool), 1

    pred_seg = spans_to_segments(pred, durations, segment_seconds, num_segments)     # (Q, K, 2)
    ann_seg = spans_to_segments(ann, durations, segment_seconds, num_segments)       # (Q, A, 2)
    pred_code = pred_seg[..., 0] * num_segments + pred_seg[..., 1]                   # (Q, K)
    ann_code = ann_seg[..., 0] * num_segments + ann_seg[..., 1]                      # (Q, A)

    # Rank over distinct moments: a prediction repeating an earlier moment does not count.
    same = (pred_code[:, :, None] == pred_code[:, None, :]) & valid[:, None, :]      # (Q, K, K)
    earlier = np.tril(np.ones((k, k), bool), -1)
    distinct = valid & ~(same & earlier).any(axis=2)
    position = np.cumsum(distinct, axis=1)                                           # (Q, K)
    match = (ann_code[:, :, None] == pred_code[:, None, :]) & distinct[:, None, :]   # (Q, A, K)
    first = np.argmax(match, axis=2)
    rank = np.where(match.any(axis=2),
                    np.take_along_axis(position, first, axis=1).astype(np.float64), np.inf)

    has_pred = valid.any(axis=1)
    top1 = np.take_along_axis(pred_seg, np.argmax(valid, axis=1)[:, None, None], axis=1)  # (Q,1,2)
    iou = temporal_iou(top1.astype(np.float64), ann_seg.astype(np.float64), "inclusive_index")
    iou = np.where(has_pred[:, None], iou, 0.0)                                       # (Q, A)

    count = np.minimum(ann_valid.sum(axis=1), best_of)
    # Padding sorts last: ranks as NaN (after inf), IoUs as NaN after negation.
    best_ranks = np.sort(np.where(ann_valid, rank, np.nan), axis=1)
    best_ious = -np.sort(np.where(ann_valid, -iou, np.nan), axis=1)
    mean_rank = _mean_of_first(best_ranks, count)
    mean_iou = _mean_of_first(best_ious, count)
    out = {f"R{int(n)}": float((mean_rank <= n).mean()) for n in recall_at}
    out["mIoU"] = float(mean_iou.mean())
    return out

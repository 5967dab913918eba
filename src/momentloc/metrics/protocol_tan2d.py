"""The 2D-TAN release's evaluation procedure, reproduced exactly (``eval.protocol: tan2d``).

What the release's ``core/eval.py`` and its decoding compute, vectorized over queries
(NumPy, float64 like the release):

1. **Ranking** (:func:`tan2d_rank`): every upper-triangle cell of the map is a prediction,
   the cells outside the sampled layout (or past the video) with score 0, so they come last.
   Scores are sorted in descending order; equal scores go to the later cell first (the
   reversed ``np.argsort`` of the release; among the zero-score tail the release's order is
   that of an unstable sort, and so immaterial wherever the tail is reached).
2. **NMS** (:func:`tan2d_nms`): in list order (no re-sorting), keep the first remaining
   moment, stop at ``top_k``, drop every remaining moment whose overlap
   ``inter / (len_i + len_j - inter)`` is **> thresh** (equal is kept). A 0/0 overlap (two
   zero-length moments) is NaN and drops the later one.
3. **Recall** (:func:`tan2d_metrics`): a query is a hit at (n, m) iff one of its first n
   kept moments has IoU **> m** with the ground truth (``inter / hull``).
4. **mIoU**: the release averages ``sort(overlap[0])[-3:]`` where ``overlap[0]`` holds the
   single IoU of the first kept moment: the mean IoU of the top-1 moment.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from momentloc.metrics.retrieval import recall_key


def tan2d_rank(spans, scores, valid=None) -> np.ndarray:
    """Order of the candidates as the release ranks them, ``(Q, K)`` int64 indices.

    Args:
        spans: ``(Q, K, 2)`` candidate moments (every upper-triangle cell of the map).
        scores: ``(Q, K)``. valid: ``(Q, K)`` bool; invalid candidates score 0.
    """
    spans = np.asarray(spans, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if valid is not None:
        scores = np.where(np.asarray(valid, dtype=bool), scores, 0.0)
    # primary key: score descending; ties: the later cell (larger start, then end) first
    return np.lexsort((-spans[..., 1], -spans[..., 0], -scores), axis=-1)


def tan2d_nms(spans, count, thresh: float, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """The release's NMS over ranked lists, vectorized over queries (loops ``top_k`` times).

    Args:
        spans: ``(Q, K, 2)`` float64 moments, ranked (best first).
        count: ``(Q,)`` number of real entries of each list (the rest is padding).
        thresh: overlap above which a later moment is dropped.
        top_k: moments kept at most.
    Returns:
        ``keep (Q, top_k)`` int64 indices into K and ``kept (Q, top_k)`` bool.
    """
    spans = np.asarray(spans, dtype=np.float64)
    q, k = spans.shape[:2]
    x1, x2 = spans[..., 0], spans[..., 1]
    lengths = x2 - x1
    alive = np.arange(k)[None, :] < np.asarray(count)[:, None]
    keep = np.zeros((q, top_k), dtype=np.int64)
    kept = np.zeros((q, top_k), dtype=bool)
    rows = np.arange(q)
    for j in range(min(top_k, k)):
        first = alive.argmax(axis=1)                                   # first remaining
        has = alive[rows, first]
        keep[:, j], kept[:, j] = first, has
        inter = np.maximum(0.0, np.minimum(x2[rows, first][:, None], x2)
                           - np.maximum(x1[rows, first][:, None], x1))
        with np.errstate(divide="ignore", invalid="ignore"):
            ovr = inter / (lengths[rows, first][:, None] + lengths - inter)
        alive &= ovr <= thresh                                         # NaN drops too
        alive[rows, first] = False
    return keep, kept


def tan2d_iou(pred, gt) -> np.ndarray:
    """The release's ``iou``: ``max(0, inter) / max(0, hull)``, broadcasting ``(..., 2)``."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    ps, pe, gs, ge = pred[..., 0], pred[..., 1], gt[..., 0], gt[..., 1]
    inter = np.maximum(0.0, np.minimum(pe, ge) - np.maximum(ps, gs))
    union = np.maximum(0.0, np.maximum(pe, ge) - np.minimum(ps, gs))
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def tan2d_decode(spans, scores, valid, thresh: float, top_k: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank every candidate (:func:`tan2d_rank`), then NMS (:func:`tan2d_nms`).

    Returns:
        ``order (Q, K)`` the ranking, ``keep (Q, top_k)`` indices into K (not into the
        ranking) and ``kept (Q, top_k)`` bool.
    """
    spans = np.asarray(spans, dtype=np.float64)
    order = tan2d_rank(spans, scores, valid)
    ranked = np.take_along_axis(spans, order[..., None], axis=1)
    keep, kept = tan2d_nms(ranked, np.full(spans.shape[0], spans.shape[1]), thresh, top_k)
    return order, np.take_along_axis(order, keep, axis=1), kept


def tan2d_hits(pred, valid, gt, recall_at: Sequence[int], iou_thresholds: Sequence[float]
               ) -> tuple[np.ndarray, np.ndarray]:
    """Per-query hits ``(Q, len(m), len(n))`` and the top-1 IoU ``(Q,)``.

    Args:
        pred: ``(Q, K, 2)`` kept moments, best first. valid: ``(Q, K)`` bool (a prefix).
        gt: ``(Q, 2)`` ground truth in seconds.
    """
    pred = np.asarray(pred, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    gt = np.asarray(gt, dtype=np.float64)
    iou = tan2d_iou(pred, gt[:, None, :])                                # (Q, K), NaN-safe below
    iou = np.where(valid, iou, np.nan)
    ms = np.asarray(iou_thresholds, dtype=np.float64)
    above = iou[:, None, :] > ms[None, :, None]                          # NaN compares False
    first = np.cumsum(above, axis=2) > 0                                 # hit within the first n
    cols = np.minimum(np.asarray(recall_at, dtype=np.int64), pred.shape[1]) - 1
    hits = first[:, :, cols] if pred.shape[1] else np.zeros((len(gt), len(ms), len(cols)), bool)
    top1 = np.where(valid[:, 0], iou[:, 0], 0.0) if pred.shape[1] else np.zeros(len(gt))
    return hits, top1


def tan2d_metrics(pred, valid, gt, recall_at: Sequence[int], iou_thresholds: Sequence[float]
                  ) -> dict[str, float]:
    """``R{n}@{m}`` (hit iff IoU > m) and ``mIoU`` (mean top-1 IoU) as fractions."""
    hits, top1 = tan2d_hits(pred, valid, gt, recall_at, iou_thresholds)
    table = hits.mean(axis=0)                                            # (len(m), len(n))
    out = {recall_key(n, m): float(table[i, j]) for j, n in enumerate(recall_at)
           for i, m in enumerate(iou_thresholds)}
    out["mIoU"] = float(np.nan_to_num(top1).mean())
    return out

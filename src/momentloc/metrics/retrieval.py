"""R@n IoU=m, mIoU and discounted dR@n IoU=m over ranked predictions (common spec 5).

Pure NumPy, vectorized over queries, predictions and thresholds. Every value is a fraction in
[0, 1]; tables print percent. Keys: ``R1@0.5``, ``R5@0.7``, ``mIoU``, ``dR1@0.5``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from momentloc.spans import temporal_iou

# The union of the metric sets the papers report (common spec 5.4, [rec]).
DEFAULT_RECALL_AT: tuple[int, ...] = (1, 5)
DEFAULT_IOU_THRESHOLDS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7)


def threshold_key(m: float) -> str:
    """Text form of an IoU threshold in metric keys and files: 0.5 -> ``"0.5"``."""
    return f"{float(m):g}"


def recall_key(n: int, m: float, discounted: bool = False) -> str:
    """``R1@0.5`` (or ``dR1@0.5``)."""
    return f"{'d' if discounted else ''}R{int(n)}@{threshold_key(m)}"


def metric_keys(recall_at: Sequence[int], iou_thresholds: Sequence[float],
                miou: bool = True, discounted: bool = False) -> list[str]:
    """Keys in table order: R@n for every m, n by n, then mIoU, then the dR@n keys."""
    keys = [recall_key(n, m) for n in recall_at for m in iou_thresholds]
    if miou:
        keys.append("mIoU")
    if discounted:
        keys += [recall_key(n, m, True) for n in recall_at for m in iou_thresholds]
    return keys


def _check(pred_spans, pred_valid, gt_spans):
    pred = np.asarray(pred_spans, dtype=np.float64)
    gt = np.asarray(gt_spans, dtype=np.float64)
    if pred.ndim == 2 and pred.shape[0] == 0:
        pred = pred.reshape(0, 0, 2)
    if pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pred_spans must be (Q, K, 2), got shape {pred.shape}")
    valid = (np.ones(pred.shape[:2], dtype=bool) if pred_valid is None
             else np.asarray(pred_valid, dtype=bool))
    if valid.shape != pred.shape[:2]:
        raise ValueError(f"pred_valid must be {pred.shape[:2]}, got {valid.shape}")
    if gt.shape != (pred.shape[0], 2):
        raise ValueError(f"gt_spans must be ({pred.shape[0]}, 2), got {gt.shape}")
    if pred.shape[0] == 0:
        raise ValueError("no queries to evaluate")
    if pred.shape[1] == 0:  # no predictions at all: one invalid column keeps the code uniform
        pred, valid = np.zeros((pred.shape[0], 1, 2)), np.zeros((pred.shape[0], 1), dtype=bool)
    return pred, valid, gt


def compute_metrics(pred_spans, pred_valid, gt_spans,
                    recall_at: Sequence[int] = DEFAULT_RECALL_AT,
                    iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS,
                    iou_mode: str = "seconds", iou_cmp: str = "ge",
                    durations=None, discount: bool = True) -> dict[str, float]:
    """Recall at top n over IoU thresholds, mean IoU of the top-1, discounted recall.

    Definitions (common spec 5.2-5.3):

    - ``R{n}@{m}``: fraction of queries where at least one of the first ``n`` *valid*
      predictions (in the given order) has IoU >= m with the ground truth (> m with
      ``iou_cmp="gt"``). A query with fewer than n valid predictions uses the ones it has;
      one with none is a miss. IoU is compared as computed (no tolerance), as the reference
      evaluations do.
    - ``mIoU``: mean over queries of the IoU of the first valid prediction (0 when none).
    - ``dR{n}@{m}`` (only when ``durations`` is given and ``discount``): the discounted
      recall of Yuan et al., "A Closer Look at Temporal Sentence Grounding in Videos:
      Dataset and Metric" (2021). With times normalized by the duration T, each hit is
      weighted by how close its boundaries are to the ground truth's::

          score(q) = max over the first n valid predictions p of
                     [IoU(p, g) >= m] * (1 - |p_s - g_s| / T) * (1 - |p_e - g_e| / T)
          dR{n}@{m} = mean over queries of score(q)

      Each factor is clipped at 0 so a prediction outside the video cannot go negative.

    Args:
        pred_spans: ``(Q, K, 2)`` ranked predictions, best first (any unit; seconds by
            default, integer indices with ``iou_mode="inclusive_index"``).
        pred_valid: ``(Q, K)`` bool, False on padding (None: all valid).
        gt_spans: ``(Q, 2)`` ground truth in the same unit.
        recall_at / iou_thresholds: every (n, m) pair is reported.
        iou_mode: ``seconds`` or ``inclusive_index`` (see :func:`momentloc.spans.temporal_iou`).
        iou_cmp: ``ge`` or ``gt``.
        durations: ``(Q,)`` video lengths in the spans' unit, for dR.
        discount: report dR when durations are given.
    Returns:
        dict of fractions in [0, 1].
    Raises:
        ValueError: inconsistent shapes, no queries, unknown ``iou_cmp``.
    """
    pred, valid, gt = _check(pred_spans, pred_valid, gt_spans)
    if iou_cmp not in ("ge", "gt"):
        raise ValueError(f"unknown iou_cmp {iou_cmp!r} (ge, gt)")
    thresholds = np.asarray(iou_thresholds, dtype=np.float64)                 # (M,)
    iou = temporal_iou(pred, gt[:, None, :], iou_mode)                        # (Q, K)
    rank = np.cumsum(valid, axis=1)                                           # 1-based among valid
    if iou_cmp == "ge":
        passes = iou[None] >= thresholds[:, None, None]                       # (M, Q, K)
    else:
        passes = iou[None] > thresholds[:, None, None]
    passes &= valid[None]

    weight = None
    if durations is not None and discount:
        dur = np.asarray(durations, dtype=np.float64).reshape(-1)
        if dur.shape != (pred.shape[0],) or np.any(dur <= 0):
            raise ValueError(f"durations must be ({pred.shape[0]},) and positive")
        dist = np.abs(pred - gt[:, None, :]) / dur[:, None, None]             # (Q, K, 2)
        weight = np.prod(np.clip(1.0 - dist, 0.0, 1.0), axis=-1)              # (Q, K)

    out: dict[str, float] = {}
    for n in recall_at:
        within = rank <= n                                                    # (Q, K)
        hits = (passes & within[None]).any(axis=2).mean(axis=1)               # (M,)
        for m, h in zip(iou_thresholds, hits):
            out[recall_key(n, m)] = float(h)
    has_pred = valid.any(axis=1)
    top1 = np.argmax(valid, axis=1)                                           # first valid
    top1_iou = np.take_along_axis(iou, top1[:, None], axis=1)[:, 0]
    out["mIoU"] = float(np.where(has_pred, top1_iou, 0.0).mean())
    if weight is not None:
        for n in recall_at:
            within = rank <= n
            scores = np.where(passes & within[None], weight[None], 0.0).max(axis=2, initial=0.0)
            for m, s in zip(iou_thresholds, scores.mean(axis=1)):
                out[recall_key(n, m, True)] = float(s)
    return out

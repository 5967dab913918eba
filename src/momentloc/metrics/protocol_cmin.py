"""The CMIN-lineage evaluation (CMIN, CSMGAN, FIAN): the official procedure, reproduced exactly.

The lineage's code evaluates refined anchor boxes on the video's frame grid (inclusive frame
indices) with rules that differ from the common protocol (common spec 5-6) in ways that move
R@5 by several points:

- boxes are rounded with NumPy's round-half-to-even (2.5 -> 2, 3.5 -> 4), cast to int32, and
  only ``start < 0 -> 0`` and ``end >= n -> n - 1`` are clipped: starts past the end and ends
  before the start stay, so inverted boxes take part;
- temporal NMS runs once per recall IoU ``m`` at ``m - 0.05`` computed in float64
  (0.7 - 0.05 = 0.6499999999999999), visits boxes by descending score with ties going to
  the **larger** index, measures overlap on the integer boxes **without** +1 in the lengths
  (``inter / (len_i + len_j - inter)``, ``len = end - start``), drops a box unless its overlap is
  ``<=`` the threshold (0/0 is NaN and drops it) and runs until no box is left;
- a query is a hit at R@n, IoU m when one of the first n picks has the inclusive IoU
  ``(min(e) - max(s) + 1) / (max(e) - min(s) + 1)`` (0 when negative, or when the hull length
  is below -1e-5) **>=** m;
- the table is the float32 sum of the per-query 0/1 results divided by the number of queries.

Everything is vectorized over queries and boxes; NMS loops once per pick (all queries at
once), never over boxes. ``max_picks`` stops it early when only the first picks are needed.

The ground truth it scores against is on the same frame grid: :func:`ground_truth_frames`
gives each query's frames by the ``frames`` rule (the steps covering the seconds) or the
CSMGAN release's ``raw_frames`` rule (:func:`release_frame_labels`, from the video's raw
feature count), the one function both the training targets and the evaluation use.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

# The official thresholds and cut-offs (criteria.compute_IoU_recall).
CMIN_IOU_THRESHOLDS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7)
CMIN_RECALL_AT: tuple[int, ...] = (1, 5)
NMS_MARGIN = 0.05


def round_clip_boxes(boxes, num_frames) -> np.ndarray:
    """``(..., P, 2)`` float frame boxes -> int32 boxes as the official loop makes them.

    ``np.round`` (half to even) then int32; starts below 0 become 0 and ends at or past
    ``num_frames`` become ``num_frames - 1`` (``num_frames`` broadcasts over the leading axes,
    e.g. ``(Q,)`` real frames per query). Nothing else is clipped.
    """
    out = np.round(np.asarray(boxes)).astype(np.int32)
    n = np.asarray(num_frames, dtype=np.int64)[..., None]
    s, e = out[..., 0], out[..., 1]
    out[..., 0] = np.where(s < 0, 0, s)
    out[..., 1] = np.where(e >= n, n - 1, e)
    return out


def nms_thresholds(iou_thresholds: Sequence[float]) -> np.ndarray:
    """float64 ``m - 0.05`` for each m (not the decimal literal: 0.7 -> 0.6499999999999999)."""
    return np.asarray(iou_thresholds, dtype=np.float64) - NMS_MARGIN


def score_order(scores) -> np.ndarray:
    """``(Q, P)`` indices by descending score, equal scores by descending index (the official
    stable ascending sort read from its end)."""
    s = np.asarray(scores)
    p = s.shape[-1]
    return p - 1 - np.argsort(-s[..., ::-1], axis=-1, kind="stable")


def nms(scores, boxes, thresh: float, max_picks: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The lineage's temporal NMS for ``Q`` queries at once.

    Args:
        scores: ``(Q, P)``. boxes: ``(Q, P, 2)`` integer boxes (from :func:`round_clip_boxes`).
        thresh: overlap threshold (a box survives iff its overlap is ``<=`` it).
        max_picks: stop after this many picks (None: until no box is left, as the official code).
    Returns:
        ``picks (Q, M)`` int64 box indices, best first, -1 padded, and ``num_picks (Q,)``.
    """
    scores = np.asarray(scores)
    boxes = np.asarray(boxes)
    q, p = scores.shape
    if boxes.shape != (q, p, 2):
        raise ValueError(f"boxes must be {(q, p, 2)}, got {boxes.shape}")
    order = score_order(scores)
    rows = np.arange(q)[:, None]
    s = boxes[..., 0].astype(np.float64)[rows, order]                   # (Q, P) in visit order
    e = boxes[..., 1].astype(np.float64)[rows, order]
    length = e - s
    alive = np.ones((q, p), dtype=bool)
    limit = p if max_picks is None else min(p, max_picks)
    picks = np.full((q, limit), -1, dtype=np.int64)
    num = np.zeros(q, dtype=np.int64)
    q_idx = np.arange(q)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(limit):
            has = alive.any(1)
            if not has.any():
                break
            first = alive.argmax(1)                                      # (Q,) next pick
            picks[has, j] = order[q_idx[has], first[has]]
            num += has
            si, ei, li = (x[q_idx, first][:, None] for x in (s, e, length))
            inter = np.maximum(0.0, np.minimum(ei, e) - np.maximum(si, s))
            overlap = inter / (li + length - inter)                      # NaN at 0/0: dropped
            alive &= overlap <= thresh
            alive[q_idx, first] = False
    if max_picks is None:
        picks = picks[:, :int(num.max(initial=0))]
    return picks, num


def inclusive_iou(gt, boxes) -> np.ndarray:
    """``criteria.calculate_IoU`` of ``(Q, 2)`` gt with ``(Q, K, 2)`` boxes, inclusive frames."""
    gt = np.asarray(gt)[:, None, :]
    boxes = np.asarray(boxes)
    lo = np.minimum(gt[..., 0], boxes[..., 0])
    hi = np.maximum(gt[..., 1], boxes[..., 1])
    inter = np.minimum(gt[..., 1], boxes[..., 1]) - np.maximum(gt[..., 0], boxes[..., 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = (inter + 1.0) / (hi - lo + 1.0)
    iou = np.where((hi - lo) < -1e-5, 0.0, iou)
    return np.where(iou >= 0.0, iou, 0.0)


def hits(picks, num_picks, boxes, gt, m: float, recall_at: Sequence[int]) -> np.ndarray:
    """``(Q, len(recall_at))`` bool: one of the first n picks reaches IoU ``>= m``."""
    picks = np.asarray(picks)
    n_max = max(recall_at)
    top = picks[:, :n_max]
    if top.shape[1] < n_max:
        top = np.pad(top, ((0, 0), (0, n_max - top.shape[1])), constant_values=-1)
    boxes = np.asarray(boxes)
    chosen = np.take_along_axis(boxes, np.maximum(top, 0)[..., None], axis=1)   # (Q, n, 2)
    ok = (inclusive_iou(gt, chosen) >= m) & (top >= 0)
    rank = np.arange(n_max)[None, :]
    return np.stack([(ok & (rank < n)).any(1) for n in recall_at], axis=1)


def evaluate(scores, float_boxes, gt, num_frames, iou_thresholds: Sequence[float] = CMIN_IOU_THRESHOLDS,
             recall_at: Sequence[int] = CMIN_RECALL_AT, full_picks: bool = False) -> dict:
    """The official ``Runner.eval_new`` evaluation of ``Q`` queries.

    Args:
        scores: ``(Q, P)`` box scores. float_boxes: ``(Q, P, 2)`` refined boxes in frames.
        gt: ``(Q, 2)`` integer ground truth (inclusive frames). num_frames: ``(Q,)`` or scalar.
        full_picks: run every NMS to exhaustion (the official pick lists); else stop after
            ``max(recall_at)`` picks (the same hits).
    Returns:
        ``boxes_int (Q, P, 2)``, ``picks`` (list per threshold of ``(Q, M)``), ``num_picks``
        ``(Q, len(m))``, ``per_query (Q, len(n), len(m))`` float32 0/1, ``sum (len(n), len(m))``
        float32, ``count`` and ``recall`` (``sum / count``, float64).
    """
    scores = np.asarray(scores)
    q = scores.shape[0]
    boxes = round_clip_boxes(float_boxes, np.broadcast_to(np.asarray(num_frames), (q,)))
    per_query = np.zeros((q, len(recall_at), len(iou_thresholds)), dtype=np.float32)
    picks, num_picks = [], np.zeros((q, len(iou_thresholds)), dtype=np.int64)
    for i, (m, thresh) in enumerate(zip(iou_thresholds, nms_thresholds(iou_thresholds))):
        pk, n = nms(scores, boxes, thresh, None if full_picks else max(recall_at))
        picks.append(pk)
        num_picks[:, i] = n
        per_query[:, :, i] = hits(pk, n, boxes, gt, float(m), recall_at)
    total = per_query.sum(0, dtype=np.float32)
    return {"boxes_int": boxes, "picks": picks, "num_picks": num_picks, "per_query": per_query,
            "sum": total, "count": q, "recall": total.astype(np.float64) / max(q, 1)}


def recall_from_hits(per_query) -> np.ndarray:
    """Official table from ``(Q, ...)`` 0/1 results: the float32 sum over queries / Q (float64)."""
    per_query = np.asarray(per_query, dtype=np.float32)
    return per_query.sum(0, dtype=np.float32).astype(np.float64) / max(per_query.shape[0], 1)


def frame_boxes_recall(boxes, valid, gt, m: float, recall_at: Sequence[int]) -> np.ndarray:
    """``(Q, len(recall_at))`` bool hits of already picked integer boxes ``(Q, k, 2)`` (best
    first, ``valid`` ``(Q, k)``) against ``(Q, 2)`` integer ground truth (the rule of
    :func:`hits`, for boxes stored in prediction lines)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(len(gt), -1, 2)
    valid = np.asarray(valid, dtype=bool).reshape(boxes.shape[:2])
    k = max(max(recall_at), boxes.shape[1])
    if boxes.shape[1] < k:
        boxes = np.pad(boxes, ((0, 0), (0, k - boxes.shape[1]), (0, 0)))
        valid = np.pad(valid, ((0, 0), (0, k - valid.shape[1])))
    ok = (inclusive_iou(gt, boxes) >= m) & valid
    rank = np.arange(k)[None, :]
    return np.stack([(ok & (rank < n)).any(1) for n in recall_at], axis=1)


# -- the ground-truth frames ---------------------------------------------------------------
FRAME_RULES = ("frames", "raw_frames")


def feature_rows(meta: Sequence[dict], spans: torch.Tensor, durations: torch.Tensor,
                 lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each moment on its video's raw feature rows: ``(B, 2)`` float64 ``meta["span_rows"]``
    and ``(B,)`` long ``meta["num_features"]`` (set by datasets read from a feature store, in
    float64 from the annotation). A sample without them counts its ``lengths`` real steps as
    its rows (features given at the model's resolution: random benchmark batches, tests) and
    places the moment from the seconds ``spans`` ``(B, 2)`` over ``durations`` ``(B,)``."""
    steps = torch.as_tensor(lengths).reshape(-1).tolist()
    spans = torch.as_tensor(spans).detach().cpu().double()
    durations = torch.as_tensor(durations).detach().cpu().double().reshape(-1)
    counts, rows = [], []
    for b, n in enumerate(steps):
        m_b = meta[b] if b < len(meta) else {}
        m = m_b.get("num_features", int(n))
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ValueError(f"meta['num_features'] of query {m_b.get('query_id', b)!r} must "
                             f"be a positive number of feature rows, got {m!r}")
        counts.append(m)
        rows.append(m_b["span_rows"] if "span_rows" in m_b else
                    (spans[b] * (m / durations[b].clamp_min(1e-12))).tolist())
    return (torch.tensor(rows, dtype=torch.float64).reshape(-1, 2),
            torch.tensor(counts, dtype=torch.long))


def release_frame_labels(rows: torch.Tensor, num_rows: torch.Tensor, lengths: torch.Tensor,
                         num_steps: int) -> torch.Tensor:
    """``(B, 2)`` float64 ``[start, end + 1)``: the CSMGAN release's inclusive ground-truth
    steps of moments at ``rows`` (``(B, 2)`` positions on the M = ``num_rows`` raw feature
    rows, ``seconds * M / duration``; see :func:`feature_rows`).

    Raw frames ``trunc(rows)`` (the end clipped to ``M - 1``, the start to at most the end);
    the n = ``lengths`` steps resample raw frames ``index_i = trunc(i (M - 1) / (n - 1))``
    (the last is ``M - 1``); the start is the first step with ``index_i >= start``, the end
    the last with ``index_i <= end``, or ``n - 1`` when the raw end frame equals ``n - 1``
    (the release compares it with the resampled length); an end before the start moves the
    start to it. Steps from n to ``num_steps`` are padding.
    """
    f64 = torch.float64
    m, n = num_rows.to(f64), lengths.to(f64)
    raw = torch.trunc(rows.to(f64))
    end = torch.minimum(raw[:, 1], m - 1).clamp_min(0)
    start = torch.minimum(raw[:, 0], end).clamp_min(0)
    i = torch.arange(num_steps, device=rows.device, dtype=f64)[None]           # (1, T)
    index = torch.trunc(i * ((m - 1) / (n - 1).clamp_min(1))[:, None])         # (B, T)
    index = torch.where(i == (n - 1)[:, None], (m - 1)[:, None], index)
    index = torch.where(i < n[:, None], index, torch.inf)                       # padded steps
    first = (index < start[:, None]).sum(1).to(f64)
    last = torch.where(end == n - 1, n - 1, (index <= end[:, None]).sum(1).to(f64) - 1)
    return torch.stack([torch.minimum(first, last), last + 1], -1)


def ground_truth_frames(spans: torch.Tensor, durations: torch.Tensor, lengths: torch.Tensor,
                        meta: Sequence[dict] = (), rule: str = "frames",
                        num_steps: int | None = None) -> torch.Tensor:
    """``(B, 2)`` float64 ``[start, end + 1)``: each query's integer ground-truth steps.

    Args:
        spans: ``(B, 2)`` seconds. durations: ``(B,)`` seconds. lengths: ``(B,)`` real steps.
        meta: per query, ``num_features`` and ``span_rows`` (``raw_frames`` reads them).
        rule: ``frames``: the steps covering ``[s n/T, e n/T)`` (computed in the dtype of
            ``spans``); ``raw_frames``: the release's labels from the raw feature count
            (:func:`release_frame_labels`, a CSMGAN model's ``target_grid: raw_frames``).
        num_steps: the padded step grid (default ``max(lengths)``).
    """
    from momentloc.heads.anchors import frame_ground_truth, ground_truth_steps

    if rule not in FRAME_RULES:
        raise ValueError(f"unknown ground-truth frame rule {rule!r} ({', '.join(FRAME_RULES)})")
    spans = torch.as_tensor(spans)
    lengths = torch.as_tensor(lengths).reshape(-1)
    if rule == "frames":
        return frame_ground_truth(ground_truth_steps(spans, torch.as_tensor(durations),
                                                     lengths)).double()
    rows, counts = feature_rows(meta, spans, durations, lengths)
    grid = int(lengths.max()) if num_steps is None else int(num_steps)
    return release_frame_labels(rows.to(spans.device), counts.to(spans.device),
                                lengths.to(spans.device), grid)

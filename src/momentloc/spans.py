"""Span conversions, temporal IoU and temporal NMS: the only place they live.

Spans are ``(start, end)`` pairs in seconds at every public boundary. Time step ``i`` of a
video resampled to ``num_clips`` steps covers ``[i*T/N, (i+1)*T/N)`` (common spec 3.1).
Functions accept NumPy arrays or torch tensors and return the same kind.
"""

from __future__ import annotations

import numpy as np
import torch


def _lib(x):
    return torch if isinstance(x, torch.Tensor) else np


def temporal_iou(a, b, mode: str = "seconds"):
    """IoU of spans ``a`` and ``b`` with broadcasting over leading axes.

    Args:
        a, b: ``(..., 2)`` spans; shapes broadcast.
        mode: ``"seconds"`` (continuous) or ``"inclusive_index"``, the CMIN/CSMGAN legacy
            protocol on integer indices: ``(min(e)-max(s)+1) / (max(e)-min(s)+1)``.
    Returns:
        ``(...)`` IoU in [0, 1]. A zero-length span has IoU 0 with everything but an identical
        point (IoU 1) in ``seconds`` mode.
    """
    xp = _lib(a if isinstance(a, torch.Tensor) else b)
    s1, e1 = a[..., 0], a[..., 1]
    s2, e2 = b[..., 0], b[..., 1]
    extra = 1.0 if mode == "inclusive_index" else 0.0
    if mode not in ("seconds", "inclusive_index"):
        raise ValueError(f"unknown IoU mode {mode!r} (seconds, inclusive_index)")
    inter = xp.clip(xp.minimum(e1, e2) - xp.maximum(s1, s2) + extra, 0, None)
    union = xp.maximum(e1, e2) - xp.minimum(s1, s2) + extra
    if xp is torch:
        same = (s1 == s2) & (e1 == e2)
        iou = torch.where(union > 0, inter / union.clamp_min(1e-12), same.to(inter.dtype))
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, inter / np.maximum(union, 1e-12),
                           ((s1 == s2) & (e1 == e2)).astype(np.float64))
    return iou


def pairwise_iou(a, b, mode: str = "seconds"):
    """``(N, 2)`` x ``(M, 2)`` -> ``(N, M)`` IoU matrix."""
    return temporal_iou(a[:, None, :], b[None, :, :], mode)


def seconds_to_indices(spans, duration, num_clips: int):
    """Seconds -> inclusive clip indices ``(i_s, i_e)`` (integers), common spec 3.1.

    Args:
        spans: ``(..., 2)`` seconds. duration: ``(...)`` or scalar seconds.
    """
    xp = _lib(spans)
    dur = duration[..., None] if hasattr(duration, "shape") and np.ndim(duration) else duration
    x = spans / dur * num_clips
    i_s = xp.clip(xp.floor(x[..., 0]), 0, num_clips - 1)
    i_e = xp.clip(xp.maximum(i_s, xp.ceil(x[..., 1]) - 1), 0, num_clips - 1)
    out = xp.stack([i_s, i_e], -1) if xp is np else torch.stack([i_s, i_e], -1)
    return out.astype(np.int64) if xp is np else out.long()


def indices_to_seconds(index_spans, duration, num_clips: int):
    """Inclusive (possibly fractional) clip indices ``(a, b)`` -> seconds, clipped to the video.

    ``start = clip(a, 0, N) * T / N``, ``end = clip(b + 1, 0, N) * T / N``.
    """
    xp = _lib(index_spans)
    dur = duration[..., None] if hasattr(duration, "shape") and np.ndim(duration) else duration
    idx = index_spans.astype(np.float64) if xp is np else index_spans.float()
    bounds = xp.stack([idx[..., 0], idx[..., 1] + 1], -1) if xp is np else torch.stack(
        [idx[..., 0], idx[..., 1] + 1], -1)
    out = xp.clip(bounds, 0, num_clips) * dur / num_clips
    # A refined span may come out reversed; order it so start <= end.
    lo, hi = xp.minimum(out[..., 0], out[..., 1]), xp.maximum(out[..., 0], out[..., 1])
    return xp.stack([lo, hi], -1) if xp is np else torch.stack([lo, hi], -1)


def batched_nms(spans: torch.Tensor, scores: torch.Tensor, thresh: float, top_k: int,
                valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy temporal NMS for a batch of candidate lists, vectorized over batch and candidates.

    Follows common spec 6: take the best remaining candidate, suppress every other whose IoU
    with it is above ``thresh``, repeat until ``top_k`` are kept. Loops ``top_k`` times only.

    Args:
        spans: ``(B, K, 2)`` candidates (any unit). scores: ``(B, K)``.
        valid: ``(B, K)`` bool, candidates to consider (default all).
    Returns:
        ``keep`` ``(B, top_k)`` long indices into K and ``kept`` ``(B, top_k)`` bool (False
        where fewer than ``top_k`` candidates survived).
    """
    bsz, k = scores.shape
    alive = torch.ones_like(scores, dtype=torch.bool) if valid is None else valid.clone()
    keep = torch.zeros(bsz, top_k, dtype=torch.long, device=scores.device)
    kept = torch.zeros(bsz, top_k, dtype=torch.bool, device=scores.device)
    neg = torch.finfo(scores.dtype).min
    rows = torch.arange(bsz, device=scores.device)
    for j in range(min(top_k, k)):
        masked = scores.masked_fill(~alive, neg)
        best = masked.argmax(dim=1)                                  # (B,)
        has = alive[rows, best]
        keep[:, j] = best
        kept[:, j] = has
        chosen = spans[rows, best]                                   # (B, 2)
        iou = temporal_iou(spans, chosen[:, None, :])                # (B, K)
        alive &= ~(iou > thresh)
        alive[rows, best] = False
    return keep, kept


def temporal_nms(spans, scores, thresh: float, top_k: int) -> np.ndarray:
    """NMS for one candidate list; returns indices of the kept candidates, best first."""
    s = torch.as_tensor(np.asarray(spans, dtype=np.float64))[None]
    sc = torch.as_tensor(np.asarray(scores, dtype=np.float64))[None]
    if s.shape[1] == 0:
        return np.zeros(0, dtype=np.int64)
    keep, kept = batched_nms(s, sc, thresh, top_k)
    return keep[0][kept[0]].numpy()

"""Losses of the multi-scale anchor models (CSMGAN, FIAN): IoU alignment and offset regression.

All take per-anchor tensors of shape ``(B, K)`` (``(B, K, 2)`` for offsets) and a ``(B, K)``
bool mask of the anchors that take part (legal anchors of real videos).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from momentloc.losses.common import masked_soft_bce


def iou_alignment_loss(logits: torch.Tensor, iou: torch.Tensor, mask: torch.Tensor,
                       normalize: Literal["legal", "all"] = "legal") -> torch.Tensor:
    """CSMGAN eq. 17: soft-label BCE of ``sigmoid(logits)`` against the IoU targets.

    ``normalize="legal"`` averages over every masked anchor of the batch; ``"all"`` sums the
    masked anchors' terms and divides by all ``B x K`` anchors (the CSMGAN release, whose
    masked-out anchors enter its mean with a zero term).
    """
    if normalize == "legal":
        return masked_soft_bce(logits, iou, mask, from_logits=True)
    bce = F.binary_cross_entropy_with_logits(logits, iou, reduction="none")
    return (bce * mask.to(bce.dtype)).sum() / max(bce.numel(), 1)


def balanced_alignment_loss(logits: torch.Tensor, iou: torch.Tensor, mask: torch.Tensor,
                            positive: torch.Tensor) -> torch.Tensor:
    """FIAN eq. 16: the soft-label BCE averaged over positives and over negatives separately,
    then summed; per video, averaged over the batch.

    A video with no positive anchor contributes its negative term only.

    Args:
        logits, iou: ``(B, K)``. mask: ``(B, K)`` anchors that take part.
        positive: ``(B, K)`` bool (IoU > τ); the negatives are ``mask & ~positive``.
    """
    bce = F.binary_cross_entropy_with_logits(logits, iou, reduction="none")
    pos = (mask & positive).to(bce.dtype)
    neg = (mask & ~positive).to(bce.dtype)
    per_video = ((bce * pos).sum(1) / pos.sum(1).clamp_min(1.0)
                 + (bce * neg).sum(1) / neg.sum(1).clamp_min(1.0))
    return per_video.mean()


def offset_loss(pred: torch.Tensor, target: torch.Tensor, positive: torch.Tensor,
                per_video: bool = False, coords: Literal["sum", "mean"] = "sum") -> torch.Tensor:
    """Boundary loss (CSMGAN eq. 18, FIAN eq. 17): ``R1(δs - δs*) + R1(δe - δe*)`` with the
    smooth L1 ``R1`` (common spec B4), averaged over positive anchors.

    Args:
        pred, target: ``(B, K, 2)`` offsets in steps. positive: ``(B, K)`` bool.
        per_video: average over each video's positives and then over the videos that have
            any (FIAN); else over all positives of the batch at once (CSMGAN).
        coords: ``sum`` the start and end terms of an anchor (the equations) or take their
            ``mean`` (the CSMGAN release's SmoothL1 mean over positives x 2).
    Returns:
        scalar; 0 (still attached to ``pred``) when there is no positive.
    """
    r1 = F.smooth_l1_loss(pred, target.to(pred.dtype), reduction="none", beta=1.0)
    r1 = r1.sum(-1) if coords == "sum" else r1.mean(-1)
    pos = positive.to(r1.dtype)
    if not per_video:
        return (r1 * pos).sum() / pos.sum().clamp_min(1.0)
    count = pos.sum(1)
    per = (r1 * pos).sum(1) / count.clamp_min(1.0)
    has = (count > 0).to(r1.dtype)
    return (per * has).sum() / has.sum().clamp_min(1.0)


def weighted_anchor_bce(logits: torch.Tensor, iou: torch.Tensor, mask: torch.Tensor,
                        threshold: float = 0.5) -> torch.Tensor:
    """TGN-style loss: binary labels ``IoU > threshold``, positives weighted by the batch's
    negative-to-positive ratio so that both classes weigh alike; mean over masked anchors."""
    labels = (iou > threshold) & mask
    m = mask.to(logits.dtype)
    n_pos = labels.sum().to(logits.dtype)
    n_neg = m.sum() - n_pos
    w_pos = (n_neg / n_pos.clamp_min(1.0)).clamp_min(1.0)
    weight = torch.where(labels, w_pos, torch.ones_like(logits)) * m
    bce = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none")
    return (bce * weight).sum() / m.sum().clamp_min(1.0)

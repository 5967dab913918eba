"""Scaled-IoU BCE of 2D-TAN and LGN (common spec 8.2 step 7; LGN eqs. 4-5)."""

from __future__ import annotations

import torch

from momentloc.losses.common import masked_soft_bce


def scaled_iou_targets(ious: torch.Tensor, tmin: float, tmax: float) -> torch.Tensor:
    """``y = clamp((o - tmin) / (tmax - tmin), 0, 1)``: 0 below tmin, 1 above tmax, linear between.

    LGN's eq. 4 prints ``tmax - o`` as the denominator; the min-max form is the one its text
    describes (lgn.md A5).
    """
    if not tmax > tmin:
        raise ValueError(f"scaled IoU needs tmax > tmin, got tmin={tmin}, tmax={tmax}")
    return ((ious - tmin) / (tmax - tmin)).clamp(0.0, 1.0)


def bce_rescale_loss(logits: torch.Tensor, ious: torch.Tensor, mask: torch.Tensor,
                     tmin: float, tmax: float) -> torch.Tensor:
    """BCE between ``sigmoid(logits)`` and the scaled IoU, summed over valid cells / #valid.

    The mean runs over every valid cell of the batch together, as in 2D-TAN. Computed from
    logits (same value as BCE on the sigmoid, without its saturation at 0 and 1).

    Args:
        logits: ``(B, N, N)`` cell scores before the sigmoid. ious: ``(B, N, N)`` IoU of each
            cell with the ground truth. mask: ``(B, N, N)`` bool valid cells.
        tmin, tmax: the IoU rescaling bounds.
    Returns:
        scalar loss.
    """
    return masked_soft_bce(logits, scaled_iou_targets(ious, tmin, tmax), mask, from_logits=True)

"""Loss pieces used by several families."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_soft_bce(scores: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None,
                    from_logits: bool = True, eps: float = 1e-7) -> torch.Tensor:
    """BCE with soft targets averaged over the entries where ``mask`` is True (common spec B5).

    ``-(y log p + (1 - y) log(1 - p))``. Used by the scaled-IoU loss of 2D-TAN/LGN and the
    IoU-weighted alignment loss of the anchor models.

    Args:
        scores: logits (``from_logits``) or probabilities, any shape.
        targets: soft labels in [0, 1], same shape. mask: bool, same shape (default all).
    Returns:
        scalar mean over masked entries (0 when none).
    """
    if from_logits:
        loss = F.binary_cross_entropy_with_logits(scores, targets, reduction="none")
    else:
        p = scores.clamp(eps, 1 - eps)
        loss = -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p))
    if mask is None:
        return loss.mean()
    m = mask.to(loss.dtype)
    return (loss * m).sum() / m.sum().clamp_min(1.0)

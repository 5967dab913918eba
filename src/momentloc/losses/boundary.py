"""Losses of boundary-classification models (CI-MHA): start/end NLL and segmentation BCE."""

from __future__ import annotations

import torch

from momentloc.losses.common import masked_soft_bce


def boundary_nll(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of one-hot targets under a distribution over time.

    ``-log P[target]`` averaged over the batch (CI-MHA: "the loss function is negative
    log-likelihood; the ground-truth labels are two sparse one-hot vectors").

    Args:
        log_probs: ``(B, T)`` log-probabilities over time (padded steps already masked, e.g.
            by :func:`momentloc.heads.boundary.masked_log_softmax`).
        target: ``(B,)`` long indices of the true start (or end) step.
    Returns:
        scalar.
    """
    return -log_probs.gather(1, target[:, None].long()).squeeze(1).mean()


def segmentation_bce(logits: torch.Tensor, inside: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Moment segmentation loss (CI-MHA eqs. 15-16): BCE of ``sigmoid(logits)`` against the
    inside/outside labels, averaged over real steps of the batch.

    Args:
        logits: ``(B, T)``. inside: ``(B, T)`` float labels in {0, 1}. mask: ``(B, T)`` bool.
    """
    return masked_soft_bce(logits, inside, mask, from_logits=True)

"""Masked reductions: padded positions never take part (common spec 1)."""

from __future__ import annotations

import torch

NEG = -1e30  # finite: a fully masked row yields a uniform softmax instead of NaN


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor | None, dim: int = -1) -> torch.Tensor:
    """Softmax over ``dim`` with ``mask`` (broadcastable, True = keep); masked entries get 0."""
    # A mask without a masked entry changes nothing (checked on CPU only: on a GPU the check
    # would wait for the device).
    if mask is None or (mask.device.type == "cpu" and bool(mask.all())):
        return torch.softmax(logits, dim=dim)
    logits = logits.masked_fill(~mask, NEG)
    return torch.softmax(logits, dim=dim) * mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    """Mean of ``x`` over ``dim`` skipping masked entries. ``mask`` has ``x``'s shape minus the
    feature axis, e.g. x ``(B, T, D)``, mask ``(B, T)``, dim 1."""
    if mask is None:
        return x.mean(dim)
    m = mask.to(x.dtype).unsqueeze(-1)
    return (x * m).sum(dim) / m.sum(dim).clamp_min(1.0)


def masked_max(x: torch.Tensor, mask: torch.Tensor | None, dim: int) -> torch.Tensor:
    """Max of ``x`` over ``dim`` skipping masked entries (mask as in :func:`masked_mean`)."""
    if mask is None:
        return x.amax(dim)
    return x.masked_fill(~mask.unsqueeze(-1), NEG).amax(dim)

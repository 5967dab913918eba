"""Losses of regression models (CMA): boundary regression, temporal attention, phrase diversity."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def task_specific(x: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """CMA's task-specific regression loss f(x), element-wise (eq. 24).

    ``f(x) = alpha x^2`` for ``|x| < beta``, ``2 alpha beta |x| - alpha beta^2`` otherwise:
    quadratic near zero, linear beyond ``beta``, continuous with a continuous slope at
    ``|x| = beta``. ``alpha = 0.5, beta = 1`` is exactly Smooth L1 (common spec B4).
    """
    if alpha <= 0 or beta <= 0:
        raise ValueError(f"task-specific loss needs alpha > 0 and beta > 0, got {alpha}, {beta}")
    ax = x.abs()
    return torch.where(ax < beta, alpha * x * x, 2 * alpha * beta * ax - alpha * beta * beta)


def boundary_regression(pred: torch.Tensor, target: torch.Tensor, kind: str = "task",
                        alpha: float = 1.0, beta: float = 1.0) -> torch.Tensor:
    """Regression loss of normalized ``(start, end)`` pairs: summed over the two boundaries,
    averaged over the batch (CMA spec A9).

    Args:
        pred, target: ``(B, 2)`` normalized times.
        kind: ``"task"`` (eq. 24 with ``alpha``, ``beta``) or ``"smooth_l1"`` (eq. 23, beta 1).
    Returns:
        scalar.
    """
    if kind == "task":
        per = task_specific(pred - target, alpha, beta)
    elif kind == "smooth_l1":
        per = F.smooth_l1_loss(pred, target, reduction="none", beta=1.0)
    else:
        raise ValueError(f"unknown regression loss {kind!r} (task, smooth_l1)")
    return per.sum(-1).mean()


def temporal_attention_loss(weights: torch.Tensor, inside: torch.Tensor, eps: float = 1e-8
                            ) -> torch.Tensor:
    """``L_ta = -sum_i 1(i) log a_i / sum_i 1(i)`` (CMA eq. 25, after ABLR), batch mean.

    Args:
        weights: ``(B, T)`` attention over time (rows sum to 1).
        inside: ``(B, T)`` bool, the clips inside the ground truth (at least one per row).
    """
    m = inside.to(weights.dtype)
    per = -(m * torch.log(weights + eps)).sum(1) / m.sum(1).clamp_min(1.0)
    return per.mean()


def diversity_loss(attn: torch.Tensor) -> torch.Tensor:
    """``L_sd = ||A A^T - I||_F^2`` (CMA eq. 26, after Lin et al. 2017), batch mean.

    Args:
        attn: ``(B, k, L)`` phrase attention over words (padded words already zero).
    Returns:
        scalar; zero when the k rows are orthonormal (e.g. one-hot on distinct words).
    """
    k = attn.shape[1]
    gram = attn @ attn.transpose(1, 2)
    eye = torch.eye(k, device=attn.device, dtype=attn.dtype)
    return ((gram - eye[None]) ** 2).sum((1, 2)).mean()

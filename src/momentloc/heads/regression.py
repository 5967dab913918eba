"""Regression heads: attention pooling over time, then normalized (start, end) in [0, 1].

The head owns its target encoding: spans in seconds become normalized times ``t = tau / T``
(CMA eq. 22), and the clips inside the ground truth become the target of the temporal
attention loss (CMA eq. 25).
"""

from __future__ import annotations

import torch
from torch import nn

from momentloc.models.layers import MLP, masked_softmax


class AttentionPooling(nn.Module):
    """ABLR-style temporal attention pooling (CMA eqs. 17-19).

    ``B = tanh(F W_b)``, ``a = softmax_t(B u)`` (padded steps masked), ``f = sum_t a_t F_t``.

    Forward:
        x ``(B, T, d)``, mask ``(B, T)`` bool.
    Returns:
        ``pooled (B, d)`` and ``weights (B, T)`` (zero on padded steps, summing to 1).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.score = nn.Linear(dim, 1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.score(torch.tanh(self.proj(x))).squeeze(-1)          # (B, T)
        weights = masked_softmax(logits, mask, dim=-1)
        return torch.einsum("bt,btd->bd", weights, x), weights


class BoundaryRegressor(nn.Module):
    """``(t_s, t_e) = sigmoid(MLP(f))`` (CMA eq. 20): normalized start and end in [0, 1].

    Returns ``(B, 2)``; nothing forces ``t_s <= t_e`` here, :func:`normalized_to_seconds`
    orders them.
    """

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0):
        super().__init__()
        self.mlp = MLP([dim, hidden, 2], dropout=dropout)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(pooled))


def normalized_targets(spans: torch.Tensor, durations: torch.Tensor) -> torch.Tensor:
    """``(B, 2)`` seconds -> ``(B, 2)`` normalized times ``tau / T`` clipped to [0, 1]."""
    return (spans.float() / durations.float().clamp_min(1e-6)[:, None]).clamp(0.0, 1.0)


def normalized_to_seconds(pred: torch.Tensor, durations: torch.Tensor) -> torch.Tensor:
    """``(B, 2)`` normalized (start, end), possibly reversed -> ``(B, 2)`` seconds.

    A reversed pair is swapped (CMA spec A8); both ends are clipped to ``[0, duration]``.
    """
    p = pred.clamp(0.0, 1.0)
    lo, hi = p.min(-1).values, p.max(-1).values
    return torch.stack([lo, hi], -1) * durations.float()[:, None]


def inside_clips(spans: torch.Tensor, durations: torch.Tensor, video_mask: torch.Tensor
                 ) -> torch.Tensor:
    """``(B, T)`` bool: real clips whose centre lies inside the ground truth (CMA spec A11).

    Clip ``i`` of a video with ``M`` real clips has its centre at ``(i + 0.5) T / M``. A span
    too short to hold any centre marks the clip that contains its midpoint instead, so every
    sample has at least one target clip.
    """
    t = video_mask.shape[1]
    real = video_mask.sum(1).clamp_min(1).to(torch.float32)                    # (B,)
    step = durations.float() / real                                           # seconds per clip
    centres = (torch.arange(t, device=spans.device, dtype=torch.float32)[None] + 0.5) * step[:, None]
    s, e = spans[:, 0:1].float(), spans[:, 1:2].float()
    inside = (centres >= s) & (centres <= e) & video_mask
    mid = ((s + e)[:, 0] / 2 / step.clamp_min(1e-6)).floor().long()
    mid = torch.minimum(mid.clamp_min(0), (real.long() - 1).clamp_min(0))
    fallback = torch.arange(t, device=spans.device)[None] == mid[:, None]
    empty = ~inside.any(1, keepdim=True)
    return torch.where(empty, fallback & video_mask, inside)

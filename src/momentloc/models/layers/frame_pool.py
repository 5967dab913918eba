"""Clip feature pooling of 2D-TAN (``FrameAvgPool``), shared by 2D-TAN and LGN."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FrameAvgPool(nn.Module):
    """``Conv1d(D_in, C, 1)`` + ReLU, then average pooling of ``kernel_size`` steps to one clip.

    Common spec 8.2 step 1: 256 input steps become N = 256 / kernel_size map clips. The
    average skips padded steps, so a partly padded window averages its real steps only, and a
    fully padded window gives a zero clip marked invalid.

    The two halves are public so that a model can act between them (LGN's early modulation
    of the projected activations): ``pool(project(x), mask)`` is ``forward(x, mask)``.

    Args:
        input_dim: D_in, clip feature width. hidden_dim: C. kernel_size: steps per clip
            (kernel = stride).
    """

    def __init__(self, input_dim: int, hidden_dim: int, kernel_size: int):
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
        self.kernel_size = kernel_size
        self.proj = nn.Conv1d(input_dim, hidden_dim, kernel_size=1)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, D_in)`` -> ``(B, C, T)`` activations ``ReLU(Conv1d(x))``."""
        return F.relu(self.proj(x.transpose(1, 2)))

    def pool(self, h: torch.Tensor, mask: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked average of every ``kernel_size`` steps.

        Args:
            h: ``(B, C, T)`` with T a multiple of ``kernel_size``. mask: ``(B, T)`` bool.
        Returns:
            ``clips (B, C, N)`` and ``clip_mask (B, N)`` bool (True where the clip holds at
            least one real step), N = T / kernel_size.
        """
        k = self.kernel_size
        t = h.shape[-1]
        if t % k:
            raise ValueError(f"{t} input steps are not a multiple of the pooling kernel {k}: "
                             f"set data.num_clips to a multiple of the map size")
        if mask is None:
            pooled = F.avg_pool1d(h, k, k)
            return pooled, torch.ones(h.shape[0], t // k, dtype=torch.bool, device=h.device)
        m = mask.to(h.dtype)[:, None, :]                                  # (B, 1, T)
        count = F.avg_pool1d(m, k, k) * k                                 # (B, 1, N) real steps
        pooled = F.avg_pool1d(h * m, k, k) * k / count.clamp_min(1.0)
        return pooled, count[:, 0] > 0

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, T, D_in)``, ``mask (B, T)`` -> ``clips (B, C, N)``, ``clip_mask (B, N)``."""
        return self.pool(self.project(x), mask)

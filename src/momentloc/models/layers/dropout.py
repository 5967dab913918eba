"""Dropout whose random mask is drawn fast on a CPU.

PyTorch's CPU dropout draws its mask with ``bernoulli_``, about three times slower than drawing
uniform numbers (``torch.rand``) and comparing them with ``p``; at the small batches that a CPU
trains with, dropout's masks took 4-6% of a CSMGAN, FIAN or CI-MHA training step. Here an
element is kept when ``u >= p`` for ``u`` uniform in ``[0, 1)`` (probability ``1 - p``, as
``bernoulli_(1 - p)``) and scaled by ``1 / (1 - p)``: the same distribution as
``torch.nn.functional.dropout``, from a different stream of random numbers (the global CPU
generator, so seeded runs repeat). On other devices (CUDA's fused dropout kernel), for other
dtypes and outside training it is ``torch.nn.functional.dropout``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``torch.nn.functional.dropout(x, p, training)`` with the mask drawn as described above."""
    if (not training or p == 0.0 or p >= 1.0 or x.device.type != "cpu"
            or x.dtype not in (torch.float32, torch.float64)):
        return F.dropout(x, p, training)
    if not 0.0 < p < 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    noise = torch.rand_like(x).ge_(p).mul_(1.0 / (1.0 - p))
    return x * noise


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same arguments and state) through :func:`dropout`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace:
            return super().forward(x)
        return dropout(x, self.p, self.training)

"""Positional encodings (common spec B2)."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_table(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """``(length, dim)``: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(...)."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    i = torch.arange(0, dim, 2, device=device, dtype=torch.float32)
    angle = pos / torch.pow(10000.0, i / dim)
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : dim // 2])
    return pe.to(dtype)


class SinusoidalPositionalEncoding(nn.Module):
    """Adds ``scale * PE`` to a ``(B, T, D)`` input."""

    def __init__(self, dim: int, scale: float = 1.0):
        super().__init__()
        self.dim = dim
        self.scale = scale

    def table(self, length: int, device, dtype) -> torch.Tensor:
        return sinusoidal_table(length, self.dim, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.table(x.shape[1], x.device, x.dtype)


class LearnedPositionalEncoding(nn.Module):
    """Adds a learned embedding of each position (up to ``max_len``) to a ``(B, T, D)`` input."""

    def __init__(self, dim: int, max_len: int):
        super().__init__()
        self.embedding = nn.Embedding(max_len, dim)
        nn.init.normal_(self.embedding.weight, std=1.0 / math.sqrt(dim))

    def table(self, length: int, device, dtype) -> torch.Tensor:
        if length > self.embedding.num_embeddings:
            raise ValueError(f"sequence of {length} steps is longer than the learned positional "
                             f"encoding's {self.embedding.num_embeddings}")
        return self.embedding.weight[:length].to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table(x.shape[1], x.device, x.dtype)

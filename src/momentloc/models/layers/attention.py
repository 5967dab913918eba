"""Multi-head attention (common spec B1) with key masks and exposed attention weights."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from momentloc.models.layers.dropout import Dropout
from momentloc.models.layers.masking import masked_softmax


class MultiHeadAttention(nn.Module):
    """``MHA(Xq, Xk, Xv)``: the output has the length of the query input ``Xq``.

    Args:
        dim: model width d (query input and output). key_dim / value_dim: widths of the key
            and value inputs (default d). num_heads: h, d must divide by h.
        dropout: on the attention weights. bias: on the projections.
    Forward:
        query ``(B, n, d)``, key ``(B, m, dk_in)``, value ``(B, m, dv_in)`` (default key),
        key_mask ``(B, m)`` bool (True = attend), query_mask ``(B, n)`` (zeroes padded rows),
        attn_mask ``(n, m)`` or ``(B, n, m)`` bool (True = attend; e.g. a local window),
        combined with key_mask.
    Returns:
        ``out (B, n, d)`` and ``weights (B, h, n, m)``.
    """

    def __init__(self, dim: int, num_heads: int, key_dim: int | None = None,
                 value_dim: int | None = None, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"model width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(key_dim or dim, dim, bias=bias)
        self.v_proj = nn.Linear(value_dim or key_dim or dim, dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)
        self.dropout = Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)   # (B, h, n, dh)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None, query_mask: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        value = key if value is None else value
        # 1 / sqrt(d_h) scales the query projection's weights, not the (B, h, n, m) logits
        scale = 1.0 / math.sqrt(self.head_dim)
        bias = None if self.q_proj.bias is None else self.q_proj.bias * scale
        q = self._split(F.linear(query, self.q_proj.weight * scale, bias))
        k = self._split(self.k_proj(key))
        v = self._split(self.v_proj(value))
        logits = q @ k.transpose(-1, -2)                                   # (B, h, n, m)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        if attn_mask is not None:
            pair = attn_mask[None, None] if attn_mask.dim() == 2 else attn_mask[:, None]
            mask = pair if mask is None else mask & pair
        weights = masked_softmax(logits, mask, dim=-1)
        out = self.dropout(weights) @ v                                      # (B, h, n, dh)
        out = out.transpose(1, 2).reshape(query.shape[0], query.shape[1], -1)
        out = self.out_proj(out)
        if query_mask is not None:
            out = out * query_mask.unsqueeze(-1).to(out.dtype)
        return out, weights

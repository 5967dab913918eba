"""Residual attention block: the Transformer sublayer pair, with its parts as switches."""

from __future__ import annotations

import torch
from torch import nn

from momentloc.models.layers.attention import MultiHeadAttention
from momentloc.models.layers.dropout import Dropout


class AttentionBlock(nn.Module):
    """``x <- N(x + Drop(MHA(x, c, c)))``, then optionally ``x <- N(x + Drop(FFN(x)))``.

    With ``context=None`` it is self-attention (``c = x``), else cross-attention in which ``x``
    gathers from ``c``. ``N`` is a LayerNorm (post-LN, Vaswani et al.) or the identity when
    ``norm=False``; ``ffn_dim=0`` drops the feed-forward sublayer. So ``norm=False,
    ffn_dim=0`` is the plain residual attention ``MHA(x, x, x) + x`` of CI-MHA's eqs. 3-4, and
    the defaults ``norm=True, ffn_dim>0`` are a full Transformer encoder (or cross-attention)
    layer as in CMA.

    Args:
        dim: width of ``x`` (and of the output). num_heads: h, ``dim % h == 0``.
        ffn_dim: hidden width of the position-wise FFN (0 = none).
        dropout: on the attention weights and on each sublayer output.
        norm: LayerNorm after each residual sum.
        context_dim: width of ``context`` when it differs from ``dim``.
    Forward:
        x ``(B, n, dim)``, context ``(B, m, context_dim)`` or None, x_mask ``(B, n)``,
        context_mask ``(B, m)`` (bool, True on real positions; ``context_mask`` defaults to
        ``x_mask`` for self-attention).
    Returns:
        ``out (B, n, dim)`` (zero on padded rows of ``x`` when ``x_mask`` is given) and the
        attention weights ``(B, h, n, m)``.
    """

    def __init__(self, dim: int, num_heads: int, ffn_dim: int = 0, dropout: float = 0.0,
                 norm: bool = True, context_dim: int | None = None):
        super().__init__()
        self.attn = MultiHeadAttention(dim, num_heads, key_dim=context_dim, dropout=dropout)
        self.drop = Dropout(dropout)
        self.norm1 = nn.LayerNorm(dim) if norm else nn.Identity()
        self.ffn = None
        if ffn_dim > 0:
            self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), Dropout(dropout),
                                     nn.Linear(ffn_dim, dim))
            self.norm2 = nn.LayerNorm(dim) if norm else nn.Identity()

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                x_mask: torch.Tensor | None = None, context_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if context is None:
            context, context_mask = x, x_mask
        a, weights = self.attn(x, context, key_mask=context_mask)
        x = self.norm1(x + self.drop(a))
        if self.ffn is not None:
            x = self.norm2(x + self.drop(self.ffn(x)))
        if x_mask is not None:
            x = x * x_mask.unsqueeze(-1).to(x.dtype)
        return x, weights

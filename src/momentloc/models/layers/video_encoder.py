"""Self-attention + BiGRU video encoder of the CMIN lineage (CSMGAN sec. 3.2, FIAN sec. 3.2)."""

from __future__ import annotations

import torch
from torch import nn

from momentloc.models.layers.attention import MultiHeadAttention
from momentloc.models.layers.dropout import Dropout
from momentloc.models.layers.rnn import RNNEncoder


def local_window_mask(length: int, window: int, device=None) -> torch.Tensor:
    """``(length, length)`` bool band: position i may attend to j when ``|i - j| <= window``."""
    idx = torch.arange(length, device=device)
    return (idx[:, None] - idx[None, :]).abs() <= window


class SelfAttentionVideoEncoder(nn.Module):
    """``[Linear] -> n x (x + Drop(MHA(x, x, x)) [-> LayerNorm]) -> BiGRU``.

    Self-attention captures long-range dependencies between clips and the BiGRU adds ordered
    temporal context. CSMGAN uses residual attention without LayerNorm, FIAN with it; the
    CSMGAN release attends on the raw input features within a local window.

    Args:
        input_dim: clip feature width. output_dim: width of the BiGRU output (half per
            direction). num_layers: self-attention layers (0 = BiGRU only).
        num_heads: heads; must divide the attention width (``output_dim`` when
            ``project_input``, else ``input_dim``).
        window: attend only within ``+-window`` steps (0 = global attention).
        layer_norm: LayerNorm after each residual sum. project_input: a Linear
            ``input_dim -> output_dim`` before attention. dropout: on attention weights and
            attention outputs. attn_dropout: on the attention weights when it differs
            (None: ``dropout``).
    Forward:
        feats ``(B, T, input_dim)``, mask ``(B, T)`` bool (True on real clips).
    Returns:
        ``(B, T, output_dim)`` (zero on padding) and the last layer's attention weights
        ``(B, h, T, T)`` (None without attention layers).
    """

    def __init__(self, input_dim: int, output_dim: int, num_layers: int = 1, num_heads: int = 8,
                 window: int = 0, layer_norm: bool = False, project_input: bool = True,
                 dropout: float = 0.0, attn_dropout: float | None = None):
        super().__init__()
        width = output_dim if project_input else input_dim
        self.window = window
        self.proj = nn.Linear(input_dim, output_dim) if project_input else nn.Identity()
        weights_p = dropout if attn_dropout is None else attn_dropout
        self.attn = nn.ModuleList(MultiHeadAttention(width, num_heads, dropout=weights_p)
                                  for _ in range(num_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(width) if layer_norm else nn.Identity()
                                   for _ in range(num_layers))
        self.drop = Dropout(dropout)
        self.rnn = RNNEncoder(width, output_dim, cell="gru")

    def forward(self, feats: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.proj(feats)
        band = local_window_mask(x.shape[1], self.window, x.device) if self.window > 0 else None
        weights = None
        for attn, norm in zip(self.attn, self.norms):
            a, weights = attn(x, x, key_mask=mask, query_mask=mask, attn_mask=band)
            x = norm(x + self.drop(a))
        out, _ = self.rnn(x, mask)
        return out, weights

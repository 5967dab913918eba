"""Masked recurrent encoders (BiGRU / BiLSTM) over padded sequences."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class RNNEncoder(nn.Module):
    """GRU or LSTM over a padded ``(B, T, D_in)`` sequence with a ``(B, T)`` mask.

    Padded steps never influence real ones (the sequence is packed), and outputs at padded
    steps are zero. ``output_dim`` is the width of the output: with ``bidirectional`` each
    direction has ``output_dim // 2`` units (common spec B3).

    Returns from :meth:`forward`: ``outputs (B, T, output_dim)`` and ``last (B, output_dim)``:
    the top layer's forward state at the last real step concatenated with its backward state
    at the first step (a unidirectional RNN returns its state at the last real step).
    """

    def __init__(self, input_dim: int, output_dim: int, cell: Literal["gru", "lstm"] = "gru",
                 bidirectional: bool = True, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        if bidirectional and output_dim % 2:
            raise ValueError(f"a bidirectional RNN needs an even output_dim, got {output_dim}")
        rnn_cls = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.bidirectional = bidirectional
        self.output_dim = output_dim
        self.rnn = rnn_cls(input_dim, output_dim // 2 if bidirectional else output_dim,
                           num_layers=num_layers, batch_first=True, bidirectional=bidirectional,
                           dropout=dropout if num_layers > 1 else 0.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        bsz, t, _ = x.shape
        if mask is None:
            lengths = torch.full((bsz,), t, dtype=torch.long)
        else:
            lengths = mask.sum(1).clamp_min(1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=t)
        h = state[0] if isinstance(state, tuple) else state          # (layers*dirs, B, H)
        if self.bidirectional:
            last = torch.cat([h[-2], h[-1]], dim=-1)                 # fwd at last, bwd at first
        else:
            last = h[-1]
        return out, last

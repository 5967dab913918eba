"""Gated recurrent node update (the "ConvGRU" of graph message passing, Ballas et al.)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ConvGRUCell(nn.Module):
    """GRU update of every node of a sequence from its message: ``h' = GRU(x, h)``.

    Each gate is a convolution over the node axis of ``[x; h]``::

        z  = sigmoid(Conv_z([x; h]))          r = sigmoid(Conv_r([x; h]))
        h~ = tanh(Conv_h([x; r * h]))         h' = (1 - z) * h + z * h~

    With ``kernel_size=1`` the convolutions are per-node linear maps, i.e. a standard GRU
    cell applied to every node with shared weights (how CSMGAN's eqs. 8 and 12 update 1 x d
    node states). An odd ``kernel_size > 1`` also mixes neighbouring nodes along the
    sequence (a true temporal ConvGRU); padded nodes are zeroed first so that they act like
    the zero padding at a sequence end.

    Args:
        input_dim: width of the message ``x``. hidden_dim: width of the state ``h``.
        kernel_size: odd convolution width over the node axis.
        update_bias: initial bias of the update gate z. Negative values start every node
            close to its previous state (``z = sigmoid(bias)``), which keeps a stack of
            updates trainable at initialization.
    Forward:
        x ``(B, N, input_dim)``, h ``(B, N, hidden_dim)``, mask ``(B, N)`` bool or None.
    Returns:
        ``(B, N, hidden_dim)``, zero on padded nodes when ``mask`` is given.
    """

    def __init__(self, input_dim: int, hidden_dim: int, kernel_size: int = 1,
                 update_bias: float = 0.0):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"ConvGRU kernel_size must be odd and positive, got {kernel_size}")
        self.kernel_size = kernel_size
        self.gates = nn.Conv1d(input_dim + hidden_dim, 2 * hidden_dim, kernel_size,
                               padding=kernel_size // 2)
        self.candidate = nn.Conv1d(input_dim + hidden_dim, hidden_dim, kernel_size,
                                   padding=kernel_size // 2)
        with torch.no_grad():
            self.gates.bias[:hidden_dim].fill_(update_bias)      # z comes first, then r

    def forward(self, x: torch.Tensor, h: torch.Tensor, mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        m = None if mask is None else mask.unsqueeze(-1).to(h.dtype)
        if m is not None and self.kernel_size > 1:
            x, h = x * m, h * m
        # The convolutions over [x; h] as a sum over the x and h parts of their weights (views:
        # neither the inputs nor the weights are concatenated). h' = h + z (h~ - h) is the same
        # update as (1 - z) h + z h~.
        dx = x.shape[-1]
        wg, wc = self.gates.weight, self.candidate.weight
        x_gates = self._conv(x, wg[:, :dx], self.gates.bias)
        x_cand = self._conv(x, wc[:, :dx], self.candidate.bias)
        z, r = torch.sigmoid(x_gates + self._conv(h, wg[:, dx:])).chunk(2, dim=-1)
        cand = torch.tanh(x_cand + self._conv(r * h, wc[:, dx:]))
        out = h + z * (cand - h)
        return out if m is None else out * m

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
              ) -> torch.Tensor:
        if self.kernel_size == 1:  # a per-node linear map; avoids two transposes
            return F.linear(x, weight.squeeze(-1), bias)
        return F.conv1d(x.transpose(1, 2), weight, bias, padding=self.kernel_size // 2
                        ).transpose(1, 2)

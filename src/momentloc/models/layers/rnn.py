"""Masked recurrent encoders (BiGRU / BiLSTM) over padded sequences."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from momentloc.models.layers.dropout import dropout
from momentloc.models.layers.scan import GRUScan


class RNNEncoder(nn.Module):
    """GRU or LSTM over a padded ``(B, T, D_in)`` sequence with a ``(B, T)`` mask.

    Padded steps never influence real ones, and outputs at padded steps are zero.
    ``output_dim`` is the width of the output: with ``bidirectional`` each direction has
    ``output_dim // 2`` units (common spec B3). The mask marks a prefix of each sequence
    (padding at the end).

    On CPU a GRU runs through :class:`~momentloc.models.layers.scan.GRUScan` (input
    projections of all steps and directions in one matrix product, both directions in one
    loop, a hand-written backward). An LSTM, and a GRU on GPU or under CPU autocast, goes
    through PyTorch's fused RNN with the result of packing, which on CPU runs step by step
    without it: with no padding in the batch, both directions in one call; a unidirectional RNN
    with padding in one call too (padding at the end cannot reach earlier steps; the last state
    is read at each last real step); a bidirectional RNN over a padded batch one direction at a
    time, the backward one over every sequence reversed within its own length, so that it
    starts at its own last real step. On GPUs a padded bidirectional batch is packed: cuDNN
    runs packed sequences natively.

    Returns from :meth:`forward`: ``outputs (B, T, output_dim)`` and ``last (B, output_dim)``:
    the top layer's forward state at the last real step concatenated with its backward state
    at the first step (a unidirectional RNN returns its state at the last real step).
    """

    def __init__(self, input_dim: int, output_dim: int, cell: Literal["gru", "lstm"] = "gru",
                 bidirectional: bool = True, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.cell = cell
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
        lengths = None if mask is None else mask.sum(1).clamp_min(1)
        if self.cell == "gru" and x.device.type == "cpu" and not _cpu_autocast():
            return self._scan(x, lengths)
        if lengths is None or bool((lengths == t).all()):       # no padding: one fused call
            out, state = self.rnn(x)
            return out, self._last(state)
        if not self.bidirectional:                               # padding only trails
            out, _ = self.rnn(x)
            lens = lengths.to(out.device)[:, None]
            real = torch.arange(t, device=out.device)[None] < lens
            return out * real.unsqueeze(-1).to(out.dtype), self._last_real(out, lens)
        if x.device.type == "cpu":
            return self._by_direction(x, lengths)
        # cuDNN runs packed sequences natively (and wants its weights in one flat buffer)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=t)
        return out, self._last(state)

    def _scan(self, x: torch.Tensor, lengths: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """A GRU, layer by layer, through :class:`~momentloc.models.layers.scan.GRUScan`: the
        input projections of all steps and directions in one matrix product, both directions
        in one loop. The backward direction reads each sequence reversed (within its length
        when the batch is padded: a permutation that is its own inverse), so padding trails in
        both directions."""
        rnn, (bsz, t, _) = self.rnn, x.shape
        dirs, hid = (2 if self.bidirectional else 1), rnn.hidden_size
        full = lengths is None or bool((lengths == t).all())
        steps = torch.arange(t, device=x.device)[None]
        lens = (torch.full((bsz, 1), t, device=x.device) if lengths is None
                else lengths.to(x.device)[:, None])
        order = None
        if dirs == 2 and not full:                     # (B, T, D, 1): step read at each position
            order = torch.stack([steps.expand(bsz, t), _reversal(lens, t)], -1)[..., None]
        inp = x
        for layer in range(rnn.num_layers):
            if layer and rnn.dropout and self.training:
                inp = dropout(inp, rnn.dropout, training=True)
            sfx = [f"_l{layer}", f"_l{layer}_reverse"][:dirs]
            w_ih = torch.cat([getattr(rnn, "weight_ih" + s) for s in sfx])
            w_hh = torch.stack([getattr(rnn, "weight_hh" + s) for s in sfx])
            b_ih, b_hn = None, w_hh.new_zeros(dirs, hid)
            if rnn.bias:         # the r and z gates' recurrent biases join the input's
                b_hh = torch.stack([getattr(rnn, "bias_hh" + s) for s in sfx])
                b_ih = (torch.cat([getattr(rnn, "bias_ih" + s) for s in sfx])
                        + F.pad(b_hh[:, :2 * hid], (0, hid)).reshape(-1))
                b_hn = b_hh[:, 2 * hid:]
            gi = F.linear(inp, w_ih, b_ih).view(bsz, t, dirs, 3, hid)
            if order is not None:
                gi = gi.gather(1, order[..., None].expand_as(gi))
            gi = gi.permute(3, 1, 2, 0, 4)                                 # (3, T, D, B, H)
            if dirs == 2 and order is None:            # no padding: a flip reverses in time
                gi = torch.stack([gi[:, :, 0], gi[:, :, 1].flip(1)], 2)
            hs = GRUScan.apply(gi.contiguous(), w_hh, b_hn)               # (T, D, B, H)
            if dirs == 2 and order is None:
                inp = torch.cat([hs[:, 0].transpose(0, 1), hs[:, 1].flip(0).transpose(0, 1)], -1)
            else:
                out = hs.permute(2, 0, 1, 3)                               # (B, T, D, H)
                if order is not None:
                    out = out.gather(1, order.expand_as(out))
                inp = out.reshape(bsz, t, dirs * hid)
        last = self._last_real(inp, lens)
        if full:
            return inp, last
        return inp * (steps < lens).unsqueeze(-1).to(inp.dtype), last

    def _by_direction(self, x: torch.Tensor, lengths: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """A bidirectional RNN over right-padded sequences, layer by layer, each direction in
        one fused call: the backward direction reads each sequence reversed within its length
        (a permutation that is its own inverse), so padding trails in both directions."""
        rnn, (bsz, t, _) = self.rnn, x.shape
        lengths = lengths.to(x.device)[:, None]
        real = torch.arange(t, device=x.device)[None] < lengths          # (B, T)
        rev = _reversal(lengths, t)[..., None]                            # (B, T, 1)
        weights = rnn._flat_weights
        per_dir = len(weights) // (2 * rnn.num_layers)
        fn = torch._VF.gru if self.cell == "gru" else torch._VF.lstm
        h0 = x.new_zeros(1, bsz, rnn.hidden_size)
        hx = h0 if self.cell == "gru" else (h0, h0)
        inp = x
        for layer in range(rnn.num_layers):
            if layer and rnn.dropout and self.training:
                inp = dropout(inp, rnn.dropout, training=True)
            outs = []
            for direction in range(2):
                first = (2 * layer + direction) * per_dir
                seq = inp if direction == 0 else inp.gather(1, rev.expand_as(inp))
                out = fn(seq, hx, weights[first:first + per_dir], rnn.bias, 1, 0.0,
                         self.training, False, True)[0]
                outs.append(out if direction == 0 else out.gather(1, rev.expand_as(out)))
            inp = torch.cat(outs, -1)
        out = inp * real.unsqueeze(-1).to(inp.dtype)
        return out, self._last_real(out, lengths)

    def _last_real(self, out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``last`` from the outputs ``(B, T, D * H)``: the forward state at each last real
        step (``lengths`` ``(B, 1)``), then the backward state at the first step."""
        hid = self.rnn.hidden_size
        last = out[torch.arange(out.shape[0], device=out.device), lengths[:, 0] - 1, :hid]
        return torch.cat([last, out[:, 0, hid:]], -1) if self.bidirectional else last

    def _last(self, state) -> torch.Tensor:
        h = state[0] if isinstance(state, tuple) else state          # (layers*dirs, B, H)
        if self.bidirectional:
            return torch.cat([h[-2], h[-1]], dim=-1)                 # fwd at last, bwd at first
        return h[-1]


def _cpu_autocast() -> bool:
    """Whether CPU autocast is on (``torch.is_autocast_enabled`` takes a device from 2.4)."""
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:
        return torch.is_autocast_cpu_enabled()


def _reversal(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """``(B, T)``: the step each position reads when every sequence is reversed within its
    length (``lengths`` ``(B, 1)``); padded positions stay. The permutation is its own inverse."""
    steps = torch.arange(t, device=lengths.device)[None]
    return torch.where(steps < lengths, lengths - 1 - steps, steps)

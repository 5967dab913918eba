"""A GRU over precomputed input projections, with a hand-written backward (CPU).

PyTorch's CPU GRU runs each time step and direction as a dozen autograd nodes (one small
matrix product and its elementwise gates, each recorded and replayed backwards). The function
here runs the same recurrence with every direction of a layer in one loop:

- the input projections of all steps and directions are computed before the loop, in one
  matrix product (by the caller, so autograd differentiates it as usual);
- each step is three batched matrix products over the directions (one per gate) and five
  elementwise kernels, every operand contiguous (on strided slices each small kernel costs
  several times more) and written into buffers allocated once per call;
- the backward pass is one loop of the same size, and the recurrent weights' gradient is one
  matrix product per gate over all steps afterwards, not one per step.

Shapes: input projections ``gi (3, T, D, B, H)`` (gates r, z, n; steps, directions, batch,
units), with the recurrent biases of r and z already added (they only add to the input's);
recurrent weights ``(D, 3H, H)`` and the n gate's recurrent bias ``(D, H)``; the result is every
hidden state ``(T, D, B, H)``. The initial state is zero. Each direction's sequence is given in
the order it is read (a backward direction's inputs are already reversed), so padding must
trail: steps after a sequence's end compute states that only reach later, padded steps, and a
zero gradient at those steps keeps them out of every gradient. Gates and formulas are
``nn.GRU``'s (r, z, n, the reset gate applied to ``W_hn h + b_hn``), so the results equal
``nn.GRU`` with the same weights to float round-off.

LSTMs stay on PyTorch's oneDNN kernel: written the same way, an LSTM ran no faster than it
(docs/speed.md).
"""

from __future__ import annotations

import torch


class GRUScan(torch.autograd.Function):
    """``h_t = (1 - z) * n + z * h_{t-1}`` with ``r = sigmoid(gi_r + W_hr h)``, ``z`` likewise
    and ``n = tanh(gi_n + r * (W_hn h + b_hn))``."""

    @staticmethod
    def forward(ctx, gi: torch.Tensor, w_hh: torch.Tensor, b_hn: torch.Tensor) -> torch.Tensor:
        _, steps, dirs, bsz, hid = gi.shape
        # (D, H, H) transposed weights of each gate, contiguous
        w_r, w_z, w_n = (w.transpose(1, 2).contiguous() for w in w_hh.split(hid, dim=1))
        bias_n = b_hn.unsqueeze(1).expand(dirs, bsz, hid)
        hs = gi.new_empty(steps + 1, dirs, bsz, hid)
        hs[0].zero_()
        gates = gi.new_empty(4, steps, dirs, bsz, hid)             # r, z, n; W_hn h + b_hn
        # per-step views made once (indexing inside the loop costs more than the small kernels)
        gi_r, gi_z, gi_n = (g.unbind(0) for g in gi)
        r, z, n, ghn = (g.unbind(0) for g in gates)
        h = hs.unbind(0)
        for t in range(steps):
            torch.baddbmm(gi_r[t], h[t], w_r, out=r[t]).sigmoid_()
            torch.baddbmm(gi_z[t], h[t], w_z, out=z[t]).sigmoid_()
            torch.baddbmm(bias_n, h[t], w_n, out=ghn[t])
            torch.addcmul(gi_n[t], r[t], ghn[t], out=n[t]).tanh_()
            torch.lerp(n[t], h[t], z[t], out=h[t + 1])              # n + z (h - n)
        ctx.save_for_backward(w_hh, hs, *gates)
        return hs[1:]

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        w_hh, hs, r, z, n, ghn = ctx.saved_tensors
        steps, dirs, bsz, hid = r.shape
        w_r, w_z, w_n = (w.contiguous() for w in w_hh.split(hid, dim=1))
        grad_out = grad_out.contiguous()
        # Per-step factors, vectorized over all steps before the loop. With dh the gradient
        # reaching h_t, the pre-activation gradients are dz = dh * z_fac, dn = dh * n_fac,
        # dr = dh * r_fac, and W_hn h + b_hn gets dh * nr_fac.
        n_fac = (1 - z) * (1 - n * n)
        z_fac = (hs[:-1] - n) * z * (1 - z)
        nr_fac = n_fac * r
        r_fac = nr_fac * ghn * (1 - r)
        d_gi = grad_out.new_empty(3, steps, dirs, bsz, hid)       # of gi: r, z, n
        d_r, d_z, dh_all = d_gi                                     # dh_all becomes n's below
        d_ghn = grad_out.new_empty(steps, dirs, bsz, hid)
        carry = grad_out.new_zeros(dirs, bsz, hid)
        g_out, dh_t, dr_t, dz_t, dghn_t, rf, zf, nrf, z_t = (
            x.unbind(0) for x in (grad_out, dh_all, d_r, d_z, d_ghn, r_fac, z_fac, nr_fac, z))
        for t in range(steps - 1, -1, -1):
            dh = torch.add(g_out[t], carry, out=dh_t[t])
            torch.mul(dh, rf[t], out=dr_t[t])
            torch.mul(dh, zf[t], out=dz_t[t])
            torch.mul(dh, nrf[t], out=dghn_t[t])
            carry = torch.mul(dh, z_t[t]).baddbmm_(dr_t[t], w_r).baddbmm_(dz_t[t], w_z).baddbmm_(
                dghn_t[t], w_n)
        dh_all.mul_(n_fac)
        # (D, T * B, H) blocks: the weight gradients over all steps at once
        flat = [g.transpose(0, 1).reshape(dirs, steps * bsz, hid) for g in (d_r, d_z, d_ghn)]
        d_w = d_b = None
        if ctx.needs_input_grad[1]:
            prev = hs[:-1].transpose(0, 1).reshape(dirs, steps * bsz, hid)
            d_w = torch.cat([torch.bmm(g.transpose(1, 2), prev) for g in flat], dim=1)
        if ctx.needs_input_grad[2]:
            d_b = flat[2].sum(1)
        return d_gi, d_w, d_b

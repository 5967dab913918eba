"""A GRU over precomputed input projections, with a hand-written backward (CPU).

PyTorch's CPU GRU runs each time step and direction as a dozen autograd nodes (one small
matrix product and its elementwise gates, each recorded and replayed backwards). The function
here runs the same recurrence with every direction of a layer in one loop:

- the input projections of all steps and directions are computed before the loop, in one
  matrix product (by the caller, so autograd differentiates it as usual);
- each step is one batched matrix product over the directions plus a handful of in-place
  elementwise kernels writing into buffers allocated once per call;
- the backward pass is one loop of the same size, and the recurrent weights' gradient is one
  matrix product over all steps afterwards, not one per step.

Shapes are time-major: ``gi (T, D, B, 3H)`` (steps, directions, batch, gates), recurrent
weights ``(D, 3H, H)``; the result is every hidden state ``(T, D, B, H)``. The initial state is
zero. Each direction's sequence is given in the order it is read (a backward direction's
inputs are already reversed), so padding must trail: steps after a sequence's end compute
states that only reach later, padded steps, and a zero gradient at those steps keeps them out
of every gradient. Gates and formulas are ``nn.GRU``'s (r, z, n, the reset gate applied to
``W_hn h + b_hn``), so the results equal ``nn.GRU`` with the same weights to float round-off.

LSTMs stay on PyTorch's oneDNN kernel: written the same way, an LSTM was slower than it
(docs/speed.md).
"""

from __future__ import annotations

import torch


class GRUScan(torch.autograd.Function):
    """``h_t = (1 - z) * n + z * h_{t-1}`` with ``r, z = sigmoid(gi_rz + W_h{r,z} h + b_h{r,z})``
    and ``n = tanh(gi_n + r * (W_hn h + b_hn))``; ``gi`` holds ``W_i x + b_i``."""

    @staticmethod
    def forward(ctx, gi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
        steps, dirs, bsz, gates = gi.shape
        hid = gates // 3
        wt = w_hh.transpose(1, 2)                                   # (D, H, 3H)
        bias = b_hh.unsqueeze(1).expand(dirs, bsz, gates)
        hs = gi.new_empty(steps + 1, dirs, bsz, hid)
        hs[0].zero_()
        acts = gi.new_empty(steps, dirs, bsz, gates)                # r, z, n after activation
        ghn = gi.new_empty(steps, dirs, bsz, hid)                   # W_hn h + b_hn
        gh = gi.new_empty(dirs, bsz, gates)
        for t in range(steps):
            torch.baddbmm(bias, hs[t], wt, out=gh)
            a = acts[t]
            torch.add(gi[t, ..., :2 * hid], gh[..., :2 * hid], out=a[..., :2 * hid]).sigmoid_()
            ghn[t].copy_(gh[..., 2 * hid:])
            n = torch.addcmul(gi[t, ..., 2 * hid:], a[..., :hid], ghn[t], out=a[..., 2 * hid:])
            torch.lerp(n.tanh_(), hs[t], a[..., hid:2 * hid], out=hs[t + 1])   # n + z (h - n)
        ctx.save_for_backward(w_hh, hs, acts, ghn)
        return hs[1:]

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        w_hh, hs, acts, ghn = ctx.saved_tensors
        steps, dirs, bsz, gates = acts.shape
        hid = gates // 3
        r, z, n = acts.split(hid, dim=-1)
        # Per-step factors, vectorized over all steps before the loop. With dh the gradient
        # reaching h_t: the pre-activation gradients are dz = dh * z_fac, dn = dh * n_fac,
        # dr = dh * r_fac, and W_hn h + b_hn gets dn * r.
        n_fac = (1 - z) * (1 - n * n)
        zn_fac = torch.stack([(hs[:-1] - n) * z * (1 - z), n_fac * r], dim=-2)  # (T, D, B, 2, H)
        r_fac = n_fac * ghn * r * (1 - r)
        d_gh = acts.new_empty(steps, dirs, bsz, gates)              # of W_h h + b_h
        dh_all = acts.new_empty(steps, dirs, bsz, hid)
        carry = grad_out.new_zeros(dirs, bsz, hid)
        for t in range(steps - 1, -1, -1):
            dh = torch.add(grad_out[t], carry, out=dh_all[t])
            g = d_gh[t]
            torch.mul(dh.unsqueeze(-2), zn_fac[t], out=g[..., hid:].unflatten(-1, (2, hid)))
            torch.mul(dh, r_fac[t], out=g[..., :hid])
            carry = torch.mul(dh, z[t]).baddbmm_(g, w_hh)
        d_gi = torch.cat([d_gh[..., :2 * hid], dh_all * n_fac], dim=-1)
        flat = d_gh.transpose(0, 1).reshape(dirs, steps * bsz, gates)
        d_w = d_b = None
        if ctx.needs_input_grad[1]:
            prev = hs[:-1].transpose(0, 1).reshape(dirs, steps * bsz, hid)
            d_w = torch.bmm(flat.transpose(1, 2), prev)
        if ctx.needs_input_grad[2]:
            d_b = flat.sum(1)
        return d_gi, d_w, d_b

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
            rz, n = a[..., :2 * hid], a[..., 2 * hid:]
            torch.add(gi[t, ..., :2 * hid], gh[..., :2 * hid], out=rz).sigmoid_()
            ghn[t].copy_(gh[..., 2 * hid:])
            torch.mul(a[..., :hid], ghn[t], out=n).add_(gi[t, ..., 2 * hid:]).tanh_()
            torch.sub(hs[t], n, out=hs[t + 1]).mul_(a[..., hid:2 * hid]).add_(n)
        ctx.save_for_backward(w_hh, hs, acts, ghn)
        return hs[1:]

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        w_hh, hs, acts, ghn = ctx.saved_tensors
        steps, dirs, bsz, gates = acts.shape
        hid = gates // 3
        r, z, n = acts[..., :hid], acts[..., hid:2 * hid], acts[..., 2 * hid:]
        # per-step factors, vectorized over all steps before the loop
        dn_fac = (1 - z) * (1 - n * n)                  # dL/d(n pre-act) = dh * dn_fac
        dz_fac = (hs[:-1] - n) * z * (1 - z)            # dL/d(z pre-act) = dh * dz_fac
        dr_fac = ghn * r * (1 - r)                      # dL/d(r pre-act) = dn_pre * dr_fac
        d_gi = acts.new_empty(steps, dirs, bsz, gates)
        d_gh = acts.new_empty(steps, dirs, bsz, gates)
        dh = grad_out.new_zeros(dirs, bsz, hid)
        grad_out = grad_out.contiguous()
        for t in range(steps - 1, -1, -1):
            dh.add_(grad_out[t])
            g, gh = d_gi[t], d_gh[t]
            dn = torch.mul(dh, dn_fac[t], out=g[..., 2 * hid:])
            torch.mul(dh, dz_fac[t], out=g[..., hid:2 * hid])
            torch.mul(dn, dr_fac[t], out=g[..., :hid])
            gh[..., :2 * hid].copy_(g[..., :2 * hid])
            torch.mul(dn, r[t], out=gh[..., 2 * hid:])
            dh = torch.baddbmm(dh.mul_(z[t]), gh, w_hh)
        flat = d_gh.permute(1, 3, 0, 2).reshape(dirs, gates, steps * bsz)
        prev = hs[:-1].permute(1, 0, 2, 3).reshape(dirs, steps * bsz, hid)
        d_w = torch.bmm(flat, prev) if ctx.needs_input_grad[1] else None
        d_b = d_gh.sum((0, 2)) if ctx.needs_input_grad[2] else None
        return d_gi, d_w, d_b


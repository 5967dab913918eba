"""The hand-written GRU recurrence (models/layers/scan.py) against PyTorch's GRU."""

import pytest
import torch
from torch import nn

from momentloc.models.layers.scan import GRUScan


def _run_scan(rnn: nn.GRU, x: torch.Tensor) -> torch.Tensor:
    """A one-layer (bi)directional ``rnn`` over ``x (B, T, D_in)`` through the scan:
    ``(B, T, dirs * H)`` like ``rnn(x)[0]``."""
    sfx = ["_l0", "_l0_reverse"][:1 + rnn.bidirectional]
    get = lambda name: [getattr(rnn, name + s) for s in sfx]  # noqa: E731
    xs = [x, x.flip(1)][:len(sfx)]
    hid = rnn.hidden_size
    b_hh = torch.stack(get("bias_hh"))
    gi = torch.stack([torch.nn.functional.linear(xi, w, b)
                      for xi, w, b in zip(xs, get("weight_ih"), get("bias_ih"))])  # (D, B, T, 3H)
    gi = gi + torch.cat([b_hh[:, :2 * hid], torch.zeros_like(b_hh[:, 2 * hid:])], -1)[:, None, None]
    gi = gi.unflatten(-1, (3, hid)).permute(3, 2, 0, 1, 4).contiguous()            # (3, T, D, B, H)
    hs = GRUScan.apply(gi, torch.stack(get("weight_hh")), b_hh[:, 2 * hid:])
    outs = [hs[:, 0].transpose(0, 1)]
    if rnn.bidirectional:
        outs.append(hs[:, 1].transpose(0, 1).flip(1))
    return torch.cat(outs, -1)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_scan_equals_torch_gru_with_gradients(bidirectional):
    torch.manual_seed(0)
    rnn = nn.GRU(7, 5, batch_first=True, bidirectional=bidirectional).double()
    with torch.no_grad():                       # non-zero biases reach every gate
        for name, p in rnn.named_parameters():
            if "bias" in name:
                p.uniform_(-0.5, 0.5)
    x = torch.randn(3, 9, 7, dtype=torch.float64, requires_grad=True)
    ref = rnn(x)[0]
    out = _run_scan(rnn, x)
    assert out.shape == ref.shape == (3, 9, 5 * (1 + bidirectional))
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    w = torch.randn_like(ref)
    params = [x, *rnn.parameters()]
    got = torch.autograd.grad((out * w).sum(), params)
    want = torch.autograd.grad((ref * w).sum(), params)
    for name, g, r in zip(["x", *(n for n, _ in rnn.named_parameters())], got, want):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-10, msg=name)


def test_scan_gradcheck():
    torch.manual_seed(1)
    args = [torch.randn(*shape, dtype=torch.float64, requires_grad=True)
            for shape in ((3, 4, 2, 3, 2), (2, 6, 2), (2, 2))]
    assert torch.autograd.gradcheck(GRUScan.apply, args)


def test_scan_steps_after_the_end_never_reach_earlier_ones():
    """Padding trails: whatever the inputs after step k, the states up to k and the gradients
    of a loss on them are unchanged, and the later inputs get no gradient."""
    torch.manual_seed(2)
    w, bias = torch.randn(1, 12, 4), torch.randn(1, 4)
    a = torch.randn(3, 6, 1, 2, 4)
    b = a.clone()
    b[:, 4:] = 100 * torch.randn_like(b[:, 4:])
    a.requires_grad_()
    b.requires_grad_()
    ha, hb = GRUScan.apply(a, w, bias), GRUScan.apply(b, w, bias)
    torch.testing.assert_close(ha[:4], hb[:4])
    assert not torch.allclose(ha[4:], hb[4:])
    ga, = torch.autograd.grad(ha[:4].sum(), a)
    gb, = torch.autograd.grad(hb[:4].sum(), b)
    torch.testing.assert_close(ga, gb)
    assert torch.equal(gb[:, 4:], torch.zeros_like(gb[:, 4:]))

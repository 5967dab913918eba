import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from momentloc.models.layers import RNNEncoder


def packed_reference(enc: RNNEncoder, x: torch.Tensor, mask: torch.Tensor):
    """The always-packed computation: every sequence run over exactly its real steps."""
    lengths = mask.sum(1).clamp_min(1).cpu()
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, state = enc.rnn(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    h = state[0] if isinstance(state, tuple) else state
    last = torch.cat([h[-2], h[-1]], -1) if enc.bidirectional else h[-1]
    return out, last


CASES = [(cell, bi, layers) for cell in ("gru", "lstm") for bi in (True, False) for layers in (1, 2)]


@pytest.mark.parametrize("cell,bidirectional,layers", CASES)
@pytest.mark.parametrize("padded", [False, True])
def test_rnn_encoder_equals_packed(cell, bidirectional, layers, padded):
    torch.manual_seed(0)
    enc = RNNEncoder(5, 8, cell=cell, bidirectional=bidirectional, num_layers=layers)
    x = torch.randn(4, 6, 5, requires_grad=True)
    lengths = torch.tensor([6, 3, 1, 5]) if padded else torch.full((4,), 6)
    mask = torch.arange(6)[None] < lengths[:, None]
    out, last = enc(x, mask)
    ref_out, ref_last = packed_reference(enc, x, mask)
    assert out.shape == (4, 6, 8) and last.shape == (4, 8)
    assert torch.allclose(out, ref_out, atol=1e-6) and torch.allclose(last, ref_last, atol=1e-6)
    assert torch.equal(out[~mask], torch.zeros(int((~mask).sum()), 8))
    w = torch.randn(4, 6, 8)
    grads = torch.autograd.grad((out * w).sum() + last.sum(), [x, *enc.parameters()])
    ref = torch.autograd.grad((ref_out * w).sum() + ref_last.sum(), [x, *enc.parameters()])
    for g, r in zip(grads, ref):
        assert torch.allclose(g, r, atol=1e-5)
    if padded:  # padded inputs get no gradient: they never reach a real step
        assert torch.equal(grads[0][~mask], torch.zeros(int((~mask).sum()), 5))


@pytest.mark.parametrize("bidirectional", [True, False])
def test_rnn_encoder_without_mask_and_empty_sequence(bidirectional):
    torch.manual_seed(1)
    enc = RNNEncoder(3, 4, bidirectional=bidirectional)
    x = torch.randn(2, 5, 3)
    out, last = enc(x)
    full = torch.ones(2, 5, dtype=torch.bool)
    ref_out, ref_last = packed_reference(enc, x, full)
    assert torch.allclose(out, ref_out, atol=1e-6) and torch.allclose(last, ref_last, atol=1e-6)
    # A sequence with no real step is run over its first step (as packing requires one).
    mask = torch.tensor([[True] * 5, [False] * 5])
    out, last = enc(x, mask)
    ref_out, ref_last = packed_reference(enc, x, mask)
    assert torch.allclose(out, ref_out, atol=1e-6) and torch.allclose(last, ref_last, atol=1e-6)
    assert out[1, 0].abs().sum() > 0 and torch.equal(out[1, 1:], torch.zeros(4, 4))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_rnn_encoder_dropout_between_layers_ignores_padding(cell):
    torch.manual_seed(2)
    enc = RNNEncoder(3, 6, cell=cell, num_layers=3, dropout=0.5).train()
    x = torch.randn(3, 5, 3)
    mask = torch.arange(5)[None] < torch.tensor([5, 2, 4])[:, None]
    noisy = torch.where(mask[..., None], x, torch.randn_like(x) * 100)
    torch.manual_seed(3)
    out, last = enc(x, mask)
    torch.manual_seed(3)
    out2, last2 = enc(noisy, mask)
    assert torch.allclose(out, out2, atol=1e-6) and torch.allclose(last, last2, atol=1e-6)
    torch.manual_seed(4)
    out3, _ = enc(x, mask)
    assert not torch.allclose(out, out3)            # dropout acts between the layers
    enc.eval()
    assert torch.allclose(enc(x, mask)[0], packed_reference(enc, x, mask)[0], atol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_per_direction_path_equals_packed(cell):
    """The path a CPU takes under bf16 autocast (and LSTMs always): each direction one fused
    call over sequences reversed within their lengths."""
    torch.manual_seed(3)
    enc = RNNEncoder(5, 8, cell=cell, num_layers=2)
    x = torch.randn(4, 6, 5)
    mask = torch.arange(6)[None] < torch.tensor([6, 3, 1, 5])[:, None]
    out, last = enc._by_direction(x, mask.sum(1))
    ref_out, ref_last = packed_reference(enc, x, mask)
    assert torch.allclose(out, ref_out, atol=1e-6) and torch.allclose(last, ref_last, atol=1e-6)


def test_gru_under_cpu_autocast_takes_torch_kernels(monkeypatch):
    """Under CPU autocast a GRU runs PyTorch's kernels (which autocast handles), not the scan."""
    import momentloc.models.layers.rnn as rnn_module

    torch.manual_seed(4)
    enc = RNNEncoder(5, 8, cell="gru")
    x = torch.randn(3, 6, 5)
    mask = torch.arange(6)[None] < torch.tensor([6, 4, 2])[:, None]
    ref_out, ref_last = enc(x, mask)                      # the scan

    class NoScan:
        @staticmethod
        def apply(*args):
            raise AssertionError("the scan ran under autocast")

    monkeypatch.setattr(rnn_module, "GRUScan", NoScan)
    with pytest.raises(AssertionError, match="the scan ran"):
        enc(x, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, last = enc(x, mask)
    assert torch.allclose(out.float(), ref_out, atol=0.05)
    assert torch.allclose(last.float(), ref_last, atol=0.05)

import math

import pytest
import torch

from momentloc.models.layers import (MLP, LearnedPositionalEncoding, MultiHeadAttention, RNNEncoder,
                                     masked_max, masked_mean, masked_softmax, sinusoidal_table)


def test_masked_reductions():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    m = torch.tensor([[True, True, False]])
    assert masked_mean(x, m, 1).item() == 2.0
    assert masked_max(x, m, 1).item() == 3.0
    p = masked_softmax(torch.tensor([[0.0, 0.0, 5.0]]), m)
    assert p.tolist() == [[0.5, 0.5, 0.0]]
    # a fully masked row gives zeros, never NaN
    z = masked_softmax(torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.bool))
    assert torch.equal(z, torch.zeros(1, 3))


def test_sinusoidal_golden():
    pe = sinusoidal_table(3, 4)
    assert pe[0].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert pe[2, 0].item() == pytest.approx(math.sin(2))
    assert pe[2, 3].item() == pytest.approx(math.cos(2 / 100))
    with pytest.raises(ValueError, match="longer than"):
        LearnedPositionalEncoding(4, 2)(torch.zeros(1, 3, 4))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_rnn_padding_invariance(cell):
    torch.manual_seed(0)
    enc = RNNEncoder(5, 8, cell=cell, num_layers=2)
    x = torch.randn(1, 4, 5)
    out, last = enc(x, torch.ones(1, 4, dtype=torch.bool))
    xp = torch.cat([x, torch.randn(1, 3, 5) * 50], 1)
    mp = torch.tensor([[True] * 4 + [False] * 3])
    outp, lastp = enc(xp, mp)
    assert out.shape == (1, 4, 8) and last.shape == (1, 8)
    assert torch.allclose(outp[:, :4], out, atol=1e-6) and torch.allclose(lastp, last, atol=1e-6)
    assert torch.equal(outp[:, 4:], torch.zeros(1, 3, 8))
    with pytest.raises(ValueError, match="even output_dim"):
        RNNEncoder(5, 7)


def test_mha_masks_and_shapes():
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2, key_dim=6)
    q, k = torch.randn(2, 3, 8), torch.randn(2, 5, 6)
    km = torch.tensor([[True] * 5, [True, True, False, False, False]])
    out, w = mha(q, k, key_mask=km, query_mask=torch.tensor([[True] * 3, [True, True, False]]))
    assert out.shape == (2, 3, 8) and w.shape == (2, 2, 3, 5)
    assert torch.allclose(w.sum(-1), torch.ones(2, 2, 3))
    assert torch.equal(w[1, :, :, 2:], torch.zeros(2, 3, 3))
    assert torch.equal(out[1, 2], torch.zeros(8))
    # changing masked keys does not change the output
    k2 = k.clone()
    k2[1, 2:] = 99.0
    out2, _ = mha(q, k2, key_mask=km, query_mask=torch.tensor([[True] * 3, [True, True, False]]))
    assert torch.allclose(out, out2, atol=1e-6)
    with pytest.raises(ValueError, match="not divisible"):
        MultiHeadAttention(10, 3)


def test_mlp_layers():
    m = MLP([4, 8, 2], dropout=0.1)
    assert [type(x).__name__ for x in m] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert m(torch.zeros(3, 4)).shape == (3, 2)

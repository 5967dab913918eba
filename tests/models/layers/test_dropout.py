"""The CPU dropout (models/layers/dropout.py): torch's dropout distribution and semantics."""

import pytest
import torch
from torch import nn

from momentloc.models.layers.dropout import Dropout, dropout


def keep_probability(p: float) -> float:
    """p acts at a resolution of 2^-16."""
    return 1 - round(p * 65536) / 65536


def test_dropout_keeps_each_element_with_probability_1_minus_p_and_scales():
    torch.manual_seed(0)
    x = torch.full((400, 500), 2.0)
    assert abs(keep_probability(0.1) - 0.9) < 1e-5
    for p in (0.1, 0.5, 0.75):
        y = dropout(x, p)
        kept = y != 0
        # kept values are scaled by 1 / P(keep), dropped ones are exactly zero
        torch.testing.assert_close(y[kept], torch.full_like(y[kept], 2.0 / keep_probability(p)))
        rate = kept.double().mean().item()
        assert abs(rate - (1 - p)) < 4 * ((p * (1 - p)) / x.numel()) ** 0.5 + 1e-9
        assert abs(y.mean().item() - 2.0) < 0.02               # unbiased


def test_dropout_gradient_is_the_forward_mask():
    torch.manual_seed(1)
    x = torch.randn(50, 40, requires_grad=True)
    y = dropout(x, 0.3)
    (g,) = torch.autograd.grad((y * 3).sum(), x)
    scale = 1 / keep_probability(0.3)
    kept = y != 0
    torch.testing.assert_close(g[kept], torch.full_like(g[kept], 3 * scale))
    assert torch.equal(g[~kept], torch.zeros_like(g[~kept]))


def test_dropout_follows_the_global_seed_and_is_identity_outside_training():
    x = torch.randn(30, 30)
    torch.manual_seed(5)
    a = dropout(x, 0.5)
    torch.manual_seed(5)
    b = dropout(x, 0.5)
    assert torch.equal(a, b) and not torch.equal(a, dropout(x, 0.5))
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="between 0 and 1"):
            dropout(x, bad)
    # odd sizes and non-contiguous inputs
    odd = torch.randn(7, 5).t()
    y = dropout(odd, 0.5)
    assert y.shape == (5, 7) and torch.equal(y[y != 0], odd[y != 0] / keep_probability(0.5))


def test_dropout_module_is_an_nn_dropout_with_the_same_behaviour():
    m = Dropout(0.25)
    assert isinstance(m, nn.Dropout) and m.p == 0.25 and m.state_dict() == {}
    x = torch.ones(1000, 100)
    torch.manual_seed(3)
    y = m(x)
    assert 0.73 < (y != 0).float().mean().item() < 0.77
    assert m.eval()(x) is x
    # integer or half tensors go to torch's own dropout
    h = torch.ones(100, 100, dtype=torch.bfloat16)
    assert m.train()(h).dtype == torch.bfloat16

import pytest
import torch

from momentloc.models.layers.convgru import ConvGRUCell


def reference(cell: ConvGRUCell, x, h, mask=None):
    """The cell's equations on the concatenated inputs, written out."""
    conv = torch.nn.functional.conv1d
    pad = cell.kernel_size // 2
    m = None if mask is None else mask.unsqueeze(-1).float()
    if m is not None and cell.kernel_size > 1:
        x, h = x * m, h * m

    def apply(layer, inp):
        return conv(inp.transpose(1, 2), layer.weight, layer.bias, padding=pad).transpose(1, 2)

    z, r = torch.sigmoid(apply(cell.gates, torch.cat([x, h], -1))).chunk(2, -1)
    cand = torch.tanh(apply(cell.candidate, torch.cat([x, r * h], -1)))
    out = (1 - z) * h + z * cand
    return out if m is None else out * m


@pytest.mark.parametrize("kernel", [1, 3])
@pytest.mark.parametrize("masked", [False, True])
def test_convgru_matches_equations(kernel, masked):
    torch.manual_seed(0)
    cell = ConvGRUCell(6, 4, kernel_size=kernel, update_bias=-1.0)
    x = torch.randn(3, 7, 6, requires_grad=True)
    h = torch.randn(3, 7, 4, requires_grad=True)
    mask = (torch.arange(7)[None] < torch.tensor([7, 4, 1])[:, None]) if masked else None
    out, ref = cell(x, h, mask), reference(cell, x, h, mask)
    assert out.shape == (3, 7, 4)
    assert torch.allclose(out, ref, atol=1e-6)
    if masked:
        assert torch.equal(out[~mask], torch.zeros(int((~mask).sum()), 4))
    g = torch.autograd.grad(out.square().sum(), [x, h, *cell.parameters()])
    gr = torch.autograd.grad(ref.square().sum(), [x, h, *cell.parameters()])
    for a, b in zip(g, gr):
        assert torch.allclose(a, b, atol=1e-5)


def test_convgru_update_bias_and_bad_kernel():
    cell = ConvGRUCell(2, 3, update_bias=-50.0)
    with torch.no_grad():
        cell.gates.weight.zero_()
    h = torch.randn(1, 2, 3)
    assert torch.allclose(cell(torch.randn(1, 2, 2), h), h, atol=1e-6)   # z ~ 0 keeps h
    with pytest.raises(ValueError, match="odd"):
        ConvGRUCell(2, 3, kernel_size=2)

"""Start/end NLL and segmentation BCE against hand-computed values."""

import math

import torch

from momentloc.heads.boundary import masked_log_softmax
from momentloc.losses.boundary import boundary_nll, segmentation_bce


def test_nll_of_one_hot_targets():
    lp = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.9, 0.0]]).clamp_min(1e-12).log()
    got = boundary_nll(lp, torch.tensor([0, 1]))
    assert math.isclose(got.item(), -(math.log(0.5) + math.log(0.9)) / 2, rel_tol=1e-6)


def test_nll_ignores_padded_steps():
    mask = torch.tensor([[True, True, False]])
    lp = masked_log_softmax(torch.tensor([[1.0, 1.0, 30.0]]), mask)
    assert math.isclose(boundary_nll(lp, torch.tensor([1])).item(), math.log(2), rel_tol=1e-6)


def test_segmentation_bce_masked_mean():
    logits = torch.tensor([[0.0, 0.0, 100.0]])
    labels = torch.tensor([[1.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False]])
    assert math.isclose(segmentation_bce(logits, labels, mask).item(), math.log(2), rel_tol=1e-6)

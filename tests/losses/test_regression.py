"""CMA losses against hand-computed values."""

import math

import pytest
import torch
import torch.nn.functional as F

from momentloc.losses.regression import (
    boundary_regression,
    diversity_loss,
    task_specific,
    temporal_attention_loss,
)


@pytest.mark.parametrize("x, alpha, beta, expect", [
    (0.05, 10.0, 0.1, 10 * 0.05 ** 2),                 # quadratic side: 0.025
    (-0.05, 10.0, 0.1, 0.025),
    (0.3, 10.0, 0.1, 2 * 10 * 0.1 * 0.3 - 10 * 0.01),  # linear side: 0.5
    (-0.3, 10.0, 0.1, 0.5),
    (0.1, 2.0, 0.4, 2 * 0.01),                         # ActivityNet setting, inside beta
    (0.6, 2.0, 0.4, 2 * 2 * 0.4 * 0.6 - 2 * 0.16),     # outside beta: 0.64
    (0.0, 10.0, 0.1, 0.0),
])
def test_task_specific_hand_values(x, alpha, beta, expect):
    assert math.isclose(task_specific(torch.tensor(x), alpha, beta).item(), expect, abs_tol=1e-6)


def test_task_specific_continuous_at_beta():
    alpha, beta = 2.0, 0.2
    below = task_specific(torch.tensor(beta - 1e-6), alpha, beta).item()
    above = task_specific(torch.tensor(beta + 1e-6), alpha, beta).item()
    assert math.isclose(below, alpha * beta ** 2, rel_tol=1e-4) and abs(above - below) < 1e-5
    x = torch.tensor([beta - 1e-4, beta + 1e-4], requires_grad=True)
    task_specific(x, alpha, beta).sum().backward()
    assert torch.allclose(x.grad, torch.full((2,), 2 * alpha * beta), atol=1e-3)


def test_alpha_half_beta_one_is_smooth_l1():
    x = torch.linspace(-3, 3, 61)
    assert torch.allclose(task_specific(x, 0.5, 1.0),
                          F.smooth_l1_loss(x, torch.zeros_like(x), reduction="none"), atol=1e-6)
    pred, target = torch.rand(5, 2), torch.rand(5, 2)
    assert torch.allclose(boundary_regression(pred, target, "task", 0.5, 1.0),
                          boundary_regression(pred, target, "smooth_l1"))


def test_regression_sums_boundaries_and_averages_batch():
    pred = torch.tensor([[0.15, 0.5], [0.0, 1.0]])
    target = torch.tensor([[0.1, 0.2], [0.0, 1.0]])
    # sample 0: f(0.05) = 0.025 and f(0.3) = 0.5; sample 1: 0
    got = boundary_regression(pred, target, "task", 10.0, 0.1)
    assert math.isclose(got.item(), (0.025 + 0.5 + 0.0) / 2, rel_tol=1e-5)


def test_bad_loss_settings_raise():
    with pytest.raises(ValueError):
        task_specific(torch.zeros(1), 1.0, 0.0)
    with pytest.raises(ValueError):
        boundary_regression(torch.zeros(1, 2), torch.zeros(1, 2), "l3")


def test_temporal_attention_loss_hand_value():
    a = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])
    inside = torch.tensor([[True, True, False], [False, False, True]])
    expect = (-(math.log(0.5) + math.log(0.25)) / 2 - math.log(0.8)) / 2
    assert math.isclose(temporal_attention_loss(a, inside).item(), expect, rel_tol=1e-5)


def test_diversity_zero_for_orthogonal_rows():
    a = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]])
    assert diversity_loss(a).item() == 0.0


def test_diversity_hand_value():
    # two identical one-hot rows: A A^T - I = [[0, 1], [1, 0]] -> 2
    a = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    assert math.isclose(diversity_loss(a).item(), 2.0)
    # uniform rows over 2 words: A A^T = 0.5 everywhere -> 2 * 0.25 + 2 * 0.25 = 1
    b = torch.full((1, 2, 2), 0.5)
    assert math.isclose(diversity_loss(torch.cat([a, b])).item(), 1.5)

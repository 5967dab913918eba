"""Regression head: attention pooling, normalized targets, seconds, attention-loss targets."""

import torch

from momentloc.heads.regression import (
    AttentionPooling,
    BoundaryRegressor,
    inside_clips,
    normalized_targets,
    normalized_to_seconds,
)


def test_normalized_round_trip_and_clipping():
    spans = torch.tensor([[3.0, 9.0], [0.0, 12.5]])
    dur = torch.tensor([30.0, 12.0])
    t = normalized_targets(spans, dur)
    assert torch.allclose(t, torch.tensor([[0.1, 0.3], [0.0, 1.0]]))       # end clipped to 1
    assert torch.allclose(normalized_to_seconds(t, dur), torch.tensor([[3.0, 9.0], [0.0, 12.0]]))


def test_reversed_prediction_is_swapped_and_clipped():
    sec = normalized_to_seconds(torch.tensor([[0.8, 0.2], [-0.1, 1.3]]), torch.tensor([10.0, 20.0]))
    assert torch.allclose(sec, torch.tensor([[2.0, 8.0], [0.0, 20.0]]))


def test_inside_clips_by_centre():
    # 4 real clips of 8 over 8 s: centres 1, 3, 5, 7 s.
    mask = torch.tensor([[True] * 4 + [False] * 4])
    m = inside_clips(torch.tensor([[2.0, 6.0]]), torch.tensor([8.0]), mask)
    assert m[0].tolist() == [False, True, True, False, False, False, False, False]


def test_inside_clips_fallback_for_a_short_span():
    # [3.5, 4.4] s holds no clip centre; the clip containing its midpoint (3.95 s -> clip 1).
    mask = torch.tensor([[True] * 4 + [False] * 4])
    m = inside_clips(torch.tensor([[3.5, 4.4]]), torch.tensor([8.0]), mask)
    assert m[0].tolist() == [False, True, False, False, False, False, False, False]
    # a zero-width span at the very end falls on the last real clip, never on padding
    m = inside_clips(torch.tensor([[8.0, 8.0]]), torch.tensor([8.0]), mask)
    assert m[0].tolist() == [False, False, False, True, False, False, False, False]


def test_attention_pooling_masks_padding():
    torch.manual_seed(0)
    pool = AttentionPooling(6)
    x = torch.randn(2, 5, 6)
    mask = torch.tensor([[True] * 5, [True] * 2 + [False] * 3])
    f, a = pool(x, mask)
    assert f.shape == (2, 6) and a.shape == (2, 5)
    assert torch.allclose(a.sum(1), torch.ones(2)) and a[1, 2:].abs().sum() == 0
    x2 = x.clone()
    x2[1, 2:] = 50.0
    f2, _ = pool(x2, mask)
    assert torch.allclose(f[1], f2[1], atol=1e-6)
    assert torch.allclose(f[1], (a[1, :2, None] * x[1, :2]).sum(0), atol=1e-6)


def test_regressor_outputs_unit_interval():
    out = BoundaryRegressor(6, 8)(100 * torch.randn(4, 6))
    assert out.shape == (4, 2) and bool(((out >= 0) & (out <= 1)).all())

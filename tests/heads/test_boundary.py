"""Boundary head: target encoding, (start <= end) decoding, top-k vs a naive loop."""

import math

import pytest
import torch

from momentloc.heads.boundary import (
    SegmentationHead,
    StartEndHead,
    axis_duration,
    boundary_targets,
    index_spans_to_seconds,
    masked_log_softmax,
    pair_scores,
    top_pairs,
)


def test_targets_full_video():
    # T = 10 steps over 10 s: [2, 5] s covers steps 2, 3, 4.
    mask = torch.ones(1, 10, dtype=torch.bool)
    start, end, inside = boundary_targets(torch.tensor([[2.0, 5.0]]), torch.tensor([10.0]), mask)
    assert start.tolist() == [2] and end.tolist() == [4]
    assert inside[0].tolist() == [0, 0, 1, 1, 1, 0, 0, 0, 0, 0]


def test_targets_padded_video_use_real_steps():
    # 5 real steps of 10 over 10 s: each real step is 2 s; [2, 5] s -> steps 1..2.
    mask = torch.tensor([[True] * 5 + [False] * 5])
    assert axis_duration(torch.tensor([10.0]), mask).tolist() == [20.0]
    start, end, inside = boundary_targets(torch.tensor([[2.0, 5.0]]), torch.tensor([10.0]), mask)
    assert (start.item(), end.item()) == (1, 2)
    assert inside[0].tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("span, expect", [
    ((10.0, 10.0), (4, 4)),      # zero-width span at the very end stays on the last real step
    ((0.0, 10.0), (0, 4)),       # whole video
    ((0.0, 0.0), (0, 0)),        # zero-width at 0
    ((3.9, 4.1), (1, 2)),        # crosses a step boundary
])
def test_targets_edges(span, expect):
    mask = torch.tensor([[True] * 5 + [False] * 3])
    start, end, inside = boundary_targets(torch.tensor([span]), torch.tensor([10.0]), mask)
    assert (start.item(), end.item()) == expect
    assert inside[0, 5:].sum() == 0 and inside[0].sum() == expect[1] - expect[0] + 1


def test_masked_log_softmax_ignores_padding():
    mask = torch.tensor([[True, True, False]])
    lp = masked_log_softmax(torch.tensor([[0.0, 0.0, 50.0]]), mask)
    assert torch.allclose(lp.exp(), torch.tensor([[0.5, 0.5, 0.0]]))


def test_decoding_never_returns_end_before_start():
    # Start peaks at step 5, end peaks at step 2 (before it): the best legal pair is (5, 7).
    p_start = torch.tensor([[0.05, 0.05, 0.1, 0.05, 0.05, 0.6, 0.05, 0.05]])
    p_end = torch.tensor([[0.05, 0.05, 0.5, 0.05, 0.05, 0.03, 0.02, 0.25]])
    mask = torch.ones(1, 8, dtype=torch.bool)
    scores = pair_scores(p_start.log(), p_end.log(), mask)
    idx, top, valid = top_pairs(scores, 5)
    assert idx[0, 0].tolist() == [5, 7]
    assert math.isclose(top[0, 0].exp().item(), 0.6 * 0.25, rel_tol=1e-5)
    assert bool((idx[0, :, 0] <= idx[0, :, 1]).all()) and bool(valid.all())
    # (2, 2): 0.1 * 0.5 is the second best.
    assert idx[0, 1].tolist() == [2, 2]


def test_max_len_and_padding_exclude_pairs():
    p = torch.full((1, 6), 1 / 4)
    mask = torch.tensor([[True, True, True, True, False, False]])
    scores = pair_scores(p.log(), p.log(), mask, max_len=2)
    legal = torch.isfinite(scores[0])
    # pairs (i, i) and (i, i+1) among the 4 real steps: 4 + 3
    assert legal.sum().item() == 7
    assert not legal[:, 4:].any() and not legal[4:].any()


def test_top_pairs_marks_missing_candidates_invalid():
    # one real step: a single legal pair although 4 are asked for
    mask = torch.tensor([[True, False, False]])
    lp = masked_log_softmax(torch.zeros(1, 3), mask)
    idx, top, valid = top_pairs(pair_scores(lp, lp, mask), 4)
    assert valid[0].tolist() == [True, False, False, False]
    assert idx[0, 0].tolist() == [0, 0]
    # more candidates than T*T cells
    idx, top, valid = top_pairs(pair_scores(lp, lp, mask), 12)
    assert idx.shape == (1, 12, 2) and valid.sum() == 1


def _naive_top(ls, le, mask, k, max_len, log_in=None):
    out = []
    for b in range(ls.shape[0]):
        cands = []
        t = int(mask[b].sum())
        for i in range(t):
            for j in range(i, t):
                if max_len and j - i >= max_len:
                    continue
                s = ls[b, i] + le[b, j]
                if log_in is not None:
                    s = s + log_in[b, i:j + 1].mean()
                cands.append((float(s), i, j))
        cands.sort(reverse=True)
        out.append(cands[:k])
    return out


@pytest.mark.parametrize("max_len, use_inside", [(0, False), (3, False), (0, True)])
def test_vectorized_top_k_equals_naive_loop(max_len, use_inside):
    g = torch.Generator().manual_seed(0)
    t = 9
    mask = torch.ones(3, t, dtype=torch.bool)
    mask[1, 6:] = False
    ls = masked_log_softmax(torch.randn(3, t, generator=g), mask)
    le = masked_log_softmax(torch.randn(3, t, generator=g), mask)
    log_in = torch.nn.functional.logsigmoid(torch.randn(3, t, generator=g)) if use_inside else None
    idx, top, valid = top_pairs(pair_scores(ls, le, mask, max_len, log_in), 6)
    naive = _naive_top(ls, le, mask, 6, max_len, log_in)
    for b in range(3):
        assert [tuple(x) for x in idx[b].tolist()] == [(i, j) for _, i, j in naive[b]]
        assert torch.allclose(top[b], torch.tensor([s for s, _, _ in naive[b]]), atol=1e-5)


def test_index_spans_to_seconds_stays_inside_video():
    mask = torch.tensor([[True] * 4 + [False] * 4, [True] * 8])
    idx = torch.tensor([[[0, 3], [1, 1]], [[0, 7], [6, 7]]])
    sec = index_spans_to_seconds(idx, torch.tensor([8.0, 16.0]), mask)
    assert torch.allclose(sec, torch.tensor([[[0.0, 8.0], [2.0, 4.0]], [[0.0, 16.0], [12.0, 16.0]]]))


def test_heads_shapes_and_padding():
    torch.manual_seed(0)
    head, seg = StartEndHead(6, 8, 10).eval(), SegmentationHead(6, 10).eval()
    s = torch.randn(2, 5, 6)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    c_start, c_end = head(s, mask)
    assert c_start.shape == c_end.shape == (2, 5) and seg(s).shape == (2, 5)
    # padded steps do not change real ones (the BiLSTMs are packed)
    s2 = s.clone()
    s2[1, 3:] = 100.0
    c_start2, c_end2 = head(s2, mask)
    assert torch.allclose(c_start[1, :3], c_start2[1, :3], atol=1e-6)
    assert torch.allclose(c_end[1, :3], c_end2[1, :3], atol=1e-6)

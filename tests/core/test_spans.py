import numpy as np
import pytest
import torch

from momentloc.spans import (batched_nms, indices_to_seconds, pairwise_iou, seconds_to_indices,
                             temporal_iou, temporal_nms)


@pytest.mark.parametrize("a,b,expected", [
    ([0, 2], [1, 3], 1 / 3),
    ([0, 2], [0, 2], 1.0),
    ([0, 1], [2, 3], 0.0),
    ([0, 1], [1, 2], 0.0),          # touching
    ([0, 4], [1, 2], 0.25),         # contained
    ([1, 1], [1, 1], 1.0),          # identical points
    ([1, 1], [0, 2], 0.0),          # zero-length inside
])
def test_iou_table(a, b, expected):
    assert temporal_iou(np.array(a, float), np.array(b, float)) == pytest.approx(expected)
    assert float(temporal_iou(torch.tensor(a, dtype=torch.float64),
                              torch.tensor(b, dtype=torch.float64))) == pytest.approx(expected)


def test_inclusive_index_iou():
    # (min(e)-max(s)+1)/(max(e)-min(s)+1): [0,2] vs [1,3] -> 2/4
    assert temporal_iou(np.array([0., 2]), np.array([1., 3]), "inclusive_index") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown IoU mode"):
        temporal_iou(np.array([0., 1]), np.array([0., 1]), "bogus")


def test_pairwise_matches_loop():
    rng = np.random.default_rng(0)
    a = np.sort(rng.random((7, 2)) * 10, -1)
    b = np.sort(rng.random((5, 2)) * 10, -1)
    m = pairwise_iou(a, b)
    for i in range(7):
        for j in range(5):
            assert m[i, j] == pytest.approx(float(temporal_iou(a[i], b[j])))


def test_seconds_indices_round_trip():
    # T = 32 s, N = 16 -> 2 s per clip. [3, 7) -> clips 1..3 -> [2, 8] s.
    idx = seconds_to_indices(np.array([[3.0, 7.0]]), np.array([32.0]), 16)
    assert idx.tolist() == [[1, 3]]
    sec = indices_to_seconds(idx, np.array([32.0]), 16)
    assert sec.tolist() == [[2.0, 8.0]]
    # end exactly at the duration maps to the last clip; zero-length spans keep i_e >= i_s
    assert seconds_to_indices(np.array([[30.0, 32.0]]), np.array([32.0]), 16).tolist() == [[15, 15]]
    assert seconds_to_indices(np.array([[5.0, 5.0]]), np.array([32.0]), 16).tolist() == [[2, 2]]
    # reversed fractional indices are ordered and clipped to the video
    out = indices_to_seconds(torch.tensor([[5.0, -3.0]]), torch.tensor([32.0]), 16)
    assert out.tolist() == [[0.0, 10.0]]  # start 5 -> 10 s; end -3+1 clipped to 0


def test_nms_golden():
    spans = [[0, 10], [1, 10], [20, 30], [0, 0], [21, 29]]
    scores = [0.9, 0.8, 0.7, 0.1, 0.6]
    # [1,10] overlaps [0,10] (IoU .9) and [21,29] overlaps [20,30] (IoU .8): suppressed
    assert temporal_nms(spans, scores, 0.5, 5).tolist() == [0, 2, 3]
    assert temporal_nms(spans, scores, 0.95, 2).tolist() == [0, 1]
    assert temporal_nms(np.zeros((0, 2)), [], 0.5, 5).tolist() == []


def test_batched_nms_matches_single_and_respects_valid():
    g = torch.Generator().manual_seed(1)
    s = torch.sort(torch.rand(4, 30, 2, generator=g) * 50, -1).values
    sc = torch.rand(4, 30, generator=g)
    valid = torch.rand(4, 30, generator=g) > 0.3
    keep, kept = batched_nms(s, sc, 0.4, 5, valid)
    for b in range(4):
        idx = np.flatnonzero(valid[b].numpy())
        ref = idx[temporal_nms(s[b, idx].numpy(), sc[b, idx].numpy(), 0.4, 5)]
        assert keep[b][kept[b]].tolist() == ref.tolist()

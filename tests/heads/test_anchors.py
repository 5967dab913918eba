"""Multi-scale anchors: layouts, legality, IoU/offset targets, decoding, heads, candidates."""

import pytest
import torch

from momentloc.heads.anchors import (
    AnchorLayout,
    CenteredAnchorHead,
    EndingAnchorHead,
    SlidingWindowHead,
    anchor_candidates,
    centered_layout,
    ending_layout,
    scaled_widths,
    sliding_layout,
    window_strides,
)


def test_centered_layout_is_step_major_and_centred():
    lay = centered_layout(3, (1.0, 3.0))
    assert lay.bounds.tolist() == [[0, 0], [-1, 1], [1, 1], [0, 2], [2, 2], [1, 3]]
    assert lay.level.tolist() == [0, 1, 0, 1, 0, 1]


def test_sliding_layout_windows_strides_and_oversized_sizes():
    lay = sliding_layout(10, (4, 8, 12), (2, 4, 1))
    # size 4 every 2 steps: starts 0, 2, 4, 6; size 8 every 4: only start 0 fits; 12 > 10: none
    assert lay.bounds.tolist() == [[0, 3], [2, 5], [4, 7], [6, 9], [0, 7]]
    assert lay.level.tolist() == [0, 0, 0, 0, 1]
    empty = sliding_layout(3, (4,), (1,))
    assert empty.bounds.shape == (0, 2) and empty.level.shape == (0,)


def test_ending_layout():
    lay = ending_layout(3, (1, 2))
    assert lay.bounds.tolist() == [[0, 0], [-1, 0], [1, 1], [0, 1], [2, 2], [1, 2]]


@pytest.mark.parametrize("sizes, fraction, absolute, expected", [
    ((8, 16, 32, 64), 0.125, 0, (1, 2, 4, 8)),        # FIAN TACoS
    ((16, 24, 32, 40), 0.125, 0, (2, 3, 4, 5)),       # FIAN Charades-STA
    ((16, 32, 64), 0.25, 0, (4, 8, 16)),              # FIAN ActivityNet
    ((20, 4), 0.125, 0, (2, 1)),                      # floor, at least 1
    ((8, 16, 32, 64), 0.125, 1, (1, 1, 1, 1)),        # stride-1 ablation
])
def test_window_strides(sizes, fraction, absolute, expected):
    assert window_strides(sizes, fraction, absolute) == expected


def test_scaled_widths_match_the_spec_table():
    assert scaled_widths((16, 32, 192), 0.5) == (16.0, 32.0, 192.0)
    assert scaled_widths((8, 16, 32, 64), 0.125) == (2.75, 4.75, 8.75, 16.75)
    assert scaled_widths((16, 24, 32, 40), 0.25) == (8.5, 12.5, 16.5, 20.5)


def test_legal_uses_each_videos_real_length():
    lay = AnchorLayout(torch.tensor([[0.0, 3.0], [-0.5, 2.5], [4.0, 7.0], [0.25, 4.75]]),
                       torch.zeros(4, dtype=torch.long))
    legal = lay.legal(torch.tensor([8, 5]))
    assert legal.tolist() == [[True, False, True, True], [True, False, False, False]]


def test_targets_golden():
    # 10 steps over 20 s: one step = 2 s. Ground truth 4..10 s = steps [2, 5).
    lay = AnchorLayout(torch.tensor([[2.0, 4.0], [0.0, 3.0], [6.0, 9.0], [2.5, 3.5]]),
                       torch.zeros(4, dtype=torch.long))
    iou, off = lay.targets(torch.tensor([[4.0, 10.0]]), torch.tensor([20.0]), torch.tensor([10]))
    # [2,5) vs [2,5): 1; [0,4): 2/5; [6,10): 0; [2.5,4.5): 2/3
    assert torch.allclose(iou, torch.tensor([[1.0, 0.4, 0.0, 2 / 3]]))
    # offsets to the inclusive ground truth (2, 4)
    assert torch.allclose(off, torch.tensor([[[0.0, 0.0], [2.0, 1.0], [-4.0, -5.0],
                                              [-0.5, 0.5]]]))


def test_targets_with_a_shorter_real_length():
    # A padded video with 5 real steps over 10 s: one step = 2 s; 2..6 s = steps [1, 3).
    lay = AnchorLayout(torch.tensor([[1.0, 2.0]]), torch.zeros(1, dtype=torch.long))
    iou, off = lay.targets(torch.tensor([[2.0, 6.0]]), torch.tensor([10.0]), torch.tensor([5]))
    assert torch.allclose(iou, torch.ones(1, 1)) and torch.allclose(off, torch.zeros(1, 1, 2))


def test_decode_golden_and_clipping():
    lay = AnchorLayout(torch.tensor([[2.0, 4.0], [0.0, 1.0]]), torch.zeros(2, dtype=torch.long))
    offsets = torch.tensor([[[0.5, -1.0], [-3.0, 20.0]]])
    spans = lay.decode(offsets, torch.tensor([20.0]), torch.tensor([10]))
    # (2.5, 3) -> [2.5 * 2, 4 * 2] s; the second leaves the video and is clipped to it.
    assert torch.allclose(spans, torch.tensor([[[5.0, 8.0], [0.0, 20.0]]]))
    reversed_ = lay.decode(torch.tensor([[[3.0, -3.0], [0.0, 0.0]]]), torch.tensor([20.0]),
                           torch.tensor([10]))
    assert (reversed_[..., 0] <= reversed_[..., 1]).all()


def test_decoding_the_target_offsets_recovers_the_ground_truth():
    torch.manual_seed(0)
    lengths = torch.tensor([16, 11, 7])
    durations = torch.tensor([30.0, 12.5, 9.0])
    a, b = torch.rand(3), torch.rand(3)
    spans = torch.stack([torch.minimum(a, b), torch.maximum(a, b)], -1) * durations[:, None]
    lay = centered_layout(16, (1.0, 4.5, 9.0))
    _, off = lay.targets(spans, durations, lengths)
    back = lay.decode(off, durations, lengths)
    assert torch.allclose(back, spans[:, None].expand_as(back), atol=1e-4)


def test_iou_targets_equal_iou_in_seconds():
    from momentloc.spans import temporal_iou
    torch.manual_seed(1)
    lay = sliding_layout(12, (3, 5), (1, 2))
    durations, lengths = torch.tensor([24.0, 9.0]), torch.tensor([12, 9])
    spans = torch.tensor([[3.0, 13.0], [1.0, 4.5]])
    iou, _ = lay.targets(spans, durations, lengths)
    seconds = lay.decode(None, durations, lengths)
    legal = lay.legal(lengths)
    ref = temporal_iou(seconds, spans[:, None])
    assert torch.allclose(iou[legal], ref[legal], atol=1e-6)


def test_centered_head_scores_each_anchor_from_its_centre_step():
    torch.manual_seed(0)
    head = CenteredAnchorHead(6, (1.0, 3.0, 5.0))
    feats = torch.randn(2, 8, 6)
    logits, offsets = head(feats)
    assert logits.shape == (2, 24) and offsets.shape == (2, 24, 2)
    assert head.layout(8).num_anchors == 24
    moved = feats.clone()
    moved[:, 5] += 1.0
    l2, o2 = head(moved)
    changed = (l2 != logits).any(0) | (o2 != offsets).any(-1).any(0)
    assert changed.nonzero().flatten().tolist() == [15, 16, 17]     # anchors centred at step 5


def test_sliding_head_scores_each_window_from_its_whole_content():
    torch.manual_seed(0)
    head = SlidingWindowHead(4, (4, 8), (2, 4))
    feats = torch.randn(2, 12, 4)
    logits, offsets = head(feats)
    lay = head.layout(12)
    assert logits.shape == (2, lay.num_anchors) and offsets.shape == (2, lay.num_anchors, 2)
    for step in (0, 5, 11):
        moved = feats.clone()
        moved[:, step] += 1.0
        l2, _ = head(moved)
        changed = (l2 != logits).any(0)
        covers = (lay.bounds[:, 0] <= step) & (lay.bounds[:, 1] >= step)
        assert torch.equal(changed, covers), step


def test_sliding_head_on_a_video_shorter_than_the_largest_window():
    head = SlidingWindowHead(4, (4, 8, 16), (1, 2, 4))
    logits, offsets = head(torch.randn(3, 6, 4))
    assert logits.shape == (3, 3) and offsets.shape == (3, 3, 2)     # size 4 only: starts 0..2
    logits, offsets = head(torch.randn(3, 2, 4))
    assert logits.shape == (3, 0) and offsets.shape == (3, 0, 2)


def test_ending_head_has_no_offsets():
    head = EndingAnchorHead(5, (2, 4))
    logits, offsets = head(torch.randn(2, 7, 5))
    assert logits.shape == (2, 14) and offsets is None
    assert head.layout(7).num_anchors == 14


def test_candidates_mask_illegal_anchors_and_stay_inside_the_video():
    lay = centered_layout(8, (3.0, 5.0))
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 6:] = False
    logits = torch.randn(2, lay.num_anchors)
    offsets = 5 * torch.randn(2, lay.num_anchors, 2)
    durations = torch.tensor([16.0, 12.0])
    c = anchor_candidates(lay, logits, offsets, mask, durations)
    assert torch.equal(c.valid, lay.legal(torch.tensor([8, 6])))
    assert torch.allclose(c.scores, torch.sigmoid(logits))
    assert (c.spans >= 0).all() and (c.spans <= durations[:, None, None]).all()
    assert (c.spans[..., 0] <= c.spans[..., 1]).all()


def test_candidates_of_a_video_too_short_for_any_anchor_fall_back_to_clipped_ones():
    lay = centered_layout(8, (5.0,))
    mask = torch.zeros(1, 8, dtype=torch.bool)
    mask[0, :2] = True                                   # 2 real steps, anchors are 5 wide
    c = anchor_candidates(lay, torch.zeros(1, 8), None, mask, torch.tensor([4.0]))
    assert c.valid[0].tolist() == [True, True] + [False] * 6
    assert (c.spans[0, :2] >= 0).all() and (c.spans[0, :2] <= 4.0).all()

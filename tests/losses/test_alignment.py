"""Anchor losses against values worked out by hand on a 3-anchor example."""

import math

import torch

from momentloc.losses.alignment import (
    balanced_alignment_loss,
    iou_alignment_loss,
    offset_loss,
    weighted_anchor_bce,
)

# Three anchors: probabilities 1/2, 3/4, 1/4 and IoU targets 0.6, 0.2, 0.
LOGITS = torch.tensor([[0.0, math.log(3.0), -math.log(3.0)]])
IOU = torch.tensor([[0.6, 0.2, 0.0]])
ALL = torch.ones(1, 3, dtype=torch.bool)
BCE = [math.log(2.0),                                          # -(.6 ln .5 + .4 ln .5)
       -(0.2 * math.log(0.75) + 0.8 * math.log(0.25)),
       -math.log(0.75)]


def test_iou_alignment_is_the_mean_soft_bce():
    assert math.isclose(iou_alignment_loss(LOGITS, IOU, ALL).item(), sum(BCE) / 3, rel_tol=1e-6)


def test_iou_alignment_skips_masked_anchors():
    mask = torch.tensor([[True, True, False]])
    got = iou_alignment_loss(LOGITS, IOU, mask).item()
    assert math.isclose(got, (BCE[0] + BCE[1]) / 2, rel_tol=1e-6)


def test_balanced_alignment_averages_positives_and_negatives_separately():
    positive = IOU > 0.5                                       # anchor 0 only
    got = balanced_alignment_loss(LOGITS, IOU, ALL, positive).item()
    assert math.isclose(got, BCE[0] + (BCE[1] + BCE[2]) / 2, rel_tol=1e-6)


def test_balanced_alignment_of_a_video_without_positives_is_its_negative_mean():
    logits = LOGITS.repeat(2, 1)
    iou = torch.cat([IOU, torch.tensor([[0.3, 0.2, 0.0]])])
    positive = iou > 0.5
    got = balanced_alignment_loss(logits, iou, torch.ones(2, 3, dtype=torch.bool), positive)
    second = (-(0.3 * math.log(0.5) + 0.7 * math.log(0.5)) + BCE[1] + BCE[2]) / 3
    assert math.isclose(got.item(), (BCE[0] + (BCE[1] + BCE[2]) / 2 + second) / 2, rel_tol=1e-6)


def test_offset_loss_is_smooth_l1_summed_over_ends_averaged_over_positives():
    pred = torch.tensor([[[0.5, -2.0], [9.0, 9.0], [3.0, 0.2]]], requires_grad=True)
    target = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]])
    positive = torch.tensor([[True, False, True]])
    # anchor 0: R1(.5) + R1(-2) = .125 + 1.5; anchor 2: R1(2) + R1(.2) = 1.5 + .02
    expected = (0.125 + 1.5 + 1.5 + 0.02) / 2
    assert math.isclose(offset_loss(pred, target, positive).item(), expected, rel_tol=1e-6)
    got = offset_loss(pred, target, positive, per_video=True)
    assert math.isclose(got.item(), expected, rel_tol=1e-6)
    got.backward()
    assert pred.grad[0, 1].abs().sum() == 0                    # negatives get no gradient


def test_offset_loss_per_video_weighs_videos_alike_and_skips_videos_without_positives():
    pred = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.5, 0.0], [0.0, 0.0]],
                         [[4.0, 4.0], [4.0, 4.0]]])
    target = torch.zeros(3, 2, 2)
    positive = torch.tensor([[True, True], [True, False], [False, False]])
    # video 0: (0.5 + 0) / 2 = .25; video 1: .125; video 2 has no positive
    assert math.isclose(offset_loss(pred, target, positive, per_video=True).item(),
                        (0.25 + 0.125) / 2, rel_tol=1e-6)
    assert math.isclose(offset_loss(pred, target, positive).item(), (0.5 + 0.125) / 3,
                        rel_tol=1e-6)


def test_offset_loss_without_positives_is_zero_and_differentiable():
    pred = torch.ones(2, 3, 2, requires_grad=True)
    loss = offset_loss(pred, torch.zeros(2, 3, 2), torch.zeros(2, 3, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(pred.grad, torch.zeros_like(pred))


def test_weighted_anchor_bce_weighs_positives_by_the_negative_ratio():
    # labels IoU > .5: [1, 0, 0]; weight of the positive 2 / 1
    got = weighted_anchor_bce(LOGITS, IOU, ALL, threshold=0.5).item()
    expected = (2 * math.log(2.0) - math.log(0.25) - math.log(0.75)) / 3
    assert math.isclose(got, expected, rel_tol=1e-6)

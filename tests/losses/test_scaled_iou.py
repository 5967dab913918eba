"""2D-TAN's scaled-IoU BCE (common spec 8.2 step 7)."""

import math

import pytest
import torch

from momentloc.losses.scaled_iou import bce_rescale_loss, scaled_iou_targets


def test_targets():
    ious = torch.tensor([0.0, 0.3, 0.5, 0.6, 0.75, 1.0])
    assert torch.allclose(scaled_iou_targets(ious, 0.5, 1.0),
                          torch.tensor([0.0, 0.0, 0.0, 0.2, 0.5, 1.0]))
    assert torch.allclose(scaled_iou_targets(ious, 0.0, 0.5),       # LGN's bounds
                          torch.tensor([0.0, 0.6, 1.0, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError):
        scaled_iou_targets(ious, 0.5, 0.5)


def test_golden_value():
    # cells: (iou, p) = (0.2, 1/2), (0.5, 3/4), (0.75, 1/2), and a masked cell.
    # targets with tmin, tmax = 0.5, 1.0: 0, 0, 1/2 ->
    # BCE = ln 2 + ln 4 + ln 2 = 4 ln 2 over 3 valid cells
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, 5.0]]])
    ious = torch.tensor([[[0.2, 0.5], [0.75, 1.0]]])
    mask = torch.tensor([[[True, True], [True, False]]])
    loss = bce_rescale_loss(logits, ious, mask, 0.5, 1.0)
    assert loss.item() == pytest.approx(4 * math.log(2) / 3, rel=1e-6)

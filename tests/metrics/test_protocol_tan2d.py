"""``eval.protocol: tan2d`` on hand-built cases (the golden tests check it against the release)."""

from __future__ import annotations

import numpy as np
import pytest

from momentloc.config.schema import EvalConfig
from momentloc.engine.predictions import metrics_from_lines
from momentloc.metrics.protocol_tan2d import (
    tan2d_decode,
    tan2d_hits,
    tan2d_metrics,
    tan2d_nms,
    tan2d_rank,
)


def test_rank_scores_descending_invalid_last_ties_to_the_later_cell():
    spans = np.array([[[0, 1], [0, 2], [1, 2], [1, 3]]], float)
    scores = np.array([[0.5, 0.9, 0.5, 0.99]])
    valid = np.array([[True, True, True, False]])
    # invalid (0.99) scores 0 and goes last; the tie at 0.5 goes to the later cell [1, 2] first
    assert tan2d_rank(spans, scores, valid)[0].tolist() == [1, 2, 0, 3]


def test_nms_drops_above_thresh_keeps_equal_and_drops_nan():
    spans = np.array([[[0, 4], [2, 6], [0, 2], [5, 5], [5, 5], [7, 9]]], float)
    # [2, 6] vs [0, 4]: 2 / 6 = 0.333 <= 0.34 kept; [0, 2] vs [0, 4]: 2 / 4 = 0.5 > 0.34 dropped;
    # [5, 5] vs [2, 6]: 0 / 4 kept; the second [5, 5] vs the first: 0 / 0 = NaN, dropped
    keep, kept = tan2d_nms(spans, np.array([6]), 0.34, 5)
    assert keep[0][kept[0]].tolist() == [0, 1, 3, 5]
    keep, kept = tan2d_nms(spans, np.array([6]), 1 / 3, 5)    # equal to the thresh: kept
    assert 1 in keep[0][kept[0]].tolist()
    keep, kept = tan2d_nms(spans, np.array([2]), 0.5, 5)      # padding after the count ignored
    assert kept[0].tolist() == [True, True, False, False, False]


def test_hits_are_strict_and_miou_is_the_top1_iou():
    pred = np.array([[[0.0, 2.0], [0.0, 4.0]], [[5.0, 5.0], [1.0, 3.0]]])
    gt = np.array([[0.0, 4.0], [1.0, 3.0]])
    valid = np.ones((2, 2), bool)
    hits, top1 = tan2d_hits(pred, valid, gt, (1, 2), (0.5, 0.9))
    assert top1.tolist() == [0.5, 0.0]                       # zero-length prediction: IoU 0
    assert hits[0].tolist() == [[False, True], [False, True]]  # IoU 0.5 is not > 0.5
    m = tan2d_metrics(pred, valid, gt, (1, 2), (0.5, 0.9))
    assert m == {"R1@0.5": 0.0, "R1@0.9": 0.0, "R2@0.5": 1.0, "R2@0.9": 1.0, "mIoU": 0.25}


def test_decode_then_score_through_the_prediction_lines():
    spans = np.array([[[0, 2], [0, 4], [1, 3], [3, 4]]], float)
    scores = np.array([[0.2, 0.9, 0.8, 0.1]])
    order, keep, _ = tan2d_decode(spans, scores, np.ones((1, 4), bool), 0.45, 2)
    assert order[0].tolist() == [1, 2, 0, 3] and keep[0].tolist() == [1, 3]
    line = {"query_id": "q", "video_id": "v", "duration": 4.0, "gt_span": [3.0, 4.0],
            "pred_spans": [[0.0, 4.0, 0.9], [3.0, 4.0, 0.1]]}
    cfg = EvalConfig(protocol="tan2d", recall_at=(1, 2), iou_thresholds=(0.5,))
    out = metrics_from_lines([line], cfg)
    assert out["R1@0.5"] == 0.0 and out["R2@0.5"] == 1.0 and out["mIoU"] == pytest.approx(0.25)
    standard = metrics_from_lines([line], EvalConfig(recall_at=(1, 2), iou_thresholds=(0.25,)))
    assert standard["R1@0.25"] == 1.0    # the standard protocol's >= hit rule
    assert metrics_from_lines([line], EvalConfig(protocol="tan2d", recall_at=(1,),
                                                 iou_thresholds=(0.25,)))["R1@0.25"] == 0.0


def test_decode_candidates_dispatches_on_the_protocol():
    import torch

    from momentloc.engine.predictions import decode_candidates

    spans = torch.tensor([[[0.0, 4.0], [0.0, 3.0], [2.0, 4.0], [3.0, 4.0]]], dtype=torch.float64)
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6]], dtype=torch.float64)
    valid = torch.tensor([[True, True, True, False]])
    # standard: [0, 4] suppresses [0, 3] (0.75 > 0.5); [2, 4] (0.5) is kept; the invalid cell never
    keep, kept = decode_candidates(spans, scores, valid, EvalConfig(top_k=3, nms_thresh=0.5))
    assert keep[0][kept[0]].tolist() == [0, 2]
    # tan2d: the invalid cell ranks last with score 0 and fills the list; [3, 4] vs [0, 4] and
    # [2, 4] overlaps 0.25 and 0.5: kept (not > 0.5)
    keep, kept = decode_candidates(spans, scores, valid,
                                   EvalConfig(top_k=3, nms_thresh=0.5, protocol="tan2d"))
    assert keep[0][kept[0]].tolist() == [0, 2, 3]

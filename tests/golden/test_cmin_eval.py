"""The CMIN/CSMGAN evaluation protocol against the official code's outputs (``cmin_eval``
fixtures, and the post-processing recorded in every CSMGAN model fixture)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from momentloc.metrics import protocol_cmin as pc


def _check_official(out: dict, picks, num_picks, boxes_int, per_query, total, count, recall):
    np.testing.assert_array_equal(out["boxes_int"], boxes_int)
    np.testing.assert_array_equal(out["num_picks"], num_picks)
    for k, mine in enumerate(out["picks"]):
        width = mine.shape[1]
        np.testing.assert_array_equal(mine, picks[:, k, :width])
        assert (picks[:, k, width:] == -1).all()
    np.testing.assert_array_equal(out["per_query"], per_query)
    np.testing.assert_array_equal(out["sum"], total)
    assert out["count"] == count
    np.testing.assert_array_equal(out["recall"], recall)


def test_cmin_eval_reproduces_official(golden_cmin_eval):
    _, fx = golden_cmin_eval
    i, o = fx["inputs"], fx["outputs"]
    out = pc.evaluate(i["predict_flatten"].numpy(), i["refine_box"].numpy(), i["gt"].numpy(),
                      i["video_mask"].numpy().sum(1), full_picks=True)
    _check_official(out, o["picks"].numpy(), o["num_picks"].numpy(), o["boxes_int"].numpy(),
                    o["per_query_matrix"].numpy(), o["topn_IoU_sum"].numpy(), int(o["count"]),
                    o["recall"].numpy())
    # the first five picks' boxes
    for k, mine in enumerate(out["picks"]):
        top = mine[:, :5]
        ref = o["top5_boxes"].numpy()[:, k]
        got = np.take_along_axis(out["boxes_int"], np.maximum(top, 0)[..., None], 1)
        got = np.where((top >= 0)[..., None], got, -1)
        np.testing.assert_array_equal(got, ref[:, :top.shape[1]])
    if "recall_regular_only" in o:
        regular = ~i["edge_case"].numpy()
        np.testing.assert_array_equal(pc.recall_from_hits(out["per_query"][regular]),
                                      o["recall_regular_only"].numpy())


def test_cmin_eval_early_stop_gives_the_same_hits(golden_cmin_eval):
    """The engine stops NMS after max(recall_at) picks: the hits must not change."""
    _, fx = golden_cmin_eval
    i, o = fx["inputs"], fx["outputs"]
    out = pc.evaluate(i["predict_flatten"].numpy(), i["refine_box"].numpy(), i["gt"].numpy(),
                      i["video_mask"].numpy().sum(1))
    np.testing.assert_array_equal(out["per_query"], o["per_query_matrix"].numpy())
    n = max(pc.CMIN_RECALL_AT)
    for k, mine in enumerate(out["picks"]):
        np.testing.assert_array_equal(mine, o["picks"].numpy()[:, k, :n])


def test_cmin_post_processing_of_model_fixtures(golden_csmgan_model):
    """Each CSMGAN model fixture records the official loop on its eval-branch boxes."""
    _, fx = golden_csmgan_model
    d = fx["decoded"]
    boxes = fx["outputs"]["eval_branch"]["refine_box"].numpy()
    num_frames = fx["inputs"]["frame_mask"].numpy().sum(1)
    out = pc.evaluate(d["scores"].numpy(), boxes, d["gt"].numpy(), num_frames,
                      tuple(d["iou_thresholds"]), tuple(d["top_n"]), full_picks=True)
    _check_official(out, d["picks"].numpy(), d["num_picks"].numpy(), d["boxes_int"].numpy(),
                    d["per_query_matrix"].numpy(), d["topn_IoU_sum"].numpy(), int(d["count"]),
                    d["recall"].numpy())


@pytest.mark.parametrize("m, expected", [(0.7, 0.6499999999999999), (0.1, 0.05)])
def test_nms_thresholds_are_float64_differences(m, expected):
    assert pc.nms_thresholds([m])[0] == expected


def test_rounding_is_half_to_even_and_clipping_one_sided():
    boxes = np.array([[[2.5, 3.5], [-0.5, 250.0], [203.7, 210.1], [-6.2, -1.6]]], np.float32)
    out = pc.round_clip_boxes(boxes, 200)
    np.testing.assert_array_equal(out[0], [[2, 4], [0, 199], [204, 199], [0, -2]])


def test_nms_ties_go_to_the_larger_index_and_nan_drops():
    scores = np.array([[0.5, 0.5, 0.9, 0.1]])
    boxes = np.array([[[0, 10], [40, 60], [5, 5], [5, 5]]])
    picks, num = pc.nms(scores, boxes, 0.45)
    # 2 first; 3 (zero length, same place: 0/0) is dropped; then 1 before 0 (equal scores)
    np.testing.assert_array_equal(picks[0], [2, 1, 0])
    assert num[0] == 3


def test_recall_iou_is_inclusive_and_at_least():
    # gt [10, 19] and box [14, 24]: inter 5 + 1, hull 14 + 1 -> 6/15 = 0.4 >= 0.4
    iou = pc.inclusive_iou(np.array([[10, 19]]), np.array([[[14, 24]]]))
    assert iou[0, 0] == 0.4
    hit = pc.hits(np.array([[0]]), np.array([1]), np.array([[[14, 24]]]),
                  np.array([[10, 19]]), 0.4, (1,))
    assert hit[0, 0]


def test_bad_box_shape_is_refused():
    with pytest.raises(ValueError, match="boxes must be"):
        pc.nms(np.zeros((2, 3)), np.zeros((2, 4, 2)), 0.5)


def test_evaluation_path_reproduces_the_official_table(golden_cmin_eval):
    """The engine's one evaluation path (prediction lines -> metrics) with ``protocol: cmin``
    on the fixture's boxes (1 frame = 1 s, so the ground truth's covering steps are the
    official frames) gives the official table; the common protocol does not."""
    from momentloc.config.schema import EvalConfig
    from momentloc.engine.predictions import candidates_to_lines, metrics_from_lines
    from momentloc.heads.anchors import AnchorLayout
    from momentloc.models.base import Candidates

    _, fx = golden_cmin_eval
    i, o = fx["inputs"], fx["outputs"]
    q, p = i["predict_flatten"].shape
    n = i["video_mask"].sum(1)
    dur = n.to(torch.float64)
    spans = AnchorLayout(torch.zeros(p, 2), torch.zeros(p)).decode(i["refine_box"].double(), dur, n)
    gt = i["gt"].double()
    cands = Candidates(spans=spans, scores=i["predict_flatten"].double(),
                       valid=torch.ones(q, p, dtype=torch.bool), steps=i["refine_box"])
    meta = [{"query_id": str(k), "video_id": "v"} for k in range(q)]
    ms = tuple(float(m) for m in pc.CMIN_IOU_THRESHOLDS)
    official, common = (EvalConfig(protocol=proto, nms_mode="per_metric", iou_thresholds=ms)
                        for proto in ("cmin", "standard"))
    results = {}
    for ecfg in (official, common):
        lines = candidates_to_lines(cands, meta, torch.stack([gt[:, 0], gt[:, 1] + 1], -1), dur,
                                    ecfg, lengths=n)
        results[ecfg.protocol] = metrics_from_lines(lines, ecfg)
    table = o["recall"].numpy()
    for r, nn in enumerate(pc.CMIN_RECALL_AT):
        for c, m in enumerate(ms):
            assert results["cmin"][f"R{nn}@{m:g}"] == table[r, c]
    assert any(results["standard"][f"R{nn}@{m:g}"] != table[r, c]
               for r, nn in enumerate(pc.CMIN_RECALL_AT) for c, m in enumerate(ms))

"""R@n IoU=m, mIoU and dR@n IoU=m: golden values by hand and a naive loop on random inputs."""

import numpy as np
import pytest

from momentloc.metrics import compute_metrics, metric_keys, recall_key
from momentloc.spans import temporal_iou


def test_iou_golden():
    assert temporal_iou(np.array([0.0, 2.0]), np.array([1.0, 3.0])) == pytest.approx(1 / 3)


# Three queries: a miss, a hit only at rank 3, and an IoU of exactly 0.5 at rank 1.
PRED = np.array([[[5, 6], [7, 8], [9, 10]],      # gt [0, 2]: every IoU is 0
                 [[0, 1], [2, 3], [0, 4]],       # gt [0, 4]: IoUs 0.25, 0.25, 1.0
                 [[0, 1], [0, 0], [0, 0]]], float)  # gt [0, 2]: IoU 0.5; two padded rows
VALID = np.array([[1, 1, 1], [1, 1, 1], [1, 0, 0]], bool)
GT = np.array([[0, 2], [0, 4], [0, 2]], float)


def test_recall_ge_vs_gt_and_miou():
    ge = compute_metrics(PRED, VALID, GT, (1, 5), (0.5,), iou_cmp="ge")
    gt = compute_metrics(PRED, VALID, GT, (1, 5), (0.5,), iou_cmp="gt")
    assert ge["R1@0.5"] == pytest.approx(1 / 3)            # query 3 at exactly 0.5
    assert ge["R5@0.5"] == pytest.approx(2 / 3)            # + query 2 at rank 3
    assert gt["R1@0.5"] == 0.0
    assert gt["R5@0.5"] == pytest.approx(1 / 3)
    assert ge["mIoU"] == pytest.approx((0 + 0.25 + 0.5) / 3)
    assert "dR1@0.5" not in ge                              # no durations given


def test_recall_cutoff_is_rank_among_valid_predictions():
    # The hit sits at column 3 but only two valid predictions precede it: rank 2.
    pred = np.array([[[5, 6], [9, 9], [0, 4], [0, 4]]], float)
    valid = np.array([[1, 0, 0, 1]], bool)
    m = compute_metrics(pred, valid, np.array([[0.0, 4.0]]), (1, 2), (0.5,))
    assert m["R1@0.5"] == 0.0 and m["R2@0.5"] == 1.0


def test_discounted_recall_by_hand():
    m = compute_metrics(PRED, VALID, GT, (1, 5), (0.5,), durations=[10.0, 10.0, 10.0])
    # Query 3: start exact, end off by 1 s of 10: (1 - 0)(1 - 0.1) = 0.9 at rank 1.
    # Query 2: [0, 4] matches exactly at rank 3: weight 1.
    assert m["dR1@0.5"] == pytest.approx(0.9 / 3)
    assert m["dR5@0.5"] == pytest.approx((1.0 + 0.9) / 3)
    off = compute_metrics(PRED, VALID, GT, (1,), (0.5,), durations=[10.0] * 3, discount=False)
    assert "dR1@0.5" not in off


def test_fewer_predictions_than_n_and_none_at_all():
    pred = np.zeros((2, 0, 2))
    m = compute_metrics(pred, np.zeros((2, 0), bool), np.array([[0, 1.0], [1, 2.0]]), (1, 5),
                        (0.5,), durations=[3.0, 3.0])
    assert m == {"R1@0.5": 0.0, "R5@0.5": 0.0, "mIoU": 0.0, "dR1@0.5": 0.0, "dR5@0.5": 0.0}
    one = compute_metrics(np.array([[[0, 1.0]]]), None, np.array([[0, 1.0]]), (5,), (0.7,))
    assert one["R5@0.7"] == 1.0


@pytest.mark.parametrize("bad", [
    dict(pred_spans=np.zeros((2, 3)), pred_valid=None, gt_spans=np.zeros((2, 2))),
    dict(pred_spans=np.zeros((2, 3, 2)), pred_valid=np.ones((2, 2), bool),
         gt_spans=np.zeros((2, 2))),
    dict(pred_spans=np.zeros((2, 3, 2)), pred_valid=None, gt_spans=np.zeros((3, 2))),
    dict(pred_spans=np.zeros((0, 3, 2)), pred_valid=None, gt_spans=np.zeros((0, 2))),
])
def test_bad_shapes_raise(bad):
    with pytest.raises(ValueError):
        compute_metrics(**bad)


def test_unknown_comparison_raises():
    with pytest.raises(ValueError, match="iou_cmp"):
        compute_metrics(PRED, VALID, GT, iou_cmp="geq")


def test_keys():
    assert recall_key(1, 0.5) == "R1@0.5" and recall_key(5, 0.7, True) == "dR5@0.7"
    assert metric_keys((1, 5), (0.3, 0.5)) == ["R1@0.3", "R1@0.5", "R5@0.3", "R5@0.5", "mIoU"]


def _naive(pred, valid, gt, dur, recall_at, thresholds, cmp, mode):
    out = {}
    for n in recall_at:
        for m in thresholds:
            hits, disc = [], []
            for q in range(len(pred)):
                kept = [k for k in range(pred.shape[1]) if valid[q, k]][:n]
                best_hit, best_w = 0.0, 0.0
                for k in kept:
                    iou = float(temporal_iou(pred[q, k], gt[q], mode))
                    ok = iou >= m if cmp == "ge" else iou > m
                    if ok:
                        best_hit = 1.0
                        w = (max(0.0, 1 - abs(pred[q, k, 0] - gt[q, 0]) / dur[q])
                             * max(0.0, 1 - abs(pred[q, k, 1] - gt[q, 1]) / dur[q]))
                        best_w = max(best_w, w)
                hits.append(best_hit)
                disc.append(best_w)
            out[f"R{n}@{m:g}"] = np.mean(hits)
            out[f"dR{n}@{m:g}"] = np.mean(disc)
    ious = []
    for q in range(len(pred)):
        ks = [k for k in range(pred.shape[1]) if valid[q, k]]
        ious.append(float(temporal_iou(pred[q, ks[0]], gt[q], mode)) if ks else 0.0)
    out["mIoU"] = np.mean(ious)
    return out


@pytest.mark.parametrize("cmp,mode",
                         [("ge", "seconds"), ("gt", "seconds"), ("ge", "inclusive_index")])
def test_vectorized_matches_naive_loop(cmp, mode):
    rng = np.random.default_rng(7)
    q, k = 80, 7
    # Half-second grid on [0, 20]: exact threshold ties happen and test the comparison.
    ends = np.sort(rng.integers(0, 41, size=(q, k + 1, 2)), axis=-1) / 2.0
    if mode == "inclusive_index":
        ends = np.round(ends)
    pred, gt = ends[:, :k], ends[:, k]
    valid = rng.random((q, k)) < 0.7
    dur = np.full(q, 20.0)
    thresholds, recall_at = (0.1, 0.3, 0.5, 0.7), (1, 3, 5)
    got = compute_metrics(pred, valid, gt, recall_at, thresholds, mode, cmp, durations=dur)
    want = _naive(pred, valid, gt, dur, recall_at, thresholds, cmp, mode)
    assert set(got) == set(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key

"""DiDeMo's annotator-aware protocol: a hand example and the official rule on full rankings."""

import itertools

import numpy as np
import pytest

from momentloc.metrics import didemo_metrics, spans_to_segments


def seconds(i, j):
    return [5.0 * i, 5.0 * j + 5.0]


def test_spans_to_segments_rounds_to_the_video_grid():
    spans = np.array([[[0, 5], [5, 30], [2.4, 7.6], [27, 27], [12.5, 12.5], [20, 27]]], float)
    got = spans_to_segments(spans, [27.0])
    # [2.4, 7.6] -> boundaries 0 and 10; 12.5 ties go to the earlier boundary and the
    # collapsed span keeps one segment; 27 s is the end of the cut last segment.
    assert got.tolist() == [[[0, 0], [1, 5], [0, 1], [5, 5], [2, 2], [4, 5]]]
    # A 25-s video has five segments: an end past 25 s stays in segment 4.
    assert spans_to_segments(np.array([[[20.0, 30.0]]]), [25.0]).tolist() == [[[4, 4]]]
    assert spans_to_segments(np.array([[[20.0, 30.0]]])).tolist() == [[[4, 5]]]


def test_hand_example_with_four_annotators():
    pad = [0.0, 0.0]
    pred = np.array([
        # ranks of distinct moments: (1,1)=1, (1,2)=2, (0,0)=3, (2,2)=4; [5, 10.5] repeats (1,1)
        [seconds(1, 1), seconds(1, 2), seconds(0, 0), [5.0, 10.5], seconds(2, 2)],
        [seconds(0, 0), seconds(2, 3), pad, pad, pad],
        [[20.0, 27.0], [25.0, 27.0], pad, pad, pad],    # 27-s video: last segment is 25-27 s
        [pad] * 5,
    ])
    valid = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], bool)
    ann = np.array([
        [seconds(1, 1), seconds(1, 2), seconds(2, 2), seconds(4, 5)],
        [seconds(0, 0), seconds(0, 0), seconds(0, 0), seconds(3, 3)],
        [[25.0, 27.0], [25.0, 27.0], [25.0, 27.0], [20.0, 27.0]],
        [seconds(1, 1), seconds(2, 2), pad, pad],
    ])
    ann_valid = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]], bool)
    m = didemo_metrics(pred, valid, ann, ann_valid, durations=[30.0, 30.0, 27.0, 30.0])
    # q1: ranks 1, 2, 4, inf -> mean of best 3 = 7/3; IoUs with (1,1): 1, 1/2, 0, 0 -> 1/2.
    # q2: ranks 1, 1, 1, inf -> 1; IoUs 1, 1, 1, 0 -> 1.
    # q3: ranks 2, 2, 2, 1 -> 5/3; top-1 (4,5): IoUs 1/2, 1/2, 1/2, 1 -> 2/3.
    # q4: no prediction: ranks inf, IoU 0 (two annotators only).
    assert m["R1"] == pytest.approx(1 / 4)
    assert m["R5"] == pytest.approx(3 / 4)
    assert m["mIoU"] == pytest.approx((0.5 + 1.0 + 2 / 3 + 0.0) / 4)


def _official(rankings, annotations):
    """The official rule on index moments: every ranking lists all 21 moments."""
    def iou(p, g):
        inter = max(0, min(p[1], g[1]) + 1 - max(p[0], g[0]))
        return inter / (max(p[1], g[1]) + 1 - min(p[0], g[0]))

    ranks, ious = [], []
    for ranking, times in zip(rankings, annotations):
        ious.append(np.mean(np.sort([iou(ranking[0], t) for t in times])[-3:]))
        ranks.append(np.mean(np.sort([ranking.index(t) + 1 for t in times])[:3]))
    ranks = np.array(ranks)
    return {"R1": np.mean(ranks <= 1), "R5": np.mean(ranks <= 5), "mIoU": np.mean(ious)}


def test_matches_the_official_rule_on_full_rankings():
    rng = np.random.default_rng(3)
    moments = [(i, j) for i, j in itertools.combinations_with_replacement(range(6), 2)]
    assert len(moments) == 21
    rankings, annotations = [], []
    for _ in range(300):
        order = rng.permutation(21)
        rankings.append([moments[o] for o in order])
        # Annotators often agree: draw from a few moments near the top of the ranking.
        pool = order[:rng.integers(1, 15)]
        annotations.append([moments[o] for o in rng.choice(pool, size=4)])
    pred = np.array([[seconds(*m) for m in r] for r in rankings])
    ann = np.array([[seconds(*m) for m in a] for a in annotations])
    got = didemo_metrics(pred, None, ann, None, durations=np.full(300, 30.0))
    want = _official(rankings, annotations)
    assert 0 < want["R1"] < want["R5"] < 1
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12)


def test_query_without_annotators_raises():
    with pytest.raises(ValueError, match="annotator"):
        didemo_metrics(np.zeros((1, 1, 2)), None, np.zeros((1, 2, 2)), np.zeros((1, 2), bool))

"""Random and prior baselines: seeding, a hand-fitted prior, greedy coverage vs brute force."""

import numpy as np
import pytest

from momentloc.data.records import MomentRecord
from momentloc.errors import DataError
from momentloc.metrics.baselines import PriorBaseline, random_baseline
from momentloc.spans import temporal_iou


def rec(i, duration, s, e):
    return MomentRecord(f"q{i}", f"v{i}", duration, "a query", (s, e))


def test_random_baseline_is_seeded_and_inside_the_video():
    records = [rec(0, 10.0, 1, 2), rec(1, 200.0, 5, 9)]
    spans, scores = random_baseline(records, 5, seed=3)
    assert spans.shape == (2, 5, 2) and scores.shape == (2, 5)
    assert np.all(spans[..., 0] <= spans[..., 1]) and np.all(spans >= 0)
    assert np.all(spans[0] <= 10.0) and np.all(spans[1] <= 200.0)
    assert np.all(np.diff(scores, axis=1) < 0)
    again, _ = random_baseline(records, 5, seed=3)
    other, _ = random_baseline(records, 5, seed=4)
    np.testing.assert_array_equal(spans, again)
    assert not np.allclose(spans, other)


def test_prior_fitted_by_hand():
    # Normalized training spans: [0, 0.5] three times (videos of 10, 20, 40 s), [0.5, 1] once.
    train = [rec(0, 10.0, 0, 5), rec(1, 20.0, 0, 10), rec(2, 40.0, 0, 20), rec(3, 8.0, 4, 8)]
    prior = PriorBaseline(iou_threshold=0.7, num_moments=3, grid_step=0.25).fit(train)
    # At IoU 0.7 (0, 0.5) hits three spans, (0.5, 1) the fourth; (0, 1) hits none (IoU 0.5).
    # Nothing is left to cover for the third: the most hits alone (all 0), then the highest
    # mean IoU: (0, 0.75) has (3 * 2/3 + 1/4) / 4 = 0.5625, ahead of (0, 1) at 0.5.
    assert prior.moments.tolist() == [[0.0, 0.5], [0.5, 1.0], [0.0, 0.75]]
    assert prior.gains.tolist() == [0.75, 0.25, 0.0]
    spans, scores = prior.predict([rec(9, 8.0, 0, 1)], top_k=5)
    assert spans.tolist() == [[[0.0, 4.0], [4.0, 8.0], [0.0, 6.0]]]
    assert scores.shape == (1, 3)
    assert prior.predict([rec(9, 8.0, 0, 1)], top_k=1)[0].tolist() == [[[0.0, 4.0]]]


def test_at_iou_half_the_whole_video_covers_every_half_video_moment():
    train = [rec(0, 10.0, 0, 5), rec(1, 20.0, 10, 20)]
    prior = PriorBaseline(iou_threshold=0.5, num_moments=1, grid_step=0.25).fit(train)
    assert prior.moments.tolist() == [[0.0, 1.0]]


def _brute_force(norm, cells, thr, k):
    ious = np.array([[float(temporal_iou(c, g)) for g in norm] for c in cells])
    hits, mean_iou = ious >= thr, ious.mean(axis=1)
    counts, covered, chosen = hits.sum(1), np.zeros(len(norm), bool), []
    for _ in range(k):
        best_key, best = None, None
        for c in range(len(cells)):
            key = ((hits[c] & ~covered).sum(), counts[c], mean_iou[c])
            if c not in chosen and (best_key is None or key > best_key):
                best_key, best = key, c
        chosen.append(best)
        covered |= hits[best]
    return cells[chosen], covered.mean()


def test_greedy_matches_brute_force():
    rng = np.random.default_rng(0)
    dur = rng.uniform(5, 50, 120)
    norm = np.sort(rng.random((120, 2)), axis=1) ** np.array([1.5, 0.7])  # skewed starts and ends
    norm = np.sort(norm, axis=1)
    train = [rec(i, float(d), float(s * d), float(e * d))
             for i, (d, (s, e)) in enumerate(zip(dur, norm))]
    prior = PriorBaseline(iou_threshold=0.5, num_moments=4, grid_step=0.1).fit(train)
    cells = np.array([(i / 10, j / 10) for i in range(11) for j in range(i + 1, 11)])
    want, coverage = _brute_force(np.array([r.span for r in train]) / dur[:, None], cells, 0.5, 4)
    np.testing.assert_allclose(prior.moments, want)
    assert prior.gains.sum() == pytest.approx(coverage)


def test_save_load_round_trip_and_bad_files(tmp_path):
    prior = PriorBaseline(0.5, 2, 0.1).fit([rec(0, 10.0, 1, 4), rec(1, 10.0, 5, 9)])
    path = tmp_path / "prior.json"
    prior.save(path)
    back = PriorBaseline.load(path)
    np.testing.assert_array_equal(back.moments, prior.moments)
    assert (back.iou_threshold, back.num_moments, back.num_train) == (0.5, 2, 2)
    for text in ['{"kind": "random"}', "not json", '{"kind": "prior", "iou_threshold": 0.5, '
                 '"num_moments": 1, "grid_step": 0.1, "moments": [[0.7, 0.2]]}']:
        path.write_text(text)
        with pytest.raises(DataError, match="prior.json"):
            PriorBaseline.load(path)
    with pytest.raises(DataError, match="no training records"):
        PriorBaseline().fit([])
    with pytest.raises(ValueError, match="grid_step"):
        PriorBaseline(grid_step=0.3).fit([rec(0, 10.0, 1, 4)])

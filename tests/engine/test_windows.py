"""Sliding windows over long videos (momentloc.engine.windows), on tiny synthetic features."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from momentloc.data.resample import resample
from momentloc.engine.windows import (WindowSettings, gather_windows, merge_windows, slide,
                                      to_absolute, window_length, window_starts)
from momentloc.errors import ConfigError
from momentloc.spans import temporal_iou


def test_window_starts_stride_and_a_last_window_flush_with_the_end():
    np.testing.assert_array_equal(window_starts(10, 4, 2), [0, 2, 4, 6])
    np.testing.assert_array_equal(window_starts(11, 4, 3), [0, 3, 6, 7])
    np.testing.assert_array_equal(window_starts(4, 4, 2), [0])
    np.testing.assert_array_equal(window_starts(3, 4, 2), [0])
    with pytest.raises(ValueError, match="stride"):
        window_starts(10, 4, 0)


def test_gather_windows_copies_each_window():
    feats = np.arange(20, dtype=np.float32).reshape(10, 2)          # clip i = (2i, 2i + 1)
    w = gather_windows(feats, np.array([0, 3, 6]), 4)
    assert w.shape == (3, 4, 2)
    np.testing.assert_array_equal(w[1, :, 0], [6, 8, 10, 12])
    np.testing.assert_array_equal(w[2, -1], feats[9])
    short = gather_windows(feats[:3], np.array([0]), 4)              # M < W repeats the last
    np.testing.assert_array_equal(short[0, :, 0], [0, 2, 4, 4])


def test_to_absolute_adds_each_windows_offset():
    spans = torch.tensor([[[[1.0, 2.0]]], [[[0.5, 3.0]]]])           # (2 windows, 1, 1, 2)
    out = to_absolute(spans, torch.tensor([0.0, 12.5]))
    assert out.tolist() == [[[[1.0, 2.0]]], [[[13.0, 15.5]]]]


def test_merge_suppresses_the_same_moment_seen_by_two_windows():
    # query 0: window A sees [10, 14] (0.9), window B the same moment as [10.5, 14] (0.8) and
    # another at [30, 32] (0.7); query 1 has one valid candidate only
    spans = torch.tensor([[[10.0, 14.0], [10.5, 14.0], [30.0, 32.0]],
                          [[1.0, 2.0], [5.0, 6.0], [7.0, 8.0]]])
    scores = torch.tensor([[0.9, 0.8, 0.7], [0.2, 0.9, 0.3]])
    valid = torch.tensor([[True, True, True], [True, False, False]])
    picked, sc, kept = merge_windows(spans, scores, valid, 0.5, 2)
    assert kept.tolist() == [[True, True], [True, False]]
    assert picked[0].tolist() == [[10.0, 14.0], [30.0, 32.0]]
    assert sc[0].tolist() == pytest.approx([0.9, 0.7])
    assert picked[1, 0].tolist() == [1.0, 2.0]


def fixed_scorer(spans, base):
    """A scorer giving every window the same candidates ``spans`` (seconds from its start) with
    scores ``base`` plus the window's first feature / 100 (its first clip index: later windows
    rank higher)."""
    def score(windows, seconds):
        b, k = windows.shape[0], len(spans)
        sc = torch.tensor(base)[None, :] + torch.from_numpy(windows[:, 0, 0] / 100)[:, None]
        return (torch.tensor(spans).expand(b, 1, k, 2), sc[:, None, :],
                torch.ones(b, 1, k, dtype=torch.bool))
    return score


def test_slide_maps_every_window_to_absolute_seconds_and_merges():
    feats = np.arange(11, dtype=np.float64)[:, None]                 # clip i has feature i
    # 11 clips over 22 s (dt = 2 s); windows of 4 clips (8 s) every 3: starts 0, 3, 6, 7
    scorer = fixed_scorer([[3.0, 4.0], [3.1, 4.1]], [0.0, 0.0])
    spans, scores, kept = slide(feats, 22.0, scorer, window=4, stride=3, nms_thresh=0.5,
                                top_k=3, windows_per_batch=3)
    assert kept.tolist() == [[True, True, True]]
    # best: the last (flush) window at 7 * 2 = 14 s, then 6 -> 12 s, then 3 -> 6 s; each
    # window's [3.1, 4.1] lost to its [3, 4] in the first NMS, and [15, 16] (start 6) does
    # not overlap [17, 18]
    assert spans[0].tolist() == [[17.0, 18.0], [15.0, 16.0], [9.0, 10.0]]
    assert scores[0].tolist() == pytest.approx([0.07, 0.06, 0.03])


def test_spans_cut_by_a_window_edge_rank_after_the_others():
    feats = np.arange(11, dtype=np.float64)[:, None]
    # [0.5, 1.5] touches the start of windows 3, 6, 7 (an edge inside the video), not of
    # window 0 (the video's start); [6.5, 8] touches the end of windows 0, 3, 6, not of 7
    scorer = fixed_scorer([[0.5, 1.5], [3.0, 4.0], [6.5, 8.0]], [0.9, 0.1, 0.8])
    spans, scores, kept = slide(feats, 22.0, scorer, window=4, stride=3, nms_thresh=0.5,
                                top_k=12, windows_per_batch=2)
    ranked = [tuple(s) for s in spans[0][kept[0]].tolist()]
    # interior: [0.5, 1.5] of window 0 (0.9), [20.5, 22] of window 7 (0.87), then every [3, 4]
    assert ranked[:2] == [(0.5, 1.5), (20.5, 22.0)]
    assert ranked[2:6] == [(17.0, 18.0), (15.0, 16.0), (9.0, 10.0), (3.0, 4.0)]
    assert scores[0, 2].item() == pytest.approx(0.17)
    # then the cut ones by score: [12.5, 13.5] (0.96) suppresses [12.5, 14] (0.83) and
    # [6.5, 7.5] (0.93) suppresses [6.5, 8] (0.80)
    assert ranked[6:] == [(14.5, 15.5), (12.5, 13.5), (6.5, 7.5), (18.5, 20.0)]


N = 16  # the toy model's clip count


def contrast_scorer(windows, seconds):
    """A toy grounding model: resample each window to N steps (as training does), score every
    span ``[i, j]`` of the N-step grid by its mean minus the mean of the rest of the window."""
    b, w, d = windows.shape
    pooled, _ = resample(windows.transpose(1, 0, 2).reshape(w, b * d), N)
    x = torch.from_numpy(pooled.reshape(N, b, d)[:, :, 0].T.copy()).double()   # (B, N)
    i, j = torch.triu_indices(N, N)
    csum = torch.nn.functional.pad(x.cumsum(1), (1, 0))
    inside = (csum[:, j + 1] - csum[:, i]) / (j - i + 1)
    rest = N - (j - i + 1)
    outside = (csum[:, -1:] - (csum[:, j + 1] - csum[:, i])) / rest.clamp_min(1)
    scores = (inside - outside)[:, None, :]
    spans = torch.stack([i, j + 1], -1).double() * seconds / N
    k = spans.shape[0]
    return spans.expand(b, 1, k, 2), scores, torch.ones(b, 1, k, dtype=torch.bool)


def test_a_short_moment_in_a_long_sequence_is_found_by_windows_and_lost_by_resampling():
    rng = np.random.default_rng(0)
    m = 2000                                   # 2000 clips, 1 s each; the toy model's horizon
    feats = (0.05 * rng.standard_normal((m, 3))).astype(np.float32)  # is 32 clips
    truth = torch.tensor([1001.0, 1011.0])     # a 10-s moment
    feats[1001:1011, 0] += 1.0
    spans, _, kept = slide(feats, float(m), contrast_scorer, window=32, stride=16,
                           nms_thresh=0.5, top_k=5)
    assert kept[0, 0]
    assert temporal_iou(spans[0, 0], truth.double()) >= 0.5
    # the whole video resampled to N steps (one window of every clip): one step is 125 s
    whole, _, _ = slide(feats, float(m), contrast_scorer, window=m, stride=m, nms_thresh=0.5,
                        top_k=5)
    assert temporal_iou(whole[0, 0], truth.double()) < 0.1
    assert 0.0 <= float(spans.min()) and float(spans.max()) <= m


def test_settings_are_checked():
    for bad in (dict(mode="sometimes"), dict(seconds=0.0), dict(seconds=float("nan")),
                dict(overlap=1.0), dict(overlap=-0.1), dict(factor=0.5)):
        with pytest.raises(ConfigError):
            WindowSettings(**bad)


def fake_predictor(mode="auto", seconds=None, train_durations=(10.0, 16.0, 20.0, 16.0),
                   fps=None):
    records = [SimpleNamespace(video_id=f"v{i}", duration=d)
               for i, d in enumerate(train_durations)]
    spec = SimpleNamespace(fps=fps, clip_stride_frames=4) if fps else None
    return SimpleNamespace(windowing=WindowSettings(mode, seconds),
                           data=SimpleNamespace(records=lambda role: records),
                           card=SimpleNamespace(features=spec),
                           cfg=SimpleNamespace(data=SimpleNamespace(num_clips=32)))


def test_when_windows_switch_on():
    auto = fake_predictor()                           # median training video: 16 s
    assert window_length(auto, 48.0) is None          # up to 3 horizons: the whole video
    assert window_length(auto, 48.5) == 16.0
    assert window_length(fake_predictor("on"), 16.5) == 16.0
    assert window_length(fake_predictor("on"), 16.0) is None
    assert window_length(fake_predictor("off"), 3600.0) is None
    assert window_length(fake_predictor("on", seconds=30.0), 40.0) == 30.0
    # no training records: num_clips clips at the card's rate (32 clips at 2 clips/s)
    assert window_length(fake_predictor("on", train_durations=(), fps=8.0), 100.0) == 16.0
    with pytest.raises(ConfigError, match="horizon is unknown"):
        window_length(fake_predictor("on", train_durations=()), 100.0)

"""Long videos: the long shapes world, bounded-memory decoding, and windowed prediction."""

import json
import tracemalloc

import numpy as np
import pytest

from momentloc.cli.main import main
from momentloc.data.card import load_card
from momentloc.data.converters import load_split
from momentloc.engine.inference import Predictor
from momentloc.engine.windows import WindowSettings, trained_horizon
from momentloc.video.decode import ClipReader, ClipSampling
from momentloc.video.shapes import (FPS, long_frames, long_sentences, plan_long_video,
                                    synthesize_shapes)

pytest.importorskip("av", reason="PyAV (the 'video' extra) is not installed")


def test_a_long_video_has_one_new_sentence_per_scene_known_to_the_frame():
    scenes = plan_long_video("te0000", "test", 3.0, np.random.default_rng(5))
    duration = scenes[-1][0] + scenes[-1][1].duration
    assert duration >= 180.0 and all(o == int(o) for o, _ in scenes)
    moments = long_sentences(scenes)
    texts = [t for t, _, _ in moments]
    assert len(texts) == len(set(texts)) > 5                   # every sentence names one moment
    assert all(sum(len(o.events) for o in sc.objects) <= 1 for _, sc in scenes)
    assert all(0 <= s < e <= duration for _, s, e in moments)
    frames = np.stack(list(long_frames(scenes))).astype(np.int16)
    assert len(frames) == round(duration * FPS)
    # pixels change only during a moment or at a cut between scenes (frame i shows time
    # (i + 0.5) / FPS)
    changed = np.abs(np.diff(frames, axis=0)).reshape(len(frames) - 1, -1).max(1) > 0
    t = (np.arange(1, len(frames)) + 0.5) / FPS               # time of the later frame
    during = np.zeros_like(changed)
    for _, s, e in moments:
        during |= (t > s) & (t < e + 1.0 / FPS)
    cut = np.isin(np.arange(1, len(frames)), [round(o * FPS) for o, _ in scenes])
    assert not (changed & ~during & ~cut).any()
    assert (changed & during).sum() > 0.9 * during.sum()       # and they do change then


@pytest.mark.slow
def test_the_long_size_shares_the_small_training_videos(tmp_path):
    long = synthesize_shapes("long", 0, tmp_path / "long", videos=(2, 1), long_minutes=1.0)
    small = synthesize_shapes("small", 0, tmp_path / "small", videos=(2, 1), extract=False)
    lc, sc = load_card(str(long.card_path)), load_card(str(small.card_path))
    key = [(r.video_id, r.query, r.span, r.duration) for r in load_split(lc, "train")]
    assert key == [(r.video_id, r.query, r.span, r.duration) for r in load_split(sc, "train")]
    test = load_split(lc, "test")
    assert {r.video_id for r in test} == {"te0000"} and test[0].duration >= 60.0
    assert len({r.query for r in test}) == len(test)
    side = json.loads((tmp_path / "long" / "features_colorhist.hdf5.json").read_text())
    assert side["videos"]["te0000"]["num_clips"] == int(np.ceil(test[0].duration * 2))
    assert "60 minutes" not in lc.notes and "1 minutes" in lc.notes


@pytest.fixture(scope="module")
def long_file(tmp_path_factory):
    """A rendered two-minute shapes video (960 frames of 64 x 64)."""
    from momentloc.video.encode import write_video

    scenes = plan_long_video("te0000", "test", 2.0, np.random.default_rng(1))
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    write_video(path, long_frames(scenes), fps=FPS)
    return path, scenes[-1][0] + scenes[-1][1].duration


def test_decoding_streams_in_memory_bounded_by_the_batch(long_file):
    path, duration = long_file
    sampling = ClipSampling(clip_rate=2.0, frames_per_clip=4, max_side=64)
    every_sample = sampling.num_clips(duration) * 4 * 64 * 64 * 3    # bytes of all clips
    batch = 4 * 4 * 64 * 64 * 3                                      # bytes of one batch
    tracemalloc.start()
    try:
        reader = ClipReader(path, sampling)
        clips = 0
        for first, frames in reader.batches(4):
            assert first == clips and frames.shape[1:] == (4, 64, 64, 3)
            clips += len(frames)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert clips == reader.num_clips == sampling.num_clips(duration)
    assert peak < 10 * batch < every_sample / 4       # a few batches, not the whole video


def test_extraction_holds_features_not_frames(long_file):
    from momentloc.video.extractors import create_extractor

    path, duration = long_file
    ex = create_extractor("colorhist", clip_rate=2.0, max_side=64)
    tracemalloc.start()
    try:
        got = ex.extract(path, batch_clips=8)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    frames = got.features.shape[0] * 4 * 64 * 64 * 3
    assert got.features.shape == (ex.sampling.num_clips(duration), ex.dim)
    assert peak < frames / 2


def test_predictor_slides_windows_over_a_long_input(shapes_run):
    world, run_dir = shapes_run
    pred = Predictor(run_dir)
    horizon = trained_horizon(pred)
    assert 12.0 <= horizon <= 20.0                    # the median training video
    videos = sorted({r.video_id for r in load_split(pred.card, "train")})
    parts = [pred.data.video_features(v) for v in videos]
    feats = np.concatenate([f for f, _ in parts])     # about two minutes of video
    duration = sum(d for _, d in parts)
    queries = ["the red circle grows", "the blue square moves to the left"]
    assert duration > 3 * horizon
    auto = pred.localize(feats, duration, queries, top_k=4)
    pred.windowing = WindowSettings("on")
    assert auto == pred.localize(feats, duration, queries, top_k=4)
    pred.windowing = WindowSettings("off")
    whole = pred.localize(feats, duration, queries, top_k=4)
    assert whole != auto
    for moments in auto:
        assert [m.rank for m in moments] == [1, 2, 3, 4]
        assert all(0 <= m.start < m.end <= duration + 1e-6 for m in moments)
        assert [m.score for m in moments] == sorted((m.score for m in moments), reverse=True)
    # the whole video's moments are whole steps of duration / num_clips seconds; a window's
    # moments lie within one window of the trained horizon (rounded to whole clips)
    step = duration / pred.cfg.data.num_clips
    lengths = np.array([m.end - m.start for ms in whole for m in ms]) / step
    np.testing.assert_allclose(lengths, np.rint(lengths), atol=1e-4)
    dt = duration / feats.shape[0]
    window = round(horizon / dt) * dt
    assert max(m.end - m.start for ms in auto for m in ms) <= window + 1e-6
    # a video within the horizon is not windowed in auto mode
    pred.windowing = WindowSettings()
    short, d = parts[0]
    pred_off = Predictor(run_dir)
    pred_off.windowing = WindowSettings("off")
    assert pred.localize(short, d, queries) == pred_off.localize(short, d, queries)


def test_predict_command_window_options(shapes_run, tmp_path, capsys):
    world, run_dir = shapes_run
    pred = Predictor(run_dir)
    feats = np.concatenate([pred.data.video_features(v)[0]
                            for v in sorted({r.video_id for r in load_split(pred.card, "train")})])
    np.save(tmp_path / "long.npy", feats)
    duration = feats.shape[0] / 2.0
    base = ["predict", str(run_dir), "--video", str(tmp_path / "long.npy"), "--duration",
            str(duration), "--query", "the red circle grows", "--json"]
    runs = {}
    for name, extra in {"auto": [], "window": ["--window"], "window20": ["--window", "20"],
                        "off": ["--no-window"]}.items():
        assert main(base + extra) == 0
        runs[name] = json.loads(capsys.readouterr().out)["results"][0]["moments"]
    assert runs["auto"] == runs["window"] != runs["off"]
    assert runs["window20"] != runs["window"]
    assert main(base + ["--window", "--no-window"]) == 1
    assert "exclude each other" in capsys.readouterr().err
    assert main(base + ["--window-overlap", "1.5"]) == 1
    assert "overlap must be in [0, 1)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(base + ["--window", "-3"])

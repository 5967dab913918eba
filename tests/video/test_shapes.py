import json

import numpy as np
import pytest

from momentloc.cli.main import main
from momentloc.data.converters import load_split
from momentloc.data.card import load_card
from momentloc.data.features import open_store
from momentloc.video.shapes import (COLOURS, ShapeEvent, ShapeObject, ShapeVideo, plan_video,
                                    render, sentences, vocabulary)

pytest.importorskip("av", reason="PyAV (the 'video' extra) is not installed")


def test_plans_are_deterministic_and_events_fit_the_video():
    a = [plan_video(f"v{i}", "train", np.random.default_rng(3)) for i in range(1)]
    b = [plan_video(f"v{i}", "train", np.random.default_rng(3)) for i in range(1)]
    assert a == b
    rng = np.random.default_rng(0)
    for i in range(40):
        v = plan_video(f"v{i}", "train", rng)
        colours = [o.colour for o in v.objects] + [e.new_colour for o in v.objects for e in o.events
                                                   if e.new_colour]
        assert len(colours) == len(set(colours))      # every sentence names one shape
        for o in v.objects:
            for e in o.events:
                assert 0 < e.start < e.end <= v.duration and 1.9 <= e.end - e.start <= 5.1
            for e1, e2 in zip(o.events, o.events[1:]):
                assert e1.end <= e2.start              # one shape does one thing at a time
        assert len(sentences(v)) == sum(len(o.events) for o in v.objects)


def _pixels_of(frames, colour):
    return (np.abs(frames.astype(int) - np.array(colour)).sum(-1) < 30).sum((1, 2))


def test_rendered_events_happen_when_their_sentences_say():
    v = ShapeVideo("v", "train", 4.0, [
        ShapeObject("circle", "red", 0.5, 0.5, 0.15, [ShapeEvent("appears", 1.0, 2.0)]),
        ShapeObject("square", "blue", 0.7, 0.3, 0.12, [ShapeEvent("left", 1.0, 3.0),
                                                       ShapeEvent("recolour", 3.0, 3.9, "green")]),
    ])
    frames = render(v, size=64, fps=8)
    assert frames.shape == (32, 64, 64, 3) and frames.dtype == np.uint8
    red = _pixels_of(frames, COLOURS["red"])
    assert red[:8].max() == 0 and red[-8:].min() > 100       # absent before 1 s, there after 2 s
    blue = np.abs(frames.astype(int) - COLOURS["blue"]).sum(-1) < 30
    cols = [np.nonzero(blue[i].any(0))[0].mean() for i in (4, 23)]
    assert cols[1] < cols[0] - 15                            # moved left by 0.3 * 64 px
    assert _pixels_of(frames[-1:], COLOURS["green"])[0] > 50 and blue[-1].sum() == 0
    assert sentences(v) == [("the blue square moves to the left", 1.0, 3.0),   # by start time
                            ("the red circle appears", 1.0, 2.0),
                            ("the blue square turns green", 3.0, 3.9)]
    assert {"red", "circle", "left", "turns"} <= set(vocabulary())


def test_shapes_world_is_a_readable_benchmark(shapes_run):
    world, _ = shapes_run
    card = load_card(str(world / "dataset.yaml"))
    assert card.format == "charades_sta" and card.features.extractor.startswith("colorhist(")
    assert "momentloc extract" in card.notes
    train = load_split(card, "train")
    test = load_split(card, "test")
    assert len({r.video_id for r in train}) == 8 and len({r.video_id for r in test}) == 3
    store = open_store(card)
    side = json.loads((world / "features_colorhist.hdf5.json").read_text())
    for r in train + test:
        assert (world / "videos" / f"{r.video_id}.mp4").is_file()
        assert 0 <= r.span[0] < r.span[1] <= r.duration
        assert side["videos"][r.video_id]["duration"] == pytest.approx(r.duration)
        assert store.get(r.video_id).shape == (int(np.ceil(r.duration * 2)), card.features.dim)
    words = {line.split()[0] for line in (world / card.word_vectors).read_text().splitlines()}
    assert all(w in words for r in train for w in r.query.split())


def test_synth_command_knows_the_shapes_preset(tmp_path, capsys):
    assert main(["synth", "--preset", "shapes", "--size", "full", "--out", str(tmp_path / "x")]) == 1
    assert "tiny, small" in capsys.readouterr().err
    assert main(["synth", "--preset", "shapes", "--label-jitter", "0.1", "--out",
                 str(tmp_path / "y")]) == 1

"""Video file -> extraction -> trained run -> moments, through `momentloc predict`."""

import json
import shutil

import pytest

from momentloc.cli.main import main
from momentloc.data.converters import load_split
from momentloc.data.card import load_card
from momentloc.engine.inference import Predictor

pytest.importorskip("av", reason="PyAV (the 'video' extra) is not installed")


def test_predict_on_a_video_file(shapes_run, capsys):
    world, run_dir = shapes_run
    record = load_split(load_card(str(world / "dataset.yaml")), "test")[0]
    video = world / "videos" / f"{record.video_id}.mp4"
    code = main(["predict", str(run_dir), "--video", str(video), "--query", record.query,
                 "--query", "the red circle grows", "--top-k", "3", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["video"] == record.video_id
    assert out["duration"] == pytest.approx(record.duration)     # from the video file
    assert [r["query"] for r in out["results"]] == [record.query, "the red circle grows"]
    for r in out["results"]:
        assert 1 <= len(r["moments"]) <= 3
        for m in r["moments"]:
            assert 0 <= m["start"] <= m["end"] <= record.duration + 1e-6


def test_video_features_equal_the_extracted_store(shapes_run):
    world, run_dir = shapes_run
    pred = Predictor(run_dir)
    record = load_split(pred.card, "test")[0]
    feats, duration = pred.extract_features(world / "videos" / f"{record.video_id}.mp4")
    stored, _ = pred.data.video_features(record.video_id)
    assert feats.shape == stored.shape and duration == pytest.approx(record.duration)
    assert abs(feats - stored).max() < 1e-5


def test_predict_refuses_another_extractor(shapes_run, tmp_path, capsys):
    world, run_dir = shapes_run
    video = next((world / "videos").glob("*.mp4"))
    assert main(["predict", str(run_dir), "--video", str(video), "--query", "x",
                 "--extractor", "clip"]) == 1
    assert "not clip" in capsys.readouterr().err
    # a run trained on outside features (I3D) cannot extract them from a file
    other = tmp_path / "run"
    shutil.copytree(run_dir, other)
    card = (other / "dataset.yaml").read_text()
    extractor_line = next(x for x in card.splitlines() if x.strip().startswith("extractor:"))
    (other / "dataset.yaml").write_text(card.replace(extractor_line, "  extractor: I3D (Kinetics)"))
    assert main(["predict", str(other), "--video", str(video), "--query", "x"]) == 1
    assert "not made by a momentloc extractor" in capsys.readouterr().err
    # the same extractor name with other settings is refused too
    changed = extractor_line.replace("grid=3", "grid=2")
    (other / "dataset.yaml").write_text(card.replace(extractor_line, changed))
    assert main(["predict", str(other), "--video", str(video), "--query", "x"]) == 1
    err = capsys.readouterr().err
    assert "feature dimension" in err or "differs" in err

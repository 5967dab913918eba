"""The Python API: `import momentloc` is light, the README's example runs as written, and
train / evaluate / synthesize / predict work from Python with the CLI's configs and JSON."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import momentloc
from momentloc.errors import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_import_is_light_and_exports_the_api():
    code = ("import sys, momentloc; assert 'torch' not in sys.modules; "
            "print(sorted(momentloc.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names = eval(out.stdout)
    for name in ["load", "train", "evaluate", "synthesize", "load_config", "Predictor",
                 "Prediction", "Moment", "predict_files"]:
        assert name in names and name in dir(momentloc)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        momentloc.nothing


def test_readme_example_runs_as_written(shapes_run, tmp_path, monkeypatch, capsys):
    pytest.importorskip("av", reason="PyAV (the 'video' extra) is not installed")
    world, run_dir = shapes_run
    code = readme_example()
    assert len(code.strip().splitlines()) == 3
    paths = re.findall(r'"([^"]+/[^"]+)"', code)           # the run and the video it names
    run_path, video_path = paths
    (tmp_path / run_path).parent.mkdir(parents=True)
    (tmp_path / run_path).symlink_to(run_dir)
    (tmp_path / video_path).parent.mkdir(parents=True)
    (tmp_path / video_path).symlink_to(next((world / "videos").glob("te*.mp4")))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOMENTLOC_CACHE_DIR", str(tmp_path / "cache"))
    exec(compile(code, str(README), "exec"), {})
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["video", "query", "duration", "moments", "unknown_words", "warning"]
    assert out["video"] == Path(video_path).stem and out["moments"]


def test_train_evaluate_synthesize_from_python(tmp_path):
    card = momentloc.synthesize("charades", tmp_path / "data", size="tiny", seed=1)
    assert card == tmp_path / "data" / "dataset.yaml" and card.is_file()
    cfg = momentloc.load_config("tan2d", "synthetic", ["train.epochs=1", "train.max_steps=2",
                                                       "train.progress=false"])
    assert isinstance(cfg, momentloc.ExperimentConfig)
    result = momentloc.train(cfg, tmp_path / "run", dataset=str(card))
    assert isinstance(result, momentloc.TrainResult) and "R1@0.5" in result.test_metrics
    evaluated = momentloc.evaluate(tmp_path / "run", write=False)
    assert evaluated["metrics"]["R1@0.5"] == pytest.approx(result.test_metrics["R1@0.5"])
    written = momentloc.evaluate(tmp_path / "run", write=True)
    both = {"eval": "standard", "dataset": "standard"}
    assert written["protocol"] == both
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["protocol"] == both
    preds = Path(written["written"][0])
    preds.write_text("kept\n")          # a second write must not touch it unless asked
    with pytest.raises(ConfigError, match="--overwrite"):
        momentloc.evaluate(tmp_path / "run", write=True)
    assert preds.read_text() == "kept\n"
    again = momentloc.evaluate(tmp_path / "run", write=True, overwrite=True)
    assert again["written"] == written["written"] and preds.read_text() != "kept\n"
    assert again["metrics"] == written["metrics"]
    run = momentloc.load(tmp_path / "run")
    first = json.loads((tmp_path / "run" / "predictions_test.jsonl").read_text().splitlines()[0])
    (p,) = run.predict(first["video_id"], first["query"], top_k=2)
    assert isinstance(p, momentloc.Prediction) and len(p.moments) <= 2
    assert p.moments[0].start == pytest.approx(first["pred_spans"][0][0], abs=1e-4)
    many = list(run.predict_many([first["video_id"]] * 2, [first["query"], "zorblat"]))
    assert [m.query for m in many] == [first["query"], "zorblat"] * 2
    assert many[1].moments == [] and many[1].warning


def test_predict_files(shapes_run, tmp_path, monkeypatch):
    pytest.importorskip("av", reason="PyAV (the 'video' extra) is not installed")
    world, run_dir = shapes_run
    monkeypatch.setenv("MOMENTLOC_CACHE_DIR", str(tmp_path / "cache"))
    summary = momentloc.predict_files(run_dir, str(world / "videos" / "te*.mp4"),
                                      queries="the red circle grows", out=tmp_path / "o.jsonl")
    lines = (tmp_path / "o.jsonl").read_text().splitlines()
    assert summary.written == len(lines) == len(list((world / "videos").glob("te*.mp4")))
    assert {json.loads(x)["query"] for x in lines} == {"the red circle grows"}

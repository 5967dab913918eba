"""``momentloc synth``: writes a dataset and says what it wrote, as text or JSON."""

from __future__ import annotations

import json

from momentloc.cli.main import main


def test_synth_command_json_and_refusal(tmp_path, capsys):
    out = tmp_path / "tacos"
    assert main(["synth", "--preset", "tacos", "--size", "tiny", "--seed", "2", "--out", str(out),
                 "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["card"] == str(out / "dataset.yaml")
    assert payload["splits"] == {"train": {"videos": payload["splits"]["train"]["videos"],
                                           "queries": 300},
                                 "val": {"videos": payload["splits"]["val"]["videos"],
                                         "queries": 100},
                                 "test": {"videos": payload["splits"]["test"]["videos"],
                                          "queries": 100}}
    assert set(payload["files"]) == {"train.json", "val.json", "test.json", "events.jsonl",
                                     "synthetic_c3d_features.hdf5", "synthetic_glove.300d.txt",
                                     "dataset.yaml"}
    assert all((out / f).stat().st_size == n for f, n in payload["files"].items())
    assert payload["feature_dim"] == 512
    # a second run into the same directory is refused with a clear message
    assert main(["synth", "--preset", "tacos", "--out", str(out)]) == 1
    assert "not empty" in capsys.readouterr().err


def test_synth_command_text(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["synth", "--out", str(out), "--label-jitter", "0"]) == 0
    text = capsys.readouterr().out
    assert "charades_sta_train.txt" in text and "dataset card:" in text
    assert "train" in text and "300" in text

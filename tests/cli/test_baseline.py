"""``momentloc baseline``: annotation-only baselines through the CLI entry point."""

import json
import os
from pathlib import Path

import pytest
import yaml

from momentloc.cli.main import main
from momentloc.data.records import MomentRecord, write_records

REAL = Path(os.environ.get("MOMENTLOC_REAL_DATA", Path(__file__).resolve().parents[3] / "shared"
                           / "data" / "real"))
REAL_DIDEMO = REAL / "didemo" / "test_data.json"


def _card(tmp_path, train, test, **extra):
    write_records(tmp_path / "train.jsonl", train)
    write_records(tmp_path / "test.jsonl", test)
    card = {"name": "tiny", "format": "records",
            "splits": {"train": {"annotations": "train.jsonl"},
                       "test": {"annotations": "test.jsonl"}},
            "roles": {"train": "train", "val": None, "test": "test"},
            "metrics": {"recall_at": [1, 5], "iou_thresholds": [0.5, 0.7]}, **extra}
    path = tmp_path / "dataset.yaml"
    path.write_text(yaml.safe_dump(card))
    return str(path)


def rec(i, duration, s, e, split):
    return MomentRecord(f"{split}{i}", f"v{i}", duration, "a person does something", (s, e), (),
                        split)


@pytest.fixture
def card(tmp_path):
    # Every training moment is the first half of its video; so are two of three test moments.
    train = [rec(i, 10.0 * (i + 1), 0.0, 5.0 * (i + 1), "train") for i in range(4)]
    test = [rec(0, 8.0, 0.0, 4.0, "test"), rec(1, 30.0, 0.0, 15.0, "test"),
            rec(2, 20.0, 12.0, 20.0, "test")]
    return _card(tmp_path, train, test)


def test_prior_baseline_json(card, capsys, tmp_path):
    out = tmp_path / "preds.jsonl"
    assert main(["baseline", "prior", "--dataset", card, "--json", "--out", str(out)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["prior"]["moments"][0] == [0.0, 0.5]     # fitted at IoU 0.5 (lower middle)
    assert payload["prior"]["iou_threshold"] == 0.5
    m = payload["metrics"]
    assert m["R1@0.5"] == pytest.approx(2 / 3) and m["R1@0.7"] == pytest.approx(2 / 3)
    assert m["mIoU"] == pytest.approx(2 / 3)                # third query: [0, 10] vs [12, 20]
    assert payload["header"]["split"] == "test" and payload["header"]["queries"] == 3
    assert len(out.read_text().splitlines()) == 3


def test_out_never_replaces_an_existing_file(card, capsys, tmp_path):
    annotations = tmp_path / "test.jsonl"  # the dataset's own test split
    before = annotations.read_bytes()
    assert main(["baseline", "prior", "--dataset", card, "--out", str(annotations)]) == 1
    assert "test.jsonl already exists; choose another --out or pass --overwrite" in \
        capsys.readouterr().err
    assert annotations.read_bytes() == before
    out = tmp_path / "preds.jsonl"
    out.write_text("earlier\n")
    assert main(["baseline", "prior", "--dataset", card, "--out", str(out), "--overwrite"]) == 0
    assert len(out.read_text().splitlines()) == 3


def test_random_baseline_table_and_seed(card, capsys):
    assert main(["baseline", "random", "--dataset", card, "--seed", "1",
                 "--iou-thresholds", "0.3", "0.5"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("dataset: tiny | split: test | protocol: eval standard, dataset standard"
                           " | NMS: none")
    assert "R1@0.3" in text and "R5@0.5" in text and "R1@0.7" not in text
    main(["baseline", "random", "--dataset", card, "--seed", "1", "--json"])
    first = json.loads(capsys.readouterr().out)["metrics"]
    main(["baseline", "random", "--dataset", card, "--seed", "1", "--json"])
    assert json.loads(capsys.readouterr().out)["metrics"] == first


def test_missing_split_is_a_clear_error(tmp_path, capsys):
    train = [rec(0, 10.0, 0.0, 5.0, "train")]
    path = _card(tmp_path, train, train, roles={"train": None, "val": None, "test": "test"})
    assert main(["baseline", "prior", "--dataset", path]) == 1
    assert "no train split" in capsys.readouterr().err


@pytest.mark.skipif(not REAL_DIDEMO.is_file(), reason="real DiDeMo annotations not present")
def test_real_didemo_prior_reports_the_annotator_protocol(tmp_path, capsys):
    card = {"name": "didemo-real", "format": "didemo",
            "splits": {"test": {"annotations": str(REAL_DIDEMO)}},
            "roles": {"train": "test", "val": None, "test": "test"},
            "metrics": {"recall_at": [1, 5], "iou_thresholds": [0.5, 0.7]}, "protocol": "didemo"}
    path = tmp_path / "didemo.yaml"
    path.write_text(yaml.safe_dump(card))
    assert main(["baseline", "prior", "--dataset", str(path), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["metrics"]
    assert 0 < m["didemo/R1"] < m["didemo/R5"] < 1 and 0 < m["didemo/mIoU"] < 1
    # A prior fitted on the very split it is scored on beats chance at R1@0.5 by far.
    assert m["R1@0.5"] > 0.2

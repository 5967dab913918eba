"""dataset_stats by hand, `momentloc stats`, and the figures of the real benchmark files."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from momentloc.cli.main import main
from momentloc.data.card import load_card
from momentloc.data.converters import load_split
from momentloc.data.policy import InputPolicy
from momentloc.data.records import MomentRecord
from momentloc.data.stats import dataset_stats

REAL = Path(os.environ.get("MOMENTLOC_REAL_DATA", Path(__file__).resolve().parents[3] / "shared"
                           / "data" / "real"))


def test_stats_by_hand():
    records = [MomentRecord("1", "a", 10.0, "a man walks .", (0.0, 5.0)),
               MomentRecord("2", "a", 10.0, "he sits", (2.0, 4.0)),
               MomentRecord("3", "b", 40.0, "x y z w", (0.0, 10.0), ((0.0, 10.0), (5.0, 15.0),
                                                                      (0.0, 10.0)))]
    s = dataset_stats(records)
    assert (s["queries"], s["videos"]) == (3, 2)
    assert s["queries_per_video"] == pytest.approx(1.5)
    assert s["mean_video_duration"] == pytest.approx(25.0)  # per video, not per query
    assert (s["min_video_duration"], s["max_video_duration"]) == (10.0, 40.0)
    assert s["mean_moment_length"] == pytest.approx((5 + 2 + 10) / 3)
    assert s["mean_moment_ratio"] == pytest.approx((0.5 + 0.2 + 0.25) / 3)
    assert s["mean_words_per_query"] == pytest.approx((3 + 2 + 4) / 3)  # a lone "." is no word
    assert (s["queries_with_annotators"], s["mean_annotators_per_query"]) == (1, 3.0)


def test_stats_of_nothing():
    s = dataset_stats([])
    assert s["queries"] == 0 and s["videos"] == 0 and s["mean_moment_length"] is None


def test_cli_stats_json_and_skip(tmp_path, capsys):
    (tmp_path / "sta.txt").write_text("AAA 1.0 3.0##a person.\nAAA 2 4##bad##\nAAA 1 x##b\n")
    (tmp_path / "d.csv").write_text("id,length\nAAA,30.0\n")
    (tmp_path / "card.yaml").write_text(
        "name: tiny\nformat: charades_sta\nsplits:\n"
        "  test: {annotations: sta.txt, durations: d.csv}\nroles: {train: test, test: test}\n")
    assert main(["stats", "--dataset", str(tmp_path / "card.yaml"), "--json",
                 "--on-bad-input", "skip"]) == 0
    out = json.loads(capsys.readouterr().out)["splits"]["test"]
    assert out["stats"]["queries"] == 2 and out["skipped"] == 1
    assert "sta.txt:3" in out["skipped_examples"][0]
    assert main(["stats", "--dataset", str(tmp_path / "card.yaml")]) == 1  # default: error
    assert "sta.txt:3" in capsys.readouterr().err
    assert main(["stats", "--dataset", str(tmp_path / "card.yaml"), "--on-bad-input", "skip",
                 "--split", "test"]) == 0
    text = capsys.readouterr().out
    assert "mean moment length (s)" in text and "skipped as bad input" in text


# ---- the real files (shared/data/real), with the shipped cards ------------------------------

# name, folder, test split, queries, videos, mean moment length (s)
REAL_FIGURES = [
    ("charades-sta", "charades_sta", "test", 3720, 1334, 7.832),
    ("activitynet-captions", "activitynet_captions", "val_2", 17031, 4885, 40.248),
    ("tacos", "tacos", "test", 4001, 25, 31.870),
    ("didemo", "didemo", "test", 4021, 1037, 6.485),
]


@pytest.mark.skipif(not REAL.is_dir(), reason="real annotation files not present")
@pytest.mark.parametrize("name, folder, split, queries, videos, moment", REAL_FIGURES)
def test_real_test_split_figures(name, folder, split, queries, videos, moment):
    card = load_card(name, str(REAL / folder))
    card = dataclasses.replace(card, splits={split: card.splits[split]}, roles={"test": split})
    policy = InputPolicy()  # the default policy must accept the published files
    s = dataset_stats(load_split(card, split, policy))
    assert (s["queries"], s["videos"]) == (queries, videos)
    assert s["mean_moment_length"] == pytest.approx(moment, abs=1e-3)
    assert policy.skipped == 0


@pytest.mark.skipif(not REAL.is_dir(), reason="real annotation files not present")
def test_real_files_through_the_cli(tmp_path, capsys):
    (tmp_path / "card.yaml").write_text(
        "name: qvh\nformat: qvhighlights\nsplits:\n  val: {annotations: "
        f"{REAL / 'qvhighlights' / 'highlight_val_release.jsonl'}}}\nroles: {{test: val}}\n")
    assert main(["stats", "--dataset", str(tmp_path / "card.yaml"), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["splits"]["val"]["stats"]
    assert (s["queries"], s["videos"], s["queries_with_annotators"]) == (1550, 1519, 530)

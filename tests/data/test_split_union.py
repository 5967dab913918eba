"""A split that is the union of several annotation files (CMA's ActivityNet val_1 + val_2)."""

from __future__ import annotations

import json

import pytest

from momentloc.config import load_config
from momentloc.data.build import resolve_splits
from momentloc.data.card import load_card
from momentloc.data.converters import load_split
from momentloc.errors import ConfigError

VAL_1 = {"v_a": {"duration": 20.0, "timestamps": [[1.0, 5.0], [6.0, 12.0]],
                 "sentences": ["a man opens a door.", "he walks in."]},
         "v_b": {"duration": 30.0, "timestamps": [[0.0, 10.0]], "sentences": ["a dog runs."]}}
VAL_2 = {"v_a": {"duration": 20.0, "timestamps": [[2.0, 6.0]],  # same video, other annotator
                 "sentences": ["someone opens the door."]},
         "v_c": {"duration": 15.0, "timestamps": [[3.0, 9.0]], "sentences": ["a cat sleeps."]}}


def write_card(tmp_path, splits: str) -> str:
    (tmp_path / "val_1.json").write_text(json.dumps(VAL_1))
    (tmp_path / "val_2.json").write_text(json.dumps(VAL_2))
    card = tmp_path / "dataset.yaml"
    card.write_text(f"name: anet-small\nformat: activitynet\nsplits:\n{splits}"
                    "roles: {train: val_1, val: null, test: test_union}\n")
    return str(card)


UNION = ("  val_1: {annotations: val_1.json}\n  val_2: {annotations: val_2.json}\n"
         "  test_union: {annotations: [val_1.json, val_2.json]}\n")


def test_union_concatenates_the_files_in_order_with_distinct_query_ids(tmp_path):
    card = load_card(write_card(tmp_path, UNION))
    v1, v2 = load_split(card, "val_1"), load_split(card, "val_2")
    union = load_split(card, "test_union")
    assert len(union) == len(v1) + len(v2) == 5
    assert [r.query for r in union] == [r.query for r in v1 + v2]
    assert [(r.video_id, r.span) for r in union] == [(r.video_id, r.span) for r in v1 + v2]
    ids = [r.query_id for r in union]
    assert len(set(ids)) == len(ids)
    # both files annotate v_a: their ids would collide without the file's name
    assert ({r.query_id.removeprefix("val_1:") for r in v1}
            & {r.query_id.removeprefix("val_2:") for r in v2}) == {"v_a:0"}
    assert ids[0] == "test_union:val_1:" + v1[0].query_id.removeprefix("val_1:")
    assert ids[3].startswith("test_union:val_2:")
    assert {r.split for r in union} == {"test_union"}
    assert card.annotation_paths("test_union") == [tmp_path / "val_1.json",
                                                   tmp_path / "val_2.json"]


def test_stats_reads_a_union_split(tmp_path, capsys):
    from momentloc.cli.main import main

    assert main(["stats", "--dataset", write_card(tmp_path, UNION), "--split", "test_union",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["splits"]["test_union"]
    assert out["stats"]["queries"] == 5 and out["stats"]["videos"] == 3
    assert out["annotations"] == f"{tmp_path / 'val_1.json'}, {tmp_path / 'val_2.json'}"


@pytest.mark.parametrize("entry,message", [
    ("{annotations: [val_1.json, val_1.json]}", "listed twice"),
    ("{annotations: [a/val_1.json, b/val_1.json]}", "distinct names"),
    ("{annotations: []}", "non-empty list"),
])
def test_a_union_whose_query_ids_would_repeat_is_refused(tmp_path, entry, message):
    with pytest.raises(ConfigError, match=message) as e:
        load_card(write_card(tmp_path, f"  val_1: {{annotations: val_1.json}}\n"
                                       f"  test_union: {entry}\n"))
    assert "dataset.yaml" in str(e.value)


def test_charades_union_takes_one_durations_file_per_annotation_file(tmp_path):
    for split, (vid, dur) in {"train": ("AAAA1", 30.0), "test": ("BBBB2", 20.0)}.items():
        (tmp_path / f"sta_{split}.txt").write_text(f"{vid} 1.0 5.0##a person sits down.\n")
        (tmp_path / f"dur_{split}.csv").write_text(f"id,length\n{vid},{dur}\n")
    card_path = tmp_path / "card.yaml"
    body = ("name: c\nformat: charades_sta\nsplits:\n  all: {annotations: [sta_train.txt, "
            "sta_test.txt], durations: %s}\nroles: {train: all, val: null, test: all}\n")
    card_path.write_text(body % "[dur_train.csv, dur_test.csv]")
    records = load_split(load_card(str(card_path)), "all")
    assert [(r.video_id, r.duration) for r in records] == [("AAAA1", 30.0), ("BBBB2", 20.0)]
    card_path.write_text(body % "[dur_train.csv]")
    with pytest.raises(ConfigError, match="1 files for 2 annotation files"):
        load_card(str(card_path))


def test_shipped_activitynet_card_and_cma_presets_test_on_val_1_and_val_2(tmp_path):
    card = load_card("activitynet-captions", str(tmp_path))
    assert card.splits["test_union"].annotation_files() == ("val_1.json", "val_2.json")
    assert card.split_for("test") == "val_2"  # the other models keep the usual protocol
    for preset in ("activitynet", "activitynet_plus"):
        cfg = load_config("cma", preset)
        splits = resolve_splits(cfg.data, card)
        assert splits == {"train": "train", "val": None, "test": "test_union"}
        assert cfg.data.val_holdout > 0  # val_1 is test data here: select on held-out train


def test_a_union_card_round_trips_through_save_card(tmp_path):
    from momentloc.data.card import save_card

    card = load_card(write_card(tmp_path, UNION))
    save_card(card, tmp_path / "copy.yaml")
    again = load_card(str(tmp_path / "copy.yaml"))
    assert again.splits == card.splits
    assert again.splits["test_union"].annotation_files() == ("val_1.json", "val_2.json")

"""Annotation readers and writers: round trips, quirks repaired on purpose, bad input named."""

from __future__ import annotations

import json
import math

import pytest

from momentloc.data.card import DatasetCard, SplitFiles
from momentloc.data.converters import (
    load_split, read_activitynet, read_charades_sta, read_didemo, read_qvhighlights,
    read_records_split, read_tacos, write_activitynet, write_charades_sta, write_didemo,
    write_qvhighlights, write_tacos)
from momentloc.data.converters import common
from momentloc.data.policy import InputPolicy
from momentloc.data.records import MomentRecord, write_records
from momentloc.errors import ConfigError, DataError


def rec(qid, vid, dur, query, span, annotators=(), split="test"):
    return MomentRecord(qid, vid, dur, query, span, tuple(annotators), split)


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def charades_files(tmp_path, lines, csv_text="id,length\nAAA,30.0\nBBB,20.5\n"):
    return (write(tmp_path / "sta.txt", "".join(line + "\n" for line in lines)),
            write(tmp_path / "durations.csv", csv_text))


def card(fmt, annotations, durations=None, split="test"):
    return DatasetCard(name="t", format=fmt, roles={"test": split},
                       splits={split: SplitFiles(str(annotations), durations)})


# ---- round trips ------------------------------------------------------------------------------

def test_charades_round_trip_exact(tmp_path):
    records = [rec("test:1", "AAA", 30.0, "person opens a door.", (1.2, 7.3)),
               rec("test:2", "BBB", 20.5, "a person sits", (0.0, 20.5)),
               rec("test:3", "AAA", 30.0, "person opens a door.", (1.0 / 3.0, 29.9))]
    for dur_name in ("durations.csv", "charades.json"):
        write_charades_sta(records, tmp_path / "sta.txt", tmp_path / dur_name)
        assert read_charades_sta(tmp_path / "sta.txt", tmp_path / dur_name, "test") == records


def test_activitynet_round_trip_exact(tmp_path):
    records = [rec("val_2:v_a:0", "v_a", 82.73, "A man walks.", (0.83, 19.86)),
               rec("val_2:v_a:1", "v_a", 82.73, "He sits.", (19.86, 82.73)),
               rec("val_2:v_b:0", "v_b", 10.0, "A dog barks.", (2.5, 3.5))]
    records = [MomentRecord(**{**r.__dict__, "split": "val_2"}) for r in records]
    write_activitynet(records, tmp_path / "val_2.json")
    assert read_activitynet(tmp_path / "val_2.json", "val_2") == records


def test_tacos_round_trip_within_half_a_frame(tmp_path):
    fps = 29.4
    records = [rec("test:s1.avi:0", "s1.avi", 300.0, "She takes out a knife", (4.8, 12.04)),
               rec("test:s1.avi:1", "s1.avi", 300.0, "She washes it", (100.0, 300.0)),
               rec("test:s2.avi:0", "s2.avi", 81.7, "He cuts", (0.0, 0.5))]
    write_tacos(records, tmp_path / "test.json", fps)
    raw = json.loads((tmp_path / "test.json").read_text())
    assert raw["s1.avi"]["timestamps"][0] == [round(4.8 * fps), round(12.04 * fps)]
    back = read_tacos(tmp_path / "test.json", "test")
    assert [r.query_id for r in back] == [r.query_id for r in records]
    for a, b in zip(back, records):
        assert (a.video_id, a.query) == (b.video_id, b.query)
        assert a.duration == pytest.approx(b.duration, abs=0.5 / fps)
        assert a.span == pytest.approx(b.span, abs=0.5 / fps)


def test_tacos_frames_to_seconds_golden(tmp_path):
    data = {"s17-d69.avi": {"timestamps": [[224, 358]], "sentences": ["He cuts"], "fps": 29.4,
                            "num_frames": 12438}}
    write(tmp_path / "t.json", json.dumps(data))
    (r,) = read_tacos(tmp_path / "t.json", "test")
    assert r.video_id == "s17-d69.avi"  # the .avi suffix is kept; the card's template maps it
    assert r.duration == pytest.approx(12438 / 29.4)
    assert r.span == pytest.approx((224 / 29.4, 358 / 29.4))


def test_tacos_list_layout_in_seconds(tmp_path):
    data = [["s13-d21.avi", 205.3, [10.5, 20.25], "The person gets a board", ["the"], [0], []],
            ["s13-d21.avi", 205.3, [0, 205.3], "He leaves"]]
    write(tmp_path / "t.json", json.dumps(data))
    assert read_tacos(tmp_path / "t.json", "val") == [
        rec("val:0", "s13-d21.avi", 205.3, "The person gets a board", (10.5, 20.25), (), "val"),
        rec("val:1", "s13-d21.avi", 205.3, "He leaves", (0.0, 205.3), (), "val")]


DIDEMO = [
    {"num_segments": 6, "description": "someone kicks the bug.", "video": "a.m4v",
     "times": [[4, 4], [0, 0], [4, 4], [0, 0], [0, 0], [4, 4], [4, 4]], "annotation_id": 1,
     "dl_link": "x"},
    # tie between [1, 2] and [2, 2]: the first listed wins
    {"num_segments": 5, "description": "person backs up", "times": [[1, 2], [2, 2], [2, 2], [1, 2]],
     "video": "b.mov", "annotation_id": 31171},
    {"num_segments": 5, "description": "the end", "times": [[4, 4], [4, 4], [3, 4], [4, 4]],
     "video": "b.mov", "annotation_id": 7},
]


def test_didemo_most_frequent_moment_and_annotators(tmp_path):
    write(tmp_path / "d.json", json.dumps(DIDEMO))
    a, b, c = read_didemo(tmp_path / "d.json", "test")
    assert (a.query_id, a.video_id, a.duration) == ("1", "a.m4v", 30.0)
    assert a.span == (20.0, 25.0)  # [4, 4] 4 times vs [0, 0] 3 times
    assert len(a.annotator_spans) == 7 and a.annotator_spans[1] == (0.0, 5.0)
    assert b.span == (5.0, 15.0)  # tie: [1, 2] is listed first
    assert b.duration == 25.0  # 5 s x num_segments
    assert c.span == (20.0, 25.0)


def test_didemo_durations_file_cuts_the_last_segment(tmp_path):
    write(tmp_path / "d.json", json.dumps(DIDEMO))
    write(tmp_path / "len.json", json.dumps({"a.m4v": 27.5, "b.mov": 22.0}))
    a, b, c = read_didemo(tmp_path / "d.json", "test", durations_path=tmp_path / "len.json")
    assert a.duration == 27.5 and a.span == (20.0, 25.0)
    assert c.span == (20.0, 22.0) and c.annotator_spans[2] == (15.0, 22.0)


def test_didemo_round_trip(tmp_path):
    write(tmp_path / "d.json", json.dumps(DIDEMO))
    records = read_didemo(tmp_path / "d.json", "test")
    write_didemo(records, tmp_path / "d2.json")
    assert read_didemo(tmp_path / "d2.json", "test") == records


def test_qvhighlights_round_trip_and_first_window(tmp_path):
    records = [rec("2579", "vid_210.0_360.0", 150.0, "A girl cooks.", (82.0, 150.0)),
               rec("5071", "vid_60.0_210.0", 150.0, "A woman types", (118.0, 136.0),
                   [(118.0, 136.0), (2.0, 10.0)])]
    write_qvhighlights(records, tmp_path / "q.jsonl")
    first = json.loads((tmp_path / "q.jsonl").read_text().splitlines()[1])
    assert first["qid"] == 5071 and first["relevant_windows"] == [[118.0, 136.0], [2.0, 10.0]]
    assert read_qvhighlights(tmp_path / "q.jsonl", "test") == records


def test_records_round_trip_and_split_set(tmp_path):
    records = [rec("x", "v1", 10.0, "a b", (1.0, 2.0), [(1.0, 2.0), (0.5, 3.0)], split="old"),
               rec("y", "v2", 5.0, "c", (0.0, 5.0), split="old")]
    write_records(tmp_path / "r.jsonl", records)
    back = load_split(card("records", tmp_path / "r.jsonl"), "test")
    assert back == [MomentRecord(**{**r.__dict__, "split": "test"}) for r in records]


def test_load_split_dispatches_and_resolves_root(tmp_path):
    charades_files(tmp_path, ["AAA 1.0 2.0##a person."])
    c = DatasetCard(name="t", format="charades_sta",
                    splits={"test": SplitFiles("sta.txt", "durations.csv")},
                    roles={"test": "test"}).with_root(tmp_path)
    assert load_split(c, "test") == [rec("test:1", "AAA", 30.0, "a person.", (1.0, 2.0))]
    with pytest.raises(ConfigError, match="no split 'train'"):
        load_split(c, "train")


# ---- quirks: repaired on purpose and counted ------------------------------------------------

def test_charades_quirks_repaired_and_counted(tmp_path):
    txt, csv_path = charades_files(tmp_path, [
        "AAA 24.3 31.4##  person turn a light on. ",   # end 1.4 s past 30.0: clipped
        "AAA 12.0 5.0##person sits.",                  # start > end: swapped
        "AAA 5.0 5.0##zero length",                    # dropped
        "BBB -0.5 3.0##person  stands",                # start before 0 within tolerance: clipped
        "AAA 12.0 5.0##person sits.",                  # exact duplicate (after the swap): kept
        "",
    ])
    policy = InputPolicy()
    records = read_charades_sta(txt, csv_path, "test", policy)
    assert [(r.query_id, r.span, r.query) for r in records] == [
        ("test:1", (24.3, 30.0), "person turn a light on."),  # final period kept
        ("test:2", (5.0, 12.0), "person sits."),
        ("test:4", (0.0, 3.0), "person stands"),
        ("test:5", (5.0, 12.0), "person sits.")]
    assert policy.warnings == {common.WARN_END_CLIPPED: 1, common.WARN_SWAPPED: 2,
                               common.WARN_ZERO_LENGTH: 1, common.WARN_START_CLIPPED: 1,
                               common.WARN_WHITESPACE: 2, common.WARN_DUPLICATE: 1}
    assert policy.skipped == 0


def test_charades_crlf_and_unicode_line_separator(tmp_path):
    (tmp_path / "sta.txt").write_bytes("AAA 1 2##a\u2028b.\r\nBBB 1 2##c.\r\n".encode())
    write(tmp_path / "d.csv", "id,length\nAAA,30\nBBB,20\n")
    a, b = read_charades_sta(tmp_path / "sta.txt", tmp_path / "d.csv", "test")
    assert (a.query, b.query_id, b.query) == ("a b.", "test:2", "c.")  # U+2028 is whitespace


def test_charades_csv_with_quoted_multiline_fields(tmp_path):
    csv_text = ('id,subject,script,length\n'
                'AAA,X,"A person fixes the bed,\nthen ""throws"" a pillow.",16.62\n'
                'BBB,Y,plain,31.29\n')
    txt, csv_path = charades_files(tmp_path, ["BBB 0.5 31.0##a.", "AAA 1 16.62##b."], csv_text)
    assert [r.duration for r in read_charades_sta(txt, csv_path)] == [31.29, 16.62]


def test_activitynet_prefix_whitespace_and_clipping(tmp_path):
    data = {"v_QOlSCBRmfWY": {"duration": 82.73, "timestamps": [[0.83, 19.86], [17.37, 82.74]],
                              "sentences": ["A woman dances.", " She stops."]}}
    write(tmp_path / "a.json", json.dumps(data))
    policy = InputPolicy()
    a, b = read_activitynet(tmp_path / "a.json", "val_2", policy)
    assert a.video_id == "v_QOlSCBRmfWY" and a.query_id == "val_2:v_QOlSCBRmfWY:0"
    assert b.query == "She stops." and b.span == (17.37, 82.73)
    assert policy.warnings == {common.WARN_WHITESPACE: 1, common.WARN_END_CLIPPED: 1}


def test_tolerance_grows_with_long_videos():
    assert common.tolerance(10.0) == common.TOLERANCE_S
    assert common.tolerance(400.0) == pytest.approx(400.0 * common.TOLERANCE_FRACTION)
    where, policy = common.Where("f.json"), InputPolicy()
    assert common.fix_span(10.0, 415.0, 400.0, where, policy) == (10.0, 400.0)
    with pytest.raises(DataError):
        common.fix_span(10.0, 421.0, 400.0, where, policy)


# ---- bad input: named, raised by default, counted when skipped --------------------------------

@pytest.mark.parametrize("line, message", [
    ("AAA 1.0 2.0 a person", "expected '<video> <start> <end>##<sentence>'"),  # malformed line
    ("AAA 1.0##a person", "expected '<video>"),                               # missing field
    ("AAA 1.0 abc##a person", "end time is not a number: 'abc'"),             # non-numeric time
    ("AAA 1.0 nan##a person", "end time is not finite"),
    ("AAA 1.0 32.5##a person", "outside the video"),                          # past the tolerance
    ("AAA -3.0 2.0##a person", "outside the video"),
    ("AAA 31.0 31.5##a person", "starts after the video's end"),
    ("ZZZ 1.0 2.0##a person", "video duration unknown"),                      # id not in the csv
    ("AAA 1.0 2.0##   ", "empty query"),
])
def test_charades_bad_line_names_file_line_and_video(tmp_path, line, message):
    txt, csv_path = charades_files(tmp_path, ["BBB 1.0 2.0##fine.", line])
    with pytest.raises(DataError, match=message) as info:
        read_charades_sta(txt, csv_path, "test")
    assert f"{txt}:2" in str(info.value)
    if not message.startswith("expected"):
        assert "video 'AAA'" in str(info.value) or "video 'ZZZ'" in str(info.value)


def test_charades_bad_duration_value(tmp_path):
    txt, csv_path = charades_files(tmp_path, ["AAA 1.0 2.0##a."], "id,length\nAAA,\n")
    with pytest.raises(DataError, match="duration is not a number"):
        read_charades_sta(txt, csv_path)


def test_csv_without_length_column(tmp_path):
    txt, csv_path = charades_files(tmp_path, ["AAA 1.0 2.0##a."], "id,scene\nAAA,kitchen\n")
    with pytest.raises(DataError, match="duration column") as info:
        read_charades_sta(txt, csv_path)
    assert str(csv_path) in str(info.value)


def test_skip_policy_counts_and_keeps_the_rest(tmp_path):
    txt, csv_path = charades_files(tmp_path, [
        "AAA 1.0 2.0##good one.", "AAA 1.0##bad", "ZZZ 1 2##unknown video", "BBB 1 2##good two."])
    policy = InputPolicy(mode="skip")
    records = read_charades_sta(txt, csv_path, "test", policy)
    assert [r.query_id for r in records] == ["test:1", "test:4"]
    assert policy.skipped == 2
    assert f"{txt}:2" in policy.reasons[0] and f"{txt}:3" in policy.reasons[1]


def test_activitynet_missing_field_and_mismatch(tmp_path):
    write(tmp_path / "a.json", json.dumps({"v_x": {"timestamps": [[0, 1]], "sentences": ["a"]}}))
    with pytest.raises(DataError, match="missing field 'duration'") as info:
        read_activitynet(tmp_path / "a.json")
    assert "a.json" in str(info.value) and "video 'v_x'" in str(info.value)
    write(tmp_path / "b.json", json.dumps({"v_y": {"duration": 5, "timestamps": [[0, 1]],
                                                   "sentences": ["a", "b"]}}))
    with pytest.raises(DataError, match="1 timestamps but 2 sentences"):
        read_activitynet(tmp_path / "b.json")
    write(tmp_path / "c.json", json.dumps({"v_z": {"duration": 5, "timestamps": [[0, "x"]],
                                                   "sentences": ["a"]}}))
    with pytest.raises(DataError, match="sentence 0: end time is not a number") as info:
        read_activitynet(tmp_path / "c.json")
    assert "video 'v_z'" in str(info.value)


def test_invalid_json_names_file_and_line(tmp_path):
    write(tmp_path / "a.json", '{"v_x": {\n"duration": 5,,\n}}')
    with pytest.raises(DataError) as info:
        read_activitynet(tmp_path / "a.json")
    assert f"{tmp_path / 'a.json'}:2" in str(info.value)


def test_tacos_bad_fps_and_end_past_video(tmp_path):
    write(tmp_path / "t.json", json.dumps({"s1.avi": {"timestamps": [[1, 2]], "sentences": ["a"],
                                                      "fps": 0, "num_frames": 100}}))
    with pytest.raises(DataError, match="fps must be > 0"):
        read_tacos(tmp_path / "t.json")
    # 7 frames past the end (as in the real test split) is clipped; 200 s past is bad input
    write(tmp_path / "u.json", json.dumps({"s1.avi": {"timestamps": [[19055, 19154], [0, 25000]],
                                                      "sentences": ["a", "b"], "fps": 29.4,
                                                      "num_frames": 19147}}))
    with pytest.raises(DataError, match="sentence 1: moment .* outside the video"):
        read_tacos(tmp_path / "u.json")
    policy = InputPolicy(mode="skip")
    (r,) = read_tacos(tmp_path / "u.json", policy=policy)
    assert r.span[1] == r.duration and policy.warnings == {common.WARN_END_CLIPPED: 1}


@pytest.mark.parametrize("change, message", [
    ({"times": [[0, 6]]}, "segment index 6 outside 0..5"),
    ({"times": [[0, 1.5]]}, "segment index is not an integer"),
    ({"times": []}, "times must be a non-empty list"),
    ({"description": ""}, "empty query"),
    ({"num_segments": None}, "num_segments is not an integer: None"),
])
def test_didemo_bad_records(tmp_path, change, message):
    item = {**DIDEMO[0], **change}
    write(tmp_path / "d.json", json.dumps([DIDEMO[1], item]))
    with pytest.raises(DataError, match=message) as info:
        read_didemo(tmp_path / "d.json")
    assert "record 1 (annotation_id 1)" in str(info.value) and "video 'a.m4v'" in str(info.value)


def test_didemo_missing_field(tmp_path):
    item = {k: v for k, v in DIDEMO[0].items() if k != "times"}
    write(tmp_path / "d.json", json.dumps([item]))
    with pytest.raises(DataError, match="record 0 .* missing field 'times'"):
        read_didemo(tmp_path / "d.json")


def test_qvhighlights_bad_lines(tmp_path):
    good = {"qid": 1, "query": "q", "duration": 150, "vid": "v", "relevant_windows": [[0, 2]]}
    write(tmp_path / "q.jsonl", json.dumps(good) + "\n{broken\n")
    with pytest.raises(DataError, match="not valid JSON") as info:
        read_qvhighlights(tmp_path / "q.jsonl")
    assert f"{tmp_path / 'q.jsonl'}:2" in str(info.value)
    write(tmp_path / "r.jsonl", json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(DataError, match="query id '1' appears twice"):
        read_qvhighlights(tmp_path / "r.jsonl")
    no_windows = {k: v for k, v in good.items() if k != "relevant_windows"}
    write(tmp_path / "s.jsonl", json.dumps(no_windows) + "\n")
    with pytest.raises(DataError, match="missing field 'relevant_windows'"):
        read_qvhighlights(tmp_path / "s.jsonl")


def test_records_bad_line(tmp_path):
    write(tmp_path / "r.jsonl", json.dumps({"query_id": "a", "video_id": "v", "duration": -1,
                                            "query": "q", "span": [0, 1]}) + "\n")
    with pytest.raises(DataError, match="duration must be > 0") as info:
        read_records_split(tmp_path / "r.jsonl")
    assert f"{tmp_path / 'r.jsonl'}:1" in str(info.value)


def test_missing_files_are_named(tmp_path):
    txt, csv_path = charades_files(tmp_path, ["AAA 1.0 2.0##a."])
    for c in (card("charades_sta", tmp_path / "nope.txt", str(csv_path)),
              card("charades_sta", txt, str(tmp_path / "nope.csv")),
              card("activitynet", tmp_path / "nope.json")):
        with pytest.raises(DataError, match="file not found") as info:
            load_split(c, "test")
        assert "nope" in str(info.value)
    with pytest.raises(ConfigError, match="needs a durations file"):
        load_split(card("charades_sta", txt), "test")
    with pytest.raises(ConfigError, match="takes no durations file"):
        load_split(card("activitynet", txt, str(csv_path)), "test")


def test_writers_reject_what_their_format_cannot_hold(tmp_path):
    two_durations = [rec("1", "v", 10.0, "a", (0.0, 1.0)), rec("2", "v", 11.0, "b", (0.0, 1.0))]
    with pytest.raises(DataError, match="disagree on the duration"):
        write_activitynet(two_durations, tmp_path / "a.json")
    with pytest.raises(DataError, match="whitespace"):
        write_charades_sta([rec("1", "a b", 10.0, "q", (0.0, 1.0))], tmp_path / "c.txt",
                           tmp_path / "c.csv")
    assert not (tmp_path / "a.json").exists()


def test_didemo_writer_snaps_foreign_times_to_segments(tmp_path):
    write_didemo([rec("q", "v", 27.3, "a", (6.0, 14.0), [(6.0, 14.0), (25.0, 27.3)])],
                 tmp_path / "d.json")
    (item,) = json.loads((tmp_path / "d.json").read_text())
    assert item["num_segments"] == math.ceil(27.3 / 5) and item["times"] == [[1, 2], [5, 5]]
    assert item["annotation_id"] == 0

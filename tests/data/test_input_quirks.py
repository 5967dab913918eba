"""Input that used to be read silently wrong: repeated keys, repeated durations, reversed
moments outside the video, and JSON the parser cannot take (deep nesting, huge numbers)."""

from __future__ import annotations

import json

import pytest

from momentloc.data.converters import (
    read_activitynet, read_charades_sta, read_didemo, read_qvhighlights, read_records_split,
    read_tacos)
from momentloc.data.converters import common
from momentloc.data.policy import InputPolicy
from momentloc.errors import DataError


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def an_entry(n, duration=100.0, first=""):
    return {"duration": duration, "timestamps": [[i, i + 1.0] for i in range(n)],
            "sentences": [f"{first}sentence {i}." for i in range(n)]}


def repeated_key_json(entries):
    """A JSON object whose keys may repeat: ``entries`` is a list of (key, value)."""
    return "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in entries) + "}"


# ---- repeated keys -----------------------------------------------------------------------------

def test_activitynet_repeated_video_key_is_bad_input(tmp_path):
    path = write(tmp_path / "a.json", repeated_key_json([
        ("v_a", an_entry(3)), ("v_b", an_entry(2)), ("v_a", an_entry(4, first="other "))]))
    with pytest.raises(DataError, match="written 2 times with different annotations") as info:
        read_activitynet(path)
    assert str(path) in str(info.value) and "video 'v_a'" in str(info.value)
    policy = InputPolicy(mode="skip")
    records = read_activitynet(path, "val", policy)
    # json.load would keep the second v_a entry and lose the first one's 3 queries silently.
    assert {r.video_id for r in records} == {"v_b"} and len(records) == 2
    assert policy.skipped == 1 and "v_a" in policy.reasons[0]


def test_identical_repeated_video_is_merged_and_counted(tmp_path):
    path = write(tmp_path / "a.json", repeated_key_json([
        ("v_a", an_entry(3)), ("v_a", an_entry(3)), ("v_b", an_entry(1))]))
    policy = InputPolicy()
    records = read_activitynet(path, "val", policy)
    assert len(records) == 4 and policy.skipped == 0
    assert policy.warnings[common.WARN_REPEAT_MERGED] == 1


def test_repeated_field_inside_an_entry(tmp_path):
    entry = json.dumps(an_entry(1))[:-1] + ', "duration": 50.0}'
    write(tmp_path / "a.json", '{"v_a": ' + entry + ', "v_b": ' + json.dumps(an_entry(2)) + "}")
    with pytest.raises(DataError, match="key 'duration' is written 2 times") as info:
        read_activitynet(tmp_path / "a.json")
    assert "video 'v_a'" in str(info.value)
    policy = InputPolicy(mode="skip")
    assert [r.video_id for r in read_activitynet(tmp_path / "a.json", policy=policy)] == ["v_b"] * 2
    assert policy.skipped == 1


def test_tacos_repeated_video_key(tmp_path):
    def entry(frames):
        return {"timestamps": [[f, f + 30] for f in frames], "sentences": ["a."] * len(frames),
                "fps": 30.0, "num_frames": 3000}
    path = write(tmp_path / "t.json", repeated_key_json([
        ("s1.avi", entry([0, 60, 90])), ("s2.avi", entry([0])), ("s1.avi", entry([300]))]))
    with pytest.raises(DataError, match="different annotations") as info:
        read_tacos(path)
    assert "video 's1.avi'" in str(info.value) and str(path) in str(info.value)
    policy = InputPolicy(mode="skip")
    assert [r.video_id for r in read_tacos(path, policy=policy)] == ["s2.avi"]
    assert policy.skipped == 1


def test_tacos_list_and_didemo_items_with_repeated_fields(tmp_path):
    item = {"num_segments": 6, "description": "a.", "times": [[1, 1]], "video": "a.m4v",
            "annotation_id": 1}
    text = json.dumps(item)[:-1] + ', "times": [[2, 2]]}'
    write(tmp_path / "d.json", f"[{json.dumps({**item, 'annotation_id': 2})}, {text}]")
    with pytest.raises(DataError, match="record 1 .*key 'times' is written 2 times"):
        read_didemo(tmp_path / "d.json")
    policy = InputPolicy(mode="skip")
    assert [r.query_id for r in read_didemo(tmp_path / "d.json", policy=policy)] == ["2"]
    assert policy.skipped == 1


@pytest.mark.parametrize("reader, line", [
    (read_qvhighlights, '{"qid": 1, "query": "q", "duration": 150, "vid": "v", '
                        '"relevant_windows": [[0, 2]], "relevant_windows": [[4, 6]]}'),
    (read_records_split, '{"query_id": "a", "video_id": "v", "duration": 9, "query": "q", '
                         '"span": [0, 1], "span": [2, 3]}'),
])
def test_jsonl_line_with_repeated_field(tmp_path, reader, line):
    path = write(tmp_path / "q.jsonl", line + "\n")
    with pytest.raises(DataError, match="is written 2 times with different values") as info:
        reader(path)
    assert f"{path}:1" in str(info.value)


# ---- durations files ---------------------------------------------------------------------------

def test_video_twice_in_durations_csv(tmp_path):
    txt = write(tmp_path / "sta.txt", "AAA 1.0 2.0##a.\nBBB 1 2##b.\n")
    csv_path = write(tmp_path / "d.csv", "id,length\nAAA,30.0\nBBB,20\nAAA,12.5\nBBB,20.0\n")
    with pytest.raises(DataError, match="2 times with different durations '30.0', '12.5'") as info:
        read_charades_sta(txt, csv_path)
    assert f"{txt}:1" in str(info.value) and "d.csv" in str(info.value)
    assert "video 'AAA'" in str(info.value)
    policy = InputPolicy(mode="skip")
    (r,) = read_charades_sta(txt, csv_path, "test", policy)
    assert r.video_id == "BBB" and r.duration == 20.0      # "20" and "20.0" are the same length
    assert policy.skipped == 1 and policy.warnings[common.WARN_REPEAT_MERGED] == 1


def test_video_twice_in_durations_json(tmp_path):
    txt = write(tmp_path / "sta.txt", "AAA 1.0 2.0##a.\n")
    path = write(tmp_path / "charades.json", '{"AAA": {"duration": 30}, "AAA": {"duration": 31}}')
    with pytest.raises(DataError, match="different durations"):
        read_charades_sta(txt, path)
    write(tmp_path / "charades.json", '{"AAA": {"duration": 30}, "AAA": {"duration": 30.0}}')
    policy = InputPolicy()
    assert read_charades_sta(txt, path, policy=policy)[0].duration == 30.0
    assert policy.warnings == {common.WARN_REPEAT_MERGED: 1}


# ---- Charades-STA train: end before start ------------------------------------------------------

def test_reversed_moments_of_the_charades_train_file(tmp_path):
    """The four lines of the published ``charades_sta_train.txt`` (TALL / 2D-TAN copy) whose end
    precedes the start, with their videos' ``Charades_v1_train.csv`` lengths."""
    txt = write(tmp_path / "sta.txt", "LEOL6 8.0 7.0##person is holding medicine.\n"
                "IOL8Q 20.9 12.0##a person is throwing a bag out of the room.\n"
                "AKKWU 38.0 13.0##person opens the cabinet.\n"
                "AKKWU 38.0 13.0##person has opened a cabinet.\n")
    csv_path = write(tmp_path / "d.csv", "id,length\nAKKWU,12.17\nIOL8Q,30.38\nLEOL6,6.25\n")
    policy = InputPolicy()  # the default policy reads them
    (r,) = read_charades_sta(txt, csv_path, "train", policy)
    assert (r.query_id, r.span) == ("train:2", (12.0, 20.9))   # swapped: inside the video
    assert policy.warnings == {common.WARN_SWAPPED: 1, common.WARN_REVERSED_DROPPED: 3}
    assert policy.skipped == 0


# ---- JSON the parser cannot take -----------------------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "1" * 5000


@pytest.mark.parametrize("text, message", [
    (DEEP, "nested too deeply"),
    ('{"v_a": {"duration": ' + HUGE + ', "timestamps": [], "sentences": []}}',
     "a number with more than"),
])
@pytest.mark.parametrize("reader", [read_activitynet, read_tacos, read_didemo])
def test_json_files_the_parser_cannot_take(tmp_path, reader, text, message):
    path = write(tmp_path / "a.json", text)
    with pytest.raises(DataError, match=message) as info:
        reader(path)
    assert str(path) in str(info.value)


def test_huge_number_names_its_line(tmp_path):
    path = write(tmp_path / "a.json", '{"v_a": {\n"duration":\n' + HUGE + "}}")
    with pytest.raises(DataError, match="digits") as info:
        read_activitynet(path)
    assert f"{path}:3" in str(info.value)


@pytest.mark.parametrize("reader", [read_qvhighlights, read_records_split])
@pytest.mark.parametrize("bad, message", [(DEEP, "nested too deeply"),
                                          ('{"qid": ' + HUGE + "}", "digits")])
def test_jsonl_lines_the_parser_cannot_take(tmp_path, reader, bad, message):
    path = write(tmp_path / "q.jsonl", "\n" + bad + "\n")
    with pytest.raises(DataError, match=message) as info:
        reader(path)
    assert f"{path}:2" in str(info.value)
    policy = InputPolicy(mode="skip")
    assert reader(path, policy=policy) == [] and policy.skipped == 1


def test_durations_json_the_parser_cannot_take(tmp_path):
    txt = write(tmp_path / "sta.txt", "AAA 1.0 2.0##a.\n")
    path = write(tmp_path / "charades.json", DEEP)
    with pytest.raises(DataError, match="nested too deeply") as info:
        read_charades_sta(txt, path)
    assert "charades.json" in str(info.value)

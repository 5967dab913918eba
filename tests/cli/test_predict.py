"""`momentloc predict`: one video (JSON shape, warnings, argument errors) and many videos
(--videos/--queries: JSONL or CSV, resume after a kill, pairing files, glob and list inputs)."""

import json
import shutil

import pytest

from momentloc.cli.main import main
from momentloc.data.converters import load_split
from momentloc.engine.inference import Predictor
from momentloc.engine.predict_many import read_predictions

pytest.importorskip("av", reason="PyAV (the 'video' extra) is not installed")


@pytest.fixture(autouse=True)
def feature_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MOMENTLOC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "ml-cache"))


@pytest.fixture(scope="module")
def videos(shapes_run, tmp_path_factory):
    """Four of the world's videos in a directory of their own, and two of its sentences."""
    world, _ = shapes_run
    out = tmp_path_factory.mktemp("videos")
    for p in sorted((world / "videos").glob("*.mp4"))[:4]:
        shutil.copy(p, out / p.name)
    return out


QUERIES = ["the red circle grows", "the blue square moves to the left"]


def pairs(preds):
    return [(p.video, p.query) for p in preds]


def test_one_video_json(shapes_run, capsys):
    world, run_dir = shapes_run
    record = load_split(Predictor(run_dir).card, "test")[0]
    assert main(["predict", str(run_dir), "--video", record.video_id, "--query", record.query,
                 "--query", "zorblat", "--query", "the red zorblat grows", "--top-k", "2",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["video"] == record.video_id and out["duration"] == pytest.approx(record.duration)
    first, unknown, some = out["results"]
    assert list(first) == ["video", "query", "duration", "moments", "unknown_words", "warning"]
    assert len(first["moments"]) == 2 and first["warning"] is None
    assert [m["rank"] for m in first["moments"]] == [1, 2]
    assert unknown["moments"] == [] and unknown["unknown_words"] == ["zorblat"]
    assert "none of the query's words" in unknown["warning"]
    assert some["unknown_words"] == ["zorblat"] and some["moments"]
    # the table shows the warning
    assert main(["predict", str(run_dir), "--video", record.video_id, "--query", "zorblat"]) == 0
    assert "warning: none of the query's words" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--top-k", "0"], "--top-k: must be at least 1"),
    (["--top-k", "-1"], "--top-k: must be at least 1"),
    (["--top-k", "two"], "--top-k: not a whole number"),
    (["--duration", "nan"], "--duration: must be a finite number"),
    (["--duration", "inf"], "--duration: must be a finite number"),
    (["--duration", "0"], "--duration: must be a finite number"),
    (["--duration", "-2"], "--duration: must be a finite number"),
])
def test_argument_errors(shapes_run, capsys, args, message):
    _, run_dir = shapes_run
    with pytest.raises(SystemExit) as e:
        main(["predict", str(run_dir), "--video", "x.npy", "--query", "q", *args])
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--video", "tr0000"], "give a sentence to look for"),
    (["--video", "tr0000", "--query", "red " * 300], "too long"),
    (["--video", "tr0000", "--query", "?"], "has no words"),
    (["--video", "features.npy", "--query", "q"], "features.npy: no such file"),
    (["--video", "tr0000", "--query", "q", "--out", "x.jsonl"], "--out goes with --videos"),
    (["--videos", "nowhere", "--query", "q", "--out", "x.jsonl"], "nowhere: not a directory"),
    (["--videos", "nowhere", "--query", "q"], "--videos needs --out"),
])
def test_clear_errors(shapes_run, capsys, args, message):
    _, run_dir = shapes_run
    assert main(["predict", str(run_dir), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_many_videos_jsonl_csv_and_resume(shapes_run, videos, tmp_path, capsys, monkeypatch):
    _, run_dir = shapes_run
    queries = tmp_path / "queries.txt"
    queries.write_text("\n".join(QUERIES) + "\n\n")
    out = tmp_path / "out.jsonl"
    cmd = ["predict", str(run_dir), "--videos", str(videos), "--queries", str(queries),
           "--top-k", "3", "--out", str(out)]
    assert main(cmd) == 0
    assert "8 predictions of 4 videos" in capsys.readouterr().out
    full = read_predictions(out)
    ids = sorted(p.stem for p in videos.glob("*.mp4"))
    assert pairs(full) == [(v, q) for v in ids for q in QUERIES]
    # the same moments as one video at a time
    one = Predictor(run_dir).predict(videos / f"{ids[1]}.mp4", QUERIES, top_k=3)
    assert [p.to_dict() for p in full[2:4]] == [p.to_dict() for p in one]
    # a second run finds everything done
    assert main(cmd) == 0
    assert "0 predictions of 0 videos" in capsys.readouterr().out
    assert read_predictions(out) == full
    # killed during the third video, after a partial write: the rerun completes the file
    text = out.read_text().splitlines(keepends=True)
    out.write_text("".join(text[:3]) + text[3][:20])
    from momentloc.engine.inference import Predictor as P

    original = P.predict
    seen = []

    def dies_on_third(self, video, *a, **k):
        seen.append(video)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return original(self, video, *a, **k)

    monkeypatch.setattr(P, "predict", dies_on_third)
    assert main(cmd) == 130
    # 3 whole lines were kept, then the rest of the second video and the third were written
    assert len(read_predictions(out)) == 3 + 1 + 2
    monkeypatch.setattr(P, "predict", original)
    assert main(cmd) == 0
    assert "2 predictions of 1 videos written" in (text := capsys.readouterr().out)
    assert "(6 already there)" in text
    assert sorted(pairs(read_predictions(out))) == sorted(pairs(full))
    assert sorted(json.dumps(p.to_dict()) for p in read_predictions(out)) == \
        sorted(json.dumps(p.to_dict()) for p in full)
    # CSV: the same predictions, one row per moment
    csv_out = tmp_path / "out.csv"
    assert main(cmd[:-2] + ["--out", str(csv_out)]) == 0
    rows = csv_out.read_text().splitlines()
    assert rows[0] == "video,query,duration,rank,start,end,score,unknown_words,warning"
    assert len(rows) == 1 + sum(len(p.moments) for p in full)
    again = read_predictions(csv_out)
    assert pairs(again) == pairs(full)
    for a, b in zip(again, full):
        assert [m.rank for m in a.moments] == [m.rank for m in b.moments]
        assert [m.start for m in a.moments] == pytest.approx([m.start for m in b.moments])


def test_pairing_files_globs_and_lists(shapes_run, videos, tmp_path, capsys):
    _, run_dir = shapes_run
    ids = sorted(p.stem for p in videos.glob("*.mp4"))
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text(json.dumps({"video": ids[0], "query": QUERIES[0]}) + "\n"
                     + json.dumps({"video": f"{ids[2]}.mp4", "query": "zorblat"}) + "\n")
    out = tmp_path / "a.jsonl"
    assert main(["predict", str(run_dir), "--videos", str(videos / "*.mp4"), "--queries",
                 str(jsonl), "--out", str(out)]) == 0
    got = read_predictions(out)
    assert pairs(got) == [(ids[0], QUERIES[0]), (ids[2], "zorblat")]
    assert got[1].moments == [] and got[1].warning
    # CSV pairs and a list file with relative paths
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two videos\n{videos / ids[1]}.mp4\n\n{videos / ids[3]}.mp4\n")
    pairs_csv = tmp_path / "pairs.csv"
    pairs_csv.write_text(f"video,query\n{ids[3]},{QUERIES[1]}\n{ids[1]},\"{QUERIES[0]}\"\n")
    out = tmp_path / "b.csv"
    assert main(["predict", str(run_dir), "--videos", str(listing), "--queries", str(pairs_csv),
                 "--query", "the green triangle spins", "--out", str(out)]) == 0
    assert pairs(read_predictions(out)) == [
        (ids[1], "the green triangle spins"), (ids[1], QUERIES[0]),
        (ids[3], "the green triangle spins"), (ids[3], QUERIES[1])]
    capsys.readouterr()
    # bad pairing files name the file and line
    for text, message in [(json.dumps({"video": "elsewhere", "query": "q"}) + "\n",
                           "pairs.jsonl:1: video 'elsewhere' is not among the --videos"),
                          ("\n{not json\n", "pairs.jsonl:2: not JSON"),
                          (json.dumps({"video": ids[0]}) + "\n",
                           "pairs.jsonl:1: needs a 'video' and a 'query' field")]:
        jsonl.write_text(text)
        assert main(["predict", str(run_dir), "--videos", str(videos), "--queries", str(jsonl),
                     "--out", str(tmp_path / "c.jsonl")]) == 1
        assert message in capsys.readouterr().err
    assert main(["predict", str(run_dir), "--videos", str(tmp_path / "*.avi"), "--query", "q",
                 "--out", str(tmp_path / "c.jsonl")]) == 1
    assert "no video file matches" in capsys.readouterr().err
    listing.write_text("missing.mp4\n")
    assert main(["predict", str(run_dir), "--videos", str(listing), "--query", "q",
                 "--out", str(tmp_path / "c.jsonl")]) == 1
    assert "missing.mp4: no such video file" in capsys.readouterr().err
    assert not (tmp_path / "c.jsonl").exists()


def test_a_broken_video_does_not_stop_the_others(shapes_run, videos, tmp_path, capsys):
    _, run_dir = shapes_run
    mixed = tmp_path / "mixed"
    shutil.copytree(videos, mixed)
    (mixed / "broken.mp4").write_bytes(b"not a video at all")
    out = tmp_path / "out.jsonl"
    cmd = ["predict", str(run_dir), "--videos", str(mixed), "--query", QUERIES[0],
           "--out", str(out), "--json"]
    assert main(cmd) == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert list(summary["failed"]) == ["broken"] and "broken.mp4" in summary["failed"]["broken"]
    assert "1 video(s) could not be read" in captured.err
    assert sorted(p.video for p in read_predictions(out)) == sorted(
        p.stem for p in videos.glob("*.mp4"))
    # a rerun tries the broken one again, nothing else
    assert main(cmd) == 1
    again = json.loads(capsys.readouterr().out)
    assert again["written"] == 0 and again["skipped"] == 4 and list(again["failed"]) == ["broken"]
    # files that are not text
    (tmp_path / "q.txt").write_bytes(b"\xff\xfe\x00junk")
    assert main(["predict", str(run_dir), "--videos", str(videos), "--queries",
                 str(tmp_path / "q.txt"), "--out", str(out)]) == 1
    assert "q.txt: not a UTF-8 text queries file" in capsys.readouterr().err
    assert main(["predict", str(run_dir), "--video", "tr0000", "--queries",
                 str(tmp_path / "q.txt")]) == 1
    assert "q.txt: not a UTF-8 text queries file" in capsys.readouterr().err


@pytest.mark.slow
def test_two_gloo_processes_shard_and_merge(shapes_run, tmp_path, capsys):
    """torchrun --nproc_per_node=2 writes what one process writes (5 videos: uneven shards);
    a killed sharded run is finished from its output and part files."""
    import os
    import socket
    import subprocess
    import sys

    world, run_dir = shapes_run
    videos = tmp_path / "videos"
    videos.mkdir()
    for p in sorted((world / "videos").glob("*.mp4"))[:5]:
        shutil.copy(p, videos / p.name)
    queries = tmp_path / "q.txt"
    queries.write_text("\n".join(QUERIES) + "\n")
    single = tmp_path / "single.jsonl"
    assert main(["predict", str(run_dir), "--videos", str(videos), "--queries", str(queries),
                 "--out", str(single)]) == 0
    capsys.readouterr()
    expected = single.read_text().splitlines()
    assert len(expected) == 10

    def torchrun(out):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
               f"--master_port={port}", "--master_addr=127.0.0.1", "-m", "momentloc", "predict",
               str(run_dir), "--videos", str(videos), "--queries", str(queries), "--out", str(out),
               "--json"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout)

    out = tmp_path / "ddp.jsonl"
    summary = torchrun(out)
    assert summary["videos"] == 5 and summary["written"] == 10 and summary["skipped"] == 0
    assert out.read_text().splitlines() == expected
    assert not list(tmp_path.glob(".ddp.jsonl.part*"))
    # a sharded run killed before the merge (two pairs in the output, one in rank 1's part
    # file, its last line cut short) is finished by a run with any number of processes
    out.write_text("\n".join(expected[:2]) + "\n")
    (tmp_path / ".ddp.jsonl.part1").write_text(expected[5] + "\n" + expected[6][:30])
    assert main(["predict", str(run_dir), "--videos", str(videos), "--queries", str(queries),
                 "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped"] == 3 and summary["written"] == 7
    assert out.read_text().splitlines() == expected
    assert not list(tmp_path.glob(".ddp.jsonl.part*"))

import json

import numpy as np
import pytest
from videofiles import ramp_frames

from momentloc.cli.main import main
from momentloc.data.card import DatasetCard, SplitFiles
from momentloc.data.features import open_store
from momentloc.data.policy import InputPolicy
from momentloc.errors import ConfigError, DataError
from momentloc.video.extract import (extract_directory, find_videos, parts_dir, read_sidecar,
                                     sidecar_path, sidecar_spec)
from momentloc.video.extractors import create_extractor

pytest.importorskip("av", reason="PyAV (the 'video' extra) is not installed")


@pytest.fixture
def videos(write, tmp_path):
    write("clipA.mp4", ramp_frames(16), fps=8)                 # 2.0 s
    write("clipB.mp4", ramp_frames(20, height=48), fps=8)      # 2.5 s
    (tmp_path / "readme.txt").write_text("not a video")
    return tmp_path


def extractor(**kw):
    return create_extractor("colorhist", grid=2, max_side=32, **kw)


def test_extract_writes_a_store_the_readers_open_and_a_sidecar(videos, tmp_path):
    out = tmp_path / "out" / "features.hdf5"
    s = extract_directory(videos, extractor(), out, progress=False)
    assert s.extracted == ["clipA", "clipB"] and s.skipped == [] and not s.failed
    side = read_sidecar(sidecar_path(out))
    assert side["videos"]["clipA"]["duration"] == pytest.approx(2.0)
    assert side["videos"]["clipB"]["num_clips"] == 3
    spec = sidecar_spec(side)
    assert spec.extractor == extractor().id and spec.path == "features.hdf5"
    card = DatasetCard("x", "records", {"train": SplitFiles("a.jsonl")}, {"train": "train"},
                       features=spec, root=str(out.parent))
    store = open_store(card)
    assert store.get("clipA").shape == (2, extractor().dim)
    assert store.get("clipB").shape == (3, extractor().dim)
    assert not parts_dir(out).exists()


def test_rerun_skips_done_videos_and_adds_new_ones(videos, tmp_path, write):
    out = tmp_path / "f.hdf5"
    first = extract_directory(videos, extractor(), out, progress=False)
    before = open_store_of(out).get("clipA")
    write("clipC.mp4", ramp_frames(8), fps=8)
    again = extract_directory(videos, extractor(), out, progress=False)
    assert again.extracted == ["clipC"] and again.skipped == ["clipA", "clipB"]
    np.testing.assert_array_equal(open_store_of(out).get("clipA"), before)
    assert set(read_sidecar(sidecar_path(out))["videos"]) == {"clipA", "clipB", "clipC"}
    assert first.spec == again.spec


def open_store_of(out):
    spec = sidecar_spec(read_sidecar(sidecar_path(out)))
    card = DatasetCard("x", "records", {"t": SplitFiles("a")}, {"train": "t"}, features=spec,
                       root=str(out.parent))
    return open_store(card)


def test_a_crash_leaves_no_half_written_entry_and_resumes(videos, tmp_path, monkeypatch):
    out = tmp_path / "f.hdf5"
    ex = extractor()
    real = type(ex).extract
    calls = []

    def crash_on_second(self, path, limits=None, batch_clips=32):
        calls.append(path.stem)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, path, limits, batch_clips)

    monkeypatch.setattr(type(ex), "extract", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        extract_directory(videos, ex, out, progress=False)
    assert not out.exists() and not sidecar_path(out).exists()
    assert [p.name for p in parts_dir(out).iterdir()] == ["clipA.npz"]   # whole, renamed
    monkeypatch.setattr(type(ex), "extract", real)
    s = extract_directory(videos, ex, out, progress=False)
    assert s.extracted == ["clipB"] and s.skipped == ["clipA"]
    assert open_store_of(out).keys() == {"clipA", "clipB"}


def test_bad_videos_stop_or_are_skipped(videos, tmp_path):
    (videos / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x01" * 200)
    with pytest.raises(DataError, match="broken.mp4"):
        extract_directory(videos, extractor(), tmp_path / "a.hdf5", progress=False)
    s = extract_directory(videos, extractor(), tmp_path / "b.hdf5", policy=InputPolicy("skip"),
                          progress=False)
    assert list(s.failed) == ["broken"] and s.extracted == ["clipA", "clipB"]


def test_another_extractor_cannot_append_to_a_store(videos, tmp_path):
    out = tmp_path / "f.hdf5"
    extract_directory(videos, extractor(), out, progress=False)
    with pytest.raises(ConfigError, match="differs"):
        extract_directory(videos, create_extractor("colorhist", grid=3, max_side=32), out,
                          progress=False)


def test_directory_problems(tmp_path, write):
    with pytest.raises(ConfigError, match="not a directory"):
        find_videos(tmp_path / "absent")
    with pytest.raises(ConfigError, match="no video file"):
        find_videos(tmp_path)
    write("same.mp4", ramp_frames(8))
    write("same.mkv", ramp_frames(8))
    with pytest.raises(ConfigError, match="two videos have the id"):
        find_videos(tmp_path)


def test_extract_command(videos, tmp_path, capsys):
    out = tmp_path / "cli" / "f.hdf5"
    code = main(["extract", str(videos), "--out", str(out), "--clip-rate", "2", "--param",
                 "grid=2", "--no-progress", "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["extracted"] == ["clipA", "clipB"] and "grid=2" in payload["extractor"]
    assert payload["dim"] == 4 * 129
    assert main(["extract", str(videos), "--out", str(out), "--extractor", "clip"]) == 1
    assert "--model-dir" in capsys.readouterr().err
    assert main(["extract", str(tmp_path / "absent"), "--out", str(out)]) == 1

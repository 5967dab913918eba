"""``extract`` resumes from a kill at any stage and then writes what an uninterrupted run writes.

A kill is simulated by an exception raised before or after each step (a part, the store, the
sidecar, clearing the parts); nothing the code would not leave after a SIGKILL is cleaned up
on the way out, since every step writes a temporary file and renames it.
"""

import json

import h5py
import numpy as np
import pytest
from videofiles import ramp_frames

from momentloc.errors import ConfigError
from momentloc.video import extract as ex_mod
from momentloc.video.extract import extract_directory, parts_dir, sidecar_path
from momentloc.video.extractors import create_extractor

pytest.importorskip("av", reason="PyAV (the 'video' extra) is not installed")


class Killed(BaseException):
    """Stands for SIGKILL: no handler of the code under test catches it."""


@pytest.fixture
def videos(write, tmp_path):
    write("clipA.mp4", ramp_frames(16), fps=8)
    write("clipB.mp4", ramp_frames(20, height=48), fps=8)
    write("clipC.mp4", ramp_frames(12), fps=8)
    return tmp_path


def extractor(**kw):
    return create_extractor("colorhist", grid=2, max_side=32, **kw)


def contents(out):
    """Every dataset of the store and the sidecar, for comparing runs."""
    with h5py.File(out, "r") as f:
        arrays = {k: f[k][()] for k in f}
    return arrays, json.loads(sidecar_path(out).read_text())


def assert_same(a, b):
    assert a[0].keys() == b[0].keys()
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k])
    assert a[1] == b[1]


def kill(monkeypatch, name, when):
    """Make ``extract.<name>`` raise Killed before or after doing its work."""
    real = getattr(ex_mod, name)

    def wrapped(*args, **kwargs):
        if when == "before":
            raise Killed(name)
        real(*args, **kwargs)
        raise Killed(name)

    monkeypatch.setattr(ex_mod, name, wrapped)


def kill_at_second_part(monkeypatch):
    real = ex_mod._write_part
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise Killed("part")
        real(*args, **kwargs)

    monkeypatch.setattr(ex_mod, "_write_part", wrapped)


def kill_while_clearing(monkeypatch):
    def one_then_die(parts):
        next(p for p in sorted(parts.iterdir()) if p.suffix == ".npz").unlink()
        raise Killed("clear")

    monkeypatch.setattr(ex_mod, "_clear_parts", one_then_die)


STAGES = [("part", None), ("_write_store", "before"), ("_write_store", "after"),
          ("_write_sidecar", "before"), ("_write_sidecar", "after"), ("clear", None)]


@pytest.mark.parametrize("name,when", STAGES, ids=[f"{n}-{w}" for n, w in STAGES])
@pytest.mark.parametrize("append", [False, True], ids=["first-run", "append"])
def test_resume_after_a_kill_gives_the_uninterrupted_result(videos, tmp_path, monkeypatch,
                                                           name, when, append):
    reference = tmp_path / "ref" / "f.hdf5"
    extract_directory(videos, extractor(), reference, progress=False)
    out = tmp_path / "run" / "f.hdf5"
    if append:  # a store of clipA exists; the killed run adds clipB and clipC
        only_a = tmp_path / "only_a"
        only_a.mkdir()
        (only_a / "clipA.mp4").write_bytes((videos / "clipA.mp4").read_bytes())
        extract_directory(only_a, extractor(), out, progress=False)
    with monkeypatch.context() as m:
        if name == "part":
            kill_at_second_part(m)
        elif name == "clear":
            kill_while_clearing(m)
        else:
            kill(m, name, when)
        with pytest.raises(Killed):
            extract_directory(videos, extractor(), out, progress=False)
    # a temporary file of a part write killed before its rename is left behind too
    parts = parts_dir(out)
    if parts.is_dir():
        (parts / ".clipC.tmp99999.npz").write_bytes(b"half a file")
    s = extract_directory(videos, extractor(), out, progress=False)
    assert sorted(s.extracted + s.skipped) == ["clipA", "clipB", "clipC"]
    assert_same(contents(out), contents(reference))
    assert not parts.exists()
    # and a further run has nothing to do
    again = extract_directory(videos, extractor(), out, progress=False)
    assert again.extracted == [] and again.skipped == ["clipA", "clipB", "clipC"]
    assert_same(contents(out), contents(reference))


def test_a_store_without_sidecar_and_without_parts_is_refused(videos, tmp_path):
    out = tmp_path / "f.hdf5"
    extract_directory(videos, extractor(), out, progress=False)
    sidecar_path(out).unlink()
    with pytest.raises(ConfigError, match="without its sidecar.*'clipA'"):
        extract_directory(videos, extractor(), out, progress=False)


def killed_before_the_store(videos, out, monkeypatch):
    """Every part written, then killed: no store, no sidecar."""
    with monkeypatch.context() as m:
        kill(m, "_write_store", "before")
        with pytest.raises(Killed):
            extract_directory(videos, extractor(), out, progress=False)


def test_parts_of_another_extractor_are_refused(videos, tmp_path, monkeypatch):
    out = tmp_path / "f.hdf5"
    killed_before_the_store(videos, out, monkeypatch)
    with pytest.raises(ConfigError, match=r"clipA\.npz.*another extractor"):
        extract_directory(videos, create_extractor("colorhist", grid=3, max_side=32), out,
                          progress=False)


def test_a_part_without_its_extractor_is_extracted_again(videos, tmp_path, monkeypatch):
    out = tmp_path / "f.hdf5"
    killed_before_the_store(videos, out, monkeypatch)
    part = parts_dir(out) / "clipB.npz"
    with np.load(part) as z:
        features, meta = z["features"], z["meta"]
    np.savez(part, features=features, meta=meta)   # the layout before the extractor was kept
    s = extract_directory(videos, extractor(), out, progress=False)
    assert s.extracted == ["clipB"] and s.skipped == ["clipA", "clipC"]

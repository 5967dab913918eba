import os
import pickle

import pytest
import torch

from momentloc.engine.checkpoint import load_checkpoint, save_checkpoint
from momentloc.errors import CheckpointError


def _state():
    return {"model": {"w": torch.arange(4.0)}, "epoch": 2, "config": {"train": {"lr": 1e-3}},
            "model_name": "x"}


def test_round_trip_and_atomic(tmp_path):
    p = tmp_path / "ck" / "last.pt"
    save_checkpoint(p, _state())
    s = load_checkpoint(p)
    assert torch.equal(s["model"]["w"], torch.arange(4.0)) and s["epoch"] == 2
    assert s["format_version"] == 1
    assert [f.name for f in p.parent.iterdir()] == ["last.pt"]  # no temporary left behind


def test_failed_save_keeps_previous(tmp_path, monkeypatch):
    p = tmp_path / "last.pt"
    save_checkpoint(p, _state())
    before = p.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(p, {**_state(), "epoch": 3})
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["last.pt"]


def test_missing_truncated_foreign(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    p = tmp_path / "t.pt"
    save_checkpoint(p, _state())
    p.write_bytes(p.read_bytes()[: os.path.getsize(p) // 2])
    with pytest.raises(CheckpointError, match="t.pt: not a readable checkpoint"):
        load_checkpoint(p)
    q = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, q)
    with pytest.raises(CheckpointError, match="not a momentloc checkpoint"):
        load_checkpoint(q)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_arbitrary_objects_are_never_unpickled(tmp_path):
    p = tmp_path / "evil.pt"
    with open(p, "wb") as f:
        pickle.dump({"format_version": 1, "model": Evil()}, f)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(p)
    r = tmp_path / "evil2.pt"
    torch.save({"format_version": 1, "model": {}, "x": Evil()}, r)
    with pytest.raises(CheckpointError):
        load_checkpoint(r)

"""The run directory's building blocks: atomic writes on a full disk, the lock, checkpoint
resolution and shape checks, the --overwrite rule."""

import errno
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

import momentloc.atomic as atomic
from momentloc.atomic import WriteError, atomic_write_text, refuse_existing, remove_stale_temporaries
from momentloc.engine.checkpoint import (load_checkpoint, load_model_state, resolve_checkpoint,
                                         save_checkpoint)
from momentloc.engine.lock import LOCK_FILE, RunBusyError, RunLock
from momentloc.engine.runs import prepare_new_run, provenance, provenance_line
from momentloc.errors import CheckpointError, ConfigError, MomentlocError


def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_names_the_path_and_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "ck" / "last.pt"
    save_checkpoint(target, {"model": {"w": torch.ones(3)}, "epoch": 1})
    before = target.read_bytes()
    monkeypatch.setattr(atomic.os, "fsync", _enospc)  # the disk fills while the file is flushed
    with pytest.raises(WriteError) as err:
        save_checkpoint(target, {"model": {"w": torch.zeros(3)}, "epoch": 2})
    assert str(err.value).startswith(f"{target}: no space left on device")
    assert "unexpected pos" not in str(err.value)
    assert err.value.errno == errno.ENOSPC and isinstance(err.value, (OSError, MomentlocError))
    assert target.read_bytes() == before and os.listdir(target.parent) == ["last.pt"]
    meta = tmp_path / "meta.json"
    with pytest.raises(WriteError, match=r"meta\.json: no space left on device"):
        atomic_write_text(meta, "{}")
    assert not meta.exists() and os.listdir(tmp_path) == ["ck"]


def test_other_write_failures_name_the_path(tmp_path, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(atomic, "_write_file", denied)
    with pytest.raises(WriteError, match=r"x\.json: cannot write \(Permission denied\)"):
        atomic_write_text(tmp_path / "x.json", "1")


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    for name in (".last.pt.tmp1234", ".metrics.jsonl.tmp9", "last.pt", ".hidden", "x.tmp12"):
        (tmp_path / name).write_text("x")
    removed = remove_stale_temporaries(tmp_path, tmp_path / "missing")
    assert sorted(p.name for p in removed) == [".last.pt.tmp1234", ".metrics.jsonl.tmp9"]
    assert sorted(os.listdir(tmp_path)) == [".hidden", "last.pt", "x.tmp12"]


def test_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    with RunLock(tmp_path / "run", "train"):
        with pytest.raises(RunBusyError) as err:
            RunLock(tmp_path / "run", "evaluate").acquire()
        msg = str(err.value)
        assert f"pid {os.getpid()} on {socket.gethostname()}" in msg and "(train)" in msg
        assert "started 20" in msg
    with RunLock(tmp_path / "run", "evaluate"):  # released on exit
        pass
    assert (tmp_path / "run" / LOCK_FILE).is_file()


def test_lock_dies_with_a_killed_holder(tmp_path):
    code = ("import sys, os, signal; from momentloc.engine.lock import RunLock; "
            "RunLock(sys.argv[1], 'train').acquire(); print('locked', flush=True); "
            "os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.strip() == "locked" and proc.returncode == -9
    RunLock(tmp_path, "train").acquire().release()


def test_checkpoint_best_is_never_silently_last(tmp_path):
    ck = tmp_path / "checkpoints"
    save_checkpoint(ck / "last.pt", {"model": {}, "epoch": 2, "best_epoch": 2})
    with pytest.raises(CheckpointError, match=r"best\.pt: checkpoint not found \(use --checkpoint last"):
        resolve_checkpoint(tmp_path, "best")
    assert resolve_checkpoint(tmp_path, "last") == ck / "last.pt"
    save_checkpoint(ck / "best.pt", {"model": {}, "epoch": 1})
    with pytest.raises(CheckpointError, match="holds epoch 1, but .*last.pt records epoch 2"):
        resolve_checkpoint(tmp_path, "best")
    save_checkpoint(ck / "best.pt", {"model": {}, "epoch": 2})
    assert resolve_checkpoint(tmp_path, "best") == ck / "best.pt"
    assert resolve_checkpoint(tmp_path, "x/other.pt").name == "other.pt"
    with pytest.raises(CheckpointError, match="best, last or a .pt file"):
        resolve_checkpoint(tmp_path, "newest")


def test_mismatched_weights_name_file_tensor_and_shapes(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    path = tmp_path / "last.pt"
    wrong = {"0.weight": torch.zeros(5, 4), "0.bias": torch.zeros(5)}
    with pytest.raises(CheckpointError) as err:
        load_model_state(model, wrong, path)
    assert str(err.value).startswith(f"{path}: tensor '0.weight' has shape (5, 4) in the checkpoint "
                                     f"but (3, 4) in the model")
    with pytest.raises(CheckpointError, match="tensor 'extra' is not in the model"):
        load_model_state(model, {**model.state_dict(), "extra": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=r"tensor '0.bias' of the model is missing"):
        load_model_state(model, {"0.weight": torch.zeros(3, 4)}, path)
    load_model_state(model, {"0.weight": torch.ones(3, 4), "0.bias": torch.ones(3)}, path)
    assert torch.equal(model[0].bias, torch.ones(3))


def test_outputs_are_never_replaced_without_overwrite(tmp_path):
    f = tmp_path / "preds.jsonl"
    refuse_existing(f, overwrite=False)  # not there yet
    f.write_text("mine")
    with pytest.raises(ConfigError, match="preds.jsonl already exists; .* --overwrite"):
        refuse_existing(f, overwrite=False)
    refuse_existing(f, overwrite=True)
    d = tmp_path / "figs"
    d.mkdir()
    refuse_existing(d, overwrite=False)  # empty directory
    (d / "a.png").write_text("x")
    with pytest.raises(ConfigError, match="figs already holds files"):
        refuse_existing(d, overwrite=False)


def test_a_new_run_refuses_a_directory_with_files(tmp_path):
    run = tmp_path / "run"
    prepare_new_run(run, overwrite=False)  # missing: fine
    run.mkdir()
    (run / LOCK_FILE).write_text("")
    prepare_new_run(run, overwrite=False)  # only a lock file: fine
    for name in ("config.yaml", "metrics.jsonl", "predictions_test.jsonl", "notes.txt"):
        (run / name).write_text("x")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.pt").write_text("x")
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        prepare_new_run(run, overwrite=False)
    (run / "checkpoints" / "last.pt").unlink()
    with pytest.raises(ConfigError, match=r"is not empty \(checkpoints, config.yaml, metrics.jsonl"):
        prepare_new_run(run, overwrite=False)
    prepare_new_run(run, overwrite=True)  # removes the earlier run's outputs, nothing else
    assert sorted(os.listdir(run)) == [LOCK_FILE, "notes.txt"]


def test_provenance_says_what_produced_a_result():
    p = provenance(3, "cpu")
    assert p["seed"] == 3 and p["threads"] == torch.get_num_threads()
    assert p["torch"] == torch.__version__ and p["device"].startswith("cpu: ")
    line = provenance_line(p)
    assert line.startswith("produced with: seed 3 | ") and f"torch {torch.__version__}" in line
    assert json.loads(json.dumps(p)) == p


def test_paper_tables_say_what_produced_their_rows():
    from momentloc.engine.tables import format_paper_table, load_table

    table = load_table("cimha-ablation")
    p = provenance(0, "cpu")
    results = [{"label": r.label, "metrics": {"R1@0.5": 0.5}, "prior_baseline": {"R1@0.5": 0.2},
                "paper": r.paper, "provenance": p} for r in table.rows[:2]]
    text = format_paper_table(table, results)
    assert text.count("produced with: seed 0 |") == 1  # one line for rows produced alike
    results[1]["provenance"] = provenance(1, "cpu")
    assert "produced with: seed 1 |" in format_paper_table(table, results)

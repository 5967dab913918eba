"""Fault injection: a run directory survives kill -9 at any instant, a second trainer, a full disk.

Each trial forks the test process (torch is imported once) and the child kills itself with
SIGKILL at a chosen event of training: the start of an epoch, an evaluation, or a file write
(half of the temporary written; or the whole temporary written, before its rename). The run is
then resumed (in another forked child, which may be killed again) until it finishes, and its
final metrics, weights and files must equal those of an uninterrupted run.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import signal
import socket
import sys

import pytest
import torch

import momentloc.atomic as atomic
from momentloc.config import load_config
from momentloc.engine.checkpoint import load_checkpoint
from momentloc.engine.lock import LOCK_FILE, RunBusyError
from momentloc.engine.runs import with_dataset
from momentloc.engine.trainer import Trainer, train

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")]

TINY = ["model.hidden_dim=8", "model.lstm_hidden=8", "model.num_layers=1", "data.num_clips=16",
        "train.epochs=3", "train.batch_size=64", "train.eval_batch_size=100",
        "train.progress=false", "data.val_holdout=0.3"]
SEEDS = [11, 12, 13, 14, 15, 16, 17]      # trials of chained random kills
TIMING = {"samples_per_s", "epoch_time_s"}


def tiny_cfg(card):
    return with_dataset(load_config("tan2d", "synthetic", TINY), str(card), None)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Forked children must not use an OpenMP pool the parent started; one thread also makes
    # the children's arithmetic the reference run's.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Events:
    """Counts the events of a training process; ``kill_at`` kills it with SIGKILL at one."""

    def __init__(self, kill_at: int | None = None):
        self.kill_at, self.names = kill_at, []

    def hit(self, name: str) -> None:
        self.names.append(name)
        if self.kill_at is not None and len(self.names) == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def install(self, patch) -> None:
        write, train_epoch, evaluate = atomic._write_file, Trainer.train_epoch, Trainer.evaluate

        def write_file(tmp, data):
            name = tmp.name.split(".tmp")[0][1:]
            if self.kill_at == len(self.names) + 1:  # die with half of the temporary written
                with open(tmp, "wb") as f:
                    f.write(bytes(data[: len(data) // 2]))
            self.hit(f"write {name}")
            write(tmp, data)
            self.hit(f"rename {name}")  # the temporary is complete, not yet renamed

        def epoch(trainer):
            self.hit(f"epoch {trainer.epoch + 1}")
            return train_epoch(trainer)

        def evaluation(trainer, role, *args, **kwargs):
            self.hit(f"evaluate {role}")
            return evaluate(trainer, role, *args, **kwargs)

        patch(atomic, "_write_file", write_file)
        patch(Trainer, "train_epoch", epoch)
        patch(Trainer, "evaluate", evaluation)


def run_in_child(card, run_dir, kill_at: int | None) -> str:
    """Train (or resume) ``run_dir`` in a forked child: ``killed``, ``finished`` or ``failed``."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            Events(kill_at).install(setattr)
            resume = (run_dir / "checkpoints" / "last.pt").is_file()
            # Killed before its first checkpoint, a run starts again in its own directory.
            train(tiny_cfg(card), run_dir, resume=resume, overwrite=not resume)
            code = 0
        except BaseException as e:  # noqa: BLE001 - reported to the parent by the exit code
            print(f"child failed: {type(e).__name__}: {e}", file=sys.stderr)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return "killed"
    return "finished" if os.WEXITSTATUS(status) == 0 else "failed"


@pytest.fixture(scope="module")
def reference(synth_card, tmp_path_factory):
    """An uninterrupted run, and the names of its events in order."""
    card = synth_card("charades")
    run = tmp_path_factory.mktemp("faults") / "reference"
    events = Events()
    mp = pytest.MonkeyPatch()
    events.install(mp.setattr)
    try:
        result = train(tiny_cfg(card), run)
    finally:
        mp.undo()
    return card, run, result, events.names


def metric_rows(run_dir) -> list[dict]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def assert_same_as_reference(run_dir, reference_dir) -> None:
    got = json.loads((run_dir / "metrics.json").read_text())
    want = json.loads((reference_dir / "metrics.json").read_text())
    assert got["metrics"] == want["metrics"] and got["best_epoch"] == want["best_epoch"]
    assert got["checkpoint"] == "best"
    for name in ("last.pt", "best.pt"):
        a = load_checkpoint(run_dir / "checkpoints" / name)
        b = load_checkpoint(reference_dir / "checkpoints" / name)
        assert a["epoch"] == b["epoch"], name
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"]), name
    # one row per epoch, the reference's values; no temporary left anywhere
    assert metric_rows(run_dir) == metric_rows(reference_dir)
    assert (run_dir / "predictions_test.jsonl").read_text() == \
        (reference_dir / "predictions_test.jsonl").read_text()
    leftovers = [p for p in run_dir.rglob("*") if re.search(r"\.tmp\d+$", p.name)]
    assert leftovers == []


def test_reference_exercises_every_kind_of_event(reference):
    card, run, result, names = reference
    assert result.epochs_run == 3 and 1 <= result.best_epoch <= 3
    for kind in ("epoch 1", "evaluate val", "evaluate test", "write best.pt", "rename last.pt",
                 "write metrics.jsonl", "write predictions_test.jsonl", "rename metrics.json"):
        assert kind in names, kind
    # best.pt is committed before last.pt in every epoch that improves
    for i, name in enumerate(names):
        if name == "rename best.pt":
            assert names[i + 1] == "write last.pt"


def _kill_points(names: list[str]) -> list[int]:
    """1-based events: each chosen kind of instant once (epoch 2), then every 5th event."""
    chosen = []
    for wanted in ("write config.yaml", "write meta.json", "epoch 2", "evaluate val",
                   "write best.pt", "rename best.pt", "write last.pt", "rename last.pt",
                   "write metrics.jsonl", "write metrics.csv", "evaluate test",
                   "rename predictions_test.jsonl", "write metrics.json"):
        hits = [i + 1 for i, n in enumerate(names) if n == wanted]
        chosen.append(hits[min(1, len(hits) - 1)])
    return sorted(set(chosen) | set(range(3, len(names) + 1, 5)))


def test_kill_at_chosen_points_resumes_to_the_same_result(reference, tmp_path):
    card, ref_dir, _, names = reference
    points = _kill_points(names)
    assert len(points) >= 20
    for k in points:
        run = tmp_path / f"kill{k}"
        assert run_in_child(card, run, kill_at=k) == "killed", (k, names[k - 1])
        if names[k - 1].startswith(("write", "rename")):  # a killed writer's temporary
            assert any(re.search(r"\.tmp\d+$", p.name) for p in run.rglob("*")), names[k - 1]
        assert run_in_child(card, run, kill_at=None) == "finished", (k, names[k - 1])
        assert_same_as_reference(run, ref_dir)
        resumes = json.loads((run / "meta.json").read_text())["resumes"]
        if k > names.index("rename last.pt") + 1:  # last.pt was committed: resumed once
            assert len(resumes) == 1 and resumes[0]["after_epoch"] >= 1
        else:  # killed before any checkpoint: started again
            assert resumes == []


@pytest.mark.parametrize("seed", SEEDS)
def test_repeated_random_kills_resume_to_the_same_result(reference, tmp_path, seed):
    card, ref_dir, _, names = reference
    rng = random.Random(seed)
    run, kills, first_meta = tmp_path / "run", 0, None
    while True:
        kill_at = rng.randint(1, len(names)) if kills < 3 else None
        outcome = run_in_child(card, run, kill_at)
        if (run / "meta.json").is_file() and (run / "checkpoints" / "last.pt").is_file():
            meta = json.loads((run / "meta.json").read_text())
            first_meta = first_meta or {k: meta[k] for k in ("command", "started", "pid")}
            assert {k: meta[k] for k in first_meta} == first_meta  # the original run's record
        if outcome == "finished":
            break
        assert outcome == "killed"
        kills += 1
    assert_same_as_reference(run, ref_dir)


def test_second_trainer_is_refused_naming_the_holder(reference, tmp_path):
    card = reference[0]
    run = tmp_path / "busy"
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # holds the run directory, then waits to be killed
        try:
            os.close(read)
            Trainer(tiny_cfg(card), run)
            os.write(write, b"ready")
            signal.pause()
        finally:
            os._exit(1)
    os.close(write)
    assert os.read(read, 5) == b"ready"
    os.close(read)
    try:
        with pytest.raises(RunBusyError) as err:
            train(tiny_cfg(card), run, overwrite=True)
        msg = str(err.value)
        assert f"pid {pid} on {socket.gethostname()}" in msg and "started 20" in msg
        assert "(train)" in msg
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    # the lock died with its holder: the directory can be taken over
    assert (run / LOCK_FILE).is_file()
    result = train(tiny_cfg(card), run, overwrite=True)
    assert_same_as_reference(run, reference[1])
    assert result.epochs_run == 3


def test_full_disk_stops_with_the_path_and_resumes(reference, tmp_path, monkeypatch):
    card, ref_dir, _, _ = reference
    run = tmp_path / "full"
    write, seen = atomic._write_file, []

    def disk_fills_up(tmp, data):
        seen.append(tmp.name)
        if tmp.name.startswith(".last.pt.") and seen.count(tmp.name) == 2:
            with open(tmp, "wb") as f:
                f.write(bytes(data[:100]))
            raise OSError(errno.ENOSPC, "No space left on device")
        write(tmp, data)

    monkeypatch.setattr(atomic, "_write_file", disk_fills_up)
    with pytest.raises(atomic.WriteError, match=r"last\.pt: no space left on device") as err:
        train(tiny_cfg(card), run)
    assert str(run / "checkpoints" / "last.pt") in str(err.value)
    assert isinstance(err.value, OSError) and err.value.errno == errno.ENOSPC
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 1  # the previous one
    assert not any(re.search(r"\.tmp\d+$", p.name) for p in run.rglob("*"))
    monkeypatch.setattr(atomic, "_write_file", write)
    train(tiny_cfg(card), run, resume=True)
    assert_same_as_reference(run, ref_dir)

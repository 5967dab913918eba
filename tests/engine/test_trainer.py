"""The engine end to end on the tiny synthetic set: train, resume, evaluate, predict, DDP."""

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from momentloc.cli.main import main
from momentloc.config import load_config
from momentloc.engine.checkpoint import load_checkpoint
from momentloc.engine.lock import RunLock
from momentloc.engine.runs import with_dataset
from momentloc.engine.trainer import Trainer, train
from momentloc.errors import ConfigError

FAST = ["model.hidden_dim=16", "model.lstm_hidden=16", "data.num_clips=16", "train.epochs=2",
        "train.batch_size=32", "train.progress=false", "train.eval_batch_size=50"]


def fast_cfg(card, extra=()):
    return with_dataset(load_config("tan2d", "synthetic", [*FAST, *extra]), str(card), None)


@pytest.fixture(scope="module")
def finished_run(synth_card, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "a"
    result = train(fast_cfg(synth_card("charades")), run)
    return run, result


def test_run_directory_records_itself(finished_run):
    run, result = finished_run
    for name in ("config.yaml", "dataset.yaml", "meta.json", "metrics.jsonl", "metrics.csv",
                 "metrics.json", "predictions_test.jsonl", "checkpoints/last.pt",
                 "checkpoints/best.pt", "artifacts/vocab.json"):
        assert (run / name).is_file(), name
    meta = json.loads((run / "meta.json").read_text())
    assert meta["momentloc_version"] and meta["torch_version"]
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and all("train/loss" in r for r in rows)
    assert result.epochs_run == 2 and set(result.test_metrics) >= {"R1@0.5", "R5@0.7", "mIoU"}
    assert 0 < result.baseline_metrics["R1@0.5"] < 0.25
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["model_name"] == "tan2d" and state["epoch"] == 2
    lines = (run / "predictions_test.jsonl").read_text().splitlines()
    assert len(lines) == 100 and len(json.loads(lines[0])["pred_spans"]) <= 5
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["checkpoint"] == "best" and saved["best_epoch"] == 2
    assert saved["provenance"]["seed"] == 0 and saved["provenance"]["torch"] == torch.__version__
    assert {"threads", "torch_build", "device"} <= set(saved["provenance"])
    assert meta["resumes"] == [] and meta["command"] and meta["started"]


def test_resume_after_kill_matches_uninterrupted(finished_run, synth_card, tmp_path, monkeypatch):
    run_a, result_a = finished_run
    run_b = tmp_path / "b"
    calls = {"n": 0}
    original = Trainer.train_epoch

    def killed_in_second_epoch(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt  # the process dies during epoch 2
        return original(self)

    monkeypatch.setattr(Trainer, "train_epoch", killed_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(fast_cfg(synth_card("charades")), run_b)
    assert load_checkpoint(run_b / "checkpoints" / "last.pt")["epoch"] == 1
    monkeypatch.setattr(Trainer, "train_epoch", original)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(fast_cfg(synth_card("charades")), run_b)
    meta_before = json.loads((run_b / "meta.json").read_text())
    result_b = train(fast_cfg(synth_card("charades")), run_b, resume=True)
    assert result_b.test_metrics == result_a.test_metrics
    # the original command and start time stay; the resume is appended
    meta = json.loads((run_b / "meta.json").read_text())
    assert {k: meta[k] for k in ("command", "started")} == \
        {k: meta_before[k] for k in ("command", "started")}
    assert len(meta["resumes"]) == 1 and meta["resumes"][0]["after_epoch"] == 1
    rows = [json.loads(x) for x in (run_b / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    wa = load_checkpoint(run_a / "checkpoints" / "last.pt")["model"]
    wb = load_checkpoint(run_b / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_evaluate_and_predict_commands(finished_run, capsys):
    run, result = finished_run
    assert main(["evaluate", str(run), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["split"] == "test"
    assert out["metrics"]["R1@0.5"] == pytest.approx(result.test_metrics["R1@0.5"])
    assert "R1@0.5" in out["prior_baseline"]
    first = json.loads((run / "predictions_test.jsonl").read_text().splitlines()[0])
    assert main(["predict", str(run), "--video", first["video_id"], "--query", first["query"],
                 "--top-k", "3", "--json"]) == 0
    pred = json.loads(capsys.readouterr().out)
    moments = pred["results"][0]["moments"]
    assert 1 <= len(moments) <= 3
    assert all(0 <= m["start"] <= m["end"] <= pred["duration"] + 1e-6 for m in moments)
    # the top moment is the one evaluation ranked first for this query
    assert moments[0]["start"] == pytest.approx(first["pred_spans"][0][0], abs=1e-4)
    assert main(["evaluate", str(run), "--predictions", str(run / "predictions_test.jsonl"),
                 "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["metrics"]["R1@0.5"] == pytest.approx(result.test_metrics["R1@0.5"])


def test_bad_runs_fail_clearly(synth_card, tmp_path, capsys):
    card = synth_card("charades")
    with pytest.raises(ConfigError, match="1024-d features.*for 4096-d"):
        Trainer(fast_cfg(card, ["data.feature_dim=4096"]), tmp_path / "x")
    with pytest.raises(ConfigError, match="loss_weights names bogus"):
        train(fast_cfg(card, ["model.loss_weights={bogus: 1.0}", "train.max_steps=1"]), tmp_path / "y")
    with pytest.raises(ConfigError, match="nothing to resume"):
        Trainer(fast_cfg(card), tmp_path / "z", resume=True)
    assert main(["train", "--model", "tan2d", "--preset", "synthetic", "--dataset", str(card),
                 "--out", str(tmp_path / "w"), "--set", "train.epochz=1"]) == 1
    err = capsys.readouterr().err
    assert "'epochz'" in err and "epochs" in err  # names the bad key and the valid ones
    # a corrupt checkpoint names its file
    run = tmp_path / "c"
    train(fast_cfg(card, ["train.max_steps=1", "train.epochs=1"]), run)
    (run / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint")
    assert main(["evaluate", str(run)]) == 1
    assert "best.pt: not a readable checkpoint" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_matches_single_process(synth_card, finished_run, tmp_path):
    """torchrun --nproc_per_node=2 with half the batch per process = one process, full batch."""
    run_single, result_single = finished_run
    card = synth_card("charades")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
           f"--master_port={_free_port()}", "--master_addr=127.0.0.1", "-m", "momentloc", "train",
           "--model", "tan2d", "--preset", "synthetic", "--dataset", str(card),
           "--out", str(tmp_path / "ddp"), "--json",
           *[a for kv in FAST for a in ("--set", kv)], "--set", "train.batch_size=16",
           "--set", "train.device=cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert json.loads((tmp_path / "ddp" / "meta.json").read_text())["world_size"] == 2
    wa = load_checkpoint(run_single / "checkpoints" / "last.pt")["model"]
    wb = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")["model"]
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-4, rtol=1e-3), k
    for k, v in result_single.test_metrics.items():
        assert ddp["metrics"][k] == pytest.approx(v, abs=0.02), k


def test_train_takes_the_dataset_from_the_preset(synth_card, tmp_path, capsys):
    card = synth_card("charades")
    args = ["train", "--model", "tan2d", "--preset", "synthetic", "--out", str(tmp_path / "r"),
            "--json", *[a for kv in FAST for a in ("--set", kv)],
            "--set", f"data.dataset={card}", "--set", "train.max_steps=1", "--set", "train.epochs=1"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["split"] == "test"
    assert main(["train", "--dataset", str(card)]) == 1
    assert "needs --model" in capsys.readouterr().err


def test_evaluate_writes_beside_the_training_never_over_it(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run[0], run)
    for earlier in [*run.glob("metrics_*.json"), *run.glob("predictions_*_*.jsonl")]:
        earlier.unlink()  # another test evaluated the shared run
    training = {name: (run / name).read_bytes() for name in ("metrics.json", "predictions_test.jsonl")}
    assert main(["evaluate", str(run), "--split", "train", "--checkpoint", "last"]) == 0
    out = capsys.readouterr().out
    assert "produced with: seed 0 | " in out
    assert "metrics_train_last.json" in out
    assert main(["evaluate", str(run), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["checkpoint"] == "best" and got["provenance"]["seed"] == 0
    for name in ("metrics_train_last.json", "predictions_train_last.jsonl", "metrics_test_best.json",
                 "predictions_test_best.jsonl"):
        assert (run / name).is_file(), name
    assert {name: (run / name).read_bytes() for name in training} == training
    assert json.loads((run / "metrics_test_best.json").read_text())["metrics"] == got["metrics"]
    # an earlier evaluation is not replaced unless asked
    before = (run / "metrics_test_best.json").read_bytes()
    assert main(["evaluate", str(run)]) == 1
    assert "predictions_test_best.jsonl already exists" in capsys.readouterr().err
    assert (run / "metrics_test_best.json").read_bytes() == before
    assert main(["evaluate", str(run), "--overwrite"]) == 0
    capsys.readouterr()
    # a process writing the run directory holds it: evaluation waits its turn
    with RunLock(run, "train"):
        assert main(["evaluate", str(run), "--checkpoint", "last"]) == 1
        assert f"is in use by pid {os.getpid()}" in capsys.readouterr().err
    # best never silently means last
    (run / "checkpoints" / "best.pt").unlink()
    assert main(["evaluate", str(run), "--split", "val", "--overwrite"]) == 1
    assert "best.pt: checkpoint not found (use --checkpoint last" in capsys.readouterr().err
    # plot and report never write over an existing output
    (run / "report.html").write_text("mine")
    assert main(["report", str(run)]) == 1
    assert "report.html already exists" in capsys.readouterr().err
    assert (run / "report.html").read_text() == "mine"
    (run / "figs").mkdir()
    (run / "figs" / "curves.png").write_text("mine")
    assert main(["plot", str(run), "--out", str(run / "figs")]) == 1
    assert "figs already holds files" in capsys.readouterr().err


def test_train_never_writes_over_a_directory_with_files(synth_card, tmp_path, capsys):
    card = synth_card("charades")
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.yaml").write_text("my own config\n")
    (out / "notes.txt").write_text("keep me\n")
    args = ["train", "--model", "tan2d", "--preset", "synthetic", "--dataset", str(card),
            "--out", str(out), *[a for kv in FAST for a in ("--set", kv)],
            "--set", "train.max_steps=1", "--set", "train.epochs=1"]
    assert main(args) == 1
    assert "is not empty (config.yaml, notes.txt); pass --resume" in capsys.readouterr().err
    assert (out / "config.yaml").read_text() == "my own config\n"
    assert main([*args, "--overwrite"]) == 0
    assert "produced with: seed 0" in capsys.readouterr().out
    assert (out / "notes.txt").read_text() == "keep me\n"
    assert (out / "checkpoints" / "last.pt").is_file()
    assert main(["train", "--resume", str(out), "--overwrite"]) == 1
    assert "cannot be combined with --resume" in capsys.readouterr().err


def test_resume_with_a_mismatched_checkpoint_names_file_tensor_and_shapes(synth_card, tmp_path,
                                                                          capsys):
    run = tmp_path / "run"
    train(fast_cfg(synth_card("charades"), ["train.max_steps=1"]), run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["model"]["hidden_dim"] = 24
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["train", "--resume", str(run)]) == 1
    err = capsys.readouterr().err
    assert f"{run / 'checkpoints' / 'last.pt'}: tensor " in err
    assert "in the checkpoint but (" in err and "16" in err and "24" in err
    assert "Traceback" not in err


def test_an_early_stopped_run_stays_stopped_when_resumed(synth_card, tmp_path, monkeypatch):
    scores = iter([0.5, 0.1, 0.1, 0.1])  # epoch 1 is the best; patience 1 stops after epoch 2
    monkeypatch.setattr(Trainer, "_select_score", lambda self, metrics: next(scores))
    cfg = fast_cfg(synth_card("charades"), ["train.epochs=4", "train.early_stop_patience=1",
                                            "data.val_holdout=0.3"])
    run = tmp_path / "run"
    first = train(cfg, run)
    assert first.epochs_run == 2 and first.best_epoch == 1
    again = train(cfg, run, resume=True)
    assert again.epochs_run == 2 and again.test_metrics == first.test_metrics
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 2


@pytest.mark.slow
def test_plateau_on_the_validation_loss_is_stepped_with_it_and_resumes(synth_card, tmp_path,
                                                                        monkeypatch):
    cfg = fast_cfg(synth_card("charades"), [
        "train.epochs=3", "data.val_holdout=0.3", "optim.scheduler=plateau",
        "optim.plateau_on=neg_val_loss", "optim.plateau_mode=min", "optim.step_size=1",
        "optim.gamma=0.5"])
    seen: list[float] = []
    step = torch.optim.lr_scheduler.ReduceLROnPlateau.step

    def recording(self, value, *args, **kwargs):
        seen.append(float(value))
        return step(self, value, *args, **kwargs)

    monkeypatch.setattr(torch.optim.lr_scheduler.ReduceLROnPlateau, "step", recording)
    run_a = tmp_path / "a"
    train(cfg, run_a)
    rows = [json.loads(x) for x in (run_a / "metrics.jsonl").read_text().splitlines()]
    assert all(r["val/loss"] > 0 for r in rows)
    assert seen == [-r["val/loss"] for r in rows]  # the negated mean validation loss
    assert load_checkpoint(run_a / "checkpoints" / "last.pt")["scheduler"]["last_epoch"] == 3
    # the selection metric alone: no validation loss is computed
    plain = fast_cfg(synth_card("charades"), ["train.epochs=1", "data.val_holdout=0.3",
                                              "optim.scheduler=plateau"])
    seen.clear()
    train(plain, tmp_path / "plain")
    row = json.loads((tmp_path / "plain" / "metrics.jsonl").read_text())
    assert "val/loss" not in row and seen == [row["val/R1@0.5"]]

    # killed during epoch 3, resumed: the scheduler continues from last.pt
    calls = {"n": 0}
    original = Trainer.train_epoch

    def killed_in_third_epoch(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_epoch", killed_in_third_epoch)
    run_b = tmp_path / "b"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run_b)
    monkeypatch.setattr(Trainer, "train_epoch", original)
    train(cfg, run_b, resume=True)
    sa = load_checkpoint(run_a / "checkpoints" / "last.pt")["scheduler"]
    sb = load_checkpoint(run_b / "checkpoints" / "last.pt")["scheduler"]
    assert sb == sa and sb["last_epoch"] == 3  # a fresh scheduler would have counted 1
    rows_b = [json.loads(x) for x in (run_b / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows_b] == [r["lr"] for r in rows]


def test_a_run_predicts_with_the_tokenizer_it_trained_with(synth_card, tmp_path):
    from momentloc.data.text import tokenize
    from momentloc.engine.inference import Predictor

    run = tmp_path / "ws"
    train(fast_cfg(synth_card("charades"), ["train.epochs=1", "data.tokenizer=whitespace"]), run)
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["tokenizer"] == "whitespace"
    words = json.loads((run / "artifacts" / "vocab.json").read_text())["words"][2:]
    word = next(w for w in words if w.isalpha())
    pred = Predictor(run, checkpoint="last")
    assert pred.encoder.tokenizer == "whitespace"
    query = f"{word} {word.upper()}."
    assert pred.check_query(query).unknown_words == [f"{word}."]  # punctuation stays on it
    assert tokenize(query) == [word, word]  # the default tokenizer would read the word twice
    batch = pred.data.make_batch(np.zeros((8, pred.data.store.dim), np.float32), 10.0, [query])
    assert batch.query_mask.sum().item() == 1  # oov: drop removes "word."

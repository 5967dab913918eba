"""Run directories: every run records its resolved config, dataset card and versions.

Layout::

    RUN_DIR/config.yaml          resolved experiment config
    RUN_DIR/dataset.yaml         the dataset card (root made absolute)
    RUN_DIR/meta.json            package / torch versions, git commit, the command and start time
                                 of the run, then one entry per resume under "resumes"
    RUN_DIR/artifacts/           vocabulary, word vectors, PCA (to encode new inputs)
    RUN_DIR/checkpoints/         last.pt (each epoch), best.pt (best validation score)
    RUN_DIR/metrics.jsonl|.csv   one row per epoch
    RUN_DIR/predictions_<split>.jsonl, RUN_DIR/metrics.json   the training's test results
    RUN_DIR/predictions_<split>_<checkpoint>.jsonl, metrics_<split>_<checkpoint>.json
                                 written by ``momentloc evaluate``
    RUN_DIR/.momentloc.lock      held by the process writing the directory (engine/lock.py)
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml

from momentloc import __version__
from momentloc.config.load import build_config, config_to_dict, read_yaml
from momentloc.config.schema import ExperimentConfig
from momentloc.data.card import DatasetCard, load_card, save_card
from momentloc.atomic import atomic_write_text
from momentloc.errors import ConfigError

CONFIG = "config.yaml"
CARD = "dataset.yaml"
META = "meta.json"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def write_run_files(run_dir: Path, cfg: ExperimentConfig, card: DatasetCard, world_size: int) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    save_card(card, run_dir / CARD)
    # The saved card resolves against the original data directory, wherever the run dir moves.
    text = (run_dir / CARD).read_text()
    atomic_write_text(run_dir / CARD, f"# data root: {Path(card.root).resolve()}\n{text}")
    meta = {
        "momentloc_version": __version__, "torch_version": torch.__version__,
        "python": platform.python_version(), "git_commit": _git_commit(),
        "command": " ".join(sys.argv), "world_size": world_size,
        "data_root": str(Path(card.root).resolve()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(), "pid": os.getpid(), "resumes": [],
    }
    atomic_write_text(run_dir / META, json.dumps(meta, indent=2))


def record_resume(run_dir: Path, epoch: int, world_size: int) -> None:
    """Append this process (command, time, the epoch it resumes after) to ``meta.json``; the
    run's original command and start time stay as they were."""
    path = run_dir / META
    meta = json.loads(path.read_text()) if path.is_file() else {}
    meta.setdefault("resumes", []).append({
        "command": " ".join(sys.argv), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "after_epoch": epoch, "host": socket.gethostname(), "pid": os.getpid(),
        "momentloc_version": __version__, "torch_version": torch.__version__,
        "git_commit": _git_commit(), "world_size": world_size})
    atomic_write_text(path, json.dumps(meta, indent=2))


# What a training run writes into its directory: ``train --overwrite`` replaces these, nothing else.
RUN_OUTPUTS = (CONFIG, CARD, META, "artifacts", "checkpoints", "metrics.jsonl", "metrics.csv",
               "metrics.json", "tensorboard", "predictions_*.jsonl", "metrics_*.json", "figures",
               "report.html")


def prepare_new_run(run_dir: Path, overwrite: bool) -> None:
    """Check ``run_dir`` can receive a new run: missing or empty, else refused unless
    ``overwrite``, which removes the outputs of the earlier run (:data:`RUN_OUTPUTS`) and
    nothing else. Call while holding the directory's lock."""
    from momentloc.engine.lock import LOCK_FILE

    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file, not a run directory")
    present = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_FILE)
    if not present:
        return
    if not overwrite:
        what = ("already holds a run" if (run_dir / "checkpoints" / "last.pt").is_file()
                else f"is not empty ({', '.join(present[:5])}{', ...' if len(present) > 5 else ''})")
        raise ConfigError(f"{run_dir} {what}; pass --resume to continue it, choose another --out, "
                          f"or pass --overwrite to replace the earlier run's files")
    for pattern in RUN_OUTPUTS:
        for p in run_dir.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()


def evaluation_outputs(run_dir: Path, split: str, checkpoint: str) -> tuple[Path, Path]:
    """``(predictions, metrics)`` files ``momentloc evaluate`` writes for ``split`` and a
    checkpoint (``best``, ``last`` or a ``.pt`` file, named by its stem)."""
    tag = checkpoint if checkpoint in ("best", "last") else Path(checkpoint).stem
    return (Path(run_dir) / f"predictions_{split}_{tag}.jsonl",
            Path(run_dir) / f"metrics_{split}_{tag}.json")


def evaluate_into_run(run_dir: str | Path, split: str | None = None, checkpoint: str = "best",
                      device: str | torch.device = "cpu", write: bool = True,
                      overwrite: bool = False) -> dict:
    """Evaluate a run's model on ``split`` (default: its test role).

    With ``write``, holds the run's lock and writes ``predictions_<split>_<checkpoint>.jsonl``
    and ``metrics_<split>_<checkpoint>.json`` (:func:`evaluation_outputs`) beside the
    training's ``metrics.json``, never over it; an earlier evaluation's files are refused
    unless ``overwrite``. ``best`` is never silently another checkpoint
    (:func:`~momentloc.engine.checkpoint.resolve_checkpoint`).
    """
    import contextlib

    from momentloc.atomic import atomic_write_text, refuse_existing
    from momentloc.engine.baseline import prior_metrics_for
    from momentloc.engine.checkpoint import resolve_checkpoint
    from momentloc.engine.distributed import DistInfo
    from momentloc.engine.evaluator import predict_lines, score_lines
    from momentloc.engine.inference import load_model
    from momentloc.engine.lock import RunLock
    from momentloc.engine.predictions import write_predictions

    run_dir = Path(run_dir)
    path = resolve_checkpoint(run_dir, checkpoint)
    with RunLock(run_dir, "evaluate") if write else contextlib.nullcontext():
        model, cfg, card, data = load_model(run_dir, str(path), device)
        role, dataset = data.dataset_for(split)
        split_name = data.split_name(role) if split is None else split
        targets = evaluation_outputs(run_dir, split_name, checkpoint)
        if write:
            for target in targets:
                refuse_existing(target, overwrite, "another --split or --checkpoint")
        lines = predict_lines(model, dataset, cfg.eval, cfg.train.eval_batch_size,
                              torch.device(device), DistInfo(), full_ranking=card.protocol == "didemo")
        metrics = score_lines(lines, cfg, card)
        baseline = prior_metrics_for(data.records("train"), dataset.records, cfg, card)
        out = {"split": split_name, "checkpoint": checkpoint, "checkpoint_file": str(path),
               "metrics": metrics, "prior_baseline": baseline,
               "protocol": protocols(cfg.eval.protocol, card.protocol),
               "features": card.features.describe() if card.features else None,
               "provenance": provenance(cfg.train.seed, device)}
        if write:
            write_predictions(targets[0], lines)
            atomic_write_text(targets[1], json.dumps(out, indent=2))
            out["written"] = [str(t) for t in targets]
    return out


def protocols(eval_protocol: str, dataset_protocol: str) -> dict:
    """The two protocols a result depends on, as results record them: ``eval`` is the run's
    ``eval.protocol`` (``standard``, ``tan2d``, ``cmin``: decoding, NMS and hit rule), and
    ``dataset`` the dataset card's (``standard`` or ``didemo``: which extra metrics are
    added)."""
    return {"eval": str(eval_protocol), "dataset": str(dataset_protocol)}


def protocol_label(p: dict) -> str:
    """``eval cmin, dataset standard``: a results header's ``protocol`` field, naming both."""
    return f"eval {p['eval']}, dataset {p['dataset']}"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(seed: int, device: torch.device | str, world_size: int = 1) -> dict:
    """What produced a result: floating-point results differ with these (thread count, CPU or
    GPU model, torch build), and training amplifies the differences, so every results table
    records them."""
    device = torch.device(device)
    if device.type == "cuda":
        where = f"cuda: {torch.cuda.get_device_name(device)}"
    else:
        where = f"cpu: {cpu_name()}"
    build = torch.version.git_version[:12] if getattr(torch.version, "git_version", None) else "?"
    return {"seed": int(seed), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "torch_build": build + (f", CUDA {torch.version.cuda}" if torch.version.cuda else ""),
            "device": where, "world_size": int(world_size)}


def provenance_line(p: dict) -> str:
    """One line for a results table's footer."""
    return (f"produced with: seed {p.get('seed')} | {p.get('threads')} thread(s)"
            f"{' x ' + str(p['world_size']) + ' processes' if p.get('world_size', 1) > 1 else ''} | "
            f"torch {p.get('torch')} ({p.get('torch_build')}) | {p.get('device')}")


def load_run(run_dir: str | Path) -> tuple[ExperimentConfig, DatasetCard]:
    """Config and dataset card of an existing run directory."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no {CONFIG})")
    cfg = build_config(read_yaml(run_dir / CONFIG), str(run_dir / CONFIG))
    meta = json.loads((run_dir / META).read_text()) if (run_dir / META).is_file() else {}
    card = load_card(str(run_dir / CARD), meta.get("data_root"))
    return cfg, card


def resolve_card(cfg: ExperimentConfig) -> DatasetCard:
    """Load the config's dataset card and check it provides the features the preset expects."""
    card = load_card(cfg.data.dataset, cfg.data.data_root)
    want = cfg.data.feature_dim
    if want and card.features is not None and card.features.dim != want:
        raise ConfigError(
            f"dataset {card.name!r} has {card.features.dim}-d features ({card.features.describe()}), "
            f"but this preset is for {want}-d features; use a matching preset or set data.feature_dim=0")
    return card


def with_dataset(cfg: ExperimentConfig, dataset: str, data_root: str | None) -> ExperimentConfig:
    return replace(cfg, data=replace(cfg.data, dataset=dataset, data_root=data_root))

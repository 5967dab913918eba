"""Run directories: every run records its resolved config, dataset card and versions.

Layout::

    RUN_DIR/config.yaml          resolved experiment config
    RUN_DIR/dataset.yaml         the dataset card (root made absolute)
    RUN_DIR/meta.json            package / torch versions, git commit, command, world size
    RUN_DIR/artifacts/           vocabulary, word vectors, PCA (to encode new inputs)
    RUN_DIR/checkpoints/         last.pt (each epoch), best.pt (best validation score)
    RUN_DIR/metrics.jsonl|.csv   one row per epoch
    RUN_DIR/predictions_<split>.jsonl, RUN_DIR/metrics.json
"""

from __future__ import annotations

import json
import platform
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
from momentloc.data.records import atomic_write_text
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
    }
    atomic_write_text(run_dir / META, json.dumps(meta, indent=2))


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

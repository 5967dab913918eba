"""``momentloc train``: train a registered model on a dataset."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from momentloc.cli.common import add_json_flag, emit, example_epilog


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train a model (single process, or under torchrun for DDP)",
        description="Train a registered model. With torchrun (torchrun --nproc_per_node=N -m momentloc "
                    "train ...) it trains with DistributedDataParallel. Writes config, dataset card, "
                    "checkpoints, per-epoch metrics and the test predictions into --out.",
        epilog=example_epilog(
            "momentloc train --model tan2d --preset synthetic --dataset data/synth-charades/dataset.yaml "
            "--out runs/tan2d --set train.epochs=5",
            "momentloc train --resume runs/tan2d",
            "momentloc train --list-models --json"))
    p.add_argument("--model", help="registered model name (see 'momentloc train --list-models'; required "
                        "unless --resume or --list-models)")
    p.add_argument("--preset", help="preset name under configs/<model>/ (e.g. charades) or a YAML file "
                        "(default: the model's built-in defaults)")
    p.add_argument("--dataset", metavar="CARD|NAME",
                   help="dataset card (dataset.yaml) or benchmark name (default: the preset's data.dataset)")
    p.add_argument("--data-root", metavar="DIR",
                   help="directory the card's relative paths resolve against (default: the "
                        "preset's data.data_root, else the card file's directory)")
    p.add_argument("--out", metavar="RUN_DIR",
                   help="run directory to create (default: runs/<model>-<preset>-<time>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=2e-4 (repeatable; "
                        "'momentloc config show' prints the keys; default: none)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the killed run in RUN_DIR (default: start a new run)")
    p.add_argument("--list-models", action="store_true", help="list registered models and presets")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in a --out directory that already holds files, replacing "
                        "the earlier run's outputs (default: refuse a non-empty directory)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from momentloc.cli.results import results_table
    from momentloc.config import list_presets, load_config
    from momentloc.engine.runs import load_run, with_dataset
    from momentloc.engine.trainer import Trainer
    from momentloc.errors import ConfigError
    from momentloc.models import list_models

    if args.list_models:
        models = {name: list_presets(name) for name in list_models()}
        emit(args, {"models": models}, "\n".join(
            f"{name}: {', '.join(presets) or '(no presets)'}" for name, presets in models.items()))
        return 0
    if args.resume:
        cfg, _ = load_run(args.resume)
        if args.overrides:
            raise ConfigError("--set cannot change a run being resumed")
        if args.overwrite:
            raise ConfigError("--overwrite starts a new run; it cannot be combined with --resume")
        trainer = Trainer(cfg, args.resume, resume=True)
    else:
        if not args.model:
            raise ConfigError("train needs --model (or --resume RUN_DIR)")
        cfg = load_config(args.model, args.preset, args.overrides)
        # --dataset / --data-root default to the preset's data.dataset / data.data_root.
        cfg = with_dataset(cfg, args.dataset or cfg.data.dataset, args.data_root or cfg.data.data_root)
        out = args.out or time.strftime(
            f"runs/{args.model}-{Path(args.preset or 'default').stem}-%Y%m%d-%H%M%S")
        trainer = Trainer(cfg, out, overwrite=args.overwrite)
    result = trainer.fit()
    if not trainer.dist.is_main:
        return 0
    split = trainer.data.split_name("test") if result.test_metrics else "-"
    text = (results_table(cfg.model_name, result.test_metrics, result.baseline_metrics, cfg,
                          trainer.card, split, trainer.provenance())
            if result.test_metrics else "no test split: nothing evaluated")
    emit(args, {"run_dir": str(result.run_dir), "best_epoch": result.best_epoch, "split": split,
                "metrics": result.test_metrics, "prior_baseline": result.baseline_metrics,
                "provenance": trainer.provenance()},
         f"{text}\nrun: {result.run_dir} (best epoch {result.best_epoch})")
    return 0

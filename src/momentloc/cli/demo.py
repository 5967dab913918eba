"""``momentloc demo``: the main job on the embedded synthetic benchmark, no downloads."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from momentloc.cli.common import add_json_flag, emit, example_epilog


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="generate the synthetic charades-like set, train, evaluate against the prior",
        description="Generate the synthetic benchmark (no downloads), train the default model with its "
                    "'synthetic' preset, evaluate it on the test split and print the table beside the "
                    "prior-only baseline. A few minutes on 2 CPU cores.",
        epilog=example_epilog("momentloc demo",
                              "momentloc demo --model fian --size tiny --out /tmp/demo"))
    p.add_argument("--out", default="momentloc-demo", metavar="DIR",
                   help="working directory (data/ and run/ inside; default ./momentloc-demo)")
    p.add_argument("--model", default="tan2d", help="registered model (default tan2d)")
    p.add_argument("--preset", default="synthetic", help="the model's preset (default synthetic)")
    p.add_argument("--data", default="charades", choices=["charades", "activitynet", "tacos"],
                   help="synthetic preset (default charades)")
    p.add_argument("--size", default="small", choices=["tiny", "small", "full"],
                   help="synthetic set size")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and of training")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=3 (repeatable)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import logging

    from momentloc.cli.results import results_table
    from momentloc.config import load_config
    from momentloc.engine.runs import provenance_line, with_dataset
    from momentloc.engine.trainer import Trainer
    from momentloc.synth import generate

    log = logging.getLogger("momentloc.demo")
    out = Path(args.out)
    data_dir = out / f"data-{args.data}-{args.size}-seed{args.seed}"
    card = data_dir / "dataset.yaml"
    t0 = time.perf_counter()
    if not card.is_file():
        log.info("generating the synthetic %s set (%s) into %s", args.data, args.size, data_dir)
        card = generate(args.data, args.size, args.seed, data_dir)
    run_dir = out / time.strftime(f"run-{args.model}-%Y%m%d-%H%M%S")
    cfg = load_config(args.model, args.preset, [f"train.seed={args.seed}", *args.overrides])
    cfg = with_dataset(cfg, str(card), None)
    trainer = Trainer(cfg, run_dir)
    result = trainer.fit()
    split = trainer.data.split_name("test")
    minutes = (time.perf_counter() - t0) / 60
    key = cfg.train.select_metric
    model_v, prior_v = result.test_metrics.get(key, 0.0), result.baseline_metrics.get(key, 0.0)
    ratio = model_v / prior_v if prior_v > 0 else float("inf")
    text = (results_table(cfg.model_name, result.test_metrics, result.baseline_metrics, cfg,
                          trainer.card, split)
            + f"\n{provenance_line(trainer.provenance())}"
            + f"\n{cfg.model_name} {key} = {100 * model_v:.2f} vs prior {100 * prior_v:.2f} "
              f"({ratio:.1f}x) in {minutes:.1f} min; run: {run_dir}")
    emit(args, {"run_dir": str(run_dir), "metrics": result.test_metrics,
                "provenance": trainer.provenance(),
                "prior_baseline": result.baseline_metrics, "minutes": minutes}, text)
    return 0

"""``momentloc evaluate``: score a trained run (or a saved predictions file)."""

from __future__ import annotations

import argparse

from momentloc.cli.common import add_json_flag, add_overwrite_flag, emit, example_epilog


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="evaluate a trained run on a split, beside the prior baseline",
        description="Run a trained model over a split, write predictions_<split>_<checkpoint>.jsonl and "
                    "metrics_<split>_<checkpoint>.json into the run directory (beside the training's "
                    "metrics.json, never over it) and print the metrics table beside the prior baseline. "
                    "With --predictions, score a saved predictions file with the run's protocol.",
        epilog=example_epilog("momentloc evaluate runs/tan2d",
                              "momentloc evaluate runs/tan2d --split val --checkpoint last --json",
                              "momentloc evaluate runs/tan2d --predictions runs/tan2d/predictions_test.jsonl"))
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--split", help="split name (default: the dataset card's test role)")
    p.add_argument("--checkpoint", default="best", help="best, last, or a .pt file (default best)")
    p.add_argument("--predictions", metavar="FILE",
                   help="score this predictions JSONL instead of running the model (default: run "
                        "the model)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    add_overwrite_flag(p, "an earlier evaluation's predictions_<split>_<checkpoint>.jsonl and "
                          "metrics_<split>_<checkpoint>.json")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from momentloc.cli.results import results_table
    from momentloc.engine.evaluator import score_lines
    from momentloc.engine.predictions import read_predictions
    from momentloc.engine.runs import evaluate_into_run, load_run

    cfg, card = load_run(args.run_dir)
    if args.predictions:
        metrics = score_lines(read_predictions(args.predictions), cfg, card)
        emit(args, {"predictions": args.predictions, "metrics": metrics},
             results_table(args.predictions, metrics, {}, cfg, card, args.split or "-"))
        return 0
    out = evaluate_into_run(args.run_dir, args.split, args.checkpoint, args.device,
                            overwrite=args.overwrite)
    emit(args, out, results_table(cfg.model_name, out["metrics"], out["prior_baseline"], cfg, card,
                                  out["split"], out["provenance"])
         + "".join(f"\nwritten: {p}" for p in out["written"]))
    return 0

"""``momentloc plot``: a run's figures as PNG files."""

from __future__ import annotations

import argparse

from momentloc.cli.common import add_json_flag, add_overwrite_flag, emit, example_epilog, run_dir_lock


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot", help="write a run's figures (curves, timelines, IoU, attention) as PNGs",
        description="Training curves (metrics.jsonl), timelines of the best and worst queries and "
                    "IoU / moment-length analyses (predictions_<split>.jsonl), and the model's "
                    "attention maps on a few test queries, written as PNG files. Needs the viz "
                    "extra (matplotlib).",
        epilog=example_epilog("momentloc plot runs/tan2d",
                              "momentloc plot runs/tan2d --out /tmp/figs --queries 4 --no-attention"))
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", metavar="DIR", help="output directory (default RUN_DIR/figures)")
    p.add_argument("--split", metavar="S", help="predictions split (default: the one metrics.json names)")
    p.add_argument("--queries", type=int, default=6, metavar="N",
                   help="queries drawn as timelines: half best, half worst (default 6)")
    p.add_argument("--no-attention", action="store_true",
                   help="do not load the model for attention maps")
    p.add_argument("--device", default="cpu", help="device the model runs on for attention maps")
    add_overwrite_flag(p, "the figures in an --out directory that already holds files")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from momentloc.atomic import refuse_existing
    from momentloc.viz.run import plot_run

    out = Path(args.out) if args.out else Path(args.run_dir) / "figures"
    with run_dir_lock(args.run_dir, out, "plot"):
        refuse_existing(out, args.overwrite)
        paths = plot_run(args.run_dir, out, split=args.split, num_queries=args.queries,
                         attention=not args.no_attention, device=args.device)
    emit(args, {"figures": [str(p) for p in paths]},
         "\n".join(str(p) for p in paths) or "nothing to plot")
    return 0

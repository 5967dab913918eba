"""``momentloc report``: one self-contained HTML page about a run."""

from __future__ import annotations

import argparse

from momentloc.cli.common import add_overwrite_flag, example_epilog, run_dir_lock


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="write a self-contained HTML report of a run",
        description="Configuration, the dataset card's feature description, metrics beside the "
                    "prior baseline, figures (embedded PNG) and the best and worst queries, in one HTML "
                    "file with no external assets. Needs the viz extra (matplotlib).",
        epilog=example_epilog("momentloc report runs/tan2d",
                              "momentloc report runs/tan2d --out /tmp/tan2d.html --no-attention"))
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", metavar="FILE.html", help="output file (default RUN_DIR/report.html)")
    p.add_argument("--split", metavar="S", help="predictions split (default: the one metrics.json names)")
    p.add_argument("--queries", type=int, default=10, metavar="N",
                   help="best and worst queries listed (N each, default 10)")
    p.add_argument("--no-attention", action="store_true",
                   help="do not load the model for attention maps")
    p.add_argument("--device", default="cpu", help="device the model runs on for attention maps")
    add_overwrite_flag(p, "the --out file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from momentloc.atomic import refuse_existing
    from momentloc.viz.report import write_report

    out = Path(args.out) if args.out else Path(args.run_dir) / "report.html"
    with run_dir_lock(args.run_dir, out, "report"):
        refuse_existing(out, args.overwrite)
        path = write_report(args.run_dir, out, split=args.split, num_queries=args.queries,
                            attention=not args.no_attention, device=args.device)
    print(path)
    return 0

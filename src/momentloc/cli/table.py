"""``momentloc table``: rerun a paper's results or ablation table."""

from __future__ import annotations

import argparse

from momentloc.cli.common import add_json_flag, emit, example_epilog


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "table", help="train and evaluate every row of a paper table, beside the paper's numbers",
        description="Each table (configs/tables/NAME.yaml) lists rows of (model, preset, overrides) "
                    "with the numbers the paper reports. Every row is trained and tested into "
                    "OUT/NAME/<row> (a name unique to the row); the table prints paper, reproduced "
                    "and prior-baseline numbers. Rows already finished there are not rerun.",
        epilog=example_epilog(
            "momentloc table --list",
            "momentloc table cma-results --dataset charades-sta --data-root /data/charades",
            "momentloc table csmgan-ablation --dataset activitynet-captions --data-root /data/anet "
            "--rows 'full model' --set train.epochs=2"))
    p.add_argument("name", nargs="?", help="table name (omit with --list)")
    p.add_argument("--list", action="store_true", help="list the tables (with --json: as JSON)")
    p.add_argument("--dataset", metavar="CARD|NAME", help="dataset (default: the table's benchmark)")
    p.add_argument("--data-root", metavar="DIR",
                   help="directory the card's relative paths resolve against (default: the card "
                        "file's directory)")
    p.add_argument("--out", default="tables", metavar="DIR", help="runs go to DIR/NAME/<row>")
    p.add_argument("--rows", metavar="LABEL,...",
                   help="comma-separated row labels to run (default: all)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override applied to every row (e.g. train.epochs=2 for a smoke run; "
                        "repeatable; default: none)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from momentloc.engine.tables import format_paper_table, list_tables, load_table, run_table

    if args.list or not args.name:
        tables = list_tables()
        emit(args, {"tables": [{"name": name, "title": title} for name, title in tables]},
             "\n".join(f"{name}: {title}" for name, title in tables))
        return 0
    table = load_table(args.name)
    rows = args.rows.split(",") if args.rows else None
    results = run_table(table, args.dataset, args.data_root, args.out, rows, args.overrides)
    emit(args, {"table": table.name, "rows": results}, format_paper_table(table, results))
    return 0

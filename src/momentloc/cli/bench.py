"""``momentloc bench``: training and inference speed and peak memory at a preset's sizes."""

from __future__ import annotations

import argparse

from momentloc.cli.common import add_json_flag, emit, example_epilog, format_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="measure train samples/s, inference queries/s and peak memory",
        description="Time training steps and inference (forward, candidates, NMS) on random inputs "
                    "of the preset's real sizes (batch size, clip count, feature dimension).",
        epilog=example_epilog("momentloc bench --model tan2d --preset charades",
                              "momentloc bench --model cma --preset synthetic --device cpu --steps 5 --json"))
    p.add_argument("--model", required=True, help="registered model name")
    p.add_argument("--preset", required=True, help="preset name under configs/<model>/ or a YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    p.add_argument("--batch-size", type=int, metavar="N",
                   help="batch size (default: the preset's train.batch_size)")
    p.add_argument("--steps", type=int, default=10, metavar="N",
                   help="timed steps of training and of inference (after 2 warm-up steps)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from momentloc.config import load_config
    from momentloc.engine.bench import run_bench
    from momentloc.engine.runtime import resolve_device

    cfg = load_config(args.model, args.preset, args.overrides)
    out = run_bench(cfg, resolve_device(args.device), steps=args.steps, batch_size=args.batch_size)
    out["preset"] = args.preset
    rows = [[k, v if not isinstance(v, float) else round(v, 2)] for k, v in out.items()]
    emit(args, out, format_table(["", "value"], rows))
    return 0

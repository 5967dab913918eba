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
                              "momentloc bench --model cma --preset synthetic --device cpu --steps 5 --json",
                              "momentloc bench --model csmgan --preset activitynet --epoch --steps 3 --batch-size 16"))
    p.add_argument("--model", required=True, help="registered model name")
    p.add_argument("--preset", required=True, help="preset name under configs/<model>/ or a YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    p.add_argument("--batch-size", type=int, metavar="N",
                   help="batch size (default: the preset's train.batch_size)")
    p.add_argument("--steps", type=int, metavar="N",
                   help="timed steps of training and of inference, after 2 warm-up steps "
                        "(default: 10); with --epoch: time N training steps and N evaluation "
                        "batches and extrapolate the epoch from them (default with --epoch: the "
                        "whole epoch)")
    p.add_argument("--epoch", action="store_true",
                   help="time one epoch by part: data batching and training steps over the "
                        "benchmark's training split, then evaluation of a test split of its real "
                        "size (model, candidate decoding and NMS, metrics), on random inputs")
    p.add_argument("--train-queries", type=int, metavar="N",
                   help="with --epoch: training queries (default: the benchmark's split)")
    p.add_argument("--test-queries", type=int, metavar="N",
                   help="with --epoch: test queries (default: the benchmark's split)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from momentloc.config import load_config
    from momentloc.engine.bench import run_bench, run_epoch_bench
    from momentloc.engine.runtime import resolve_device

    cfg = load_config(args.model, args.preset, args.overrides)
    device = resolve_device(args.device)
    if args.epoch:
        out = run_epoch_bench(cfg, device, steps=args.steps, batch_size=args.batch_size,
                              train_queries=args.train_queries, test_queries=args.test_queries)
        out["preset"] = args.preset
        how = (f"extrapolated from {out['timed_train_steps']} of {out['train_steps']} training "
               f"steps and {out['timed_test_queries']} of {out['test_queries']} test queries"
               if out["extrapolated"] else "measured whole")
        rows = [[name, round(sec, 2), f"{100 * out['shares'].get(name, 0.0):.1f}%"]
                for name, sec in out["parts_s"].items()]
        rows.append(["epoch", round(out["epoch_s"], 2), "100.0%"])
        text = (f"{args.model} {args.preset}: one epoch, {out['train_queries']} training and "
                f"{out['test_queries']} test queries, batch {out['batch_size']}, eval protocol "
                f"{out['protocol']} ({how})\n" + format_table(["part", "seconds", "share"], rows))
        emit(args, out, text)
        return 0
    out = run_bench(cfg, device, steps=args.steps or 10, batch_size=args.batch_size)
    out["preset"] = args.preset
    rows = [[k, v if not isinstance(v, float) else round(v, 2)] for k, v in out.items()]
    emit(args, out, format_table(["", "value"], rows))
    return 0

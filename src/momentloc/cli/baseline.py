"""``momentloc baseline``: scores of predictors that see neither video nor text."""

from __future__ import annotations

import argparse

from momentloc.cli.common import (add_dataset_args, add_json_flag, add_overwrite_flag, emit,
                                  example_epilog)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "baseline", help="random and prior-only baselines from annotations alone (no features)",
        description="Score a baseline on a split, with the dataset card's metrics: 'random' "
                    "predicts uniformly random moments; 'prior' predicts the fixed moments "
                    "(fractions of the video) that best fit the training annotations at the "
                    "middle IoU threshold. Only annotation files are read.",
        epilog=example_epilog("momentloc baseline prior --dataset charades-sta --data-root /data/charades",
                              "momentloc baseline random --dataset data/synth-charades/dataset.yaml --json"))
    p.add_argument("kind", choices=("random", "prior"), help="which baseline")
    add_dataset_args(p)
    p.add_argument("--split", metavar="S", help="split to score (default: the card's test role)")
    p.add_argument("--train-split", metavar="S",
                   help="split the prior is fitted on (default: the card's train role)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random baseline (default 0)")
    p.add_argument("--iou-thresholds", type=float, nargs="+", metavar="M",
                   help="IoU thresholds (default: the card's metric set)")
    p.add_argument("--out", metavar="FILE",
                   help="also write the predictions JSONL here (default: not written)")
    add_overwrite_flag(p, "the --out file")
    add_json_flag(p)
    p.set_defaults(func=run)


def _split(card, given: str | None, role: str) -> str:
    from momentloc.errors import ConfigError

    split = given or card.split_for(role)
    if split is None:
        raise ConfigError(f"dataset {card.name!r} has no {role} split; name one with "
                          f"--{'train-' if role == 'train' else ''}split")
    return split


def run(args: argparse.Namespace) -> int:
    from momentloc.atomic import refuse_existing
    from momentloc.config.schema import EvalConfig
    from momentloc.data.card import load_card
    from momentloc.data.converters import load_split
    from momentloc.engine.predictions import metrics_from_lines, records_to_lines, write_predictions
    from momentloc.engine.runs import protocol_label, protocols
    from momentloc.metrics.baselines import PriorBaseline, random_baseline
    from momentloc.metrics.retrieval import metric_keys
    from momentloc.metrics.table import format_results

    if args.out:
        refuse_existing(args.out, args.overwrite)
    card = load_card(args.dataset, args.data_root)
    split = _split(card, args.split, "test")
    recall_at = tuple(card.metrics.recall_at)
    thresholds = tuple(args.iou_thresholds or card.metrics.iou_thresholds)
    records = load_split(card, split)
    top_k = max(recall_at)
    payload: dict = {"kind": args.kind}
    if args.kind == "random":
        spans, scores = random_baseline(records, top_k, args.seed)
        label, fitted = f"random (seed {args.seed})", f"seed {args.seed}"
        payload["seed"] = args.seed
    else:
        train_split = _split(card, args.train_split, "train")
        ordered = sorted(thresholds)
        prior = PriorBaseline(iou_threshold=ordered[(len(ordered) - 1) // 2], num_moments=top_k)
        prior.fit(load_split(card, train_split))
        spans, scores = prior.predict(records, top_k)
        label, fitted = "prior", f"prior fitted on {train_split} at IoU {prior.iou_threshold:g}"
        payload["prior"] = prior.to_dict() | {"train_split": train_split}
    lines = records_to_lines(records, spans, scores)
    if args.out:
        write_predictions(args.out, lines)
    metrics = metrics_from_lines(lines, EvalConfig(), recall_at, thresholds, protocol=card.protocol)
    keys = metric_keys(recall_at, thresholds)
    keys += sorted(k for k in metrics if k.startswith("didemo/"))
    header = {"dataset": card.name, "split": split,
              "protocol": protocol_label(protocols(EvalConfig().protocol, card.protocol)),
              "nms": "none (baseline)", "features": "none (annotations only)",
              "queries": len(records), "baseline": fitted}
    payload |= {"header": header, "metrics": metrics}
    emit(args, payload, format_results([(label, metrics)], keys, header, label="baseline"))
    return 0

"""``momentloc stats``: size and shape of a dataset's annotations per split, with reader repairs."""

from __future__ import annotations

import argparse

from momentloc.cli.common import (add_dataset_args, add_json_flag, emit, example_epilog,
                                  format_table)
from momentloc.data.card import load_card
from momentloc.data.converters import load_split
from momentloc.data.policy import InputPolicy
from momentloc.data.stats import dataset_stats

_ROWS = [  # (key, label)
    ("queries", "queries"),
    ("videos", "videos"),
    ("queries_per_video", "queries per video"),
    ("mean_video_duration", "mean video duration (s)"),
    ("min_video_duration", "min video duration (s)"),
    ("max_video_duration", "max video duration (s)"),
    ("mean_moment_length", "mean moment length (s)"),
    ("mean_moment_ratio", "mean moment / video"),
    ("mean_words_per_query", "mean words per query"),
    ("queries_with_annotators", "queries with several moments"),
    ("mean_annotators_per_query", "mean moments per such query"),
]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "stats", help="annotation statistics of a dataset (per split, with reader warnings)",
        description="Read a dataset's annotations (features are not needed) and print, per "
                    "split, the number of queries and videos, mean durations and lengths, and "
                    "what the reader repaired or skipped.",
        epilog=example_epilog("momentloc stats --dataset charades-sta --data-root /data/charades",
                              "momentloc stats --dataset data/synth-charades/dataset.yaml --split test"))
    add_dataset_args(p)
    p.add_argument("--split", action="append", metavar="S",
                   help="split to read (repeatable; default: every split of the card)")
    p.add_argument("--on-bad-input", choices=("error", "skip"), default="error",
                   help="stop at the first bad item (default) or skip and count bad items")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    card = load_card(args.dataset, args.data_root)
    roles = {split: role for role, split in card.roles.items() if split is not None}
    payload = {"dataset": card.name, "format": card.format, "splits": {}}
    blocks = [f"dataset {card.name} (format {card.format})"]
    for split in args.split or list(card.splits):
        policy = InputPolicy(mode=args.on_bad_input)
        stats = dataset_stats(load_split(card, split, policy))
        payload["splits"][split] = {
            "role": roles.get(split),
            "annotations": ", ".join(str(p) for p in card.annotation_paths(split)),
            "stats": stats, "warnings": dict(policy.warnings), "skipped": policy.skipped,
            "skipped_examples": list(policy.reasons)}
        role = f", role {roles[split]}" if split in roles else ""
        files = ", ".join(str(p) for p in card.annotation_paths(split))
        text = [f"\n{split}{role}: {files}",
                format_table(["statistic", "value"],
                             [(label, stats[key]) for key, label in _ROWS])]
        events = sorted(policy.warnings.items()) + [("skipped as bad input", policy.skipped)]
        text.append(format_table(["reader repair", "count"], events))
        text += [f"  {reason}" for reason in policy.reasons]
        blocks.append("\n".join(text))
    emit(args, payload, "\n".join(blocks))
    return 0

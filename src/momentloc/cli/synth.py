"""``momentloc synth``: write a synthetic benchmark in a real benchmark's format."""

from __future__ import annotations

import argparse
from pathlib import Path

from momentloc.cli.common import add_json_flag, emit, example_epilog, format_table


def register(subparsers) -> None:
    from momentloc.synth import PRESETS, SIZES

    p = subparsers.add_parser(
        "synth", help="write a synthetic benchmark (annotations, features, word vectors, card)",
        description="Generate a learnable synthetic grounding benchmark written in the format of "
                    "Charades-STA, ActivityNet Captions or TACoS, with HDF5 clip features, "
                    "GloVe-format word vectors, a ground-truth sidecar (events.jsonl) and a "
                    "dataset card (dataset.yaml) that every command accepts as --dataset. "
                    "Deterministic in --seed. See docs/synthetic.md.",
        epilog=example_epilog("momentloc synth --preset charades --size small --out data/synth-charades",
                              "momentloc synth --preset shapes --size tiny --out data/shapes"))
    p.add_argument("--preset", choices=sorted([*PRESETS, "shapes"]), default="charades",
                   help="benchmark to imitate (default: charades); shapes renders mp4 videos "
                        "of moving shapes and extracts their features (docs/video.md)")
    p.add_argument("--size", choices=[*SIZES, "long"], default="tiny",
                   help="tiny: tests; small: quick experiments; full: the real pair counts; "
                        "long (shapes only): short training videos and a one-hour test video "
                        "(default: tiny)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (must be empty)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty directory")
    p.add_argument("--label-jitter", type=float, default=None, metavar="F",
                   help="std of training-label boundary noise as a fraction of the moment length "
                        "(default: the preset's, 0.05; 0 = exact labels)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from momentloc.synth import synthesize

    s = synthesize(args.preset, args.size, args.seed, args.out, overwrite=args.overwrite,
                   label_jitter=args.label_jitter)
    out = Path(args.out)
    sizes = {f: (out / f).stat().st_size for f in s.files}
    payload = {"card": str(s.card_path), "preset": args.preset, "size": args.size,
               "seed": args.seed, "feature_dim": s.feature_dim, "seconds": round(s.seconds, 3),
               "splits": {k: {"videos": s.videos[k], "queries": s.queries[k]} for k in s.queries},
               "files": sizes}
    splits = format_table(["split", "videos", "queries"],
                          [(k, s.videos[k], s.queries[k]) for k in s.queries])
    files = format_table(["file", "MB"], [(f, n / 1e6) for f, n in sizes.items()])
    text = (f"synthetic {args.preset} ({args.size}, seed {args.seed}) written to {out} "
            f"in {s.seconds:.1f} s\n\n{splits}\n\n{files}\n\ndataset card: {s.card_path}")
    emit(args, payload, text)
    return 0

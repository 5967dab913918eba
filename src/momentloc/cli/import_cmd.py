"""``momentloc import``: an official checkpoint of a paper's released code as a momentloc run."""

from __future__ import annotations

import argparse

from momentloc.cli.common import add_dataset_args, add_json_flag, emit, example_epilog


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import", help="turn an official checkpoint (2D-TAN, CSMGAN release) into a run directory",
        description="Convert a checkpoint saved by the authors' released code into a momentloc run "
                    "directory that evaluate, predict, serve and report use like a trained run. "
                    "Sizes come from the checkpoint's tensor shapes over the preset; a tensor that "
                    "does not fit is named with both shapes. The dataset card (default: the "
                    "preset's) gives the annotations and features to evaluate on, and the GloVe "
                    "text file the words are embedded with (the card's word_vectors, or --glove): "
                    "use the one the release used (2D-TAN: glove.6B.300d, CSMGAN: "
                    "glove.840B.300d).",
        epilog=example_epilog(
            "momentloc import tan2d iter004257-0.4094-0.8384.pkl --preset charades "
            "--dataset charades-sta-vgg --data-root /data/charades "
            "--glove /data/glove.6B.300d.txt --out runs/tan2d-official",
            "momentloc import csmgan model.pt --preset release_activitynet "
            "--dataset activitynet-captions --data-root /data/anet --out runs/csmgan-official"))
    p.add_argument("model", metavar="MODEL", help="tan2d or csmgan")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="the official checkpoint file")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="new run directory")
    p.add_argument("--preset", help="the official setting it was trained in (default: tan2d "
                                    "charades, csmgan release_activitynet)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable)")
    add_dataset_args(p, required=False)
    p.add_argument("--glove", metavar="FILE", help="GloVe text file to embed the vocabulary with "
                                                  "(default: the dataset card's word_vectors)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from momentloc.engine.runs import load_run
    from momentloc.official import import_checkpoint

    out = import_checkpoint(args.model, args.checkpoint, args.out, preset=args.preset,
                            overrides=args.overrides, dataset=args.dataset,
                            data_root=args.data_root, glove=args.glove)
    cfg, card = load_run(out)
    emit(args, {"run_dir": str(out), "model": cfg.model_name, "dataset": card.name},
         f"imported {args.checkpoint} as a {cfg.model_name} run on {card.name}: {out}\n"
         f"next: momentloc evaluate {out}")
    return 0

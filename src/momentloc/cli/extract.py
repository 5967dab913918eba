"""``momentloc extract``: clip features of a directory of videos, in a feature store."""

from __future__ import annotations

import argparse

from momentloc.cli.common import add_json_flag, emit, example_epilog, format_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "extract", help="extract clip features from video files into an HDF5 feature store",
        description="Decode every video of VIDEOS_DIR (id = file name without extension), cut it "
                    "into clips at --clip-rate clips per second and write one feature per clip "
                    "to --out (HDF5, the layout dataset cards read) plus --out.json, a sidecar "
                    "holding the card's 'features' section and per-video durations. Resumable: "
                    "videos already extracted are skipped. See docs/video.md.",
        epilog=example_epilog(
            "momentloc extract data/shapes/videos --out data/shapes/features.hdf5",
            "momentloc extract /data/videos --extractor clip --model-dir /models/clip-vit-b32 "
            "--clip-rate 2 --out /data/clip.hdf5 --skip-bad"))
    p.add_argument("videos_dir", metavar="VIDEOS_DIR")
    p.add_argument("--extractor", default="colorhist",
                   help="colorhist (no weights) or clip (needs --model-dir); default colorhist")
    p.add_argument("--model-dir", metavar="DIR|HF_ID",
                   help="CLIP checkpoint directory, or a model id already in the Hugging "
                        "Face cache (required by the clip extractor; default: none)")
    p.add_argument("--clip-rate", type=float, default=1.0, metavar="R",
                   help="clips (features) per second (default 1)")
    p.add_argument("--frames-per-clip", type=int, default=4, metavar="F",
                   help="frames sampled per clip (default 4)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="extractor parameter, e.g. grid=4 or bins=8 for colorhist (repeatable)")
    p.add_argument("--out", required=True, metavar="FEATURES.hdf5", help="feature store to write")
    p.add_argument("--device", default="cpu", help="device for network extractors (default cpu)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip videos that cannot be decoded (listed at the end) instead of "
                        "stopping")
    p.add_argument("--recursive", action="store_true", help="also look in sub-directories")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S",
                   help="give up on a video after S seconds of decoding (default 600)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (as --quiet)")
    add_json_flag(p)
    p.set_defaults(func=run)


def extractor_params(args: argparse.Namespace) -> dict:
    import yaml

    from momentloc.errors import ConfigError

    params = {"clip_rate": args.clip_rate, "frames_per_clip": args.frames_per_clip}
    if args.extractor == "clip":
        if not args.model_dir:
            raise ConfigError("the clip extractor needs --model-dir (a local CLIP checkpoint)")
        params |= {"model": args.model_dir, "device": args.device}
    elif args.model_dir:
        raise ConfigError(f"--model-dir is for the clip extractor, not {args.extractor!r}")
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {item!r}: expected KEY=VALUE")
        params[key.strip()] = yaml.safe_load(value)
    return params


def run(args: argparse.Namespace) -> int:
    from momentloc.data.policy import InputPolicy
    from momentloc.video.decode import DecodeLimits
    from momentloc.video.extract import extract_directory
    from momentloc.video.extractors import create_extractor

    extractor = create_extractor(args.extractor, **extractor_params(args))
    s = extract_directory(args.videos_dir, extractor, args.out,
                          policy=InputPolicy("skip" if args.skip_bad else "error"),
                          limits=DecodeLimits(timeout_s=args.timeout), recursive=args.recursive,
                          progress=not (args.no_progress or args.quiet))
    payload = {"out": str(s.out), "sidecar": str(s.sidecar), "extractor": s.spec.extractor,
               "dim": s.spec.dim, "extracted": s.extracted, "skipped": s.skipped,
               "failed": s.failed, "seconds": round(s.seconds, 3)}
    rows = [("extracted", len(s.extracted)), ("already present", len(s.skipped)),
            ("failed", len(s.failed))]
    text = (f"{s.spec.describe()}\n\n{format_table(['videos', 'count'], rows)}\n"
            + "".join(f"\nfailed: {msg}" for msg in s.failed.values())
            + f"\n\nfeatures: {s.out}\nsidecar (card 'features' section, durations): {s.sidecar}"
            + f"\n{s.seconds:.1f} s")
    emit(args, payload, text)
    return 0

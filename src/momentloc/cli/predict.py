"""``momentloc predict``: ranked moments for sentences in one video, or in many videos at once."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from momentloc.cli.common import emit, example_epilog, format_table


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="localize sentences in a video, or in many videos at once",
        description="Print the top-k moments (seconds) of each query in one --video: a video id of "
                    "the run's dataset (features and duration come from it), a .npy file of clip "
                    "features of the same kind as the run's (give --duration), or a video file "
                    "(decoded and extracted with the extractor the run's dataset card records). "
                    "With --videos, localize --queries in many video files with the model loaded "
                    "once and write them to --out (JSONL, or CSV by the extension); a rerun skips "
                    "the (video, query) pairs already there. Under torchrun the videos are "
                    "shared among the processes.",
        epilog=example_epilog(
            "momentloc predict runs/tan2d --video v0001 --query 'the person opens the door'",
            "momentloc predict runs/shapes --video clip.mp4 --query 'the red circle moves left' --json"))
    p.add_argument("run_dir", metavar="RUN_DIR")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--video", metavar="ID|FEATURES.npy|VIDEO_FILE", help="one video")
    where.add_argument("--videos", metavar="DIR|GLOB|LIST",
                       help="many video files: a directory, a quoted glob pattern ('clips/*.mp4') "
                            "or a text file listing one path a line")
    p.add_argument("--query", action="append", default=[],
                   help="sentence (repeatable); with --videos asked of every video")
    p.add_argument("--queries", metavar="FILE",
                   help="a text file of sentences, one a line (asked of every video), or .jsonl / "
                        ".csv with 'video' and 'query' fields pairing them with videos")
    p.add_argument("--out", metavar="FILE.jsonl|FILE.csv",
                   help="with --videos: the results file (appended to; pairs already in it "
                        "are skipped)")
    p.add_argument("--top-k", type=positive_int, default=5, help="moments per query (default 5)")
    p.add_argument("--duration", type=seconds,
                   help="video length in seconds (needed with a .npy file)")
    p.add_argument("--window", nargs="?", const=True, type=seconds, metavar="SECONDS",
                   help="slide windows of SECONDS (default: the run's trained horizon, the "
                        "median training video) over the video; by default windows are used "
                        "for videos over 3 horizons long (docs/video.md)")
    p.add_argument("--no-window", action="store_true",
                   help="resample the whole video to the model's clip count, however long")
    p.add_argument("--window-overlap", type=float, default=0.5, metavar="F",
                   help="fraction of a window shared with the next (default 0.5)")
    p.add_argument("--extractor", help="with video files: refuse unless the run's features "
                                        "were made by this extractor")
    p.add_argument("--model-dir", metavar="DIR", help="with video files: where the CLIP "
                                                       "checkpoint of the run's features is now")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="where features of video files are kept between calls (default: "
                        "$MOMENTLOC_CACHE_DIR/features, else ~/.cache/momentloc/features)")
    p.add_argument("--no-cache", action="store_true", help="keep no features on disk")
    p.add_argument("--checkpoint", default="best")
    p.add_argument("--device", default="cpu",
                   help="cpu or cuda; under torchrun each process takes the GPU of its local rank")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _check_extractor(pred, name: str | None) -> None:
    from momentloc.errors import ConfigError

    spec = pred.card.features
    if name and (spec is None or not spec.extractor.startswith(name + "(")):
        raise ConfigError(f"the run's features were made by "
                          f"{spec.extractor if spec else 'nothing'}, not {name}")


def run(args: argparse.Namespace) -> int:
    from momentloc.errors import ConfigError

    if args.videos is not None:
        return run_many(args)
    if args.out is not None:
        raise ConfigError("--out goes with --videos (one --video prints its moments)")
    queries = list(args.query)
    if args.queries:
        path = Path(args.queries)
        if not path.is_file():
            raise ConfigError(f"{path}: no such queries file")
        if path.suffix.lower() in (".jsonl", ".csv"):
            raise ConfigError(f"{path}: a file pairing queries with videos goes with --videos")
        from momentloc.engine.predict_many import read_text

        queries += [" ".join(s.split()) for s in read_text(path, "queries file").splitlines()
                    if s.strip()]
    if not queries:
        raise ConfigError("give a sentence to look for (--query, or --queries FILE)")
    pred = _predictor(args)
    results = pred.predict(args.video, queries, args.top_k, args.duration)
    vid, duration = results[0].video, results[0].duration
    payload = {"video": vid, "duration": duration, "results": [r.to_dict() for r in results]}
    blocks = []
    for r in results:
        head = f"{r.query!r} in {vid} ({duration:.1f} s)"
        if r.warning:
            head += f"\nwarning: {r.warning}"
        rows = [[m.rank, m.start, m.end, f"{m.score:.3f}"] for m in r.moments]
        blocks.append(head + ("\n" + format_table(["rank", "start (s)", "end (s)", "score"], rows)
                              if rows else ""))
    emit(args, payload, "\n\n".join(blocks))
    return 0


def _predictor(args: argparse.Namespace, device: str | None = None):
    from momentloc.engine.inference import Predictor

    cache = False if args.no_cache else args.cache_dir
    pred = Predictor(args.run_dir, args.checkpoint, device or args.device, cache_dir=cache,
                     model=args.model_dir)
    _check_extractor(pred, args.extractor)
    from momentloc.engine.windows import cli_settings

    pred.windowing = cli_settings(args.window, args.no_window, args.window_overlap)
    return pred


def run_many(args: argparse.Namespace) -> int:
    from momentloc.engine import distributed
    from momentloc.engine.predict_many import find_inputs, read_jobs, run_jobs
    from momentloc.errors import ConfigError

    if args.out is None:
        raise ConfigError("--videos needs --out FILE.jsonl or FILE.csv")
    if args.duration is not None:
        raise ConfigError("--duration goes with one --video (video files know their length)")
    jobs = read_jobs(find_inputs(args.videos), args.queries, args.query)
    kind = "cuda" if args.device.startswith("cuda") else "cpu"
    info = distributed.setup(kind)
    try:
        device = f"cuda:{info.local_rank}" if info.enabled and kind == "cuda" else args.device
        pred = _predictor(args, device)
        summary = run_jobs(pred, jobs, args.out, args.top_k, info=info)
    finally:
        distributed.teardown()
    if info.is_main:
        text = (f"{summary.written} predictions of {summary.videos} videos written to {args.out}"
                + (f" ({summary.skipped} already there)" if summary.skipped else "")
                + (f" by {info.world_size} processes" if info.enabled else ""))
        text += "".join(f"\nfailed: {why}" for why in summary.failed.values())
        emit(args, summary.to_dict(), text)
    if summary.failed:
        print(f"momentloc predict: error: {len(summary.failed)} video(s) could not be read; "
              f"the others are written, and a rerun tries these again", file=sys.stderr)
        return 1
    return 0

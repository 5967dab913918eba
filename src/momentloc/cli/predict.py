"""``momentloc predict``: ranked moments for a sentence in one video."""

from __future__ import annotations

import argparse
from pathlib import Path

from momentloc.cli.common import emit, example_epilog, format_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="localize a sentence in a video with a trained run",
        description="Print the top-k moments (seconds) for each --query in one video: a video id of the "
                    "run's dataset (features and duration come from it), a .npy file of clip "
                    "features of the same kind as the run's (give --duration), or a video file "
                    "(decoded and extracted with the extractor the run's dataset card records).",
        epilog=example_epilog(
            "momentloc predict runs/tan2d --video v0001 --query 'the person opens the door'",
            "momentloc predict runs/shapes --video clip.mp4 --query 'the red circle moves left' --json"))
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--video", required=True, metavar="ID|FEATURES.npy|VIDEO_FILE")
    p.add_argument("--query", required=True, action="append", help="sentence (repeatable)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--duration", type=float, help="video length in seconds (needed with a .npy file)")
    p.add_argument("--extractor", help="with a video file: refuse unless the run's features "
                                        "were made by this extractor")
    p.add_argument("--model-dir", metavar="DIR", help="with a video file: where the CLIP "
                                                       "checkpoint of the run's features is now")
    p.add_argument("--checkpoint", default="best")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from momentloc.engine.inference import Predictor
    from momentloc.errors import ConfigError
    from momentloc.video.decode import VIDEO_EXTENSIONS

    pred = Predictor(args.run_dir, args.checkpoint, args.device)
    video = Path(args.video)
    if video.suffix == ".npy":
        import numpy as np

        if not video.is_file():
            raise ConfigError(f"{video}: no such file")
        if args.duration is None:
            raise ConfigError("--duration is needed with a features file")
        features, duration, vid = np.load(video, allow_pickle=False), args.duration, video.stem
    elif video.suffix.lower() in VIDEO_EXTENSIONS and video.is_file():
        spec = pred.card.features
        if args.extractor and (spec is None or not spec.extractor.startswith(args.extractor + "(")):
            raise ConfigError(f"the run's features were made by "
                              f"{spec.extractor if spec else 'nothing'}, not {args.extractor}")
        features, duration = pred.extract_features(video, model=args.model_dir, device=args.device)
        vid = video.stem
        if args.duration is not None:
            duration = args.duration
    else:
        vid = args.video
        features, duration = pred.data.video_features(vid)
        if args.duration is not None:
            duration = args.duration
    results = pred.localize(features, duration, args.query, args.top_k)
    payload = {"video": vid, "duration": duration, "results": [
        {"query": q, "moments": [{"start": m.start, "end": m.end, "score": m.score} for m in ms]}
        for q, ms in zip(args.query, results)]}
    text = "\n\n".join(
        f"{q!r} in {vid} ({duration:.1f} s)\n" + format_table(
            ["rank", "start (s)", "end (s)", "score"],
            [[i + 1, m.start, m.end, f"{m.score:.3f}"] for i, m in enumerate(ms)])
        for q, ms in zip(args.query, results))
    emit(args, payload, text)
    return 0

"""Speed of ``momentloc predict --videos DIR --queries FILE`` against one ``predict --video``
call per video, on ten rendered shapes videos (printed, never asserted).

    python benchmarks/predict_many.py [--run RUN_DIR --videos DIR] [--workdir DIR]

Without ``--run`` it renders a small shapes world and trains 2D-TAN on it for two epochs first
(about a minute on one CPU core; not timed). Both ways extract every video once (the single
calls with ``--no-cache``, the batch into an empty cache), and the script checks that they
give the same moments.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def build_run(work: Path) -> tuple[Path, Path]:
    from momentloc.config import load_config
    from momentloc.engine.runs import with_dataset
    from momentloc.engine.trainer import train
    from momentloc.video.shapes import synthesize_shapes

    card = synthesize_shapes("tiny", 0, work / "world", videos=(20, 10)).card_path
    cfg = load_config("tan2d", "synthetic", ["train.epochs=2", "train.progress=false",
                                             "data.num_clips=16"])
    train(with_dataset(cfg, str(card), None), work / "run")
    return work / "run", work / "world" / "videos"


def momentloc(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "momentloc", *args], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a trained run on video files' features")
    ap.add_argument("--videos", type=Path, help="with --run: a directory of its kind of videos")
    ap.add_argument("--count", type=int, default=10, help="videos to use (default 10)")
    ap.add_argument("--workdir", type=Path, help="keep the files here (default: a temporary dir)")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="momentloc-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.run is None:
        run, source = build_run(work)
    else:
        run, source = args.run, args.videos
    videos = work / "ten"
    videos.mkdir(exist_ok=True)
    for p in sorted(source.glob("*.mp4"))[-args.count:]:
        shutil.copy(p, videos / p.name)
    files = sorted(videos.glob("*.mp4"))
    queries = ["the red circle grows", "the blue square moves to the left"]
    (work / "queries.txt").write_text("\n".join(queries) + "\n")

    single = []
    for f in files:
        single.append(momentloc("predict", str(run), "--video", str(f), "--query", queries[0],
                                "--query", queries[1], "--no-cache", "--json", "-q"))
    out = work / "many.jsonl"
    out.unlink(missing_ok=True)
    shutil.rmtree(work / "cache", ignore_errors=True)
    many = momentloc("predict", str(run), "--videos", str(videos), "--queries",
                     str(work / "queries.txt"), "--out", str(out), "--cache-dir",
                     str(work / "cache"), "-q")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == len(files) * len(queries), "the batch did not write every pair"

    # the same moments as a single call (one video, in-process, same checkpoint)
    from momentloc.engine.inference import Predictor

    one = Predictor(run, cache_dir=False).predict(files[0], queries)
    assert [p.to_dict() for p in one] == lines[:len(queries)], "batch and single calls differ"

    total = sum(single)
    print(f"{len(files)} videos x {len(queries)} queries, run {run}")
    print(f"  {len(files)} x `momentloc predict --video`:  {total:6.1f} s  "
          f"({total / len(files):.2f} s per video)")
    print(f"  1 x `momentloc predict --videos --queries`: {many:6.1f} s  "
          f"({many / len(files):.2f} s per video)")
    print(f"  speed-up: {total / many:.1f}x")


if __name__ == "__main__":
    main()

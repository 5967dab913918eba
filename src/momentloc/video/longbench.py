"""Measure a run on the long videos of a shapes world (``--size long``): extraction and
prediction time per hour of video, peak memory, and recall against the known moments.

    python -m momentloc.video.longbench RUN_DIR WORLD_DIR [--no-window] [--json]

For every test video of the world it decodes and extracts the video file with the run's
extractor (streaming), localizes every sentence of the video with ``Predictor.localize``
(sliding windows by default, the whole video resampled to the model's clip count with
``--no-window``), and scores the top-5 against the true spans through
:func:`momentloc.metrics.retrieval.compute_metrics`. Peak RSS is the process's
(``resource.getrusage``), read after extraction and after prediction.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(run_dir: str | Path, world_dir: str | Path, window: bool = True,
            top_k: int = 5) -> dict:
    """Figures of one run on the test videos of a shapes world (module doc)."""
    import torch

    from momentloc.data.card import load_card
    from momentloc.data.converters import load_split
    from momentloc.engine.inference import Predictor
    from momentloc.engine.windows import WindowSettings
    from momentloc.metrics.retrieval import compute_metrics
    from momentloc.video.extract import features_for_video

    world = Path(world_dir)
    records = load_split(load_card(str(world / "dataset.yaml")), "test")
    pred = Predictor(run_dir)
    pred.windowing = WindowSettings("auto" if window else "off")
    videos = sorted({r.video_id for r in records})
    hours = extract_s = predict_s = 0.0
    spans, valid, truth = [], [], []
    rss_after_extract = 0.0
    for vid in videos:
        t0 = time.perf_counter()
        got = features_for_video(pred.card, world / "videos" / f"{vid}.mp4")
        extract_s += time.perf_counter() - t0
        rss_after_extract = peak_rss_mb()
        mine = [r for r in records if r.video_id == vid]
        t0 = time.perf_counter()
        with torch.inference_mode():
            ranked = pred.localize(got.features, got.duration, [r.query for r in mine], top_k)
        predict_s += time.perf_counter() - t0
        hours += got.duration / 3600.0
        for r, moments in zip(mine, ranked):
            row = np.zeros((top_k, 2))
            row[:len(moments)] = [(m.start, m.end) for m in moments]
            spans.append(row)
            valid.append(np.arange(top_k) < len(moments))
            truth.append(r.span)
    metrics = compute_metrics(np.stack(spans), np.stack(valid), np.asarray(truth),
                              recall_at=(1, 5), iou_thresholds=(0.3, 0.5, 0.7))
    return {"run": str(run_dir), "world": str(world), "mode": "window" if window else "whole",
            "videos": len(videos), "queries": len(records), "hours": hours,
            "extract_s_per_hour": extract_s / hours, "predict_s_per_hour": predict_s / hours,
            "peak_rss_mb_after_extract": rss_after_extract, "peak_rss_mb": peak_rss_mb(),
            "metrics": {k: 100 * v for k, v in metrics.items() if not k.startswith("dR")}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m momentloc.video.longbench",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("world_dir", metavar="WORLD_DIR",
                   help="a shapes world, e.g. from momentloc synth --preset shapes --size long")
    p.add_argument("--no-window", action="store_true",
                   help="resample each whole video to the model's clip count")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    out = measure(args.run_dir, args.world_dir, window=not args.no_window)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        m = out["metrics"]
        print(f"{out['mode']}: {out['queries']} queries in {out['videos']} video(s), "
              f"{out['hours']:.2f} h; extraction {out['extract_s_per_hour']:.0f} s/h, "
              f"prediction {out['predict_s_per_hour']:.0f} s/h; peak RSS "
              f"{out['peak_rss_mb']:.0f} MB ({out['peak_rss_mb_after_extract']:.0f} MB after "
              f"extraction)\n" + "  ".join(f"{k} {v:.2f}" for k, v in m.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

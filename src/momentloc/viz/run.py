"""All figures of a run directory (``momentloc plot``, ``momentloc report``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from momentloc.errors import ConfigError, DataError, MomentlocError

log = logging.getLogger("momentloc.viz")


def read_history(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for i, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if text.strip():
            try:
                rows.append(json.loads(text))
            except json.JSONDecodeError as e:
                raise DataError(f"not JSON ({e.msg})", path=str(path), line=i) from e
    return rows


def predictions_file(run_dir: Path, split: str | None = None) -> Path | None:
    """``predictions_<split>.jsonl`` (default: the split metrics.json names, else the only one)."""
    if split is None and (run_dir / "metrics.json").is_file():
        split = json.loads((run_dir / "metrics.json").read_text()).get("split")
    if split is not None:
        path = run_dir / f"predictions_{split}.jsonl"
        return path if path.is_file() else None
    found = sorted(run_dir.glob("predictions_*.jsonl"))
    return found[0] if found else None


def pick_queries(lines: list[dict], count: int) -> tuple[list[dict], list[dict]]:
    """The ``count // 2`` best and the rest worst lines by top-1 IoU (stable order)."""
    from momentloc.viz.analysis import top1_ious

    if not lines or count <= 0:
        return [], []
    order = np.argsort(-top1_ious(lines), kind="stable")
    best_n = min(len(lines), max(1, count // 2))
    worst_n = min(len(lines) - best_n, count - best_n)
    best = [lines[i] for i in order[:best_n]]
    worst = [lines[i] for i in order[::-1][:worst_n]]
    return best, worst


def attention_maps_of(run_dir: Path, split: str | None, count: int = 4, device: str = "cpu"):
    """``(maps, query)``: the run's model's attention maps on the first queries of ``split``."""
    import torch

    from momentloc.data.dataset import collate
    from momentloc.engine.inference import load_model

    model, cfg, card, data = load_model(run_dir, "best", device)
    _, dataset = data.dataset_for(split)
    batch = collate([dataset[i] for i in range(min(count, len(dataset)))]).to(device)
    with torch.no_grad():
        maps = model.attention_maps(model(batch))
    return maps, batch.meta[0]


def run_figures(run_dir: str | Path, split: str | None = None, num_queries: int = 6,
                attention: bool = True, device: str = "cpu") -> dict:
    """Figures of a run by file stem: ``curves``, ``timelines_best``, ``timelines_worst``,
    ``iou_histogram``, ``recall_by_length``, ``attention`` (each present when its input is).

    Raises:
        ConfigError: not a run directory.
    """
    from momentloc.engine.predictions import read_predictions
    from momentloc.viz import (attention_figure, iou_histogram, recall_by_length, timelines,
                               training_curves)

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no config.yaml)")
    from momentloc.engine.runtime import progress

    figs = {}
    bar = progress(total=3 if attention else 2, desc=f"figures of {run_dir.name}", unit="stage")
    bar.set_postfix_str("curves")
    history = read_history(run_dir)
    if history:
        figs["curves"] = training_curves(history)
    bar.update()
    bar.set_postfix_str("predictions")
    pred = predictions_file(run_dir, split)
    if pred is not None:
        lines = read_predictions(pred)
        best, worst = pick_queries(lines, num_queries)
        if best:
            figs["timelines_best"] = timelines(best)
        if worst:
            figs["timelines_worst"] = timelines(worst)
        figs["iou_histogram"] = iou_histogram(lines)
        figs["recall_by_length"] = recall_by_length(lines)
        split = pred.stem.removeprefix("predictions_")
    bar.update()
    if attention:
        bar.set_postfix_str("attention (loads the model)")
        try:
            maps, meta = attention_maps_of(run_dir, split, device=device)
        except (MomentlocError, OSError) as e:  # e.g. no checkpoint: the other figures stay
            log.warning("%s: no attention maps (%s)", run_dir, e)
        else:
            if maps:
                figs["attention"] = attention_figure(
                    maps, title=f"{meta['video_id']}: \"{meta['query']}\"")
        bar.update()
    bar.set_postfix_str(f"{len(figs)} figures")
    bar.close()
    return figs


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None, **kwargs) -> list[Path]:
    """Write :func:`run_figures` as PNGs into ``out_dir`` (default ``RUN_DIR/figures``)."""
    from momentloc.viz.common import png_bytes

    run_dir = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / "figures"
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in run_figures(run_dir, **kwargs).items():
        path = out / f"{name}.png"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(png_bytes(fig))
        tmp.replace(path)
        paths.append(path)
    return paths

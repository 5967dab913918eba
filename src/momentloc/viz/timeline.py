"""Per-query timelines, like the papers' qualitative figures: the ground-truth moment and the
top predictions as bars on the video's time axis, with their times."""

from __future__ import annotations

import textwrap
from typing import Sequence

from momentloc.viz.common import GT_COLOUR, PRED_COLOUR, TOP_COLOUR, empty_figure, new_figure


def _draw(ax, line: dict, top_k: int) -> None:
    import numpy as np

    from momentloc.spans import temporal_iou

    duration = float(line["duration"])
    gt = [float(x) for x in line["gt_span"]]
    preds = [p for p in line.get("pred_spans", [])[:top_k]]
    rows = [("ground truth", gt, GT_COLOUR, None)]
    for i, (s, e, score) in enumerate(preds):
        iou = float(temporal_iou(np.array([s, e]), np.array(gt)))
        rows.append((f"#{i + 1} ({score:.2f})", [s, e], TOP_COLOUR if i == 0 else PRED_COLOUR, iou))
    for y, (label, (s, e), colour, iou) in enumerate(rows):
        ax.barh(y, max(e - s, duration * 0.004), left=s, height=0.6, color=colour)
        note = f"{s:.1f}-{e:.1f} s" + (f"  IoU {iou:.2f}" if iou is not None else "")
        inside = (e - s) > 0.35 * duration
        ax.text((s + e) / 2 if inside else min(e + 0.01 * duration, duration), y, note,
                va="center", ha="center" if inside else "left", fontsize=7,
                color="white" if inside else "black")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.4, -0.6)
    ax.set_xlim(0, duration)
    ax.set_xlabel("time (s)")
    title = f"{line.get('video_id', '?')}: \"{line.get('query', '')}\""
    ax.set_title("\n".join(textwrap.wrap(title, 90)), fontsize=9, loc="left")
    ax.grid(axis="x", alpha=0.3)


def query_timeline(line: dict, top_k: int = 5):
    """One query's timeline from a predictions-file line (``duration``, ``gt_span``,
    ``pred_spans`` ``[[start, end, score], ...]``)."""
    fig = new_figure(8, 0.45 * (min(top_k, len(line.get("pred_spans", []))) + 1) + 1.0)
    _draw(fig.add_subplot(), line, top_k)
    return fig


def timelines(lines: Sequence[dict], top_k: int = 3):
    """Several queries' timelines stacked in one figure."""
    if not lines:
        return empty_figure("no predictions")
    heights = [min(top_k, len(line.get("pred_spans", []))) + 1 for line in lines]
    fig = new_figure(8, sum(0.42 * h + 0.8 for h in heights))
    axes = fig.subplots(len(lines), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, line in zip(axes, lines):
        _draw(ax, line, top_k)
    return fig

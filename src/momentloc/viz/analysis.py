"""Distributions over a split's predictions: IoU of the top prediction, R@1 by moment length."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from momentloc.viz.common import GT_COLOUR, TOP_COLOUR, empty_figure, new_figure


def top1_ious(lines: Sequence[dict]) -> np.ndarray:
    """``(Q,)`` IoU of each line's first prediction with its ground truth (0 without one)."""
    from momentloc.spans import temporal_iou

    if not lines:
        return np.zeros(0)
    gt = np.array([line["gt_span"] for line in lines], dtype=np.float64).reshape(-1, 2)
    has = np.array([bool(line.get("pred_spans")) for line in lines])
    top = np.array([line["pred_spans"][0][:2] if line.get("pred_spans") else [0.0, 0.0]
                    for line in lines], dtype=np.float64)
    return np.where(has, temporal_iou(top, gt), 0.0)


def iou_histogram(lines: Sequence[dict], thresholds: Sequence[float] = (0.3, 0.5, 0.7),
                  bins: int = 20):
    """Histogram of top-1 IoU, with the metric thresholds marked and R@1 at each."""
    from matplotlib.ticker import MaxNLocator

    if not lines:
        return empty_figure("no predictions")
    ious = top1_ious(lines)
    fig = new_figure(6, 3.4)
    ax = fig.add_subplot()
    ax.hist(ious, bins=bins, range=(0, 1), color=TOP_COLOUR, edgecolor="white")
    for m in thresholds:
        ax.axvline(m, color="black", ls="--", lw=0.8)
        ax.text(m, ax.get_ylim()[1] * 0.95, f" R1@{m:g} {100 * np.mean(ious >= m):.1f}",
                fontsize=7, va="top")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="IoU of the top prediction with the ground truth", ylabel="queries",
           title=f"top-1 IoU over {len(ious)} queries (mean {ious.mean():.3f})")
    return fig


def recall_by_length(lines: Sequence[dict], threshold: float = 0.5, bins: int = 5):
    """R@1 at IoU ``threshold`` per bin of ground-truth moment length (fraction of the video),
    with the number of queries per bin."""
    if not lines:
        return empty_figure("no predictions")
    ious = top1_ious(lines)
    gt = np.array([line["gt_span"] for line in lines], dtype=np.float64)
    dur = np.array([float(line["duration"]) for line in lines])
    rel = np.clip((gt[:, 1] - gt[:, 0]) / np.maximum(dur, 1e-9), 0, 1)
    # quantile edges: about as many queries per bin
    edges = np.unique(np.quantile(rel, np.linspace(0, 1, bins + 1)) if len(rel) >= bins
                      else np.array([0, 1.0]))
    if len(edges) < 2:
        edges = np.array([rel.min(), rel.min() + 1e-9])
    which = np.clip(np.searchsorted(edges, rel, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(which, minlength=len(edges) - 1)
    hits = np.bincount(which, weights=(ious >= threshold).astype(float), minlength=len(edges) - 1)
    recall = 100 * hits / np.maximum(counts, 1)
    fig = new_figure(6, 3.4)
    ax = fig.add_subplot()
    seconds = [np.mean((gt[:, 1] - gt[:, 0])[which == i]) if counts[i] else 0.0
               for i in range(len(counts))]
    labels = [f"{100 * a:.0f}-{100 * b:.0f}%\n(mean {s:.1f} s)"
              for a, b, s in zip(edges[:-1], edges[1:], seconds)]
    bars = ax.bar(range(len(labels)), recall, color=GT_COLOUR)
    for bar, n in zip(bars, counts):
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"n={n}", ha="center",
                va="bottom", fontsize=7)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set(xlabel="moment length (share of the video)", ylabel=f"R1@{threshold:g} (%)",
           ylim=(0, 105), title=f"R1@{threshold:g} by moment length")
    return fig

"""Training curves from a run's ``metrics.jsonl`` rows."""

from __future__ import annotations

from typing import Sequence

from momentloc.viz.common import empty_figure, new_figure


def training_curves(history: Sequence[dict], metrics: Sequence[str] = ("R1@0.5", "R1@0.7", "mIoU")):
    """Loss terms per epoch (left) and validation metrics per epoch in percent (right).

    Args:
        history: one dict per epoch with ``epoch``, ``train/<term>`` (``train/loss`` is the
            weighted sum) and, when validated, ``val/<metric>`` fractions.
        metrics: validation metrics to draw when present.
    """
    from matplotlib.ticker import MaxNLocator

    if not history:
        return empty_figure("no epochs logged")
    epochs = [row["epoch"] for row in history]
    terms = sorted({k for row in history for k in row if k.startswith("train/")},
                   key=lambda k: (k != "train/loss", k))
    val = [m for m in metrics if any(f"val/{m}" in row for row in history)]
    fig = new_figure(10 if val else 6, 3.6)
    axes = fig.subplots(1, 2 if val else 1, squeeze=False)[0]
    ax = axes[0]
    for k in terms:
        ys = [row.get(k) for row in history]
        ax.plot(epochs, ys, marker="o", ms=3, lw=2 if k == "train/loss" else 1,
                label=k.removeprefix("train/"))
    ax.set(xlabel="epoch", ylabel="training loss (per batch, mean over the epoch)",
           title="training loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if val:
        ax = axes[1]
        for m in val:
            pts = [(row["epoch"], 100 * row[f"val/{m}"]) for row in history if f"val/{m}" in row]
            ax.plot(*zip(*pts), marker="o", ms=3, label=m)
        ax.set(xlabel="epoch", ylabel="validation metric (%)", title="validation")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return fig

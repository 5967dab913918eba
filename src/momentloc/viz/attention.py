"""Attention maps a model exposes through ``model.attention_maps(outputs)``."""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from momentloc.viz.common import empty_figure, new_figure


def as_matrix(value, index: int = 0) -> np.ndarray:
    """One sample's map as a 2-D array from a ``(B, ...)`` tensor: the batch axis is indexed,
    extra leading axes (such as heads) are averaged, and a vector becomes one row."""
    if hasattr(value, "detach"):  # a tensor
        value = value.detach().float().cpu().numpy()
    arr = np.asarray(value, dtype=float)
    if arr.ndim >= 2:
        arr = arr[min(index, arr.shape[0] - 1)]
    while arr.ndim > 2:
        arr = arr.mean(0)
    return arr.reshape(1, -1) if arr.ndim == 1 else arr.reshape(1, 1) if arr.ndim == 0 else arr


def attention_figure(maps: Mapping[str, object], index: int = 0, title: str = ""):
    """Heat maps of every tensor in ``maps`` (name -> ``(B, ...)`` tensor), labelled by name.

    Args:
        maps: what ``model.attention_maps(outputs)`` returned for a batch.
        index: which sample of the batch to draw.
    """
    from matplotlib.ticker import MaxNLocator

    if not maps:
        return empty_figure("the model exposes no attention maps")
    names = sorted(maps)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = new_figure(4.2 * cols, 3.6 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        mat = as_matrix(maps[name], index)
        im = ax.imshow(mat, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_title(f"{name} {tuple(mat.shape)}", fontsize=9)
        ax.set_xlabel("column index", fontsize=8)
        ax.set_ylabel("row index", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.colorbar(im, ax=ax, shrink=0.8)
    for ax in axes[len(names):]:
        ax.set_axis_off()
    if title:
        import textwrap

        fig.suptitle("\n".join(textwrap.wrap(title, 45 * cols)), fontsize=9)
    return fig

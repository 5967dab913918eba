"""Figure creation without pyplot, and PNG bytes."""

from __future__ import annotations

import io

from momentloc.video.deps import require

GT_COLOUR, PRED_COLOUR, TOP_COLOUR = "#2a9d8f", "#8d99ae", "#e76f51"


def new_figure(width: float, height: float):
    """A ``Figure`` with an Agg canvas (no GUI backend, no global figure registry)."""
    require("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def empty_figure(message: str, width: float = 6, height: float = 2):
    fig = new_figure(width, height)
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    return fig

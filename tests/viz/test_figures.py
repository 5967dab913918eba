import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib", reason="the 'viz' extra is not installed")

from momentloc.viz import (attention_figure, iou_histogram, query_timeline, recall_by_length,  # noqa: E402
                           timelines, top1_ious, training_curves)
from momentloc.viz.attention import as_matrix  # noqa: E402
from momentloc.viz.common import png_bytes  # noqa: E402

LINES = [
    {"query_id": "q1", "video_id": "v1", "query": "the red circle grows", "duration": 20.0,
     "gt_span": [2.0, 6.0], "pred_spans": [[2.0, 6.0, 0.9], [10.0, 14.0, 0.5]]},
    {"query_id": "q2", "video_id": "v1", "query": "the blue square appears", "duration": 20.0,
     "gt_span": [0.0, 10.0], "pred_spans": [[5.0, 15.0, 0.7]]},
    {"query_id": "q3", "video_id": "v2", "query": "nothing found", "duration": 10.0,
     "gt_span": [1.0, 2.0], "pred_spans": []},
]


def test_top1_ious_by_hand():
    np.testing.assert_allclose(top1_ious(LINES), [1.0, 5 / 15, 0.0])
    assert top1_ious([]).shape == (0,)


def test_timeline_draws_truth_and_predictions_on_the_time_axis():
    fig = query_timeline(LINES[0], top_k=5)
    ax = fig.axes[0]
    bars = [(p.get_x(), p.get_width()) for p in ax.patches]
    assert bars == [(2.0, 4.0), (2.0, 4.0), (10.0, 4.0)]          # truth, #1, #2
    assert ax.get_xlim() == (0.0, 20.0)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["ground truth", "#1 (0.90)", "#2 (0.50)"]
    notes = [t.get_text() for t in ax.texts]
    assert "2.0-6.0 s  IoU 1.00" in notes and "10.0-14.0 s  IoU 0.00" in notes
    assert ax.get_title(loc="left") == "v1: \"the red circle grows\""
    assert png_bytes(fig)[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(timelines(LINES, top_k=1).axes) == 3


def test_iou_histogram_and_recall_by_length():
    fig = iou_histogram(LINES, thresholds=(0.3, 0.5))
    ax = fig.axes[0]
    assert sum(p.get_height() for p in ax.patches) == 3
    texts = [t.get_text() for t in ax.texts]
    assert any("R1@0.3 66.7" in t for t in texts) and any("R1@0.5 33.3" in t for t in texts)
    fig = recall_by_length(LINES, threshold=0.5, bins=2)
    heights = [p.get_height() for p in fig.axes[0].patches]
    # lengths 20% (hit), 50% (miss), 10% (miss): bins [10-20%] and [20-50%]
    assert heights == pytest.approx([0.0, 50.0]) or heights == pytest.approx([50.0, 0.0])


def test_training_curves_from_history_rows():
    rows = [{"epoch": e, "train/loss": 1.0 / e, "train/align": 0.5 / e, "val/R1@0.5": 0.1 * e}
            for e in (1, 2, 3)]
    fig = training_curves(rows)
    loss_ax, val_ax = fig.axes
    assert {line.get_label() for line in loss_ax.get_lines()} == {"loss", "align"}
    np.testing.assert_allclose(val_ax.get_lines()[0].get_ydata(), [10, 20, 30])
    assert len(training_curves([{"epoch": 1, "train/loss": 1.0}]).axes) == 1
    assert training_curves([]).axes[0].texts[0].get_text() == "no epochs logged"


def test_attention_maps_of_any_rank_are_drawn_by_name():
    maps = {"heads": torch.rand(2, 4, 3, 5), "map": torch.rand(2, 6, 6), "vector": torch.rand(2, 7)}
    assert as_matrix(maps["heads"]).shape == (3, 5)
    np.testing.assert_allclose(as_matrix(maps["heads"]), maps["heads"][0].mean(0).numpy(), rtol=1e-6)
    assert as_matrix(maps["vector"]).shape == (1, 7)
    fig = attention_figure(maps)
    titles = sorted(ax.get_title() for ax in fig.axes if ax.get_title())
    assert titles == ["heads (3, 5)", "map (6, 6)", "vector (1, 7)"]
    assert attention_figure({}).axes[0].texts[0].get_text().startswith("the model exposes no")

"""Figures of a run: functions that take records, predictions or histories and return a
matplotlib ``Figure`` (no pyplot state, so they are safe in servers and threads).

- :func:`training_curves` (metrics.jsonl rows), :func:`query_timeline` and
  :func:`timelines` (prediction lines), :func:`iou_histogram`, :func:`recall_by_length`,
  :func:`attention_figure` (a model's ``attention_maps``);
- :func:`momentloc.viz.run.plot_run` writes all of them for a run directory
  (``momentloc plot``).

matplotlib is the ``viz`` extra; it is imported when a figure is made.
"""

from momentloc.viz.analysis import iou_histogram, recall_by_length, top1_ious
from momentloc.viz.attention import attention_figure
from momentloc.viz.curves import training_curves
from momentloc.viz.timeline import query_timeline, timelines

__all__ = ["attention_figure", "iou_histogram", "query_timeline", "recall_by_length",
           "timelines", "top1_ious", "training_curves"]

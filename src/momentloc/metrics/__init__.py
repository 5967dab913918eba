"""Evaluation metrics (pure NumPy, no model imports) and annotation-only baselines.

``compute_metrics`` gives R@n IoU=m, mIoU and dR@n IoU=m as fractions; ``didemo_metrics``
the DiDeMo annotator-aware protocol; ``metrics.baselines`` the random and prior baselines;
``metrics.table`` the printed results table.
"""

from momentloc.metrics.didemo import didemo_metrics, spans_to_segments
from momentloc.metrics.retrieval import (DEFAULT_IOU_THRESHOLDS, DEFAULT_RECALL_AT,
                                         compute_metrics, metric_keys, recall_key, threshold_key)

__all__ = ["DEFAULT_IOU_THRESHOLDS", "DEFAULT_RECALL_AT", "compute_metrics", "didemo_metrics",
           "metric_keys", "recall_key", "spans_to_segments", "threshold_key"]

"""The prior-only baseline beside every result the engine prints."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from momentloc.config.schema import ExperimentConfig
from momentloc.data.card import DatasetCard
from momentloc.data.records import MomentRecord
from momentloc.engine.evaluator import metric_set
from momentloc.engine.predictions import metrics_from_lines, records_to_lines
from momentloc.metrics.baselines import PriorBaseline


def fit_threshold(cfg: ExperimentConfig, card: DatasetCard) -> float:
    """IoU the prior is fitted at: the selection metric's, else the middle reported threshold."""
    sel = cfg.train.select_metric
    if sel.startswith("R") and "@" in sel:
        return float(sel.split("@", 1)[1])
    _, ious = metric_set(cfg, card)
    return sorted(ious)[(len(ious) - 1) // 2]


def prior_metrics_for(train: Sequence[MomentRecord], test: Sequence[MomentRecord],
                      cfg: ExperimentConfig, card: DatasetCard) -> dict:
    """Metrics of the prior baseline fitted on ``train`` and scored on ``test`` like a model."""
    if not train or not test:
        return {}
    recall, ious = metric_set(cfg, card)
    prior = PriorBaseline(iou_threshold=fit_threshold(cfg, card), num_moments=max(recall)).fit(train)
    spans, scores = prior.predict(test, max(recall))
    lines = records_to_lines(test, spans, scores)
    # The prior's moments are already a ranked list: no NMS, fixed mode.
    ecfg = replace(cfg.eval, nms_mode="fixed")
    return metrics_from_lines(lines, ecfg, recall, ious, protocol=card.protocol,
                              num_clips=cfg.data.num_clips)

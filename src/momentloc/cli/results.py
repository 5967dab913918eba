"""Printing a run's results: model beside the prior baseline, with what produced them."""

from __future__ import annotations

from momentloc.config.schema import ExperimentConfig
from momentloc.data.card import DatasetCard
from momentloc.engine.evaluator import metric_set
from momentloc.metrics.table import format_results


def metric_keys(cfg: ExperimentConfig, card: DatasetCard, metrics: dict) -> list[str]:
    recall, ious = metric_set(cfg, card)
    keys = [f"R{n}@{m:g}" for n in recall for m in ious]
    keys += [k for k in ("mIoU",) if k in metrics]
    if card.protocol == "didemo":
        keys += [k for k in metrics if k.startswith("didemo/")]
    return [k for k in keys if k in metrics]


def results_header(cfg: ExperimentConfig, card: DatasetCard, split: str) -> dict:
    nms = (f"per-metric (m - 0.05)" if cfg.eval.nms_mode == "per_metric"
           else f"{cfg.eval.nms_thresh:g}")
    from momentloc.engine.runs import protocol_label, protocols

    return {"dataset": card.name, "split": split,
            "protocol": protocol_label(protocols(cfg.eval.protocol, card.protocol))
            + (f", IoU {cfg.eval.iou_mode}" if cfg.eval.iou_mode != "seconds" else ""),
            "nms": nms, "features": card.features.describe() if card.features else "none"}


def results_table(label: str, metrics: dict, baseline: dict, cfg: ExperimentConfig,
                  card: DatasetCard, split: str, provenance: dict | None = None) -> str:
    """The model beside the prior baseline under the setting's header; with ``provenance``
    (:func:`momentloc.engine.runs.provenance`), a footer line says what produced the numbers
    (seed, threads, torch build, device: results move with each of them)."""
    from momentloc.engine.runs import provenance_line

    keys = metric_keys(cfg, card, metrics)
    table = format_results([(label, metrics), ("prior baseline", baseline)], keys,
                           results_header(cfg, card, split))
    return table + (f"\n{provenance_line(provenance)}" if provenance else "")

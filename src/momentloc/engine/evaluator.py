"""The one evaluation path: model -> candidates -> NMS'd prediction lines -> metrics."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from momentloc.config.schema import EvalConfig, ExperimentConfig
from momentloc.data.card import DatasetCard
from momentloc.data.dataset import collate
from momentloc.engine.distributed import DistInfo, all_gather_objects
from momentloc.engine.predictions import candidates_to_lines, cmin_frame_rule, metrics_from_lines
from momentloc.engine.runtime import autocast, progress
from momentloc.errors import ConfigError


def metric_set(cfg: ExperimentConfig, card: DatasetCard) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Recall cut-offs and IoU thresholds to report: the config's, else the card's; the
    selection metric's threshold is always included."""
    recall = tuple(cfg.eval.recall_at)
    ious = tuple(cfg.eval.iou_thresholds or card.metrics.iou_thresholds)
    sel = cfg.train.select_metric
    if sel.startswith("R") and "@" in sel:
        try:
            m = float(sel.split("@", 1)[1])
        except ValueError:
            raise ConfigError(f"train.select_metric {sel!r}: expected R<n>@<iou> or mIoU") from None
        if m not in ious:
            ious = tuple(sorted({*ious, m}))
    return recall, ious


def eval_loader(dataset: Dataset, batch_size: int, dist: DistInfo, num_workers: int = 0) -> DataLoader:
    sampler = (DistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=False)
               if dist.enabled else None)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False,
                      collate_fn=collate, num_workers=num_workers,
                      persistent_workers=False)


@torch.no_grad()
def predict_lines(model, dataset: Dataset, eval_cfg: EvalConfig, batch_size: int,
                  device: torch.device, dist: DistInfo, amp: bool = False,
                  num_workers: int = 0, full_ranking: bool = False,
                  on_batch: Callable | None = None) -> list[dict]:
    """Run ``model`` over ``dataset`` and return one prediction line per query (every rank
    gets all lines, deduplicated). ``full_ranking`` keeps every candidate's rank too (the DiDeMo
    protocol ranks all 21 moments, not only those left after NMS). ``on_batch(outputs,
    batch)``, when given, sees each batch's outputs (the trainer's validation loss)."""
    core = model.module if hasattr(model, "module") else model
    was_training = core.training
    core.eval()
    lines: list[dict] = []
    frame_rule = cmin_frame_rule(core)
    loader = eval_loader(dataset, batch_size, dist, num_workers)
    for batch in progress(loader, desc=f"predict {len(dataset)} queries", unit="batch",
                          enabled=dist.is_main):
        batch = batch.to(device)
        with autocast(device, amp):
            outputs = core(batch)
            if on_batch is not None:
                on_batch(outputs, batch)
        cands = core.candidates(outputs, batch)
        lines += candidates_to_lines(cands, batch.meta, batch.spans, batch.durations, eval_cfg,
                                     full_ranking=full_ranking, lengths=batch.video_mask.sum(1),
                                     frame_rule=frame_rule)
    core.train(was_training)
    if dist.enabled:
        seen: set = set()
        merged = []
        for part in all_gather_objects(lines, dist):
            for line in part:
                if line["query_id"] not in seen:
                    seen.add(line["query_id"])
                    merged.append(line)
        lines = merged
    return lines


def score_lines(lines: list[dict], cfg: ExperimentConfig, card: DatasetCard) -> dict:
    recall, ious = metric_set(cfg, card)
    return metrics_from_lines(lines, cfg.eval, recall, ious, protocol=card.protocol,
                              num_clips=cfg.data.num_clips)

"""The training engine: one explicit loop that every registered model plugs into."""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from momentloc.config.load import config_to_dict
from momentloc.config.schema import ExperimentConfig
from momentloc.data.build import build_data
from momentloc.data.dataset import collate
from momentloc.engine import distributed as D
from momentloc.engine.baseline import prior_metrics_for
from momentloc.engine.checkpoint import load_checkpoint, save_checkpoint
from momentloc.engine.evaluator import predict_lines, score_lines
from momentloc.engine.optim import build_optimizer, build_scheduler
from momentloc.engine.predictions import write_predictions
from momentloc.engine.runs import resolve_card, write_run_files
from momentloc.engine.runtime import (autocast, needs_grad_scaler, progress, resolve_device,
                                      seed_everything, set_deterministic)
from momentloc.errors import ConfigError
from momentloc.models.registry import create_model

log = logging.getLogger("momentloc.train")


@dataclass
class TrainResult:
    """What a finished run produced. Metrics are fractions keyed like ``R1@0.5``."""

    run_dir: Path
    test_metrics: dict = field(default_factory=dict)
    val_metrics: dict = field(default_factory=dict)
    baseline_metrics: dict = field(default_factory=dict)
    best_epoch: int = -1
    epochs_run: int = 0
    history: list[dict] = field(default_factory=list)


def weighted_loss(terms: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """Sum of ``weights[name] * term`` (weight 1.0 when not listed)."""
    unknown = set(weights) - set(terms)
    if unknown:
        raise ConfigError(f"model.loss_weights names {', '.join(sorted(unknown))}, but the model's "
                          f"loss terms are {', '.join(sorted(terms))}")
    return sum(weights.get(k, 1.0) * v for k, v in terms.items())


def _epoch_sampler(dataset, dist: D.DistInfo, seed: int) -> DistributedSampler:
    # The same sampler with one process or many, so a run on N processes sees, at each step, the
    # union of the samples a single process sees (DistributedSampler shuffles with seed + epoch).
    return DistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
                              seed=seed, drop_last=False)


class Trainer:
    """Builds everything a run needs from its config, then :meth:`fit` runs the loop."""

    def __init__(self, cfg: ExperimentConfig, run_dir: str | Path, resume: bool = False):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        tc = cfg.train
        device_kind = "cuda" if (tc.device == "cuda" or (tc.device == "auto" and torch.cuda.is_available())) else "cpu"
        self.dist = D.setup(device_kind)
        self.device = resolve_device(tc.device, self.dist.local_rank)
        seed_everything(tc.seed)
        set_deterministic(tc.deterministic, self.device)
        self.main = self.dist.is_main

        ckpt_dir = self.run_dir / "checkpoints"
        if resume and not (ckpt_dir / "last.pt").is_file():
            raise ConfigError(f"{self.run_dir}: nothing to resume (no checkpoints/last.pt)")
        if not resume and (ckpt_dir / "last.pt").is_file():
            raise ConfigError(f"{self.run_dir} already holds a run; pass --resume to continue it, "
                              f"or choose another --out")
        self.card = resolve_card(cfg)
        if self.main:
            write_run_files(self.run_dir, cfg, self.card, self.dist.world_size)
        # Rank 0 builds the vocabulary / word vectors / PCA once; the others then read them.
        if self.main:
            self.data = build_data(cfg.data, self.card, self.run_dir / "artifacts")
        D.barrier(self.dist)
        if not self.main:
            self.data = build_data(cfg.data, self.card, self.run_dir / "artifacts")
        if self.data.train is None or len(self.data.train) == 0:
            raise ConfigError(f"dataset {self.card.name!r}: the training split is empty")

        self.model = create_model(cfg.model_name, cfg.model, self.data.context()).to(self.device)
        self.net = (DistributedDataParallel(self.model, device_ids=[self.device.index]
                                            if self.device.type == "cuda" else None,
                                            find_unused_parameters=True)
                    if self.dist.enabled else self.model)
        self.sampler = _epoch_sampler(self.data.train, self.dist, tc.seed)
        self.loader = DataLoader(self.data.train, batch_size=tc.batch_size, sampler=self.sampler,
                                 collate_fn=collate, num_workers=cfg.data.num_workers,
                                 pin_memory=self.device.type == "cuda",
                                 persistent_workers=cfg.data.num_workers > 0, drop_last=False)
        steps_per_epoch = len(self.loader)
        total = steps_per_epoch * tc.epochs
        if tc.max_steps:
            total = min(total, tc.max_steps)
        self.optimizer = build_optimizer(self.model.parameters(), cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, total)
        self.scaler = torch.amp.GradScaler("cuda") if needs_grad_scaler(self.device, tc.amp) else None

        self.epoch = 0          # epochs completed
        self.step = 0           # optimizer steps taken
        self.best_score = -math.inf
        self.best_epoch = -1
        self.bad_evals = 0
        self.history: list[dict] = []
        if resume:
            self._restore(load_checkpoint(ckpt_dir / "last.pt", map_location=self.device))
        self._tb = self._tensorboard() if self.main else None

    # ----------------------------------------------------------------------------- state
    def _state(self) -> dict:
        return {
            "model_name": self.cfg.model_name,
            "config": config_to_dict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "epoch": self.epoch, "step": self.step,
            "best_score": self.best_score, "best_epoch": self.best_epoch,
            "bad_evals": self.bad_evals,
            "history": json.dumps(self.history),
        }

    def _restore(self, state: dict) -> None:
        if state.get("model_name") != self.cfg.model_name:
            raise ConfigError(f"{self.run_dir}: checkpoint is for model {state.get('model_name')!r}, "
                              f"not {self.cfg.model_name!r}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler"):
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best_score, self.best_epoch = float(state["best_score"]), int(state["best_epoch"])
        self.bad_evals = int(state.get("bad_evals", 0))
        self.history = json.loads(state.get("history", "[]"))
        log.info("resumed %s after epoch %d (step %d)", self.run_dir, self.epoch, self.step)

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return None
        return SummaryWriter(str(self.run_dir / "tensorboard"))

    # ----------------------------------------------------------------------------- loop
    def train_epoch(self) -> dict:
        cfg, tc = self.cfg, self.cfg.train
        self.model.train()
        self.sampler.set_epoch(self.epoch)
        # Dropout and other randomness depend on (seed, epoch) only, so a resumed run repeats
        # exactly what an uninterrupted one does.
        torch.manual_seed(tc.seed * 100003 + self.epoch * 1009 + self.dist.rank)
        self.model.on_epoch_start(self.epoch)
        sums: dict[str, float] = {}
        n_batches = n_samples = 0
        t0 = time.perf_counter()
        bar = progress(self.loader, desc=f"epoch {self.epoch + 1}/{tc.epochs}", unit="batch",
                       enabled=tc.progress and self.main, log_line=False)  # fit() logs the epoch
        for batch in bar:
            batch = batch.to(self.device, non_blocking=True)
            with autocast(self.device, tc.amp):
                outputs = self.net(batch)
                terms = self.model.loss(outputs, batch)
                loss = weighted_loss({k: v.float() for k, v in terms.items()}, cfg.model.loss_weights)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss is {loss.item()} at epoch {self.epoch + 1}, step {self.step + 1} "
                    f"(terms: {', '.join(f'{k}={v.item():.4g}' for k, v in terms.items())}); "
                    f"lower optim.lr or set train.grad_clip")
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                loss.backward()
            if tc.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            if self.scheduler is not None and not isinstance(
                    self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step()
            self.step += 1
            n_batches += 1
            n_samples += len(batch)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            if n_batches % max(1, tc.log_every) == 0 or n_batches == len(self.loader):
                rate = n_samples * self.dist.world_size / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{sums['loss'] / n_batches:.4f}", clips_s=f"{rate:.0f}")
            if tc.max_steps and self.step >= tc.max_steps:
                break
        elapsed = time.perf_counter() - t0
        means = {k: v / max(n_batches, 1) for k, v in sums.items()}
        means = {k: float(x) for k, x in zip(means, D.all_reduce_mean(
            torch.tensor(list(means.values()), dtype=torch.float64), self.dist))}
        return {"train/" + k: v for k, v in means.items()} | {
            "samples_per_s": n_samples * self.dist.world_size / max(elapsed, 1e-9),
            "epoch_time_s": elapsed, "lr": self.optimizer.param_groups[0]["lr"]}

    def evaluate(self, role: str) -> tuple[dict, list[dict]]:
        """Metrics and prediction lines of the model on the split playing ``role``."""
        dataset = getattr(self.data, role)
        lines = predict_lines(self.net, dataset, self.cfg.eval, self.cfg.train.eval_batch_size,
                              self.device, self.dist, self.cfg.train.amp, self.cfg.data.num_workers,
                              full_ranking=self.card.protocol == "didemo")
        return score_lines(lines, self.cfg, self.card), lines

    def _select_score(self, metrics: dict) -> float:
        key = self.cfg.train.select_metric
        if key not in metrics:
            raise ConfigError(f"train.select_metric {key!r} is not among the metrics "
                              f"({', '.join(sorted(metrics))})")
        return float(metrics[key])

    def _log_epoch(self, row: dict) -> None:
        self.history.append(row)
        if not self.main:
            return
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        keys = sorted({k for r in self.history for k in r})
        tmp = self.run_dir / ".metrics.csv.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.history)
        tmp.replace(self.run_dir / "metrics.csv")
        if self._tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "epoch":
                    self._tb.add_scalar(k, v, row["epoch"])

    def fit(self) -> TrainResult:
        tc = self.cfg.train
        ckpt_dir = self.run_dir / "checkpoints"
        has_val = self.data.val is not None and len(self.data.val) > 0
        if not has_val and self.main and self.epoch == 0:
            log.info("no validation split: the last epoch's model is kept (set data.val_holdout "
                     "to select on held-out training videos)")
        while self.epoch < tc.epochs and not (tc.max_steps and self.step >= tc.max_steps):
            row = {"epoch": self.epoch + 1, **self.train_epoch()}
            self.epoch += 1
            improved = False
            if has_val and (self.epoch % tc.eval_every == 0 or self.epoch == tc.epochs):
                val, _ = self.evaluate("val")
                row |= {"val/" + k: v for k, v in val.items()}
                score = self._select_score(val)
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    self.scheduler.step(score)
                improved = score > self.best_score
                if improved:
                    self.best_score, self.best_epoch, self.bad_evals = score, self.epoch, 0
                else:
                    self.bad_evals += 1
            elif not has_val:
                improved, self.best_epoch = True, self.epoch
            row["step"] = self.step
            self._log_epoch(row)
            if self.main:
                log.info("epoch %d/%d  loss %.4f  %.0f samples/s%s", self.epoch, tc.epochs,
                         row["train/loss"], row["samples_per_s"],
                         "".join(f"  {k[4:]} {100 * v:.2f}" for k, v in row.items()
                                 if k == f"val/{tc.select_metric}"))
                state = self._state()
                save_checkpoint(ckpt_dir / "last.pt", state)
                if improved:
                    save_checkpoint(ckpt_dir / "best.pt", state)
            D.barrier(self.dist)
            if tc.early_stop_patience and self.bad_evals >= tc.early_stop_patience:
                log.info("early stop: %d evaluations without improvement", self.bad_evals)
                break
        return self.finish()

    def finish(self) -> TrainResult:
        """Reload the best checkpoint, evaluate on the test split, write predictions/metrics."""
        result = TrainResult(run_dir=self.run_dir, best_epoch=self.best_epoch,
                             epochs_run=self.epoch, history=self.history)
        best = self.run_dir / "checkpoints" / "best.pt"
        if best.is_file():
            self.model.load_state_dict(load_checkpoint(best, map_location=self.device)["model"])
        if self.data.val is not None and len(self.data.val) > 0:
            result.val_metrics, _ = self.evaluate("val")
        if self.data.test is not None and len(self.data.test) > 0:
            result.test_metrics, lines = self.evaluate("test")
            result.baseline_metrics = prior_metrics_for(
                self.data.records("train"), self.data.records("test"), self.cfg, self.card)
            if self.main:
                split = self.data.split_name("test")
                write_predictions(self.run_dir / f"predictions_{split}.jsonl", lines)
                from momentloc.data.records import atomic_write_text
                atomic_write_text(self.run_dir / "metrics.json", json.dumps({
                    "split": split, "best_epoch": self.best_epoch, "metrics": result.test_metrics,
                    "prior_baseline": result.baseline_metrics, "features": (
                        self.card.features.describe() if self.card.features else None)}, indent=2))
        if self._tb is not None:
            self._tb.close()
        return result


def train(cfg: ExperimentConfig, run_dir: str | Path, resume: bool = False) -> TrainResult:
    """Train ``cfg`` into ``run_dir`` (or continue it with ``resume``) and test the best model."""
    trainer = Trainer(cfg, run_dir, resume=resume)
    return trainer.fit()

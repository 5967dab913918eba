"""The training engine: one explicit loop that every registered model plugs into."""

from __future__ import annotations

import csv
import io
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
from momentloc.atomic import atomic_write_text, remove_stale_temporaries
from momentloc.engine.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from momentloc.engine.evaluator import predict_lines, score_lines
from momentloc.engine.optim import build_optimizer, build_scheduler
from momentloc.engine.predictions import write_predictions
from momentloc.engine.lock import RunLock
from momentloc.engine.runs import (prepare_new_run, protocols, provenance, record_resume,
                                   resolve_card, write_run_files)
from momentloc.engine.runtime import (autocast, needs_grad_scaler, progress, resolve_device,
                                      seed_everything, set_deterministic)
from momentloc.errors import CheckpointError, ConfigError
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
    """Builds everything a run needs from its config, then :meth:`fit` runs the loop.

    The run directory survives a kill at any instant: rank 0 holds its lock
    (:class:`~momentloc.engine.lock.RunLock`) from construction to the end of :meth:`finish`;
    every file is written atomically; each epoch commits ``best.pt`` (when improved), then
    ``last.pt`` (which holds the epoch's history row), then rewrites ``metrics.jsonl``/``.csv``
    from that history. A resume starts from ``last.pt``: it removes temporaries a killed writer
    left, rewrites the metric rows from the checkpoint's history (dropping rows of an epoch that
    was not committed), appends itself to ``meta.json`` and repeats exactly what the
    uninterrupted run does. A new run refuses a non-empty directory unless ``overwrite``.
    """

    def __init__(self, cfg: ExperimentConfig, run_dir: str | Path, resume: bool = False,
                 overwrite: bool = False):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        tc = cfg.train
        device_kind = "cuda" if (tc.device == "cuda" or (tc.device == "auto" and torch.cuda.is_available())) else "cpu"
        self.dist = D.setup(device_kind)
        self.device = resolve_device(tc.device, self.dist.local_rank)
        seed_everything(tc.seed)
        set_deterministic(tc.deterministic, self.device)
        self.main = self.dist.is_main
        self._lock = RunLock(self.run_dir, "train") if self.main else None
        self._tb = None
        if self._lock is not None:
            if resume and not (self.run_dir / "checkpoints" / "last.pt").is_file():
                raise ConfigError(f"{self.run_dir}: nothing to resume (no checkpoints/last.pt)")
            self._lock.acquire()
        try:
            self._build(resume, overwrite)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the run directory (the lock, TensorBoard's writer)."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._lock is not None:
            self._lock.release()

    def _build(self, resume: bool, overwrite: bool) -> None:
        cfg, tc = self.cfg, self.cfg.train
        ckpt_dir = self.run_dir / "checkpoints"
        if resume and not (ckpt_dir / "last.pt").is_file():
            raise ConfigError(f"{self.run_dir}: nothing to resume (no checkpoints/last.pt)")
        if self.main and not resume:
            prepare_new_run(self.run_dir, overwrite)
        if self.main:
            for stale in remove_stale_temporaries(self.run_dir, ckpt_dir, self.run_dir / "artifacts"):
                log.info("removed %s, left by an interrupted write", stale)
        self.card = resolve_card(cfg)
        if self.main and not resume:
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
            self._restore(load_checkpoint(ckpt_dir / "last.pt", map_location=self.device),
                          ckpt_dir / "last.pt")
            if self.main:
                record_resume(self.run_dir, self.epoch, self.dist.world_size)
                self._write_metrics()
        self._tb = self._tensorboard(purge_step=self.epoch + 1 if resume else None) if self.main else None

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

    def _restore(self, state: dict, path: Path) -> None:
        if state.get("model_name") != self.cfg.model_name:
            raise CheckpointError(f"{path}: checkpoint is for model {state.get('model_name')!r}, "
                                  f"not {self.cfg.model_name!r}")
        load_model_state(self.model, state["model"], path)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"{path}: the optimizer state does not fit this run's optimizer "
                                  f"({str(e).splitlines()[0]})") from e
        if self.scheduler is not None and state.get("scheduler"):
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best_score, self.best_epoch = float(state["best_score"]), int(state["best_epoch"])
        self.bad_evals = int(state.get("bad_evals", 0))
        self.history = json.loads(state.get("history", "[]"))
        log.info("resumed %s after epoch %d (step %d)", self.run_dir, self.epoch, self.step)

    def _tensorboard(self, purge_step: int | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return None
        # On resume, events past the resumed epoch (an interrupted epoch's) are purged.
        return SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=purge_step)

    # ----------------------------------------------------------------------------- loop
    def train_epoch(self) -> dict:
        tc = self.cfg.train
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
                loss = self._total_loss(terms)
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

    def _total_loss(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training objective: the model's loss terms weighted by ``model.loss_weights``."""
        return weighted_loss({k: v.float() for k, v in terms.items()}, self.cfg.model.loss_weights)

    def _plateau_on_loss(self) -> bool:
        return (isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
                and self.cfg.optim.plateau_on != "metric")

    def evaluate(self, role: str, with_loss: bool = False) -> tuple[dict, list[dict]]:
        """Metrics and prediction lines of the model on the split playing ``role``;
        ``with_loss`` adds ``loss``, the mean over batches of the training objective."""
        dataset = getattr(self.data, role)
        losses: list[torch.Tensor] = []

        def add_loss(outputs, batch) -> None:
            losses.append(self._total_loss(self.model.loss(outputs, batch)).detach())

        lines = predict_lines(self.net, dataset, self.cfg.eval, self.cfg.train.eval_batch_size,
                              self.device, self.dist, self.cfg.train.amp, self.cfg.data.num_workers,
                              full_ranking=self.card.protocol == "didemo",
                              on_batch=add_loss if with_loss else None)
        metrics = score_lines(lines, self.cfg, self.card)
        if with_loss:
            mean = torch.stack(losses).double().mean().cpu().reshape(1)
            metrics["loss"] = float(D.all_reduce_mean(mean, self.dist)[0])
        return metrics, lines

    def _select_score(self, metrics: dict) -> float:
        key = self.cfg.train.select_metric
        if key not in metrics:
            raise ConfigError(f"train.select_metric {key!r} is not among the metrics "
                              f"({', '.join(sorted(metrics))})")
        return float(metrics[key])

    def _write_metrics(self) -> None:
        """Rewrite ``metrics.jsonl``/``.csv`` from the committed history: one row per epoch."""
        atomic_write_text(self.run_dir / "metrics.jsonl",
                          "".join(json.dumps(r) + "\n" for r in self.history))
        keys = sorted({k for r in self.history for k in r})
        text = io.StringIO()
        w = csv.DictWriter(text, fieldnames=keys)
        w.writeheader()
        w.writerows(self.history)
        atomic_write_text(self.run_dir / "metrics.csv", text.getvalue())

    def _log_epoch(self, row: dict) -> None:
        if self._tb is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k != "epoch":
                    self._tb.add_scalar(k, v, row["epoch"])

    def _stopped_early(self) -> bool:
        patience = self.cfg.train.early_stop_patience
        return bool(patience) and self.bad_evals >= patience

    def fit(self) -> TrainResult:
        """Train to the end (or continue a resumed run), then :meth:`finish`."""
        try:
            self._fit()
            return self.finish()
        finally:
            self.close()

    def _fit(self) -> None:
        tc = self.cfg.train
        ckpt_dir = self.run_dir / "checkpoints"
        has_val = self.data.val is not None and len(self.data.val) > 0
        if not has_val and self.main and self.epoch == 0:
            log.info("no validation split: the last epoch's model is kept (set data.val_holdout "
                     "to select on held-out training videos)")
        while (self.epoch < tc.epochs and not (tc.max_steps and self.step >= tc.max_steps)
               and not self._stopped_early()):
            row = {"epoch": self.epoch + 1, **self.train_epoch()}
            self.epoch += 1
            improved = False
            if has_val and (self.epoch % tc.eval_every == 0 or self.epoch == tc.epochs):
                val, _ = self.evaluate("val", with_loss=self._plateau_on_loss())
                row |= {"val/" + k: v for k, v in val.items()}
                score = self._select_score(val)
                if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    on = self.cfg.optim.plateau_on
                    self.scheduler.step(score if on == "metric" else
                                        val["loss"] if on == "val_loss" else -val["loss"])
                improved = score > self.best_score
                if improved:
                    self.best_score, self.best_epoch, self.bad_evals = score, self.epoch, 0
                else:
                    self.bad_evals += 1
            elif not has_val:
                improved, self.best_epoch = True, self.epoch
            row["step"] = self.step
            self.history.append(row)
            if self.main:
                log.info("epoch %d/%d  loss %.4f  %.0f samples/s%s", self.epoch, tc.epochs,
                         row["train/loss"], row["samples_per_s"],
                         "".join(f"  {k[4:]} {100 * v:.2f}" for k, v in row.items()
                                 if k == f"val/{tc.select_metric}"))
                # best.pt first: whenever last.pt names a best epoch, best.pt already holds it.
                state = self._state()
                if improved:
                    save_checkpoint(ckpt_dir / "best.pt", state)
                save_checkpoint(ckpt_dir / "last.pt", state)
                self._write_metrics()
                self._log_epoch(row)
            D.barrier(self.dist)
            if self._stopped_early():
                log.info("early stop: %d evaluations without improvement", self.bad_evals)

    def _load_best(self) -> str:
        """Load ``best.pt`` into the model after checking it holds the best epoch ``last.pt``
        records; returns which weights the test results come from."""
        best = self.run_dir / "checkpoints" / "best.pt"
        if self.best_epoch < 1:
            return "last"  # never evaluated: the current weights are the only candidate
        if not best.is_file():
            raise CheckpointError(f"{best}: missing, but the run records epoch {self.best_epoch} as "
                                  f"its best; the run directory was changed by hand")
        state = load_checkpoint(best, map_location=self.device)
        if int(state.get("epoch", -1)) != self.best_epoch:
            raise CheckpointError(f"{best} holds epoch {state.get('epoch')}, but the run records "
                                  f"epoch {self.best_epoch} as its best")
        load_model_state(self.model, state["model"], best)
        return "best"

    def finish(self) -> TrainResult:
        """Reload the best checkpoint, evaluate on the test split, write predictions/metrics."""
        result = TrainResult(run_dir=self.run_dir, best_epoch=self.best_epoch,
                             epochs_run=self.epoch, history=self.history)
        checkpoint = self._load_best()
        if self.data.val is not None and len(self.data.val) > 0:
            result.val_metrics, _ = self.evaluate("val")
        if self.data.test is not None and len(self.data.test) > 0:
            result.test_metrics, lines = self.evaluate("test")
            result.baseline_metrics = prior_metrics_for(
                self.data.records("train"), self.data.records("test"), self.cfg, self.card)
            if self.main:
                split = self.data.split_name("test")
                write_predictions(self.run_dir / f"predictions_{split}.jsonl", lines)
                atomic_write_text(self.run_dir / "metrics.json", json.dumps({
                    "split": split, "checkpoint": checkpoint, "best_epoch": self.best_epoch,
                    "metrics": result.test_metrics, "prior_baseline": result.baseline_metrics,
                    "protocol": protocols(self.cfg.eval.protocol, self.card.protocol),
                    "features": self.card.features.describe() if self.card.features else None,
                    "provenance": self.provenance()}, indent=2))
        self.close()
        return result

    def provenance(self) -> dict:
        """Seed, threads, torch build and device of this run (see :func:`runs.provenance`)."""
        return provenance(self.cfg.train.seed, self.device, self.dist.world_size)


def train(cfg: ExperimentConfig, run_dir: str | Path, resume: bool = False,
          overwrite: bool = False) -> TrainResult:
    """Train ``cfg`` into ``run_dir`` (or continue it with ``resume``) and test the best model."""
    trainer = Trainer(cfg, run_dir, resume=resume, overwrite=overwrite)
    return trainer.fit()

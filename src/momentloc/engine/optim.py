"""Optimizer and learning-rate schedule from an OptimConfig."""

from __future__ import annotations

import math

import torch

from momentloc.config.schema import OptimConfig


def build_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def build_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int
                    ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A per-step schedule (``plateau`` is stepped per evaluation instead)."""
    warm = max(cfg.warmup_steps, 0)
    floor = cfg.min_lr / cfg.lr if cfg.lr > 0 else 0.0

    def warmup(step: int) -> float:
        return (step + 1) / warm if warm and step < warm else 1.0

    if cfg.scheduler == "none":
        if not warm:
            return None
        fn = warmup
    elif cfg.scheduler == "cosine":
        def fn(step: int) -> float:
            if warm and step < warm:
                return warmup(step)
            t = min(1.0, (step - warm) / max(1, total_steps - warm))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    elif cfg.scheduler == "step":
        def fn(step: int) -> float:  # step_size counts optimizer steps
            return warmup(step) * cfg.gamma ** (step // max(1, cfg.step_size))
    elif cfg.scheduler == "inverse_sqrt":
        def fn(step: int) -> float:  # fairseq's inverse_sqrt: linear warm-up, then 1/sqrt(step)
            w = max(warm, 1)
            return (step + 1) / w if step < warm else math.sqrt(w / (step + 1))
    else:  # plateau
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=cfg.gamma,
                                                          patience=cfg.step_size, min_lr=cfg.min_lr)
    return torch.optim.lr_scheduler.LambdaLR(opt, fn)

"""Optimizer and learning-rate schedule from an OptimConfig."""

from __future__ import annotations

import math

import torch

from momentloc.config.schema import OptimConfig


def fast_kernel_options(params: list[torch.Tensor]) -> dict[str, bool]:
    """``fused=True`` where PyTorch has a fused kernel for every parameter (one device type
    among the supported ones, floating point, dense); else ``foreach=True`` on CUDA; else the
    default. The fused and per-parameter updates agree within float round-off."""
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    if not params:
        return {}
    kinds = {p.device.type for p in params}
    dense_float = all(p.is_floating_point() and not p.is_sparse for p in params)
    if dense_float and len(kinds) == 1 and kinds <= set(_get_fused_kernels_supported_devices()):
        return {"fused": True}
    if dense_float and kinds == {"cuda"}:
        return {"foreach": True}
    return {}


class FairseqAdam(torch.optim.Optimizer):
    """fairseq's Adam (``optim/adam.py``; the CSMGAN release trains with it).

    At update t of a parameter p with gradient g: ``m = b1 m + (1 - b1) g``, ``v = b2 v +
    (1 - b2) g^2``, ``p <- p - lr wd p``, then ``p <- p - lr sqrt(1 - b2^t) / (1 - b1^t) m /
    (sqrt(v) + eps)``. torch's Adam/AdamW divide by ``sqrt(v / (1 - b2^t)) + eps`` instead:
    the two differ while ``sqrt(v)`` is not large against ``eps`` (early updates, small
    gradients). Dense gradients only.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            (b1, b2), lr, eps, wd = group["betas"], group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:   # per parameter tensor, as every torch optimizer
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("FairseqAdam does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = v.sqrt().add_(eps)
                step_size = lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                if wd:
                    p.add_(p, alpha=-wd * lr)
                p.addcdiv_(m, denom, value=-step_size)
        return loss


def build_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimizer of ``cfg`` over the trainable ``params`` (placed on their device first:
    the fused kernels are chosen from it)."""
    params = [p for p in params if p.requires_grad]
    if cfg.name == "fairseq_adam":
        return FairseqAdam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                           weight_decay=cfg.weight_decay)
    fast = fast_kernel_options(params)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                weight_decay=cfg.weight_decay, **fast)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps,
                                 weight_decay=cfg.weight_decay, **fast)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           **fast)


def build_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, total_steps: int
                    ) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A per-step schedule (``plateau`` is stepped per evaluation instead, with the value
    ``cfg.plateau_on`` names, in ``cfg.plateau_mode``)."""
    warm = max(cfg.warmup_steps, 0)
    floor = cfg.min_lr / cfg.lr if cfg.lr > 0 else 0.0
    init = cfg.warmup_init_lr  # None: ramp from lr / warmup_steps; else fairseq's rule

    def warmup(step: int) -> float:
        if not warm or step >= warm:
            return 1.0
        if init is None:
            return (step + 1) / warm
        return (init + step * (cfg.lr - init) / warm) / cfg.lr

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
            if step < warm:
                return warmup(step)
            # fairseq counts the updates already done: lr sqrt(w / k) from update k = w
            return math.sqrt(w / (step + 1 if init is None else max(step, 1)))
    else:  # plateau
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=cfg.plateau_mode, factor=cfg.gamma,
                                                          patience=cfg.step_size, min_lr=cfg.min_lr)
    return torch.optim.lr_scheduler.LambdaLR(opt, fn)

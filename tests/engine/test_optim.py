"""Optimizers and schedules of engine/optim.py: fairseq's warm-up rule and fairseq's Adam
against references written from their formulas."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from momentloc.config import load_config
from momentloc.config.schema import OptimConfig
from momentloc.engine.optim import FairseqAdam, build_optimizer, build_scheduler


def lrs_of(cfg: OptimConfig, updates: int) -> list[float]:
    """The learning rate each of the first ``updates`` updates runs with."""
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(2))], cfg)
    sched = build_scheduler(opt, cfg, total_steps=updates)
    out = []
    for _ in range(updates):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def fairseq_inverse_sqrt(k: int, lr: float, init: float, warmup: int) -> float:
    """fairseq's ``inverse_sqrt`` after k updates: ``init + k (lr - init) / warmup`` during the
    warm-up, then ``lr sqrt(warmup) / sqrt(k)``."""
    if k < warmup:
        return init + k * (lr - init) / warmup
    return lr * math.sqrt(warmup) * k ** -0.5


@pytest.mark.parametrize("lr, init", [(8e-4, 1e-6), (4e-4, 1e-7), (1e-3, 0.0)])
def test_inverse_sqrt_with_warmup_init_lr_is_fairseqs_rule(lr, init):
    w = 300
    cfg = OptimConfig(name="fairseq_adam", lr=lr, scheduler="inverse_sqrt", warmup_steps=w,
                      warmup_init_lr=init)
    got = lrs_of(cfg, w + 40)
    for k in (0, 1, 2, 150, w - 1, w, w + 1, w + 39):
        assert got[k] == pytest.approx(fairseq_inverse_sqrt(k, lr, init, w), rel=1e-12), k
    assert got[0] == pytest.approx(init, abs=1e-18) and got[w] == pytest.approx(lr, rel=1e-12)


def test_warmup_without_init_lr_keeps_the_ramp_from_lr_over_warmup():
    cfg = OptimConfig(lr=1e-3, scheduler="inverse_sqrt", warmup_steps=4)
    got = lrs_of(cfg, 6)
    np.testing.assert_allclose(got, [1e-3 * x for x in (0.25, 0.5, 0.75, 1.0, math.sqrt(4 / 5),
                                                        math.sqrt(4 / 6))], rtol=1e-12)
    # the rule also starts other schedules' warm-up
    cos = lrs_of(OptimConfig(lr=1e-3, scheduler="cosine", warmup_steps=4, warmup_init_lr=1e-5), 3)
    np.testing.assert_allclose(cos, [1e-5, 1e-5 + (1e-3 - 1e-5) / 4, 1e-5 + (1e-3 - 1e-5) / 2],
                               rtol=1e-12)


def reference_fairseq_adam(p0, grads, lrs, betas, eps, wd):
    """fairseq's Adam, written from its formula in float64."""
    b1, b2 = betas
    p, m, v = p0.astype(np.float64), np.zeros_like(p0, np.float64), np.zeros_like(p0, np.float64)
    for t, (g, lr) in enumerate(zip(grads, lrs), 1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * wd * p
        p = p - lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps)
    return p


@pytest.mark.parametrize("scale", [1e-8, 1e-3])
def test_fairseq_adam_equals_the_formula(scale):
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(3, 4)).astype(np.float32)
    grads = [(rng.normal(size=(3, 4)) * scale).astype(np.float32) for _ in range(6)]
    lrs = [1e-6, 3e-4, 8e-4, 8e-4, 5e-4, 5e-4]
    betas, eps, wd = (0.9, 0.999), 1e-8, 1e-2
    param = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    cfg = OptimConfig(name="fairseq_adam", lr=lrs[0], betas=betas, eps=eps, weight_decay=wd)
    opt = build_optimizer([param], cfg)
    assert isinstance(opt, FairseqAdam)
    for g, lr in zip(grads, lrs):
        opt.param_groups[0]["lr"] = lr
        param.grad = torch.from_numpy(g)
        opt.step()
    ref = reference_fairseq_adam(p0, grads, lrs, betas, eps, wd)
    np.testing.assert_allclose(param.detach().numpy(), ref, rtol=1e-6, atol=1e-9)
    # torch's AdamW adds eps after the bias correction: with small gradients it moves the
    # weights differently (so the check above would catch the other placement)
    other = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    adamw = torch.optim.AdamW([other], lr=lrs[0], betas=betas, eps=eps, weight_decay=wd)
    for g, lr in zip(grads, lrs):
        adamw.param_groups[0]["lr"] = lr
        other.grad = torch.from_numpy(g)
        adamw.step()
    moved_ref, moved_torch = ref - p0, other.detach().numpy().astype(np.float64) - p0
    if scale < 1e-6:
        assert np.abs(moved_torch - moved_ref).max() > 0.1 * np.abs(moved_ref).max()
    else:  # large gradients: the placements agree
        np.testing.assert_allclose(moved_torch, moved_ref, rtol=1e-2, atol=1e-9)


def test_fairseq_adam_state_round_trip_and_sparse_gradients():
    torch.manual_seed(0)
    grads = [torch.randn(5) for _ in range(4)]

    def run(split: bool) -> torch.Tensor:
        p = torch.nn.Parameter(torch.ones(5))
        opt = FairseqAdam([p], lr=1e-2, weight_decay=1e-3)
        for i, g in enumerate(grads):
            if split and i == 2:  # through a checkpoint, loaded as the trainer loads it
                buf = io.BytesIO()
                torch.save(opt.state_dict(), buf)
                buf.seek(0)
                opt = FairseqAdam([p], lr=1e-2, weight_decay=1e-3)
                opt.load_state_dict(torch.load(buf, weights_only=True))
            p.grad = g.clone()
            opt.step()
        return p.detach()

    assert torch.equal(run(False), run(True))
    emb = torch.nn.Embedding(4, 2, sparse=True)
    emb(torch.tensor([1])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        FairseqAdam(emb.parameters()).step()


def test_release_presets_select_fairseqs_solver():
    for preset, init in (("release_activitynet", 1e-6), ("release_tacos", 1e-7)):
        o = load_config("csmgan", preset).optim
        assert (o.name, o.scheduler, o.warmup_steps, o.warmup_init_lr, o.eps) == (
            "fairseq_adam", "inverse_sqrt", 300, init, 1e-8)



def plateau_lrs(cfg: OptimConfig, values: list[float]) -> list[float]:
    """The lr after each ``scheduler.step(value)`` of the ``plateau`` schedule of ``cfg``."""
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(2))], cfg)
    sched = build_scheduler(opt, cfg, total_steps=0)
    out = []
    for v in values:
        sched.step(v)
        out.append(opt.param_groups[0]["lr"])
    return out


def test_release_plateau_decays_when_the_validation_loss_sets_no_new_maximum():
    cfg = OptimConfig(lr=1.0, scheduler="plateau", plateau_on="neg_val_loss", plateau_mode="min",
                      gamma=0.5, step_size=2)
    losses = [1.0, 2.0, 1.5, 1.5, 1.9, 3.0, 2.0, 2.0, 2.0, 2.0]
    # by hand: 2.0 and 3.0 are new maxima; the third validation after one without a new
    # maximum (patience 2) halves the lr and restarts the count
    assert plateau_lrs(cfg, [-x for x in losses]) == [1, 1, 1, 1, .5, .5, .5, .5, .25, .25]
    # the quirk: a steadily falling loss decays the lr; watching the loss itself (mode min)
    # never does
    falling = [5.0, 4.0, 3.0, 2.0, 1.0]
    assert plateau_lrs(cfg, [-x for x in falling]) == [1, 1, 1, .5, .5]
    cfg_loss = OptimConfig(lr=1.0, scheduler="plateau", plateau_on="val_loss", plateau_mode="min",
                           gamma=0.5, step_size=2)
    assert plateau_lrs(cfg_loss, falling) == [1.0] * 5


@pytest.mark.parametrize("preset", ["activitynet", "tacos"])
def test_release_presets_reproduce_the_release_plateau(preset):
    o = load_config("tan2d", preset).optim
    assert (o.scheduler, o.plateau_on, o.plateau_mode, o.gamma, o.step_size, o.min_lr) == (
        "plateau", "neg_val_loss", "min", 0.8, 20, 0.0)
    assert load_config("lgn", preset).optim == o  # LGN trains with 2D-TAN's solver
    # the release's call: ReduceLROnPlateau(opt, factor=0.8, patience=20).step(-val_loss)
    rng = np.random.default_rng(0)
    losses = list(np.concatenate([rng.uniform(1, 2, 40), np.linspace(3, 0.5, 80)]))
    ref_opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=o.lr)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(ref_opt, factor=0.8, patience=20)
    expected = []
    for x in losses:
        ref.step(-x)
        expected.append(ref_opt.param_groups[0]["lr"])
    got = plateau_lrs(o, [-x for x in losses])
    assert got == expected and min(got) < o.lr  # the sequence does decay
    for m, p in (("tan2d", "charades"), ("tan2d", "charades_conv"), ("tan2d", "tacos_conv"),
                 ("lgn", "charades"), ("tan2d", "synthetic")):
        assert load_config(m, p).optim.scheduler == "none", p  # no validation in the release

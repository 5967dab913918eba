"""The CUDA paths: every model on the GPU in fp32 and under autocast, CPU/GPU agreement, and a
short engine run with AMP whose checkpoint reloads on the CPU. Skipped without CUDA; run with
``python -m pytest -m gpu`` on a machine with a GPU."""

from __future__ import annotations

import pytest
import torch

from momentloc.config import list_presets, load_config
from momentloc.engine.bench import random_batch
from momentloc.engine.runtime import autocast, needs_grad_scaler
from momentloc.engine.trainer import weighted_loss
from momentloc.models import create_model, list_models
from momentloc.models.base import ModelContext

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _context() -> ModelContext:
    g = torch.Generator().manual_seed(0)
    return ModelContext(video_dim=24, word_dim=16, num_clips=32, max_query_len=8, vocab_size=40,
                        word_vectors=torch.randn(40, 16, generator=g))


def _model(name: str, ctx: ModelContext):
    preset = "synthetic" if "synthetic" in list_presets(name) else None
    cfg = load_config(name, preset, [f"data.num_clips={ctx.num_clips}"])
    torch.manual_seed(0)
    return create_model(name, cfg.model, ctx), cfg


@pytest.fixture(params=list_models())
def name(request):
    return request.param


def test_cpu_and_gpu_agree_in_fp32(name):
    ctx = _context()
    model, cfg = _model(name, ctx)
    model.eval()
    batch = random_batch(ctx, 4, seed=1, pad_video=True)
    with torch.no_grad():
        ref = model.candidates(model(batch), batch)
        model_gpu = model.cuda()
        got = model_gpu.candidates(model_gpu(batch.to("cuda")), batch.to("cuda"))
    assert torch.equal(ref.valid, got.valid.cpu())
    v = ref.valid
    torch.testing.assert_close(got.scores.cpu()[v], ref.scores[v], atol=2e-4, rtol=1e-3)
    torch.testing.assert_close(got.spans.cpu()[v], ref.spans[v], atol=2e-3, rtol=1e-3)


def test_train_step_under_autocast(name):
    ctx = _context()
    model, cfg = _model(name, ctx)
    model.cuda().train()
    batch = random_batch(ctx, 4, seed=2, pad_video=True).to("cuda")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    device = torch.device("cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=needs_grad_scaler(device, True))
    for _ in range(2):
        with autocast(device, True):
            out = model(batch)
            loss = weighted_loss(model.loss(out, batch), cfg.model.loss_weights)
        assert torch.isfinite(loss), name
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    model.eval()
    with torch.no_grad(), autocast(device, True):
        cands = model.candidates(model(batch), batch)
    assert cands.valid.any(1).all()
    assert torch.isfinite(cands.scores[cands.valid]).all()


def test_engine_run_with_amp_reloads_on_cpu(synth_card, tmp_path):
    from momentloc.engine.inference import load_model
    from momentloc.engine.trainer import train

    card = synth_card("charades", "tiny")
    cfg = load_config("tan2d", "synthetic", [f"data.dataset={card}", "train.epochs=2",
                                             "train.device=cuda", "train.amp=true",
                                             "data.num_clips=32"])
    result = train(cfg, tmp_path / "run")
    assert 0.0 <= result.test_metrics["R1@0.5"] <= 1.0
    model = load_model(tmp_path / "run", device="cpu")[0]
    assert all(p.device.type == "cpu" for p in model.parameters())

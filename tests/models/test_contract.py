"""Every registered model meets the engine's contract (parametrized over list_models())."""

import pytest
import torch

from momentloc.config import list_presets, load_config
from momentloc.engine.bench import random_batch
from momentloc.engine.trainer import weighted_loss
from momentloc.models import create_model, list_models
from momentloc.models.base import ModelContext


def tiny_context(num_clips=16, max_query_len=6) -> ModelContext:
    return ModelContext(video_dim=12, word_dim=10, num_clips=num_clips, max_query_len=max_query_len,
                        vocab_size=30, word_vectors=torch.randn(30, 10))


def tiny_model(name: str, ctx: ModelContext):
    presets = list_presets(name)
    preset = "synthetic" if "synthetic" in presets else None
    cfg = load_config(name, preset, [f"data.num_clips={ctx.num_clips}"])
    return create_model(name, cfg.model, ctx), cfg


@pytest.fixture(params=list_models())
def name(request):
    return request.param


def test_forward_loss_grad_candidates(name):
    torch.manual_seed(0)
    ctx = tiny_context()
    model, cfg = tiny_model(name, ctx)
    batch = random_batch(ctx, 3, seed=1)
    out = model(batch)
    terms = model.loss(out, batch)
    assert terms and all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())
    loss = weighted_loss(terms, cfg.model.loss_weights)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    cands = model.candidates(out, batch)
    b, k, _ = cands.spans.shape
    assert b == 3 and cands.scores.shape == (3, k) and cands.valid.shape == (3, k)
    assert cands.valid.any(1).all()
    s, e = cands.spans[..., 0], cands.spans[..., 1]
    v = cands.valid
    assert (s[v] >= -1e-5).all() and (e[v] <= batch.durations[:, None].expand_as(e)[v] + 1e-4).all()
    assert (s[v] <= e[v] + 1e-6).all()


def test_padding_invariance(name):
    """Padded query words do not change a query's outputs."""
    torch.manual_seed(0)
    ctx = tiny_context()
    model, _ = tiny_model(name, ctx)
    model.eval()
    batch = random_batch(ctx, 2, seed=3)
    # second query: keep 3 words, fill the padding with garbage
    batch.query_mask[1] = torch.tensor([True] * 3 + [False] * (ctx.max_query_len - 3))
    batch.query_feats[1, 3:] = 0
    ref = model.candidates(model(batch), batch).scores[1]
    batch.query_feats[1, 3:] = 77.0
    batch.query_ids[1, 3:] = 5
    got = model.candidates(model(batch), batch).scores[1]
    assert torch.allclose(ref, got, atol=1e-5)


def test_batch_of_one_and_single_clip_video(name):
    ctx = tiny_context()
    model, _ = tiny_model(name, ctx)
    model.eval()
    batch = random_batch(ctx, 1, seed=4)
    batch.durations[:] = 1.0
    batch.spans[:] = torch.tensor([[0.0, 1.0]])
    with torch.no_grad():
        c = model.candidates(model(batch), batch)
    assert c.valid.any()

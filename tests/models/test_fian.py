"""FIAN: every sub-module on tiny inputs, masks and padding, the equations by hand, the
iterative wiring, every preset, and learning."""

import math

import pytest
import torch

from momentloc.config import list_presets, load_config
from momentloc.data.batch import Batch
from momentloc.errors import ConfigError
from momentloc.models import ModelContext, create_model
from momentloc.models.fian import (
    FIAN,
    CrossModalAttention,
    CrossModalEncoder,
    FIANConfig,
    LengthProjection,
    VideoEnhancedIntegration,
)
from momentloc.spans import temporal_iou
from planted_toy import make_planted, one_step, prior_recall1, train_steps
from toy_batches import check_loss_and_candidates, crop, padded_batch

DV, DW, T, LQ = 12, 10, 16, 6


def tiny_cfg(**kw) -> FIANConfig:
    base = dict(hidden_dim=16, num_heads=2, video_sa_heads=2, ffn_dim=32, dropout=0.0,
                encoder_dropout=0.0, window_sizes=(4, 8, 12), window_stride=0.25)
    base.update(kw)
    return FIANConfig(**base)


def tiny_model(**kw) -> FIAN:
    return FIAN(tiny_cfg(**kw), DV, DW, T, LQ)


def make_batch(b=2, t=T, lq=LQ, seed=0, real_t=(16, 10), real_q=(6, 4)) -> Batch:
    return padded_batch(b, t, lq, DV, DW, seed, real_t, real_q)


def pair(seed=0):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(2, 5, 8, generator=g), torch.randn(2, 3, 8, generator=g)
    am = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    bm = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    return a * am[..., None], b * bm[..., None], am, bm


# ---------------------------------------------------------------- attention (eqs. 4-6)

@pytest.mark.parametrize("mode", ["cga", "cma", "soft"])
def test_cross_modal_attention_shapes_and_masks(mode):
    torch.manual_seed(0)
    att = CrossModalAttention(8, 2, mode)
    a, b, am, bm = pair()
    out, w = att(a, b, am, bm)
    assert out.shape == (2, 5, 8) and w.shape == (2, 5, 3)
    assert torch.allclose(w.sum(-1), torch.ones(2, 5)) and w[1, :, 2].abs().sum() == 0
    garbage = b.clone()
    garbage[1, 2] = 40.0
    assert torch.allclose(att(a, garbage, am, bm)[0][1, :3], out[1, :3], atol=1e-5)


def test_soft_attention_by_hand():
    att = CrossModalAttention(8, 2, "soft")
    a, b, am, bm = pair()
    out, _ = att(a, b, am, bm)
    w = torch.softmax(a[1] @ b[1, :2].T / math.sqrt(8), -1)
    assert torch.allclose(out[1], w @ b[1, :2], atol=1e-6)


def test_cga_is_the_tied_information_gate_on_cma():
    """Eq. 6 with W^g = W^i: sigmoid(Z + b_g) * (Z + b_i), Z = A W_q + CMA(A, B) W_v."""
    torch.manual_seed(0)
    att = CrossModalAttention(8, 2, "cga")
    with torch.no_grad():
        att.b_g.normal_()
        att.b_i.normal_()
    a, b, am, bm = pair()
    out, _ = att(a, b, am, bm)
    cma, _ = att.cma(a, b, key_mask=bm, query_mask=am)
    z = a @ att.w_q.weight.T + cma @ att.w_v.weight.T
    assert torch.allclose(out, torch.sigmoid(z + att.b_g) * (z + att.b_i), atol=1e-6)
    untied = CrossModalAttention(8, 2, "cga", tied=False)
    assert untied.gate_q is not None and att.gate_q is None


def test_cma_has_projections_and_soft_has_none():
    assert sum(p.numel() for p in CrossModalAttention(8, 2, "soft").parameters()) == 0
    cma = {n for n, _ in CrossModalAttention(8, 2, "cma").named_parameters()}
    cga = {n for n, _ in CrossModalAttention(8, 2, "cga").named_parameters()}
    assert cma < cga and {"w_q.weight", "w_v.weight", "b_g", "b_i"} <= cga - cma


def test_encoder_block_residual_layernorm_and_masks():
    torch.manual_seed(0)
    enc = CrossModalEncoder(8, 2, 16, "cga", dropout=0.0)
    a, b, am, bm = pair()
    out, _ = enc(a, b, am, bm)
    assert out.shape == (2, 5, 8) and out[1, 3:].abs().sum() == 0
    x, _ = enc.attn(a, b, am, bm)
    h = enc.norm1(a + x)
    assert torch.allclose(out[am], enc.norm2(h + enc.ffn(h))[am], atol=1e-5)


# ---------------------------------------------------------------- integration (eqs. 11-14)

def test_length_projection_by_hand_and_padding():
    torch.manual_seed(0)
    proj = LengthProjection(num_clips=7, max_query_len=4)
    q = torch.randn(2, 3, 5)
    qm = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    out = proj(q, qm, num_steps=6)
    w, bias = proj.linear.weight, proj.linear.bias
    assert out.shape == (2, 6, 5)
    assert torch.allclose(out[0], w[:6, :3] @ q[0] + bias[:6, None], atol=1e-6)
    assert torch.allclose(out[1], w[:6, :2] @ q[1, :2] + bias[:6, None], atol=1e-6)
    padded = torch.cat([q, torch.full((2, 1, 5), 9.0)], 1)       # a longer padded batch
    out2 = proj(padded, torch.cat([qm, torch.zeros(2, 1, dtype=torch.bool)], 1), num_steps=6)
    assert torch.allclose(out2, out, atol=1e-6)


def test_length_projection_refuses_longer_inputs():
    proj = LengthProjection(num_clips=7, max_query_len=4)
    with pytest.raises(ValueError, match="7 clips and 4 words"):
        proj(torch.randn(1, 5, 3), torch.ones(1, 5, dtype=torch.bool), num_steps=6)
    with pytest.raises(ValueError, match="data.num_clips"):
        proj(torch.randn(1, 2, 3), torch.ones(1, 2, dtype=torch.bool), num_steps=8)


def test_video_enhanced_integration_by_hand():
    torch.manual_seed(0)
    integ = VideoEnhancedIntegration(4, branches=2, num_clips=5, max_query_len=3)
    v1, v2 = torch.randn(1, 5, 4), torch.randn(1, 5, 4)
    q1, q2 = torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    vm, qm = torch.ones(1, 5, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool)
    m = integ([v1, v2], [q1, q2], vm, qm)
    q_hat = torch.cat([integ.proj[0](q1, qm, 5), integ.proj[1](q2, qm, 5)], -1)
    r = torch.sigmoid(q_hat @ integ.filter.weight.T + integ.filter.bias)
    expected = torch.nn.functional.layer_norm(torch.cat([v1, v2], -1) + r * q_hat, (8,),
                                              integ.norm.weight, integ.norm.bias)
    assert m.shape == (1, 5, 8) and torch.allclose(m, expected, atol=1e-5)


# ---------------------------------------------------------------- iterative wiring (eqs. 9-10)

def test_iterative_branches_feed_each_step_the_previous_output():
    """Eq. 9: V1 attends to Q1 (not Q); eq. 10: Q2 attends to V2 (spec A13)."""
    torch.manual_seed(0)
    model = tiny_model().eval()
    seen = {}

    def keep(name):
        def hook(module, args, output):
            seen[name] = (args, output[0])
        return hook

    for name, enc in model.encoders.items():
        enc.register_forward_hook(keep(name))
    model(make_batch())
    assert set(seen) == {"q1", "v1", "v2", "q2"}
    assert torch.equal(seen["v1"][0][1], seen["q1"][1])            # Enc(V, Q1)
    assert torch.equal(seen["q2"][0][1], seen["v2"][1])            # Enc(Q, V2)
    assert torch.equal(seen["q1"][0][1], seen["v2"][0][0])         # both start from V


@pytest.mark.parametrize("branches, steps", [("both", {"q1", "v1", "v2", "q2"}),
                                             ("qv_iter", {"q1", "v1"}),
                                             ("vq_iter", {"v2", "q2"}),
                                             ("vq_single", {"v2"})])
def test_branches_build_only_their_encoders(branches, steps):
    assert set(tiny_model(branches=branches).encoders) == steps


def test_shared_branch_encoders():
    model = tiny_model(share_branch_encoders=True)
    assert model.encoders["q1"] is model.encoders["q2"]
    assert model.encoders["v1"] is model.encoders["v2"]
    n_shared = sum(p.numel() for p in model.parameters())
    assert n_shared < sum(p.numel() for p in tiny_model().parameters())


# ---------------------------------------------------------------- the model and its variants

VARIANTS = {
    "full": {}, "soft": dict(branches="vq_single", attn="soft"),
    "cma": dict(branches="vq_single", attn="cma"), "vq": dict(branches="vq_single"),
    "vqma": dict(branches="vq_iter"), "qvma": dict(branches="qv_iter"),
    "concat": dict(integration="concat"), "matrix": dict(integration="matrix"),
    "tgn": dict(localizer="tgn"), "cmin": dict(localizer="cmin"),
    "stride_1": dict(window_stride_abs=1), "attention_align": dict(integration_align="attention"),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_loss_gradients_and_candidates(variant):
    torch.manual_seed(0)
    model = tiny_model(**VARIANTS[variant])
    b = make_batch()
    out = model(b)
    k = model.head.layout(T).num_anchors
    assert out["logits"].shape == (2, k)
    assert out["cross_attention"].shape == (2, T, LQ)
    if variant != "tgn":
        assert out["offsets"].shape == (2, k, 2)
    check_loss_and_candidates(model, out, b, {"align", "boundary"})


def test_window_counts_follow_the_strides():
    assert tiny_model().head.layout(T).num_anchors == 13 + 5 + 2          # strides 1, 2, 3
    assert tiny_model(window_stride_abs=1).head.layout(T).num_anchors == 13 + 9 + 5
    tacos = load_config("fian", "tacos").model
    assert FIAN(tacos, DV, DW, 200, 20).head.layout(200).num_anchors == 193 + 93 + 43 + 18


@pytest.mark.parametrize("variant", ["full", "cmin", "vq"])
def test_padding_invariance(variant):
    """A sample padded inside a batch scores its windows as it does alone and unpadded."""
    torch.manual_seed(0)
    model = tiny_model(**VARIANTS[variant]).eval()
    b = make_batch(real_t=(16, 11), real_q=(6, 3))
    b.video_feats[1, 11:] = 9.0
    b.query_feats[1, 3:] = -9.0
    with torch.no_grad():
        full, alone = model(b), model(crop(b, 1))
    bounds_full = model.head.layout(T).bounds
    bounds_alone = model.head.layout(11).bounds
    idx = [int(((bounds_full - w).abs().sum(1) == 0).nonzero()) for w in bounds_alone]
    assert torch.allclose(full["logits"][1, idx], alone["logits"][0], atol=1e-5)
    assert torch.allclose(full["offsets"][1, idx], alone["offsets"][0], atol=1e-5)


def test_video_shorter_than_the_largest_window():
    torch.manual_seed(0)
    model = tiny_model()                                  # windows 4, 8, 12
    b = make_batch(real_t=(10, 6))
    b = Batch(b.video_feats[:, :10], b.video_mask[:, :10], b.query_feats, b.query_ids,
              b.query_mask, b.spans, b.durations, b.meta)
    out = model(b)
    t = model.targets(b)
    assert out["logits"].shape[1] == 7 + 2              # size 12 does not fit 10 steps
    assert t["legal"][1].sum() == 3                     # 6 real steps: size-4 starts 0, 1, 2
    assert all(torch.isfinite(v) for v in model.loss(out, b).values())
    assert model.candidates(out, b).valid.any(1).all()


def test_loss_uses_the_balanced_alignment_and_per_video_boundary():
    torch.manual_seed(0)
    model = tiny_model(tau=0.3)
    b = make_batch()
    out = model(b)
    t = model.targets(b)
    assert torch.equal(t["positive"], t["legal"] & (t["iou"] > 0.3)) and t["positive"].any()
    from momentloc.losses.alignment import balanced_alignment_loss, offset_loss
    terms = model.loss(out, b)
    assert torch.allclose(terms["align"], balanced_alignment_loss(out["logits"], t["iou"],
                                                                  t["legal"], t["positive"]))
    assert torch.allclose(terms["boundary"], offset_loss(out["offsets"], t["offsets"],
                                                         t["positive"], per_video=True))


def test_config_validation():
    with pytest.raises(ConfigError, match="branches"):
        load_config("fian", "synthetic", ["model.integration=concat", "model.branches=vq_iter"])
    with pytest.raises(ConfigError, match="divisible"):
        load_config("fian", "synthetic", ["model.num_heads=5"])
    with pytest.raises(ConfigError, match="tau"):
        load_config("fian", "synthetic", ["model.tau=0"])


def test_presets_encode_the_paper_settings():
    anet, tacos, cha = (load_config("fian", p) for p in ("activitynet", "tacos", "charades"))
    assert anet.model.strides == (4, 8, 16, 24, 32, 40, 48)
    assert tacos.model.strides == (1, 2, 4, 8) and cha.model.strides == (2, 3, 4, 5)
    assert (anet.model.num_heads, tacos.model.num_heads, cha.model.num_heads) == (8, 8, 4)
    assert anet.model.loss_weights == {"boundary": 0.001}
    assert cha.model.loss_weights == {"boundary": 0.005}
    assert (anet.optim.lr, tacos.optim.lr, cha.optim.lr) == (8e-4, 4e-4, 4e-4)
    assert (anet.train.batch_size, cha.data.num_clips, anet.model.tau) == (128, 64, 0.55)
    strides = {p: load_config("fian", f"ablations/{p}").model.strides
               for p in ("stride_1", "stride_k8", "stride_k4", "stride_k2")}
    assert strides == {"stride_1": (1, 1, 1, 1), "stride_k8": (1, 2, 4, 8),
                       "stride_k4": (2, 4, 8, 16), "stride_k2": (4, 8, 16, 32)}


@pytest.mark.parametrize("preset", list_presets("fian"))
def test_every_preset_builds_and_takes_a_training_step(preset):
    cfg = load_config("fian", preset, ["model.hidden_dim=16", "model.num_heads=2",
                                       "model.video_sa_heads=2", "model.ffn_dim=16",
                                       "model.dropout=0.0", "model.encoder_dropout=0.0"])
    t = min(cfg.data.num_clips, max(cfg.model.window_sizes))   # every window size fits once
    ctx = ModelContext(video_dim=DV, word_dim=DW, num_clips=t, max_query_len=LQ)
    model = create_model("fian", cfg.model, ctx)
    b = make_batch(t=t, real_t=(t, t - 3))
    terms, stuck = one_step(model, b, cfg.model.loss_weights)
    assert set(cfg.model.loss_weights) <= set(terms)
    assert not stuck


# ---------------------------------------------------------------- learning

def top1_recall(model, batch: Batch, thresh: float = 0.5) -> float:
    """R@1 IoU>=thresh of the best-scored valid candidate."""
    model.eval()
    with torch.no_grad():
        c = model.candidates(model(batch), batch)
    model.train()
    best = c.scores.masked_fill(~c.valid, -1.0).argmax(1)
    top = c.spans[torch.arange(len(batch)), best]
    return float((temporal_iou(top, batch.spans) >= thresh).float().mean())


def test_learns_planted_signal():
    """Trains on the planted toy set and must clearly beat the prior on R1@0.5 (~10 s)."""
    train, test = make_planted(600, seed=0), make_planted(200, seed=1)
    torch.manual_seed(0)
    cfg = tiny_cfg(hidden_dim=32, num_heads=4, video_sa_heads=4, ffn_dim=64,
                   window_sizes=(2, 3, 4, 6, 8), window_stride=0.5, tau=0.5)
    model = FIAN(cfg, 16, 8, 16, 4)
    train_steps(model, train, steps=80, weights=cfg.loss_weights)
    prior = prior_recall1(train, test)
    got = top1_recall(model, test)
    assert got >= max(0.35, 2 * prior), (got, prior)

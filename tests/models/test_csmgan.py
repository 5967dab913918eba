"""CSMGAN: every sub-module on tiny inputs, masks and padding, the equations by hand, every
preset, and learning."""

import pytest
import torch

from momentloc.config import list_presets, load_config
from momentloc.data.batch import Batch
from momentloc.errors import ConfigError
from momentloc.models import ModelContext, create_model
from momentloc.models.csmgan import (
    CSMGAN,
    CSMGANConfig,
    HierarchicalSentenceEncoder,
    JointGraphLayer,
    MultiModalIntegration,
)
from momentloc.models.layers.position import sinusoidal_table
from momentloc.spans import temporal_iou
from planted_toy import make_planted, one_step, prior_recall1, train_steps
from toy_batches import check_loss_and_candidates, crop, padded_batch

DV, DW = 12, 10


def top1_recall(model, batch: Batch, thresh: float = 0.5) -> float:
    """R@1 IoU>=thresh of the best-scored valid candidate."""
    model.eval()
    with torch.no_grad():
        c = model.candidates(model(batch), batch)
    model.train()
    best = c.scores.masked_fill(~c.valid, -1.0).argmax(1)
    top = c.spans[torch.arange(len(batch)), best]
    return float((temporal_iou(top, batch.spans) >= thresh).float().mean())


def tiny_cfg(**kw) -> CSMGANConfig:
    base = dict(hidden_dim=16, video_sa_heads=2, dropout=0.0, anchor_kernels=(4, 8, 12),
                anchor_stride=0.5)
    base.update(kw)
    return CSMGANConfig(**base)


def make_batch(b=2, t=16, lq=6, seed=0, real_t=(16, 10), real_q=(6, 4)) -> Batch:
    return padded_batch(b, t, lq, DV, DW, seed, real_t, real_q)


# ---------------------------------------------------------------- sentence encoder (eqs. 1-3)

def test_hierarchical_encoder_shapes_and_padding():
    torch.manual_seed(0)
    enc = HierarchicalSentenceEncoder(DW, 16).eval()
    b = make_batch()
    out = enc(b.query_feats, b.query_mask)
    assert out.shape == (2, 6, 16)
    assert out[1, 4:].abs().sum() == 0
    garbage = b.query_feats.clone()
    garbage[1, 4:] = 50.0
    assert torch.allclose(enc(garbage, b.query_mask), out, atol=1e-6)


@pytest.mark.parametrize("dilation, reach", [(1, {5, 4, 3}), (2, {5, 3, 1})])
def test_phrase_level_sees_the_following_words(dilation, reach):
    """Eq. 1: position n covers words n..n+k-1 (n, n+2, n+4 when dilated), zero-padded at the
    end; eq. 2 max-pools over k, so word 5 reaches exactly these positions."""
    torch.manual_seed(0)
    enc = HierarchicalSentenceEncoder(DW, 16, dilation=dilation)
    words = torch.randn(1, 8, DW)
    mask = torch.ones(1, 8, dtype=torch.bool)
    before = enc.phrases(words, mask)
    words[0, 5] += 3.0
    changed = (enc.phrases(words, mask) != before).any(-1)[0]
    assert set(changed.nonzero().flatten().tolist()) == reach


def test_phrase_activation_tanh_bounds_and_none_does_not():
    torch.manual_seed(0)
    words = 10 * torch.randn(1, 5, DW)
    mask = torch.ones(1, 5, dtype=torch.bool)
    assert HierarchicalSentenceEncoder(DW, 16).phrases(words, mask).abs().max() <= 1
    assert HierarchicalSentenceEncoder(DW, 16, activation="none").phrases(
        words, mask).abs().max() > 1


# ---------------------------------------------------------------- joint graph (eqs. 4-12)

def graph_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    video, query = torch.randn(2, 5, 8, generator=g), torch.randn(2, 3, 8, generator=g)
    vmask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    qmask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    return video * vmask[..., None], query * qmask[..., None], vmask, qmask


def test_graph_layer_shapes_and_masks():
    torch.manual_seed(0)
    layer = JointGraphLayer(8)
    video, query, vmask, qmask = graph_inputs()
    v, q, maps = layer(video, query, vmask, qmask)
    assert v.shape == video.shape and q.shape == query.shape
    assert v[1, 3:].abs().sum() == 0 and q[1, 2:].abs().sum() == 0
    cmg, smg = maps["cmg"], maps["smg"]
    assert cmg.shape == (2, 3, 5) and smg.shape == (2, 5, 5)
    assert torch.allclose(cmg.sum(1), torch.ones(2, 5))           # columns: over words
    assert cmg[1, 2].abs().sum() == 0                             # padded word gets no weight
    assert torch.allclose(smg.sum(-1), torch.ones(2, 5))
    assert smg[1, :, 3:].abs().sum() == 0                         # padded frames get none


def test_cross_and_self_graph_by_hand():
    """w/o EM, w/o MG, w/o CG: h_t' = h_t + sum_n softmax_n(<q_n, v_t>) q_n (eqs. 4-5, 7),
    then the SMG: h'' = h' + softmax_j((h'_t + PE_t).(h'_j + PE_j)) h'_j (eqs. 9-11)."""
    layer = JointGraphLayer(8, proj="none", gate=False, update="add")
    video, query, vmask, qmask = graph_inputs()
    v, q, _ = layer(video, query, vmask, qmask)
    pe = sinusoidal_table(5, 8)
    for b in range(2):
        nv, nq = int(vmask[b].sum()), int(qmask[b].sum())
        vb, qb = video[b, :nv], query[b, :nq]
        e = qb @ vb.T                                              # (nq, nv)
        v1 = vb + torch.softmax(e, 0).T @ qb
        q1 = qb + torch.softmax(e, 1) @ vb
        x = v1 + pe[:nv]
        v2 = v1 + torch.softmax(x @ x.T, 1) @ v1
        y = q1 + pe[:nq]
        q2 = q1 + torch.softmax(y @ y.T, 1) @ q1
        assert torch.allclose(v[b, :nv], v2, atol=1e-5)
        assert torch.allclose(q[b, :nq], q2, atol=1e-5)


def test_message_gate_matches_the_literal_equations():
    """Eqs. 5-7 literally: M[n,t] = A[n,t] h_n, g = sigmoid(M W_g + b_g), M_t = sum_n g M."""
    torch.manual_seed(0)
    layer = JointGraphLayer(8, proj="none", gate=True, use_smg=False, update="add")
    video, query, vmask, qmask = graph_inputs()
    v, q, _ = layer(video, query, vmask, qmask)
    e = query @ video.transpose(1, 2)
    a = torch.softmax(e.masked_fill(~qmask[:, :, None], -1e30), 1) * qmask[:, :, None]
    msg = a[..., None] * query[:, :, None, :]                      # (B, L, T, d)
    gate = torch.sigmoid(msg @ layer.gate_v.weight.T + layer.gate_v.bias)
    expected = video + (gate * msg).sum(1)
    assert torch.allclose(v[vmask], expected[vmask], atol=1e-5)
    a_q = torch.softmax(e.masked_fill(~vmask[:, None, :], -1e30), 2) * vmask[:, None, :]
    msg_q = a_q[..., None] * video[:, None, :, :]                  # (B, L, T, d)
    gate_q = torch.sigmoid(msg_q @ layer.gate_q.weight.T + layer.gate_q.bias)
    assert torch.allclose(q[qmask], (query + (gate_q * msg_q).sum(2))[qmask], atol=1e-5)


def test_projections_and_release_variant():
    both, video_only, none = (JointGraphLayer(8, proj=p) for p in ("both", "video", "none"))
    assert both.w_q is not None and both.w_v is not None and both.w_v.bias is None
    assert video_only.w_q is None and video_only.w_v is not None
    assert none.w_q is None and none.w_v is None


# ---------------------------------------------------------------- integration (eqs. 13-14)

@pytest.mark.parametrize("mode", ["cosine", "additive"])
def test_integration_shapes_and_masks(mode):
    torch.manual_seed(0)
    integ = MultiModalIntegration(8, mode)
    video, query, vmask, qmask = graph_inputs()
    fused, attn = integ(video, query, qmask)
    assert fused.shape == (2, 5, 16) and torch.equal(fused[..., :8], video)
    assert torch.allclose(attn.sum(-1), torch.ones(2, 5)) and attn[1, :, 2].abs().sum() == 0
    assert torch.allclose(fused[..., 8:], attn @ query, atol=1e-6)   # values are q_n, not q W_c


def test_cosine_integration_by_hand():
    integ = MultiModalIntegration(8, "cosine")
    video, query, vmask, qmask = graph_inputs()
    _, attn = integ(video[:1], query[:1], qmask[:1])
    k = query[0] @ integ.w_c.weight.T
    c = torch.stack([torch.stack([torch.cosine_similarity(video[0, t], k[n], 0)
                                  for n in range(3)]) for t in range(5)])
    assert torch.allclose(attn[0], torch.softmax(c, -1), atol=1e-6)


# ---------------------------------------------------------------- the model

def test_forward_loss_gradients_and_candidates():
    torch.manual_seed(0)
    model = CSMGAN(tiny_cfg(), DV, DW)
    b = make_batch()
    out = model(b)
    k = 16 * 3
    assert out["logits"].shape == (2, k) and out["offsets"].shape == (2, k, 2)
    assert out["cmg_attention"].shape == (2, 6, 16) and out["smg_attention"].shape == (2, 16, 16)
    assert set(model.attention_maps(out)) == {"cmg_attention", "smg_attention",
                                              "integration_attention"}
    check_loss_and_candidates(model, out, b, {"align", "boundary"})


def test_padding_invariance():
    """A sample padded inside a batch scores its anchors as it does alone and unpadded."""
    torch.manual_seed(0)
    model = CSMGAN(tiny_cfg(), DV, DW).eval()
    b = make_batch(real_t=(16, 11), real_q=(6, 3))
    b.video_feats[1, 11:] = 9.0                                   # garbage in the padding
    b.query_feats[1, 3:] = -9.0
    with torch.no_grad():
        full = model(b)
        alone = model(crop(b, 1))
    k = alone["logits"].shape[1]                                  # 11 steps x 3 widths
    assert torch.allclose(full["logits"][1, :k], alone["logits"][0], atol=1e-5)
    assert torch.allclose(full["offsets"][1, :k], alone["offsets"][0], atol=1e-5)


def test_video_shorter_than_the_largest_anchor():
    torch.manual_seed(0)
    model = CSMGAN(tiny_cfg(), DV, DW)
    b = make_batch(t=8, real_t=(8, 5))                            # widths 4, 8, 12
    out = model(b)
    t = model.targets(b)
    assert t["legal"][0].sum() > 0 and not t["legal"][:, 2::3].any()   # width 12 never fits
    terms = model.loss(out, b)
    assert all(torch.isfinite(v) for v in terms.values())
    assert model.candidates(out, b).valid.any(1).all()


def test_targets_release_rules():
    b = make_batch()
    paper = CSMGAN(tiny_cfg(tau=0.5), DV, DW).targets(b)
    release = CSMGAN(tiny_cfg(align_target="iou_over_max", positive_rule="relative", tau=0.8),
                     DV, DW).targets(b)
    best = paper["align"].amax(1, keepdim=True)
    assert torch.allclose(release["align"], paper["align"] / best)
    assert torch.allclose(release["align"].amax(1), torch.ones(2))
    assert torch.equal(paper["positive"], paper["legal"] & (paper["align"] > 0.5))
    assert torch.equal(release["positive"], paper["legal"] & (paper["align"] >= 0.8 * best))
    assert not (paper["align"][~paper["legal"]]).any()


def test_ablation_switches_remove_their_parts():
    def names(**kw):
        return {n for n, _ in CSMGAN(tiny_cfg(**kw), DV, DW).named_parameters()}
    full = names()
    assert any("query_encoder.convs" in n for n in full)
    assert not any("query_encoder.convs" in n for n in names(sent_encoder="bigru"))
    assert not any(n.startswith("graph.") for n in names(graph_layers=0))
    assert not any("w_q" in n or "w_v" in n for n in names(cmg_proj="none"))
    assert not any("gate_v" in n for n in names(cmg_gate=False))
    assert not any("smg_" in n for n in names(use_smg=False))
    assert not any("cells" in n for n in names(node_update="add"))
    assert sum(n.startswith("graph.2.") for n in names(graph_layers=3)) > 0


def test_config_validation():
    with pytest.raises(ConfigError, match="tau"):
        load_config("csmgan", "synthetic", ["model.tau=1.5"])
    with pytest.raises(ConfigError, match="graph_layers"):
        load_config("csmgan", "synthetic", ["model.graph_layers=-1"])
    with pytest.raises(ConfigError, match="no_such_switch"):
        load_config("csmgan", "synthetic", ["model.no_such_switch=1"])


def test_presets_encode_the_paper_settings():
    anet, tacos = load_config("csmgan", "activitynet"), load_config("csmgan", "tacos")
    assert anet.model.widths == (16, 32, 64, 96, 128, 160, 192)
    assert anet.model.tau == 0.45 and anet.model.loss_weights == {"boundary": 0.001}
    assert (anet.optim.lr, anet.train.batch_size, anet.data.num_clips) == (8e-4, 128, 200)
    assert tacos.model.widths == (2.75, 4.75, 8.75, 16.75)
    assert (tacos.optim.lr, tacos.train.batch_size) == (3e-4, 64)
    assert anet.eval.nms_mode == "per_metric"
    release = load_config("csmgan", "release_activitynet").model
    assert (release.graph_layers, release.cmg_gate, release.video_sa_window) == (1, False, 3)
    assert (release.sent_rnn, release.phrase_dilation, release.align_target) == (
        "lstm", 2, "iou_over_max")


@pytest.mark.parametrize("preset", list_presets("csmgan"))
def test_every_preset_builds_and_takes_a_training_step(preset):
    cfg = load_config("csmgan", preset, ["model.hidden_dim=16", "model.dropout=0.0"]
                      + ([] if "release" in preset else ["model.video_sa_heads=2"]))
    t = min(cfg.data.num_clips, 40)          # short videos keep the test fast; the smaller
    ctx = ModelContext(video_dim=DV, word_dim=DW, num_clips=t, max_query_len=6)
    model = create_model("csmgan", cfg.model, ctx)   # anchors still fit, the larger ones not
    b = make_batch(t=t, real_t=(t, t - 3))
    terms, stuck = one_step(model, b, cfg.model.loss_weights)
    assert set(cfg.model.loss_weights) <= set(terms)
    assert not stuck


# ---------------------------------------------------------------- learning

@pytest.mark.slow
def test_learns_planted_signal():
    """Trains on the planted toy set and must clearly beat the prior on R1@0.5 (~20 s)."""
    train, test = make_planted(600, seed=0), make_planted(200, seed=1)
    torch.manual_seed(0)
    cfg = tiny_cfg(hidden_dim=32, video_sa_layers=1, video_sa_heads=4,
                   anchor_kernels=(2, 4, 6, 8), anchor_stride=0.5, tau=0.5)
    model = CSMGAN(cfg, 16, 8)
    train_steps(model, train, steps=150, weights=cfg.loss_weights)
    prior = prior_recall1(train, test)
    got = top1_recall(model, test)
    assert got >= max(0.35, 2 * prior), (got, prior)

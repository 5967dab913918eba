"""CSMGAN: every sub-module on tiny inputs, masks and padding, the equations by hand, every
preset, and learning."""

import pytest
import torch
import torch.nn.functional as F

from momentloc.config import list_presets, load_config
from momentloc.data.batch import Batch
from momentloc.errors import ConfigError
from momentloc.metrics.protocol_cmin import release_frame_labels
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


# ---------------------------------------------------------------- release switches

@pytest.mark.parametrize("preset, video_dim, expected", [
    ("release_activitynet", 500, 15_637_657), ("release_tacos", 4096, 17_681_540)])
def test_release_presets_have_the_release_parameter_count(preset, video_dim, expected):
    """Full size (d 512, GloVe 300); the release's own count (no forward)."""
    cfg = load_config("csmgan", preset)
    assert cfg.data.feature_dim == video_dim
    ctx = ModelContext(video_dim=video_dim, word_dim=300, num_clips=200, max_query_len=20)
    model = create_model("csmgan", cfg.model, ctx)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_presets_select_the_evaluation_protocol():
    for preset in list_presets("csmgan"):
        want = "standard" if preset == "synthetic" else "cmin"
        assert load_config("csmgan", preset).eval.protocol == want, preset
    for preset in list_presets("fian"):
        want = "standard" if preset == "synthetic" else "cmin"
        assert load_config("fian", preset).eval.protocol == want, preset


def test_receiver_softmax_normalises_over_the_receiving_nodes():
    torch.manual_seed(0)
    video, query, vmask, qmask = graph_inputs()
    layer = JointGraphLayer(8, proj="video", gate=False, update="add", softmax="receiver")
    _, _, maps = layer(video, query, vmask, qmask)
    cmg, smg = maps["cmg"], maps["smg"]                  # (B, L, T) word -> frame weights
    assert torch.allclose(cmg[0].sum(1), torch.ones(3))          # each word over the frames
    assert torch.allclose(cmg[1, :2].sum(1), torch.ones(2))
    assert cmg[1, 2].abs().sum() == 0 and cmg[1, :, 3:].abs().sum() == 0
    assert torch.allclose(smg[0].sum(0), torch.ones(5))          # each sender over receivers
    assert torch.allclose(smg[1, :3, :3].sum(0), torch.ones(3))
    sender = JointGraphLayer(8, proj="video", gate=False, update="add")
    sender.load_state_dict(layer.state_dict())
    assert not torch.allclose(sender(video, query, vmask, qmask)[0], layer(video, query, vmask,
                                                                           qmask)[0])


def test_unmasked_words_let_padding_in():
    """mask_words: false (the release): padded word slots are graph nodes, so the output
    depends on the padding length; the default ignores it."""
    torch.manual_seed(0)
    b = make_batch()
    longer = Batch(b.video_feats, b.video_mask, torch.cat([b.query_feats, 0 * b.query_feats], 1),
                   torch.cat([b.query_ids, 0 * b.query_ids], 1),
                   torch.cat([b.query_mask, torch.zeros_like(b.query_mask)], 1), b.spans,
                   b.durations, b.meta)
    for mask_words, same in ((True, True), (False, False)):
        model = CSMGAN(tiny_cfg(mask_words=mask_words, sent_rnn_packed=mask_words), DV, DW).eval()
        with torch.no_grad():
            a, c = model(b)["logits"], model(longer)["logits"]
        assert torch.allclose(a, c, atol=1e-5) == same


def test_unmasked_words_are_padded_to_the_fixed_length():
    """The release pads every query to max_query_len and lets the padding in: a batch padded
    to its longest query gives what the same queries padded to the full length give."""
    torch.manual_seed(0)
    b = make_batch()                                            # 6 word slots
    full = Batch(b.video_feats, b.video_mask, F.pad(b.query_feats, (0, 0, 0, 4)),
                 F.pad(b.query_ids, (0, 4)), F.pad(b.query_mask, (0, 4)), b.spans, b.durations,
                 b.meta)
    model = CSMGAN(tiny_cfg(mask_words=False, sent_rnn_packed=False), DV, DW, max_words=10).eval()
    with torch.no_grad():
        assert torch.allclose(model(b)["logits"], model(full)["logits"], atol=1e-6)


def test_centred_phrase_convolutions_see_both_sides():
    """The release's bigram (k 2, dilation 2, padding 1) sees n-1 and n+1, its trigram n-2, n,
    n+2: word 5 reaches positions 3..7 only."""
    torch.manual_seed(0)
    enc = HierarchicalSentenceEncoder(DW, 16, dilation=2, activation="none", align="centered")
    words = torch.randn(1, 9, DW)
    mask = torch.ones(1, 9, dtype=torch.bool)
    before = enc.phrases(words, mask)
    words[0, 5] += 3.0
    changed = (enc.phrases(words, mask) != before).any(-1)[0]
    assert set(changed.nonzero().flatten().tolist()) == {3, 4, 5, 6, 7}


def test_legal_rule_at_the_end_of_the_video():
    """ActivityNet widths on 200 steps: the release keeps 719 anchors (an anchor may end at
    199.5), the default 712."""
    cfg = load_config("csmgan", "activitynet").model
    release = load_config("csmgan", "release_activitynet").model
    lengths = torch.tensor([200])
    for c, want in ((cfg, 712), (release, 719)):
        model = CSMGAN(c, 500, 300)
        layout = model.head.layout(200)
        assert int(model._legal(layout, lengths).sum()) == want


def test_release_loss_normalisation():
    """align_norm all = the legal mean x legal / all; boundary mean = half the summed terms."""
    torch.manual_seed(0)
    b = make_batch(t=16, real_t=(16, 16))
    paper = CSMGAN(tiny_cfg(), DV, DW)
    release = CSMGAN(tiny_cfg(align_norm="all", boundary_reduction="mean"), DV, DW)
    release.load_state_dict(paper.state_dict())
    out = paper(b)
    lp, lr = paper.loss(out, b), release.loss(out, b)
    legal = paper.targets(b)["legal"]
    assert torch.allclose(lr["align"], lp["align"] * legal.sum() / legal.numel())
    assert torch.allclose(lr["boundary"], lp["boundary"] / 2)


def test_orthogonal_gru_init():
    torch.manual_seed(0)
    model = CSMGAN(tiny_cfg(convgru_init="orthogonal", graph_layers=1), DV, DW)
    cell = model.graph[0].cells["cmg_video"]
    d = cell.candidate.out_channels
    for w in (cell.gates.weight[:d, :, 0], cell.gates.weight[d:, :, 0], cell.candidate.weight[..., 0]):
        assert torch.allclose(w @ w.T, torch.eye(d), atol=1e-5)
    assert cell.gates.bias.abs().sum() == 0 and cell.candidate.bias.abs().sum() == 0


def test_frame_targets_and_truncated_anchors():
    """target_grid frames: the ground truth becomes the integer steps covering it; offsets
    refine the anchors truncated toward zero."""
    b = make_batch(t=16, real_t=(16, 16))
    model = CSMGAN(tiny_cfg(target_grid="frames", anchor_rounding="trunc"), DV, DW)
    t = model.targets(b)
    layout, refined = model._layouts(b)
    assert torch.equal(refined.bounds, layout.bounds.trunc())
    gt = b.spans / b.durations[:, None] * 16
    start, end = gt[:, 0].floor(), gt[:, 1].ceil() - 1                   # inclusive frames
    want = torch.stack([start[:, None] - refined.bounds[None, :, 0],
                        end[:, None] - refined.bounds[None, :, 1]], -1)
    assert torch.allclose(t["offsets"], want)
    out = model(b)
    c = model.candidates(out, b)
    assert torch.allclose(c.steps, refined.bounds[None] + out["offsets"])


def test_self_graph_degeneracy_at_full_width():
    """At d = 512 and 200 frames, on random unit-norm features, the literal SMG puts ~0.999 of
    each node's weight on itself (the positional term dominates); scaled by 1/sqrt(d) it
    spreads over nearby nodes. Run with -s to see the figures quoted in the docs."""
    torch.manual_seed(0)
    d, t = 512, 200
    h = torch.nn.functional.normalize(torch.randn(4, t, d), dim=-1)
    mask = torch.ones(4, t, dtype=torch.bool)
    idx = torch.arange(t)
    near = ((idx[:, None] - idx[None]).abs() <= 5) & (idx[:, None] != idx[None])
    stats = {}
    for name, kw in (("literal", {}), ("w/o PE", {"pe_alpha": 0.0}),
                     ("scaled", {"smg_scaled": True}),
                     ("scaled w/o PE", {"smg_scaled": True, "pe_alpha": 0.0})):
        _, a = JointGraphLayer(d, **kw)._self_graph(h, mask)
        entropy = -(a * a.clamp_min(1e-30).log()).sum(-1)
        stats[name] = (float(a.diagonal(dim1=1, dim2=2).mean()), float((a * near).sum(-1).mean()),
                       float(entropy.exp().mean()))
        print(f"SMG {name:14s} self {stats[name][0]:.4f}  |i-j|<=5 {stats[name][1]:.4f}"
              f"  effective nodes {stats[name][2]:.1f}")
    assert stats["literal"][0] > 0.99
    assert stats["scaled"][0] < 0.5 and stats["scaled"][1] > 0.3
    assert stats["w/o PE"][2] > 150 and stats["scaled w/o PE"][2] > 150


def test_cmin_protocol_needs_the_step_grid():
    from momentloc.config.schema import EvalConfig
    from momentloc.engine.predictions import candidates_to_lines
    from momentloc.models.base import Candidates

    b = make_batch()
    c = Candidates(spans=torch.zeros(2, 3, 2), scores=torch.zeros(2, 3),
                   valid=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ConfigError, match="step grid"):
        candidates_to_lines(c, [{"query_id": "a", "video_id": "v"}] * 2, b.spans, b.durations,
                            EvalConfig(protocol="cmin"), lengths=b.video_mask.sum(1))


def test_cmin_protocol_lines_and_metrics():
    """The evaluation path with ``protocol: cmin``: lines carry integer picks per threshold and
    the ground truth frames; R@n is scored from them; a malformed field is a named error."""
    from momentloc.config.schema import EvalConfig
    from momentloc.engine.predictions import candidates_to_lines, metrics_from_lines
    from momentloc.errors import DataError

    torch.manual_seed(0)
    b = make_batch(t=16, real_t=(16, 10))
    model = CSMGAN(tiny_cfg(), DV, DW).eval()
    with torch.no_grad():
        c = model.candidates(model(b), b)
    ecfg = EvalConfig(protocol="cmin", iou_thresholds=(0.3, 0.5))
    meta = [{"query_id": str(i), "video_id": "v"} for i in range(2)]
    lines = candidates_to_lines(c, meta, b.spans, b.durations, ecfg, lengths=b.video_mask.sum(1))
    for line, n in zip(lines, (16, 10)):
        assert line["cmin"]["num_frames"] == n
        for picks in line["cmin"]["picks"].values():
            assert 1 <= len(picks) <= ecfg.top_k
            assert all(float(p[0]).is_integer() and p[0] >= 0 and p[1] <= n - 1 for p in picks)
    m = metrics_from_lines(lines, ecfg)
    assert set(m) >= {"R1@0.3", "R5@0.5", "mIoU"}
    lines[0]["cmin"]["picks"].pop("0.5")
    with pytest.raises(DataError, match="cmin"):
        metrics_from_lines(lines, ecfg)


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


@pytest.mark.parametrize("rows, steps, duration, span, want", [
    # raw frames 2 and 7 of index [0, 3, 6, 9]: first step >= 2, last step <= 7
    (10, 4, 10.0, (2.5, 7.9), (1, 2)),
    # raw end frame 3 equals the last step's number: the release maps it to the last step
    (10, 4, 10.0, (0.0, 3.5), (0, 3)),
    # raw frames 4 and 4: start step 2 after end step 1 -> the start moves to the end
    (10, 4, 10.0, (4.2, 4.8), (1, 1)),
    # the end at the duration is raw frame 10, clipped to 9
    (10, 4, 10.0, (6.0, 10.0), (2, 3)),
    # fewer rows than steps: index [0, 0, 1, 1, 2]
    (3, 5, 3.0, (1.0, 2.0), (2, 4)),
    # the fixture's first ActivityNet query (245 rows, 200 steps)
    (245, 200, 97.3, (10.63, 60.04), (22, 123)),
])
def test_release_frame_labels_by_hand(rows, steps, duration, span, want):
    """The release's ground-truth frames from the raw feature count (hand-computed); steps
    padded past the video's real ones change nothing."""
    at = torch.tensor([span], dtype=torch.float64) * (rows / duration)
    for grid in (steps, steps + 3):
        gt = release_frame_labels(at, torch.tensor([rows]), torch.tensor([steps]), grid)
        assert gt.dtype == torch.float64 and gt.tolist() == [[want[0], want[1] + 1]]


def test_raw_frame_targets_read_the_raw_count_from_the_batch():
    b = make_batch(t=16, real_t=(16, 16))
    model = CSMGAN(tiny_cfg(target_grid="raw_frames", align_target="iou_over_max"), DV, DW)
    at_steps = model.target_steps(b)              # no raw count: the features' own 16 rows
    for m, n in zip(b.meta, (16, 16)):
        m["num_features"] = n
    assert torch.equal(model.target_steps(b), at_steps)
    b.meta[0]["num_features"], b.meta[1]["num_features"] = 1000, 37
    rows = b.spans.double() * (torch.tensor([1000, 37]) / b.durations.double())[:, None]
    want = release_frame_labels(rows, torch.tensor([1000, 37]), torch.tensor([16, 16]), 16)
    assert torch.equal(model.target_steps(b), want) and not torch.equal(want, at_steps)
    # the moment's rows as the dataset computed them (float64) take precedence
    b.meta[1]["span_rows"] = [3.0, 20.5]
    want[1] = release_frame_labels(torch.tensor([[3.0, 20.5]], dtype=torch.float64),
                                   torch.tensor([37]), torch.tensor([16]), 16)[0]
    assert torch.equal(model.target_steps(b), want)
    t = model.targets(b)
    iou = model.head.layout(16, "cpu").to(torch.float64).iou_steps(want) * t["legal"]
    assert torch.allclose(t["align"], (iou / iou.amax(1, keepdim=True)).float())
    b.meta[1]["num_features"] = 0
    with pytest.raises(ValueError, match=r"num_features.*query '1'.*got 0"):
        model.targets(b)


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

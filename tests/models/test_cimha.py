"""CI-MHA: shapes, masks, decoding, switches, presets, padding invariance, learning."""

import math

import pytest
import torch

from momentloc.config import list_presets, load_config
from momentloc.errors import ConfigError
from momentloc.models import ModelContext, create_model
from momentloc.models.cimha import CIMHA, CIMHAConfig
from planted_toy import make_planted, one_step, prior_recall1, recall1, train_steps

TINY = dict(dim=16, query_dim=16, num_heads=4, video_heads=4, lstm_dim=8, mlp_hidden=16,
            dropout=0.0)
TINY_SET = [f"model.{k}={v}" for k, v in TINY.items() if k != "video_heads"]
CTX = ModelContext(video_dim=16, word_dim=8, num_clips=16, max_query_len=4)


def tiny(**kw) -> CIMHA:
    torch.manual_seed(0)
    return CIMHA(CIMHAConfig(**{**TINY, **kw}), CTX)


@pytest.fixture(scope="module")
def batch():
    return make_planted(3, seed=3, pad_videos=True)


@pytest.mark.parametrize("mode", ["literal_aligned", "swap", "pool_broadcast"])
@pytest.mark.parametrize("streams", ["both", "vq_only"])
def test_forward_shapes_and_masks(batch, mode, streams):
    model = tiny(ci_mode=mode, ci_streams=streams)
    out = model(batch)
    b, t = batch.video_mask.shape
    vm = batch.video_mask
    for key in ("start_logp", "end_logp"):
        p = out[key].exp()
        assert p.shape == (b, t)
        assert torch.allclose(p.sum(1), torch.ones(b), atol=1e-5)
        assert p[~vm].abs().max() < 1e-12
    assert out["seg_logits"].shape == (b, t)
    maps = model.attention_maps(out)
    assert ("attn_eq8" in maps) == (streams == "both")
    assert ("attn_align" in maps) == (mode == "literal_aligned")
    if mode == "swap":
        assert maps["attn_eq7"].shape == (b, 4, t, batch.query_mask.shape[1])
    else:
        assert maps["attn_eq7"].shape == (b, 4, batch.query_mask.shape[1], t)


@pytest.mark.parametrize("kw, keys", [
    ({}, {"start", "end", "seg"}),
    ({"use_seg": False}, {"start", "end"}),
    ({"ci_streams": "vq_only", "use_seg": False}, {"start", "end"}),
    ({"ci_q_source": "q", "query_dim": 24}, {"start", "end", "seg"}),
    ({"ci_residual": True, "pe_before_self_attn": True}, {"start", "end", "seg"}),
    ({"project_video_first": True, "ci_mode": "pool_broadcast"}, {"start", "end", "seg"}),
])
def test_loss_terms_and_gradients(batch, kw, keys):
    model = tiny(**kw)
    terms = model.loss(model(batch), batch)
    assert set(terms) == keys
    assert all(v.dim() == 0 and torch.isfinite(v) for v in terms.values())
    sum(terms.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_candidates_ranked_legal_and_best_is_joint_argmax(batch):
    model = tiny(num_candidates=7).eval()
    out = model(batch)
    cand = model.candidates(out, batch)
    assert cand.spans.shape == (3, 7, 2) and cand.scores.shape == cand.valid.shape == (3, 7)
    s, e = cand.spans[..., 0], cand.spans[..., 1]
    assert bool((s <= e).all()) and bool((s >= 0).all())
    assert bool((e <= batch.durations[:, None] + 1e-4).all())
    assert bool((cand.scores[:, :-1] >= cand.scores[:, 1:]).all())
    for b in range(3):
        m = int(batch.video_mask[b].sum())
        ps, pe = out["start_logp"][b, :m].exp(), out["end_logp"][b, :m].exp()
        joint = torch.triu(ps[:, None] * pe[None, :])
        assert math.isclose(cand.scores[b, 0].item(), joint.max().item(), rel_tol=1e-4)
        i, j = divmod(int(joint.argmax()), m)
        step = batch.durations[b].item() / m
        assert torch.allclose(cand.spans[b, 0], torch.tensor([i * step, (j + 1) * step]), atol=1e-4)


def test_infer_use_seg_changes_scores_not_legality(batch):
    model = tiny(infer_use_seg=True).eval()
    out = model(batch)
    cand = model.candidates(out, batch)
    assert bool((cand.spans[..., 0] <= cand.spans[..., 1]).all()) and bool(cand.valid.all())
    plain = CIMHA(CIMHAConfig(**TINY), CTX).eval()
    plain.load_state_dict(model.state_dict())
    assert not torch.allclose(plain.candidates(out, batch).scores, cand.scores)


def test_padding_invariance():
    """Extra padded clips and words change nothing on the real ones."""
    base = make_planted(3, num_clips=12, seed=5, pad_videos=True)
    ctx = ModelContext(video_dim=16, word_dim=8, num_clips=16, max_query_len=6)
    torch.manual_seed(0)
    model = CIMHA(CIMHAConfig(**TINY), ctx).eval()
    padded = make_planted(3, num_clips=12, seed=5, pad_videos=True)
    padded.video_feats = torch.cat([padded.video_feats, 9 * torch.ones(3, 4, 16)], 1)
    padded.video_mask = torch.cat([padded.video_mask, torch.zeros(3, 4, dtype=torch.bool)], 1)
    padded.query_feats = torch.cat([padded.query_feats, 9 * torch.ones(3, 2, 8)], 1)
    padded.query_mask = torch.cat([padded.query_mask, torch.zeros(3, 2, dtype=torch.bool)], 1)
    padded.query_ids = torch.cat([padded.query_ids, torch.zeros(3, 2, dtype=torch.long)], 1)
    with torch.no_grad():
        a, b = model(base), model(padded)
    for key in ("start_logp", "end_logp", "seg_logits"):
        real = base.video_mask
        assert torch.allclose(a[key][real], b[key][:, :12][real], atol=1e-5), key
    ca, cb = model.candidates(a, base), model.candidates(b, padded)
    assert torch.allclose(ca.spans, cb.spans, atol=1e-4) and torch.allclose(ca.scores, cb.scores)


def test_one_clip_video_and_batch_of_one():
    b = make_planted(1, num_clips=16, seed=2)
    b.video_mask[:, 1:] = False
    model = tiny().eval()
    cand = model.candidates(model(b), b)
    assert cand.valid[0].tolist() == [True] + [False] * 19
    assert torch.allclose(cand.spans[0, 0], torch.tensor([0.0, b.durations[0].item()]))


def test_config_errors():
    with pytest.raises(ConfigError, match="infer_use_seg"):
        load_config("cimha", "charades", ["model.use_seg=false", "model.infer_use_seg=true"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_config("cimha", "charades", ["model.heads=3"])
    cfg = load_config("cimha", "charades")
    with pytest.raises(ConfigError, match="video_heads"):
        create_model("cimha", cfg.model, ModelContext(500, 300, 128, 25))



@pytest.mark.parametrize("preset", list_presets("cimha"))
def test_presets_build_and_train_a_step(preset):
    cfg = load_config("cimha", preset, [*TINY_SET, "data.num_clips=32"])
    # narrow features keep the build cheap; 40 divides by the presets' 4, 5 and 8 heads
    ctx = ModelContext(video_dim=40, word_dim=8, num_clips=cfg.data.num_clips,
                       max_query_len=cfg.data.max_query_len)
    torch.manual_seed(0)
    model = create_model("cimha", cfg.model, ctx)
    batch = make_planted(2, num_clips=ctx.num_clips, video_dim=ctx.video_dim, seed=1,
                         pad_videos=cfg.data.resample == "pad")
    terms, stuck = one_step(model, batch, cfg.model.loss_weights)
    assert set(cfg.model.loss_weights) <= set(terms)
    assert not stuck


def test_paper_presets_match_paper_settings():
    ch, an = load_config("cimha", "charades"), load_config("cimha", "activitynet")
    for cfg in (ch, an):
        assert cfg.model.query_dim == 512 and cfg.data.max_query_len == 25
        assert cfg.data.num_clips == 128 and cfg.train.batch_size == 100
        assert cfg.optim.name == "adam" and cfg.optim.lr == 1e-4
    assert ch.data.feature_dim == 1024 and an.data.feature_dim == 500
    wo = load_config("cimha", "ablations/charades_wo_ms")
    mha = load_config("cimha", "ablations/charades_mha")
    assert not wo.model.use_seg and wo.model.ci_streams == "both"
    assert mha.model.ci_streams == "vq_only"


def test_learns_planted_signal():
    """Trains on the planted toy set and must clearly beat the prior on R1@0.5 (~8 s)."""
    train, test = make_planted(600, seed=0), make_planted(200, seed=1)
    torch.manual_seed(0)
    model = CIMHA(CIMHAConfig(dim=32, query_dim=32, num_heads=4, video_heads=4, lstm_dim=32,
                              mlp_hidden=32, dropout=0.0), CTX)
    train_steps(model, train, steps=200)
    prior = prior_recall1(train, test)
    got = recall1(model, test)
    assert got >= max(0.35, 2 * prior), (got, prior)

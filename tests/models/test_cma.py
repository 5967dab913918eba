"""CMA: shapes, masks, switches, one-moment candidates, presets, padding invariance, learning."""

import pytest
import torch

from momentloc.config import list_presets, load_config
from momentloc.errors import ConfigError
from momentloc.models import ModelContext, create_model
from momentloc.models.cma import CMA, CMAConfig
from planted_toy import make_planted, one_step, prior_recall1, recall1, train_steps

TINY = dict(dim=16, num_heads=4, ffn_dim=32, spe_hidden=8, dropout=0.0)
TINY_SET = [f"model.{k}={v}" for k, v in TINY.items()]
CTX = ModelContext(video_dim=16, word_dim=8, num_clips=16, max_query_len=4)


def tiny(ctx=CTX, **kw) -> CMA:
    torch.manual_seed(0)
    return CMA(CMAConfig(**{**TINY, **kw}), ctx)


@pytest.fixture(scope="module")
def batch():
    return make_planted(3, seed=3, pad_videos=True)


SWITCHES = [
    {},
    {"guides": "spe", "num_guides": 3},
    {"guides": "spe", "num_guides": 2, "fusion": "concat"},
    {"fusion": "add"},
    {"fusion": "concat"},
    {"use_decoder": False},
    {"use_encoder": False},
    {"pe": "none"},
    {"pe": "learned"},
    {"reg_loss": "smooth_l1", "alpha": 0.5, "beta": 1.0},
    {"enc_layers": 1, "dec_layers": 3, "query_layers": 1},
]


@pytest.mark.parametrize("kw", SWITCHES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
def test_forward_loss_and_gradients(batch, kw):
    model = tiny(**kw)
    out = model(batch)
    b, t = batch.video_mask.shape
    assert out["pred"].shape == (b, 2) and bool(((out["pred"] >= 0) & (out["pred"] <= 1)).all())
    a = out["temporal_attn"]
    assert a.shape == (b, t) and torch.allclose(a.sum(1), torch.ones(b), atol=1e-5)
    assert a[~batch.video_mask].abs().max() == 0
    spe = kw.get("guides") == "spe"
    assert ("phrase_attn" in out) == spe
    if spe:
        pa = out["phrase_attn"]
        assert pa.shape == (b, kw["num_guides"], batch.query_mask.shape[1])
        assert pa.masked_select(~batch.query_mask[:, None, :].expand_as(pa)).abs().max() == 0
    terms = model.loss(out, batch)
    assert set(terms) == ({"reg", "ta", "sd"} if spe else {"reg", "ta"})
    assert all(v.dim() == 0 and torch.isfinite(v) for v in terms.values())
    sum(terms.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_one_moment_candidates(batch):
    model = tiny().eval()
    out = model(batch)
    cand = model.candidates(out, batch)
    assert cand.spans.shape == (3, 1, 2) and cand.scores.shape == cand.valid.shape == (3, 1)
    assert bool(cand.valid.all())
    s, e = cand.spans[:, 0, 0], cand.spans[:, 0, 1]
    assert bool((0 <= s).all() and (s <= e).all() and (e <= batch.durations).all())
    lo = out["pred"].min(1).values * batch.durations
    assert torch.allclose(s, lo)


def test_loss_uses_normalized_targets(batch):
    """A perfect prediction has zero regression loss, whatever the duration."""
    model = tiny()
    out = model(batch)
    out["pred"] = batch.spans / batch.durations[:, None]
    assert model.loss(out, batch)["reg"].item() < 1e-10


def test_padding_invariance():
    """Extra padded clips and words change nothing (sinusoidal and learned PE alike)."""
    ctx = ModelContext(video_dim=16, word_dim=8, num_clips=16, max_query_len=6)
    base = make_planted(3, num_clips=12, seed=5, pad_videos=True)
    padded = make_planted(3, num_clips=12, seed=5, pad_videos=True)
    padded.video_feats = torch.cat([padded.video_feats, 9 * torch.ones(3, 4, 16)], 1)
    padded.video_mask = torch.cat([padded.video_mask, torch.zeros(3, 4, dtype=torch.bool)], 1)
    padded.query_feats = torch.cat([padded.query_feats, 9 * torch.ones(3, 2, 8)], 1)
    padded.query_mask = torch.cat([padded.query_mask, torch.zeros(3, 2, dtype=torch.bool)], 1)
    padded.query_ids = torch.cat([padded.query_ids, torch.zeros(3, 2, dtype=torch.long)], 1)
    for kw in ({}, {"pe": "learned", "guides": "spe"}):
        model = tiny(ctx, **kw).eval()
        with torch.no_grad():
            a, b = model(base), model(padded)
        assert torch.allclose(a["pred"], b["pred"], atol=1e-5)
        assert torch.allclose(a["temporal_attn"], b["temporal_attn"][:, :12], atol=1e-5)


def test_config_errors():
    with pytest.raises(ConfigError, match="use_encoder"):
        load_config("cma", "charades", ["model.use_encoder=false", "model.use_decoder=false"])
    with pytest.raises(ConfigError, match="alpha"):
        load_config("cma", "charades", ["model.alpha=0"])
    with pytest.raises(ConfigError, match="fusion"):
        load_config("cma", "charades", ["model.fusion=product"])


@pytest.mark.parametrize("preset", list_presets("cma"))
def test_presets_build_and_train_a_step(preset):
    cfg = load_config("cma", preset, [*TINY_SET, "data.num_clips=32"])
    ctx = ModelContext(video_dim=24, word_dim=8, num_clips=cfg.data.num_clips,
                       max_query_len=cfg.data.max_query_len)
    torch.manual_seed(0)
    model = create_model("cma", cfg.model, ctx)
    batch = make_planted(2, num_clips=ctx.num_clips, video_dim=24, max_words=ctx.max_query_len,
                         seed=1)
    terms, stuck = one_step(model, batch, cfg.model.loss_weights)
    assert set(cfg.model.loss_weights) <= set(terms)
    assert not stuck


def test_paper_presets_match_paper_settings():
    ch, an = load_config("cma", "charades"), load_config("cma", "activitynet")
    for cfg in (ch, an):
        assert cfg.model.num_heads == 4 and cfg.model.enc_layers == cfg.model.dec_layers == 2
        assert cfg.model.query_layers == 2 and cfg.model.dim == 512     # 2 x 256 BiLSTM
        assert cfg.data.num_clips == 128 and cfg.train.batch_size == 100
        assert cfg.optim.lr == 1e-3 and cfg.model.guides == "global"
    assert (ch.model.alpha, ch.model.beta, ch.data.max_query_len) == (10.0, 0.1, 10)
    assert (an.model.alpha, an.model.beta, an.data.max_query_len) == (2.0, 0.4, 25)
    plus = load_config("cma", "charades_plus")
    assert plus.model.guides == "spe" and plus.model.loss_weights["sd"] == 1.0
    table6 = {p: load_config("cma", f"ablations/{p}").model for p in
              ("loss_smooth_l1", "loss_a2_b01", "loss_a2_b02")}
    assert (table6["loss_a2_b01"].alpha, table6["loss_a2_b01"].beta) == (2.0, 0.1)
    assert (table6["loss_a2_b02"].alpha, table6["loss_a2_b02"].beta) == (2.0, 0.2)
    assert table6["loss_smooth_l1"].reg_loss == "smooth_l1"


def test_learns_planted_signal():
    """Trains on the planted toy set and must clearly beat the prior on R1@0.5 (~8 s)."""
    train, test = make_planted(600, seed=0), make_planted(200, seed=1)
    torch.manual_seed(0)
    model = CMA(CMAConfig(dim=32, num_heads=4, ffn_dim=64, dropout=0.0, enc_layers=1,
                          dec_layers=1), CTX)
    train_steps(model, train, steps=200)
    prior = prior_recall1(train, test)
    got = recall1(model, test)
    assert got >= max(0.35, 2 * prior), (got, prior)

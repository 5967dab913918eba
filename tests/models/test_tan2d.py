"""2D-TAN: shapes, loss, gradients, padding invariance, candidates, presets, learning."""

import dataclasses

import pytest
import torch

from momentloc.config import list_presets, load_config
from momentloc.data.batch import Batch
from momentloc.errors import ConfigError
from momentloc.heads.map2d import cell_spans, clip_layout, iou_map
from momentloc.models import ModelContext, create_model
from momentloc.models.tan2d import TAN2DConfig
from momentloc.spans import temporal_iou
from toy_batches import batch_of_lengths

TINY = TAN2DConfig(hidden_dim=16, num_clips=8, kernel_size=3, num_layers=2, lstm_layers=2,
                   lstm_hidden=16)
CTX = ModelContext(video_dim=12, word_dim=10, num_clips=16, max_query_len=6)


def make_batch(video_lens, query_lens, steps=16, words=6, video_dim=12, word_dim=10, seed=0):
    return batch_of_lengths(video_lens, query_lens, steps, words, video_dim, word_dim, seed)


def tiny_model(**changes):
    torch.manual_seed(0)
    return create_model("tan2d", dataclasses.replace(TINY, **changes), CTX).eval()


@pytest.mark.parametrize("proposal", ["pool", "conv"])
def test_forward_loss_gradients(proposal):
    model = tiny_model(proposal=proposal, scale_layers=(4, 2))
    batch = make_batch([16, 16, 16], [6, 3, 1])
    out = model(batch)
    assert out["logits"].shape == out["scores"].shape == out["map_mask"].shape == (3, 8, 8)
    # lengths 1-4 at every start, 6 and 8 at even starts
    assert int(out["map_mask"][0].sum()) == (8 + 7 + 6 + 5) + 2 + 1
    assert (out["scores"][~out["map_mask"]] == 0).all()
    losses = model.loss(out, batch)
    assert list(losses) == ["scaled_iou"] and torch.isfinite(losses["scaled_iou"])
    losses["scaled_iou"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_padding_invariance():
    model = tiny_model()
    batch = make_batch([16, 11], [6, 2])
    ref = model(batch)
    # garbage in padded steps and words changes nothing
    noisy = dataclasses.replace(
        batch, video_feats=batch.video_feats + 50.0 * ~batch.video_mask[..., None],
        query_feats=batch.query_feats + 50.0 * ~batch.query_mask[..., None])
    out = model(noisy)
    mask = ref["map_mask"]
    assert torch.allclose(out["scores"], ref["scores"], atol=1e-6)
    # more padded words change nothing either
    longer = dataclasses.replace(
        batch, query_feats=torch.cat([batch.query_feats, torch.randn(2, 3, 10)], dim=1),
        query_mask=torch.cat([batch.query_mask, torch.zeros(2, 3, dtype=torch.bool)], dim=1))
    assert torch.allclose(model(longer)["scores"], ref["scores"], atol=1e-6)
    # a sample alone scores as in the batch
    alone = Batch(**{f.name: getattr(batch, f.name)[1:] for f in dataclasses.fields(Batch)})
    assert torch.allclose(model(alone)["scores"][0][mask[1]], ref["scores"][1][mask[1]], atol=1e-5)
    # 11 real steps of 16 reach clip 5 of 8 (steps 10-11): no cell ends past it
    assert ref["clip_mask"][1].tolist() == [True] * 6 + [False] * 2
    assert not mask[1][:, 6:].any()
    assert torch.equal(mask[1][:6, :6], torch.ones(6, 6, dtype=torch.bool).triu())


def test_candidates_inside_video():
    model = tiny_model()
    batch = make_batch([16, 9, 16], [3, 6, 1])
    out = model(batch)
    cand = model.candidates(out, batch)
    assert cand.spans.shape == (3, 36, 2)
    assert torch.equal(cand.valid.sum(1), out["map_mask"].flatten(1).sum(1))
    s, e = cand.spans[..., 0], cand.spans[..., 1]
    assert (s >= 0).all() and (s <= e).all() and (e <= batch.durations[:, None] + 1e-4).all()
    assert (s[cand.valid] < e[cand.valid]).all()
    # a padded video's valid cells end at its real end at most; its last real clip ends there
    assert torch.isclose(e[1][cand.valid[1]].max(), batch.durations[1])
    idx = model.cells.flatten().nonzero().squeeze(1)                   # dense 8 x 8: a <= b
    probs = torch.sigmoid(out["logits"]).flatten(1)[:, idx]
    assert torch.allclose(cand.scores[cand.valid], probs[cand.valid])
    assert (cand.scores[~cand.valid] == 0).all()


def test_input_length_must_match_map():
    with pytest.raises(ConfigError, match="multiple"):
        create_model("tan2d", TINY, dataclasses.replace(CTX, num_clips=20))
    with pytest.raises(ConfigError, match="pool_kernel"):
        create_model("tan2d", dataclasses.replace(TINY, pool_kernel=4), CTX)
    with pytest.raises(ValueError, match="tmax"):
        TAN2DConfig(tmin=0.7, tmax=0.3)
    with pytest.raises(ConfigError):
        load_config("tan2d", None, overrides=["model.kernel_size=4"])


PAPER = {  # preset: (N, cells, K, L, tmin, tmax, NMS, IoU thresholds) of the release's YAMLs
    "charades": (16, 136, 5, 8, 0.5, 1.0, 0.45, (0.5, 0.7)),
    "charades_conv": (16, 136, 5, 8, 0.5, 1.0, 0.5, (0.5, 0.7)),
    "activitynet": (64, 1104, 9, 4, 0.5, 1.0, 0.5, (0.3, 0.5, 0.7)),
    "activitynet_conv": (64, 1104, 9, 4, 0.5, 1.0, 0.5, (0.3, 0.5, 0.7)),
    "tacos": (128, 2548, 5, 8, 0.3, 0.7, 0.4, (0.1, 0.3, 0.5, 0.7)),
    "tacos_conv": (128, 2548, 5, 8, 0.3, 0.7, 0.5, (0.1, 0.3, 0.5, 0.7)),
}


def test_presets_exist():
    assert set(PAPER) | {"synthetic"} <= set(list_presets("tan2d"))


@pytest.mark.parametrize("preset", sorted(PAPER) + ["synthetic"])
def test_preset_loads_and_builds_tiny(preset):
    cfg = load_config("tan2d", preset, overrides=[
        "model.hidden_dim=4", "model.lstm_hidden=4", "model.lstm_layers=1"])
    m, d = cfg.model, cfg.data
    if preset in PAPER:
        n, cells, k, layers, tmin, tmax, nms, ious = PAPER[preset]
        assert (m.num_clips, m.kernel_size, m.num_layers) == (n, k, layers)
        assert (m.tmin, m.tmax, cfg.eval.nms_thresh) == (tmin, tmax, nms)
        assert (cfg.eval.iou_thresholds, cfg.eval.recall_at) == (ious, (1, 5))
        assert (d.num_clips, d.resample, d.l2_normalize, cfg.optim.lr, cfg.train.batch_size,
                cfg.train.epochs, cfg.train.grad_clip, cfg.eval.protocol) == \
            (256, "tan2d", False, 1e-4, 32, 100, 10.0, "tan2d")
        assert m.proposal == ("conv" if preset.endswith("_conv") else "pool") and m.dropout == 0.0
    ctx = ModelContext(video_dim=6, word_dim=5, num_clips=d.num_clips, max_query_len=4)
    torch.manual_seed(0)
    model = create_model("tan2d", cfg.model, ctx).eval()
    batch = make_batch([d.num_clips], [4], steps=d.num_clips, words=4, video_dim=6, word_dim=5)
    with torch.no_grad():
        out = model(batch)
    assert int(out["map_mask"].sum()) == int(model.cells.sum())
    if preset in PAPER:
        assert int(model.cells.sum()) == PAPER[preset][1]
    assert torch.isfinite(model.loss(out, batch)["scaled_iou"])


def planted_batch(bsz, g, steps=32, num_concepts=4, dim=16, words=5, patterns=None):
    """Clip features are noise plus, over the target span, the pattern of the query's concept;
    a distractor span carries another concept's pattern, so the query must be read."""
    concept_vecs, clip_patterns = patterns
    concept = torch.randint(num_concepts, (bsz,), generator=g)
    other = (concept + torch.randint(1, num_concepts, (bsz,), generator=g)) % num_concepts
    feats = 0.3 * torch.randn(bsz, steps, dim, generator=g)
    t = torch.arange(steps)[None]
    length = torch.randint(4, 13, (bsz,), generator=g)
    start = (torch.rand(bsz, generator=g) * (steps - length + 1)).long()
    d_len = torch.randint(4, 13, (bsz,), generator=g)
    d_start = (torch.rand(bsz, generator=g) * (steps - d_len + 1)).long()
    target = (t >= start[:, None]) & (t < (start + length)[:, None])
    distract = (t >= d_start[:, None]) & (t < (d_start + d_len)[:, None]) & ~target
    feats = feats + target[..., None] * clip_patterns[concept][:, None] \
        + distract[..., None] * clip_patterns[other][:, None]
    query = 0.3 * torch.randn(bsz, words, dim, generator=g)
    query[:, 0] += concept_vecs[concept]
    durations = torch.full((bsz,), float(steps))
    return Batch(video_feats=feats, video_mask=torch.ones(bsz, steps, dtype=torch.bool),
                 query_feats=query, query_ids=torch.ones(bsz, words, dtype=torch.long),
                 query_mask=torch.ones(bsz, words, dtype=torch.bool),
                 spans=torch.stack([start, start + length], 1).float(), durations=durations)


def test_learns_planted_signal():
    """A few hundred CPU steps (about 5 s) must clearly beat picking a random valid cell."""
    g = torch.Generator().manual_seed(0)
    patterns = (torch.randn(4, 16, generator=g), torch.randn(4, 16, generator=g))
    cfg = TAN2DConfig(hidden_dim=16, num_clips=16, kernel_size=3, num_layers=2, lstm_layers=1,
                      lstm_hidden=16)
    torch.manual_seed(0)
    model = create_model("tan2d", cfg, ModelContext(16, 16, 32, 5))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(200):
        batch = planted_batch(24, g, patterns=patterns)
        loss = model.loss(model(batch), batch)["scaled_iou"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    test = planted_batch(256, g, patterns=patterns)
    with torch.no_grad():
        out = model(test)
    cand = model.candidates(out, test)
    top = cand.spans[torch.arange(256), cand.scores.argmax(1)]
    r1 = (temporal_iou(top, test.spans) >= 0.5).float().mean().item()
    bounds, _ = clip_layout(test.durations, 16)
    chance = (iou_map(cell_spans(bounds), test.spans) >= 0.5)[out["map_mask"]].float().mean().item()
    assert chance < 0.2 and r1 > 0.6, (r1, chance)


@pytest.mark.parametrize("preset, count", [("charades", 60_925_953), ("charades_conv", 69_060_609)])
def test_full_size_parameter_count_equals_the_release(preset, count):
    """The release's TAN at the Charades settings (VGG 4096-d in, C = 512) has these many
    parameters; ``momentloc bench --json`` prints the same as ``num_params``."""
    from momentloc.engine.bench import count_parameters

    assert count_parameters(load_config("tan2d", preset)) == count

"""LGN: the two language-guidance modules by hand, the wrapped frame CNN, switches, presets,
learning."""

import dataclasses
import math

import pytest
import torch
from torch import nn

import momentloc.models.lgn  # noqa: F401  (registers "lgn")
from momentloc.config import list_presets, load_config
from momentloc.engine.tables import load_table
from momentloc.errors import CheckpointError, ConfigError
from momentloc.models import ModelContext, create_model
from momentloc.models.lgn import (LGN, EarlyModulation, LateGuidance, LGNConfig, ModulatedCNN,
                                  fc_stack)
from momentloc.models.tan2d import TAN2DConfig
from momentloc.spans import temporal_iou
from planted_toy import make_planted, one_step, prior_recall1, train_steps
from toy_batches import batch_of_lengths

TINY = LGNConfig(hidden_dim=16, num_clips=8, kernel_size=3, num_layers=2, lstm_layers=1,
                 lstm_hidden=16, lg_k=2, fc_dim=12, conv_channels=3, em_dropout=0.5)
CTX = ModelContext(video_dim=12, word_dim=10, num_clips=16, max_query_len=6)


def make_batch(video_lens, query_lens, steps=16, words=6, video_dim=12, word_dim=10, seed=0):
    return batch_of_lengths(video_lens, query_lens, steps, words, video_dim, word_dim, seed, nonnegative_video=True)


def tiny(**changes) -> LGN:
    torch.manual_seed(0)
    return create_model("lgn", dataclasses.replace(TINY, **changes), CTX).eval()


# ------------------------------------------------------------------ the modules by hand

def _guidance(norm, bias):
    lg = LateGuidance(query_dim=1, channels=2, norm=norm)
    with torch.no_grad():
        lg.proj.weight.zero_()
        lg.proj.bias.copy_(torch.tensor(bias))
    return lg


def test_late_guidance_normalizations_by_hand():
    # C = 2 channels on a 1 x 3 map; cell 2 is masked (and holds garbage)
    x = torch.tensor([[3.0, 0.0, 7.0], [4.0, 1.0, 7.0]]).view(1, 2, 1, 3)
    mask = torch.tensor([[[True, True, False]]])
    q = torch.zeros(1, 1)
    lg = _guidance("channel", [2.0, -1.0])
    alpha = lg.alpha(q)
    assert alpha.tolist() == [[2.0, -1.0]]
    # U = alpha * C: channel 0 = [6, 0], channel 1 = [-4, -1]
    out = lg(x, alpha, mask).view(2, 3)
    # recommended: the norm over channels at each cell
    expected = torch.tensor([[6 / math.sqrt(52), 0.0, 0.0], [-4 / math.sqrt(52), -1.0, 0.0]])
    assert torch.allclose(out, expected, atol=1e-6)
    # literal eq. 3: the norm over each channel's (valid) map
    lit = _guidance("spatial", [2.0, -1.0])
    out = lit(x, lit.alpha(q), mask).view(2, 3)
    expected = torch.tensor([[1.0, 0.0, 0.0], [-4 / math.sqrt(17), -1 / math.sqrt(17), 0.0]])
    assert torch.allclose(out, expected, atol=1e-6)
    # the literal form keeps only sign(alpha): scaling a channel's alpha changes nothing ...
    lit10 = _guidance("spatial", [20.0, -1.0])
    assert torch.allclose(lit10(x, lit10.alpha(q), mask), lit(x, lit.alpha(q), mask))
    # ... while the recommended one shifts the weight between channels
    ch10 = _guidance("channel", [20.0, -1.0])
    out10 = ch10(x, ch10.alpha(q), mask).view(2, 3)
    assert torch.allclose(out10[:, 0], torch.tensor([60.0, -4.0]) / math.sqrt(3616), atol=1e-6)
    # "none" is alpha * C on the valid cells
    raw = _guidance("none", [2.0, -1.0])
    out = raw(x, raw.alpha(q), mask).view(2, 3)
    assert out.tolist() == [[6.0, 0.0, 0.0], [-4.0, -1.0, 0.0]]
    with pytest.raises(ValueError, match="normalization"):
        LateGuidance(4, 4, norm="batch")


def test_early_modulation_by_hand():
    em = EarlyModulation(query_dim=2, channels=3)
    with torch.no_grad():
        em.proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        em.proj.bias.zero_()
    q = torch.tensor([[2.0, 3.0]])                                     # gain [2, 3, 5]
    assert em(torch.ones(1, 3), q).tolist() == [[2.0, 3.0, 5.0]]
    maps = torch.ones(1, 3, 2)                                         # channels first
    assert em(maps, q, channel_dim=1)[0, :, 1].tolist() == [2.0, 3.0, 5.0]
    # a fresh unit is a gain around 1 (bias 1)
    assert torch.equal(EarlyModulation(4, 5).proj.bias, torch.ones(5))


# ------------------------------------------------------------------ the wrapped frame CNN

class TinyCNN(nn.Module):
    """frames (3, 6, 6) -> conv trunk -> fc6 -> ReLU -> Dropout -> fc7 -> ReLU."""

    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                                   nn.Flatten())
        self.fc6, self.relu6, self.drop6 = nn.Linear(16, 10), nn.ReLU(), nn.Dropout(0.5)
        self.fc7, self.relu7 = nn.Linear(10, 8), nn.ReLU()
        self.calls = 0

    def forward(self, x):
        self.calls += x.shape[0]
        return self.relu7(self.fc7(self.drop6(self.relu6(self.fc6(self.trunk(x))))))


def test_modulated_cnn_wraps_the_fc_layers_of_a_tiny_cnn():
    torch.manual_seed(0)
    cnn = TinyCNN()
    plain_keys = set(cnn.state_dict())
    wrapped = ModulatedCNN(cnn, query_dim=5, frame_shape=(3, 6, 6), dropout=0.75).eval()
    assert wrapped.targets == ("relu6", "relu7")            # after each FC layer's ReLU
    assert [u.proj.out_features for u in wrapped.units] == [10, 8]
    assert {f"cnn.{k}" for k in plain_keys} <= set(wrapped.state_dict())  # CNN names kept
    for unit in wrapped.units:
        nn.init.normal_(unit.proj.weight)
    frames = torch.randn(2, 4, 3 * 36)
    query = torch.randn(2, 5)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    out = wrapped(frames, query, mask)
    assert out.shape == (2, 4, 8) and cnn.calls == 6          # padded frames never run
    assert (out[1, 2:] == 0).all()
    # by hand: F = (W_M f_s) * ReLU(fc(x)) after fc6 and after fc7
    x = frames[0].view(4, 3, 6, 6)
    g6, g7 = (u.proj(query[:1]) for u in wrapped.units)
    h = torch.relu(cnn.fc6(cnn.trunk(x))) * g6
    h = torch.relu(cnn.fc7(h)) * g7
    assert torch.allclose(out[0], h, atol=1e-6)
    # the CNN called on its own is the plain CNN
    plain = torch.relu(cnn.fc7(torch.relu(cnn.fc6(cnn.trunk(x)))))
    assert torch.allclose(cnn(x), plain)
    # dropout after each unit in training; gradients reach the units and the CNN
    wrapped.train()
    wrapped(frames, query, mask).sum().backward()
    assert all(p.grad is not None for p in wrapped.parameters())


def test_modulated_cnn_conv_placement_and_errors():
    torch.manual_seed(0)
    cnn = TinyCNN()
    wrapped = ModulatedCNN(cnn, query_dim=5, at="conv", frame_shape=(3, 6, 6)).eval()
    assert wrapped.targets == ("trunk.1",)                    # the ReLU after the conv
    assert wrapped.units[0].proj.out_features == 4            # one gain per channel
    with torch.no_grad():
        wrapped.units[0].proj.weight.zero_()
        wrapped.units[0].proj.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 0.0]))
    out = wrapped(torch.randn(1, 2, 108), torch.randn(1, 5))
    # every conv channel scaled to 0: fc6 sees zeros
    assert torch.allclose(out[0], torch.relu(cnn.fc7(torch.relu(cnn.fc6.bias))).expand(2, 8))
    with pytest.raises(ValueError, match="no submodule"):
        ModulatedCNN(TinyCNN(), 5, after=["fc9"])
    with pytest.raises(ValueError, match="no fc layer"):
        ModulatedCNN(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()), 5, out_dim=4)
    shared = nn.ReLU()                                        # one ReLU after two layers
    with pytest.raises(ValueError, match="several"):
        ModulatedCNN(nn.Sequential(nn.Linear(3, 3), shared, nn.Linear(3, 3), shared), 5,
                     after=["1", "1"])


def test_lgn_runs_a_wrapped_frame_cnn_end_to_end():
    torch.manual_seed(0)
    visual = ModulatedCNN(TinyCNN(), query_dim=16, frame_shape=(3, 6, 6))
    model = LGN(TINY, video_dim=108, word_dim=10, input_steps=16, visual=visual)
    batch = make_batch([16, 10], [6, 3], video_dim=108)
    out = model(batch)
    assert out["scores"].shape == (2, 8, 8)
    model.loss(out, batch)["scaled_iou"].backward()
    assert visual.units[0].proj.weight.grad.abs().sum() > 0
    assert visual.cnn.trunk[0].weight.grad.abs().sum() > 0


# ------------------------------------------------------------------ the model

@pytest.mark.parametrize("changes", [
    {}, {"em_impl": "clip"}, {"em_impl": "fc_head"}, {"em_impl": "fc_head", "em_at": "conv"},
    {"lg_norm": "spatial"}, {"lg_norm": "none", "lg_k": 1, "lg_position": "first_k"},
])
def test_map_shapes_masks_and_padding(changes):
    model = tiny(**changes)
    batch = make_batch([16, 11], [6, 2])
    out = model(batch)
    assert out["scores"].shape == out["map_mask"].shape == (2, 8, 8)
    mask = out["map_mask"]
    # 11 real steps of 16 reach clip 5 of 8: no cell ends past it; dense a <= b otherwise
    assert out["clip_mask"][1].tolist() == [True] * 6 + [False] * 2
    assert torch.equal(mask[0], torch.ones(8, 8, dtype=torch.bool).triu())
    assert not mask[1][:, 6:].any() and (out["scores"][~mask] == 0).all()
    # garbage in padded steps and words changes no valid score
    noisy = dataclasses.replace(
        batch, video_feats=batch.video_feats + 50.0 * ~batch.video_mask[..., None],
        query_feats=batch.query_feats + 50.0 * ~batch.query_mask[..., None])
    assert torch.allclose(model(noisy)["scores"], out["scores"], atol=1e-6)
    # every parameter learns
    model.train()
    model.loss(model(batch), batch)["scaled_iou"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_both_switches_off_is_2d_tan():
    cfg = dataclasses.replace(TINY, em=False, lg_k=0, tmin=0.5, tmax=1.0)
    lgn = create_model("lgn", cfg, CTX).eval()
    fields = {f.name for f in dataclasses.fields(TAN2DConfig)}
    tan = create_model("tan2d", TAN2DConfig(**{k: getattr(cfg, k) for k in fields}), CTX).eval()
    lgn.load_state_dict(tan.state_dict(), strict=True)         # the same parameters, no more
    batch = make_batch([16, 12], [6, 4])
    a, b = lgn(batch), tan(batch)
    assert torch.equal(a["logits"], b["logits"])
    assert torch.equal(lgn.loss(a, batch)["scaled_iou"], tan.loss(b, batch)["scaled_iou"])


@pytest.mark.parametrize("position, k, sizes", [
    ("last_k", 1, [8]), ("first_k", 1, [10]), ("last_k", 2, [10, 8])])
def test_guided_layers(position, k, sizes):
    model = tiny(lg_k=k, lg_position=position)            # L = 2, K = 3: maps 10 x 10, 8 x 8
    seen = []
    model.guidance.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[-1]))
    model(make_batch([16], [6]))
    assert seen == sizes


def test_identity_adapter_and_em_units():
    model = tiny()                                       # adapter over 12-d inputs
    fc6 = model.visual.cnn.fc6
    assert torch.equal(fc6.weight, torch.eye(12)) and (fc6.bias == 0).all()
    assert model.visual.targets == ("relu6", "relu7") and len(model.visual.units) == 2
    assert model.visual.dropout.p == 0.5
    assert tiny(em=False).visual is None                 # the baseline has no adapter
    clip = tiny(em_impl="clip")
    assert clip.visual is None and clip.clip_unit.proj.out_features == 16
    head = tiny(em_impl="fc_head")                       # fc6: 12 -> 12 (fc_dim), normalized
    assert head.visual.l2_normalize and head.visual.out_dim == 12
    conv = tiny(em_impl="fc_head", em_at="conv")         # one unit on the 3 input maps
    assert conv.visual.targets == () and conv.visual.input_unit.proj.out_features == 3
    assert len(tiny(em_impl="fc_head", em=False).visual.units) == 0


def test_fc_weights(tmp_path):
    stack = fc_stack(12, 12, 2)
    path = tmp_path / "fc67.pt"
    torch.save(stack.state_dict(), path)
    model = tiny(em_impl="fc_head", fc_weights=str(path))
    assert torch.equal(model.visual.cnn.fc7.weight, stack.fc7.weight)
    torch.save({"fc6.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(CheckpointError, match="fc67.pt"):
        tiny(em_impl="fc_head", fc_weights=str(path))


def test_config_errors():
    with pytest.raises(ValueError, match="lg_k"):
        LGNConfig(num_layers=4, lg_k=6)
    with pytest.raises(ValueError, match="fc_head"):
        LGNConfig(em_at="conv")
    with pytest.raises(ValueError, match="em_dropout"):
        LGNConfig(em_dropout=1.0)
    with pytest.raises(ConfigError, match="channel maps"):
        tiny(em_impl="fc_head", em_at="conv", conv_channels=5)
    with pytest.raises(ConfigError):
        load_config("lgn", "synthetic", ["model.lg_k=3"])     # L = 2


# ------------------------------------------------------------------ presets and tables

PAPER = {  # preset: (N, cells, K, L, NMS, IoU thresholds, feature dim)
    "charades": (16, 136, 5, 8, 0.45, (0.5, 0.7), 4096),
    "tacos": (128, 2548, 5, 8, 0.4, (0.1, 0.3, 0.5), 4096),
}
ABLATIONS = {  # preset: (em, em_impl, em_at, lg_k, tmin, tmax)
    "ablations/charades_baseline": (False, "adapter", "fc", 0, 0.5, 1.0),
    "ablations/charades_em": (True, "adapter", "fc", 0, 0.0, 0.5),
    "ablations/charades_lg": (False, "adapter", "fc", 6, 0.0, 0.5),
    "charades": (True, "adapter", "fc", 6, 0.0, 0.5),
    "ablations/tacos_baseline": (False, "adapter", "fc", 0, 0.3, 0.7),
    "ablations/tacos_em": (True, "adapter", "fc", 0, 0.0, 0.5),
    "ablations/tacos_lg": (False, "adapter", "fc", 6, 0.0, 0.5),
    "tacos": (True, "adapter", "fc", 6, 0.0, 0.5),
    "ablations/charades_pool5_em_fc": (True, "fc_head", "fc", 0, 0.0, 0.5),
    "ablations/charades_pool5_em_conv": (True, "fc_head", "conv", 0, 0.0, 0.5),
    **{f"ablations/charades_lg_k{k}": (False, "adapter", "fc", k, 0.0, 0.5) for k in range(1, 7)},
}
SMALL = ["model.hidden_dim=4", "model.lstm_hidden=4", "model.lstm_layers=1", "model.fc_dim=6",
         "model.conv_channels=4"]


def test_presets_encode_the_paper_settings():
    presets = set(list_presets("lgn"))
    assert set(PAPER) | set(ABLATIONS) | {"activitynet", "synthetic", "synthetic_tacos"} <= presets
    for name, (n, _, k, layers, nms, ious, dim) in PAPER.items():
        cfg = load_config("lgn", name)
        m = cfg.model
        assert (m.num_clips, m.kernel_size, m.num_layers, m.hidden_dim) == (n, k, layers, 512)
        assert (m.tmin, m.tmax, m.em_layers, m.em_dropout, m.lg_k) == (0.0, 0.5, 2, 0.75, 6)
        assert (m.lg_norm, m.lg_position, m.lstm_layers) == ("channel", "last_k", 3)
        assert (cfg.eval.nms_thresh, cfg.eval.iou_thresholds) == (nms, ious)
        assert cfg.data.feature_dim == dim
        assert (cfg.optim.lr, cfg.train.batch_size, cfg.data.num_clips) == (1e-4, 32, 256)
    for name, want in ABLATIONS.items():
        m = load_config("lgn", name).model
        assert (m.em, m.em_impl, m.em_at, m.lg_k, m.tmin, m.tmax) == want, name
    assert load_config("lgn", "charades_pool5").data.feature_dim == 25088


@pytest.mark.parametrize("preset", list_presets("lgn"))
def test_every_preset_builds_and_trains_a_step(preset):
    cfg = load_config("lgn", preset, SMALL)
    steps = cfg.data.num_clips
    ctx = ModelContext(video_dim=12, word_dim=5, num_clips=steps, max_query_len=4)
    torch.manual_seed(0)
    model = create_model("lgn", cfg.model, ctx)
    batch = make_batch([steps], [4], steps=steps, words=4, word_dim=5)
    # one_step checks the loss is finite. Which parameters move is not asserted: each map
    # layer's 1 / c reweighting (2D-TAN's) shrinks the signal about tenfold, so on these
    # 4-channel maps the 8-layer paper presets can leave every ReLU of the last layer at zero.
    terms, _ = one_step(model, batch, cfg.model.loss_weights)
    assert set(terms) == {"scaled_iou"}
    assert int(model.cells.sum()) == PAPER.get(preset, (0, int(model.cells.sum())))[1]


def test_tables_name_existing_presets():
    presets = {"lgn": set(list_presets("lgn")), "tan2d": set(list_presets("tan2d"))}
    expected = {"lgn-ablation": [42.34, 44.17, 46.08, 48.15],
                "lgn-ablation-tacos": [25.32, 27.63, 29.57, 30.57]}
    for name in ("lgn-ablation", "lgn-ablation-tacos", "lgn-k", "lgn-results",
                 "lgn-results-tacos"):
        table = load_table(name)
        for row in table.rows:
            assert row.preset in presets[row.model], (name, row.label)
            load_config(row.model, row.preset, list(row.set))
        if name in expected:
            assert [r.paper.get("R1@0.5") for r in table.rows[:4]] == expected[name]


# ------------------------------------------------------------------ learning

def test_learns_planted_signal():
    """A few hundred CPU steps on the planted toy set beat the position prior by far (~10 s)."""
    train, test = make_planted(600, num_clips=16, seed=0), make_planted(200, num_clips=16, seed=1)
    cfg = LGNConfig(hidden_dim=32, num_clips=16, kernel_size=3, num_layers=2, lstm_layers=1,
                    lstm_hidden=32, lg_k=2, em_dropout=0.1, fc_relu=False)
    torch.manual_seed(0)
    model = create_model("lgn", cfg, ModelContext(16, 8, 16, 4))
    train_steps(model, train, steps=150, lr=3e-3)
    model.eval()
    with torch.no_grad():
        cand = model.candidates(model(test), test)
    top = cand.spans[torch.arange(len(test)), cand.scores.masked_fill(~cand.valid, -1).argmax(1)]
    got = (temporal_iou(top, test.spans) >= 0.5).float().mean().item()
    prior = prior_recall1(train, test)
    assert got >= max(0.4, 2 * prior), (got, prior)

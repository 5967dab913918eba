"""CSMGAN release presets against the official code's outputs (``csmgan_model`` fixtures).

For every fixture: the momentloc model is built from the fixture's ``meta`` (a ``release_*``
preset with the fixture's widths), the official weights are converted by
``momentloc.official.csmgan`` and loaded strictly, and the fixture's inputs run through the
training and the evaluation branch. Every size is read from the fixture.
"""

from __future__ import annotations

import ast
import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from momentloc.config import load_config
from momentloc.config.schema import DataConfig, EvalConfig
from momentloc.data.batch import Batch
from momentloc.data.card import FeatureSpec
from momentloc.data.dataset import GroundingDataset, collate
from momentloc.data.features import NpyDirStore, write_npy_dir
from momentloc.data.records import MomentRecord
from momentloc.data.resample import resample
from momentloc.data.text import (QueryEncoder, Vocabulary, WordVectorTable, build_embeddings,
                                 tokenize)
from momentloc.engine.predictions import candidates_to_lines, cmin_frame_rule
from momentloc.models import ModelContext, create_model
from momentloc.official import csmgan as official

ATOL = 1e-5
# The official dataset names and the presets that reproduce them.
PRESETS = {"ActivityNet": "release_activitynet", "TACOS": "release_tacos"}
# Official submodule hooked in the fixture -> (momentloc submodule, how to read its output).
INTERMEDIATES = {
    "video_encoder.tran": ("video_in", lambda y: y),
    "video_encoder": ("video_encoder", lambda y: y[0]),
    "sentence_encoder": ("query_encoder", lambda y: y),
    "update_v": ("graph.0.cells.cmg_video", lambda y: y),
    "update_s": ("graph.0.cells.cmg_query", lambda y: y),
    "update_v_intra": ("graph.0.cells.smg_video", lambda y: y),
    "update_s_intra": ("graph.0.cells.smg_query", lambda y: y),
    "v2s": ("integration", lambda y: y[0][..., y[0].shape[-1] // 2:]),
    "rnn": ("localizer_rnn", lambda y: y[0]),
    "fc_score": ("head.score", lambda y: y.transpose(1, 2)),
    "fc_reg": ("head.offset", lambda y: y.transpose(1, 2)),
}


def build(fx: dict):
    """The momentloc config and model of a fixture, with the converted official weights."""
    args = fx["meta"]["args"]
    state = fx["state_dict"]
    inferred = official.infer_overrides(state)
    extra: dict = {}
    for key, value in inferred.items():
        section, name = key.split(".", 1)
        extra.setdefault(section, {})[name] = value
    extra["model"].update(video_sa_heads=args["num_heads"], dropout=0.0, sent_rnn_dropout=0.0)
    extra["data"].update(num_clips=args["max_num_frames"], max_query_len=args["max_num_words"])
    cfg = load_config("csmgan", PRESETS[args["dataset"]], extra=extra)
    anchors = np.asarray(fx["meta"]["anchors"], dtype=np.float64)
    assert cfg.model.widths == tuple(anchors[:, 1] - anchors[:, 0] + 1)
    assert cfg.model.hidden_dim == args["d_model"]
    assert (cfg.model.video_in_linear or cfg.data.feature_dim) == args["frame_dim"]
    weights = official.convert(state, cfg)
    ctx = ModelContext(video_dim=cfg.data.feature_dim, word_dim=args["word_dim"],
                       num_clips=cfg.data.num_clips, max_query_len=cfg.data.max_query_len)
    model = create_model("csmgan", cfg.model, ctx)
    model.load_state_dict(weights, strict=True)
    return cfg, model


def fixture_batch(fx: dict) -> Batch:
    """The fixture's inputs as a momentloc batch, with the source's moments (seconds),
    durations and raw feature counts (the release's targets are computed from them)."""
    i = fx["inputs"]
    data = json.loads(fx["source"]["data_json"])
    qmask = i["word_mask"].bool()
    return Batch(i["frames"].float(), i["frame_mask"].bool(), i["words"].float(),
                 qmask.long(), qmask, torch.tensor([item[2] for item in data]),
                 torch.tensor([item[1] for item in data]),
                 [{"query_id": str(b), "video_id": item[0], "num_features": shape[0],
                   "span_rows": [t * (shape[0] / item[1]) for t in item[2]]}
                  for b, (item, shape) in enumerate(zip(data, fx["source"]["raw_feature_shapes"]))])


def source_dataset(fx: dict, folder) -> GroundingDataset:
    """The fixture's ``source`` (data json, raw features, word vectors) read by momentloc's
    dataset from a feature store written to ``folder``, with the preset's data settings."""
    data = json.loads(fx["source"]["data_json"])
    raw = fx["source"].get("raw_features") or [
        torch.zeros(shape) for shape in fx["source"]["raw_feature_shapes"]]
    dim = raw[0].shape[1]
    write_npy_dir(folder, [(item[0], r.numpy()) for item, r in zip(data, raw)])
    vec = fx["source"]["word2vec"]
    table = WordVectorTable(sorted(vec), np.stack([vec[w].numpy() for w in sorted(vec)]))
    vocab, vectors = build_embeddings(Vocabulary.build([tokenize(x[3]) for x in data]), table)
    records = [MomentRecord(str(b), item[0], item[1], item[3], tuple(item[2]))
               for b, item in enumerate(data)]
    cfg, _ = build(fx)
    assert (cfg.data.resample, cfg.data.l2_normalize, cfg.data.pca_dim) == ("pool", False, 0)
    store = NpyDirStore(folder, FeatureSpec(store="npy_dir", path=str(folder), dim=dim))
    return GroundingDataset(records, store, vocab, vectors, DataConfig(
        num_clips=cfg.data.num_clips, max_query_len=cfg.data.max_query_len, cache_features=True))


def run(model, batch: Batch, hooks: bool = False):
    caught: dict[str, torch.Tensor] = {}
    handles = []
    if hooks:
        modules = dict(model.named_modules())
        for name, (path, read) in INTERMEDIATES.items():
            if path in modules:
                handles.append(modules[path].register_forward_hook(
                    lambda _m, _i, y, name=name, read=read: caught.__setitem__(name, read(y))))
    with torch.no_grad():
        out = model(batch)
    for h in handles:
        h.remove()
    return out, caught


def close(mine: torch.Tensor, ref: torch.Tensor, what: str, atol: float = ATOL,
          last_sum_ulp: bool = False) -> float:
    """Max abs difference, asserted <= ``atol``. ``last_sum_ulp``: the value is a float32 sum
    (proposal + offset, the offsets themselves are checked at ``atol`` as ``fc_reg``), whose
    final rounding may differ by one unit in the last place of the result (1.5e-5 at 200)."""
    mine, ref = mine.detach().to(torch.float64), ref.detach().to(torch.float64)
    assert mine.shape == ref.shape, f"{what}: shape {tuple(mine.shape)} vs {tuple(ref.shape)}"
    if not ref.numel():
        return 0.0
    err = (mine - ref).abs()
    tol = torch.full_like(ref, atol)
    if last_sum_ulp:
        tol = tol + torch.from_numpy(np.spacing(ref.abs().to(torch.float32).numpy())).double()
    worst = int((err - tol).argmax())
    assert bool((err <= tol).all()), (f"{what}: abs difference {float(err.flatten()[worst]):.3g}"
                                      f" > {float(tol.flatten()[worst]):.3g}")
    return float(err.max())


@pytest.fixture
def built(golden_csmgan_model):
    folder, fx = golden_csmgan_model
    cfg, model = build(fx)
    return fx, cfg, model, fixture_batch(fx)


def test_parameter_count_and_proposals(built):
    fx, cfg, model, batch = built
    assert sum(p.numel() for p in model.parameters()) == fx["meta"]["num_params"]
    layout, refined = model._layouts(batch)
    o = fx["outputs"]
    assert torch.equal(layout.bounds.double(), o["proposals_dataset"])
    assert torch.equal(refined.bounds, o["proposals_model"])
    assert layout.num_anchors == fx["meta"]["num_proposals"]


def assert_official_targets(fx: dict, model, batch: Batch) -> None:
    i = fx["inputs"]
    assert torch.equal(inclusive_frames(model, batch), i["gt"].long())
    t = model.targets(batch)
    assert torch.equal(t["legal"], i["label_mask"].bool())
    close(t["align"], i["label"], "label", atol=1e-7)
    assert torch.equal(t["positive"], i["adj_mat"] > 0)
    assert int(t["positive"].sum()) == fx["loss"]["num_positives"]
    pos = torch.where(t["positive"])
    tb = fx["outputs"]["train_branch"]
    assert torch.equal(pos[0], tb["positive_batch_index"])
    assert torch.equal(pos[1], tb["positive_proposal_index"])
    assert model.cfg.target_grid == "raw_frames"


def test_targets_equal_the_official_dataset(built):
    fx, cfg, model, batch = built
    assert_official_targets(fx, model, batch)


def inclusive_frames(model, batch: Batch) -> torch.Tensor:
    """The model's ground-truth frames ``(B, 2)`` as inclusive integer steps."""
    gt = model.target_steps(batch)
    return torch.stack([gt[:, 0], gt[:, 1] - 1], -1).long()


def test_targets_from_the_source_through_the_data_pipeline(golden_csmgan_model, tmp_path):
    """Every query's targets (ground-truth frames, labels, mask, positives), computed by
    momentloc from the fixture's ``source`` read through a feature store, the dataset and
    collate, equal the release's; a second read comes from the feature cache."""
    _, fx = golden_csmgan_model
    _, model = build(fx)
    ds = source_dataset(fx, tmp_path / "feats")
    for attempt in range(2):
        batch = collate([ds[b] for b in range(len(ds))])
        assert [m["num_features"] for m in batch.meta] == [
            s[0] for s in fx["source"]["raw_feature_shapes"]]
        batch.video_feats = fx["inputs"]["frames"].float()   # raw TACoS features: zeros
        assert_official_targets(fx, model, batch)
        assert len(ds.cache) == len(ds.video_ids)
    # the seconds alone (target_grid frames) miss the release's frames on most queries
    seconds = dataclasses.replace(model.cfg, target_grid="frames")
    other = create_model("csmgan", seconds, ModelContext(
        video_dim=batch.video_feats.shape[-1], word_dim=batch.query_feats.shape[-1],
        num_clips=batch.video_feats.shape[1], max_query_len=batch.query_feats.shape[1]))
    print(f"\n{fx['meta']['args']['dataset']}: official gt {fx['inputs']['gt'].tolist()}, "
          f"from seconds {inclusive_frames(other, batch).tolist()}")


def test_solver_is_the_releases(built):
    """The preset's solver is the one the fixture's official arguments set up."""
    fx, cfg, model, batch = built
    args, o = fx["meta"]["args"], cfg.optim
    assert (o.name, o.scheduler) == ("fairseq_adam", args["lr_scheduler"])
    assert (o.lr, o.weight_decay, o.warmup_steps, o.warmup_init_lr, o.eps) == (
        args["lr"], args["weight_decay"], args["warmup_updates"], args["warmup_init_lr"],
        args["adam_eps"])
    assert o.betas == ast.literal_eval(args["adam_betas"])
    assert (cfg.train.batch_size, cfg.train.epochs) == (args["batch_size"],
                                                        args["max_num_epochs"])


def test_eval_branch_outputs(built):
    fx, cfg, model, batch = built
    model.eval()
    out, caught = run(model, batch, hooks=True)
    e = fx["outputs"]["eval_branch"]
    cands = model.candidates(out, batch)
    close(cands.scores * cands.valid, e["predict_flatten"], "predict_flatten")
    close(cands.steps, e["refine_box"], "refine_box", last_sum_ulp=True)
    close(out["smg_attention"].transpose(1, 2), e["a1"], "a1")
    close(out["smg_query_attention"].transpose(1, 2), e["a2"], "a2")
    for name, ref in fx["outputs"]["intermediates"].items():
        assert name in caught, f"intermediate {name!r} has no momentloc counterpart"
        close(caught[name], ref, f"intermediate {name}")


def test_losses_of_both_branches(built):
    fx, cfg, model, batch = built
    loss = fx["loss"]
    assert cfg.model.loss_weights["boundary"] == loss["train_reg_weight"]
    model.train()                                      # dropout is 0: the same forward
    out, _ = run(model, batch)
    with torch.no_grad():
        terms = model.loss(out, batch)
    w = cfg.model.loss_weights["boundary"]
    close(terms["align"], loss["train_cls_loss"], "train cls loss")
    close(terms["boundary"], loss["train_reg_loss"], "train reg loss")
    close(terms["align"] + w * terms["boundary"], loss["train_branch_loss"], "train loss")
    steps = model.candidates(out, batch).steps
    positive = model.targets(batch)["positive"]
    close(steps[positive], fx["outputs"]["train_branch"]["refine_box"], "train refine_box",
          last_sum_ulp=True)
    close(torch.sigmoid(out["logits"]) * model.targets(batch)["legal"],
          fx["outputs"]["train_branch"]["predict_flatten"], "train predict_flatten")
    # The release's evaluation loss: SmoothL1 of every refined box against the ground truth.
    gt = fx["inputs"]["gt"].float()[:, None, :].expand_as(steps)
    reg = F.smooth_l1_loss(steps, gt)
    close(reg, loss["eval_reg_loss"], "eval reg loss")
    close(terms["align"], loss["eval_cls_loss"], "eval cls loss")
    close(terms["align"] + loss["eval_reg_weight"] * reg, loss["eval_branch_loss"], "eval loss")


def test_decoding_and_recall_through_the_evaluation_path(built):
    """The engine's cmin protocol on the model's own outputs gives the official picks and
    per-query recall (the 1e-5 box differences round the same way here), against the
    release's ground-truth frames from the raw feature counts (``target_grid: raw_frames``)."""
    fx, cfg, model, batch = built
    model.eval()
    out, _ = run(model, batch)
    d = fx["decoded"]
    ecfg = EvalConfig(protocol="cmin", iou_thresholds=tuple(d["iou_thresholds"]),
                      recall_at=tuple(d["top_n"]), top_k=max(d["top_n"]))
    lines = candidates_to_lines(model.candidates(out, batch), batch.meta, batch.spans,
                                batch.durations, ecfg, lengths=batch.video_mask.sum(1),
                                frame_rule=cmin_frame_rule(model))
    assert [line["cmin"]["gt_frames"] for line in lines] == d["gt"].tolist()
    boxes = d["boxes_int"]
    for b, line in enumerate(lines):
        for k, m in enumerate(d["iou_thresholds"]):
            picks = line["cmin"]["picks"][f"{m:g}"]
            ref = d["picks"][b, k, :ecfg.top_k]
            ref = ref[ref >= 0]
            assert [p[:2] for p in picks] == boxes[b, ref].tolist(), (b, m)
            np.testing.assert_allclose([p[2] for p in picks], d["scores"][b, ref].numpy(),
                                       atol=ATOL)
    from momentloc.engine.predictions import metrics_from_lines
    metrics = metrics_from_lines(lines, ecfg)
    for r, n in enumerate(d["top_n"]):
        for c, m in enumerate(d["iou_thresholds"]):
            assert metrics[f"R{n}@{m:g}"] == d["recall"][r, c].item(), (n, m)


def test_data_pipeline_reproduces_the_features(golden_csmgan_model):
    """momentloc's ``pool`` resampling is the release's ClipDataset rule (where the fixture
    stores the raw features)."""
    _, fx = golden_csmgan_model
    raw = fx["source"].get("raw_features")
    if raw is None:
        pytest.skip("raw features not stored in this fixture (too large)")
    n = fx["inputs"]["frames"].shape[1]
    for b, feats in enumerate(raw):
        got, mask = resample(feats.numpy(), n, "pool")
        assert mask.all()
        np.testing.assert_array_equal(got, fx["inputs"]["frames"][b].numpy())


def test_data_pipeline_words(golden_csmgan_model):
    """momentloc's tokenizer gives the release's word lists, and its query encoder (vocabulary
    from the queries, the fixture's word vectors) the word inputs: vectors, zero rows after,
    cut at the maximum number of words."""
    _, fx = golden_csmgan_model
    data = json.loads(fx["source"]["data_json"])
    vec = fx["source"]["word2vec"]
    words, mask = fx["inputs"]["words"], fx["inputs"]["word_mask"]
    tokens = [tokenize(item[3]) for item in data]
    assert tokens == [item[4] for item in data]
    table = WordVectorTable(sorted(vec), np.stack([vec[w].numpy() for w in sorted(vec)]))
    vocab, vectors = build_embeddings(Vocabulary.build(tokens), table)
    encoder = QueryEncoder(vocab, vectors, max_len=words.shape[1])
    for b in range(words.shape[0]):
        _, got = encoder.encode(data[b][3])
        assert int(mask[b].sum()) == len(got)
        np.testing.assert_array_equal(got, words[b, :len(got)].numpy())
        assert not words[b, len(got):].any()


def test_report_max_differences(golden_csmgan_model):
    """Prints the max abs difference of every compared output (run with -s); the figures in
    docs/models/csmgan.md, "Equivalence"."""
    folder, fx = golden_csmgan_model
    cfg, model = build(fx)
    batch = fixture_batch(fx)
    rows = {}
    model.eval()
    out, caught = run(model, batch, hooks=True)
    e = fx["outputs"]["eval_branch"]
    c = model.candidates(out, batch)
    rows["eval predict_flatten"] = close(c.scores * c.valid, e["predict_flatten"], "p")
    rows["eval refine_box"] = close(c.steps, e["refine_box"], "r", last_sum_ulp=True)
    rows["eval a1"] = close(out["smg_attention"].transpose(1, 2), e["a1"], "a1")
    rows["eval a2"] = close(out["smg_query_attention"].transpose(1, 2), e["a2"], "a2")
    for name, ref in fx["outputs"]["intermediates"].items():
        rows[f"intermediate {name}"] = close(caught[name], ref, name)
    with torch.no_grad():
        terms = model.loss(out, batch)
    loss, w = fx["loss"], cfg.model.loss_weights["boundary"]
    pos = model.targets(batch)["positive"]
    rows["train refine_box"] = close(c.steps[pos], fx["outputs"]["train_branch"]["refine_box"],
                                     "t", last_sum_ulp=True)
    rows["train cls loss"] = close(terms["align"], loss["train_cls_loss"], "l")
    rows["train reg loss"] = close(terms["boundary"], loss["train_reg_loss"], "l")
    rows["train loss"] = close(terms["align"] + w * terms["boundary"], loss["train_branch_loss"],
                               "l")
    reg = F.smooth_l1_loss(c.steps, fx["inputs"]["gt"].float()[:, None, :].expand_as(c.steps))
    rows["eval loss"] = close(terms["align"] + loss["eval_reg_weight"] * reg,
                              loss["eval_branch_loss"], "l")
    print(f"\n{folder.name}")
    for name, diff in rows.items():
        print(f"  {name:34s} {diff:.2e}")


def test_converter_names_the_tensor_on_a_shape_mismatch(golden_csmgan_model):
    _, fx = golden_csmgan_model
    cfg, _ = build(fx)
    state = dict(fx["state_dict"])
    state["atten.q_proj.weight"] = torch.zeros(3, 3)
    with pytest.raises(Exception, match=r"atten\.q_proj\.weight.*\[3, 3\]"):
        official.convert(state, cfg)
    state = dict(fx["state_dict"])
    state["no_such.weight"] = torch.zeros(1)
    with pytest.raises(Exception, match="no_such.weight"):
        official.convert(state, cfg)

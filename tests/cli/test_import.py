"""``momentloc import``: an official-layout checkpoint becomes a run that predict and evaluate use
like a trained one; wrong shapes, unknown models and unreadable files fail clearly.

The official state dicts come from the golden fixtures (tests/golden), saved here the way the
official scripts save them (DataParallel ``module.`` names nested under a key); the tests skip
when no 2D-TAN fixture is present."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from momentloc.cli.main import main
from momentloc.config import load_config
from momentloc.errors import CheckpointError, ConfigError
from momentloc.official import converter, import_checkpoint, unwrap_checkpoint
from momentloc.official import tan2d as official
from tests.golden.conftest import discover, load_fixture
from tests.golden.tan2d_support import write_card


@pytest.fixture(autouse=True)
def feature_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MOMENTLOC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "ml-cache"))


@pytest.fixture(scope="module")
def fx():
    found = discover()["tan2d_model"]
    if not found:
        pytest.skip("no 2D-TAN golden fixture (set MOMENTLOC_GOLDEN)")
    # the first dense-map fixture if there is one (all its cells are proposals), else the first
    dense = [f for f in found if load_fixture(f)["meta"]["num_valid_cells"]
             == load_fixture(f)["meta"]["num_upper_cells"]]
    return load_fixture((dense or found)[0])


def size_overrides(fx) -> list[str]:
    """The sizes a 2D-TAN checkpoint does not hold (map size, input steps, pool layout)."""
    s = official.release_settings(fx["meta"]["config"])
    return [f"model.num_clips={s['model.num_clips']}", f"data.num_clips={s['data.num_clips']}",
            f"model.scale_layers={s['model.scale_layers']}",
            f"data.max_query_len={max(20, fx['inputs']['textual_input'].shape[1])}"]


def save_official(fx, path: Path) -> Path:
    """As a DataParallel model's checkpoint nested in a dict with other training state."""
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in fx["state_dict"].items()}},
               path)
    return path


def test_round_trip_predict_and_evaluate_give_the_official_moments(fx, tmp_path, capsys):
    card = write_card(fx, tmp_path / "data")
    ckpt = save_official(fx, tmp_path / "official.pkl")
    run = tmp_path / "run"
    preset = official.release_preset(fx["meta"]["official_yaml"])
    args = ["import", "tan2d", str(ckpt), "--out", str(run), "--preset", preset,
            "--dataset", str(card), "--glove", str(card.parent / "glove.txt")]
    for o in size_overrides(fx):
        args += ["--set", o]
    assert main(args) == 0
    capsys.readouterr()
    for name in ("config.yaml", "dataset.yaml", "meta.json", "checkpoints/best.pt",
                 "artifacts/vocab.json", "artifacts/word_vectors.npy"):
        assert (run / name).is_file(), name
    meta = json.loads((run / "meta.json").read_text())
    assert meta["imported"]["official_model"] == "tan2d" and len(meta["imported"]["sha256"]) == 64
    # predict and evaluate read the run's config: the release's white-space tokenizer (the
    # fixtures' Charades-STA sentences end with a "." that the release's reader cuts)
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["tokenizer"] == \
        load_config("tan2d", preset).data.tokenizer

    dec = fx["decoded"]
    for b, (vid, ann) in enumerate(zip(fx["source"]["video_ids"], fx["source"]["annotations"])):
        feats = tmp_path / f"{vid}.npy"
        np.save(feats, fx["source"]["raw_features"][b].numpy())
        assert main(["predict", str(run), "--video", str(feats), "--duration",
                     str(ann["duration"]), "--query", ann["description"], "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        got = [[m["start"], m["end"]] for m in out["results"][0]["moments"]]
        np.testing.assert_array_equal(np.array(got, np.float32), dec["topk_times"][b].numpy())

    assert main(["evaluate", str(run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    for i, m in enumerate(dec["eval_tious"]):
        for j, n in enumerate(dec["eval_recalls"]):
            assert metrics[f"R{n}@{float(m):g}"] == dec["eval_result"][i, j].item()


MOMENTLOC_TO_OFFICIAL = [("frame.proj.", "frame_layer.vis_conv."),
                         ("sentence.rnn.rnn.", "fusion_layer.textual_encoder."),
                         ("sentence.proj.", "fusion_layer.tex_linear."),
                         ("fusion.map_proj.", "fusion_layer.vis_conv."),
                         ("map_conv.convs.", "map_layer.convs."),
                         ("predictor.", "pred_layer."),
                         ("moment_map.convs.", "prop_layer.layers.0.")]   # one scale


def official_names(state):
    out = {}
    for k, v in state.items():
        new = next(o + k[len(m):] for m, o in MOMENTLOC_TO_OFFICIAL if k.startswith(m))
        out[new] = v
    return out


def test_round_trip_of_a_momentloc_model_without_fixtures(synth_card, tmp_path, capsys):
    """A tiny conv 2D-TAN written under the release's names imports back to the same weights,
    and the run evaluates with the tan2d protocol (no golden fixture needed)."""
    from momentloc.config.load import load_config
    from momentloc.data.build import build_data
    from momentloc.data.card import load_card
    from momentloc.engine.checkpoint import load_checkpoint
    from momentloc.models.registry import create_model

    card = synth_card("charades", "tiny")
    sizes = ["model.hidden_dim=8", "model.lstm_hidden=6", "model.lstm_layers=2",
             "model.kernel_size=3", "model.num_layers=2", "model.proposal=conv",
             "model.scale_layers=[16]", "data.num_clips=32", "eval.protocol=tan2d"]
    cfg = load_config("tan2d", "synthetic", sizes)
    torch.manual_seed(0)
    data = build_data(cfg.data, load_card(str(card)))
    model = create_model("tan2d", cfg.model, data.context())
    torch.save(official_names(model.state_dict()), tmp_path / "official.pkl")
    run = tmp_path / "run"
    # widths, depth, K, L and the conv layout come from the shapes; the rest from the preset
    assert main(["import", "tan2d", str(tmp_path / "official.pkl"), "--preset", "synthetic",
                 "--dataset", str(card), "--out", str(run), "--set", "data.num_clips=32",
                 "--set", "eval.protocol=tan2d"]) == 0
    got = load_checkpoint(run / "checkpoints" / "best.pt")["model"]
    want = model.state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert 0.0 <= metrics["R1@0.5"] <= metrics["R5@0.5"] <= 1.0 and "dR1@0.5" not in metrics


def test_unwrap_checkpoint_layouts():
    w = {"a.weight": torch.zeros(2)}
    assert unwrap_checkpoint(w) == w
    assert unwrap_checkpoint({"module.a.weight": w["a.weight"]}).keys() == w.keys()
    assert unwrap_checkpoint({"model": {"state_dict": w}, "optimizer": {}}).keys() == w.keys()
    with pytest.raises(CheckpointError, match="keys are 'epoch'"):
        unwrap_checkpoint({"epoch": 1})
    with pytest.raises(CheckpointError, match="no state dict"):
        unwrap_checkpoint([1, 2])


def test_wrong_shape_names_the_tensor_and_both_shapes(fx, tmp_path):
    state = dict(fx["state_dict"])
    w = state["map_layer.convs.1.weight"]
    state["map_layer.convs.1.weight"] = torch.zeros(*w.shape[:2], w.shape[2] + 2, w.shape[3] + 2)
    with pytest.raises(ConfigError, match=r"map_layer\.convs\.1\.weight.*shape"):
        official.infer_overrides(state)
    # a size the checkpoint cannot tell (here a --set) that contradicts a tensor
    state = dict(fx["state_dict"])
    cfg_over = size_overrides(fx) + ["model.lstm_hidden=7"]
    card = write_card(fx, tmp_path / "data")
    torch.save(state, tmp_path / "ckpt.pt")
    with pytest.raises(ConfigError) as err:
        import_checkpoint("tan2d", tmp_path / "ckpt.pt", tmp_path / "run",
                          preset=official.release_preset(fx["meta"]["official_yaml"]),
                          overrides=cfg_over, dataset=str(card))
    msg = str(err.value)
    w = list(fx["state_dict"]["fusion_layer.textual_encoder.weight_ih_l0"].shape)
    assert f"official tensor 'fusion_layer.textual_encoder.weight_ih_l0' has shape {w}" in msg
    assert f"expects {[28, w[1]]}" in msg and "sentence.rnn.rnn.weight_ih_l0" in msg
    assert not (tmp_path / "run").exists()


def test_unknown_model_and_unreadable_files(tmp_path, capsys):
    with pytest.raises(ConfigError, match="no official checkpoint converter for model 'fian'"):
        converter("fian")
    assert main(["import", "fian", str(tmp_path / "x.pt"), "--out", str(tmp_path / "r")]) == 1
    assert "known: tan2d, csmgan" in capsys.readouterr().err
    good = tmp_path / "good.pkl"
    torch.save({"state_dict": {"module.pred_layer.weight": torch.zeros(1, 4, 1, 1)}}, good)
    bad = tmp_path / "corrupt.pkl"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="corrupt.pkl: not a readable checkpoint"):
        import_checkpoint("tan2d", bad, tmp_path / "run")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        import_checkpoint("tan2d", tmp_path / "missing.pkl", tmp_path / "run")
    with pytest.raises(ConfigError, match="not a 2D-TAN checkpoint: no tensor 'frame_layer"):
        import_checkpoint("tan2d", good, tmp_path / "run")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        import_checkpoint("tan2d", good, tmp_path / "taken")
    assert (tmp_path / "taken" / "x").read_text() == "keep me"
    assert not (tmp_path / "run").exists()


def test_missing_glove_file(fx, tmp_path):
    card = write_card(fx, tmp_path / "data")
    good = save_official(fx, tmp_path / "good.pkl")
    with pytest.raises(ConfigError, match="GloVe file not found"):
        import_checkpoint("tan2d", good, tmp_path / "run", dataset=str(card),
                          overrides=size_overrides(fx), glove=tmp_path / "nope.txt")
    assert not (tmp_path / "run").exists()

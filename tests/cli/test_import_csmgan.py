"""``momentloc import csmgan``: a CSMGAN release state dict (from the golden fixtures, saved the
way a DataParallel training script saves it) becomes a run whose ``predict`` gives the moments
the official outputs decode to and whose ``evaluate`` gives the official recall table.

The fixture's synthetic data is written as a momentloc dataset: its raw features as ``.npy``
files, its word vectors as a GloVe-format file, and its queries with the official integer frame
labels expressed in seconds on the 200-step grid (the release derives its labels from the raw
feature count, momentloc from the annotation's seconds; see docs/models/csmgan.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from momentloc.cli.main import main
from momentloc.heads.anchors import AnchorLayout
from momentloc.spans import batched_nms
from tests.golden.conftest import discover, load_fixture

PRESETS = {"ActivityNet": "release_activitynet", "TACOS": "release_tacos"}


@pytest.fixture(autouse=True)
def feature_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MOMENTLOC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "ml-cache"))


@pytest.fixture(scope="module")
def fx():
    found = [f for f in discover()["csmgan_model"]
             if load_fixture(f)["source"].get("raw_features") is not None]
    if not found:
        pytest.skip("no CSMGAN golden fixture with raw features (set MOMENTLOC_GOLDEN)")
    return load_fixture(found[0])


def queries(fx) -> list[dict]:
    """One dict per query of the fixture: video id, duration, sentence, span in seconds."""
    data = json.loads(fx["source"]["data_json"])
    n = int(fx["inputs"]["frame_mask"].shape[1])
    out = []
    for item, (g0, g1) in zip(data, fx["inputs"]["gt"].tolist()):
        dur = float(item[1])
        out.append({"video_id": item[0], "duration": dur, "sentence": item[3],
                    "span": [g0 * dur / n, (g1 + 1) * dur / n]})
    return out


def write_card(fx, root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    ann: dict[str, dict] = {}
    for q in queries(fx):
        a = ann.setdefault(q["video_id"], {"duration": q["duration"], "timestamps": [],
                                           "sentences": []})
        a["timestamps"].append(q["span"])
        a["sentences"].append(q["sentence"])
    (root / "ann.json").write_text(json.dumps(ann))
    feats = root / "features"
    feats.mkdir(exist_ok=True)
    for q, raw in zip(queries(fx), fx["source"]["raw_features"]):
        np.save(feats / f"{q['video_id']}.npy", raw.numpy())
    with open(root / "glove.txt", "w") as fh:
        for w, v in fx["source"]["word2vec"].items():
            fh.write(w + " " + " ".join(f"{x:.9g}" for x in v.tolist()) + "\n")
    d = fx["decoded"]
    card = {"name": f"golden-{fx['meta']['fixture']}", "format": "activitynet",
            "splits": {"train": {"annotations": "ann.json"}, "test": {"annotations": "ann.json"}},
            "roles": {"train": "train", "val": None, "test": "test"},
            "features": {"store": "npy_dir", "path": "features",
                         "dim": int(fx["source"]["raw_features"][0].shape[1]),
                         "extractor": "synthetic (official fixture)"},
            "word_vectors": "glove.txt",
            "metrics": {"recall_at": [int(n) for n in d["top_n"]],
                        "iou_thresholds": [float(m) for m in d["iou_thresholds"]]}}
    path = root / "dataset.yaml"
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path


def expected_moments(fx, b: int, duration: float, nms_thresh: float, top_k: int):
    """momentloc's decoding (seconds, NMS) of the official eval-branch boxes and scores."""
    e, o = fx["outputs"]["eval_branch"], fx["outputs"]
    layout = AnchorLayout(o["proposals_model"], torch.zeros(len(o["proposals_model"])))
    offsets = (e["refine_box"][b:b + 1] - o["proposals_model"][None]).float()
    n = torch.tensor([fx["inputs"]["frame_mask"].shape[1]])
    spans = layout.decode(offsets, torch.tensor([duration], dtype=torch.float32), n)
    valid = fx["inputs"]["label_mask"][b:b + 1].bool()
    scores = e["predict_flatten"][b:b + 1]
    keep, kept = batched_nms(spans.float(), scores.float(), nms_thresh, top_k, valid)
    idx = keep[0][kept[0]]
    return spans[0, idx].numpy(), scores[0, idx].numpy()


def test_round_trip_predict_and_evaluate(fx, tmp_path, capsys):
    card = write_card(fx, tmp_path / "data")
    ckpt = tmp_path / "official.pt"
    torch.save({"epoch": 7, "state_dict": {f"module.{k}": v for k, v in fx["state_dict"].items()}},
               ckpt)
    run = tmp_path / "run"
    args = fx["meta"]["args"]
    assert main(["import", "csmgan", str(ckpt), "--out", str(run),
                 "--preset", PRESETS[args["dataset"]], "--dataset", str(card),
                 "--set", f"model.video_sa_heads={args['num_heads']}",
                 "--set", "model.dropout=0.0", "--set", "model.sent_rnn_dropout=0.0"]) == 0
    capsys.readouterr()
    meta = json.loads((run / "meta.json").read_text())
    assert meta["imported"]["official_model"] == "csmgan"
    assert meta["imported"]["inferred"]["model.hidden_dim"] == args["d_model"]

    for b, q in enumerate(queries(fx)):
        feats = tmp_path / "data" / "features" / f"{q['video_id']}.npy"
        assert main(["predict", str(run), "--video", str(feats), "--duration", str(q["duration"]),
                     "--query", q["sentence"], "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        moments = out["results"][0]["moments"]
        spans, scores = expected_moments(fx, b, q["duration"], 0.5, len(moments))
        got = np.array([[m["start"], m["end"]] for m in moments])
        np.testing.assert_allclose(got, spans, atol=1e-3)
        np.testing.assert_allclose([m["score"] for m in moments], scores, atol=1e-5)

    assert main(["evaluate", str(run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    d = fx["decoded"]
    for r, n in enumerate(d["top_n"]):
        for c, m in enumerate(d["iou_thresholds"]):
            assert metrics[f"R{n}@{float(m):g}"] == d["recall"][r, c].item(), (n, m)


def test_wrong_anchor_count_is_refused(fx, tmp_path):
    from momentloc.errors import ConfigError
    from momentloc.official import csmgan as official

    state = dict(fx["state_dict"])
    state["fc_score.weight"] = torch.zeros(5, *state["fc_score.weight"].shape[1:])
    with pytest.raises(ConfigError, match="fc_score.weight has 5 anchors"):
        official.infer_overrides(state)

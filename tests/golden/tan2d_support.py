"""Shared by the 2D-TAN golden tests and the import round trip: a fixture's official setting as a
momentloc config, its model with the converted official weights, its inputs as a Batch, and
its synthetic source files as a momentloc dataset card. Every size is read from the fixture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from momentloc.config.load import load_config
from momentloc.config.schema import ExperimentConfig
from momentloc.data.batch import Batch
from momentloc.models.base import ModelContext
from momentloc.models.registry import create_model
from momentloc.official import tan2d as official

# The reader of each official dataset class's files.
FORMATS = {"Charades": "charades_sta", "ActivityNet": "activitynet", "TACoS": "tacos"}


def fixture_config(fx: dict, overrides=()) -> ExperimentConfig:
    """The release preset of the fixture's official YAML, with the fixture's sizes: the
    official config's values (:func:`official.release_settings`) then the checkpoint's shapes."""
    settings = official.release_settings(fx["meta"]["config"])
    preset = official.release_preset(fx["meta"]["official_yaml"])
    extra: dict = {}
    for key, value in {**settings, **official.infer_overrides(fx["state_dict"])}.items():
        section, _, field = key.partition(".")
        extra.setdefault(section, {})[field] = value
    extra["data"]["max_query_len"] = max(20, int(fx["inputs"]["textual_input"].shape[1]))
    return load_config("tan2d", preset, overrides=list(overrides), extra=extra)


def build_model(fx: dict, cfg: ExperimentConfig):
    vis = fx["inputs"]["visual_input"]
    words = fx["inputs"]["textual_input"]
    ctx = ModelContext(video_dim=int(vis.shape[2]), word_dim=int(words.shape[2]),
                       num_clips=int(vis.shape[1]), max_query_len=cfg.data.max_query_len)
    model = create_model("tan2d", cfg.model, ctx)
    model.load_state_dict(official.convert(fx["state_dict"], cfg), strict=True)
    return model.eval()


def fixture_batch(fx: dict) -> Batch:
    inp, dec = fx["inputs"], fx["decoded"]
    vis, words = inp["visual_input"], inp["textual_input"]
    mask = inp["textual_mask"][..., 0] > 0
    b = vis.shape[0]
    return Batch(video_feats=vis, video_mask=torch.ones(vis.shape[:2], dtype=torch.bool),
                 query_feats=words, query_ids=mask.long() * 2, query_mask=mask,
                 spans=dec["gt_times"].to(torch.float32),
                 durations=dec["durations"].to(torch.float32),
                 meta=[{"query_id": str(i), "video_id": v, "query": a["description"],
                        "annotator_spans": []}
                       for i, (v, a) in enumerate(zip(fx["source"]["video_ids"],
                                                      fx["source"]["annotations"]))][:b])


def write_card(fx: dict, root: Path) -> Path:
    """The fixture's synthetic official files as a momentloc dataset: annotation files as the
    official class read them (used as the train and the test split), the raw features as a
    ``.npy`` directory and a GloVe-format file holding the words' vectors of the fixture."""
    root.mkdir(parents=True, exist_ok=True)
    files = fx["source"]["files"]
    for name, text in files.items():
        (root / name).write_text(text)
    fmt = FORMATS[fx["meta"]["config"]["DATASET"]["NAME"]]
    ann = next(n for n in files if n.endswith((".txt", ".json")))
    split = {"annotations": ann}
    dur = [n for n in files if n.endswith(".csv")]
    if dur:
        split["durations"] = dur[0]
    feats = root / "features"
    feats.mkdir(exist_ok=True)
    for vid, raw in zip(fx["source"]["video_ids"], fx["source"]["raw_features"]):
        np.save(feats / f"{vid}.npy", raw.numpy())
    vectors: dict[str, np.ndarray] = {}
    words = fx["inputs"]["textual_input"].numpy()
    for b, a in enumerate(fx["source"]["annotations"]):
        for p, w in enumerate(a["description"].split()):
            vectors.setdefault(w.lower(), words[b, p])
    with open(root / "glove.txt", "w") as fh:
        for w, v in vectors.items():
            fh.write(w + " " + " ".join(f"{x:.9g}" for x in v.tolist()) + "\n")
    card = {"name": f"golden-{fx['meta']['fixture']}", "format": fmt,
            "splits": {"train": split, "test": split},
            "roles": {"train": "train", "val": None, "test": "test"},
            "features": {"store": "npy_dir", "path": "features",
                         "dim": int(fx["source"]["raw_features"][0].shape[1]),
                         "extractor": "synthetic (official fixture)"},
            "word_vectors": "glove.txt",
            "metrics": {"recall_at": [int(n) for n in fx["decoded"]["eval_recalls"]],
                        "iou_thresholds": [float(m) for m in fx["decoded"]["eval_tious"]]}}
    path = root / "dataset.yaml"
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path

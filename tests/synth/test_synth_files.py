"""The synthetic generator writes real-format files that the readers load, deterministically."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from momentloc.data.card import load_card
from momentloc.data.converters import load_split
from momentloc.data.features import open_store
from momentloc.data.text import load_glove, tokenize
from momentloc.errors import ConfigError
from momentloc.synth import PRESETS, generate
from momentloc.synth.wordvec import MULTIWORD_TOKEN, UNUSED_WORDS

PRESET_NAMES = sorted(PRESETS)


def _events(card_path: Path) -> list[dict]:
    return [json.loads(line) for line in (card_path.parent / "events.jsonl").read_text().splitlines()]


def _bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_same_seed_writes_the_same_bytes(synth_card, tmp_path):
    first = synth_card("charades", "tiny", 0).parent
    again = generate("charades", "tiny", 0, tmp_path / "again").parent
    a, b = _bytes(first), _bytes(again)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], name


def test_another_seed_writes_other_data(synth_card, tmp_path):
    a = _bytes(synth_card("charades", "tiny", 0).parent)
    b = _bytes(generate("charades", "tiny", 1, tmp_path / "seed1").parent)
    for name in ("charades_sta_train.txt", "charades_sta_test.txt", "synthetic_i3d_features.hdf5",
                 "synthetic_glove.300d.txt", "events.jsonl"):
        assert a[name] != b[name], name


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_files_load_with_the_real_readers(synth_card, preset):
    path = synth_card(preset)
    p = PRESETS[preset]
    card = load_card(str(path))
    assert card.format == p.format
    assert tuple(card.splits) == p.splits
    assert card.roles == p.roles
    assert card.metrics.iou_thresholds == p.iou_thresholds
    assert card.features.dim == p.features.dims["tiny"]
    assert card.features.extractor == f"synthetic {preset} world"
    assert "seed 0" in card.notes and "size tiny" in card.notes
    store = open_store(card)
    videos_seen = set()
    for split, count in zip(p.splits, p.sizes["tiny"]):
        records = load_split(card, split)
        assert len(records) == count
        spans = np.array([r.span for r in records])
        durations = np.array([r.duration for r in records])
        assert (spans[:, 0] >= 0).all() and (spans[:, 1] <= durations).all()
        assert (spans[:, 1] > spans[:, 0]).all()
        videos = {r.video_id: r.duration for r in records}
        assert not videos_seen & set(videos), "a video is in two splits"
        videos_seen |= set(videos)
        for vid, duration in videos.items():
            feats = store.get(vid)
            assert feats.dtype == np.float32 and feats.shape[1] == card.features.dim
            assert feats.shape[0] == max(1, round(duration * p.features.rate))
            assert np.isfinite(feats).all()


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_sidecar_matches_the_annotations(synth_card, preset):
    """events.jsonl holds each query's kind, exact span and written label, in file order."""
    path = synth_card(preset)
    card = load_card(str(path))
    tol = 0.5 / PRESETS[preset].tacos_fps + 1e-6 if preset == "tacos" else 1e-6
    by_split: dict[str, list] = {}
    for video in _events(path):
        for q in video["queries"]:
            by_split.setdefault(video["split"], []).append((video, q))
    for split, items in by_split.items():
        records = load_split(card, split)
        assert [q["index"] for _, q in items] == list(range(len(records)))
        for r, (video, q) in zip(records, items):
            assert r.video_id == video["video_id"] and r.query == q["query"]
            assert r.span == pytest.approx(q["label"], abs=tol)
            assert abs(r.duration - video["duration"]) <= tol
            if split != card.roles["train"]:  # exact labels outside training
                step = {"charades": 0.1, "activitynet": 0.01, "tacos": 1 / 29.4}[preset]
                assert r.span == pytest.approx(q["span"], abs=step + tol)


def test_training_labels_are_jittered_only_when_asked(synth_card, tmp_path):
    def train_offsets(path):
        items = [(q["span"], q["label"]) for v in _events(path) if v["split"] == "train"
                 for q in v["queries"]]
        return np.abs(np.array([s for s, _ in items]) - np.array([lab for _, lab in items]))

    jittered = train_offsets(synth_card("charades"))
    exact = train_offsets(generate("charades", "tiny", 0, tmp_path / "exact", label_jitter=0.0))
    assert exact.max() <= 0.1 + 1e-9        # rounding to 0.1 s only
    assert jittered.mean() > 5 * exact.mean()


def test_word_vectors_cover_queries_but_the_rare_words(synth_card):
    path = synth_card("charades")
    card = load_card(str(path))
    style = PRESETS["charades"].style
    tokens = {t for split in card.splits for r in load_split(card, split) for t in tokenize(r.query)}
    table = load_glove(card.path(card.word_vectors), tokens | set(UNUSED_WORDS))
    missing = tokens - set(table.words)
    assert missing and missing <= set(style.rare_words), missing   # a real OOV path
    assert set(UNUSED_WORDS) <= set(table.words)                    # words no query uses
    assert table.dim == 300
    lines = card.path(card.word_vectors).read_text().splitlines()
    assert any(line.startswith(MULTIWORD_TOKEN + " ") for line in lines)

    def cos(a, b):
        u, v = table.vectors[table.index[a]], table.vectors[table.index[b]]
        return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))

    assert cos("opens", "opening") > 0.7        # inflection
    assert cos("cup", "mug") > 0.6              # synonym
    assert cos("closes", "shuts") > 0.5         # synonym, same inflection
    for a, b in [("opens", "cup"), ("cup", "door"), ("opens", "washes")]:
        assert abs(cos(a, b)) < 0.3, (a, b)


def test_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        generate("tacos", "tiny", 0, tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "x"
    card = generate("tacos", "tiny", 0, tmp_path, overwrite=True)
    assert card == tmp_path / "dataset.yaml" and card.is_file()


@pytest.mark.parametrize("kwargs, match", [
    ({"preset": "kinetics", "size": "tiny"}, "unknown synthetic preset"),
    ({"preset": "charades", "size": "huge"}, "unknown size"),
    ({"preset": "charades", "size": "tiny", "label_jitter": -0.1}, "label_jitter"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        generate(seed=0, out_dir=tmp_path / "x", **kwargs)
    assert not (tmp_path / "x" / "dataset.yaml").exists()

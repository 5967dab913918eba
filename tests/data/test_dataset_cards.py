"""Every shipped benchmark card loads, its roles name its splits, its choices are the papers'."""

from __future__ import annotations

import pytest

from momentloc.config.load import configs_dir
from momentloc.data.card import load_card

CARDS = sorted(p.stem for p in (configs_dir() / "datasets").glob("*.yaml"))

EXPECTED = {  # name: (format, test split, IoU thresholds)
    "charades-sta": ("charades_sta", "test", (0.5, 0.7)),
    "charades-sta-vgg": ("charades_sta", "test", (0.5, 0.7)),
    "activitynet-captions": ("activitynet", "val_2", (0.3, 0.5, 0.7)),
    "tacos": ("tacos", "test", (0.1, 0.3, 0.5)),
    "didemo": ("didemo", "test", (0.5, 0.7)),
}


def test_the_four_benchmarks_ship():
    assert set(EXPECTED) <= set(CARDS)


@pytest.mark.parametrize("name", CARDS)
def test_card_loads_and_roles_name_splits(name, tmp_path):
    card = load_card(name, str(tmp_path))
    assert card.name == name
    for role in ("train", "test"):
        assert card.split_for(role) in card.splits
    assert card.split_for("val") is None or card.split_for("val") in card.splits
    for files in card.splits.values():
        for name in files.annotation_files():  # relative: resolved at --data-root
            assert card.path(name).parent == tmp_path
        if card.format == "charades_sta":
            assert files.durations is not None
    assert card.features is not None and card.features.dim > 0
    assert card.metrics.recall_at == (1, 5)
    if name in EXPECTED:
        fmt, test_split, ious = EXPECTED[name]
        assert (card.format, card.split_for("test"), card.metrics.iou_thresholds) == (
            fmt, test_split, ious)


def test_benchmark_specific_choices(tmp_path):
    anet = load_card("activitynet-captions", str(tmp_path))
    assert anet.roles == {"train": "train", "val": "val_1", "test": "val_2"}
    assert (anet.features.dataset_key, anet.features.key_template, anet.features.dim) == (
        "c3d_features", "{video_id}", 500)
    assert load_card("charades-sta", str(tmp_path)).roles["val"] is None
    assert load_card("didemo", str(tmp_path)).protocol == "didemo"
    assert load_card("tacos", str(tmp_path)).features.path == "tall_c3d_features.hdf5"


@pytest.mark.parametrize("content", [
    "name: caf\xe9\n".encode("latin-1"),             # not UTF-8
    b"name: x\nnotes: " + b"[" * 5000 + b"]" * 5000 + b"\n",   # nested too deeply
])
def test_unreadable_card_is_named(tmp_path, content):
    from momentloc.errors import ConfigError
    (tmp_path / "card.yaml").write_bytes(content)
    with pytest.raises(ConfigError, match="card.yaml: cannot read dataset card"):
        load_card(str(tmp_path / "card.yaml"))

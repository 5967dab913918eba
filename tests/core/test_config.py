import dataclasses

import pytest

from momentloc.config.load import coerce, from_dict, parse_overrides, read_yaml
from momentloc.config.schema import DataConfig, EvalConfig, TrainConfig
from momentloc.errors import ConfigError


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as e:
        from_dict(TrainConfig, {"epochz": 3}, "train")
    assert "'epochz'" in str(e.value) and "epochs" in str(e.value) and "batch_size" in str(e.value)


@pytest.mark.parametrize("cls,data,msg", [
    (TrainConfig, {"epochs": "ten"}, "expected an integer"),
    (TrainConfig, {"epochs": 2.5}, "expected an integer"),
    (TrainConfig, {"amp": "yes"}, "expected true or false"),
    (TrainConfig, {"device": "tpu"}, "is not one of"),
    (DataConfig, {"num_clips": True}, "expected an integer"),
    (EvalConfig, {"recall_at": 5}, "expected a list"),
])
def test_wrong_types(cls, data, msg):
    with pytest.raises(ConfigError, match=msg):
        from_dict(cls, data, "x")


def test_coercions():
    assert from_dict(TrainConfig, {"grad_clip": 1}, "t").grad_clip == 1.0
    assert coerce("2e-4", float, "lr") == pytest.approx(2e-4)  # YAML 1.1 reads 2e-4 as a string
    ev = from_dict(EvalConfig, {"iou_thresholds": [0.3, 0.5]}, "e")
    assert ev.iou_thresholds == (0.3, 0.5)
    assert from_dict(DataConfig, {"data_root": None}, "d").data_root is None


def test_overrides_parse_and_reject():
    assert parse_overrides(["train.lr=2e-4", "model.kernel_sizes=[1, 2]", "data.val_split=none"]) == {
        "train": {"lr": "2e-4"}, "model": {"kernel_sizes": [1, 2]}, "data": {"val_split": "none"}}
    with pytest.raises(ConfigError, match="expected section.key=value"):
        parse_overrides(["train.lr"])
    with pytest.raises(ConfigError, match="must start with one of"):
        parse_overrides(["optimizer.lr=1"])


def test_yaml_base_chain(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {epochs: 3, batch_size: 8}\n")
    (tmp_path / "p.yaml").write_text("base: base.yaml\ntrain: {epochs: 5}\n")
    assert read_yaml(tmp_path / "p.yaml") == {"train": {"epochs": 5, "batch_size": 8}}
    (tmp_path / "bad.yaml").write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        read_yaml(tmp_path / "bad.yaml")


def test_configs_are_frozen():
    t = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.epochs = 3  # type: ignore[misc]

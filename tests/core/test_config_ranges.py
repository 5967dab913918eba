"""Config values are range-checked when the config is built; bad YAML and overrides are named."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from momentloc.cli.main import main
from momentloc.config.load import from_dict, load_config, parse_overrides, read_yaml
from momentloc.config.schema import (
    RANGES, DataConfig, EvalConfig, OptimConfig, Range, TrainConfig, field_range)
from momentloc.errors import ConfigError

SECTIONS = {"data": DataConfig, "optim": OptimConfig, "train": TrainConfig, "eval": EvalConfig}


@pytest.mark.parametrize("override, shown", [
    ("optim.lr=-1e-4", "optim.lr: -0.0001 is out of range; valid: > 0"),
    ("optim.lr=.nan", "optim.lr: nan is out of range; valid: > 0"),
    ("optim.lr=.inf", "optim.lr: inf is out of range"),
    ("optim.betas=[0.9, 1.0]", "optim.betas: 1.0 (in (0.9, 1.0)) is out of range; valid: [0, 1)"),
    ("optim.gamma=0", "optim.gamma: 0.0 is out of range; valid: (0, 1)"),
    ("optim.min_lr=1", "optim.min_lr: 1.0 is out of range; valid: <= lr (0.002)"),
    ("optim.warmup_init_lr=-1e-6", "optim.warmup_init_lr: -1e-06 is out of range; valid: >= 0"),
    ("optim.eps=0", "optim.eps: 0.0 is out of range; valid: > 0"),
    ("train.batch_size=0", "train.batch_size: 0 is out of range; valid: >= 1"),
    ("train.eval_batch_size=0", "train.eval_batch_size: 0 is out of range; valid: >= 1"),
    ("train.eval_every=0", "train.eval_every: 0 is out of range; valid: >= 1"),
    ("train.epochs=0", "train.epochs: 0 is out of range; valid: >= 1"),
    ("train.grad_clip=-1", "train.grad_clip: -1.0 is out of range; valid: >= 0"),
    ("train.seed=-3", "train.seed: -3 is out of range"),
    ("data.max_query_len=0", "data.max_query_len: 0 is out of range; valid: >= 1"),
    ("data.num_clips=0", "data.num_clips: 0 is out of range; valid: >= 1"),
    ("data.val_holdout=1", "data.val_holdout: 1.0 is out of range; valid: [0, 1)"),
    ("eval.top_k=0", "eval.top_k: 0 is out of range; valid: >= 1"),
    ("eval.top_k=3", "eval.top_k = 3 keeps fewer predictions than R@5 needs"),
    ("eval.recall_at=[]", "eval.recall_at: () is empty"),
    ("eval.iou_thresholds=[0.5, 0]", "eval.iou_thresholds: 0.0 (in (0.5, 0.0)) is out of range"),
    ("eval.nms_thresh=-0.1", "eval.nms_thresh: -0.1 is out of range; valid: (0, 1]"),
    ("model.hidden_dim=0", "model.hidden_dim: 0 is out of range; valid: >= 1"),
    ("model.dropout=1.0", "model.dropout: 1.0 is out of range; valid: [0, 1)"),
    ("model.loss_weights={bce: -1}", "model.loss_weights: -1.0 (in {'bce': -1.0}) is out"),
])
def test_out_of_range_value_names_key_value_and_range(override, shown):
    with pytest.raises(ConfigError) as info:
        load_config("tan2d", "synthetic", [override])
    assert shown in str(info.value)
    assert "synthetic.yaml" in str(info.value)  # the config it was building


@pytest.mark.parametrize("model, override, shown", [
    ("fian", "model.num_heads=0", "model.num_heads: 0 is out of range"),  # was ZeroDivisionError
    ("csmgan", "model.dropout=-0.5", "model.dropout: -0.5 is out of range"),
    ("csmgan", "model.sent_rnn_layers=0", "model.sent_rnn_layers: 0 is out of range"),
    ("csmgan", "model.anchor_stride=0", "model.anchor_stride: 0.0 is out of range; valid: > 0"),
    ("cimha", "model.max_moment_clips=-1", "model.max_moment_clips: -1 is out of range"),
    ("fian", "model.window_stride=0", "model.window_stride: 0.0 is out of range"),
    ("tan2d", "model.tmax=1.5", "model.tmax: 1.5 is out of range; valid: [0, 1]"),
])
def test_model_fields_with_obvious_ranges(model, override, shown):
    with pytest.raises(ConfigError, match="out of range") as info:
        load_config(model, None, [override])
    assert shown in str(info.value)


def test_valid_edges_are_accepted():
    cfg = load_config("tan2d", "synthetic", [
        "optim.lr=1e-9", "train.epochs=1", "train.grad_clip=0", "data.val_holdout=0",
        "eval.top_k=5", "eval.recall_at=[1, 5]", "eval.nms_thresh=1.0", "model.dropout=0",
        "eval.iou_thresholds=[1.0]"])
    assert (cfg.train.epochs, cfg.eval.nms_thresh, cfg.eval.iou_thresholds) == (1, 1.0, (1.0,))
    # top_k may stand below R@5 only when R@5 is not asked for
    assert load_config("tan2d", None, ["eval.top_k=1", "eval.recall_at=[1]"]).eval.top_k == 1


def test_direct_construction_is_checked_too():
    with pytest.raises(ConfigError, match=r"train.epochs: 0 is out of range; valid: >= 1"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="eval.top_k"):
        dataclasses.replace(EvalConfig(), top_k=0)


def test_every_numeric_field_of_every_section_has_a_range():
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = str(hints[f.name])
            numeric = hints[f.name] in (int, float) or ("int" in tp or "float" in tp)
            if numeric:
                assert field_range(cls, f.name) is RANGES[section][f.name], f"{section}.{f.name}"
                assert cls() is not None  # the defaults lie inside the ranges


def test_range_text_and_membership():
    assert str(Range(0.0, 1.0, hi_open=True)) == "[0, 1)" and str(Range(1.0)) == ">= 1"
    assert 0.0 in Range(0.0, 1.0, hi_open=True) and 1.0 not in Range(0.0, 1.0, hi_open=True)
    assert float("nan") not in Range() and float("inf") not in Range(0.0)


# ---- overrides and YAML files ---------------------------------------------------------------

@pytest.mark.parametrize("item, message", [
    ("train.epochs=[1", "override 'train.epochs=[1': the value: not valid YAML"),
    ("train.epochs={a", "override 'train.epochs={a': the value: not valid YAML"),
    ("train..epochs=1", "override 'train..epochs=1': empty key part"),
    ("train.epochs=" + "9" * 5000, "not readable YAML"),
])
def test_override_syntax_errors_name_the_argument(item, message):
    with pytest.raises(ConfigError, match="override") as info:
        parse_overrides([item])
    assert message in str(info.value)


def test_override_conflicting_paths():
    with pytest.raises(ConfigError, match="earlier override set 'loss_weights' to a value"):
        parse_overrides(["model.loss_weights=1", "model.loss_weights.bce=2"])


def test_self_referencing_and_cyclic_base(tmp_path):
    (tmp_path / "self.yaml").write_text("base: self.yaml\ntrain: {epochs: 3}\n")
    with pytest.raises(ConfigError, match="'base:' chain is a cycle") as info:
        read_yaml(tmp_path / "self.yaml")
    assert "self.yaml" in str(info.value)
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match=r"a.yaml -> .*b.yaml -> .*a.yaml"):
        read_yaml(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: [x]\n")
    with pytest.raises(ConfigError, match="c.yaml: 'base:' must name a YAML file"):
        read_yaml(tmp_path / "c.yaml")


def test_a_shared_base_is_no_cycle(tmp_path):
    (tmp_path / "root.yaml").write_text("train: {epochs: 2}\n")
    (tmp_path / "mid.yaml").write_text("base: root.yaml\ntrain: {batch_size: 4}\n")
    (tmp_path / "top.yaml").write_text("base: mid.yaml\n")
    assert read_yaml(tmp_path / "top.yaml") == {"train": {"epochs": 2, "batch_size": 4}}


def test_non_utf8_and_unreadable_yaml(tmp_path):
    (tmp_path / "latin.yaml").write_bytes("train: {epochs: 3}  # caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="latin.yaml: not UTF-8 text"):
        read_yaml(tmp_path / "latin.yaml")
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="deep.yaml: not"):
        read_yaml(tmp_path / "deep.yaml")


def test_section_that_is_not_a_mapping():
    with pytest.raises(ConfigError, match="expected a mapping"):
        from_dict(TrainConfig, "epochs", "train")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="model: expected a mapping"):
        load_config(None, None, extra={"model": "tan2d"})


def test_cli_reports_bad_values_before_any_work(tmp_path, capsys):
    """``--set`` errors end the command with exit 1 and one line, before data is read."""
    for item in ("train.epochs=0", "eval.top_k=0", "train.epochs=[1", "optim.lr=nan"):
        code = main(["train", "--model", "tan2d", "--preset", "synthetic", "--dataset",
                     str(tmp_path / "nowhere.yaml"), "--out", str(tmp_path / "run"),
                     "--set", item])
        err = capsys.readouterr().err
        assert code != 0 and "Traceback" not in err and item.split("=")[0] in err
        assert "nowhere" not in err  # the config failed first, not the dataset
        assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("metric, ok", [
    ("R1@0.5", True), ("mIoU", True), ("dR5@0.7", True), ("didemo/R5", True),
    ("R2@0.5", False),          # R@2 is not in eval.recall_at: not reported
    ("R1@1.5", False), ("R1", False), ("recall", False),
])
def test_select_metric_must_be_reported(metric, ok):
    """An unreported selection metric used to stop training at its first validation."""
    if ok:
        assert load_config("tan2d", None, [f"train.select_metric={metric}"])
    else:
        with pytest.raises(ConfigError, match=f"train.select_metric: '{metric}' is not a metric"):
            load_config("tan2d", None, [f"train.select_metric={metric}"])
    with pytest.raises(ConfigError, match="with eval.discount"):
        load_config("tan2d", None, ["train.select_metric=dR1@0.5", "eval.discount=false"])

"""``momentloc bench --epoch``: one epoch timed by part through the training step and the one
evaluation path, measured whole or extrapolated from a few steps."""

from __future__ import annotations

import json

import pytest
import torch

from momentloc.cli.main import main
from momentloc.config import load_config
from momentloc.data.dataset import collate
from momentloc.engine.bench import (SPLIT_SIZES, RandomGroundingSet, bench_context,
                                    run_epoch_bench)
from momentloc.errors import ConfigError

PARTS = {"train_data", "train_steps", "eval_forward", "eval_decode", "eval_metrics"}


def test_random_set_batches_like_a_dataset():
    cfg = load_config("tan2d", "synthetic", [])
    ctx = bench_context(cfg)
    ds = RandomGroundingSet(ctx, 10, pad_video=True)
    batch = collate([ds[i] for i in range(10)])
    assert batch.video_feats.shape == (10, ctx.num_clips, ctx.video_dim)
    lengths = batch.video_mask.sum(1)
    assert (lengths >= ctx.num_clips // 2).all() and (lengths <= ctx.num_clips).all()
    assert torch.equal(batch.video_feats[~batch.video_mask], torch.zeros(int((~batch.video_mask).sum()),
                                                                         ctx.video_dim))
    q = batch.query_mask.sum(1)
    assert (q >= 1).all() and (q <= ctx.max_query_len).all()
    ends = batch.spans[:, 1] / batch.durations
    assert (batch.spans[:, 0] <= batch.spans[:, 1]).all() and (ends <= lengths / ctx.num_clips + 1e-6).all()


def test_epoch_measured_whole():
    cfg = load_config("tan2d", "synthetic", ["eval.protocol=tan2d"])
    out = run_epoch_bench(cfg, torch.device("cpu"), train_queries=40, test_queries=30,
                          batch_size=16)
    assert out["extrapolated"] is False
    assert out["train_steps"] == out["timed_train_steps"] == 3
    assert out["timed_test_queries"] == out["test_queries"] == 30
    assert set(out["parts_s"]) == PARTS and all(v >= 0 for v in out["parts_s"].values())
    assert out["epoch_s"] == pytest.approx(sum(out["parts_s"].values()))
    assert sum(out["shares"].values()) == pytest.approx(1.0)
    assert out["protocol"] == "tan2d" and any(m.startswith("R1@") for m in out["metric_names"])


def test_epoch_extrapolated_from_steps_at_the_benchmarks_split_sizes():
    cfg = load_config("csmgan", "synthetic", ["data.dataset=tacos", "eval.protocol=cmin"])
    out = run_epoch_bench(cfg, torch.device("cpu"), steps=1, batch_size=4)
    n_train, n_test = SPLIT_SIZES["tacos"]
    assert (out["train_queries"], out["test_queries"]) == (n_train, n_test)
    assert out["extrapolated"] is True and out["timed_train_steps"] == 1
    assert out["train_steps"] == -(-n_train // 4)
    assert out["timed_test_queries"] == cfg.train.eval_batch_size
    assert out["protocol"] == "cmin" and set(out["parts_s"]) == PARTS


def test_epoch_needs_split_sizes_and_positive_steps():
    cfg = load_config("tan2d", "synthetic", [])
    with pytest.raises(ConfigError, match="--train-queries and --test-queries"):
        run_epoch_bench(cfg, torch.device("cpu"))
    with pytest.raises(ConfigError, match="at least 1"):
        run_epoch_bench(cfg, torch.device("cpu"), steps=0, train_queries=8, test_queries=8)


def test_cli_epoch_table_and_json(capsys):
    args = ["bench", "--model", "tan2d", "--preset", "synthetic", "--device", "cpu", "--epoch",
            "--train-queries", "20", "--test-queries", "12", "--batch-size", "8", "-q"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "measured whole" in text and "train_steps" in text and "epoch" in text and "%" in text
    assert main(args + ["--steps", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["extrapolated"] is True and out["preset"] == "synthetic"
    assert set(out["shares"]) == PARTS

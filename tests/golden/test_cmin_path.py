"""``eval.protocol: cmin`` scores against the ground truth its model trains on: with a CSMGAN
model's ``target_grid: raw_frames`` the release's frames from the raw feature count
(``meta["num_features"]``, ``meta["span_rows"]``), else the steps covering the seconds.

On the golden CSMGAN fixtures, queries read from the fixture's ``source`` through the dataset
and the one evaluation path give the official ground-truth frames and the official recall;
a hand-made query shows the two rules giving different frames and different recall."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from momentloc.config.schema import EvalConfig
from momentloc.data.dataset import collate
from momentloc.engine.distributed import DistInfo
from momentloc.engine.evaluator import predict_lines
from momentloc.engine.predictions import candidates_to_lines, cmin_frame_rule, metrics_from_lines
from momentloc.metrics import protocol_cmin
from momentloc.models.base import Candidates
from tests.golden.test_csmgan_golden import build, source_dataset


def official_eval_config(fx: dict) -> EvalConfig:
    d = fx["decoded"]
    return EvalConfig(protocol="cmin", iou_thresholds=tuple(d["iou_thresholds"]),
                      recall_at=tuple(d["top_n"]), top_k=max(d["top_n"]))


def test_recall_from_the_source_through_the_evaluation_path(golden_csmgan_model, tmp_path):
    _, fx = golden_csmgan_model
    cfg, model = build(fx)
    model.eval()
    assert cfg.model.target_grid == "raw_frames" and cmin_frame_rule(model) == "raw_frames"
    d = fx["decoded"]
    ecfg = official_eval_config(fx)
    ds = source_dataset(fx, tmp_path / "feats")
    if fx["source"].get("raw_features") is not None:
        # the whole path: dataset (features resampled from the raw ones) -> model -> lines
        lines = predict_lines(model, ds, ecfg, len(ds), torch.device("cpu"), DistInfo())
    else:   # raw features not stored: the fixture's resampled ones, the rest from the source
        batch = collate([ds[b] for b in range(len(ds))])
        batch.video_feats = fx["inputs"]["frames"].float()
        with torch.no_grad():
            cands = model.candidates(model(batch), batch)
        lines = candidates_to_lines(cands, batch.meta, batch.spans, batch.durations, ecfg,
                                    lengths=batch.video_mask.sum(1),
                                    frame_rule=cmin_frame_rule(model))
    assert [line["cmin"]["gt_frames"] for line in lines] == d["gt"].tolist()
    metrics = metrics_from_lines(lines, ecfg)
    for r, n in enumerate(d["top_n"]):
        for c, m in enumerate(d["iou_thresholds"]):
            assert metrics[f"R{n}@{m:g}"] == d["recall"][r, c].item(), (n, m)
    # the seconds alone place some of these queries on other frames
    batch = collate([ds[b] for b in range(len(ds))])
    seconds = protocol_cmin.ground_truth_frames(batch.spans, batch.durations,
                                                batch.video_mask.sum(1), rule="frames")
    release = protocol_cmin.ground_truth_frames(batch.spans, batch.durations,
                                                batch.video_mask.sum(1), batch.meta, "raw_frames")
    assert torch.equal(release, model.target_steps(batch))
    assert not torch.equal(seconds, release)


def hand_lines(frame_rule: str) -> list[dict]:
    """One video of 10 s, 10 raw feature rows resampled to 4 steps, the moment 2.5-7.9 s: the
    release's rule gives frames 1-2 (raw rows 2 and 7 on the indices 0, 3, 6, 9), the seconds
    rule the steps covering [1.0, 3.16): frames 1-3. Boxes: [1, 2] (score 0.9), [1, 3] (0.5)."""
    steps = torch.tensor([[[1.0, 2.0], [1.0, 3.0]]])
    cands = Candidates(spans=steps * 2.5, scores=torch.tensor([[0.9, 0.5]]),
                       valid=torch.ones(1, 2, dtype=torch.bool), steps=steps)
    meta = [{"query_id": "q", "video_id": "v", "num_features": 10, "span_rows": [2.5, 7.9]}]
    ecfg = EvalConfig(protocol="cmin", iou_thresholds=(0.5, 0.7), recall_at=(1,), top_k=2)
    return candidates_to_lines(cands, meta, torch.tensor([[2.5, 7.9]]), torch.tensor([10.0]),
                               ecfg, lengths=torch.tensor([4]), frame_rule=frame_rule)


def test_the_two_frame_rules_by_hand():
    ecfg = EvalConfig(protocol="cmin", iou_thresholds=(0.5, 0.7), recall_at=(1,), top_k=2)
    raw, seconds = hand_lines("raw_frames"), hand_lines("frames")
    assert raw[0]["cmin"]["gt_frames"] == [1, 2]
    assert seconds[0]["cmin"]["gt_frames"] == [1, 3]
    # top-1 [1, 2]: inclusive IoU 1 against 1-2, 2/3 against 1-3
    assert metrics_from_lines(raw, ecfg)["R1@0.7"] == 1.0
    assert metrics_from_lines(seconds, ecfg)["R1@0.7"] == 0.0
    assert metrics_from_lines(raw, ecfg)["R1@0.5"] == metrics_from_lines(seconds, ecfg)["R1@0.5"]


def test_frame_rule_of_a_model():
    def model(grid):
        return SimpleNamespace(cfg=SimpleNamespace(target_grid=grid))

    assert cmin_frame_rule(model("raw_frames")) == "raw_frames"
    assert cmin_frame_rule(SimpleNamespace(module=model("raw_frames"))) == "raw_frames"
    for grid in ("frames", "continuous"):
        assert cmin_frame_rule(model(grid)) == "frames"
    assert cmin_frame_rule(SimpleNamespace()) == "frames"     # models without a target grid


def test_bad_frame_rule_and_raw_count_are_refused():
    spans, dur, n = torch.tensor([[2.5, 7.9]]), torch.tensor([10.0]), torch.tensor([4])
    with pytest.raises(ValueError, match="unknown ground-truth frame rule 'seconds'"):
        protocol_cmin.ground_truth_frames(spans, dur, n, rule="seconds")
    with pytest.raises(ValueError, match=r"num_features.*query 'q'.*got -3"):
        protocol_cmin.ground_truth_frames(spans, dur, n, [{"query_id": "q", "num_features": -3}],
                                          "raw_frames")
    # without a raw count the video's own 4 steps are its rows: rows 1.0-3.16, raw frames 1
    # and 3, steps 1 to 3 (end exclusive 4)
    got = protocol_cmin.ground_truth_frames(spans, dur, n, [{}], "raw_frames")
    assert got.tolist() == [[1.0, 4.0]]

"""The predictions JSONL: golden file, candidates -> lines -> file -> metrics, bad files."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from momentloc.config.schema import EvalConfig
from momentloc.data.records import MomentRecord
from momentloc.engine.predictions import (candidates_to_lines, metrics_from_lines, read_predictions,
                                          records_to_lines, write_predictions)
from momentloc.errors import ConfigError, DataError
from momentloc.metrics import compute_metrics
from momentloc.models.base import Candidates
from momentloc.spans import temporal_nms

DATA = Path(__file__).resolve().parents[1] / "data"


def test_golden_predictions_file():
    expected = json.loads((DATA / "predictions_small_metrics.json").read_text())
    cfg = EvalConfig(iou_thresholds=tuple(expected["iou_thresholds"]))
    got = metrics_from_lines(read_predictions(DATA / "predictions_small.jsonl"), cfg,
                             expected["recall_at"], expected["iou_thresholds"])
    assert set(got) == set(expected["metrics"])
    for key, value in expected["metrics"].items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


def _batch(seed=0, b=6, k=12):
    g = torch.Generator().manual_seed(seed)
    durations = torch.rand(b, generator=g, dtype=torch.float64) * 50 + 10
    ends = torch.sort(torch.rand(b, k + 1, 2, generator=g, dtype=torch.float64), dim=-1).values
    spans = ends * durations[:, None, None]
    valid = torch.rand(b, k, generator=g) < 0.8
    valid[0] = False                                   # a query with no valid candidate
    cands = Candidates(spans=spans[:, :k].float(), scores=torch.rand(b, k, generator=g),
                       valid=valid)
    meta = [{"query_id": f"q{i}", "video_id": f"v{i // 2}", "query": "a query",
             "annotator_spans": []} for i in range(b)]
    return cands, meta, spans[:, k], durations


def _direct(cands, gt, durations, thresh, top_k, thresholds):
    """Per-query NMS with the one-list function, then the metrics on arrays."""
    b = cands.spans.shape[0]
    pred, valid = np.zeros((b, top_k, 2)), np.zeros((b, top_k), bool)
    for q in range(b):
        idx = np.flatnonzero(cands.valid[q].numpy())
        keep = idx[temporal_nms(cands.spans[q, idx].double().numpy(),
                                cands.scores[q, idx].double().numpy(), thresh, top_k)]
        pred[q, :len(keep)] = cands.spans[q, keep].double().numpy()
        valid[q, :len(keep)] = True
    return compute_metrics(pred, valid, gt.numpy(), (1, 5), thresholds, durations=durations.numpy())


@pytest.mark.parametrize("mode", ["fixed", "per_metric"])
def test_candidates_lines_file_metrics_equal_direct(tmp_path, mode):
    cands, meta, gt, durations = _batch()
    cfg = EvalConfig(iou_thresholds=(0.3, 0.5, 0.7), nms_mode=mode, nms_thresh=0.4, top_k=5)
    lines = candidates_to_lines(cands, meta, gt, durations, cfg)
    path = tmp_path / "preds.jsonl"
    write_predictions(path, lines)
    got = metrics_from_lines(read_predictions(path), cfg, (1, 5), (0.3, 0.5, 0.7))
    if mode == "fixed":
        want = _direct(cands, gt, durations, 0.4, 5, (0.3, 0.5, 0.7))
    else:  # R@n at m after NMS at m - 0.05; mIoU from the top-1
        want = {"mIoU": _direct(cands, gt, durations, 0.4, 5, (0.5,))["mIoU"]}
        for m in (0.3, 0.5, 0.7):
            want.update({k: v for k, v in _direct(cands, gt, durations, m - 0.05, 5, (m,)).items()
                         if k != "mIoU"})
    assert set(got) == set(want)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key


def test_line_contents():
    cands, meta, gt, durations = _batch(seed=1)
    cfg = EvalConfig(iou_thresholds=(0.5,), nms_mode="per_metric", nms_thresh=0.3, top_k=3)
    lines = candidates_to_lines(cands, meta, gt, durations, cfg, full_ranking=True)
    assert [line["query_id"] for line in lines] == [m["query_id"] for m in meta]
    assert lines[0]["pred_spans"] == [] and lines[0]["ranked_spans"] == []
    for q, line in enumerate(lines):
        assert line["duration"] == pytest.approx(float(durations[q]))
        assert len(line["pred_spans"]) <= 3
        scores = [p[2] for p in line["pred_spans"]]
        assert scores == sorted(scores, reverse=True)
        # Every kept prediction is a valid candidate.
        candidates = cands.spans[q][cands.valid[q]].tolist()
        valid_spans = {tuple(round(x, 5) for x in s) for s in candidates}
        assert all((round(p[0], 5), round(p[1], 5)) in valid_spans for p in line["pred_spans"])
        assert len(line["ranked_spans"]) == int(cands.valid[q].sum())
        assert line["ranked_spans"][:1] == line["pred_spans"][:1]
        # The papers' union of thresholds always gets its own NMS list.
        assert set(line["pred_spans_by_iou"]) == {"0.1", "0.3", "0.5", "0.7"}
    with pytest.raises(ValueError, match="inconsistent"):
        candidates_to_lines(cands, meta[:2], gt, durations, cfg)


def test_fixed_mode_writes_no_per_iou_lists():
    cands, meta, gt, durations = _batch(seed=2)
    lines = candidates_to_lines(cands, meta, gt, durations, EvalConfig())
    assert all("pred_spans_by_iou" not in line and "ranked_spans" not in line for line in lines)


def test_missing_per_iou_threshold_raises():
    cands, meta, gt, durations = _batch(seed=2)
    lines = candidates_to_lines(cands, meta, gt, durations,
                                EvalConfig(nms_mode="per_metric", iou_thresholds=(0.5,)))
    with pytest.raises(DataError, match="0.9"):
        metrics_from_lines(lines, EvalConfig(), (1,), (0.9,))


def test_inclusive_index_mode():
    line = {"query_id": "q", "video_id": "v", "duration": 10.0, "gt_span": [0.0, 2.0],
            "pred_spans": [[0.0, 1.0, 1.0]]}
    cfg = EvalConfig(iou_mode="inclusive_index", discount=False)
    # 10 clips: gt -> indices [0, 1], prediction -> [0, 0]; (0 - 0 + 1) / (1 - 0 + 1) = 0.5.
    m = metrics_from_lines([line], cfg, (1,), (0.5, 0.7), num_clips=10)
    assert m == {"R1@0.5": 1.0, "R1@0.7": 0.0, "mIoU": 0.5}
    with pytest.raises(ConfigError, match="num_clips"):
        metrics_from_lines([line], cfg, (1,), (0.5,))


def test_didemo_protocol_keys_and_empty_input():
    records = [MomentRecord("q1", "v", 30.0, "q", (5.0, 10.0),
                            ((5.0, 10.0), (5.0, 10.0), (5.0, 10.0), (0.0, 5.0)))]
    lines = records_to_lines(records, np.array([[[5.0, 10.0], [0.0, 5.0]]]), np.array([[1.0, 0.5]]))
    m = metrics_from_lines(lines, EvalConfig(), (1, 5), (0.5,), protocol="didemo")
    assert (m["didemo/R1"], m["didemo/R5"], m["didemo/mIoU"]) == (1.0, 1.0, 1.0)
    assert m["R1@0.5"] == 1.0
    with pytest.raises(DataError, match="no prediction lines"):
        metrics_from_lines([], EvalConfig())
    with pytest.raises(ConfigError, match="protocol"):
        metrics_from_lines(lines, EvalConfig(), protocol="official")


GOOD = {"query_id": "q1", "video_id": "v", "duration": 10.0, "gt_span": [1.0, 2.0],
        "pred_spans": [[1.0, 2.0, 0.5]]}


@pytest.mark.parametrize("bad,reason", [
    ("{not json", "not a prediction line"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "gt_span"}), "gt_span"),
    (json.dumps(GOOD | {"pred_spans": [[3.0, 2.0, 0.1]]}), "start > end"),
    (json.dumps(GOOD | {"pred_spans": [[1.0, 2.0]]}), "3 finite numbers"),
    (json.dumps(GOOD | {"duration": 0}), "duration"),
    (json.dumps(GOOD | {"pred_spans_by_iou": [1]}), "pred_spans_by_iou"),
    (json.dumps(GOOD), "repeats line 1"),
])
def test_read_rejects_bad_lines_with_their_line_number(tmp_path, bad, reason):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + bad + "\n")
    with pytest.raises(DataError, match=reason) as err:
        read_predictions(path)
    assert f"{path}:3" in str(err.value)


def test_round_trip_and_missing_file(tmp_path):
    lines = [GOOD, replace_line(GOOD, query_id="q2", pred_spans=[])]
    write_predictions(tmp_path / "a.jsonl", lines)
    assert read_predictions(tmp_path / "a.jsonl") == lines
    with pytest.raises(DataError, match="cannot read"):
        read_predictions(tmp_path / "missing.jsonl")


def replace_line(line, **kw):
    return {**line, **kw}


def test_eval_config_defaults_are_used():
    cfg = replace(EvalConfig(), iou_thresholds=(0.5,), recall_at=(1,))
    assert set(metrics_from_lines([GOOD], cfg)) == {"R1@0.5", "mIoU", "dR1@0.5"}

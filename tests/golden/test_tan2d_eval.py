"""``eval.protocol: tan2d`` against the release's ``core/eval.py`` (``eval``, ``nms``, ``iou``) on
every official TEST block of every ``tan2d_eval`` fixture found (tests/golden/conftest.py).

The ranked predictions go through the one evaluation path (candidates -> prediction lines ->
metrics) with descending scores, so the list order is the ranking as in the release."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from momentloc.config.schema import EvalConfig
from momentloc.engine.predictions import candidates_to_lines, metrics_from_lines
from momentloc.metrics.protocol_tan2d import tan2d_hits, tan2d_nms
from momentloc.metrics.retrieval import recall_key
from momentloc.models.base import Candidates


def _blocks(fx):
    assert fx["outputs"], "the fixture holds no TEST block"
    return fx["outputs"].items()


def _cfg(block) -> EvalConfig:
    return EvalConfig(protocol="tan2d", nms_thresh=float(block["nms_thresh"]),
                      top_k=int(block["top_k"]),
                      recall_at=tuple(int(n) for n in block["recalls"]),
                      iou_thresholds=tuple(float(m) for m in block["tious"]))


def _lines(fx, cfg: EvalConfig):
    inp = fx["inputs"]
    seg, count = inp["segments"], inp["num_segments"]
    q, k = seg.shape[:2]
    valid = torch.arange(k)[None, :] < count[:, None]
    scores = (k - torch.arange(k, dtype=torch.float64))[None, :].expand(q, k) * valid
    cands = Candidates(spans=torch.nan_to_num(seg), scores=scores, valid=valid)
    meta = [{"query_id": str(i), "video_id": f"v{i}", "query": "", "annotator_spans": []}
            for i in range(q)]
    return candidates_to_lines(cands, meta, inp["gt_times"], inp["durations"], cfg)


def test_nms_keeps_what_the_release_keeps(golden_tan2d_eval):
    _, fx = golden_tan2d_eval
    for name, block in _blocks(fx):
        lines = _lines(fx, _cfg(block))
        want, num = block["kept"].numpy(), block["num_kept"].numpy()
        for i, line in enumerate(lines):
            got = np.array([p[:2] for p in line["pred_spans"]]).reshape(-1, 2)
            assert len(got) == num[i], (name, i)
            assert np.array_equal(got, want[i, :num[i]]), (name, i)
        # the NMS alone, on the padded lists
        seg = fx["inputs"]["segments"].numpy()
        _, kept = tan2d_nms(seg, fx["inputs"]["num_segments"].numpy(), block["nms_thresh"],
                               block["top_k"])
        assert np.array_equal(kept.sum(1), num), name


def test_recall_table_and_miou_equal_the_release(golden_tan2d_eval):
    folder, fx = golden_tan2d_eval
    gt = fx["inputs"]["gt_times"].numpy()
    for name, block in _blocks(fx):
        cfg = _cfg(block)
        lines = _lines(fx, cfg)
        metrics = metrics_from_lines(lines, cfg)
        table = block["eval_result"].numpy()
        for i, m in enumerate(cfg.iou_thresholds):
            for j, n in enumerate(cfg.recall_at):
                assert metrics[recall_key(n, m)] == table[i, j], (name, n, m)
        assert metrics["mIoU"] == pytest.approx(block["miou"], abs=1e-15), name
        # per query: hits (IoU > m strictly) and the top-1 IoU
        kept = block["kept"].numpy()
        valid = np.arange(kept.shape[1])[None, :] < block["num_kept"].numpy()[:, None]
        hits, top1 = tan2d_hits(np.nan_to_num(kept), valid, gt, cfg.recall_at, cfg.iou_thresholds)
        assert np.array_equal(hits, block["hits"].numpy()), name
        assert np.array_equal(top1, block["top1_iou"].numpy()), name
        print(f"\n{folder.name}/{name}: table and mIoU identical "
              f"(mIoU {metrics['mIoU']:.6f})", end="")

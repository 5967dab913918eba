"""``Predictor.localize`` (``momentloc predict``) decodes as the run's evaluation does
(``decode_candidates``): a tan2d-protocol run predicts the moments its evaluation scores."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import momentloc
from momentloc.engine.inference import Predictor
from momentloc.models.base import Candidates


@pytest.fixture(scope="module")
def tan2d_run(tmp_path_factory):
    """A tiny 2D-TAN run trained for two steps with ``eval.protocol: tan2d``."""
    tmp = tmp_path_factory.mktemp("tan2d-protocol-run")
    card = momentloc.synthesize("charades", tmp / "data", size="tiny", seed=2)
    cfg = momentloc.load_config("tan2d", "synthetic", [
        "train.epochs=1", "train.max_steps=2", "train.progress=false", "eval.protocol=tan2d"])
    momentloc.train(cfg, tmp / "run", dataset=str(card))
    return tmp / "run"


def test_predict_gives_the_evaluated_moments(tan2d_run):
    predictor = Predictor(tan2d_run)
    assert predictor.cfg.eval.protocol == "tan2d"
    lines = [json.loads(x) for x in (tan2d_run / "predictions_test.jsonl").read_text().splitlines()]
    for line in lines[:3]:
        (p,) = predictor.predict(line["video_id"], line["query"], top_k=predictor.cfg.eval.top_k)
        got = [[m.start, m.end, m.score] for m in p.moments]
        np.testing.assert_allclose(got, line["pred_spans"], atol=1e-4)


def test_localize_ranks_ties_as_the_protocol(tan2d_run, monkeypatch):
    """Two moments of equal score: the 2D-TAN release ranks the later cell first, the common
    NMS the earlier candidate; localize follows the run's protocol."""
    predictor = Predictor(tan2d_run)
    spans = torch.tensor([[[0.0, 2.0], [1.0, 3.0], [5.0, 8.0], [6.0, 8.0]]])
    cands = Candidates(spans=spans, scores=torch.tensor([[0.5, 0.9, 0.9, 0.7]]),
                       valid=torch.tensor([[True, True, True, False]]))
    monkeypatch.setattr(predictor, "candidates", lambda features, duration, queries: cands)
    feats = np.zeros((8, predictor.cfg.data.feature_dim), np.float32)

    def ranked():
        (moments,) = predictor.localize(feats, 10.0, ["a query"], top_k=4)
        return [(m.start, m.end, m.score) for m in moments]

    # tan2d: the tie goes to [5, 8]; the invalid [6, 8] takes part with score 0, dropped by
    # NMS after [5, 8] (overlap 2/3 > 0.5)
    assert ranked() == [(5.0, 8.0, pytest.approx(0.9)), (1.0, 3.0, pytest.approx(0.9)),
                        (0.0, 2.0, 0.5)]
    predictor.cfg = dataclasses.replace(
        predictor.cfg, eval=dataclasses.replace(predictor.cfg.eval, protocol="standard"))
    assert ranked() == [(1.0, 3.0, pytest.approx(0.9)), (5.0, 8.0, pytest.approx(0.9)),
                        (0.0, 2.0, 0.5)]

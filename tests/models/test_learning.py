"""Each paper model's ``synthetic`` preset, trained by the engine on the tiny charades-like set
(300 training and 100 test queries), beats the prior baseline fitted on the same training set.

One test query is 0.01 of R1, and on 300 training queries the models are only starting to
leave the prior, so each bar is set below the margins measured over several seeds (in the
comments) and, where R1@0.5 is noisy, also asks for a margin on a steadier metric. The
`small` sets show the real margins (each model's docs page).
"""

from __future__ import annotations

import pytest

from momentloc.config import load_config

pytestmark = pytest.mark.slow


def _train(name: str, card, run_dir, *overrides: str):
    from momentloc.engine import train

    cfg = load_config(name, "synthetic", [f"data.dataset={card}", "train.progress=false",
                                          *overrides])
    result = train(cfg, run_dir)
    return result.test_metrics, result.baseline_metrics


def _mean(metrics: dict, keys: tuple[str, ...]) -> float:
    return sum(metrics[k] for k in keys) / len(keys)


def test_csmgan(synth_card, tmp_path):
    # At lr 5e-4 CSMGAN leaves the anchor prior after a few hundred steps: 25 epochs of the
    # tiny set (about 475 steps) give R1@0.5 0.27 and mIoU 0.258 against the prior's 0.18 and
    # 0.199 (seed 0); the preset's 15 epochs give 0.23.
    got, prior = _train("csmgan", synth_card("charades", "tiny"), tmp_path / "run",
                        "train.epochs=25")
    assert got["R1@0.5"] >= prior["R1@0.5"] + 0.05, (got, prior)
    assert got["mIoU"] >= prior["mIoU"] + 0.03, (got, prior)


def test_fian(synth_card, tmp_path):
    got, prior = _train("fian", synth_card("charades", "tiny"), tmp_path / "run")
    # seed 0: about 0.35 against the prior's 0.18
    assert got["R1@0.5"] >= prior["R1@0.5"] + 0.05, (got, prior)


def test_cimha(synth_card, tmp_path):
    got, prior = _train("cimha", synth_card("charades", "tiny"), tmp_path / "run")
    # R1@0.5 varies with the seed on 100 test queries (seeds 0-5: 0.26, 0.26, 0.28, 0.42, 0.23,
    # 0.29 against the prior's 0.18); R1 averaged over IoU 0.5 and 0.7 is steadier (+0.09,
    # +0.08, +0.09, +0.19, +0.06, +0.115 over the prior). The test runs seed 0.
    keys = ("R1@0.5", "R1@0.7")
    assert _mean(got, keys) >= _mean(prior, keys) + 0.04, (got, prior)
    assert got["R1@0.5"] > prior["R1@0.5"], (got, prior)


def test_cma(synth_card, tmp_path):
    got, prior = _train("cma", synth_card("charades", "tiny"), tmp_path / "run")
    # seeds 0-5: R1@0.5 0.19-0.28 (prior 0.18) and mIoU 0.255-0.299 (prior 0.199); the
    # regression model's mean IoU is the steadier signal.
    assert got["R1@0.5"] > prior["R1@0.5"], (got, prior)
    assert got["mIoU"] >= prior["mIoU"] + 0.04, (got, prior)


def test_lgn(synth_card, tmp_path):
    # 10 epochs (about 45 s of CPU): a 2-D map model is slow to leave the prior on 300
    # queries. Its R1@0.5 is still at the prior's level there (seeds 0-4: 0.23, 0.14, 0.18,
    # 0.13, 0.15 against 0.18; 15 epochs do not change that), while mIoU, far less noisy,
    # clears the prior's 0.199 on every seed (0.302, 0.270, 0.302, 0.256, 0.259).
    got, prior = _train("lgn", synth_card("charades", "tiny"), tmp_path / "run",
                        "train.epochs=10")
    assert got["mIoU"] >= prior["mIoU"] + 0.03, (got, prior)

"""Shared fixtures.

``synth_card`` generates a synthetic benchmark once per test session per
``(preset, size, seed)`` and returns its dataset card path::

    def test_learns(synth_card):
        card = synth_card("charades", "tiny")          # Path to dataset.yaml

Generated sets are read-only for tests: copy a set before changing its files. No global
thread settings are made here: the generator is NumPy-only and byte-deterministic for any
thread count.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synth_card(tmp_path_factory) -> Callable[..., Path]:
    """Factory ``synth_card(preset, size="tiny", seed=0) -> Path`` (cached per session)."""
    from momentloc.synth import generate

    cache: dict[tuple[str, str, int], Path] = {}

    def make(preset: str, size: str = "tiny", seed: int = 0) -> Path:
        key = (preset, size, int(seed))
        if key not in cache:
            out = tmp_path_factory.mktemp(f"synth-{preset}-{size}-seed{seed}")
            cache[key] = generate(preset, size, int(seed), out)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def shapes_run(tmp_path_factory):
    """``(world_dir, run_dir)``: a rendered shapes world of 11 videos (``momentloc synth
    --preset shapes``, docs/video.md) and a tan2d run trained on it for two epochs. Skipped
    without PyAV (the ``video`` extra)."""
    pytest.importorskip("av", reason="PyAV (the 'video' extra) is not installed")
    from momentloc.config import load_config
    from momentloc.engine.runs import with_dataset
    from momentloc.engine.trainer import train
    from momentloc.video.shapes import synthesize_shapes

    world = tmp_path_factory.mktemp("shapes-world")
    card = synthesize_shapes("tiny", 0, world, videos=(8, 3)).card_path
    cfg = load_config("tan2d", "synthetic", ["train.epochs=2", "train.progress=false",
                                             "data.num_clips=16"])
    run_dir = tmp_path_factory.mktemp("shapes-run") / "run"
    train(with_dataset(cfg, str(card), None), run_dir)
    return world, run_dir

"""Synthetic grounding benchmarks written in the real benchmarks' formats (docs/synthetic.md).

``generate("charades", "tiny", seed=0, out_dir="data/synth")`` writes Charades-STA-style
annotations, HDF5 clip features, GloVe-format word vectors, a ground-truth sidecar and a
dataset card, and returns the card's path. The same arguments write the same bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from momentloc.synth.generate import GENERATOR_VERSION, SynthSummary, synthesize
from momentloc.synth.presets import PRESETS, SIZES

__all__ = ["GENERATOR_VERSION", "PRESETS", "SIZES", "SynthSummary", "generate", "synthesize"]


def generate(preset: str, size: str, seed: int, out_dir: str | os.PathLike, *,
             overwrite: bool = False, label_jitter: float | None = None) -> Path:
    """Write a synthetic benchmark into ``out_dir`` and return its ``dataset.yaml`` path.

    Args:
        preset: ``charades``, ``activitynet`` or ``tacos`` (which benchmark it imitates).
        size: ``tiny`` (a few hundred training queries), ``small`` (a few thousand) or
            ``full`` (the real benchmark's pair counts).
        seed: everything is a deterministic function of it.
        out_dir: created if missing; must be empty unless ``overwrite``.
        overwrite: write into a non-empty directory (files of the same names are replaced).
        label_jitter: std of the training labels' boundary noise as a fraction of the
            moment length (default: the preset's, 0.05); 0 writes exact training labels.
    Raises:
        ConfigError: unknown preset or size, a bad jitter, or a non-empty ``out_dir``.
    """
    return synthesize(preset, size, seed, out_dir, overwrite=overwrite,
                      label_jitter=label_jitter).card_path

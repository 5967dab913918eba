"""Presets (which benchmark a synthetic dataset imitates) and sizes (how many queries).

Each preset fixes the domain, the sentence style, the timing of events, the query mix, the
feature layout and the on-disk format of its benchmark. Sizes: ``tiny`` for unit and
learning tests, ``small`` for quick experiments, ``full`` with the real benchmark's pair
counts (Charades-STA 12,408 / 3,720; ActivityNet Captions 37,421 / 17,505 / 17,031; TACoS in
the 2D-TAN split 9,790 / 4,436 / 4,001).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from momentloc.errors import ConfigError
from momentloc.synth.concepts import COOKING, HOUSEHOLD, OUTDOOR, Domain
from momentloc.synth.language import ACTIVITYNET_STYLE, CHARADES_STYLE, TACOS_STYLE, Style
from momentloc.synth.world import VisualParams

SIZES = ("tiny", "small", "full")


@dataclass(frozen=True)
class Timing:
    """How events are laid out in a video.

    Event lengths are ``tempo * median * lognormal(event_sigma)``, gaps (including before
    the first and after the last event) ``tempo * exponential(gap_mean_s)``, with one
    ``tempo = lognormal(tempo_sigma)`` per video; the duration is their sum, rescaled into
    ``duration_range``.
    """

    num_events: tuple[int, int]
    event_median_s: float
    event_sigma: float
    gap_mean_s: float
    tempo_sigma: float
    duration_range: tuple[float, float]


@dataclass(frozen=True)
class QueryMix:
    """Which queries a video gets.

    Attributes:
        weights: relative weight of each kind among a video's available targets.
        targets: ``(min, max)`` distinct targets described per video.
        paraphrases: ``(min, max)`` sentences per target.
        repeat_prob: chance that an event repeats an earlier event's type (ordinal and
            context queries need repeats).
        hard_prob: chance that an event shares the action or the object of an earlier one.
    """

    weights: dict[str, float]
    targets: tuple[int, int]
    paraphrases: tuple[int, int]
    repeat_prob: float = 0.25
    hard_prob: float = 0.45


@dataclass(frozen=True)
class FeatureLayout:
    """Feature file and temporal unit: one feature every ``clip_stride_frames / fps`` s."""

    filename: str
    imitates: str
    dims: dict[str, int]
    fps: float
    clip_frames: int
    clip_stride_frames: int
    dataset_key: str | None = None

    @property
    def rate(self) -> float:
        """Features per second."""
        return self.fps / self.clip_stride_frames


@dataclass(frozen=True)
class Preset:
    name: str
    benchmark: str
    format: str
    domain: Domain
    style: Style
    timing: Timing
    mix: QueryMix
    features: FeatureLayout
    splits: tuple[str, ...]
    roles: dict[str, str | None]
    sizes: dict[str, tuple[int, ...]]
    iou_thresholds: tuple[float, ...]
    num_scenes: int
    label_jitter: float = 0.05
    tacos_fps: float = 29.4
    visual: VisualParams = field(default_factory=VisualParams)
    word_dim: int = 300


PRESETS: dict[str, Preset] = {
    "charades": Preset(
        name="charades", benchmark="Charades-STA", format="charades_sta",
        domain=HOUSEHOLD, style=CHARADES_STYLE,
        timing=Timing(num_events=(3, 5), event_median_s=6.0, event_sigma=0.35, gap_mean_s=1.2,
                      tempo_sigma=0.2, duration_range=(12.0, 75.0)),
        mix=QueryMix(weights={"single": 0.5, "sequence": 0.1, "ordinal": 0.2, "context": 0.2},
                     targets=(2, 3), paraphrases=(1, 2), repeat_prob=0.3),
        features=FeatureLayout(filename="synthetic_i3d_features.hdf5", imitates="I3D",
                               dims={"tiny": 1024, "small": 1024, "full": 1024},
                               fps=24.0, clip_frames=24, clip_stride_frames=24),
        splits=("train", "test"), roles={"train": "train", "val": None, "test": "test"},
        sizes={"tiny": (300, 100), "small": (3000, 1000), "full": (12408, 3720)},
        iou_thresholds=(0.5, 0.7), num_scenes=12),
    "activitynet": Preset(
        name="activitynet", benchmark="ActivityNet Captions", format="activitynet",
        domain=OUTDOOR, style=ACTIVITYNET_STYLE,
        timing=Timing(num_events=(3, 6), event_median_s=17.0, event_sigma=0.55, gap_mean_s=3.0,
                      tempo_sigma=0.45, duration_range=(12.0, 400.0)),
        mix=QueryMix(weights={"single": 0.5, "sequence": 0.2, "ordinal": 0.15, "context": 0.15},
                     targets=(3, 5), paraphrases=(1, 1)),
        features=FeatureLayout(filename="synthetic_c3d_pca500.hdf5", imitates="C3D fc7 + PCA",
                               dims={"tiny": 500, "small": 500, "full": 500},
                               fps=16.0, clip_frames=32, clip_stride_frames=32,
                               dataset_key="c3d_features"),
        splits=("train", "val_1", "val_2"),
        roles={"train": "train", "val": "val_1", "test": "val_2"},
        sizes={"tiny": (300, 100, 100), "small": (3000, 1000, 1000),
               "full": (37421, 17505, 17031)},
        iou_thresholds=(0.3, 0.5, 0.7), num_scenes=40),
    "tacos": Preset(
        name="tacos", benchmark="TACoS", format="tacos",
        domain=COOKING, style=TACOS_STYLE,
        timing=Timing(num_events=(6, 8), event_median_s=17.0, event_sigma=0.6, gap_mean_s=14.0,
                      tempo_sigma=0.2, duration_range=(90.0, 900.0)),
        mix=QueryMix(weights={"single": 0.5, "sequence": 0.2, "ordinal": 0.15, "context": 0.15},
                     targets=(7, 11), paraphrases=(2, 4), repeat_prob=0.3),
        features=FeatureLayout(filename="synthetic_c3d_features.hdf5", imitates="C3D fc6",
                               dims={"tiny": 512, "small": 512, "full": 4096},
                               fps=29.4, clip_frames=32, clip_stride_frames=32),
        splits=("train", "val", "test"), roles={"train": "train", "val": "val", "test": "test"},
        sizes={"tiny": (300, 100, 100), "small": (3000, 1000, 1000),
               "full": (9790, 4436, 4001)},
        iou_thresholds=(0.1, 0.3, 0.5), num_scenes=1),
}


def get_preset(name: str, size: str) -> Preset:
    """The preset ``name``, checking ``size``.

    Raises:
        ConfigError: unknown preset or size.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown synthetic preset {name!r} ({', '.join(PRESETS)})")
    if size not in SIZES:
        raise ConfigError(f"unknown size {size!r} ({', '.join(SIZES)})")
    return PRESETS[name]

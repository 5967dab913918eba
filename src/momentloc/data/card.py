"""Dataset cards: one small YAML file that says what a dataset is and where its files are.

Example (Charades-STA with I3D features)::

    name: charades-sta
    format: charades_sta
    splits:
      train: {annotations: charades_sta_train.txt, durations: Charades_v1_train.csv}
      test:  {annotations: charades_sta_test.txt,  durations: Charades_v1_test.csv}
    roles: {train: train, val: null, test: test}
    features:
      store: npy_dir
      path: i3d_features
      dim: 1024
      extractor: I3D (Kinetics-400), RGB stream
      layer: avg-pool before logits
      clip_frames: 64
      clip_stride_frames: 24
      fps: 24
      normalization: none
    word_vectors: glove.840B.300d.txt
    metrics: {recall_at: [1, 5], iou_thresholds: [0.5, 0.7]}

A split can be the union of several annotation files (``test_union: {annotations:
[val_1.json, val_2.json]}``; see :class:`SplitFiles`). Relative paths resolve against
``data_root`` when given, else the card's directory.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import yaml

from momentloc.errors import ConfigError

Format = Literal["charades_sta", "activitynet", "tacos", "didemo", "qvhighlights", "records"]


@dataclass(frozen=True)
class SplitFiles:
    """Files of one split. ``durations`` is needed by Charades-STA (Charades_v1_*.csv or
    charades.json) and optional for DiDeMo (exact video lengths instead of 5 s per segment).

    A split may be the union of several annotation files (``annotations: [val_1.json,
    val_2.json]``, CMA's ActivityNet test set): the reader reads each and concatenates the
    records, and each query id gains the file's name (``test_union:val_1:v_x:0``) since the
    files may annotate the same videos. ``durations`` is then one file for all, or a list
    with one file per annotation file.
    """

    annotations: str | tuple[str, ...]
    durations: str | tuple[str, ...] | None = None

    def __post_init__(self):
        files = self.annotation_files()
        if not files or any(not f for f in files):
            raise ValueError("annotations: name one file or a non-empty list of files")
        if len(set(files)) != len(files):
            raise ValueError(f"annotations: a file is listed twice ({', '.join(files)})")
        if len(files) > 1 and len({part_name(f) for f in files}) != len(files):
            raise ValueError(f"annotations: the files of a union need distinct names "
                             f"(their query ids carry the name): {', '.join(files)}")
        if isinstance(self.durations, tuple) and len(self.durations) != len(files):
            raise ValueError(f"durations: {len(self.durations)} files for {len(files)} "
                             f"annotation files (give one for all, or one per annotation file)")

    def annotation_files(self) -> tuple[str, ...]:
        """The annotation file, or the files of a union, as written in the card."""
        return (self.annotations,) if isinstance(self.annotations, str) else self.annotations

    def duration_files(self) -> tuple[str | None, ...]:
        """The durations file of each annotation file (``None`` where there is none)."""
        if isinstance(self.durations, tuple):
            return self.durations
        return (self.durations,) * len(self.annotation_files())


def part_name(path: str) -> str:
    """The name a union's file gives its query ids: the file name without its extension."""
    return Path(path).name.split(".")[0]


@dataclass(frozen=True)
class FeatureSpec:
    """Where the clip features are and what they are.

    Attributes:
        store: ``hdf5`` (one file; a dataset per video, or a group per video holding
            ``dataset_key``), ``npy_dir`` (``<key>.npy`` per video), ``npz_dir``
            (``<key>.npz`` holding ``npz_key``).
        path: the file or directory.
        dataset_key: dataset name inside each video's group (e.g. ``c3d_features``), if any.
        npz_key: array name inside each ``.npz``.
        key_template: maps a video id to its feature key, e.g. ``"v_{video_id}"`` or
            ``"{video_id}.avi"``.
        dim: feature dimension before any PCA.
        extractor, layer: network and layer that produced the features.
        clip_frames, clip_stride_frames, fps: temporal unit (0 / None when unknown).
        normalization: what was applied after extraction (``none``, ``l2``, ``pca500`` ...).
    """

    store: Literal["hdf5", "npy_dir", "npz_dir"]
    path: str
    dim: int
    dataset_key: str | None = None
    npz_key: str = "features"
    key_template: str = "{video_id}"
    extractor: str = "unknown"
    layer: str = "unknown"
    clip_frames: int = 0
    clip_stride_frames: int = 0
    fps: float | None = None
    normalization: str = "none"

    def describe(self) -> str:
        """One line naming the features, printed with every result."""
        unit = f", {self.clip_frames}-frame clips every {self.clip_stride_frames}" if self.clip_frames else ""
        return f"{self.extractor} {self.layer} ({self.dim}-d{unit}, norm: {self.normalization})"


@dataclass(frozen=True)
class CardMetrics:
    recall_at: tuple[int, ...] = (1, 5)
    iou_thresholds: tuple[float, ...] = (0.5, 0.7)


@dataclass(frozen=True)
class DatasetCard:
    """A dataset: its annotation format and files per split, split roles, features, metrics.

    Attributes:
        roles: which split trains, validates and tests (``val`` may be ``None``). This is
            explicit because ActivityNet val_1 vs val_2 as "test" changes results.
        protocol: ``standard``, or ``didemo`` to also report the annotator-aware protocol.
        root: directory relative paths resolve against (set when loaded; not in the YAML).
    """

    name: str
    format: Format
    splits: dict[str, SplitFiles]
    roles: dict[str, str | None]
    features: FeatureSpec | None = None
    word_vectors: str | None = None
    metrics: CardMetrics = field(default_factory=CardMetrics)
    protocol: Literal["standard", "didemo"] = "standard"
    notes: str = ""
    root: str = "."

    def path(self, rel: str) -> Path:
        p = Path(rel).expanduser()
        return p if p.is_absolute() else Path(self.root) / p

    def annotation_paths(self, split: str) -> list[Path]:
        """The resolved annotation file(s) of ``split`` (several for a union)."""
        return [self.path(f) for f in self.splits[split].annotation_files()]

    def split_for(self, role: str) -> str | None:
        """Split name playing ``role`` (train / val / test)."""
        return self.roles.get(role)

    def with_root(self, root: str | Path) -> "DatasetCard":
        return replace(self, root=str(root))

    def to_dict(self) -> dict:
        from momentloc.config.load import to_plain  # local: avoids an import cycle at load time

        d = to_plain(self)
        d.pop("root")
        return d


_BENCHMARKS = ("charades-sta", "activitynet-captions", "tacos", "didemo")


def load_card(dataset: str, data_root: str | None = None) -> DatasetCard:
    """Load a card from a YAML path, or a benchmark preset name with ``data_root``.

    Raises:
        ConfigError: unknown key, wrong type, unknown format, or a role naming a missing split.
    """
    from momentloc.config.load import configs_dir, from_dict

    p = Path(dataset)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if not p.is_file():
            raise ConfigError(f"{p}: dataset card not found")
        path, root = p, Path(data_root) if data_root else p.parent
    else:
        path = configs_dir() / "datasets" / f"{dataset}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown dataset {dataset!r}: give a card file (dataset.yaml) or one of "
                              f"{', '.join(_BENCHMARKS)} with --data-root")
        if data_root is None:
            raise ConfigError(f"dataset {dataset!r} needs --data-root (the directory holding its files)")
        root = Path(data_root)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError, yaml.YAMLError) as e:  # ValueError: not UTF-8
        raise ConfigError(f"{path}: cannot read dataset card ({e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a dataset card is a mapping")
    card = from_dict(DatasetCard, raw, str(path))
    for role, split in card.roles.items():
        if role not in ("train", "val", "test"):
            raise ConfigError(f"{path}: unknown role {role!r} (train, val, test)")
        if split is not None and split not in card.splits:
            raise ConfigError(f"{path}: role {role} names split {split!r}, which is not in splits "
                              f"({', '.join(card.splits)})")
    return card.with_root(root)


def save_card(card: DatasetCard, path: str | Path) -> None:
    """Write a card as YAML (atomically)."""
    from momentloc.data.records import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(card.to_dict(), sort_keys=False))

"""Extracting a directory of videos into a feature store, and one video for a trained run.

``extract_directory(videos_dir, extractor, out)`` writes

- ``out`` (e.g. ``features.hdf5``): one dataset per video id (the file name without its
  extension), the layout :func:`momentloc.data.features.open_store` reads;
- ``out + ".json"``: the sidecar, holding the dataset card's ``features`` section (the
  extractor's :class:`~momentloc.data.card.FeatureSpec`, path relative to the sidecar) and
  per-video durations, clip counts and frame sizes.

It is resumable from a kill at any point: each video's features first go to
``.<out>.parts/<id>.npz`` (written to a temporary file and renamed; each part records the
extractor that made it), videos already in the store or in the parts directory are skipped,
and the run ends with three steps, each atomic and each safe to repeat:

1. the store is replaced by one holding its kept videos and every part;
2. the sidecar is replaced (its per-video entries come from the old sidecar and the parts);
3. the parts are deleted.

The parts are deleted only once the sidecar describes them, so after a kill between steps 1
and 2 of a first run (a store without its sidecar) the parts still describe every video of
the store, and the next run finishes the job. Interrupting it loses at most the video being
decoded, and a resumed run writes the same store and sidecar as an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from momentloc.data.card import DatasetCard, FeatureSpec
from momentloc.data.features import write_hdf5_store
from momentloc.data.policy import InputPolicy
from momentloc.data.records import atomic_write_text
from momentloc.errors import ConfigError, DataError
from momentloc.video.decode import VIDEO_EXTENSIONS, DecodeLimits
from momentloc.video.extractors import FeatureExtractor, check_same, extractor_from_spec

log = logging.getLogger("momentloc.video")

SIDECAR_FORMAT = "momentloc-features"


def sidecar_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".json")


def parts_dir(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(f".{out.name}.parts")


def find_videos(directory: str | os.PathLike, recursive: bool = False) -> dict[str, Path]:
    """Video files of a directory by id (file name without extension), sorted by id.

    Raises:
        ConfigError: not a directory, no video in it, or two files with the same id.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a directory of videos")
    files = sorted(p for p in (directory.rglob("*") if recursive else directory.iterdir())
                   if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()
                   and not p.name.startswith("."))
    out: dict[str, Path] = {}
    for p in files:
        if p.stem in out:
            raise ConfigError(f"two videos have the id {p.stem!r}: {out[p.stem]} and {p}")
        out[p.stem] = p
    if not out:
        raise ConfigError(f"{directory}: no video file ({', '.join(VIDEO_EXTENSIONS)})")
    return out


def read_sidecar(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read the feature sidecar ({e})", path=str(path)) from e
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise DataError(f"not a momentloc feature sidecar (format {SIDECAR_FORMAT!r})",
                        path=str(path))
    return data


def sidecar_spec(data: dict) -> FeatureSpec:
    """The sidecar's ``features`` section as a FeatureSpec (path relative to the sidecar)."""
    from momentloc.config.load import from_dict

    return from_dict(FeatureSpec, data["features"], "feature sidecar")


@dataclass
class ExtractSummary:
    """What :func:`extract_directory` did."""

    out: Path
    sidecar: Path
    spec: FeatureSpec
    extracted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)   # already present
    failed: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def _write_part(directory: Path, video_id: str, features: np.ndarray, meta: dict,
                extractor_id: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{video_id}.npz"
    tmp = directory / f".{video_id}.tmp{os.getpid()}.npz"
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, features=features, meta=np.array(json.dumps(meta)),
                     extractor=np.array(extractor_id))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _read_part(path: Path) -> tuple[np.ndarray, dict, str] | None:
    """``(features, meta, extractor id)`` of a part; None (with a warning) when it cannot be
    read or predates the recorded extractor id, so that the video is extracted again."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["features"], json.loads(str(z["meta"])), str(z["extractor"])
    except (OSError, ValueError, KeyError, EOFError, json.JSONDecodeError):
        log.warning("%s: unreadable partial result, extracting the video again", path)
        return None


def _read_parts(out: Path, extractor: FeatureExtractor) -> dict[str, tuple[np.ndarray, dict]]:
    """Finished videos of an interrupted run, by id (checking that this extractor made them).

    Raises:
        ConfigError: a part was made by another extractor.
    """
    parts = parts_dir(out)
    found: dict[str, tuple[np.ndarray, dict]] = {}
    for p in sorted(parts.glob("*.npz")) if parts.is_dir() else ():
        if p.name.startswith(".") or (r := _read_part(p)) is None:
            continue  # a temporary file of a killed write, or an unreadable part
        try:
            check_same(extractor, r[2])
        except ConfigError as e:
            raise ConfigError(f"{p}: left by an interrupted extraction into {out.name} with "
                              f"another extractor ({e}); choose another --out, or delete "
                              f"{parts} to start over") from None
        found[p.stem] = (r[0], r[1])
    return found


def _existing(out: Path, extractor: FeatureExtractor, parts: dict[str, tuple[np.ndarray, dict]]
              ) -> tuple[set[str], dict]:
    """Keys already in ``out`` and the sidecar's per-video entries (checking the extractor).

    A store without its sidecar is the trace of a run killed between replacing the store and
    writing the sidecar: accepted when the parts of that run describe every video in it.

    Raises:
        ConfigError: the store was made by another extractor, or it has no sidecar and is not
            the store of an interrupted extraction.
    """
    side = sidecar_path(out)
    if not out.exists():
        return set(), {}
    import h5py

    try:
        with h5py.File(out, "r") as f:
            keys = set(f.keys())
    except OSError as e:
        raise DataError(f"cannot read the feature store ({e})", path=str(out)) from e
    if side.is_file():
        data = read_sidecar(side)
        check_same(extractor, data["features"]["extractor"])
        return keys, dict(data.get("videos", {}))
    if not keys <= set(parts):
        missing = sorted(keys - set(parts))
        raise ConfigError(f"{out} exists without its sidecar {side.name}, and {len(missing)} of "
                          f"its videos (e.g. {missing[0]!r}) are not among the parts of an "
                          f"interrupted extraction ({parts_dir(out).name}); choose another --out")
    log.info("%s: resuming an extraction interrupted before its sidecar was written", out)
    return keys, {}


def extract_directory(videos_dir: str | os.PathLike, extractor: FeatureExtractor,
                      out: str | os.PathLike, *, policy: InputPolicy | None = None,
                      limits: DecodeLimits | None = None, recursive: bool = False,
                      progress: bool = True) -> ExtractSummary:
    """Extract every video of ``videos_dir`` into the HDF5 store ``out`` (see module doc).

    Args:
        extractor: a built extractor; a store made by another extractor is refused.
        policy: ``InputPolicy("skip")`` skips videos that fail to decode (listed in the
            summary); the default raises the first DataError.
    Raises:
        ConfigError: no videos, duplicate ids, or an existing store of another extractor.
        DataError: a bad video (unless skipped).
    """
    from momentloc.engine.runtime import progress as progress_bar

    t0 = time.perf_counter()
    out = Path(out)
    policy = policy or InputPolicy()
    videos = find_videos(videos_dir, recursive)
    parts = parts_dir(out)
    part_results = _read_parts(out, extractor)
    stored, metas = _existing(out, extractor, part_results)
    metas |= {vid: meta for vid, (_, meta) in part_results.items()}
    spec = extractor.feature_spec(out.name)
    summary = ExtractSummary(out, sidecar_path(out), spec)
    todo = [v for v in videos if not ((v in stored or v in part_results) and v in metas)]
    summary.skipped = [v for v in videos if v not in todo]
    bar = progress_bar(todo, desc=f"extract {extractor.name}", unit="video", enabled=progress)
    for vid in bar:
        bar.set_postfix_str(vid)
        try:
            result = extractor.extract(videos[vid], limits)
        except DataError as e:
            policy.bad(e)
            summary.failed[vid] = str(e)
            continue
        meta = {"duration": result.duration, "num_clips": int(result.features.shape[0]),
                "file": videos[vid].relative_to(Path(videos_dir)).as_posix(),
                "width": result.info.width, "height": result.info.height,
                "fps": result.info.fps, "rotation": result.info.rotation}
        _write_part(parts, vid, result.features, meta, extractor.id)
        part_results[vid] = (result.features, meta)
        metas[vid] = meta
        summary.extracted.append(vid)
    policy.log_summary(f"extract {videos_dir}")
    # the three closing steps of the module doc, in this order
    if part_results or not out.exists():
        _write_store(out, stored, part_results)
    entries = {v: metas[v] for v in sorted(metas) if v in stored or v in part_results}
    _write_sidecar(summary.sidecar, spec, entries)
    _clear_parts(parts)
    summary.durations = {v: float(m["duration"]) for v, m in entries.items()}
    summary.seconds = time.perf_counter() - t0
    return summary


def _write_sidecar(path: Path, spec: FeatureSpec, entries: dict) -> None:
    atomic_write_text(path, json.dumps(
        {"format": SIDECAR_FORMAT, "version": 1, "features": _spec_dict(spec),
         "videos": entries}, indent=1))


def _clear_parts(parts: Path) -> None:
    """Delete the parts directory (parts and temporary files of killed writes)."""
    if not parts.is_dir():
        return
    for p in parts.iterdir():
        p.unlink(missing_ok=True)
    parts.rmdir()


def _spec_dict(spec: FeatureSpec) -> dict:
    from momentloc.config.load import to_plain

    return to_plain(spec)


def _write_store(out: Path, stored: set[str], parts: dict[str, tuple[np.ndarray, dict]]) -> None:
    """Rewrite ``out`` with its kept videos plus the new parts (atomically)."""
    import h5py

    def items():
        if stored:
            with h5py.File(out, "r") as f:
                for key in sorted(stored - set(parts)):
                    yield key, f[key][()]
        for key in sorted(parts):
            yield key, parts[key][0]

    write_hdf5_store(out, items())


def features_for_video(card: DatasetCard, path: str | os.PathLike,
                       limits: DecodeLimits | None = None, **overrides):
    """Features of a video file made the way a run's card says its features were made.

    Args:
        card: the run's dataset card (its ``features.extractor`` must be a momentloc id).
        overrides: extractor parameters to replace, e.g. ``model`` (a CLIP directory that
            moved) or ``device``; identity parameters must still match the card.
    Returns:
        :class:`~momentloc.video.extractors.ExtractedVideo` (``features (M, D)``, duration).
    Raises:
        ConfigError: the card has no features, they come from an outside extractor, or the
            extractor differs.
        DataError: the file cannot be decoded.
    """
    if card.features is None:
        raise ConfigError(f"dataset card {card.name!r} has no features section")
    extractor = extractor_from_spec(card.features, **overrides)
    return extractor.extract(path, limits)

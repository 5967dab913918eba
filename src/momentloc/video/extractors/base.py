"""The feature-extractor interface and its registry (like the models': a dict and a decorator).

An extractor turns a batch of clips ``(N, F, H, W, 3)`` uint8 into ``(N, D)`` float32
features. It knows how it samples clips (:class:`ClipSampling`) and describes itself as the
dataset card's :class:`~momentloc.data.card.FeatureSpec`. The spec's ``extractor`` field is a
canonical id, ``name(key=value, ...)`` (values in JSON), from which the same extractor is
rebuilt: so a run trained on extracted features can extract a new video the same way, and
``momentloc predict`` refuses a different one.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
import numpy as np

from momentloc.data.card import FeatureSpec
from momentloc.errors import ConfigError
from momentloc.video.decode import ClipReader, ClipSampling, DecodeLimits, VideoInfo

_REGISTRY: dict[str, type["FeatureExtractor"]] = {}
_ID = re.compile(r"^([a-z][a-z0-9_]*)\((.*)\)$")


def register_extractor(name: str):
    """Class decorator registering a :class:`FeatureExtractor` subclass under ``name``; the
    class is built as ``cls(**params)``."""

    def deco(cls):
        if name in _REGISTRY:
            raise ValueError(f"extractor {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def list_extractors() -> list[str]:
    return sorted(_REGISTRY)


def create_extractor(name: str, **params) -> "FeatureExtractor":
    """Build a registered extractor.

    Raises:
        ConfigError: unknown name or parameter.
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown feature extractor {name!r} "
                          f"(known: {', '.join(list_extractors())})")
    try:
        return _REGISTRY[name](**params)
    except TypeError as e:  # an unknown or missing parameter
        raise ConfigError(f"extractor {name!r}: {e}") from e


def format_id(name: str, params: dict) -> str:
    """``name(k=v, ...)`` with keys sorted and values as JSON."""
    body = ", ".join(f"{k}={json.dumps(params[k])}" for k in sorted(params))
    return f"{name}({body})"


def parse_id(text: str) -> tuple[str, dict] | None:
    """``(name, params)`` of an id written by :func:`format_id`; None for any other text
    (features made elsewhere, e.g. ``I3D (Kinetics-400)``)."""
    m = _ID.match(text.strip())
    if not m or m.group(1) not in _REGISTRY:
        return None
    params, body, pos = {}, m.group(2).strip(), 0
    decoder = json.JSONDecoder()
    key = re.compile(r"([a-z_][a-z0-9_]*)=")
    while pos < len(body):  # key=<JSON value>, separated by ", "
        k = key.match(body, pos)
        if not k:
            return None
        try:
            params[k.group(1)], pos = decoder.raw_decode(body, k.end())
        except json.JSONDecodeError:
            return None
        if body.startswith(", ", pos):
            pos += 2
        elif pos != len(body):
            return None
    return m.group(1), params


@dataclass(frozen=True)
class ExtractedVideo:
    """Features of one video: ``features (M, D)`` float32, duration in seconds, container info."""

    features: np.ndarray
    duration: float
    info: VideoInfo


class FeatureExtractor:
    """Base class: subclasses set ``name``, ``dim``, ``sampling`` and implement :meth:`encode`.

    Attributes:
        name: registry name.
        dim: feature dimension ``D``.
        sampling: how clips are cut (rate, frames per clip, frame size).
        layer: what the feature is (a network layer, or the hand-crafted recipe).
        normalization: what is applied to the features (``none``, ``l2`` ...).
    """

    name = "?"
    dim = 0
    layer = "?"
    normalization = "none"
    # parameters that say where something is (a checkpoint directory), not what it is: they
    # may differ between the machine that extracted and the one that predicts
    location_params: tuple[str, ...] = ()

    def __init__(self, sampling: ClipSampling):
        self.sampling = sampling

    # -- identity -------------------------------------------------------------------------
    def params(self) -> dict:
        """Parameters that rebuild this extractor with :func:`create_extractor` (sampling
        is part of them)."""
        return {"clip_rate": self.sampling.clip_rate,
                "frames_per_clip": self.sampling.frames_per_clip,
                "max_side": self.sampling.max_side}

    @property
    def id(self) -> str:
        return format_id(self.name, self.params())

    def feature_spec(self, path: str, store: str = "hdf5") -> FeatureSpec:
        """The card's ``features`` section for features this extractor wrote to ``path``.

        The temporal unit is written as ``frames_per_clip``-frame clips every
        ``frames_per_clip`` frames at ``frames_per_clip * clip_rate`` sampled frames per
        second, i.e. one feature every ``1 / clip_rate`` seconds.
        """
        s = self.sampling
        return FeatureSpec(store=store, path=str(path), dim=self.dim, extractor=self.id,
                           layer=self.layer, clip_frames=s.frames_per_clip,
                           clip_stride_frames=s.frames_per_clip,
                           fps=float(s.frames_per_clip * s.clip_rate),
                           normalization=self.normalization)

    # -- work -----------------------------------------------------------------------------
    def encode(self, frames: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """``(N, F, H, W, 3)`` uint8 clips -> ``(N, dim)`` float32 features."""
        raise NotImplementedError

    def extract(self, path: str | os.PathLike, limits: DecodeLimits | None = None,
                batch_clips: int = 32) -> ExtractedVideo:
        """Decode ``path`` and encode its clips batch by batch.

        Raises:
            DataError: the file cannot be decoded (see :class:`ClipReader`).
        """
        reader = ClipReader(Path(path), self.sampling, limits)
        feats = [self.encode(frames) for _, frames in reader.batches(batch_clips)]
        out = np.concatenate(feats).astype(np.float32, copy=False)
        return ExtractedVideo(out, float(reader.duration), reader.info)


def extractor_from_spec(spec: FeatureSpec, **overrides) -> FeatureExtractor:
    """Rebuild the extractor a card's features were made with.

    Args:
        overrides: parameters to replace (e.g. ``model`` when a CLIP checkpoint moved, or
            ``device``); None values and names the extractor does not take are ignored. The
            rebuilt extractor must still be the card's (see :func:`check_same`).
    Raises:
        ConfigError: the features were not made by a momentloc extractor, or the rebuilt
            extractor differs from the card's.
    """
    parsed = parse_id(spec.extractor)
    if parsed is None:
        raise ConfigError(f"the features ({spec.describe()}) were not made by a momentloc "
                          f"extractor, so they cannot be computed from a video file here "
                          f"(known extractors: {', '.join(list_extractors())}); give "
                          f"precomputed features instead")
    name, params = parsed
    # runtime settings this extractor does not take (a device for one that runs no network)
    accepted = inspect.signature(_REGISTRY[name]).parameters
    params |= {k: v for k, v in overrides.items() if v is not None and k in accepted}
    ex = create_extractor(name, **params)
    check_same(ex, spec.extractor)
    return ex


def check_same(extractor: FeatureExtractor, recorded: str) -> None:
    """Raise ConfigError unless ``extractor`` is the one whose id is ``recorded`` (location
    parameters such as a checkpoint directory may differ)."""
    parsed = parse_id(recorded)
    if parsed is not None and parsed[0] == extractor.name:
        drop = set(extractor.location_params)
        mine = {k: v for k, v in extractor.params().items() if k not in drop}
        theirs = {k: v for k, v in parsed[1].items() if k not in drop}
        if mine == theirs:
            return
    raise ConfigError(f"extractor {extractor.id} differs from the one the features were made "
                      f"with, {recorded}; features of different extractors cannot be mixed")

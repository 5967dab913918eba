"""Importing the authors' released checkpoints (``momentloc import MODEL CHECKPOINT``).

A converter module ``momentloc.official.<model>`` per model exposes:

- ``infer_overrides(state) -> dict[str, object]``: dotted config keys (``"model.hidden_dim"``)
  with the values the official tensors' shapes imply;
- ``convert(state, cfg) -> dict[str, Tensor]``: the momentloc state dict, raising
  :class:`~momentloc.errors.ConfigError` naming the tensor and both shapes on a mismatch
  (:func:`check_shapes` does it);
- optionally ``DEFAULT_PRESET``: the preset used when none is given.

The generic parts live here: reading the file (:func:`unwrap_checkpoint`), finding the
converter (:func:`converter`) and writing a run directory that ``evaluate``, ``predict``,
``serve`` and ``report`` use like a trained one (:func:`import_checkpoint`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType

import torch

from momentloc.errors import CheckpointError, ConfigError

log = logging.getLogger("momentloc.official")

# Official models with a converter module (momentloc.official.<name>).
CONVERTERS = ("tan2d", "csmgan")
# Keys under which training scripts commonly nest the state dict.
_NESTING_KEYS = ("state_dict", "model_state_dict", "model", "net", "network", "module")


def _is_state(obj) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def unwrap_checkpoint(obj) -> dict[str, torch.Tensor]:
    """The official state dict inside what an official script saved.

    Accepts a state dict, one nested under a usual key (``state_dict``, ``model``, ...; other
    entries such as an optimizer state or an epoch are ignored) at any depth, and strips the
    ``module.`` prefix of DataParallel / DistributedDataParallel models.

    Raises:
        CheckpointError: no mapping of names to tensors is found.
    """
    seen = 0
    while not _is_state(obj):
        if not isinstance(obj, Mapping) or seen > 4:
            raise CheckpointError(f"no state dict (a mapping of parameter names to tensors) in "
                                  f"the checkpoint (found {type(obj).__name__})")
        nested = [obj[k] for k in _NESTING_KEYS if k in obj and isinstance(obj[k], Mapping)]
        if not nested:
            keys = ", ".join(map(repr, list(obj)[:8]))
            raise CheckpointError(f"no state dict in the checkpoint: its keys are {keys}; expected "
                                  f"parameter names or one of {', '.join(_NESTING_KEYS)}")
        obj, seen = nested[0], seen + 1
    state = dict(obj)
    while state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def converter(model_name: str) -> ModuleType:
    """The converter module of ``model_name`` (imported on first use).

    Raises:
        ConfigError: no converter for this model.
    """
    if model_name not in CONVERTERS:
        raise ConfigError(f"no official checkpoint converter for model {model_name!r}; "
                          f"known: {', '.join(CONVERTERS)}")
    return importlib.import_module(f"momentloc.official.{model_name}")


def check_shapes(converted: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor],
                 origin: Mapping[str, str]) -> None:
    """Check converted tensors against a model's state dict, key by key.

    Args:
        converted: momentloc name -> tensor. expected: the momentloc model's state dict.
        origin: momentloc name -> the official name it came from (for messages).
    Raises:
        ConfigError: a tensor whose shape differs (naming the official and momentloc names and
            both shapes), a parameter the model lacks, or one the checkpoint lacks.
    """
    from momentloc.engine.checkpoint import state_mismatch

    problem = state_mismatch(converted, expected)
    if problem is None:
        return
    kind, names = problem
    name = names[0]
    if kind == "unexpected":
        raise ConfigError(f"official tensor {origin.get(name, name)!r} (momentloc {name!r}) "
                          f"has no place in the model built from the config")
    if kind == "shape":
        raise ConfigError(f"official tensor {origin.get(name, name)!r} has shape "
                          f"{list(converted[name].shape)}, the model built from the config "
                          f"expects {list(expected[name].shape)} for {name!r}")
    raise ConfigError(f"the checkpoint has no tensor for {', '.join(names[:5])}"
                      f"{' ...' if len(names) > 5 else ''} (momentloc names)")


def check_against_config(weights: Mapping[str, torch.Tensor], origin: Mapping[str, str],
                         cfg, checkpoint_video_dim: int, word_dim: int) -> None:
    """:func:`check_shapes` against the model ``cfg`` builds: video width ``data.pca_dim`` or
    ``data.feature_dim``, else the checkpoint's; word width the checkpoint's."""
    from momentloc.models.base import ModelContext
    from momentloc.models.registry import create_model

    ctx = ModelContext(video_dim=cfg.data.pca_dim or cfg.data.feature_dim or checkpoint_video_dim,
                       word_dim=word_dim, num_clips=cfg.data.num_clips,
                       max_query_len=cfg.data.max_query_len)
    check_shapes(weights, create_model(cfg.model_name, cfg.model, ctx).state_dict(), origin)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_official(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read an official checkpoint with ``torch.load(..., weights_only=True)`` and unwrap it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for corrupt or foreign files
        first = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointError(f"{path}: not a readable checkpoint "
                              f"({type(e).__name__}: {first})") from e
    try:
        return unwrap_checkpoint(obj)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None


def import_checkpoint(model_name: str, checkpoint_path: str | os.PathLike,
                      out_dir: str | os.PathLike, preset: str | None = None,
                      overrides: Iterable[str] = (), dataset: str | None = None,
                      data_root: str | None = None, glove: str | os.PathLike | None = None) -> Path:
    """Turn an official checkpoint into a momentloc run directory.

    The config is the preset, then the sizes the checkpoint's shapes imply
    (``infer_overrides``; a value differing from the preset is logged), then ``overrides``
    (``key=value``). The dataset card (``dataset``, default the preset's ``data.dataset``)
    provides the annotations and features the run evaluates on and the GloVe file its
    vocabulary's word vectors are read from, as in training; ``glove`` replaces the card's
    file (the official models embed words with a particular GloVe release: 2D-TAN with
    ``glove.6B.300d``, CSMGAN with ``glove.840B.300d``). The weights are converted, loaded
    into the momentloc model with ``strict=True`` and written as ``checkpoints/best.pt``.

    The directory is assembled beside ``out_dir`` and renamed into place, so an interrupted
    import leaves nothing half-written; an existing non-empty ``out_dir`` is refused.

    Returns:
        ``out_dir``.
    Raises:
        ConfigError: unknown model, no preset, sizes that do not fit (naming the tensor and
            both shapes), an unusable dataset card.
        CheckpointError: a missing, corrupt or foreign checkpoint file.
    """
    from momentloc.config.load import config_to_dict, load_config, parse_overrides
    from momentloc.data.build import build_data
    from momentloc.data.records import atomic_write_text
    from momentloc.engine.checkpoint import save_checkpoint
    from momentloc.engine.runs import META, resolve_card, with_dataset, write_run_files
    from momentloc.models.registry import create_model

    conv = converter(model_name)
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(f"{out_dir} exists and is not empty; choose a new run directory")
    checkpoint_path = Path(checkpoint_path)
    state = load_official(checkpoint_path)
    preset = preset or getattr(conv, "DEFAULT_PRESET", None)
    if preset is None:
        raise ConfigError(f"give --preset for {model_name} (the official setting the checkpoint "
                          f"was trained in)")

    inferred = conv.infer_overrides(state)
    base = load_config(model_name, preset)
    for key, value in inferred.items():
        section, _, field = key.partition(".")
        have = getattr(getattr(base, section), field)
        if have != value and not (isinstance(have, tuple) and list(have) == value):
            log.info("%s = %r from the checkpoint's shapes (preset %s: %r)", key, value, preset,
                     have)
    extra: dict = {}
    for key, value in inferred.items():
        section, _, field = key.partition(".")
        extra.setdefault(section, {})[field] = value
    user = list(overrides)
    parse_overrides(user)  # malformed key=value fails before anything is read
    cfg = load_config(model_name, preset, overrides=user, extra=extra)
    if dataset is not None or data_root is not None:
        cfg = with_dataset(cfg, dataset or cfg.data.dataset, data_root)
    card = resolve_card(cfg)
    if glove is not None:
        glove = Path(glove).expanduser().resolve()
        if not glove.is_file():
            raise ConfigError(f"{glove}: GloVe file not found (--glove)")
        card = dataclasses.replace(card, word_vectors=str(glove))

    weights = conv.convert(state, cfg)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.import-tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        write_run_files(tmp, cfg, card, world_size=1)
        data = build_data(cfg.data, card, tmp / "artifacts")
        model = create_model(cfg.model_name, cfg.model, data.context())
        check_shapes(weights, model.state_dict(), {})
        model.load_state_dict(weights, strict=True)
        save_checkpoint(tmp / "checkpoints" / "best.pt", {
            "model_name": cfg.model_name, "config": config_to_dict(cfg),
            "model": model.state_dict(), "epoch": 0, "step": 0,
            "imported_from": str(checkpoint_path.resolve())})
        meta = json.loads((tmp / META).read_text())
        meta["imported"] = {"official_model": model_name,
                            "checkpoint": str(checkpoint_path.resolve()),
                            "sha256": _sha256(checkpoint_path), "preset": preset,
                            "inferred": dict(inferred),
                            "overrides": user}
        atomic_write_text(tmp / META, json.dumps(meta, indent=2))
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked above
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    log.info("imported %s (%d tensors) into %s", checkpoint_path, len(state), out_dir)
    return out_dir

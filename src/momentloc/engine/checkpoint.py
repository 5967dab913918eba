"""Checkpoints: written atomically, read with ``torch.load(..., weights_only=True)``.

A checkpoint holds only tensors and plain Python values: the model and optimizer state, the
epoch/step counters, the best score, the resolved config (a plain dict) and the model name, so a
model rebuilds from the checkpoint alone and no arbitrary object is ever unpickled.

A run keeps two: ``last.pt`` (every epoch) and ``best.pt`` (the epoch with the best validation
score). The trainer writes ``best.pt`` before ``last.pt``, so the best epoch that ``last.pt``
records is always the one ``best.pt`` holds, whatever instant a kill lands on (a ``best.pt``
newer than ``last.pt`` is rewritten when the resumed run repeats that epoch);
:func:`resolve_checkpoint` checks it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from momentloc import __version__
from momentloc.atomic import atomic_write_bytes
from momentloc.errors import CheckpointError

FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically.

    The checkpoint is serialized in memory first, then written by the one atomic writer, so a
    full disk is an :class:`~momentloc.atomic.WriteError` naming ``path`` (never a torch
    serializer error) and the previous checkpoint is kept.
    """
    payload = {"format_version": FORMAT_VERSION, "momentloc_version": __version__, **state}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint safely (``weights_only=True``).

    Raises:
        CheckpointError: missing, truncated/corrupt, not a momentloc checkpoint, or one that
            would need arbitrary objects unpickled.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from e
    if not isinstance(state, dict) or "format_version" not in state or "model" not in state:
        raise CheckpointError(f"{path}: not a momentloc checkpoint")
    if state["format_version"] > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer momentloc "
                              f"({state.get('momentloc_version')}); upgrade to read it")
    return state


def state_mismatch(given: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
                   ) -> tuple[str, list[str]] | None:
    """The first way the tensors ``given`` do not fit ``expected`` (both name -> tensor):
    ``("unexpected", [name])``, ``("shape", [name])`` or ``("missing", every missing name)``;
    None when they fit."""
    for name, tensor in given.items():
        if name not in expected:
            return "unexpected", [name]
        if tuple(expected[name].shape) != tuple(tensor.shape):
            return "shape", [name]
    missing = [name for name in expected if name not in given]
    return ("missing", missing) if missing else None


def load_model_state(model: torch.nn.Module, weights: dict[str, torch.Tensor], path: str | os.PathLike
                     ) -> None:
    """Load ``weights`` (a checkpoint's ``model``) into ``model``, or a CheckpointError naming
    ``path`` and the first tensor that is missing, unexpected or of another shape."""
    own = model.state_dict()
    problem = state_mismatch(weights, own)
    if problem is not None:
        kind, names = problem
        name = names[0]
        if kind == "unexpected":
            raise CheckpointError(f"{path}: tensor {name!r} is not in the model: the checkpoint "
                                  f"was written by another model or configuration")
        if kind == "shape":
            raise CheckpointError(f"{path}: tensor {name!r} has shape "
                                  f"{tuple(weights[name].shape)} in the checkpoint but "
                                  f"{tuple(own[name].shape)} in the model built from the config: "
                                  f"the checkpoint was written with another configuration")
        raise CheckpointError(f"{path}: tensor {name!r} of the model is missing from the "
                              f"checkpoint ({len(names)} missing)")
    model.load_state_dict(weights)


def resolve_checkpoint(run_dir: str | os.PathLike, which: str) -> Path:
    """The file ``which`` names in ``run_dir``: ``best``, ``last`` or a path to a ``.pt`` file.

    ``best`` is ``checkpoints/best.pt`` and never silently another file: missing, or not the
    best epoch that ``last.pt`` records (a run killed after writing ``best.pt`` and before
    ``last.pt``), it is a CheckpointError saying what to do.
    """
    run_dir = Path(run_dir)
    if which.endswith(".pt"):
        return Path(which)
    if which not in ("best", "last"):
        raise CheckpointError(f"checkpoint must be best, last or a .pt file, not {which!r}")
    path = run_dir / "checkpoints" / f"{which}.pt"
    if not path.is_file():
        hint = (" (use --checkpoint last for the last epoch's weights)"
                if which == "best" and (run_dir / "checkpoints" / "last.pt").is_file() else "")
        raise CheckpointError(f"{path}: checkpoint not found{hint}")
    last = run_dir / "checkpoints" / "last.pt"
    if which == "best" and last.is_file():
        recorded = int(load_checkpoint(last).get("best_epoch", -1))
        held = int(load_checkpoint(path).get("epoch", -1))
        if recorded != held:
            raise CheckpointError(
                f"{path} holds epoch {held}, but {last} records epoch {recorded} as the best: the "
                f"run was interrupted while saving; finish it with momentloc train --resume {run_dir}")
    return path

"""Errors raised for bad user input. Each names where the problem is (file, line, video id)."""

from __future__ import annotations


class MomentlocError(Exception):
    """Base class of every error momentloc raises on purpose."""


class DataError(MomentlocError):
    """Bad annotation, feature or word-vector input.

    Args:
        message: what is wrong.
        path: file the problem is in, if known.
        line: 1-based line number (or record index for JSON files), if known.
        video_id: video the problem concerns, if known.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 video_id: str | None = None):
        self.reason = message
        self.path = path
        self.line = line
        self.video_id = video_id
        where = []
        if path is not None:
            where.append(f"{path}:{line}" if line is not None else str(path))
        if video_id is not None:
            where.append(f"video {video_id!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class ConfigError(MomentlocError):
    """Unknown key, wrong type or invalid value in a configuration or dataset card."""


class CheckpointError(MomentlocError):
    """A checkpoint that cannot be read or does not match the model."""

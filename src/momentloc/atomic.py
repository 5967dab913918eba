"""The one way momentloc writes a file: whole or not at all, with a clear error when it cannot.

:func:`atomic_write_bytes` writes to a temporary file beside the target (``.NAME.tmpPID``),
flushes it to disk and renames it over the target, so a reader (or a resumed run) sees either
the previous file or the new one, never half of one. A failed write removes its temporary and
keeps the previous file; a full disk is reported as such, with the path. A process killed in
the middle leaves its temporary behind: :func:`remove_stale_temporaries` clears them (the run
directory lock guarantees nobody else is writing them).
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from momentloc.errors import MomentlocError

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_TEMPORARY = re.compile(r"^\..+\.tmp\d+$")


class WriteError(MomentlocError, OSError):
    """A file could not be written (disk full, permission, ...). The previous file is kept.

    An OSError too (``errno`` is the cause's); its message names the file.
    """

    def __str__(self) -> str:
        return str(self.strerror)


def temporary_path(path: Path) -> Path:
    """Where :func:`atomic_write_bytes` stages ``path`` in this process."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def _write_file(tmp: Path, data: bytes | memoryview) -> None:
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` atomically (temporary file beside it, fsync, rename).

    Raises:
        WriteError: the write failed; says "no space left on device" when the disk is full.
            ``path`` keeps its previous content and no temporary file is left behind.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_file(tmp, data)
        os.replace(tmp, path)
    except OSError as e:
        _discard(tmp)
        if e.errno in _DISK_FULL:
            raise WriteError(e.errno, f"{path}: no space left on device (the disk is full; "
                                      f"the previous {path.name}, if any, is kept)") from e
        raise WriteError(e.errno, f"{path}: cannot write ({e.strerror or e})") from e
    except BaseException:
        _discard(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def refuse_existing(path: str | os.PathLike, overwrite: bool, hint: str = "another --out") -> None:
    """ConfigError when ``path`` exists (for a directory: holds files) and not ``overwrite``:
    no command replaces a file it did not create unless asked to with ``--overwrite``."""
    from momentloc.errors import ConfigError

    path = Path(path)
    if overwrite or not path.exists():
        return
    if path.is_dir():
        if not any(p.name != ".momentloc.lock" for p in path.iterdir()):
            return
        raise ConfigError(f"{path} already holds files; choose {hint} or pass --overwrite to "
                          f"write over them")
    raise ConfigError(f"{path} already exists; choose {hint} or pass --overwrite to replace it")


def _discard(tmp: Path) -> None:
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        pass  # reported by the caller's error; a leftover is cleared on the next start


def remove_stale_temporaries(*directories: str | os.PathLike) -> list[Path]:
    """Delete the ``.NAME.tmpPID`` files that killed writers left in ``directories``.

    Call only while holding the directory's lock (:mod:`momentloc.engine.lock`).
    """
    removed = []
    for d in map(Path, directories):
        if not d.is_dir():
            continue
        for p in d.iterdir():
            if _TEMPORARY.match(p.name) and p.is_file():
                p.unlink()
                removed.append(p)
    return removed

"""One writer per run directory: an exclusive ``fcntl.flock`` on ``RUN_DIR/.momentloc.lock``.

A process that trains or writes into a run directory holds the lock for as long as it writes;
a second one is refused with an error naming the holder (pid, host, command, start time). The
kernel releases a ``flock`` when its holder exits or is killed, so a lock never outlives its
process and needs no cleanup; the lock file itself stays (deleting it would let two processes
lock two different files). Under torchrun only rank 0 writes, so only rank 0 locks.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from momentloc.errors import MomentlocError

LOCK_FILE = ".momentloc.lock"


class RunBusyError(MomentlocError):
    """Another process holds the run directory's lock."""


def _describe(holder: dict) -> str:
    if not holder:
        return "another process (its details are not written yet)"
    return (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}: "
            f"{holder.get('command')}")


class RunLock:
    """Exclusive lock on a run directory; a context manager.

    Args:
        run_dir: the directory (created if missing).
        purpose: what the holder does (``train``, ``evaluate``, ...), shown to a refused process.
    """

    def __init__(self, run_dir: str | os.PathLike, purpose: str):
        self.run_dir = Path(run_dir)
        self.purpose = purpose
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunLock":
        """Take the lock, or raise :class:`RunBusyError` naming the process that holds it."""
        if self._fd is not None:
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_holder(fd)
            os.close(fd)
            raise RunBusyError(f"{self.run_dir} is in use by {_describe(holder)} "
                               f"({holder.get('purpose', 'writing')}); wait for it to finish or "
                               f"use another directory") from None
        except BaseException:
            os.close(fd)
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                "command": " ".join(sys.argv), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd
        return self

    @staticmethod
    def _read_holder(fd: int) -> dict:
        # The holder writes its details right after locking; give it a moment.
        for _ in range(20):
            raw = os.pread(fd, 65536, 0)
            try:
                return json.loads(raw.decode())
            except (UnicodeDecodeError, json.JSONDecodeError):
                time.sleep(0.05)
        return {}

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


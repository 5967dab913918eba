"""Seeding, device selection, mixed precision and progress display: decided once, by the
caller."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sys
import time

import numpy as np
import torch

from momentloc.errors import ConfigError


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def set_deterministic(enabled: bool, device: torch.device) -> None:
    """Deterministic kernels. CPU kernels used here are deterministic already; on CUDA this
    selects deterministic algorithms (slower) and the cuBLAS workspace setting they need."""
    if device.type == "cuda":
        if enabled:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.deterministic = enabled
        torch.backends.cudnn.benchmark = not enabled
        torch.use_deterministic_algorithms(enabled, warn_only=True)


def resolve_device(kind: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("train.device=cuda but CUDA is not available on this machine")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")   # x86 AVX512-BF16 / AMX, Arm BF16


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic units (x86 AVX512-BF16 or AMX, Arm BF16), where
    bf16 autocast is faster than fp32. Without them PyTorch emulates bf16 through fp32."""
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(torch.cpu, probe, None)
        if fn is not None and fn():
            return True
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return any(flag in line.split() for flag in _BF16_CPU_FLAGS)
    except OSError:
        pass
    return False


_warned_cpu_amp = False


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The autocast dtype of ``train.amp`` on ``device``, or None for fp32.

    CUDA: bf16 where supported, else fp16 (with a gradient scaler, :func:`needs_grad_scaler`).
    CPU: bf16 where the processor has bf16 units (:func:`cpu_has_bf16`); elsewhere bf16 would
    be emulated and slower than fp32, so the run stays fp32 and a warning says so once.
    """
    global _warned_cpu_amp
    if not enabled:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        if cpu_has_bf16():
            return torch.bfloat16
        if not _warned_cpu_amp:
            _warned_cpu_amp = True
            logging.getLogger("momentloc").warning(
                "train.amp=true ignored: this CPU has no bf16 units (avx512_bf16 / amx_bf16), "
                "where bf16 autocast is emulated and slower than fp32; running in fp32")
    return None


def autocast(device: torch.device, enabled: bool):
    """Mixed precision (``train.amp``) in the dtype :func:`amp_dtype` picks; a no-op where it
    picks fp32."""
    dtype = amp_dtype(device, enabled)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def needs_grad_scaler(device: torch.device, enabled: bool) -> bool:
    return enabled and device.type == "cuda" and not torch.cuda.is_bf16_supported()


# ----------------------------------------------------------------------------- progress
_quiet = False


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no progress bar anywhere in this process (stage lines are logged at INFO,
    which ``--quiet`` also hides)."""
    global _quiet
    _quiet = bool(quiet)


def bars_enabled() -> bool:
    """Progress bars are drawn on a terminal (stderr) unless ``--quiet`` was given."""
    return not _quiet and sys.stderr.isatty()


class Progress:
    """A progress bar over an iterable or a count of steps (``update``): a tqdm bar on a
    terminal; otherwise nothing is drawn and one line per stage (``desc: n/total unit in
    X s``, with the last postfix) is logged when the stage ends. Made by :func:`progress`."""

    def __init__(self, iterable, desc: str, total: int | None, unit: str, bar: bool,
                 log_line: bool, logger: logging.Logger):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.desc, self.total, self.unit = iterable, desc, total, unit
        self.n, self.postfix, self._closed = 0, "", False
        self._log_line, self._log, self._t0 = log_line, logger, time.perf_counter()
        self._bar = None
        if bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                             file=sys.stderr)

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __len__(self) -> int:
        return self.total or 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())
        if self._bar is not None:
            self._bar.set_postfix(**values)

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text
        if self._bar is not None:
            self._bar.set_postfix_str(text)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        if self._log_line:
            count = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
            self._log.info("%s: %s %s in %.1f s%s", self.desc, count, self.unit,
                           time.perf_counter() - self._t0,
                           f" ({self.postfix})" if self.postfix else "")


def progress(iterable=None, *, desc: str, total: int | None = None, unit: str = "it",
             enabled: bool = True, log_line: bool = True,
             logger: logging.Logger | None = None) -> Progress:
    """The one progress display of every long command (training epochs, evaluation batches,
    table rows, bench steps, figures, rendered videos).

    Args:
        iterable: what to iterate (or ``None`` and call ``update`` per step of ``total``).
        enabled: ``False`` on processes that must stay silent (DDP ranks other than 0).
        log_line: log ``desc: n/total unit in X s`` when the stage ends (off where the caller
            logs its own line, e.g. the trainer's line per epoch).
    """
    return Progress(iterable, desc, total, unit, bar=enabled and bars_enabled(),
                    log_line=enabled and log_line, logger=logger or logging.getLogger("momentloc"))

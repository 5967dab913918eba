"""Resampling a video's clip features to a fixed number of time steps (common spec 3.1).

Two conventions of the field:

- ``pool`` (CSMGAN / 2D-TAN style): every video becomes exactly ``num_clips`` steps, all
  valid. Longer videos are mean-pooled over ``[idx[i], idx[i+1])`` with
  ``idx = floor(linspace(0, M-1, N))``; shorter ones repeat clips (nearest neighbour).
- ``pad`` (VSLNet style): mean-pool (same rule) only when the video is longer than
  ``num_clips``; otherwise copy the clips and pad with zeros and a False mask.
- ``tan2d`` (the 2D-TAN release's input pipeline, exactly): L2-normalize every raw clip, then
  average to ``num_clips`` steps with the release's index rule (:func:`tan2d_indices`): step
  k is the mean of raw clips ``[idx[k], idx[k+1])``, or raw clip ``idx[k]`` when that range is
  empty (short videos repeat clips). Steps averaging several clips are not unit-norm.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

ResampleMode = Literal["pool", "pad", "tan2d"]


def pool_indices(num_raw: int, num_clips: int) -> np.ndarray:
    """``floor(linspace(0, M-1, N))``: the window starts of the pooling rule, ``(N,)`` int64."""
    return np.floor(np.linspace(0, num_raw - 1, num_clips)).astype(np.int64)


def tan2d_indices(num_raw: int, num_clips: int) -> np.ndarray:
    """The 2D-TAN release's window bounds, ``(N + 1,)`` int64.

    ``idx[k] = min(round(k / N * M), M - 1)`` for k = 0..N, computed in float32 (``k / N``
    rounded to float32, times M rounded to float32) and rounded half to even, as the
    release's ``average_to_fixed_length`` computes it with torch.
    """
    steps = np.arange(num_clips + 1, dtype=np.float32) / np.float32(num_clips)
    idx = np.round(steps * np.float32(num_raw)).astype(np.int64)
    return np.minimum(idx, num_raw - 1)


def _window_means(feats: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``mean(feats[a:b])`` per window from float64 prefix sums (``b > a`` where used)."""
    csum = np.zeros((feats.shape[0] + 1, feats.shape[1]), dtype=np.float64)
    np.cumsum(feats, axis=0, dtype=np.float64, out=csum[1:])
    return (csum[b] - csum[a]) / np.maximum(b - a, 1)[:, None]


def _tan2d(feats: np.ndarray, num_clips: int) -> np.ndarray:
    """L2-normalize each raw clip, then the release's averaging (module docstring), vectorized."""
    unit = l2_normalize(feats)
    idx = tan2d_indices(unit.shape[0], num_clips)
    a, b = idx[:-1], idx[1:]
    out = np.where((b > a)[:, None], _window_means(unit, a, b), unit[a])
    return out.astype(np.float32)


def _pool(feats: np.ndarray, num_clips: int) -> np.ndarray:
    """Common spec 3.1 [rec], vectorized with a cumulative sum over time.

    out[i] = mean(feats[a:b]) if b > a + 1 else feats[a], for (a, b) = (idx[i], idx[i+1]);
    out[N-1] = feats[M-1].
    """
    idx = pool_indices(feats.shape[0], num_clips)
    a, b = idx[:-1], idx[1:]                                   # (N-1,) window bounds
    # float64 prefix sums keep the window means accurate for long videos
    means = _window_means(feats, a, b)
    count = (b - a)[:, None]                                   # (N-1, 1)
    # a window of one clip (or none, when M < N repeats clips) is a copy, not a mean
    out = np.where(count > 1, means, feats[a])
    return np.concatenate([out, feats[-1:]], axis=0).astype(np.float32)


def resample(feats: np.ndarray, num_clips: int, mode: ResampleMode = "pool"
             ) -> tuple[np.ndarray, np.ndarray]:
    """Resample ``(M, D)`` clip features to ``num_clips`` time steps.

    Args:
        feats: ``(M, D)`` features of one video, M >= 1.
        num_clips: N, the number of output steps (>= 1).
        mode: ``pool`` (always N pooled/repeated steps, all valid), ``pad`` (pool only
            when M > N; otherwise copy and zero-pad) or ``tan2d`` (L2-normalize each raw clip,
            then the 2D-TAN release's averaging; always N steps, all valid).

    Returns:
        ``(feats (N, D) float32, mask (N,) bool)``; the mask is False on padded steps.
    """
    feats = np.asarray(feats)
    if feats.ndim != 2 or feats.shape[0] < 1:
        raise ValueError(f"resample expects (M >= 1, D) features, got shape {feats.shape}")
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    num_raw, dim = feats.shape
    if mode == "tan2d":
        return _tan2d(feats, num_clips), np.ones(num_clips, dtype=bool)
    if mode == "pool" or (mode == "pad" and num_raw > num_clips):
        return _pool(feats, num_clips), np.ones(num_clips, dtype=bool)
    if mode != "pad":
        raise ValueError(f"unknown resample mode {mode!r} (pool, pad, tan2d)")
    out = np.zeros((num_clips, dim), dtype=np.float32)
    out[:num_raw] = feats
    mask = np.zeros(num_clips, dtype=bool)
    mask[:num_raw] = True
    return out, mask


def l2_normalize(feats: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Divide every row of ``(N, D)`` features by its L2 norm; all-zero (padded) rows stay zero."""
    norm = np.linalg.norm(feats, axis=-1, keepdims=True)
    return (feats / np.maximum(norm, eps)).astype(np.float32)

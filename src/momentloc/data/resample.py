"""Resampling a video's clip features to a fixed number of time steps (common spec 3.1).

Two conventions of the field:

- ``pool`` (CSMGAN / 2D-TAN style): every video becomes exactly ``num_clips`` steps, all
  valid. Longer videos are mean-pooled over ``[idx[i], idx[i+1])`` with
  ``idx = floor(linspace(0, M-1, N))``; shorter ones repeat clips (nearest neighbour).
- ``pad`` (VSLNet style): mean-pool (same rule) only when the video is longer than
  ``num_clips``; otherwise copy the clips and pad with zeros and a False mask.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

ResampleMode = Literal["pool", "pad"]


def pool_indices(num_raw: int, num_clips: int) -> np.ndarray:
    """``floor(linspace(0, M-1, N))``: the window starts of the pooling rule, ``(N,)`` int64."""
    return np.floor(np.linspace(0, num_raw - 1, num_clips)).astype(np.int64)


def _pool(feats: np.ndarray, num_clips: int) -> np.ndarray:
    """Common spec 3.1 [rec], vectorized with a cumulative sum over time.

    out[i] = mean(feats[a:b]) if b > a + 1 else feats[a], for (a, b) = (idx[i], idx[i+1]);
    out[N-1] = feats[M-1].
    """
    num_raw = feats.shape[0]
    idx = pool_indices(num_raw, num_clips)
    a, b = idx[:-1], idx[1:]                                   # (N-1,) window bounds
    # float64 prefix sums keep the window means accurate for long videos
    csum = np.zeros((num_raw + 1, feats.shape[1]), dtype=np.float64)
    np.cumsum(feats, axis=0, dtype=np.float64, out=csum[1:])
    count = (b - a)[:, None]                                   # (N-1, 1)
    means = (csum[b] - csum[a]) / np.maximum(count, 1)
    # a window of one clip (or none, when M < N repeats clips) is a copy, not a mean
    out = np.where(count > 1, means, feats[a])
    return np.concatenate([out, feats[-1:]], axis=0).astype(np.float32)


def resample(feats: np.ndarray, num_clips: int, mode: ResampleMode = "pool"
             ) -> tuple[np.ndarray, np.ndarray]:
    """Resample ``(M, D)`` clip features to ``num_clips`` time steps.

    Args:
        feats: ``(M, D)`` features of one video, M >= 1.
        num_clips: N, the number of output steps (>= 1).
        mode: ``pool`` (always N pooled/repeated steps, all valid) or ``pad`` (pool only
            when M > N; otherwise copy and zero-pad).

    Returns:
        ``(feats (N, D) float32, mask (N,) bool)``; the mask is False on padded steps.
    """
    feats = np.asarray(feats)
    if feats.ndim != 2 or feats.shape[0] < 1:
        raise ValueError(f"resample expects (M >= 1, D) features, got shape {feats.shape}")
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    num_raw, dim = feats.shape
    if mode == "pool" or (mode == "pad" and num_raw > num_clips):
        return _pool(feats, num_clips), np.ones(num_clips, dtype=bool)
    if mode != "pad":
        raise ValueError(f"unknown resample mode {mode!r} (pool, pad)")
    out = np.zeros((num_clips, dim), dtype=np.float32)
    out[:num_raw] = feats
    mask = np.zeros(num_clips, dtype=bool)
    mask[:num_raw] = True
    return out, mask


def l2_normalize(feats: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Divide every row of ``(N, D)`` features by its L2 norm; all-zero (padded) rows stay zero."""
    norm = np.linalg.norm(feats, axis=-1, keepdims=True)
    return (feats / np.maximum(norm, eps)).astype(np.float32)

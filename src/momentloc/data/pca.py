"""PCA of clip features, fitted on the training split (CSMGAN reduces C3D/I3D to 500-d).

Fitting streams over videos and accumulates the (shifted) sum and scatter matrix of every
training clip in float64: memory is O(D^2) (128 MB for D = 4096) whatever the dataset size,
and the result is exact and needs no seed. The projection is then applied per video.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from momentloc.errors import DataError

log = logging.getLogger("momentloc.data")


@dataclass(frozen=True)
class PCA:
    """A fitted projection ``y = (x - mean) @ components``.

    Attributes:
        mean: ``(D,)`` mean clip feature of the training clips.
        components: ``(D, K)`` principal axes as columns, by decreasing variance.
        explained_variance: ``(K,)`` variance along each axis.
        num_clips: how many clips the fit saw.
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    num_clips: int = 0

    @property
    def in_dim(self) -> int:
        return int(self.components.shape[0])

    @property
    def dim(self) -> int:
        return int(self.components.shape[1])

    def transform(self, feats: np.ndarray) -> np.ndarray:
        """``(M, D)`` -> ``(M, K)`` float32."""
        if feats.shape[-1] != self.in_dim:
            raise ValueError(f"PCA expects {self.in_dim}-d features, got {feats.shape[-1]}-d")
        return ((feats - self.mean) @ self.components).astype(np.float32)

    def save(self, path: str | os.PathLike) -> None:
        """Write to ``.npz`` atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        with open(tmp, "wb") as fh:
            np.savez(fh, mean=self.mean, components=self.components,
                     explained_variance=self.explained_variance, num_clips=np.int64(self.num_clips))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PCA":
        """Read a file written by :meth:`save` (DataError naming the file when malformed)."""
        try:
            with np.load(path, allow_pickle=False) as z:
                mean, comp, var = z["mean"], z["components"], z["explained_variance"]
                n = int(z["num_clips"]) if "num_clips" in z.files else 0
        except (OSError, ValueError, KeyError, EOFError) as e:
            raise DataError(f"not a PCA file ({e})", path=str(path)) from e
        if comp.ndim != 2 or mean.shape != (comp.shape[0],) or var.shape != (comp.shape[1],):
            raise DataError(f"inconsistent PCA shapes: mean {mean.shape}, components {comp.shape}, "
                            f"variance {var.shape}", path=str(path))
        return cls(mean.astype(np.float32), comp.astype(np.float32), var.astype(np.float32), n)


def fit_pca(video_ids: Iterable[str], get: Callable[[str], np.ndarray], dim: int) -> PCA:
    """Fit a ``dim``-component PCA on every clip of the given videos.

    Args:
        video_ids: training videos (each read once; duplicates are ignored).
        get: ``video_id -> (M, D)`` features, e.g. ``FeatureStore.get``.
        dim: number of components K (<= D).

    Returns:
        The fitted :class:`PCA`; eigenvector signs are fixed (largest entry positive) so a
        refit gives the same projection.
    """
    shift = total = scatter = None
    count = 0
    for vid in dict.fromkeys(video_ids):
        x = np.asarray(get(vid), dtype=np.float64)
        if shift is None:
            # subtracting a rough mean first keeps the scatter accurate when |mean| >> std
            shift = x.mean(axis=0)
            total = np.zeros_like(shift)
            scatter = np.zeros((x.shape[1], x.shape[1]))
        x = x - shift
        total += x.sum(axis=0)
        scatter += x.T @ x
        count += x.shape[0]
    if shift is None or count < 2:
        raise DataError(f"PCA needs at least 2 training clips, got {count}")
    in_dim = shift.shape[0]
    if not 0 < dim <= in_dim:
        raise ValueError(f"PCA dimension must be in 1..{in_dim}, got {dim}")
    mu = total / count
    cov = (scatter - count * np.outer(mu, mu)) / (count - 1)
    values, vectors = np.linalg.eigh(cov)                     # ascending
    order = np.argsort(values)[::-1][:dim]
    values, vectors = np.clip(values[order], 0.0, None), vectors[:, order]
    signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(dim)])
    vectors = vectors * np.where(signs == 0, 1.0, signs)
    kept = values.sum() / max(np.trace(cov), 1e-30)        # trace = total variance
    log.info("PCA %d -> %d on %d clips keeps %.1f%% of the variance", in_dim, dim, count,
             100 * kept)
    return PCA((shift + mu).astype(np.float32), vectors.astype(np.float32),
               values.astype(np.float32), count)

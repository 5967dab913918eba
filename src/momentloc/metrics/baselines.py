"""Baselines that see no video and no text: what any model must clearly beat.

- :func:`random_baseline`: each prediction is a uniformly random moment of the video.
- :class:`PriorBaseline`: the fixed moment(s), as fractions of the video's duration, that
  best fit the *training* annotations. Datasets with strong moment priors (many long moments
  starting at 0 in ActivityNet Captions) give this baseline a high score, which is why every
  result table prints it.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np

from momentloc.data.records import MomentRecord, atomic_write_text
from momentloc.errors import DataError

# Number of set bits of every byte, for counting hits in bit-packed rows.
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def _durations(records: Sequence[MomentRecord]) -> np.ndarray:
    return np.array([r.duration for r in records], dtype=np.float64)


def _rank_scores(q: int, k: int) -> np.ndarray:
    """Scores 1, (k-1)/k, ... so that sorting by score keeps the given order."""
    return np.broadcast_to(1.0 - np.arange(k) / max(k, 1), (q, k)).copy()


def random_baseline(records: Sequence[MomentRecord], top_k: int,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``top_k`` uniformly random moments per query.

    Each moment is the sorted pair of two independent uniform times in ``[0, T]``, i.e. a
    uniform draw over all moments ``0 <= s <= e <= T`` of the video. Seeded: the same
    records, ``top_k`` and ``seed`` give the same moments.

    Returns:
        ``spans`` ``(Q, top_k, 2)`` seconds and ``scores`` ``(Q, top_k)`` (descending).
    """
    rng = np.random.default_rng(seed)
    dur = _durations(records)
    points = np.sort(rng.random((len(records), top_k, 2)), axis=-1)
    return points * dur[:, None, None], _rank_scores(len(records), top_k)


def _grid_moments(step: float) -> np.ndarray:
    """All normalized moments ``(s, e)``, ``s < e``, with ends on a grid of ``step``."""
    n = int(round(1.0 / step))
    if n < 1 or abs(n * step - 1.0) > 1e-9:
        raise ValueError(f"grid_step must divide 1 (got {step})")
    points = np.arange(n + 1) / n
    i, j = np.triu_indices(n + 1, k=1)                                     # row-major
    return np.stack([points[i], points[j]], axis=1)                        # (C, 2)


class PriorBaseline:
    """The best fixed normalized moments learned from training annotations alone.

    ``fit`` normalizes each training span by its video's duration and considers every moment
    ``(s, e)`` with ``s < e`` on a grid of ``grid_step`` (5,050 moments at 0.01). A training
    span is *hit* by a moment when their IoU is >= ``iou_threshold`` (IoU is scale-invariant,
    so normalized IoU equals IoU in seconds). The first moment maximizes the number of hits,
    i.e. training R@1 at that IoU; each next one maximizes the training spans it hits that no
    earlier moment hits (greedy maximum coverage: each step adds the most training R@n; the
    greedy set is within 1 - 1/e of the best set of that size). Ties, and moments adding
    nothing, go to the most hits alone, then the highest mean IoU with the training spans,
    then grid order.
    ``predict`` returns the same moments for every query, scaled by its duration.

    Args:
        iou_threshold: the IoU the moments are fitted for (the dataset's middle threshold).
        num_moments: how many moments to learn (5 for R@5).
        grid_step: grid resolution as a fraction of the duration.
    """

    def __init__(self, iou_threshold: float = 0.5, num_moments: int = 5, grid_step: float = 0.01):
        if not 0.0 < iou_threshold <= 1.0 or num_moments < 1:
            raise ValueError("need 0 < iou_threshold <= 1 and num_moments >= 1")
        self.iou_threshold = float(iou_threshold)
        self.num_moments = int(num_moments)
        self.grid_step = float(grid_step)
        self.moments = np.zeros((0, 2))          # (M, 2) normalized, best first
        self.gains = np.zeros(0)                 # training spans newly hit by each, fraction
        self.num_train = 0

    def fit(self, train_records: Sequence[MomentRecord]) -> "PriorBaseline":
        """Learn the moments from ``train_records`` (their spans and durations only)."""
        if not train_records:
            raise DataError("prior baseline: no training records to fit")
        dur = _durations(train_records)
        spans = np.array([r.span for r in train_records], dtype=np.float64)
        norm = np.clip(spans / dur[:, None], 0.0, 1.0)                      # (N, 2)
        cells = _grid_moments(self.grid_step)                               # (C, 2)
        points = np.unique(cells)                                           # (P,) grid
        n = len(norm)
        # IoU of cell (p_i, p_j) with span (s, e) is (min(p_j, e) - max(p_i, s)) /
        # (max(p_j, e) - min(p_i, s)): the four min/max terms depend on one grid point each,
        # so they are computed once per point (P, N) and each start row costs two
        # subtractions and a division. Cells are in row-major (i, j > i) order, as in
        # _grid_moments. A negative intersection gives a negative ratio: never a hit.
        # Hits are bit-packed along N, so ActivityNet (5,050 x 37k) takes about 23 MB.
        start_max = np.maximum(points[:, None], norm[None, :, 0])
        start_min = np.minimum(points[:, None], norm[None, :, 0])
        end_min = np.minimum(points[:, None], norm[None, :, 1])
        end_max = np.maximum(points[:, None], norm[None, :, 1])
        hits = np.empty((len(cells), (n + 7) // 8), dtype=np.uint8)
        counts = np.empty(len(cells), dtype=np.int64)
        mean_iou = np.empty(len(cells))
        row = 0
        for i in range(len(points) - 1):
            iou = (end_min[i + 1:] - start_max[i]) / (end_max[i + 1:] - start_min[i])
            hit = iou >= self.iou_threshold                                 # (P-1-i, N)
            counts[row:row + len(hit)] = hit.sum(axis=1)
            mean_iou[row:row + len(hit)] = np.maximum(iou, 0.0).mean(axis=1)
            hits[row:row + len(hit)] = np.packbits(hit, axis=1)
            row += len(hit)
        covered = np.zeros(hits.shape[1], dtype=np.uint8)
        chosen: list[int] = []
        gains: list[int] = []
        for _ in range(min(self.num_moments, len(cells))):
            gain = _POPCOUNT[hits & ~covered].sum(axis=1)                   # (C,)
            gain[chosen] = -1
            # Most new hits, then most hits, then highest mean IoU, then grid order.
            best = int(np.lexsort((-np.arange(len(cells)), mean_iou, counts, gain))[-1])
            chosen.append(best)
            gains.append(int(gain[best]))
            covered |= hits[best]
        self.moments = cells[chosen]
        self.gains = np.array(gains, dtype=np.float64) / n
        self.num_train = n
        return self

    def predict(self, records: Sequence[MomentRecord], top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """The fitted moments scaled by each query's duration.

        Returns:
            ``spans`` ``(Q, k, 2)`` seconds and ``scores`` ``(Q, k)`` (descending), with
            ``k = min(top_k, num_moments)``.
        """
        if len(self.moments) == 0:
            raise RuntimeError("PriorBaseline.predict called before fit or load")
        k = min(top_k, len(self.moments))
        dur = _durations(records)
        spans = self.moments[None, :k, :] * dur[:, None, None]
        return spans, _rank_scores(len(records), k)

    def to_dict(self) -> dict:
        return {"kind": "prior", "iou_threshold": self.iou_threshold,
                "num_moments": self.num_moments, "grid_step": self.grid_step,
                "num_train": self.num_train, "moments": self.moments.tolist(),
                "gains": self.gains.tolist()}

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted prior as JSON (atomically)."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PriorBaseline":
        """Read a prior written by :meth:`save`.

        Raises:
            DataError: unreadable file, wrong kind, or malformed moments.
        """
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
            if d.get("kind") != "prior":
                raise ValueError(f"kind is {d.get('kind')!r}, expected 'prior'")
            prior = cls(d["iou_threshold"], d["num_moments"], d["grid_step"])
            moments = np.asarray(d["moments"], dtype=np.float64).reshape(-1, 2)
            if len(moments) == 0 or np.any(moments < 0) or np.any(moments > 1) or np.any(
                    moments[:, 0] > moments[:, 1]):
                raise ValueError("moments must be non-empty normalized (start <= end) pairs")
            prior.moments = moments
            prior.gains = np.asarray(d.get("gains", [0.0] * len(moments)), dtype=np.float64)
            prior.num_train = int(d.get("num_train", 0))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise DataError(f"not a prior baseline file ({e})", path=str(path)) from e
        return prior

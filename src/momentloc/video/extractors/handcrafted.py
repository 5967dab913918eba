"""``colorhist``: a hand-crafted clip feature that needs no weights.

For each clip of ``F`` frames (``F >= 2``):

- colour layout: on a ``grid x grid`` spatial grid, the joint RGB histogram of each cell
  (``bins`` levels per channel, ``bins**3`` colours) as the fraction of the cell's pixels,
  averaged over the clip's frames;
- colour change: the same histograms of the clip's last frame minus those of its first,
  so that the direction of a change (something appears or leaves, grows, changes colour,
  moves from one cell to the next) is in the clip's own feature: a model that pools clip
  features over a span (2D-TAN's max-pool) loses their order;
- motion energy: on the same grid, the mean absolute difference of grey levels between
  consecutive frames (in [0, 1]).

All are mapped by the signed square root (the Hellinger map), so that a small object's few
pixels are not swamped by the background. ``D = grid**2 * (2 * bins**3 + 1)``. Everything
is a few ``bincount`` calls over the whole batch of clips: no loop over clips, frames or
pixels.
"""

from __future__ import annotations

import numpy as np

from momentloc.errors import ConfigError
from momentloc.video.decode import ClipSampling
from momentloc.video.extractors.base import FeatureExtractor, register_extractor


@register_extractor("colorhist")
class ColorMotionExtractor(FeatureExtractor):
    """Grid colour histograms plus frame-difference motion energy.

    Args:
        grid: cells per side of the spatial grid.
        bins: levels per RGB channel (a power of two up to 256).
        clip_rate, frames_per_clip, max_side: clip sampling (see :class:`ClipSampling`).
    """

    normalization = "signed sqrt (Hellinger)"

    def __init__(self, grid: int = 3, bins: int = 4, clip_rate: float = 1.0,
                 frames_per_clip: int = 4, max_side: int = 128):
        super().__init__(ClipSampling(clip_rate, frames_per_clip, max_side))
        if grid < 1:
            raise ConfigError(f"colorhist: grid must be >= 1, got {grid}")
        if bins < 1 or bins > 256 or bins & (bins - 1):
            raise ConfigError(f"colorhist: bins must be a power of two in [1, 256], got {bins}")
        if frames_per_clip < 2:
            raise ConfigError("colorhist: motion energy needs at least 2 frames per clip")
        self.grid, self.bins = int(grid), int(bins)
        self.colours = self.bins ** 3
        self.dim = self.grid ** 2 * (2 * self.colours + 1)
        self.layer = (f"RGB joint histograms ({self.bins}^3 colours; clip mean and last minus "
                      f"first frame) and frame-difference motion energy on a "
                      f"{self.grid}x{self.grid} grid")

    def params(self) -> dict:
        return {"grid": self.grid, "bins": self.bins, **super().params()}

    def _cells(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(H, W)`` cell index of every pixel and ``(grid**2,)`` pixel count per cell."""
        g = self.grid
        rows = np.arange(height) * g // height
        cols = np.arange(width) * g // width
        cell = (rows[:, None] * g + cols[None, :]).astype(np.int32)
        return cell, np.maximum(np.bincount(cell.ravel(), minlength=g * g), 1)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        """``(N, F, H, W, 3)`` uint8 -> ``(N, grid**2 * (2 * bins**3 + 1))`` float32."""
        x = np.asarray(frames, dtype=np.uint8)
        n, f, h, w, _ = x.shape
        cells, b = self.grid ** 2, self.bins
        cell, count = self._cells(h, w)                                   # (H, W), (G,)
        q = x >> np.uint8(8 - int(np.log2(b)))                            # (N, F, H, W, 3)
        colour = (q[..., 0].astype(np.int32) * b + q[..., 1]) * b + q[..., 2]
        clip = np.arange(n, dtype=np.int32).reshape(n, 1, 1, 1)
        index = (clip * cells + cell) * self.colours + colour             # (N, F, H, W)
        # one histogram per frame and cell: offset the bins of frame j by j * N * G * C
        frame = np.arange(f, dtype=np.int32).reshape(1, f, 1, 1)
        frame_index = index + frame * (n * cells * self.colours)
        hist = np.bincount(frame_index.ravel(), minlength=f * n * cells * self.colours)
        hist = hist.reshape(f, n, cells, self.colours) / count.reshape(1, 1, cells, 1)
        layout, change = hist.mean(0), hist[-1] - hist[0]                 # (N, G, C) each

        grey = x.sum(-1, dtype=np.int16)                                  # (N, F, H, W), 0..765
        energy = np.abs(np.diff(grey, axis=1)).mean(1) / 765.0            # (N, H, W)
        motion = np.bincount((clip[:, 0] * cells + cell).ravel(), weights=energy.ravel(),
                             minlength=n * cells).reshape(n, cells) / count.reshape(1, cells)
        feats = np.concatenate([layout.reshape(n, -1), change.reshape(n, -1), motion], axis=1)
        return (np.sign(feats) * np.sqrt(np.abs(feats))).astype(np.float32)

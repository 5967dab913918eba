"""Helpers of the video tests: frames whose shown index can be read back after encoding."""

import numpy as np


def ramp_frames(count: int, height: int = 32, width: int = 48, step: int = 10) -> np.ndarray:
    """``(count, H, W, 3)`` frames whose red level is ``step * index`` (which frame was shown
    can be read back through compression) with a white marker in the top-left corner."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    frames[..., 0] = (np.arange(count) * step).reshape(-1, 1, 1)
    frames[:, :8, :8] = 255
    return frames


def shown_index(frames: np.ndarray, step: int = 10) -> np.ndarray:
    """Frame index each decoded frame shows, from the red level away from the marker."""
    return np.rint(frames[..., -8:, -8:, 0].astype(float).mean((-1, -2)) / step).astype(int)

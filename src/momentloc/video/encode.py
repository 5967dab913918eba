"""Writing small videos with PyAV (the shapes world, tests, examples)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from momentloc.errors import ConfigError
from momentloc.video.deps import require

_TIME_BASE = Fraction(1, 1000)


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float,
                times: Sequence[float] | None = None, rotation: int = 0,
                codec: str = "libx264", crf: int = 20) -> Path:
    """Encode RGB frames into a video file, atomically (temporary file, then rename).

    Args:
        path: output file; the container follows its suffix (``.mp4``, ``.mkv`` ...).
        frames: ``(H, W, 3)`` uint8 arrays (or one ``(T, H, W, 3)`` array); H and W even for
            H.264's 4:2:0 chroma.
        fps: nominal frame rate; each frame lasts ``1 / fps`` unless ``times`` is given.
        times: presentation time in seconds of each frame (variable frame rate), increasing.
        rotation: counter-clockwise display rotation written as a display matrix (as phones
            do); players and :mod:`momentloc.video.decode` rotate the frames back.
        codec: encoder name (``libx264``, ``mpeg4``, ``libvpx-vp9`` ...).
        crf: constant rate factor for libx264 / VP9 (lower is better quality).
    """
    av = require("av")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    step = int(round(1000 / fps))
    container = av.open(str(tmp), "w")
    try:
        stream = None
        for index, img in enumerate(frames):
            img = np.ascontiguousarray(img, dtype=np.uint8)
            if stream is None:
                h, w = img.shape[:2]
                stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                stream.time_base = stream.codec_context.time_base = _TIME_BASE
                if codec in ("libx264", "libvpx-vp9"):
                    stream.options = {"crf": str(crf)}
                if times is not None:
                    # Without B-frames decode order is presentation order, so the muxer's
                    # sample durations (from decode timestamps) follow the given times.
                    stream.codec_context.max_b_frames = 0
                if rotation:
                    if not hasattr(stream, "set_display_rotation"):
                        raise ConfigError(f"writing rotation metadata needs PyAV >= 18 "
                                          f"(installed: {av.__version__})")
                    stream.set_display_rotation(rotation)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = int(round(times[index] * 1000)) if times is not None else index * step
            frame.time_base = _TIME_BASE
            for packet in stream.encode(frame):
                container.mux(packet)
        if stream is None:
            raise ConfigError(f"{path}: no frame to write")
        for packet in stream.encode():
            container.mux(packet)
        container.close()
        os.replace(tmp, path)
    finally:
        container.close()
        if tmp.exists():
            tmp.unlink()
    return path

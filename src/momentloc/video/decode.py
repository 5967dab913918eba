"""Video decoding and clip sampling with PyAV.

A video becomes ``M`` clips at ``clip_rate`` clips per second, each holding
``frames_per_clip`` frames sampled at evenly spaced *times* inside the clip:

    t(i, j) = (i + (j + 0.5) / F) / clip_rate        i = 0..M-1, j = 0..F-1

and the frame shown at ``t`` is the last decoded frame whose timestamp is ``<= t``. Sampling
by timestamps rather than frame counts keeps variable-frame-rate videos (phones, screen
recordings) aligned with annotations in seconds. ``M = ceil(duration * clip_rate)``; samples
past the last frame repeat it.

Rotation metadata (a display matrix, as phones write) is applied, so frames are returned
the way players show them. Bad input (a missing, non-video, corrupt, truncated or
frameless file) raises :class:`~momentloc.errors.DataError` naming the file; the work is
bounded by a wall-clock timeout and a packet budget, so a damaged file never hangs.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from momentloc.errors import ConfigError, DataError
from momentloc.video.deps import require

log = logging.getLogger("momentloc.video")

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".flv",
                    ".wmv", ".3gp", ".ogv")


@dataclass(frozen=True)
class ClipSampling:
    """How a video is cut into clips.

    Attributes:
        clip_rate: clips per second (one feature per clip).
        frames_per_clip: frames sampled evenly in time inside each clip.
        max_side: frames are scaled so that their longer side is at most this many pixels
            (0 keeps the decoded size).
    """

    clip_rate: float = 1.0
    frames_per_clip: int = 4
    max_side: int = 224

    def __post_init__(self):
        if not (self.clip_rate > 0 and math.isfinite(self.clip_rate)):
            raise ConfigError(f"clip rate must be a positive number of clips per second, "
                              f"got {self.clip_rate}")
        if self.frames_per_clip < 1:
            raise ConfigError(f"frames per clip must be >= 1, got {self.frames_per_clip}")
        if self.max_side < 0:
            raise ConfigError(f"max_side must be >= 0, got {self.max_side}")

    def num_clips(self, duration: float) -> int:
        """Clips covering ``duration`` seconds (at least one)."""
        return max(1, math.ceil(duration * self.clip_rate - 1e-6))

    def sample_times(self, num_clips: int) -> np.ndarray:
        """``(num_clips, frames_per_clip)`` sample times in seconds."""
        offsets = (np.arange(self.frames_per_clip) + 0.5) / self.frames_per_clip
        return (np.arange(num_clips)[:, None] + offsets[None, :]) / self.clip_rate

    def _time(self, k: int) -> float:
        """Time of the ``k``-th sample in clip-major order (same values as sample_times)."""
        i, j = divmod(k, self.frames_per_clip)
        return (i + (j + 0.5) / self.frames_per_clip) / self.clip_rate


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video.

    Attributes:
        duration: seconds (stream, else container, else ``None`` until decoded).
        width, height: display size, after rotation.
        rotation: counter-clockwise degrees applied to decoded frames (0, 90, 180, 270).
        fps: average frame rate, when known.
        num_frames: frame count the container declares (0 when unknown).
    """

    path: str
    duration: float | None
    width: int
    height: int
    rotation: int
    fps: float | None
    num_frames: int
    codec: str


@dataclass
class DecodeLimits:
    """Bounds on the work spent on one file, so that no input can hang extraction.

    Attributes:
        timeout_s: wall-clock seconds spent reading and decoding one video (not counting
            what the caller does with the frames).
        max_packets: packets read before giving up (a 2-hour 60 fps video has 432,000).
        max_bad_packets: packets that fail to decode before the file is declared corrupt.
        io_timeout_s: FFmpeg's own open/read timeout (blocking reads).
        allow_truncated: accept a file whose frames stop well before its declared duration
            (more than 10% and 1 s short), repeating the last frame; by default it is an error.
    """

    timeout_s: float = 600.0
    max_packets: int = 2_000_000
    max_bad_packets: int = 50
    io_timeout_s: float = 20.0
    allow_truncated: bool = False


def _open(path: Path, limits: DecodeLimits):
    av = require("av")
    if not path.exists():
        raise DataError("video file not found", path=str(path))
    if not path.is_file():  # a FIFO or device would block the reader
        raise DataError("not a regular file", path=str(path))
    if path.stat().st_size == 0:
        raise DataError("empty file (0 bytes)", path=str(path))
    try:
        container = av.open(str(path), timeout=(limits.io_timeout_s, limits.io_timeout_s))
    except av.FFmpegError as e:
        raise DataError(f"cannot open as a video ({e.strerror or e})", path=str(path)) from e
    except (OSError, ValueError) as e:
        raise DataError(f"cannot open as a video ({e})", path=str(path)) from e
    if not container.streams.video:
        container.close()
        raise DataError("no video stream in the file", path=str(path))
    return container


def _stream_rotation(stream) -> int:
    """Counter-clockwise rotation from the stream's side data or legacy ``rotate`` tag."""
    tag = stream.metadata.get("rotate")
    if tag is not None:
        try:
            return -int(float(tag))  # the legacy tag is clockwise
        except ValueError:
            return 0
    return 0


def _quarter_turns(degrees: float | int | None) -> int:
    return int(round((degrees or 0) / 90.0)) % 4


def _duration_of(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _info(path: Path, container, stream) -> VideoInfo:
    ctx = stream.codec_context
    turns = _quarter_turns(_stream_rotation(stream))
    w, h = int(ctx.width or 0), int(ctx.height or 0)
    if turns % 2:
        w, h = h, w
    rate = stream.average_rate or stream.guessed_rate
    return VideoInfo(str(path), _duration_of(container, stream), w, h, 90 * turns,
                     float(rate) if rate else None, int(stream.frames or 0), ctx.name or "?")


def probe(path: str | os.PathLike, limits: DecodeLimits | None = None) -> VideoInfo:
    """Container metadata of a video, without decoding it.

    Raises:
        DataError: missing, empty, non-video or unreadable file (naming it).
    """
    path = Path(path)
    container = _open(path, limits or DecodeLimits())
    try:
        return _info(path, container, container.streams.video[0])
    finally:
        container.close()


def _out_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


class ClipReader:
    """Decode one video into clips, in batches, streaming (memory bounded by the batch).

    After iterating, :attr:`duration` and :attr:`num_clips` are final::

        reader = ClipReader("a.mp4", ClipSampling(clip_rate=1, frames_per_clip=4))
        for first_clip, frames in reader.batches(32):   # frames: (n, F, H, W, 3) uint8
            ...
        reader.duration, reader.num_clips

    Args:
        path: the video file.
        sampling: clip rate, frames per clip, frame size.
        limits: timeout and packet budget.
    Raises (while iterating):
        DataError: naming the file, for a file that cannot be opened or decoded, holds no
            frame, or exceeds the limits.
    """

    def __init__(self, path: str | os.PathLike, sampling: ClipSampling | None = None,
                 limits: DecodeLimits | None = None):
        self.path = Path(path)
        self.sampling = sampling or ClipSampling()
        self.limits = limits or DecodeLimits()
        self.info: VideoInfo | None = None
        self.duration: float | None = None
        self.num_clips: int | None = None
        self.frames_decoded = 0

    def _error(self, message: str) -> DataError:
        return DataError(message, path=str(self.path))

    def _frames(self, container, stream) -> Iterator[tuple[float, object]]:
        """``(time relative to the stream start, av frame)`` in decode order, within limits.

        The timeout counts the time spent reading and decoding only, not the time the caller
        spends on the frames (a slow extractor must not time out a healthy file)."""
        av = require("av")
        tb = stream.time_base
        origin = float(stream.start_time * tb) if stream.start_time is not None and tb else None
        packets = bad = 0
        last_t = -math.inf
        fallback_rate = float(stream.average_rate or stream.guessed_rate or 25)
        index = 0

        def decoded(packet):
            nonlocal bad
            try:
                return packet.decode()
            except av.FFmpegError as e:
                bad += 1
                if bad > self.limits.max_bad_packets:
                    raise self._error(f"corrupt video: {bad} packets failed to decode "
                                      f"(last: {e.strerror or e})") from e
                return ()

        spent = 0.0
        try:
            demuxer = container.demux(stream)
            while True:
                start = time.monotonic()
                packet = next(demuxer, None)
                if packet is None:
                    break
                packets += 1
                if packets > self.limits.max_packets:
                    raise self._error(f"more than {self.limits.max_packets} packets; raise "
                                      f"DecodeLimits.max_packets for a video this long")
                frames = decoded(packet)  # an empty packet at the end flushes the decoder
                spent += time.monotonic() - start
                if spent > self.limits.timeout_s:
                    raise self._error(f"decoding took longer than {self.limits.timeout_s:g} s "
                                      f"(DecodeLimits.timeout_s)")
                for frame in frames:
                    t = frame.time if frame.time is not None else index / fallback_rate
                    if origin is None:
                        origin = t
                    # Timestamps that go backwards (damaged streams) keep the order of arrival.
                    t = max(t - origin, last_t, 0.0)
                    last_t = t
                    index += 1
                    yield t, frame
        except av.FFmpegError as e:
            raise self._error(f"cannot decode video ({e.strerror or e})") from e

    def _to_array(self, frame, size: tuple[int, int], turns: int) -> np.ndarray:
        w, h = size
        if turns % 2:  # scale in stored orientation, then rotate to display orientation
            w, h = h, w
        arr = frame.to_ndarray(format="rgb24", width=w, height=h)
        return np.ascontiguousarray(np.rot90(arr, turns)) if turns else arr

    def batches(self, batch_clips: int = 32) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first clip index, frames (n, F, H, W, 3) uint8)`` in clip order."""
        s = self.sampling
        F = s.frames_per_clip
        container = _open(self.path, self.limits)
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            info = _info(self.path, container, stream)
            self.info = info
            meta_duration = info.duration
            cap = s.num_clips(meta_duration) * F if meta_duration else None
            samples: list[np.ndarray] = []
            emitted = 0  # clips yielded
            k = 0        # next sample index (clip-major)
            prev = prev_array = None
            prev_t, turns, size = 0.0, 0, (0, 0)
            frame_step = 1.0 / info.fps if info.fps else 0.0
            for t, frame in self._frames(container, stream):
                self.frames_decoded += 1
                if self.frames_decoded == 1:
                    # PyAV >= 14 reads the display matrix into frame.rotation; older versions
                    # leave the stream's legacy tag.
                    rot = getattr(frame, "rotation", None)
                    turns = _quarter_turns(info.rotation if rot is None else rot)
                    self.info = info = _with_rotation(info, frame.width, frame.height, turns)
                    size = _out_size(info.width, info.height, s.max_side)
                # Samples before this frame's time show the previous frame (or this one when
                # the first frame starts late).
                while (cap is None or k < cap) and s._time(k) < t:
                    if prev is None:
                        prev, prev_t = frame, t
                    if prev_array is None:
                        prev_array = self._to_array(prev, size, turns)
                    samples.append(prev_array)
                    k += 1
                if prev is not frame:
                    prev, prev_array, prev_t = frame, None, t
                if frame.duration and frame.time_base:
                    frame_step = float(frame.duration * frame.time_base)
                while len(samples) >= batch_clips * F:
                    yield emitted, np.stack(samples[:batch_clips * F]).reshape(
                        batch_clips, F, *samples[0].shape)
                    del samples[:batch_clips * F]
                    emitted += batch_clips
                if cap is not None and k >= cap:
                    break
            if prev is None:
                raise self._error("the video holds no decodable frame")
            decoded_end = prev_t + frame_step
            short = meta_duration is not None and k < (cap or 0) and (
                decoded_end < 0.9 * meta_duration and meta_duration - decoded_end > 1.0)
            if short and not self.limits.allow_truncated:
                raise self._error(f"truncated or corrupt video: frames end at {decoded_end:.2f} s "
                                  f"of the declared {meta_duration:.2f} s (DecodeLimits."
                                  f"allow_truncated repeats the last frame instead)")
            if short:
                log.warning("%s: frames cover %.2f s of the declared %.2f s (truncated file?); "
                            "the last frame is repeated", self.path, decoded_end, meta_duration)
            self.duration = float(meta_duration or decoded_end)
            self.num_clips = s.num_clips(self.duration)
            total = self.num_clips * F
            if prev_array is None:
                prev_array = self._to_array(prev, size, turns)
            samples.extend([prev_array] * max(0, total - k))
            del samples[max(0, total - emitted * F):]
            while samples:
                n = min(batch_clips, len(samples) // F)
                yield emitted, np.stack(samples[:n * F]).reshape(n, F, *samples[0].shape)
                del samples[:n * F]
                emitted += n
        finally:
            container.close()


def _with_rotation(info: VideoInfo, width: int, height: int, turns: int) -> VideoInfo:
    """``info`` with the decoded frame size shown after ``turns`` quarter turns."""
    from dataclasses import replace

    w, h = (height, width) if turns % 2 else (width, height)
    return replace(info, rotation=90 * turns, width=w, height=h)


def read_clips(path: str | os.PathLike, sampling: ClipSampling | None = None,
               limits: DecodeLimits | None = None) -> tuple[np.ndarray, float, VideoInfo]:
    """Every clip of a video at once (short videos and tests).

    Returns:
        ``(frames (M, F, H, W, 3) uint8, duration in seconds, info)``.
    """
    reader = ClipReader(path, sampling, limits)
    chunks = [frames for _, frames in reader.batches()]
    return np.concatenate(chunks), float(reader.duration), reader.info

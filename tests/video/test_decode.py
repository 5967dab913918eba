import wave

import numpy as np
import pytest
from videofiles import ramp_frames, shown_index

from momentloc.errors import ConfigError, DataError
from momentloc.video.decode import ClipReader, ClipSampling, DecodeLimits, probe, read_clips

pytest.importorskip("av", reason="PyAV (the 'video' extra) is not installed")


def test_sampling_times_are_evenly_spaced_inside_each_clip():
    s = ClipSampling(clip_rate=2.0, frames_per_clip=2)
    np.testing.assert_allclose(s.sample_times(2), [[0.125, 0.375], [0.625, 0.875]])
    assert [s._time(k) for k in range(4)] == pytest.approx(s.sample_times(2).ravel().tolist())
    assert s.num_clips(2.5) == 5 and s.num_clips(2.0) == 4 and s.num_clips(0.01) == 1


@pytest.mark.parametrize("kwargs", [{"clip_rate": 0}, {"clip_rate": float("nan")},
                                    {"frames_per_clip": 0}, {"max_side": -1}])
def test_bad_sampling_is_a_config_error(kwargs):
    with pytest.raises(ConfigError):
        ClipSampling(**kwargs)


def test_constant_rate_video_samples_the_frame_shown_at_each_time(write):
    path = write("cfr.mp4", ramp_frames(24), fps=8)            # 3.0 s
    frames, duration, info = read_clips(path, ClipSampling(1.0, 4, 0))
    assert duration == pytest.approx(3.0) and info.fps == pytest.approx(8.0)
    assert frames.shape == (3, 4, 32, 48, 3) and frames.dtype == np.uint8
    # samples at 0.125, 0.375, ... s: frame floor(t * 8) is on screen
    np.testing.assert_array_equal(shown_index(frames), [[1, 3, 5, 7], [9, 11, 13, 15],
                                                        [17, 19, 21, 23]])


def test_variable_frame_rate_uses_timestamps_not_frame_counts(write):
    times = [0.0, 0.1, 0.15, 0.4, 0.9, 1.0, 2.5, 3.0]
    path = write("vfr.mp4", ramp_frames(8, step=30), fps=8, times=times)
    frames, duration, _ = read_clips(path, ClipSampling(2.0, 2, 0))
    expect = np.searchsorted(times, ClipSampling(2.0, 2).sample_times(frames.shape[0]), side="right") - 1
    np.testing.assert_array_equal(shown_index(frames, step=30), expect)
    assert duration == pytest.approx(3.125)                  # last frame + its 1/8 s
    assert expect[1].tolist() == [3, 3]                      # 0.625 and 0.875 s: frame at 0.4 s


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_is_applied(write, rotation):
    path = write(f"rot{rotation}.mp4", ramp_frames(8), fps=8, rotation=rotation)
    info = probe(path)
    frames, _, info = read_clips(path, ClipSampling(1.0, 1, 0))
    expect = np.rot90(ramp_frames(1)[0], rotation // 90)     # counter-clockwise turns
    assert info.rotation == rotation % 360
    assert (info.width, info.height) == (expect.shape[1], expect.shape[0])
    assert frames.shape[2:4] == expect.shape[:2]
    white = frames[0, 0].min(-1) > 200
    np.testing.assert_array_equal(white, expect.min(-1) > 200)


def test_frames_are_scaled_to_max_side_and_streamed_in_batches(write):
    path = write("big.mp4", ramp_frames(40, height=48, width=64), fps=8)   # 5 s
    reader = ClipReader(path, ClipSampling(1.0, 2, max_side=32))
    batches = list(reader.batches(batch_clips=2))
    assert [first for first, _ in batches] == [0, 2, 4]
    assert [b.shape[0] for _, b in batches] == [2, 2, 1]
    assert batches[0][1].shape[2:] == (24, 32, 3)
    assert reader.num_clips == 5 and reader.duration == pytest.approx(5.0)
    whole, _, _ = read_clips(path, ClipSampling(1.0, 2, max_side=32))
    np.testing.assert_array_equal(np.concatenate([b for _, b in batches]), whole)


def test_a_partial_last_clip_repeats_the_last_frame(write):
    path = write("partial.mp4", ramp_frames(20), fps=8)     # 2.5 s -> 3 clips at 1 clip/s
    frames, duration, _ = read_clips(path, ClipSampling(1.0, 4, 0))
    assert frames.shape[0] == 3 and duration == pytest.approx(2.5)
    np.testing.assert_array_equal(shown_index(frames)[2], [17, 19, 19, 19])


# -- bad input: a clear DataError naming the file, never a hang ---------------------------
def _reason(excinfo, path):
    assert str(path) in str(excinfo.value)
    return str(excinfo.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.mp4"
    with pytest.raises(DataError) as e:
        read_clips(path)
    assert "not found" in _reason(e, path)


def test_non_video_and_empty_files(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    with pytest.raises(DataError) as e:
        probe(text)
    assert "cannot open" in _reason(e, text)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(DataError) as e:
        read_clips(empty)
    assert "empty" in _reason(e, empty)
    with pytest.raises(DataError, match="not a regular file"):
        read_clips(tmp_path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(8000, np.int16).tobytes())
    with pytest.raises(DataError) as e:
        read_clips(path)
    assert "no video stream" in _reason(e, path)


def test_truncated_file_without_index(write, tmp_path):
    path = write("whole.mp4", ramp_frames(40), fps=8)      # index (moov) at the end: cut off
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError) as e:
        read_clips(cut)
    assert "cannot open" in _reason(e, cut)


def test_truncated_file_with_index_first(tmp_path):
    import av

    path = tmp_path / "faststart.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as c:
        s = c.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for i in range(80):  # 10 s of noise: the frames fill the file evenly
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (32, 32, 3), np.uint8),
                                               format="rgb24")
            frame.pts = i
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError) as e:
        read_clips(cut)
    assert "truncated" in _reason(e, cut)
    frames, duration, _ = read_clips(cut, limits=DecodeLimits(allow_truncated=True))
    assert duration == pytest.approx(10.0) and frames.shape[0] == 10
    np.testing.assert_array_equal(frames[-1, -1], frames[-2, -1])   # last frame repeated


def test_zero_frame_videos(write, tmp_path):
    import av

    empty = tmp_path / "zero.mkv"                          # a stream header, no frame at all
    c = av.open(str(empty), "w")
    s = c.add_stream("libx264", rate=8)
    s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
    c.start_encoding()
    c.close()
    with pytest.raises(DataError) as e:
        read_clips(empty)
    assert str(empty) in str(e.value)
    # 16 frames declared, but every payload byte zeroed: nothing decodes
    path = write("blank.mp4", np.random.default_rng(0).integers(0, 255, (16, 32, 32, 3), np.uint8))
    data = bytearray(path.read_bytes())
    start, stop = data.find(b"mdat") + 4, data.find(b"moov") - 4
    data[start:stop] = bytes(stop - start)
    path.write_bytes(bytes(data))
    assert probe(path).num_frames == 16
    with pytest.raises(DataError) as e:
        read_clips(path)
    assert "no decodable frame" in _reason(e, path)


def test_work_is_bounded_by_timeout_and_packet_budget(write):
    path = write("long.mp4", ramp_frames(40), fps=8)
    with pytest.raises(DataError, match="longer than"):
        read_clips(path, limits=DecodeLimits(timeout_s=0.0))
    with pytest.raises(DataError, match="more than 3 packets"):
        read_clips(path, limits=DecodeLimits(max_packets=3))


def test_time_spent_by_the_caller_does_not_count(write):
    import time

    path = write("slow_consumer.mp4", ramp_frames(32), fps=8)          # 4 clips at 1 clip/s
    reader = ClipReader(path, ClipSampling(1.0, 2, 0), DecodeLimits(timeout_s=1.5))
    for _ in reader.batches(batch_clips=1):
        time.sleep(0.6)                                                # 2.4 s in the caller
    assert reader.num_clips == 4

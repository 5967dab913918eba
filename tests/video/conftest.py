"""Small video files the video tests write with PyAV."""

from __future__ import annotations

import pytest


@pytest.fixture
def write(tmp_path):
    """``write(name, frames, fps=8, **kwargs) -> Path`` of an mp4 in tmp_path."""
    pytest.importorskip("av", reason="PyAV (the 'video' extra) is not installed")
    from momentloc.video.encode import write_video

    def make(name, frames, fps=8, **kwargs):
        return write_video(tmp_path / name, frames, fps=fps, **kwargs)

    return make

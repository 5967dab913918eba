import numpy as np
import pytest
from videofiles import ramp_frames

from momentloc.data.card import FeatureSpec
from momentloc.errors import ConfigError
from momentloc.video.extractors import (check_same, create_extractor, extractor_from_spec,
                                        format_id, list_extractors, parse_id)


def test_registry_lists_and_builds():
    assert {"clip", "colorhist"} <= set(list_extractors())
    assert create_extractor("colorhist", grid=2, bins=4).dim == 4 * (2 * 64 + 1)
    with pytest.raises(ConfigError, match="unknown feature extractor"):
        create_extractor("i3d")
    with pytest.raises(ConfigError, match="colorhist"):
        create_extractor("colorhist", colour_space="hsv")


@pytest.mark.parametrize("params", [{"grid": 0}, {"bins": 3}, {"bins": 512},
                                    {"frames_per_clip": 1}, {"clip_rate": -1.0}])
def test_bad_colorhist_parameters(params):
    with pytest.raises(ConfigError):
        create_extractor("colorhist", **params)


def test_ids_round_trip_and_reject_other_text():
    params = {"grid": 3, "model": "a, b=\"c\")", "rate": 1.5, "flag": None}
    text = format_id("colorhist", params)
    assert parse_id(text) == ("colorhist", params)
    assert parse_id("I3D (Kinetics-400), RGB stream") is None
    assert parse_id("unregistered(grid=3)") is None
    assert parse_id("colorhist(grid=3, oops)") is None
    assert parse_id("colorhist()") == ("colorhist", {})


def test_colorhist_golden_values():
    """One clip of two 4x4 frames, all red then all black, grid 1, 2 levels per channel."""
    ex = create_extractor("colorhist", grid=1, bins=2, frames_per_clip=2)
    frames = np.zeros((1, 2, 4, 4, 3), np.uint8)
    frames[0, 0, ..., 0] = 255
    feats = ex.encode(frames)
    assert feats.shape == (1, 17) and feats.dtype == np.float32
    expect = np.zeros(17)
    expect[[0, 4]] = np.sqrt(0.5)            # layout: half the time black (0), half red (4)
    expect[8], expect[12] = 1.0, -1.0        # change, last minus first: black +1, red -1
    expect[16] = np.sqrt(255 / 765)          # motion: grey sum changes by 255 of 765
    np.testing.assert_allclose(feats[0], expect, rtol=1e-6)


def test_colorhist_puts_colour_in_its_grid_cell_and_batches_consistently():
    ex = create_extractor("colorhist", grid=2, bins=2, frames_per_clip=2)
    frames = np.zeros((3, 2, 8, 8, 3), np.uint8)
    frames[0, :, :4, :4, 2] = 255                 # clip 0: blue top-left
    frames[1, :, 4:, 4:, 2] = 255                 # clip 1: blue bottom-right
    frames[2, 1, 4:, :4] = 255                    # clip 2: white appears bottom-left
    feats = ex.encode(frames)
    layout = feats[:, :4 * 8].reshape(3, 4, 8)    # (clip, cell, colour); blue is colour 1
    assert layout[0, 0, 1] == pytest.approx(1.0) and layout[0, 3, 1] == 0
    assert layout[1, 3, 1] == pytest.approx(1.0) and layout[1, 0, 1] == 0
    change = feats[:, 32:64].reshape(3, 4, 8)
    assert change[2, 2, 7] == pytest.approx(1.0) and change[2, 2, 0] == pytest.approx(-1.0)
    assert np.all(change[:2] == 0) and np.all(feats[:2, 64:] == 0)   # static clips: no motion
    assert feats[2, 64 + 2] > 0 and feats[2, 64] == 0
    one_by_one = np.concatenate([ex.encode(frames[i:i + 1]) for i in range(3)])
    np.testing.assert_allclose(feats, one_by_one)


def test_feature_spec_rebuilds_the_extractor(write):
    ex = create_extractor("colorhist", grid=2, clip_rate=2.0, frames_per_clip=3, max_side=32)
    spec = ex.feature_spec("feats.hdf5")
    assert (spec.dim, spec.clip_frames, spec.clip_stride_frames, spec.fps) == (ex.dim, 3, 3, 6.0)
    assert spec.extractor == ex.id and "grid=2" in spec.extractor
    again = extractor_from_spec(spec)
    assert again.id == ex.id
    result = again.extract(write("v.mp4", ramp_frames(24), fps=8))    # 3 s at 2 clips/s
    assert result.features.shape == (6, ex.dim) and result.duration == pytest.approx(3.0)


def test_mismatched_or_outside_extractors_are_refused():
    ex = create_extractor("colorhist", grid=2)
    with pytest.raises(ConfigError, match="differs"):
        check_same(ex, create_extractor("colorhist", grid=3).id)
    with pytest.raises(ConfigError, match="differs"):
        check_same(ex, "clip(fingerprint=\"abc\", model=\"/m\")")
    check_same(ex, create_extractor("colorhist", grid=2).id)
    i3d = FeatureSpec(store="hdf5", path="f.hdf5", dim=1024, extractor="I3D (Kinetics-400)")
    with pytest.raises(ConfigError, match="not made by a momentloc extractor"):
        extractor_from_spec(i3d)

import numpy as np
import pytest

from momentloc.data.resample import l2_normalize, pool_indices, resample


def naive_pool(feats, n):
    """Common spec 3.1 [rec], written as the loop it is stated as."""
    m = feats.shape[0]
    idx = np.floor(np.linspace(0, m - 1, n)).astype(int)
    out = np.zeros((n, feats.shape[1]))
    for i in range(n - 1):
        a, b = idx[i], idx[i + 1]
        out[i] = feats[a:b].mean(axis=0) if b > a + 1 else feats[a]
    out[n - 1] = feats[m - 1]
    return out


def test_pool_golden_downsample():
    feats = np.arange(10, dtype=np.float32).reshape(5, 2)   # rows [0,1] [2,3] ... [8,9]
    out, mask = resample(feats, 3, "pool")
    # idx = [0, 2, 4]: mean(rows 0-1), mean(rows 2-3), last row
    np.testing.assert_array_equal(out, [[1, 2], [5, 6], [8, 9]])
    assert mask.tolist() == [True] * 3 and out.dtype == np.float32


def test_pool_golden_upsample_repeats():
    feats = np.array([[1.0], [7.0]])
    out, mask = resample(feats, 4, "pool")
    # idx = floor([0, 1/3, 2/3, 1]) = [0, 0, 0, 1]
    assert pool_indices(2, 4).tolist() == [0, 0, 0, 1]
    np.testing.assert_array_equal(out[:, 0], [1, 1, 1, 7])
    assert mask.all()


@pytest.mark.parametrize("m,n", [(1, 1), (1, 5), (7, 1), (6, 6)])
def test_pool_edges(m, n):
    feats = np.random.default_rng(0).normal(size=(m, 3)).astype(np.float32)
    out, mask = resample(feats, n)
    assert out.shape == (n, 3) and mask.shape == (n,) and mask.all()
    if m == n:
        np.testing.assert_array_equal(out, feats)
    if n == 1:
        np.testing.assert_array_equal(out[0], feats[-1])
    if m == 1:
        np.testing.assert_array_equal(out, np.repeat(feats, n, axis=0))


def test_pool_matches_naive_loop_on_random_inputs():
    rng = np.random.default_rng(1)
    for _ in range(200):
        m, n = int(rng.integers(1, 80)), int(rng.integers(1, 40))
        feats = (rng.normal(size=(m, 5)) * 10 + 100).astype(np.float32)
        out, mask = resample(feats, n, "pool")
        np.testing.assert_allclose(out, naive_pool(feats, n), rtol=1e-5, atol=1e-4)
        assert mask.all()


def test_pad_mode():
    rng = np.random.default_rng(2)
    short = rng.normal(size=(3, 4)).astype(np.float32)
    out, mask = resample(short, 5, "pad")
    np.testing.assert_array_equal(out[:3], short)
    np.testing.assert_array_equal(out[3:], 0)
    assert mask.tolist() == [True, True, True, False, False]
    long = rng.normal(size=(23, 4)).astype(np.float32)
    out, mask = resample(long, 5, "pad")
    np.testing.assert_allclose(out, naive_pool(long, 5), rtol=1e-5, atol=1e-6)
    assert mask.all()
    same, mask = resample(short, 3, "pad")
    np.testing.assert_array_equal(same, short)
    assert mask.all()


def test_l2_normalize_keeps_padding_zero():
    feats = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]], dtype=np.float32)
    out = l2_normalize(feats)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0, 0], [0, -1]])


@pytest.mark.parametrize("feats,n,mode", [
    (np.zeros(4), 2, "pool"),            # 1-D
    (np.zeros((0, 3)), 2, "pool"),       # no clip
    (np.zeros((4, 3)), 0, "pool"),       # no output step
    (np.zeros((2, 3)), 4, "nearest"),    # unknown mode
])
def test_bad_arguments(feats, n, mode):
    with pytest.raises(ValueError):
        resample(feats, n, mode)


def test_tan2d_indices_round_half_to_even():
    from momentloc.data.resample import tan2d_indices

    # M = 5, N = 4: k / 4 * 5 = 0, 1.25, 2.5, 3.75, 5 -> 0, 1, 2 (half to even), 4, min(5, 4)
    assert tan2d_indices(5, 4).tolist() == [0, 1, 2, 4, 4]
    # M = 3, N = 2: 0, 1.5 -> 2, 3 -> capped at 2
    assert tan2d_indices(3, 2).tolist() == [0, 2, 2]


def test_tan2d_mode_normalizes_raw_clips_then_averages():
    feats = np.array([[3.0, 4.0], [0.0, 2.0], [5.0, 0.0], [0.0, 0.0], [1.0, 0.0]], np.float32)
    out, mask = resample(feats, 4, "tan2d")
    unit = np.array([[0.6, 0.8], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    # windows [0, 1), [1, 2), [2, 4), [4, 4) -> the last repeats raw clip 4
    want = [unit[0], unit[1], unit[2:4].mean(0), unit[4]]
    np.testing.assert_allclose(out, want, atol=1e-7)
    assert mask.all() and out.dtype == np.float32


def test_tan2d_mode_repeats_clips_of_short_videos():
    feats = np.array([[2.0], [-3.0]], np.float32)
    out, _ = resample(feats, 4, "tan2d")
    # idx = min(round([0, .5, 1, 1.5, 2]), 1) = [0, 0, 1, 1, 1] (0.5 -> 0, 1.5 -> 2 half to even):
    # windows [0, 0) and [1, 1) are empty and repeat clip idx_k
    assert out[:, 0].tolist() == [1.0, 1.0, -1.0, -1.0]


def test_tan2d_mode_matches_the_release_loop_on_random_inputs():
    rng = np.random.default_rng(0)
    for m in (1, 7, 61, 255, 256, 257, 999):
        feats = rng.normal(size=(m, 3)).astype(np.float32)
        unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
        idx = np.minimum(np.round(np.arange(257, dtype=np.float32) / np.float32(256)
                                  * np.float32(m)).astype(int), m - 1)
        want = np.stack([unit[a:b].mean(0) if a < b else unit[a] for a, b in zip(idx[:-1], idx[1:])])
        np.testing.assert_allclose(resample(feats, 256, "tan2d")[0], want, atol=1e-6)

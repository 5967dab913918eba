import numpy as np
import pytest

from momentloc.data.pca import PCA, fit_pca
from momentloc.errors import DataError


def videos(seed=0, dim=6, offset=50.0):
    """Clips on a 2-D plane plus small noise, far from the origin (tests the shifted scatter)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, 2)))[0]          # (dim, 2) orthonormal
    out = {}
    for i in range(5):
        z = rng.normal(size=(7 + i, 2)) * np.array([5.0, 2.0])
        noise = 0.01 * rng.normal(size=(7 + i, dim))
        out[f"v{i}"] = (offset + z @ basis.T + noise).astype(np.float32)
    return out, basis


def test_fit_matches_eigendecomposition_of_all_clips():
    data, basis = videos()
    pca = fit_pca(list(data), data.__getitem__, 2)
    allx = np.concatenate(list(data.values())).astype(np.float64)
    values, vectors = np.linalg.eigh(np.cov(allx, rowvar=False))
    np.testing.assert_allclose(pca.explained_variance, values[::-1][:2], rtol=1e-4)
    np.testing.assert_allclose(pca.mean, allx.mean(axis=0), rtol=1e-6)
    # same axes up to sign (signs are fixed by the fit), spanning the planted plane
    cos = np.abs(np.sum(pca.components * vectors[:, ::-1][:, :2], axis=0))
    np.testing.assert_allclose(cos, 1.0, atol=1e-4)
    residual = pca.components - basis @ (basis.T @ pca.components)
    assert np.abs(residual).max() < 0.01
    assert pca.num_clips == allx.shape[0] and pca.in_dim == 6 and pca.dim == 2


def test_transform_and_duplicates_ignored():
    data, _ = videos(1)
    pca = fit_pca(["v0", "v1", "v0", "v2", "v3", "v4"], data.__getitem__, 3)
    assert pca.num_clips == sum(len(v) for v in data.values())
    y = pca.transform(data["v1"])
    assert y.shape == (8, 3) and y.dtype == np.float32
    allx = np.concatenate(list(data.values()))
    np.testing.assert_allclose(pca.transform(allx).mean(axis=0), 0, atol=1e-3)
    with pytest.raises(ValueError, match="6-d"):
        pca.transform(np.ones((2, 5), np.float32))


def test_refit_is_identical():
    data, _ = videos(2)
    a = fit_pca(list(data), data.__getitem__, 2)
    b = fit_pca(list(data)[::-1], data.__getitem__, 2)
    np.testing.assert_allclose(a.components, b.components, atol=1e-5)


def test_save_load_round_trip(tmp_path):
    data, _ = videos(3)
    pca = fit_pca(list(data), data.__getitem__, 2)
    pca.save(tmp_path / "pca.npz")
    back = PCA.load(tmp_path / "pca.npz")
    for name in ("mean", "components", "explained_variance"):
        np.testing.assert_array_equal(getattr(back, name), getattr(pca, name))
    assert back.num_clips == pca.num_clips
    assert [p.name for p in tmp_path.iterdir()] == ["pca.npz"]


def test_load_bad_files(tmp_path):
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(DataError, match="not a PCA file") as e:
        PCA.load(tmp_path / "junk.npz")
    assert "junk.npz" in str(e.value)
    np.savez(tmp_path / "shape.npz", mean=np.zeros(3), components=np.zeros((4, 2)),
             explained_variance=np.zeros(2))
    with pytest.raises(DataError, match="inconsistent PCA shapes"):
        PCA.load(tmp_path / "shape.npz")


def test_bad_fits():
    data, _ = videos(4)
    with pytest.raises(ValueError, match="1..6"):
        fit_pca(list(data), data.__getitem__, 7)
    with pytest.raises(DataError, match="at least 2"):
        fit_pca(["x"], lambda v: np.ones((1, 6), np.float32), 2)
    with pytest.raises(DataError, match="at least 2"):
        fit_pca([], data.__getitem__, 2)

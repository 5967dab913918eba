import logging
import multiprocessing as mp
import pickle

import numpy as np
import pytest

from momentloc.data.card import DatasetCard, FeatureSpec, SplitFiles
from momentloc.data.features import (
    FeatureCache, HDF5Store, open_store, write_hdf5_store, write_npy_dir, write_npz_dir)
from momentloc.errors import ConfigError, DataError

DIM = 4


def make_card(root, store, path, **spec):
    return DatasetCard(name="toy", format="records", splits={"train": SplitFiles("train.jsonl")},
                       roles={"train": "train", "val": None, "test": None},
                       features=FeatureSpec(store=store, path=path, dim=DIM, **spec),
                       root=str(root))


def items(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return {f"vid{i}": rng.normal(size=(i + 2, DIM)).astype(np.float32) for i in range(n)}


LAYOUTS = {
    "hdf5": lambda root, data: (write_hdf5_store(root / "f.h5", data.items()), {"path": "f.h5"}),
    "hdf5_group": lambda root, data: (write_hdf5_store(root / "f.h5", data.items(), "c3d_features"),
                                      {"path": "f.h5", "dataset_key": "c3d_features"}),
    "npy_dir": lambda root, data: (write_npy_dir(root / "npy", data.items()), {"path": "npy"}),
    "npz_dir": lambda root, data: (write_npz_dir(root / "npz", data.items(), npz_key="feats"),
                                   {"path": "npz", "npz_key": "feats"}),
}


def open_layout(tmp_path, layout, data, **spec):
    _, kw = LAYOUTS[layout](tmp_path, data)
    store = "hdf5" if layout.startswith("hdf5") else layout
    return open_store(make_card(tmp_path, store, **kw, **spec))


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_round_trip(tmp_path, layout):
    data = items()
    store = open_layout(tmp_path, layout, data)
    assert store.keys() == set(data)
    for vid, arr in data.items():
        out = store.get(vid)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, arr)
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]   # no temp file left


def test_hdf5_group_without_dataset_key_takes_the_only_member(tmp_path):
    data = items(1)
    write_hdf5_store(tmp_path / "f.h5", data.items(), dataset_key="c3d_fc6_features")
    store = open_store(make_card(tmp_path, "hdf5", "f.h5"))
    np.testing.assert_array_equal(store.get("vid0"), data["vid0"])


def test_hdf5_group_missing_dataset_key(tmp_path):
    write_hdf5_store(tmp_path / "f.h5", items(1).items(), dataset_key="c3d_features")
    store = open_store(make_card(tmp_path, "hdf5", "f.h5", dataset_key="fc7"))
    with pytest.raises(DataError, match=r"no dataset 'fc7'.*c3d_features") as e:
        store.get("vid0")
    assert e.value.video_id == "vid0" and "f.h5" in str(e.value)


def test_writer_replaces_existing_file(tmp_path):
    write_hdf5_store(tmp_path / "f.h5", items(3).items())
    write_hdf5_store(tmp_path / "f.h5", [("only", np.ones((2, DIM)))])
    assert open_store(make_card(tmp_path, "hdf5", "f.h5")).keys() == {"only"}


def test_writer_rejects_path_like_key(tmp_path):
    with pytest.raises(ValueError, match="a/b"):
        write_npy_dir(tmp_path / "npy", [("a/b", np.ones((2, DIM)))])


# -- key mapping ---------------------------------------------------------------------------
@pytest.mark.parametrize("stored,template,video_id", [
    ("v_abc", "v_{video_id}", "abc"),      # the template itself
    ("v_abc", "{video_id}", "abc"),        # add v_
    ("abc", "{video_id}", "v_abc"),        # strip v_
    ("s13-d21.avi", "{video_id}", "s13-d21"),      # add an extension
    ("s13-d21", "{video_id}.avi", "s13-d21"),      # strip the template's extension
    ("s13-d21", "{video_id}", "s13-d21.avi"),      # strip the id's extension
])
def test_key_variants(tmp_path, caplog, stored, template, video_id):
    arr = np.ones((2, DIM), np.float32)
    write_npy_dir(tmp_path / "npy", [(stored, arr), ("other", arr * 2)])
    store = open_store(make_card(tmp_path, "npy_dir", "npy", key_template=template))
    with caplog.at_level(logging.INFO, logger="momentloc.data"):
        assert store.resolve(video_id) == stored
        np.testing.assert_array_equal(store.get(video_id), arr)
        store.get(video_id)
    logged = [r for r in caplog.records if "key template" in r.getMessage()]
    assert len(logged) == (0 if template.format(video_id=video_id) == stored else 1)


def test_ambiguous_variant_is_missing(tmp_path):
    arr = np.ones((2, DIM), np.float32)
    write_npy_dir(tmp_path / "npy", [("x.avi", arr), ("x.mp4", arr)])
    store = open_store(make_card(tmp_path, "npy_dir", "npy"))
    assert store.missing(["x", "x.avi"]) == ["x"]


@pytest.mark.parametrize("layout", ["hdf5", "npy_dir"])
def test_missing_video(tmp_path, layout):
    store = open_layout(tmp_path, layout, items(2))
    assert store.missing(["vid1", "nope", "vid0"]) == ["nope"]
    with pytest.raises(DataError, match="no features") as e:
        store.get("nope")
    assert e.value.video_id == "nope" and str(store.path) in str(e.value)


# -- bad arrays ----------------------------------------------------------------------------
def bad_arrays():
    nan = np.ones((5, DIM), np.float32)
    nan[3, 1] = np.nan
    inf = np.ones((4, DIM), np.float32)
    inf[2, 0] = -np.inf
    return {
        "nan": (nan, r"NaN \(first bad clip index 3; 1 of 5 clips bad\)"),
        "inf": (inf, r"inf \(first bad clip index 2; 1 of 4 clips bad\)"),
        "dim": (np.ones((3, DIM + 1)), rf"dimension {DIM + 1} != the card's dim {DIM}"),
        "huge": (np.full((3, DIM), 3e38, np.float32),
                 r"magnitude 3e\+38 \(the bound is 1e\+06\) \(first bad clip index 0"),
        "f64_overflow": (np.full((2, DIM), 1e300), r"inf \(first bad clip index 0; 2 of 2"),
        "empty": (np.ones((0, DIM)), "no clip"),
        "rank3": (np.ones((2, 2, DIM)), "must be 2-D"),
    }


@pytest.mark.parametrize("layout", ["hdf5", "npz_dir", "npy_dir"])
@pytest.mark.parametrize("kind", list(bad_arrays()))
def test_bad_array(tmp_path, layout, kind):
    arr, pattern = bad_arrays()[kind]
    store = open_layout(tmp_path, layout, {"good": np.ones((2, DIM)), f"bad_{kind}": arr})
    with pytest.raises(DataError, match=pattern) as e:
        store.get(f"bad_{kind}")
    assert e.value.video_id == f"bad_{kind}" and str(store.path) in str(e.value)
    assert store.get("good").shape == (2, DIM)


def test_one_d_vector_is_one_clip(tmp_path):
    store = open_layout(tmp_path, "npy_dir", {"v": np.arange(DIM, dtype=np.float64)})
    out = store.get("v")
    assert out.shape == (1, DIM) and out.dtype == np.float32


def test_corrupt_hdf5(tmp_path):
    (tmp_path / "f.h5").write_text("not hdf5 at all\n")
    with pytest.raises(DataError, match="cannot open as HDF5") as e:
        open_store(make_card(tmp_path, "hdf5", "f.h5")).keys()
    assert "f.h5" in str(e.value)


def test_corrupt_npy_and_npz(tmp_path):
    (tmp_path / "npy").mkdir()
    (tmp_path / "npy" / "v1.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="cannot read .npy") as e:
        open_store(make_card(tmp_path, "npy_dir", "npy")).get("v1")
    assert e.value.video_id == "v1" and "v1.npy" in str(e.value)
    write_npz_dir(tmp_path / "npz", [("v2", np.ones((2, DIM)))], npz_key="features")
    with pytest.raises(DataError, match=r"no array 'feats'.*features") as e:
        open_store(make_card(tmp_path, "npz_dir", "npz", npz_key="feats")).get("v2")
    assert "v2.npz" in str(e.value)


def test_store_not_found_and_no_features(tmp_path):
    with pytest.raises(DataError, match="not found") as e:
        open_store(make_card(tmp_path, "hdf5", "missing.h5"))
    assert "missing.h5" in str(e.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="directory"):
        open_store(make_card(tmp_path, "npy_dir", "file"))
    card = DatasetCard(name="nofeat", format="records", splits={}, roles={})
    with pytest.raises(ConfigError, match="nofeat.*no features"):
        open_store(card)


# -- processes -----------------------------------------------------------------------------
def test_store_pickles_after_use_and_reopens(tmp_path):
    data = items()
    store = open_layout(tmp_path, "hdf5", data)
    store.get("vid0")                       # the handle is open now
    assert store._file is not None
    clone = pickle.loads(pickle.dumps(store))
    assert clone._file is None              # reopened lazily
    np.testing.assert_array_equal(clone.get("vid2"), data["vid2"])
    clone.close()
    store.close()


def _read_in_child(store, queue):
    queue.put(float(store.get("vid1").sum()))


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs fork")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # Python >= 3.12, threads
def test_forked_child_opens_its_own_handle(tmp_path):
    data = items()
    store = open_layout(tmp_path, "hdf5", data)
    store.get("vid0")
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_read_in_child, args=(store, queue))
    proc.start()
    got = queue.get(timeout=30)
    proc.join(timeout=30)
    assert proc.exitcode == 0
    assert got == pytest.approx(float(data["vid1"].sum()), rel=1e-6)
    np.testing.assert_array_equal(store.get("vid2"), data["vid2"])   # parent handle still fine
    assert isinstance(store, HDF5Store)


def test_feature_cache_is_bounded():
    cache = FeatureCache(max_bytes=100)
    a = (np.zeros(10, np.float32),)         # 40 bytes
    cache.put("a", a)
    cache.put("b", a)
    cache.put("c", a)                       # would exceed 100 bytes: not added
    assert len(cache) == 2 and cache.get("c") is None and cache.get("a") is a
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0


# ---- damaged stores and the up-front check ------------------------------------------------------

def test_magnitude_bound_is_inclusive():
    from momentloc.data.features import MAX_ABS_FEATURE, check_features
    ok = np.full((2, DIM), -MAX_ABS_FEATURE)
    assert check_features(ok, DIM, "v").dtype == np.float32
    with pytest.raises(DataError, match="magnitude 1.5e\\+06"):
        check_features(ok * 1.5, DIM, "v")


def test_hdf5_shape_is_checked_from_metadata_before_reading(tmp_path, monkeypatch):
    import h5py
    store = open_layout(tmp_path, "hdf5", {"v": np.ones((3, DIM + 2))})
    monkeypatch.setattr(h5py.Dataset, "__getitem__", lambda *a: pytest.fail("array was read"))
    with pytest.raises(DataError, match=rf"dimension {DIM + 2} != the card's dim {DIM}"):
        store.get("v")


def test_hdf5_member_that_is_no_array(tmp_path):
    import h5py
    with h5py.File(tmp_path / "f.h5", "w") as f:
        f["v"] = np.dtype("f4")  # a named datatype, not a dataset
    with pytest.raises(DataError, match="'v' is a Datatype, not an array") as e:
        open_store(make_card(tmp_path, "hdf5", "f.h5")).get("v")
    assert "f.h5" in str(e.value) and e.value.video_id == "v"


def test_damaged_hdf5_metadata_gives_data_errors_only(tmp_path):
    """Bytes of a valid file overwritten at random (a fixed seed): every outcome is a clean read
    or a DataError naming the file, never another exception."""
    import random
    write_hdf5_store(tmp_path / "ok.h5", [(f"v{i}", np.ones((4, DIM))) for i in range(12)])
    data = (tmp_path / "ok.h5").read_bytes()
    rng = random.Random(0)
    errors = 0
    for trial in range(120):
        damaged = bytearray(data)
        at = rng.randrange(0, min(len(damaged), 4096))
        for k in range(rng.choice([1, 4, 16])):
            damaged[min(at + k, len(damaged) - 1)] = rng.randrange(256)
        (tmp_path / "bad.h5").write_bytes(bytes(damaged))
        try:
            store = open_store(make_card(tmp_path, "hdf5", "bad.h5"))
            for vid in sorted(store.keys()):
                try:
                    store.get(vid)
                except DataError as e:
                    assert "bad.h5" in str(e)
                    errors += 1
            store.close()
        except DataError as e:
            assert "bad.h5" in str(e)
            errors += 1
    assert errors > 0  # the damage was seen


def test_truncated_hdf5_and_npy(tmp_path):
    write_hdf5_store(tmp_path / "f.h5", [("v", np.ones((400, DIM)))])
    data = (tmp_path / "f.h5").read_bytes()
    (tmp_path / "f.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="f.h5"):
        store = open_store(make_card(tmp_path, "hdf5", "f.h5"))
        store.get("v")
    write_npy_dir(tmp_path / "npy", [("v", np.ones((400, DIM)))])
    path = tmp_path / "npy" / "v.npy"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match="cannot read .npy") as e:
        open_store(make_card(tmp_path, "npy_dir", "npy")).get("v")
    assert "v.npy" in str(e.value)


def test_check_videos_reports_every_bad_video(tmp_path):
    nan = np.ones((3, DIM))
    nan[1, 2] = np.nan
    store = open_layout(tmp_path, "npy_dir", {"good": np.ones((2, DIM)), "nan": nan,
                                               "wide": np.ones((2, DIM + 1)),
                                               "huge": np.full((1, DIM), 1e9)})
    bad = store.check_videos(["good", "nan", "absent", "wide", "huge"])
    assert list(bad) == ["nan", "wide", "huge"]
    assert all(e.video_id == vid and "npy" in str(e) for vid, e in bad.items())
    assert list(store.check_videos(["good", "nan", "wide"], stop_at_first=True)) == ["nan"]

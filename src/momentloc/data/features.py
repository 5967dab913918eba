"""Feature stores: precomputed clip features per video, read lazily.

Layouts (``card.features.store``):

- ``hdf5``: one file; either a dataset per video (``f[key]``) or a group per video holding
  ``dataset_key`` (``f[key]["c3d_features"]``, ActivityNet's C3D file).
- ``npy_dir``: a directory of ``<key>.npy``.
- ``npz_dir``: a directory of ``<key>.npz``, each holding the array ``npz_key``.

Nothing is read until a video is asked for: the ActivityNet C3D file is several GB. The HDF5
file is opened once per process and re-opened after a fork or unpickling, so a store can be
handed to DataLoader workers. Keys map from video ids with ``key_template``; when the
templated key is absent, the obvious variants (with or without ``v_``, with or without a
file extension) are tried and the mapping that worked is logged once.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from momentloc.data.card import DatasetCard, FeatureSpec
from momentloc.errors import ConfigError, DataError

log = logging.getLogger("momentloc.data")

_EXT = re.compile(r"\.(avi|mp4|mkv|webm|mov|mpg|mpeg|m4v|flv|wmv|3gp)$", re.IGNORECASE)


def _canonical(key: str) -> str:
    """A key without a video file extension and without ActivityNet's ``v_`` prefix."""
    key = _EXT.sub("", key)
    return key[2:] if key.startswith("v_") else key


# Raw feature values beyond this magnitude are bad input. Real extractor outputs (C3D, I3D,
# VGG fc7, CLIP; post-ReLU or normalized) stay within a few hundred; values near float32's
# limit (3e38) overflow to inf in the first matrix product and turn the loss into NaN.
MAX_ABS_FEATURE = 1e6


def check_features(arr: np.ndarray, dim: int, video_id: str, path: str | None = None) -> np.ndarray:
    """Validate one video's features and return them as ``(M, D)`` float32.

    A 1-D vector is one clip. Raises DataError (naming the video and the store) on a wrong
    rank, an empty array, a dimension other than ``dim``, a non-numeric dtype, or a value that
    is NaN, infinite (also once cast to float32) or beyond ``MAX_ABS_FEATURE`` in magnitude
    (with the index of the first bad clip). One vectorized pass over the array.
    """
    arr = np.asarray(arr)
    if arr.ndim == 1:
        arr = arr[None, :]
    check_shape(arr.shape, dim, video_id, path)
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise DataError(f"features have non-real dtype {arr.dtype}", path=path, video_id=video_id)
    with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond 3.4e38 -> inf, reported
        arr = arr.astype(np.float32, copy=False)
        ok = (np.abs(arr) <= MAX_ABS_FEATURE).all(axis=1)  # NaN compares False
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        row = arr[bad]
        what = ("NaN" if np.isnan(row).any() else "inf" if np.isinf(row).any()
                else f"a value of magnitude {float(np.abs(row).max()):.3g} (the bound is "
                     f"{MAX_ABS_FEATURE:g})")
        raise DataError(f"features contain {what} (first bad clip index {bad}; "
                        f"{int((~ok).sum())} of {len(ok)} clips bad)", path=path, video_id=video_id)
    return arr


def check_shape(shape: tuple[int, ...], dim: int, video_id: str, path: str | None = None) -> None:
    """DataError unless ``shape`` is ``(M, dim)`` with ``M >= 1`` (or ``(dim,)``, one clip);
    checked from file metadata before an array is read."""
    if len(shape) == 1:
        shape = (1, *shape)
    if len(shape) != 2:
        raise DataError(f"features must be 2-D (clips, dim), got shape {tuple(shape)}",
                        path=path, video_id=video_id)
    if shape[0] == 0:
        raise DataError("features hold no clip", path=path, video_id=video_id)
    if shape[1] != dim:
        raise DataError(f"feature dimension {shape[1]} != the card's dim {dim}",
                        path=path, video_id=video_id)


class FeatureStore:
    """Clip features of many videos, read one video at a time.

    Use :func:`open_store`. Subclasses list their keys and read one key's array.

    Args:
        path: the HDF5 file or the directory.
        spec: the card's feature description (dim, key_template, dataset_key, npz_key).
    """

    layout = "?"

    def __init__(self, path: str | os.PathLike, spec: FeatureSpec):
        self.path = Path(path)
        self.spec = spec
        self.dim = spec.dim
        self._keys: set[str] | None = None
        self._by_canonical: dict[str, list[str]] | None = None
        self._logged_mapping = False
        if not self.path.exists():
            raise DataError(f"feature store not found ({self.layout})", path=str(self.path))

    # -- keys ------------------------------------------------------------------------------
    def _list_keys(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def keys(self) -> set[str]:
        """Every key in the store (listed once; no array is read)."""
        if self._keys is None:
            self._keys = set(self._list_keys())
        return self._keys

    def resolve(self, video_id: str) -> str | None:
        """The store key holding ``video_id``, or None when no variant of it is present."""
        keys = self.keys()
        key = self.spec.key_template.format(video_id=video_id)
        if key in keys:
            return key
        if self._by_canonical is None:
            self._by_canonical = {}
            for k in keys:
                self._by_canonical.setdefault(_canonical(k), []).append(k)
        by_canon = self._by_canonical
        found = by_canon.get(_canonical(key)) or by_canon.get(_canonical(video_id))
        if not found or len(found) > 1:  # absent, or ambiguous ("x" and "x.avi" both stored)
            return None
        if not self._logged_mapping:
            self._logged_mapping = True
            log.info("%s: key template %r gave %r, which is absent; using the stored key %r for "
                     "video %r (matching without the v_ prefix and file extension)",
                     self.path, self.spec.key_template, key, found[0], video_id)
        return found[0]

    def has(self, video_id: str) -> bool:
        return self.resolve(video_id) is not None

    def missing(self, video_ids: Iterable[str]) -> list[str]:
        """The ids among ``video_ids`` with no features (in order; no array is read)."""
        return [v for v in video_ids if self.resolve(v) is None]

    def check_videos(self, video_ids: Iterable[str], stop_at_first: bool = False
                     ) -> dict[str, DataError]:
        """Read and validate the features of every video in ``video_ids`` that the store has.

        Returns:
            video id -> the DataError its features raise (:meth:`get`), for the bad ones only;
            with ``stop_at_first``, at most one. Each array is checked in one vectorized pass
            and dropped: nothing is kept in memory.
        """
        bad: dict[str, DataError] = {}
        for vid in video_ids:
            if self.resolve(vid) is None:
                continue
            try:
                self.get(vid)
            except DataError as e:
                bad[vid] = e
                if stop_at_first:
                    break
        return bad

    def fingerprint(self) -> list:
        """What changes when the store's content is rewritten: size and modification time of
        the file, or of the directory and its entry count."""
        st = self.path.stat()
        count = len(os.listdir(self.path)) if self.path.is_dir() else st.st_size
        return [str(self.path.resolve()), count, st.st_mtime_ns, self.dim]

    # -- arrays ----------------------------------------------------------------------------
    def _read(self, key: str, video_id: str) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def get(self, video_id: str) -> np.ndarray:
        """Validated features of one video, ``(M, D)`` float32.

        Raises:
            DataError: naming the video and the store, when the video is absent or its
                array is malformed (see :func:`check_features`).
        """
        key = self.resolve(video_id)
        if key is None:
            tmpl = self.spec.key_template.format(video_id=video_id)
            raise DataError(f"no features for this video (looked for key {tmpl!r} and its "
                            f"variants with/without 'v_' and a file extension)",
                            path=str(self.path), video_id=video_id)
        return check_features(self._read(key, video_id), self.dim, video_id, self.source(key))

    def source(self, key: str) -> str:
        """The file holding ``key`` (named in errors)."""
        return str(self.path)

    def close(self) -> None:
        """Release open files (a later :meth:`get` re-opens them)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, dim={self.dim})"


# What h5py raises on damaged files: OSError (I/O, bad signatures), KeyError (an object that
# cannot be opened), RuntimeError (a broken group index), ValueError / TypeError (bad
# dataspaces or datatypes).
_H5_ERRORS = (OSError, KeyError, RuntimeError, ValueError, TypeError)


class HDF5Store(FeatureStore):
    """One HDF5 file: ``f[key]`` or ``f[key][dataset_key]`` per video."""

    layout = "hdf5"

    def __init__(self, path, spec):
        super().__init__(path, spec)
        self._file = None
        self._pid = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, None  # h5py handles do not pickle; re-open lazily
        return state

    def _open(self):
        import h5py

        try:
            return h5py.File(self.path, "r")
        except _H5_ERRORS as e:
            raise DataError(f"cannot open as HDF5 ({e})", path=str(self.path)) from e

    def _handle(self):
        # A handle inherited through fork is not safe to share: each process opens its own.
        if self._file is None or self._pid != os.getpid():
            self._file = self._open()
            self._pid = os.getpid()
        return self._file

    def _list_keys(self) -> list[str]:
        try:
            if self._file is not None and self._pid == os.getpid():
                return list(self._file.keys())
            with self._open() as f:  # listing in the parent must not leave a handle for workers
                return list(f.keys())
        except _H5_ERRORS as e:  # a damaged group index
            raise DataError(f"cannot list the members of the HDF5 file (damaged metadata: {e})",
                            path=str(self.path)) from e

    def _read(self, key, video_id):
        import h5py

        try:
            node = self._handle()[key]
            if isinstance(node, h5py.Group):
                dkey = self.spec.dataset_key
                if dkey is None:
                    members = list(node.keys())
                    if len(members) != 1:
                        raise DataError(f"group {key!r} holds {members}; set features.dataset_key "
                                        f"in the card", path=str(self.path), video_id=video_id)
                    dkey = members[0]
                if dkey not in node:
                    raise DataError(f"group {key!r} has no dataset {dkey!r} (it holds "
                                    f"{list(node.keys())})", path=str(self.path), video_id=video_id)
                node = node[dkey]
            if not isinstance(node, h5py.Dataset):
                raise DataError(f"key {key!r} is a {type(node).__name__}, not an array",
                                path=str(self.path), video_id=video_id)
            # The shape comes from the metadata: a wrong one is reported before any read (and
            # a damaged header claiming billions of clips allocates nothing).
            check_shape(node.shape, self.dim, video_id, str(self.path))
            return node[()]
        except _H5_ERRORS as e:
            raise DataError(f"cannot read key {key!r} (damaged file? {e})", path=str(self.path),
                            video_id=video_id) from e

    def close(self):
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file, self._pid = None, None


class _DirStore(FeatureStore):
    suffix = ""

    def __init__(self, path, spec):
        super().__init__(path, spec)
        if not self.path.is_dir():
            raise DataError(f"a {self.layout} feature store is a directory", path=str(self.path))

    def _list_keys(self):
        n = len(self.suffix)
        return [e.name[:-n] for e in os.scandir(self.path) if e.name.endswith(self.suffix)]

    def _file_of(self, key) -> Path:
        return self.path / f"{key}{self.suffix}"

    def source(self, key: str) -> str:
        return str(self._file_of(key))


class NpyDirStore(_DirStore):
    """A directory of ``<key>.npy`` files."""

    layout, suffix = "npy_dir", ".npy"

    def _read(self, key, video_id):
        p = self._file_of(key)
        try:
            arr = np.load(p, mmap_mode="r", allow_pickle=False)  # the header only, so far
            check_shape(arr.shape, self.dim, video_id, str(p))
            return np.array(arr)
        except (OSError, ValueError, EOFError) as e:
            raise DataError(f"cannot read .npy ({e})", path=str(p), video_id=video_id) from e


class NpzDirStore(_DirStore):
    """A directory of ``<key>.npz`` files, each holding the array ``npz_key``."""

    layout, suffix = "npz_dir", ".npz"

    def _read(self, key, video_id):
        p = self._file_of(key)
        try:
            with np.load(p, allow_pickle=False) as z:
                if self.spec.npz_key not in z.files:
                    raise DataError(f"no array {self.spec.npz_key!r} (it holds {z.files}); set "
                                    f"features.npz_key in the card", path=str(p), video_id=video_id)
                return z[self.spec.npz_key]
        except (OSError, ValueError, EOFError) as e:
            raise DataError(f"cannot read .npz ({e})", path=str(p), video_id=video_id) from e


_STORES = {"hdf5": HDF5Store, "npy_dir": NpyDirStore, "npz_dir": NpzDirStore}


def open_store(card: DatasetCard) -> FeatureStore:
    """The feature store a dataset card describes (``card.features``; paths via ``card.path``).

    Raises:
        ConfigError: the card has no ``features`` or names an unknown layout.
        DataError: the file or directory does not exist.
    """
    spec = card.features
    if spec is None:
        raise ConfigError(f"dataset card {card.name!r} has no features section")
    if spec.store not in _STORES:
        raise ConfigError(f"dataset card {card.name!r}: unknown feature store {spec.store!r} "
                          f"({', '.join(_STORES)})")
    return _STORES[spec.store](card.path(spec.path), spec)


# -- writers -------------------------------------------------------------------------------
def _check_key(key: str) -> str:
    key = str(key)
    if not key or "/" in key or key in (".", ".."):
        raise ValueError(f"feature key {key!r} cannot name a file or HDF5 member")
    return key


def _tmp_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_hdf5_store(path: str | os.PathLike, items: Iterable[tuple[str, np.ndarray]],
                     dataset_key: str | None = None) -> Path:
    """Write ``(key, (M, D) array)`` items to one HDF5 file, atomically.

    Args:
        dataset_key: when given, each key is a group holding the array under this name
            (ActivityNet C3D layout); else each key is a dataset.
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_beside(path)
    try:
        with h5py.File(tmp, "w") as f:
            for key, arr in items:
                key = _check_key(key)
                if dataset_key is None:
                    f.create_dataset(key, data=np.asarray(arr))
                else:
                    f.create_group(key).create_dataset(dataset_key, data=np.asarray(arr))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _write_dir(directory, items, suffix, save) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for key, arr in items:
        target = directory / f"{_check_key(key)}{suffix}"
        tmp = _tmp_beside(target)
        try:
            with open(tmp, "wb") as fh:
                save(fh, np.asarray(arr))
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
    return directory


def write_npy_dir(directory: str | os.PathLike, items: Iterable[tuple[str, np.ndarray]]) -> Path:
    """Write each ``(key, array)`` to ``directory/<key>.npy`` (each file atomically)."""
    return _write_dir(directory, items, ".npy", lambda fh, a: np.save(fh, a, allow_pickle=False))


def write_npz_dir(directory: str | os.PathLike, items: Iterable[tuple[str, np.ndarray]],
                  npz_key: str = "features") -> Path:
    """Write each ``(key, array)`` to ``directory/<key>.npz`` under ``npz_key`` (atomically)."""
    return _write_dir(directory, items, ".npz", lambda fh, a: np.savez(fh, **{npz_key: a}))


# -- cache ---------------------------------------------------------------------------------
class FeatureCache:
    """In-memory cache of processed (resampled) features per video, bounded in bytes.

    Once full it stops adding (no eviction): with shuffled epochs an LRU would thrash, while a
    fixed subset keeps its hits. Each DataLoader worker holds its own copy.
    """

    def __init__(self, max_bytes: int = 4 << 30):
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._items: dict[str, tuple[np.ndarray, ...]] = {}

    def get(self, video_id: str) -> tuple[np.ndarray, ...] | None:
        return self._items.get(video_id)

    def put(self, video_id: str, arrays: tuple[np.ndarray, ...]) -> None:
        size = sum(a.nbytes for a in arrays)
        if video_id not in self._items and self.nbytes + size <= self.max_bytes:
            self._items[video_id] = arrays
            self.nbytes += size

    def clear(self) -> None:
        self._items.clear()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._items)

"""What ``momentloc serve`` serves: a trained run, a directory of videos and the videos uploaded
while it runs. No HTTP here (see :mod:`momentloc.serve.server`).

Videos are named by their path relative to the ``--videos`` directory (``a.mp4``,
``sub/b.mp4``); an uploaded video is named ``upload:<name>`` and lives in a private temporary
folder (mode 0700) that :meth:`MomentService.close` removes, as does interpreter exit.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from pathlib import Path

from momentloc.engine.inference import MAX_QUERY_CHARS
from momentloc.errors import ConfigError
from momentloc.video.decode import VIDEO_EXTENSIONS

UPLOAD_PREFIX = "upload:"
MAX_TOP_K = 100
MAX_UPLOADS = 16
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_video_path(root: Path, name: str) -> Path | None:
    """The video file ``name`` (already URL-decoded) inside ``root``, or None.

    None for anything that is not a regular file with a video extension whose resolved path
    (symlinks followed) lies inside the resolved ``root``.
    """
    if not name or "\x00" in name or "\\" in name:
        return None
    root = root.resolve()
    try:
        path = (root / name).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a name too long
        return None
    if not path.is_relative_to(root) or path == root:
        return None
    if not path.is_file() or path.suffix.lower() not in VIDEO_EXTENSIONS:
        return None
    return path


def upload_file_name(name: str) -> str:
    """A safe file name for an uploaded video called ``name`` by the browser.

    Keeps the last path component, replaces anything but letters, digits, ``.``, ``_`` and
    ``-`` by ``_`` and drops leading dots.

    Raises:
        ConfigError: the name has no video extension (``VIDEO_EXTENSIONS``).
    """
    base = re.split(r"[/\\]", name or "")[-1]
    stem, ext = os.path.splitext(base)
    stem = _UNSAFE.sub("_", stem).lstrip(".")[:80] or "video"
    if ext.lower() not in VIDEO_EXTENSIONS:
        raise ConfigError(f"{name!r} is not a video file name (extensions: "
                          f"{', '.join(VIDEO_EXTENSIONS)})")
    return stem + ext.lower()


class MomentService:
    """A trained run and a directory of videos: lists videos, takes uploads, localizes sentences.

    Features of a video come from the extractor its run's card records (decoded and cached
    once per video); for runs on outside features (e.g. I3D), from the run's feature store
    when the file's stem is a video id there (uploads are then refused).

    Args:
        run_dir: the trained run. videos_dir: the directory served.
        top_k: moments per query when the request names no ``top_k``.
        cache_videos: videos whose features are kept in memory.
        max_upload_bytes: largest upload accepted (0 disables uploads).
        overrides: extractor parameters (``model`` for a CLIP checkpoint that moved).
    """

    def __init__(self, run_dir: str | os.PathLike, videos_dir: str | os.PathLike,
                 checkpoint: str = "best", device: str = "cpu", top_k: int = 5,
                 cache_videos: int = 32, max_upload_bytes: int = 200 << 20, **overrides):
        from momentloc.engine.inference import Predictor

        self.videos_dir = Path(videos_dir).resolve()
        if not self.videos_dir.is_dir():
            raise ConfigError(f"{videos_dir}: not a directory of videos")
        if not 1 <= top_k <= MAX_TOP_K:
            raise ConfigError(f"top_k must be in [1, {MAX_TOP_K}], got {top_k}")
        self.predictor = Predictor(run_dir, checkpoint, device, **overrides)
        self.top_k = top_k
        self.max_upload_bytes = max_upload_bytes
        self._cache: OrderedDict[Path, tuple] = OrderedDict()
        self._cache_size = cache_videos
        self._lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._upload_dir: Path | None = None
        self._cleanup = None

    # --- what is served -------------------------------------------------------------------

    def info(self) -> dict:
        """Run, model, dataset and features of the served run, and the page's limits."""
        card, cfg = self.predictor.card, self.predictor.cfg
        return {"run": self.predictor.run_dir.name, "model": cfg.model_name, "dataset": card.name,
                "features": card.features.describe() if card.features else None,
                "top_k": self.top_k, "max_top_k": MAX_TOP_K, "max_query_chars": MAX_QUERY_CHARS,
                "max_upload_bytes": self.max_upload_bytes if self.can_upload else 0}

    @property
    def can_upload(self) -> bool:
        """Whether uploads are on and the run's features can be computed from a video file."""
        from momentloc.video.extractors import parse_id

        features = self.predictor.card.features
        return (self.max_upload_bytes > 0 and features is not None
                and parse_id(features.extractor) is not None)

    @property
    def upload_dir(self) -> Path | None:
        return self._upload_dir

    def list_videos(self) -> list[dict]:
        out = []
        for p in sorted(self.videos_dir.rglob("*")):
            name = p.relative_to(self.videos_dir).as_posix()
            if not name.startswith(".") and safe_video_path(self.videos_dir, name) is not None:
                out.append({"name": name, "size": p.stat().st_size, "uploaded": False})
        for p in self._uploads():
            out.append({"name": UPLOAD_PREFIX + p.name, "size": p.stat().st_size,
                        "uploaded": True})
        return out

    def video_path(self, name: str) -> Path | None:
        """The file a video name refers to, or None (see :func:`safe_video_path`)."""
        if name.startswith(UPLOAD_PREFIX):
            if self._upload_dir is None:
                return None
            rest = name[len(UPLOAD_PREFIX):]
            return None if "/" in rest else safe_video_path(self._upload_dir, rest)
        return safe_video_path(self.videos_dir, name)

    # --- uploads --------------------------------------------------------------------------

    def _uploads(self) -> list[Path]:
        if self._upload_dir is None:
            return []
        files = [p for p in self._upload_dir.iterdir()
                 if p.is_file() and not p.name.startswith(".")]
        return sorted(files, key=lambda p: p.stat().st_mtime_ns)

    def _ensure_upload_dir(self) -> Path:
        with self._lock:
            if self._upload_dir is None:
                self._upload_dir = Path(tempfile.mkdtemp(prefix="momentloc-uploads-"))  # 0700
                self._cleanup = weakref.finalize(self, shutil.rmtree, str(self._upload_dir),
                                                 ignore_errors=True)
            return self._upload_dir

    def add_upload(self, name: str, write) -> dict:
        """Store an uploaded video and check that it decodes.

        Args:
            name: the file name the browser gave (made safe by :func:`upload_file_name`).
            write: ``write(file)`` copies the upload's bytes into the open binary file; what
                it raises (e.g. a timeout) propagates and nothing is kept.
        Returns:
            ``{"name": "upload:<file>", "size", "duration"}``.
        Raises:
            ConfigError: uploads are off, or the name is not a video file name.
            DataError: the file does not decode as a video.
        """
        if not self.can_upload:
            raise ConfigError("uploads are off: this run's features cannot be computed from a "
                              "video file" if self.max_upload_bytes else "uploads are off")
        file_name = upload_file_name(name)
        folder = self._ensure_upload_dir()
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
            from momentloc.video.decode import probe

            info = probe(tmp)
            with self._lock:
                stem, ext = os.path.splitext(file_name)
                final, n = folder / file_name, 1
                while final.exists():
                    final, n = folder / f"{stem}-{n}{ext}", n + 1
                os.replace(tmp, final)
            size = final.stat().st_size
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for old in self._uploads()[:-MAX_UPLOADS]:  # the oldest go first
            old.unlink(missing_ok=True)
        return {"name": UPLOAD_PREFIX + final.name, "size": size, "duration": info.duration}

    def close(self) -> None:
        """Remove the uploads folder (also done at interpreter exit)."""
        if self._cleanup is not None:
            self._cleanup()

    # --- queries --------------------------------------------------------------------------

    def features(self, path: Path):
        """``(features (M, D), duration)`` of a served video (cached)."""
        with self._lock:
            if path in self._cache:
                self._cache.move_to_end(path)
                return self._cache[path]
        card = self.predictor.card
        from momentloc.video.extractors import parse_id

        if card.features is not None and parse_id(card.features.extractor) is not None:
            if self._upload_dir is not None and path.parent == self._upload_dir.resolve():
                got = self.predictor.extractor.extract(path)  # kept out of the disk cache
                result = (got.features, got.duration)
            else:
                result = self.predictor.extract_features(path)
        elif self.predictor.data.store.has(path.stem):
            from momentloc.video.decode import probe

            feats, duration = self.predictor.data.video_features(path.stem)
            if duration is None:
                duration = probe(path).duration
            result = (feats, duration)
        else:
            what = card.features.describe() if card.features else "none"
            raise ConfigError(f"the run's features ({what}) cannot be computed from a video "
                              f"file, and {path.stem!r} is not in its feature store")
        with self._lock:
            self._cache[path] = result
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    def query(self, name: str, text: str, top_k: int | None = None) -> dict:
        """Ranked moments of ``text`` in video ``name``: the JSON form of
        :class:`~momentloc.engine.inference.Prediction` (moments, unknown words, warning).

        Raises:
            FileNotFoundError: no such video. ConfigError: empty or too long a sentence.
            DataError: the video does not decode.
        """
        path = self.video_path(name)
        if path is None:
            raise FileNotFoundError(name)
        if not text or not text.strip():
            raise ConfigError("type a sentence to look for")
        self.predictor.check_query(text)  # too long a query is refused before any decoding
        feats, duration = self.features(path)
        with self._model_lock:  # one forward pass at a time: the model is shared by the threads
            pred = self.predictor.predict_features(feats, duration, text, top_k or self.top_k,
                                                   name)[0]
        return pred.to_dict()

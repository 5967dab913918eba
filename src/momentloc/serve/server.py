"""The HTTP side of ``momentloc serve`` (standard library ``http.server``).

Routes::

    GET  /                   the page (HTML, inline script and style)
    GET  /api/videos         {"videos": [{"name": "a.mp4", "size": 1234}, ...]}
    POST /api/query          {"video": "a.mp4", "query": "...", "top_k": 5}
                             -> {"video", "duration", "query", "moments": [{"start", "end", "score"}]}
    GET  /videos/<name>      the file, with HTTP range requests (206 / 416)

Only regular video files inside the videos directory are served: a name is URL-decoded
once, joined to the directory, resolved (following symlinks) and must still lie inside
it, so ``..``, absolute paths, encoded traversal and symlinks out of the directory get 404.
The server listens on the loopback interface unless told otherwise.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import re
import threading
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from momentloc.errors import ConfigError, DataError, MomentlocError
from momentloc.video.decode import VIDEO_EXTENSIONS

log = logging.getLogger("momentloc.serve")

MAX_BODY = 64 << 10
CHUNK = 256 << 10
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class Unsatisfiable(Exception):
    """A range request none of whose bytes exist (answered 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` inclusive byte positions a ``Range`` header asks for.

    Returns None when the whole file is to be sent: no header, or one this server does not
    honour (another unit, several ranges, bad syntax), which RFC 9110 lets a server ignore.

    Raises:
        Unsatisfiable: a well-formed range that starts past the end, a zero-length suffix, or
            any range of an empty file.
    """
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise Unsatisfiable(header)
        return max(0, size - n), size - 1
    a = int(first)
    b = int(last) if last else size - 1
    if last and b < a:
        return None
    if a >= size:
        raise Unsatisfiable(header)
    return a, min(b, size - 1)


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
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    if not path.is_relative_to(root) or path == root:
        return None
    if not path.is_file() or path.suffix.lower() not in VIDEO_EXTENSIONS:
        return None
    return path


class MomentService:
    """A trained run and a directory of videos: lists videos, localizes sentences in them.

    Features of a video come from the extractor its run's card records (decoded and cached
    once per video); for runs on outside features (e.g. I3D), from the run's feature store
    when the file's stem is a video id there.

    Args:
        run_dir: the trained run. videos_dir: the directory served.
        overrides: extractor parameters (``model`` for a CLIP checkpoint that moved).
        cache_videos: videos whose features are kept in memory.
    """

    def __init__(self, run_dir: str | os.PathLike, videos_dir: str | os.PathLike,
                 checkpoint: str = "best", device: str = "cpu", top_k: int = 5,
                 cache_videos: int = 32, **overrides):
        from momentloc.engine.inference import Predictor

        self.videos_dir = Path(videos_dir).resolve()
        if not self.videos_dir.is_dir():
            raise ConfigError(f"{videos_dir}: not a directory of videos")
        self.predictor = Predictor(run_dir, checkpoint, device)
        self.top_k = top_k
        self.overrides = overrides
        self._cache: OrderedDict[Path, tuple] = OrderedDict()
        self._cache_size = cache_videos
        self._lock = threading.Lock()

    def list_videos(self) -> list[dict]:
        out = []
        for p in sorted(self.videos_dir.rglob("*")):
            name = p.relative_to(self.videos_dir).as_posix()
            if not name.startswith(".") and safe_video_path(self.videos_dir, name) is not None:
                out.append({"name": name, "size": p.stat().st_size})
        return out

    def features(self, path: Path):
        """``(features (M, D), duration)`` of a served video (cached)."""
        with self._lock:
            if path in self._cache:
                self._cache.move_to_end(path)
                return self._cache[path]
        card = self.predictor.card
        from momentloc.video.extractors import parse_id

        if card.features is not None and parse_id(card.features.extractor) is not None:
            from momentloc.video.extract import features_for_video

            got = features_for_video(card, path, **self.overrides)
            result = (got.features, got.duration)
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
        path = safe_video_path(self.videos_dir, name)
        if path is None:
            raise FileNotFoundError(name)
        if not text or not text.strip():
            raise ConfigError("type a sentence to look for")
        feats, duration = self.features(path)
        with self._lock:  # one forward pass at a time: the model is shared by the threads
            moments = self.predictor.localize(feats, duration, [text], top_k or self.top_k)[0]
        return {"video": name, "duration": duration, "query": text,
                "moments": [{"start": m.start, "end": m.end, "score": m.score} for m in moments]}


class Handler(BaseHTTPRequestHandler):
    server_version = "momentloc"
    service: MomentService  # set on the subclass make_server builds

    def log_message(self, fmt, *args):  # the standard handler writes to stderr
        log.debug("%s %s", self.address_string(), fmt % args)

    def _send_json(self, status: int, payload) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _not_found(self) -> None:
        self._send_json(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_GET(self):
        self._get(head=False)

    def do_HEAD(self):
        self._get(head=True)

    def _get(self, head: bool) -> None:
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            from momentloc.serve.page import page_html

            body = page_html(self.service.predictor.run_dir.name).encode("utf-8")
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)
        elif path == "/api/videos":
            self._send_json(HTTPStatus.OK, {"videos": self.service.list_videos()})
        elif path.startswith("/videos/"):
            self._send_video(unquote(path[len("/videos/"):]), head)
        else:
            self._not_found()

    def do_POST(self):
        if urlsplit(self.path).path != "/api/query":
            return self._not_found()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            return self._send_json(HTTPStatus.BAD_REQUEST, {"error": "a JSON body is required"})
        try:
            req = json.loads(self.rfile.read(length))
            video, text = str(req["video"]), str(req["query"])
            top_k = req.get("top_k", self.service.top_k)
            if isinstance(top_k, bool) or not isinstance(top_k, int):
                raise ValueError("top_k must be an integer")
            if not 1 <= top_k <= 100:
                raise ValueError("top_k must be in [1, 100]")
        except (ValueError, KeyError, TypeError) as e:
            return self._send_json(HTTPStatus.BAD_REQUEST, {"error": f"bad request ({e})"})
        try:
            self._send_json(HTTPStatus.OK, self.service.query(video, text, top_k))
        except FileNotFoundError:
            self._not_found()
        except (ConfigError, DataError, MomentlocError) as e:
            self._send_json(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(e)})

    def _send_video(self, name: str, head: bool) -> None:
        path = safe_video_path(self.service.videos_dir, name)
        if path is None:
            return self._not_found()
        size = path.stat().st_size
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        try:
            rng = parse_range(self.headers.get("Range"), size)
        except Unsatisfiable:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        first, last = rng if rng is not None else (0, size - 1)
        length = max(0, last - first + 1)
        self.send_response(HTTPStatus.PARTIAL_CONTENT if rng is not None else HTTPStatus.OK)
        self.send_header("Content-Type", ctype)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        if rng is not None:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if head:
            return
        try:
            with open(path, "rb") as f:
                f.seek(first)
                left = length
                while left > 0:
                    chunk = f.read(min(CHUNK, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):  # the player cancelled the request
            pass


def make_server(service: MomentService, host: str = "127.0.0.1",
                port: int = 8000) -> ThreadingHTTPServer:
    """A threading HTTP server for ``service`` (port 0 picks a free port: see
    ``server.server_address``). Call ``serve_forever()`` on it."""
    handler = type("MomentHandler", (Handler,), {"service": service})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server

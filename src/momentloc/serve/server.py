"""The HTTP side of ``momentloc serve``: the standard library's ``http.server``, hardened.

Routes::

    GET  /                       the page (one HTML document, inline script and style)
    GET  /api/info               run, model, dataset, features, default top_k and the limits
    GET  /api/videos             {"videos": [{"name": "a.mp4", "size": 1234, "uploaded": false}]}
    POST /api/query              {"video", "query", "top_k"} as application/json
                                 -> see :func:`momentloc.serve.service.prediction_result`
    POST /api/upload?name=a.mp4  the video's bytes (video/* or application/octet-stream)
                                 -> 201 {"name": "upload:a.mp4", "size", "duration"}
    GET  /videos/<name>          the file, with HTTP range requests (206 / 416)

Only regular video files inside the videos directory (or the uploads folder) are served: a
name is URL-decoded once, joined to the directory, resolved (following symlinks) and must
still lie inside it, so ``..``, absolute paths, encoded traversal and symlinks out get 404.

Against hostile clients and web pages:

* at most ``max_connections`` connections are handled at once; one more is answered 503 and
  closed by the accepting thread, so the thread count stays bounded;
* the request line and headers must arrive within ``timeout`` seconds of the connection
  waiting for them (idle keep-alive connections included) and fit in ``MAX_HEAD`` bytes
  (431); a body must arrive within ``timeout`` plus one second per MiB (408 otherwise);
  every write gives up after ``timeout`` seconds;
* JSON bodies are at most ``MAX_BODY`` bytes (413), uploads ``max_upload_bytes``;
* the ``Host`` header must name the address the server listens on (400), which defeats DNS
  rebinding; a request whose ``Origin`` is not that same address, or that the browser marks
  as cross-site (``Sec-Fetch-Site``) other than a top-level page load, gets 403; a query must
  be ``application/json``, which a cross-site form cannot send;
* no request makes the server print a traceback: an unexpected error is answered 500 and
  logged on one line (the traceback at debug level).
"""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import mimetypes
import re
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from momentloc.errors import ConfigError, DataError, MomentlocError
from momentloc.serve.service import MAX_TOP_K, MomentService

log = logging.getLogger("momentloc.serve")

MAX_HEAD = 16 << 10
MAX_BODY = 64 << 10
CHUNK = 256 << 10
MIN_RATE = 1 << 20          # bytes/s a body may take beyond the timeout
LINGER_S, LINGER_BYTES = 1.0, 1 << 20   # what a closing connection reads and drops at most
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_DIGITS = 18                # a byte position with more digits is past the end of any file
_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; media-src 'self' blob:; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class Unsatisfiable(Exception):
    """A range request none of whose bytes exist (answered 416)."""


class Refused(Exception):
    """A request answered with a 4xx status and a message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _position(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _DIGITS else 10 ** _DIGITS


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` inclusive byte positions a ``Range`` header asks for.

    Returns None when the whole file is to be sent: no header, or one this server does not
    honour (another unit, several ranges, bad syntax), which RFC 9110 lets a server ignore.
    Positions of any length are read (one too long for an integer is past every file's end).

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
        n = _position(last)
        if n == 0 or size == 0:
            raise Unsatisfiable(header)
        return max(0, size - n), size - 1
    a = _position(first)
    b = _position(last) if last else size - 1
    if last and b < a:
        return None
    if a >= size:
        raise Unsatisfiable(header)
    return a, min(b, size - 1)


def _host_port(value: str) -> tuple[str, int | None] | None:
    """``(hostname, port)`` of a ``Host`` header or an origin's authority, or None if bad."""
    try:
        parts = urlsplit("//" + value)
        if parts.path or parts.query or parts.fragment or parts.username or not parts.hostname:
            return None
        return parts.hostname.lower().rstrip("."), parts.port
    except ValueError:
        return None


class Handler(BaseHTTPRequestHandler):
    server_version = "momentloc"
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # answers to garbage get a status line (not HTTP/0.9)
    server: MomentServer

    # --- reading a request, within bounds -------------------------------------------------

    def handle_one_request(self):
        self.command, self.request_version, self.requestline = "", "HTTP/1.1", ""
        self._answered = False
        timeout = self.server.timeout_s
        try:
            head = self._read_head(time.monotonic() + timeout)
            if not head:
                self.close_connection = True
                return
            end = head.index(b"\n") + 1
            self.raw_requestline = head[:end]
            sock_file, self.rfile = self.rfile, io.BytesIO(head[end:])
            try:
                ok = self.parse_request()
            finally:
                self.rfile = sock_file
            if not ok:
                return
            self.connection.settimeout(timeout)  # bounds every write
            self._check_client()
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                raise Refused(HTTPStatus.NOT_IMPLEMENTED, f"unsupported method {self.command!r}")
            method()
            self.wfile.flush()
        except Refused as e:
            self._fail(e.status, str(e))
        except (TimeoutError, ConnectionError) as e:  # the client went away or stalled
            log.debug("%s: connection dropped (%r)", self.address_string(), e)
            self.close_connection = True
        except Exception as e:  # answered 500, logged on one line
            log.error("%s %s: %s: %s", self.command, self.path if self.requestline else "-",
                      type(e).__name__, e)
            log.debug("traceback", exc_info=True)
            self._fail(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (see the server log)")

    def _read_head(self, deadline: float) -> bytes:
        """Bytes up to and including the blank line that ends the headers ('' if the client
        closed or stayed idle first). Leading empty lines are skipped (RFC 9112 2.2)."""
        head = bytearray()
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                self.connection.settimeout(left)
                chunk = self.rfile.peek(MAX_HEAD)
            except TimeoutError:
                if head:
                    raise Refused(HTTPStatus.REQUEST_TIMEOUT, "the request did not arrive in time")
                raise
            if not chunk:
                return b""
            if not head:
                skip = len(chunk) - len(chunk.lstrip(b"\r\n"))
                if skip:
                    self.rfile.read(skip)
                    continue
            start = max(0, len(head) - 3)
            m = re.search(rb"\n\r?\n", bytes(head[start:]) + chunk)
            take = len(chunk) if m is None else start + m.end() - len(head)
            head += self.rfile.read(take)
            if len(head) > MAX_HEAD:
                raise Refused(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                              f"the request line and headers exceed {MAX_HEAD} bytes")
            if m is not None:
                return bytes(head)

    def _content_length(self, limit: int) -> int:
        if self.headers.get("Transfer-Encoding"):
            raise Refused(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
        values = self.headers.get_all("Content-Length") or []
        if not values:
            raise Refused(HTTPStatus.LENGTH_REQUIRED, "a Content-Length is required")
        value = values[0].strip()
        if len(values) > 1 or not value.isascii() or not value.isdigit():
            raise Refused(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        if len(value.lstrip("0")) > _DIGITS or int(value) > limit:
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                          f"the body exceeds the limit of {limit} bytes")
        return int(value)

    def _read_body(self, length: int, sink) -> None:
        """Pass ``length`` body bytes to ``sink``, all within ``timeout`` + 1 s per MiB."""
        deadline = time.monotonic() + self.server.timeout_s + length / MIN_RATE
        if (self.headers.get("Expect", "").lower() == "100-continue"
                and self.request_version != "HTTP/1.0"):
            self.send_response_only(HTTPStatus.CONTINUE)
            self.end_headers()
        left = length
        while left > 0:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise TimeoutError
                self.connection.settimeout(remaining)
                chunk = self.rfile.read1(min(left, CHUNK))
            except TimeoutError:
                raise Refused(HTTPStatus.REQUEST_TIMEOUT,
                              "the request body did not arrive in time") from None
            if not chunk:
                raise Refused(HTTPStatus.BAD_REQUEST, "the body is shorter than its Content-Length")
            sink(chunk)
            left -= len(chunk)
        self.connection.settimeout(self.server.timeout_s)

    def _check_client(self) -> None:
        """Host must be the server's own address; browsers' cross-site requests are refused."""
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1 or not self.server.host_allowed(hosts[0].strip()):
            raise Refused(HTTPStatus.BAD_REQUEST, "unknown Host: this server answers only to "
                          "the address it listens on")
        origin = self.headers.get("Origin")
        if origin is not None and origin.strip().lower() != "http://" + hosts[0].strip().lower():
            raise Refused(HTTPStatus.FORBIDDEN, "cross-origin requests are refused")
        site = (self.headers.get("Sec-Fetch-Site") or "").lower()
        navigation = (self.command in ("GET", "HEAD")
                      and self.headers.get("Sec-Fetch-Mode", "").lower() == "navigate"
                      and self.headers.get("Sec-Fetch-Dest", "").lower() == "document")
        if site in ("cross-site", "same-site") and not navigation:
            raise Refused(HTTPStatus.FORBIDDEN, "cross-site requests are refused")

    def handle_expect_100(self):
        # "100 Continue" is sent by _read_body, once the request has passed every check.
        return True

    # --- answering ------------------------------------------------------------------------

    def log_message(self, fmt, *args):  # the standard handler writes to stderr
        log.debug("%s %s", self.address_string(), fmt % args)

    def send_response(self, code, message=None):
        self._answered = True
        super().send_response(code, message)
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.close_connection:
            self.send_header("Connection", "close")

    def send_error(self, code, message=None, explain=None):
        """Errors the standard parser finds (bad request line, too many headers) as JSON."""
        self._fail(code, message or HTTPStatus(code).phrase)

    def _fail(self, status: int, message: str) -> None:
        self.close_connection = True  # the body, if any, was not read
        if self._answered:
            return
        try:
            self._send_json(status, {"error": message})
        except OSError:
            pass

    def _send_json(self, status: int, payload) -> None:
        body = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # --- routes ---------------------------------------------------------------------------

    def do_GET(self):
        self._get(head=False)

    def do_HEAD(self):
        self._get(head=True)

    def _get(self, head: bool) -> None:
        service = self.server.service
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            from momentloc.serve.page import page_html

            body = page_html(service.predictor.run_dir.name).encode("utf-8")
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", _CSP)
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if not head:
                self.wfile.write(body)
        elif path == "/api/info":
            self._send_json(HTTPStatus.OK, service.info())
        elif path == "/api/videos":
            self._send_json(HTTPStatus.OK, {"videos": service.list_videos()})
        elif path.startswith("/videos/"):
            self._send_video(unquote(path[len("/videos/"):]), head)
        else:
            raise Refused(HTTPStatus.NOT_FOUND, "not found")

    def do_POST(self):
        parts = urlsplit(self.path)
        if parts.path == "/api/query":
            self._query()
        elif parts.path == "/api/upload":
            self._upload(parse_qs(parts.query).get("name", [""])[0])
        else:
            raise Refused(HTTPStatus.NOT_FOUND, "not found")

    def _content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def _query(self) -> None:
        if self._content_type() != "application/json":
            raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the query as application/json")
        length = self._content_length(MAX_BODY)
        buf = bytearray()
        self._read_body(length, buf.extend)
        try:
            req = json.loads(buf)
            if not isinstance(req, dict):
                raise ValueError("the body must be a JSON object")
            video, text = req["video"], req["query"]
            if not isinstance(video, str) or not isinstance(text, str):
                raise ValueError("video and query must be strings")
            top_k = req.get("top_k")
            top_k = self.server.service.top_k if top_k is None else top_k
            if isinstance(top_k, bool) or not isinstance(top_k, int):
                raise ValueError("top_k must be an integer")
            if not 1 <= top_k <= MAX_TOP_K:
                raise ValueError(f"top_k must be in [1, {MAX_TOP_K}]")
        except KeyError as e:
            raise Refused(HTTPStatus.BAD_REQUEST, f"bad request (missing {e})") from None
        except (ValueError, RecursionError) as e:  # RecursionError: JSON nested too deep
            what = "JSON nested too deeply" if isinstance(e, RecursionError) else str(e)
            raise Refused(HTTPStatus.BAD_REQUEST, f"bad request ({what})") from None
        try:
            result = self.server.service.query(video, text, top_k)
        except FileNotFoundError:
            raise Refused(HTTPStatus.NOT_FOUND, f"no video {video!r}") from None
        except MomentlocError as e:
            raise Refused(HTTPStatus.UNPROCESSABLE_ENTITY, str(e)) from None
        self._send_json(HTTPStatus.OK, result)

    def _upload(self, name: str) -> None:
        service = self.server.service
        if not service.can_upload:
            raise Refused(HTTPStatus.FORBIDDEN, "uploads are off for this run")
        ctype = self._content_type()
        if not (ctype.startswith("video/") or ctype == "application/octet-stream"):
            raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the video's bytes as video/*")
        from momentloc.serve.service import upload_file_name

        try:
            upload_file_name(name)
        except ConfigError as e:
            raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, str(e)) from None
        length = self._content_length(service.max_upload_bytes)
        try:
            result = service.add_upload(name, lambda f: self._read_body(length, f.write))
        except (ConfigError, DataError) as e:
            raise Refused(HTTPStatus.UNPROCESSABLE_ENTITY,
                          f"{name}: not a video that can be decoded ({e})") from None
        self._send_json(HTTPStatus.CREATED, result)

    def _send_video(self, name: str, head: bool) -> None:
        path = self.server.service.video_path(name)
        if path is None:
            raise Refused(HTTPStatus.NOT_FOUND, "not found")
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
        with open(path, "rb") as f:
            f.seek(first)
            left = length
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)


_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
         b"Content-Length: 47\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
         b'{"error": "too many connections; retry later"}')


class MomentServer(ThreadingHTTPServer):
    """A threading HTTP server with a cap on concurrent connections and a Host allow-list.

    Args:
        service: what is served. host, port: where to listen (port 0 picks a free port:
            see ``server_address``).
        max_connections: connections handled at once; more are answered 503 and closed.
        timeout: seconds a client may take to send a request, and each write may take.
        allowed_hosts: more names the ``Host`` header may carry (e.g. the machine's name when
            listening on every interface).
    """

    daemon_threads = True
    block_on_close = False

    def __init__(self, service: MomentService, host: str = "127.0.0.1", port: int = 8000, *,
                 max_connections: int = 32, timeout: float = 10.0,
                 allowed_hosts: tuple[str, ...] = ()):
        if max_connections < 1 or timeout <= 0:
            raise ConfigError("max_connections and timeout must be positive")
        self.service = service
        self.timeout_s = float(timeout)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._max_connections = max_connections
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), type("MomentHandler", (Handler,), {}))
        self._names, self._any_ip = self._allowed(host, allowed_hosts)

    def _allowed(self, host: str, extra: tuple[str, ...]) -> tuple[set[str], bool]:
        """Names the Host header may carry: the address bound (and ``host`` as given),
        ``localhost`` for a loopback address, any address literal and this machine's names
        when listening on every interface, and ``extra``."""
        ip = ipaddress.ip_address(self.server_address[0])
        names = {ip.compressed, host.lower(), *(h.lower() for h in extra)}
        if ip.is_loopback:
            names.add("localhost")
        if ip.is_unspecified:
            names |= {"localhost", socket.gethostname().lower(), socket.getfqdn().lower()}
        return names, ip.is_unspecified

    def host_allowed(self, value: str) -> bool:
        """Whether a ``Host`` header names this server (its address and port)."""
        got = _host_port(value)
        if got is None:
            return False
        name, port = got
        if port != self.server_address[1] and not (port is None and self.server_address[1] == 80):
            return False
        if name in self._names:
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return self._any_ip

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            self.shutdown_request(request)
            raise

    def drain(self, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for the connections being served to end (call it
        after ``serve_forever`` has returned); True when none is left. A process that exits
        with handler threads still running can abort in the interpreter's shutdown."""
        deadline, held = time.monotonic() + timeout, 0
        try:
            while held < self._max_connections:
                if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    break
                held += 1
        finally:
            for _ in range(held):
                self._slots.release()
        return held == self._max_connections

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request) -> None:
        log.debug("too many connections: refused one")
        try:
            request.setblocking(False)
            request.send(_BUSY)
            request.recv(MAX_HEAD)  # what already arrived, so that closing does not reset
        except OSError:
            pass
        self.close_request(request)

    def shutdown_request(self, request):
        """Close a connection after reading and dropping what the client still sends (for at
        most ``LINGER_S`` seconds), so that an early answer such as 413 or 431 is not lost to
        the reset that closing on unread bytes causes."""
        try:
            request.shutdown(socket.SHUT_WR)
            deadline, dropped = time.monotonic() + LINGER_S, 0
            while dropped < LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
                request.settimeout(left)
                chunk = request.recv(CHUNK)
                if not chunk:
                    break
                dropped += len(chunk)
        except OSError:
            pass
        self.close_request(request)

    def handle_error(self, request, client_address):
        log.error("connection from %s: %r", client_address[0], sys.exc_info()[1])
        log.debug("traceback", exc_info=True)


def make_server(service: MomentService, host: str = "127.0.0.1", port: int = 8000,
                **limits) -> MomentServer:
    """A :class:`MomentServer` for ``service``; call ``serve_forever()`` on it. ``limits``:
    ``max_connections``, ``timeout``, ``allowed_hosts``."""
    return MomentServer(service, host, port, **limits)



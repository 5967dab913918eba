"""``momentloc serve`` against hostile clients, on 127.0.0.1 only.

Each case asserts a 4xx/503 answer or a closed connection, bounded by a client-side socket
timeout (a stalled server fails the test instead of hanging it), and that the server still
answers a normal request afterwards. No case makes the server log an error or a traceback.
"""

import json
import logging
import select
import socket
import threading
import time

import pytest

CLIENT_TIMEOUT = 15.0  # seconds a client waits for the server before the test fails


def start(service, **limits):
    from momentloc.serve import make_server

    srv = make_server(service, "127.0.0.1", 0, **limits)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def stop(srv):
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def service(shapes_run):
    from momentloc.serve import MomentService

    world, run_dir = shapes_run
    svc = MomentService(run_dir, world / "videos", max_upload_bytes=1 << 20)
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def strict(service):
    """A server with a 1-second request timeout and room for 4 connections."""
    srv = start(service, max_connections=4, timeout=1.0)
    yield srv
    stop(srv)


@pytest.fixture(autouse=True)
def no_error_logged(caplog, capfd):
    caplog.set_level(logging.WARNING, logger="momentloc.serve")
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]
    assert "Traceback" not in capfd.readouterr().err


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT)
    return s


def read_all(s: socket.socket) -> bytes:
    """What the server sends until it closes the connection (a reset counts as closed)."""
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except ConnectionResetError:
        pass
    return out


def exchange(port: int, data: bytes) -> bytes:
    with connect(port) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):  # closed before reading it all
            pass
        return read_all(s)


def status_of(response: bytes) -> int | None:
    """The status code of a raw response, None for a closed connection with no answer."""
    if not response:
        return None
    return int(response.split(b" ", 2)[1])


def request(port, method="GET", path="/api/videos", headers=None, body=b"", host=None):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {f'127.0.0.1:{port}' if host is None else host}",
             "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body and not any(k.lower() == "content-length" for k in (headers or {})):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def answers_normally(port: int, tries: int = 20) -> bool:
    """A normal request gets 200 (retried a bounded number of times while slots free up)."""
    for _ in range(tries):
        if status_of(exchange(port, request(port))) == 200:
            return True
        time.sleep(0.2)
    return False


def port_of(srv) -> int:
    return srv.server_address[1]


def test_idle_clients_beyond_the_cap_are_refused(service):
    srv = start(service, max_connections=4, timeout=60.0)
    port = port_of(srv)
    before = threading.active_count()
    clients = [connect(port) for _ in range(20)]
    try:
        refused, deadline = set(), time.monotonic() + CLIENT_TIMEOUT
        while len(refused) < 16 and time.monotonic() < deadline:
            ready, _, _ = select.select([c for c in clients if c not in refused], [], [], 0.5)
            for c in ready:
                got = read_all(c)
                assert got == b"" or status_of(got) == 503
                refused.add(c)
        assert len(refused) == 16                       # the other 4 hold the 4 slots
        assert threading.active_count() - before <= 4    # one thread per held connection
        held = [c for c in clients if c not in refused]
        assert not select.select(held, [], [], 0.2)[0]   # still open, waiting for a request
        assert status_of(exchange(port, request(port))) in (None, 503)
    finally:
        for c in clients:
            c.close()
    assert answers_normally(port)
    stop(srv)


def test_idle_and_slow_clients_are_cut_off(strict):
    port = port_of(strict)
    with connect(port) as s:                 # says nothing: closed without an answer
        assert read_all(s) == b""
    with connect(port) as s:                 # half a request line, then nothing: 408
        s.sendall(b"GET /api/vid")
        assert status_of(read_all(s)) == 408
    with connect(port) as s:                 # headers one byte at a time, never ending: 408
        got, data = b"", request(port)[:-2] + b"X-Slow: " + b"a" * 200
        for i in range(len(data)):
            try:
                s.sendall(data[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([s], [], [], 0.05)[0]:
                break
        got = read_all(s)
        assert status_of(got) == 408 and i < len(data) - 1
    assert answers_normally(port)


def test_body_shorter_than_its_content_length(strict):
    port = port_of(strict)
    body = b'{"video": "x.mp4", "query": "a"}'
    head = request(port, "POST", "/api/query",
                   {"Content-Type": "application/json", "Content-Length": len(body) + 100})
    with connect(port) as s:
        s.sendall(head + body)                              # and then nothing more
        got = read_all(s)
    assert status_of(got) == 408 and b"did not arrive in time" in got
    with connect(port) as s:                                # the client half-closes instead
        s.sendall(head + body)
        s.shutdown(socket.SHUT_WR)
        got = read_all(s)
    assert status_of(got) == 400 and b"shorter than its Content-Length" in got
    assert answers_normally(port)


def test_huge_range_headers(strict, shapes_run):
    port = port_of(strict)
    world, _ = shapes_run
    video = sorted((world / "videos").glob("*.mp4"))[0]
    size, digits = video.stat().st_size, "9" * 5000
    path = f"/videos/{video.name}"
    got = exchange(port, request(port, path=path, headers={"Range": f"bytes={digits}-"}))
    assert status_of(got) == 416 and f"bytes */{size}".encode() in got
    got = exchange(port, request(port, path=path, headers={"Range": f"bytes=0-{digits}"}))
    assert status_of(got) == 206 and f"bytes 0-{size - 1}/{size}".encode() in got
    got = exchange(port, request(port, path=path, headers={"Range": f"bytes=-{digits}"}))
    assert status_of(got) == 206 and got.endswith(video.read_bytes())
    assert answers_normally(port)


def test_deeply_nested_json(strict):
    port = port_of(strict)
    body = b"[" * 30000 + b"]" * 30000
    got = exchange(port, request(port, "POST", "/api/query", {"Content-Type": "application/json"},
                                 body))
    assert status_of(got) == 400 and b"nested too deeply" in got
    body = json.dumps({"video": {"a": [[[[[[]]]]]]}, "query": ["x"]}).encode()
    got = exchange(port, request(port, "POST", "/api/query", {"Content-Type": "application/json"},
                                 body))
    assert status_of(got) == 400
    assert answers_normally(port)


@pytest.mark.parametrize("host", ["evil.example:{port}", "127.0.0.1:1", "127.0.0.2:{port}",
                                  "localhost.evil.example:{port}", "", "127.0.0.1:{port}/x",
                                  "u@127.0.0.1:{port}"])
def test_host_must_be_the_listening_address(strict, host):
    port = port_of(strict)
    got = exchange(port, request(port, host=host.format(port=port)))
    assert status_of(got) == 400 and b"unknown Host" in got
    got = exchange(port, f"GET /api/videos HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                         f"Host: evil.example\r\n\r\n".encode())
    assert status_of(got) == 400
    assert status_of(exchange(port, b"GET /api/videos HTTP/1.0\r\n\r\n")) == 400  # no Host
    assert status_of(exchange(port, request(port, host=f"localhost:{port}"))) == 200
    assert answers_normally(port)


def test_cross_site_requests_are_refused(strict, shapes_run):
    port = port_of(strict)
    world, _ = shapes_run
    name = sorted(p.name for p in (world / "videos").glob("*.mp4"))[0]
    body = json.dumps({"video": name, "query": "the red circle grows"}).encode()
    for headers in [{"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Origin": f"http://localhost:{port}"}, {"Origin": f"https://127.0.0.1:{port}"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}]:
        got = exchange(port, request(port, "POST", "/api/query",
                                     {"Content-Type": "application/json", **headers}, body))
        assert status_of(got) == 403, headers
        got = exchange(port, request(port, headers=headers))
        assert status_of(got) == 403, headers
    # a cross-site form can only send form or text bodies
    for ctype in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x"]:
        got = exchange(port, request(port, "POST", "/api/query", {"Content-Type": ctype}, body))
        assert status_of(got) == 415
    nav = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate",
           "Sec-Fetch-Dest": "document"}
    assert status_of(exchange(port, request(port, path="/", headers=nav))) == 200  # a link
    same = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin",
            "Content-Type": "application/json"}
    assert status_of(exchange(port, request(port, "POST", "/api/query", same, body))) == 200
    assert answers_normally(port)


def test_oversized_requests(strict, shapes_run):
    port = port_of(strict)
    world, _ = shapes_run
    name = sorted(p.name for p in (world / "videos").glob("*.mp4"))[0]
    json_type = {"Content-Type": "application/json"}
    body = json.dumps({"video": name, "query": "the red circle grows " * 60}).encode()
    got = exchange(port, request(port, "POST", "/api/query", json_type, body))  # 1,260 chars
    assert status_of(got) == 422 and b"at most 1000" in got
    big = {**json_type, "Content-Length": 100_000_000}                         # a 100 MB query
    got = exchange(port, request(port, "POST", "/api/query", big) + b'{"query": "' + b"a" * 65536)
    assert status_of(got) == 413
    got = exchange(port, request(port, "POST", "/api/query",
                                 {**json_type, "Content-Length": "9" * 5000}))
    assert status_of(got) == 413
    for bad in ["-1", "1e3", "0x10", "12 34"]:
        got = exchange(port, request(port, "POST", "/api/query",
                                     {**json_type, "Content-Length": bad}))
        assert status_of(got) == 400, bad
    got = exchange(port, request(port, "POST", "/api/query", {**json_type,
                                                              "Transfer-Encoding": "chunked"}))
    assert status_of(got) == 411
    got = exchange(port, request(port, headers={"X-Big": "a" * 20000}))
    assert status_of(got) == 431
    got = exchange(port, request(port, headers={f"X-{i}": "a" for i in range(150)}))
    assert status_of(got) == 431
    got = exchange(port, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n")
    assert status_of(got) == 431
    brew = b"BREW /pot HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port
    assert status_of(exchange(port, brew)) == 501
    assert status_of(exchange(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")) == 400
    assert answers_normally(port)


def test_uploads_are_bounded_and_checked(strict, service, shapes_run):
    port = port_of(strict)
    world, _ = shapes_run
    video = sorted((world / "videos").glob("*.mp4"))[0]
    vtype = {"Content-Type": "video/mp4"}
    got = exchange(port, request(port, "POST", "/api/upload?name=big.mp4",
                                 {**vtype, "Content-Length": (1 << 20) + 1}))
    assert status_of(got) == 413
    got = exchange(port, request(port, "POST", "/api/upload?name=notes.txt", vtype, b"hello"))
    assert status_of(got) == 415
    got = exchange(port, request(port, "POST", "/api/upload?name=a.mp4",
                                 {"Content-Type": "text/plain"}, b"hello"))
    assert status_of(got) == 415
    got = exchange(port, request(port, "POST", "/api/upload?name=fake.mp4", vtype, b"\0" * 4000))
    assert status_of(got) == 422 and b"fake.mp4" in got
    got = exchange(port, request(port, "POST", "/api/upload?name=short.mp4",
                                 {**vtype, "Content-Length": 5000}, b"\0" * 100))
    assert status_of(got) == 408
    got = exchange(port, request(port, "POST", "/api/upload?name=../../x%2F..%2Fup.mp4", vtype,
                                 video.read_bytes()))
    assert status_of(got) == 201
    result = json.loads(got.split(b"\r\n\r\n", 1)[1])
    assert result["name"] == "upload:up.mp4" and result["duration"] > 0
    folder = service.upload_dir
    assert [p.name for p in folder.iterdir()] == ["up.mp4"]      # nothing else left behind
    assert folder.stat().st_mode & 0o777 == 0o700
    got = exchange(port, request(port, path="/videos/upload:up.mp4"))
    assert status_of(got) == 200 and got.endswith(video.read_bytes())
    for bad in ["upload:../" + video.name, "upload:", "upload:sub/up.mp4"]:
        assert status_of(exchange(port, request(port, path="/videos/" + bad))) == 404
    assert answers_normally(port)


def test_drain_waits_for_open_connections(service):
    """After serve_forever returns, drain() waits for the connections still being served."""
    srv = start(service, max_connections=4, timeout=5.0)
    port = port_of(srv)
    assert answers_normally(port)
    with connect(port) as s:
        s.sendall(b"GET /api/vid")               # half a request line: its handler waits
        time.sleep(0.2)
        srv.shutdown()
        t0 = time.monotonic()
        assert srv.drain(0.3) is False           # still served
        assert time.monotonic() - t0 < 2.0
    assert srv.drain(CLIENT_TIMEOUT) is True     # the client left: its handler ended
    srv.server_close()
    assert srv.drain(0.0) is True                # nothing open: no wait

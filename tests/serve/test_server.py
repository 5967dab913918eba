import json
import os
import threading
import urllib.error
import urllib.request

import pytest

from momentloc.serve import Unsatisfiable, parse_range, safe_video_path


@pytest.mark.parametrize("header, size, expect", [
    ("bytes=0-99", 1000, (0, 99)), ("bytes=100-", 1000, (100, 999)),
    ("bytes=-100", 1000, (900, 999)), ("bytes=0-" + "9" * 5000, 1000, (0, 999)),
    ("bytes=-" + "9" * 5000, 1000, (0, 999)), ("bytes=0007-0009", 1000, (7, 9)),
    ("bytes=900-5000", 1000, (900, 999)), ("bytes=-5000", 1000, (0, 999)),
    (None, 1000, None), ("", 1000, None), ("items=0-1", 1000, None), ("bytes=5-1", 1000, None),
    ("bytes=0-1,4-5", 1000, None), ("bytes=-", 1000, None), ("bytes=a-b", 1000, None),
])
def test_parse_range(header, size, expect):
    assert parse_range(header, size) == expect


@pytest.mark.parametrize("header, size", [("bytes=1000-", 1000), ("bytes=2000-3000", 1000),
                                          ("bytes=-0", 1000), ("bytes=0-", 0),
                                          ("bytes=" + "9" * 5000 + "-", 1000)])
def test_unsatisfiable_ranges(header, size):
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)


def test_safe_video_path_stays_inside(tmp_path):
    root = tmp_path / "videos"
    (root / "sub").mkdir(parents=True)
    (root / "a.mp4").write_bytes(b"x")
    (root / "sub" / "b.mp4").write_bytes(b"x")
    (root / "notes.txt").write_text("x")
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"x")
    os.symlink(secret, root / "link.mp4")
    os.symlink(root / "a.mp4", root / "inner.mp4")
    assert safe_video_path(root, "a.mp4") == (root / "a.mp4").resolve()
    assert safe_video_path(root, "sub/b.mp4") == (root / "sub" / "b.mp4").resolve()
    assert safe_video_path(root, "inner.mp4") == (root / "a.mp4").resolve()
    for bad in ["../secret.mp4", "sub/../../secret.mp4", str(secret), "/etc/passwd", "link.mp4",
                "notes.txt", "sub", "", ".", "a.mp4\x00.txt", "..\\secret.mp4", "missing.mp4"]:
        assert safe_video_path(root, bad) is None, bad


@pytest.fixture(scope="module")
def server(shapes_run):
    from momentloc.serve import MomentService, make_server

    world, run_dir = shapes_run
    service = MomentService(run_dir, world / "videos")
    srv = make_server(service, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", world
    srv.shutdown()
    srv.server_close()


JSON = {"Content-Type": "application/json"}


def get(url, headers=None, method="GET", data=None):
    req = urllib.request.Request(url, headers=headers or {}, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_page_and_video_list(server):
    base, world = server
    status, headers, body = get(base + "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"<video" in body and b"/api/query" in body
    status, _, body = get(base + "/api/videos")
    names = [v["name"] for v in json.loads(body)["videos"]]
    assert names == sorted(p.name for p in (world / "videos").glob("*.mp4"))


def test_video_bytes_with_ranges(server):
    base, world = server
    path = sorted((world / "videos").glob("*.mp4"))[0]
    data, size = path.read_bytes(), path.stat().st_size
    status, headers, body = get(f"{base}/videos/{path.name}")
    assert status == 200 and body == data and headers["Accept-Ranges"] == "bytes"
    assert headers["Content-Type"] == "video/mp4"
    status, headers, body = get(f"{base}/videos/{path.name}", {"Range": "bytes=10-19"})
    assert status == 206 and body == data[10:20]
    assert headers["Content-Range"] == f"bytes 10-19/{size}" and headers["Content-Length"] == "10"
    status, headers, body = get(f"{base}/videos/{path.name}", {"Range": "bytes=-7"})
    assert status == 206 and body == data[-7:]
    status, headers, _ = get(f"{base}/videos/{path.name}", {"Range": f"bytes={size}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{size}"
    status, headers, body = get(f"{base}/videos/{path.name}", method="HEAD")
    assert status == 200 and headers["Content-Length"] == str(size) and body == b""


@pytest.mark.parametrize("path", [
    "/videos/../dataset.yaml", "/videos/%2e%2e/dataset.yaml", "/videos/%2E%2E%2Fdataset.yaml",
    "/videos/..%2fCharades_v1_test.csv", "/videos/%252e%252e/dataset.yaml", "/videos//etc/passwd",
    "/videos/%2Fetc%2Fpasswd", "/videos/", "/../dataset.yaml", "/videos/..%5cdataset.yaml",
])
def test_nothing_outside_the_videos_directory_is_served(server, path):
    base, _ = server
    import http.client

    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", path)           # sent as is, without client-side normalization
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    assert resp.status == 404 and b"format" not in body


def test_symlink_out_of_the_directory_is_not_served(server, tmp_path):
    base, world = server
    link = world / "videos" / "zz_escape.mp4"
    os.symlink(world / "dataset.yaml", link)
    try:
        assert get(f"{base}/videos/zz_escape.mp4")[0] == 404
        names = [v["name"] for v in json.loads(get(base + "/api/videos")[2])["videos"]]
        assert "zz_escape.mp4" not in names
    finally:
        link.unlink()


def test_query_api(server):
    base, world = server
    name = sorted(p.name for p in (world / "videos").glob("te*.mp4"))[0]
    body = json.dumps({"video": name, "query": "the red circle grows", "top_k": 3}).encode()
    status, _, out = get(base + "/api/query", {"Content-Type": "application/json"}, "POST", body)
    result = json.loads(out)
    assert status == 200 and result["video"] == name and 1 <= len(result["moments"]) <= 3
    for m in result["moments"]:
        assert 0 <= m["start"] <= m["end"] <= result["duration"] + 1e-6
    bad = [({"video": "../dataset.yaml", "query": "x"}, 404), ({"video": name}, 400),
           ({"video": name, "query": "   "}, 422), ({"video": name, "query": "x", "top_k": 0}, 400)]
    for payload, code in bad:
        status, _, _ = get(base + "/api/query", JSON, "POST", json.dumps(payload).encode())
        assert status == code, payload
    assert get(base + "/api/query", JSON, "POST", b"not json")[0] == 400
    assert get(base + "/api/nothing")[0] == 404


def test_runs_on_outside_features_use_the_feature_store(shapes_run, tmp_path):
    import shutil

    from momentloc.errors import ConfigError
    from momentloc.serve import MomentService

    world, run_dir = shapes_run
    other = tmp_path / "run"
    shutil.copytree(run_dir, other)
    card = (other / "dataset.yaml").read_text()
    line = next(x for x in card.splitlines() if x.strip().startswith("extractor:"))
    (other / "dataset.yaml").write_text(card.replace(line, "  extractor: I3D (Kinetics)"))
    videos = tmp_path / "videos"
    videos.mkdir()
    name = sorted(p.name for p in (world / "videos").glob("*.mp4"))[0]
    shutil.copy(world / "videos" / name, videos / name)
    shutil.copy(world / "videos" / name, videos / "unknown.mp4")
    service = MomentService(other, videos)
    result = service.query(name, "the red circle grows", 2)      # features from the store
    assert 1 <= len(result["moments"]) <= 2
    with pytest.raises(ConfigError, match="not in its feature store"):
        service.query("unknown.mp4", "the red circle grows")


@pytest.mark.parametrize("name, expect", [
    ("clip.mp4", "clip.mp4"), ("../../etc/x.MP4", "x.mp4"),
    ("C:\\Users\\me\\a b.mov", "a_b.mov"), (".hidden.webm", "hidden.webm"),
    ("ünï vidéo.mkv", "_n_vid_o.mkv"), ("$(rm -rf).mp4", "_rm_-rf_.mp4"),
])
def test_upload_file_names_are_made_safe(name, expect):
    from momentloc.serve.service import upload_file_name

    assert upload_file_name(name) == expect


@pytest.mark.parametrize("name", ["", "notes.txt", "a/", "..mp4", "x.mp4\x00.txt", "mp4"])
def test_upload_file_names_need_a_video_extension(name):
    from momentloc.errors import ConfigError
    from momentloc.serve.service import upload_file_name

    with pytest.raises(ConfigError, match="not a video file name"):
        upload_file_name(name)


def test_uploads_live_in_a_private_folder_removed_on_close(shapes_run):
    from momentloc.errors import ConfigError, DataError
    from momentloc.serve import MomentService

    world, run_dir = shapes_run
    video = min((world / "videos").glob("*.mp4"))
    service = MomentService(run_dir, world / "videos", max_upload_bytes=1 << 20)
    assert service.upload_dir is None                        # made on the first upload
    first = service.add_upload("a.mp4", lambda f: f.write(video.read_bytes()))
    second = service.add_upload("a.mp4", lambda f: f.write(video.read_bytes()))
    assert (first["name"], second["name"]) == ("upload:a.mp4", "upload:a-1.mp4")
    folder = service.upload_dir
    assert folder.stat().st_mode & 0o777 == 0o700
    with pytest.raises(DataError):                           # not a video: nothing is kept
        service.add_upload("b.mp4", lambda f: f.write(b"\0" * 1000))
    with pytest.raises(OSError):                             # the transfer failed: nothing kept
        service.add_upload("c.mp4", lambda f: (f.write(b"x"), (_ for _ in ()).throw(OSError())))
    assert sorted(p.name for p in folder.iterdir()) == ["a-1.mp4", "a.mp4"]
    names = [v["name"] for v in service.list_videos() if v["uploaded"]]
    assert names == ["upload:a.mp4", "upload:a-1.mp4"]
    result = service.query("upload:a.mp4", "the red circle grows", 2)
    assert result["video"] == "upload:a.mp4" and 1 <= len(result["moments"]) <= 2
    service.close()
    assert not folder.exists()
    off = MomentService(run_dir, world / "videos", max_upload_bytes=0)
    assert off.info()["max_upload_bytes"] == 0
    with pytest.raises(ConfigError, match="uploads are off"):
        off.add_upload("a.mp4", lambda f: f.write(video.read_bytes()))


def test_query_results_carry_unknown_words_and_warnings(server):
    base, world = server
    name = min(p.name for p in (world / "videos").glob("te*.mp4"))
    body = json.dumps({"video": name, "query": "the red circle zzqx"}).encode()
    result = json.loads(get(base + "/api/query", JSON, "POST", body)[2])
    assert result["unknown_words"] == ["zzqx"] and "zzqx" in result["warning"]
    assert [m["rank"] for m in result["moments"]] == list(range(1, len(result["moments"]) + 1))
    body = json.dumps({"video": name, "query": "zzqx blorfle"}).encode()
    result = json.loads(get(base + "/api/query", JSON, "POST", body)[2])
    assert result["moments"] == [] and "vocabulary" in result["warning"]


@pytest.mark.slow
def test_cli_serves_and_removes_uploads_at_exit(shapes_run, tmp_path):
    import re
    import select
    import signal
    import subprocess
    import sys

    world, run_dir = shapes_run
    env = {**os.environ, "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "momentloc", "serve", str(run_dir),
         "--videos", str(world / "videos"), "--port", "0", "--top-k", "2", "--max-upload-mb", "1",
         "--timeout", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert select.select([proc.stdout], [], [], 120)[0], "the server did not start"
        line = proc.stdout.readline()
        base = re.search(r"http://[\d.]+:\d+", line).group(0)
        info = json.loads(get(base + "/api/info")[2])
        assert info["top_k"] == 2 and info["max_upload_bytes"] == 1 << 20
        assert info["model"] == "tan2d"
        video = min((world / "videos").glob("*.mp4"))
        status, _, out = get(base + "/api/upload?name=x.mp4", {"Content-Type": "video/mp4"},
                             "POST", video.read_bytes())
        assert status == 201
        assert len(list(tmp_path.glob("momentloc-uploads-*/x.mp4"))) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        err = proc.stderr.read()
        proc.stderr.close()
    assert list(tmp_path.glob("momentloc-uploads-*")) == []
    assert "Traceback" not in err

"""The page end to end in headless Chromium: the run named, top-k, busy state, time axis under
the seek bar, the playing moment highlighted, upload, the unknown-word warning.

Needs Debian's ``chromium`` (CI installs it) and the ``playwright`` package (the test extra;
its own browser download is never used). Skipped with the reason when either is missing.
Screenshots are saved under the test's tmp dir and, when ``$MOMENTLOC_ARTIFACTS`` is set,
under ``$MOMENTLOC_ARTIFACTS/serve/``.
"""

import os
import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("MOMENTLOC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT = 30_000  # ms: bounds every wait, so a broken page fails instead of hanging
TOP_K = 3

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                                reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")


@pytest.fixture(scope="module")
def served(shapes_run):
    from momentloc.serve import MomentService, make_server

    world, run_dir = shapes_run
    service = MomentService(run_dir, world / "videos", top_k=TOP_K, max_upload_bytes=1 << 20)
    srv = make_server(service, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/", service, world
    srv.shutdown()
    srv.server_close()
    service.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
            headless=True, args=FLAGS, timeout=60_000, viewport={"width": 1000, "height": 900},
            bypass_csp=True)  # wait_for_function evaluates strings; the page never does
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser, served):
    url, _, _ = served
    page = browser.new_page()
    page.set_default_timeout(WAIT)
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    yield page
    page.close()


def snap(page, name: str, tmp_path: Path) -> Path:
    """Save a screenshot of the page as a test artifact."""
    out = tmp_path / f"{name}.png"
    page.screenshot(path=str(out), full_page=True)
    if os.environ.get("MOMENTLOC_ARTIFACTS"):
        dest = Path(os.environ["MOMENTLOC_ARTIFACTS"]) / "serve"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(out, dest / out.name)
    assert out.stat().st_size > 1000
    return out


def choose_video(page, name: str) -> float:
    page.select_option("#video", name)
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    return page.evaluate("document.getElementById('player').duration")


def ask(page, query: str) -> None:
    page.fill("#query", query)
    page.click("#go")
    page.wait_for_selector("#results:not([hidden])")
    assert not page.is_disabled("#go")


def box(page, selector: str) -> dict:
    return page.eval_on_selector(selector, "e => { const r = e.getBoundingClientRect(); "
                                           "return {x: r.left, w: r.width}; }")


def test_page_names_the_run_and_honours_top_k(page, served, tmp_path):
    _, service, world = served
    options = page.eval_on_selector_all("#video option", "os => os.map(o => o.value)")
    assert options == [v["name"] for v in service.list_videos()] and len(options) == 11
    assert page.text_content("#model") == "tan2d"
    assert page.text_content("#features") == service.predictor.card.features.describe()
    assert page.text_content("#run") == service.predictor.run_dir.name
    assert page.input_value("#topk") == str(TOP_K)
    choose_video(page, options[-1])
    ask(page, "the red circle grows")
    items = page.query_selector_all("#moments li.moment")
    assert 1 <= len(items) <= TOP_K
    assert len(page.query_selector_all("#lanes .bar")) == len(items)
    assert page.text_content("#scorenote").startswith("Confidence: the model's probability")
    for item in items:                                       # the score as a percentage
        score = float(item.get_attribute("title").removeprefix("model score "))
        assert float(item.query_selector(".pct").text_content().rstrip("%")) == pytest.approx(
            100 * score, abs=0.51)
    assert page.text_content("#warning") == ""
    snap(page, "results", tmp_path)
    page.fill("#topk", "1")
    ask(page, "the red circle grows")
    assert len(page.query_selector_all("#moments li.moment")) == 1


def test_busy_state_while_a_query_runs(page, served, tmp_path):
    held = []
    page.route("**/api/query", lambda route: held.append(route))   # hold the request
    page.fill("#query", "the blue square moves")
    page.click("#go")
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert held
    assert page.is_disabled("#go") and page.is_visible("#go .spinner")
    assert page.get_attribute("#ask", "aria-busy") == "true"
    assert "Finding" in page.text_content("#go")
    snap(page, "busy", tmp_path)
    page.click("#go", force=True)                             # a second click sends nothing
    held[0].continue_()
    page.wait_for_selector("#results:not([hidden])")
    assert len(held) == 1
    assert not page.is_disabled("#go") and not page.is_visible("#go .spinner")
    assert page.get_attribute("#ask", "aria-busy") == "false"


def test_time_axis_lies_on_the_seek_bar(page, served, tmp_path):
    duration = choose_video(page, page.eval_on_selector_all(
        "#video option", "os => os.map(o => o.value)")[-1])
    ask(page, "the red circle grows")
    track = box(page, "#track")
    assert box(page, "#axis") == track and box(page, "#lanes") == track
    ticks = page.eval_on_selector_all(
        "#axis .tick", "ts => ts.map(t => [Number(t.dataset.t), t.getBoundingClientRect().left,"
                       " t.textContent])")
    assert len(ticks) >= 3 and ticks[0][0] == 0
    for t, x, label in ticks:
        assert abs(x - (track["x"] + track["w"] * t / duration)) <= 1.5
        assert label.endswith(" s") and float(label[:-2]) == pytest.approx(t)
    for item in page.query_selector_all("#moments li.moment"):
        rank, start = item.get_attribute("data-rank"), float(item.get_attribute("data-start"))
        bar = box(page, f"#lanes .bar[data-rank='{rank}']")
        assert abs(bar["x"] - (track["x"] + track["w"] * start / duration)) <= 1.5
    page.mouse.click(track["x"] + 0.5 * track["w"], page.eval_on_selector(
        "#track", "e => { const r = e.getBoundingClientRect(); return r.top + r.height / 2; }"))
    page.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - "
                           f"{duration / 2}) < {0.02 * duration}")
    cursor = box(page, "#cursor")
    assert abs(cursor["x"] + cursor["w"] / 2 - (track["x"] + 0.5 * track["w"])) <= 2
    assert page.text_content("#clock").endswith(f"{duration:.1f} s")


def test_the_playing_moment_is_highlighted(page, served, tmp_path):
    duration = choose_video(page, page.eval_on_selector_all(
        "#video option", "os => os.map(o => o.value)")[-1])
    ask(page, "the red circle grows")
    items = page.query_selector_all("#moments li.moment")
    target = items[-1]
    start, end = float(target.get_attribute("data-start")), float(target.get_attribute("data-end"))
    assert 0 <= start <= end <= duration + 1e-6
    page.evaluate("window.seeked = false; document.getElementById('player')"
                  ".addEventListener('seeked', () => { window.seeked = true; })")
    target.click()
    page.wait_for_function("window.seeked === true")
    now = page.evaluate("document.getElementById('player').currentTime")
    assert start - 0.05 <= now <= end + 0.05
    page.wait_for_selector("#moments li.moment.playing")
    playing = page.eval_on_selector_all("#moments li.moment.playing",
                                        "ls => ls.map(l => l.dataset.rank)")
    bars = page.eval_on_selector_all("#lanes .bar.playing", "bs => bs.map(b => b.dataset.rank)")
    assert playing == bars == [target.get_attribute("data-rank")]
    page.evaluate("document.getElementById('player').pause()")
    snap(page, "playing", tmp_path)
    assert page.text_content("#status") == ""


def test_upload_a_video_and_query_it(page, served, tmp_path):
    _, service, world = served
    clip = tmp_path / "my clip (1).mp4"
    shutil.copy(sorted((world / "videos").glob("te*.mp4"))[0], clip)
    page.set_input_files("#file", str(clip))
    page.wait_for_function("document.getElementById('video').value.startsWith('upload:')")
    name = page.input_value("#video")
    assert name.startswith("upload:my_clip_1_") and name.endswith(".mp4")
    group = page.eval_on_selector("#video option:checked", "o => o.parentElement.label")
    assert group == "uploaded"
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    assert "/videos/upload%3A" in page.evaluate("document.getElementById('player').src")
    assert not page.is_disabled("#file") and page.text_content("#status") == ""
    ask(page, "the red circle grows")
    assert page.query_selector_all("#moments li.moment")
    snap(page, "upload", tmp_path)
    stored = service.upload_dir / name.removeprefix("upload:")
    assert stored.read_bytes() == clip.read_bytes()


def test_unknown_words_warning(page, served, tmp_path):
    ask(page, "zzqx blorfle")
    assert page.is_visible("#warning")
    assert "vocabulary" in page.text_content("#warning")
    assert page.query_selector_all("#moments li.moment") == []
    assert page.text_content("#heading").startswith("no moment")
    snap(page, "warning", tmp_path)
    ask(page, "the red circle grows")                       # a known query clears it
    assert not page.is_visible("#warning")

"""The page end to end in headless Chromium: load, query, see results, click, the player seeks.

Needs Debian's ``chromium`` (CI installs it) and the ``playwright`` package (the test extra;
its own browser download is never used). Skipped with the reason when either is missing.
"""

import os
import shutil
import threading

import pytest

CHROMIUM = os.environ.get("MOMENTLOC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                                reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")


@pytest.fixture
def page_url(shapes_run):
    from momentloc.serve import MomentService, make_server

    world, run_dir = shapes_run
    srv = make_server(MomentService(run_dir, world / "videos"), "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


def test_query_click_and_play(page_url, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            args=FLAGS, timeout=60_000)
        try:
            page = browser.pages[0] if browser.pages else browser.new_page()
            page.goto(page_url, timeout=60_000)
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            options = page.eval_on_selector_all("#video option", "os => os.map(o => o.value)")
            assert len(options) == 11 and all(o.endswith(".mp4") for o in options)
            page.select_option("#video", options[-1])
            page.wait_for_function("document.getElementById('player').readyState >= 1",
                                   timeout=30_000)        # the browser decoded the metadata
            duration = page.evaluate("document.getElementById('player').duration")
            assert duration > 5
            page.fill("#query", "the red circle grows")
            page.click("#go")
            page.wait_for_selector("#moments li.moment", timeout=30_000)
            items = page.query_selector_all("#moments li.moment")
            assert 1 <= len(items) <= 5
            bars = page.query_selector_all("#timeline .bar")
            assert len(bars) == len(items)
            target = items[-1]
            start = float(target.get_attribute("data-start"))
            end = float(target.get_attribute("data-end"))
            assert 0 <= start <= end <= duration + 1e-6
            page.evaluate("window.seeked = false; document.getElementById('player')"
                          ".addEventListener('seeked', () => { window.seeked = true; })")
            target.click()
            page.wait_for_function("window.seeked === true", timeout=30_000)
            now = page.evaluate("document.getElementById('player').currentTime")
            assert start - 0.05 <= now <= min(end, start + 1.0)
            assert page.text_content("#status") == ""
        finally:
            browser.close()

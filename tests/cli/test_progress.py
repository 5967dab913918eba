"""The one progress display: a bar on a terminal, a logged line per stage elsewhere, nothing
with --quiet."""

import io
import logging
import re

import pytest

from momentloc.engine import runtime
from momentloc.engine.runtime import progress, set_quiet


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def _not_quiet():
    set_quiet(False)
    yield
    set_quiet(False)


def test_off_a_terminal_a_line_per_stage_is_logged(caplog, monkeypatch):
    monkeypatch.setattr(runtime.sys, "stderr", io.StringIO())
    caplog.set_level(logging.INFO, logger="momentloc")
    bar = progress(range(4), desc="render train videos", unit="video")
    assert list(bar) == [0, 1, 2, 3]
    assert bar._bar is None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("render train videos: 4/4 video in ")


def test_on_a_terminal_a_bar_is_drawn(caplog, monkeypatch):
    err = Terminal()
    monkeypatch.setattr(runtime.sys, "stderr", err)
    caplog.set_level(logging.INFO, logger="momentloc")
    with progress(total=3, desc="bench tan2d", unit="step") as bar:
        for _ in range(3):
            bar.update()
        bar.set_postfix(loss="0.5")
    assert "bench tan2d" in err.getvalue()
    assert re.fullmatch(r"bench tan2d: 3/3 step in \d+\.\d s \(loss=0\.5\)",
                        caplog.records[-1].getMessage())


def test_quiet_draws_no_bar_even_on_a_terminal(monkeypatch):
    err = Terminal()
    monkeypatch.setattr(runtime.sys, "stderr", err)
    set_quiet(True)
    assert not runtime.bars_enabled()
    assert list(progress([1, 2], desc="x")) == [1, 2]
    assert err.getvalue() == ""


def test_disabled_progress_is_silent(caplog, monkeypatch):
    monkeypatch.setattr(runtime.sys, "stderr", Terminal())
    caplog.set_level(logging.INFO, logger="momentloc")
    bar = progress(range(2), desc="epoch 1/2", enabled=False)
    assert list(bar) == [0, 1] and bar._bar is None and not caplog.records


def test_trainer_line_per_epoch_replaces_the_bar(caplog, monkeypatch):
    # log_line=False: the caller logs its own line per stage (the trainer's epoch line)
    monkeypatch.setattr(runtime.sys, "stderr", io.StringIO())
    caplog.set_level(logging.INFO, logger="momentloc")
    assert list(progress(range(2), desc="epoch 1/2", log_line=False)) == [0, 1]
    assert not caplog.records


def test_quiet_flag_reaches_the_progress_helper(monkeypatch, capsys):
    from momentloc.cli.main import main

    monkeypatch.setattr(runtime.sys, "stderr", Terminal())
    assert runtime.bars_enabled()
    assert main(["train", "--list-models", "--quiet"]) == 0
    assert not runtime.bars_enabled()

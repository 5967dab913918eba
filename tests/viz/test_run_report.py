import base64
import re

import pytest

pytest.importorskip("matplotlib", reason="the 'viz' extra is not installed")

from momentloc.cli.main import main  # noqa: E402


def test_plot_writes_every_figure_of_a_run(shapes_run, tmp_path, capsys):
    _, run_dir = shapes_run
    out = tmp_path / "figs"
    assert main(["plot", str(run_dir), "--out", str(out), "--queries", "4"]) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"curves.png", "timelines_best.png", "timelines_worst.png",
                     "iou_histogram.png", "recall_by_length.png", "attention.png"}
    for p in out.iterdir():
        assert p.read_bytes()[:4] == b"\x89PNG"
    assert str(out / "curves.png") in capsys.readouterr().out


def test_report_is_one_self_contained_html_file(shapes_run, tmp_path):
    _, run_dir = shapes_run
    out = tmp_path / "report.html"
    assert main(["report", str(run_dir), "--out", str(out), "--queries", "3"]) == 0
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>")
    # no external asset: every src is inline data, every href an anchor of the page itself,
    # no link or script tag
    assert re.findall(r"(?:src|href)=['\"](?!data:|#)", html) == []
    assert re.findall(r"href=['\"]#", html)  # the table of contents
    assert "<link" not in html and "<script" not in html
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(images) == 6 and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    assert "prior baseline" in html and "R1@0.5" in html
    assert "colorhist(" in html                                  # the card's feature description
    assert "<h3>best</h3>" in html and "<h3>worst</h3>" in html
    assert "name: tan2d" in html and "hidden_dim:" in html       # the configuration


def test_plot_and_report_refuse_a_non_run(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 1
    assert main(["report", str(tmp_path)]) == 1
    assert "not a run directory" in capsys.readouterr().err

"""What the report says: a verdict against the prior, the card's metric columns for every
model, dR explained, a table of contents, labelled time and epoch axes."""

from __future__ import annotations

import json
import re
import shutil

import pytest

pytest.importorskip("matplotlib", reason="the 'viz' extra is not installed")

from momentloc.metrics.retrieval import metric_keys  # noqa: E402
from momentloc.viz.report import build_report, verdict  # noqa: E402


@pytest.fixture(scope="module")
def tiny_run(synth_card, tmp_path_factory):
    """A tan2d run on the tiny charades-like set, two epochs (no video extra needed)."""
    from momentloc.config import load_config
    from momentloc.engine.runs import with_dataset
    from momentloc.engine.trainer import train

    cfg = load_config("tan2d", "synthetic", ["train.epochs=2", "data.num_clips=16"])
    run_dir = tmp_path_factory.mktemp("report-run") / "run"
    train(with_dataset(cfg, str(synth_card("charades")), None), run_dir)
    return run_dir


def _copy(run_dir, tmp_path, metrics=None, one_moment=False):
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    saved = json.loads((out / "metrics.json").read_text())
    if metrics is not None:
        saved["metrics"] = metrics(saved["metrics"])
        (out / "metrics.json").write_text(json.dumps(saved))
    if one_moment:
        path = out / f"predictions_{saved['split']}.jsonl"
        lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        path.write_text("".join(json.dumps(line | {"pred_spans": line["pred_spans"][:1]}) + "\n"
                                for line in lines))
    return out


def _header_of_first_table(html: str) -> list[str]:
    table = html.split("<table>", 2)[1]
    return re.findall(r"<th>([^<]*)</th>", table.split("</tr>", 1)[0])


@pytest.mark.parametrize("model,prior,colour", [
    (0.40, 0.20, "green"), (0.50, 0.20, "green"), (0.39, 0.20, "amber"), (0.21, 0.20, "amber"),
    (0.20, 0.20, "red"), (0.10, 0.20, "red"), (0.05, 0.0, "green"), (0.0, 0.0, "red")])
def test_verdict_rule(model, prior, colour):
    assert verdict(model, prior)[0] == colour


@pytest.mark.slow
def test_report_has_contents_verdict_and_the_cards_metric_columns(tiny_run):
    html = build_report(tiny_run, attention=False)
    saved = json.loads((tiny_run / "metrics.json").read_text())
    m, p = saved["metrics"]["R1@0.5"], saved["prior_baseline"]["R1@0.5"]
    colour = verdict(m, p)[0]
    assert f"<p class='verdict {colour}'>" in html
    assert f"R1@0.5 {100 * m:.2f} vs prior baseline {100 * p:.2f}" in html
    # the table of contents links every section, and every link has its target
    toc = re.search(r"<nav>.*?</nav>", html).group(0)
    targets = re.findall(r"href='#([\w-]+)'", toc)
    assert {"results", "dataset", "fig-curves", "fig-timelines_best", "queries",
            "configuration"} <= set(targets)
    for t in targets:
        assert f"id='{t}'" in html
    # columns: the charades card's metric set, in its order
    assert _header_of_first_table(html) == [""] + metric_keys((1, 5), (0.5, 0.7))
    assert "difference (points)" in html
    assert "<h3 id='discounted'>Discounted recall dR@n</h3>" in html and "boundary" in html
    assert "R@5 equals R@1" not in html


@pytest.mark.slow
def test_every_model_gets_the_same_columns_even_without_some_metrics(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path, metrics=lambda d: {k: v for k, v in d.items()
                                                       if not k.startswith("R5")})
    html = build_report(run, attention=False)
    assert _header_of_first_table(html) == [""] + metric_keys((1, 5), (0.5, 0.7))
    first = html.split("<table>", 2)[1].split("</table>")[0]
    row = re.findall(r"<td[^>]*>([^<]*)</td>", first.split("</tr>")[1])
    assert row[0] == "tan2d" and row[3:5] == ["-", "-"]


@pytest.mark.slow
def test_a_single_moment_model_gets_the_r5_footnote(tiny_run, tmp_path):
    def r5_is_r1(d):
        return d | {"R5@0.5": d["R1@0.5"], "R5@0.7": d["R1@0.7"]}

    html = build_report(_copy(tiny_run, tmp_path, metrics=r5_is_r1, one_moment=True),
                        attention=False)
    assert "<th>R5@0.5*</th>" in html and "<th>R5@0.7*</th>" in html
    assert "* R@5 equals R@1: tan2d returns one moment per query" in html


def test_curves_count_whole_epochs_and_timelines_read_seconds():
    from momentloc.viz import timelines, training_curves

    fig = training_curves([{"epoch": e, "train/loss": 1.0 / e, "val/R1@0.5": 0.1 * e}
                           for e in (1, 2, 3)])
    for ax in fig.axes:
        assert ax.get_xlabel() == "epoch"
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
    assert "%" in fig.axes[1].get_ylabel()
    line = {"video_id": "v", "query": "q", "duration": 30.0, "gt_span": [2.0, 9.0],
            "pred_spans": [[3.0, 8.0, 0.9]]}
    assert timelines([line]).axes[0].get_xlabel() == "time (s)"

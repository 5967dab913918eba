"""One self-contained HTML report of a run (``momentloc report``): configuration, the dataset
card's feature description, metrics beside the prior baseline, figures embedded as base64
PNG, and the best and worst queries. No external asset: it opens offline and can be mailed."""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path

from momentloc.errors import ConfigError

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}
h1{font-size:1.5em}
h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;font-size:.9em}
th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.8em;max-height:30em}
img{max-width:100%;border:1px solid #eee;margin:.4em 0} .muted{color:#777;font-size:.85em}
"""


def _table(headers, rows) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{escape(v)}</td>' if isinstance(v, str) and num else
                         f"<td>{escape(str(v))}</td>" for v, num in cells) + "</tr>"
        for cells in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _metrics_section(metrics: dict) -> str:
    model, prior = metrics.get("metrics", {}), metrics.get("prior_baseline", {})
    keys = [k for k in model if not k.startswith("dR")] + [k for k in model if k.startswith("dR")]
    rows = [[(k, False), (f"{100 * model[k]:.2f}", True),
             (f"{100 * prior[k]:.2f}" if k in prior else "-", True),
             (f"{100 * (model[k] - prior[k]):+.2f}" if k in prior else "-", True)] for k in keys]
    return (f"<p>split <b>{escape(str(metrics.get('split', '?')))}</b>, best epoch "
            f"{escape(str(metrics.get('best_epoch', '?')))}; percent</p>"
            + _table(["metric", "model", "prior baseline", "difference"], rows))


def _queries_section(title: str, lines: list[dict]) -> str:
    from momentloc.viz.analysis import top1_ious

    ious = top1_ious(lines)
    rows = []
    for line, iou in zip(lines, ious):
        top = line["pred_spans"][0] if line.get("pred_spans") else None
        rows.append([(line.get("video_id", "?"), False), (line.get("query", ""), False),
                     (f"{line['gt_span'][0]:.1f}-{line['gt_span'][1]:.1f}", True),
                     (f"{top[0]:.1f}-{top[1]:.1f}" if top else "-", True), (f"{iou:.2f}", True)])
    headers = ["video", "query", "truth (s)", "top-1 (s)", "IoU"]
    return f"<h3>{escape(title)}</h3>" + _table(headers, rows)


def build_report(run_dir: str | Path, split: str | None = None, num_queries: int = 10,
                 attention: bool = True, device: str = "cpu") -> str:
    """The report's HTML text.

    Raises:
        ConfigError: not a run directory.
    """
    from momentloc.engine.predictions import read_predictions
    from momentloc.engine.runs import load_run
    from momentloc.viz.common import png_bytes
    from momentloc.viz.run import pick_queries, predictions_file, run_figures

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir}: not a run directory (no config.yaml)")
    cfg, card = load_run(run_dir)
    meta, metrics = ({} if not (run_dir / name).is_file() else
                     json.loads((run_dir / name).read_text()) for name in ("meta.json", "metrics.json"))
    parts = [f"<h1>{escape(cfg.model_name)} on {escape(card.name)}</h1>",
             f"<p class='muted'>run {escape(str(run_dir.resolve()))}; momentloc "
             f"{escape(str(meta.get('momentloc_version', '?')))}, torch "
             f"{escape(str(meta.get('torch_version', '?')))}, commit "
             f"{escape(str(meta.get('git_commit') or 'unknown'))}, started "
             f"{escape(str(meta.get('started', '?')))}</p>"]
    parts.append("<h2>Results</h2>" + (_metrics_section(metrics) if metrics else
                                        "<p>no metrics.json (the run has not been tested)</p>"))
    f = card.features
    feat_rows = [] if f is None else [
        [("features", False), (f.describe(), False)], [("extractor", False), (f.extractor, False)],
        [("layer", False), (f.layer, False)], [("dimension", False), (str(f.dim), False)],
        [("temporal unit", False), (f"{f.clip_frames}-frame clips every {f.clip_stride_frames} "
                                    f"frames at {f.fps} fps" if f.clip_frames else "unknown", False)],
        [("normalization", False), (f.normalization, False)]]
    parts.append("<h2>Dataset</h2>" + _table(["", card.name], feat_rows)
                 + (f"<p class='muted'>{escape(card.notes)}</p>" if card.notes else ""))
    figs = run_figures(run_dir, split, num_queries=6, attention=attention, device=device)
    if figs:
        parts.append("<h2>Figures</h2>")
        for name, fig in figs.items():
            data = base64.b64encode(png_bytes(fig)).decode("ascii")
            caption = escape(name.replace("_", " "))
            parts.append(f"<figure><img alt='{escape(name)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption class='muted'>{caption}</figcaption></figure>")
    pred = predictions_file(run_dir, split)
    if pred is not None:
        best, worst = pick_queries(read_predictions(pred), 2 * num_queries)
        parts.append("<h2>Queries</h2>" + _queries_section("best", best)
                     + _queries_section("worst", worst))
    config_text = (run_dir / "config.yaml").read_text(encoding="utf-8")
    parts.append(f"<h2>Configuration</h2><pre>{escape(config_text)}</pre>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{escape(cfg.model_name)} on {escape(card.name)}</title><style>{_CSS}</style>"
            f"</head><body>\n{body}\n</body></html>\n")


def write_report(run_dir: str | Path, out: str | Path | None = None, **kwargs) -> Path:
    """Write :func:`build_report` to ``out`` (default ``RUN_DIR/report.html``), atomically."""
    from momentloc.data.records import atomic_write_text

    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    atomic_write_text(path, build_report(run_dir, **kwargs))
    return path

"""One self-contained HTML report of a run (``momentloc report``): a table of contents, a
verdict line (the model against the prior baseline, coloured by :data:`VERDICT_RULE`), the
dataset card's metric set beside the prior baseline (the same columns for every model on a
dataset; dR@n explained), the card's feature description, figures embedded as base64 PNG,
the best and worst queries, and the configuration. No external asset: it opens offline and
can be mailed."""

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
.verdict{padding:.5em .8em;border-radius:4px;border-left:6px solid}
.verdict.green{background:#e6f4ea;border-color:#1e8e3e} .verdict.amber{background:#fef7e0;border-color:#f9ab00}
.verdict.red{background:#fce8e6;border-color:#d93025} .verdict.grey{background:#f1f3f4;border-color:#9aa0a6}
nav ol{margin:.3em 0;padding-left:1.5em} nav{font-size:.9em}
"""

# Figure stems (viz.run.run_figures) -> (section title, what the reader sees).
_FIGURES = {
    "curves": ("Training curves", "Training loss terms per epoch and, when the run validates, "
               "the validation metrics in percent per epoch."),
    "timelines_best": ("Best queries", "The ground-truth moment and the top predictions on "
                       "the video's time axis (seconds), for the queries with the highest "
                       "top-1 IoU."),
    "timelines_worst": ("Worst queries", "The same for the queries with the lowest top-1 IoU."),
    "iou_histogram": ("Top-1 IoU", "How many queries reach each IoU with their top prediction; "
                      "the dashed lines are the IoU thresholds of R@1."),
    "recall_by_length": ("R@1 by moment length", "R1@0.5 per bin of ground-truth moment "
                         "length (share of the video), with the number of queries per bin."),
    "attention": ("Attention maps", "The maps the model exposes (attention weights, score "
                  "maps) on one test query."),
}



def _table(headers, rows) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{escape(v)}</td>' if isinstance(v, str) and num else
                         f"<td>{escape(str(v))}</td>" for v, num in cells) + "</tr>"
        for cells in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


# The verdict rule (docs/video.md): the model's R@1 at the selection metric's IoU against the
# prior baseline's on the same split.
VERDICT_RULE = ("green: at least twice the prior baseline; amber: above the prior but less than "
                "twice it; red: not above the prior")


def verdict(model: float, prior: float) -> tuple[str, str]:
    """``(colour, words)`` for a model score against the prior's (fractions): ``green`` when
    ``model >= 2 * prior`` (and above it), ``amber`` when above the prior, else ``red``."""
    if model > prior and model >= 2 * prior:
        return "green", "clearly better than the prior baseline"
    if model > prior:
        return "amber", "better than the prior baseline, but less than twice as good"
    return "red", "no better than the prior baseline"


def _verdict_key(metrics: dict, keys: list[str], select: str) -> str | None:
    """The R@1 metric the verdict reads: the run's selection metric when it is one, else the
    card's middle IoU threshold."""
    if select in metrics and select.startswith("R1@"):
        return select
    r1 = [k for k in keys if k.startswith("R1@")]
    return r1[(len(r1) - 1) // 2] if r1 else None


def _verdict_section(metrics: dict, keys: list[str], select: str, model_name: str) -> str:
    model, prior = metrics.get("metrics", {}), metrics.get("prior_baseline", {})
    key = _verdict_key(model, keys, select)
    if key is None or key not in model or key not in prior:
        return "<p class='verdict grey'>no verdict: the run has no R@1 beside a prior baseline</p>"
    colour, words = verdict(float(model[key]), float(prior[key]))
    ratio = (f"{model[key] / prior[key]:.1f}x the prior" if prior[key] > 0 else "the prior is 0")
    return (f"<p class='verdict {colour}'><b>{escape(model_name)} {escape(key)} "
            f"{100 * model[key]:.2f} vs prior baseline {100 * prior[key]:.2f} ({ratio}): "
            f"{escape(words)}.</b></p><p class='muted'>Verdict colours: {VERDICT_RULE}. The prior "
            f"baseline predicts the fixed moments that best fit the training annotations, "
            f"without looking at the video or the sentence.</p>")


def _single_moment(lines: list[dict] | None) -> bool:
    return bool(lines) and max(len(line.get("pred_spans") or ()) for line in lines) <= 1


def _metric_table(keys: list[str], model: dict, prior: dict, model_name: str,
                  marks: dict[str, str]) -> str:
    def cell(d, k):
        return (f"{100 * d[k]:.2f}", True) if k in d else ("-", True)

    def diff(k):
        return ((f"{100 * (model[k] - prior[k]):+.2f}", True) if k in model and k in prior
                else ("-", True))

    rows = [[(model_name, False)] + [cell(model, k) for k in keys],
            [("prior baseline", False)] + [cell(prior, k) for k in keys],
            [("difference (points)", False)] + [diff(k) for k in keys]]
    return _table([""] + [k + marks.get(k, "") for k in keys], rows)


def _metrics_section(metrics: dict, card, lines: list[dict] | None, model_name: str) -> str:
    """Every model on a dataset gets the same columns: the card's metric set (R@n for each
    IoU threshold, mIoU, then the discounted dR@n), ``-`` where the run lacks one."""
    from momentloc.metrics.retrieval import metric_keys

    model, prior = metrics.get("metrics", {}), metrics.get("prior_baseline", {})
    recall, ious = tuple(card.metrics.recall_at), tuple(card.metrics.iou_thresholds)
    keys = metric_keys(recall, ious)
    dkeys = [k for k in metric_keys(recall, ious, miou=False, discounted=True)
             if k.startswith("d")]
    notes, marks = [], {}
    n_max = max(recall)
    if n_max > 1 and all(f"R{n_max}@{m:g}" in model and f"R1@{m:g}" in model
                         and model[f"R{n_max}@{m:g}"] == model[f"R1@{m:g}"] for m in ious):
        for m in ious:
            marks[f"R{n_max}@{m:g}"] = "*"
        why = (f"{model_name} returns one moment per query (a single-moment regressor, such as "
               f"CMA), so the R@{n_max} columns repeat R@1" if _single_moment(lines) else
               f"on this split {model_name}'s extra moments never hit where its first missed")
        notes.append(f"* R@{n_max} equals R@1: {why}.")
    text = (f"<p>split <b>{escape(str(metrics.get('split', '?')))}</b>, best epoch "
            f"{escape(str(metrics.get('best_epoch', '?')))}, percent. R@n IoU=m: share of the "
            f"queries where one of the top n moments overlaps the ground truth with IoU at "
            f"least m; mIoU: mean IoU of the top moment.</p>"
            + _metric_table(keys, model, prior, model_name, marks)
            + "".join(f"<p class='muted'>{escape(n)}</p>" for n in notes))
    if any(k in model for k in dkeys):
        text += ("<h3 id='discounted'>Discounted recall dR@n</h3><p>dR@n IoU=m (Yuan et al., "
                 "2021) counts a hit as R@n does, but weighs it by how close both boundaries "
                 "are: a hit scores (1 - |start error| / video length) x (1 - |end error| / "
                 "video length), so a moment that only just passes the IoU threshold counts "
                 "for less than an exact one. dR@n is at most R@n; the gap is the boundary "
                 "error.</p>" + _metric_table(dkeys, model, prior, model_name, {}))
    return text


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
    pred = predictions_file(run_dir, split)
    lines = read_predictions(pred) if pred is not None else None
    figs = run_figures(run_dir, split, num_queries=6, attention=attention, device=device)
    sections: list[tuple[str, str, str]] = []  # (id, title, html)
    if metrics:
        from momentloc.metrics.retrieval import metric_keys

        keys = metric_keys(tuple(card.metrics.recall_at), tuple(card.metrics.iou_thresholds))
        results = (_verdict_section(metrics, keys, cfg.train.select_metric, cfg.model_name)
                   + _metrics_section(metrics, card, lines, cfg.model_name))
    else:
        results = "<p>no metrics.json (the run has not been tested)</p>"
    sections.append(("results", "Results", results))
    f = card.features
    feat_rows = [] if f is None else [
        [("features", False), (f.describe(), False)], [("extractor", False), (f.extractor, False)],
        [("layer", False), (f.layer, False)], [("dimension", False), (str(f.dim), False)],
        [("temporal unit", False), (f"{f.clip_frames}-frame clips every {f.clip_stride_frames} "
                                    f"frames at {f.fps} fps" if f.clip_frames else "unknown", False)],
        [("normalization", False), (f.normalization, False)]]
    sections.append(("dataset", "Dataset", _table(["", card.name], feat_rows)
                     + (f"<p class='muted'>{escape(card.notes)}</p>" if card.notes else "")))
    for name, fig in figs.items():
        title, caption = _FIGURES.get(name, (name.replace("_", " ").capitalize(), ""))
        data = base64.b64encode(png_bytes(fig)).decode("ascii")
        sections.append((f"fig-{name}", title,
                         f"<figure><img alt='{escape(title)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption class='muted'>{escape(caption)}</figcaption></figure>"))
    if lines is not None:
        best, worst = pick_queries(lines, 2 * num_queries)
        sections.append(("queries", "Queries", _queries_section("best", best)
                         + _queries_section("worst", worst)))
    config_text = (run_dir / "config.yaml").read_text(encoding="utf-8")
    sections.append(("configuration", "Configuration", f"<pre>{escape(config_text)}</pre>"))
    toc = "".join(f"<li><a href='#{sid}'>{escape(title)}</a></li>" for sid, title, _ in sections)
    parts = [f"<h1>{escape(cfg.model_name)} on {escape(card.name)}</h1>",
             f"<p class='muted'>run {escape(str(run_dir.resolve()))}; momentloc "
             f"{escape(str(meta.get('momentloc_version', '?')))}, torch "
             f"{escape(str(meta.get('torch_version', '?')))}, commit "
             f"{escape(str(meta.get('git_commit') or 'unknown'))}, started "
             f"{escape(str(meta.get('started', '?')))}</p>",
             f"<nav><b>Contents</b><ol>{toc}</ol></nav>"]
    parts += [f"<h2 id='{sid}'>{escape(title)}</h2>{html}" for sid, title, html in sections]
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

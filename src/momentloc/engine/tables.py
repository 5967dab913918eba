"""Paper tables: named groups of presets with the numbers each paper reports.

A table file ``configs/tables/<name>.yaml``::

    name: csmgan-ablation
    title: CSMGAN ablation on ActivityNet Captions (paper Table 5)
    dataset: activitynet-captions
    metrics: [R1@0.3, R1@0.5]
    rows:
      - {label: full model, model: csmgan, preset: activitynet, set: [], paper: {R1@0.3: 68.52}}
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from momentloc.config.load import configs_dir, from_dict
from momentloc.errors import ConfigError

log = logging.getLogger("momentloc.table")


@dataclass(frozen=True)
class TableRow:
    label: str
    model: str
    preset: str
    set: tuple[str, ...] = ()
    paper: dict[str, float] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class PaperTable:
    name: str
    title: str
    dataset: str
    metrics: tuple[str, ...]
    rows: tuple[TableRow, ...]
    notes: str = ""


def _tables_dir() -> Path:
    return configs_dir() / "tables"


def list_tables() -> list[tuple[str, str]]:
    out = []
    for p in sorted(_tables_dir().glob("*.yaml")):
        out.append((p.stem, load_table(p.stem).title))
    return out


def load_table(name: str) -> PaperTable:
    path = Path(name) if name.endswith((".yaml", ".yml")) else _tables_dir() / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(_tables_dir().glob("*.yaml")))
        raise ConfigError(f"no table {name!r}; known: {known or 'none'}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    table = from_dict(PaperTable, raw, str(path))
    labels = [r.label for r in table.rows]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{path}: duplicate row labels")
    seen: dict[str, str] = {}
    for label in labels:
        key = row_dir_name(label).lower()  # case-insensitive file systems too
        if key in seen:
            raise ConfigError(f"{path}: rows {seen[key]!r} and {label!r} would share the run "
                              f"directory {row_dir_name(label)!r}; rename one")
        seen[key] = label
    return table


def row_dir_name(label: str) -> str:
    """The run directory name of a table row: the label with every character outside
    ``[A-Za-z0-9_.-]`` replaced, plus, whenever that changed the label, the first 8 hex digits
    of the label's SHA-1 (also when it is cut to 80 characters) so that labels differing only there ("Ours" / "Ours+") stay apart.
    Deterministic (a rerun finds its finished rows) and safe on every file system."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_.") or "row"
    if slug == label and len(slug) <= 80:
        return slug
    return f"{slug[:80]}-{hashlib.sha1(label.encode('utf-8')).hexdigest()[:8]}"


def run_table(table: PaperTable, dataset: str | None, data_root: str | None, out_dir: str | Path,
              only: list[str] | None = None, overrides: list[str] | tuple[str, ...] = ()) -> list[dict]:
    """Train and test each row (skipping rows already finished in ``out_dir``)."""
    import json

    from momentloc.config import load_config
    from momentloc.engine.runs import with_dataset
    from momentloc.engine.trainer import train

    if only:
        unknown = set(only) - {r.label for r in table.rows}
        if unknown:
            raise ConfigError(f"table {table.name}: no row(s) {', '.join(sorted(unknown))}")
    from momentloc.engine.runtime import progress

    results = []
    rows = [row for row in table.rows if not only or row.label in only]
    bar = progress(rows, desc=f"table {table.name}", unit="row")
    for row in bar:
        bar.set_postfix_str(row.label)
        cfg = load_config(row.model, row.preset, [*row.set, *overrides])
        cfg = with_dataset(cfg, dataset or table.dataset, data_root)
        run_dir = Path(out_dir) / table.name / row_dir_name(row.label)
        done = run_dir / "metrics.json"
        if done.is_file():
            log.info("row %r already done in %s", row.label, run_dir)
            saved = json.loads(done.read_text())
            metrics, prior = saved["metrics"], saved["prior_baseline"]
        else:
            log.info("row %r: %s / %s -> %s", row.label, row.model, row.preset, run_dir)
            # A row killed before its first checkpoint restarts in its own directory.
            res = train(cfg, run_dir, resume=(run_dir / "checkpoints" / "last.pt").is_file(),
                        overwrite=True)
            metrics, prior = res.test_metrics, res.baseline_metrics
        provenance = json.loads(done.read_text()).get("provenance") if done.is_file() else None
        results.append({"label": row.label, "run_dir": str(run_dir), "metrics": metrics,
                        "prior_baseline": prior, "paper": row.paper, "provenance": provenance})
    return results


def format_paper_table(table: PaperTable, results: list[dict]) -> str:
    """Rows of paper / reproduced / prior numbers (percent) per metric."""
    from momentloc.cli.common import format_table

    headers = ["row", ""] + list(table.metrics)
    body = []
    for r in results:
        def pct(d, k, scale):
            return None if k not in d else float(d[k]) * scale
        body.append([r["label"], "paper"] + [pct(r["paper"], k, 1.0) for k in table.metrics])
        body.append(["", "ours"] + [pct(r["metrics"], k, 100.0) for k in table.metrics])
        body.append(["", "prior"] + [pct(r["prior_baseline"], k, 100.0) for k in table.metrics])
    import textwrap

    text = f"{table.title}\n" + format_table(headers, body)
    shown = {r["label"] for r in results}
    notes = [f"{r.label}: {r.note}" for r in table.rows if r.note and r.label in shown]
    if notes:
        text += "\n\n" + "\n".join(textwrap.fill(n, 100, subsequent_indent="  ") for n in notes)
    if table.notes:
        text += "\n\n" + textwrap.fill(table.notes, 100)
    from momentloc.engine.runs import provenance_line

    produced = sorted({provenance_line(r["provenance"]) for r in results if r.get("provenance")})
    if produced:
        text += "\n\n" + "\n".join(produced)
    return text

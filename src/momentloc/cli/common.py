"""Helpers shared by the sub-commands: help formatting, tables, --json output, dataset
options."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help states its default: ``(default: X)`` is appended unless the help
    already says what the default is. A description or epilog with line breaks (the
    examples) is printed as written; one without is wrapped."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.default is argparse.SUPPRESS or "default" in text.lower()
                or not action.option_strings):
            return text  # positionals, --help/--version, or a default already explained
        if action.required:
            return f"{text} (required)".strip()
        default = action.default
        if isinstance(default, bool):
            shown = "on" if default else "off"
        elif default is None or default == []:
            shown = "none"
        else:
            shown = "%(default)s"
        return f"{text} (default: {shown})".strip()


def example_epilog(*commands: str) -> str:
    """An ``--help`` epilog of example command lines."""
    return "example" + ("s" if len(commands) > 1 else "") + ":\n" + "\n".join(
        f"  {c}" for c in commands)


def add_common_options(p: argparse.ArgumentParser) -> None:
    """What every sub-command has: the help formatter and ``-q/--quiet``."""
    p.formatter_class = HelpFormatter
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bars or progress lines, only warnings and the result "
                        "(default: off: a bar on a terminal, else a log line per epoch or stage)")


def add_json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")


def add_dataset_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--dataset", required=required, metavar="CARD|NAME",
                   help="dataset card (dataset.yaml) or benchmark name "
                        "(charades-sta, activitynet-captions, tacos, didemo)")
    p.add_argument("--data-root", metavar="DIR",
                   help="directory the card's relative paths resolve against (needed with a "
                        "name; default: the card file's directory)")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain aligned text table; floats print with two decimals."""

    def cell(v):
        if isinstance(v, float):
            return f"{v:.2f}"
        return "-" if v is None else str(v)

    body = [[cell(v) for v in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in body)) if body else len(str(h))
              for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line([str(h) for h in headers]), sep, *(line(r) for r in body)])


def emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    """Print ``payload`` as JSON with --json, else ``text``."""
    if getattr(args, "json", False):
        json.dump(payload, sys.stdout, indent=2, default=float)
        sys.stdout.write("\n")
    else:
        print(text)


def add_overwrite_flag(p: argparse.ArgumentParser, what: str = "the output") -> None:
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace {what} when it already exists (default: refuse, so nothing "
                        f"written before is lost)")


def run_dir_lock(run_dir, out, purpose: str):
    """The run directory's lock when ``out`` lies inside ``run_dir`` (so a command never writes
    into a run another process is training or writing), else a no-op context."""
    import contextlib
    from pathlib import Path

    from momentloc.engine.lock import RunLock

    run_dir, out = Path(run_dir).resolve(), Path(out).resolve()
    is_run = (run_dir / "config.yaml").is_file()  # else the command fails, creating nothing
    if is_run and (out == run_dir or run_dir in out.parents):
        return RunLock(run_dir, purpose)
    return contextlib.nullcontext()

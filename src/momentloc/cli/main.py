"""``momentloc``: one entry point, one module per sub-command (each exposes ``register``)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from momentloc import __version__
from momentloc.cli.common import HelpFormatter, add_common_options
from momentloc.errors import MomentlocError

# Sub-command modules in the order `momentloc --help` lists them.
COMMANDS = [
    "demo", "synth", "stats", "baseline", "train", "import_cmd", "evaluate", "predict", "table",
    "bench", "extract", "plot", "report", "serve", "config_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="momentloc",
        description="Natural-language moment localization: find when a sentence happens in a video.",
        epilog="Run 'momentloc COMMAND --help' for each command's options.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"momentloc {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"momentloc.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"momentloc.cli.{name}":
                continue  # command not part of this installation
            raise
        module.register(sub)
    for command in sub.choices.values():
        add_common_options(command)  # defaults in every help, -q/--quiet
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(level=logging.DEBUG if args.verbose else
                        logging.WARNING if quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if quiet:
        from momentloc.engine.runtime import set_quiet

        set_quiet(True)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MomentlocError as e:
        print(f"momentloc {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"momentloc {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

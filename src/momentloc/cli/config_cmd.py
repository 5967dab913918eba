"""``momentloc config show``: the resolved configuration of a model, preset and overrides."""

from __future__ import annotations

import argparse

from momentloc.cli.common import add_json_flag, emit, example_epilog


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config", help="print the resolved configuration of a model and preset",
        description="'config show' prints the configuration 'train' would use for --model, "
                    "--preset and --set: the model's defaults, overlaid by the preset file (and "
                    "its base:), overlaid by the overrides, as YAML (or JSON with --json). The "
                    "YAML is a valid preset file: 'train --preset FILE' accepts it.",
        epilog=example_epilog("momentloc config show --model cma --preset charades",
                              "momentloc config show --model tan2d --preset synthetic "
                              "--set optim.lr=5e-4 --json"))
    p.add_argument("action", choices=("show",), help="what to do")
    p.add_argument("--model", required=True, help="registered model name")
    p.add_argument("--preset", help="preset name under configs/<model>/ or a YAML file "
                                    "(default: the model's built-in defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=2e-4 (repeatable)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import yaml

    from momentloc.config import load_config
    from momentloc.config.load import config_to_dict

    data = config_to_dict(load_config(args.model, args.preset, args.overrides))
    emit(args, data, yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip())
    return 0

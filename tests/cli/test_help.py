"""Every command's --help states each option's default and shows an example that parses;
list commands speak JSON; errors blame the right thing; config show round-trips."""

import argparse
import json
import shlex

import pytest
import yaml

from momentloc.cli.common import HelpFormatter
from momentloc.cli.main import build_parser, main
from momentloc.config import list_presets, load_config
from momentloc.config.load import build_config, config_to_dict, find_preset, read_yaml
from momentloc.models import list_models


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


COMMANDS = _commands()


def test_every_shipped_command_is_registered():
    assert {"demo", "synth", "stats", "baseline", "train", "evaluate", "predict", "table", "bench",
            "extract", "plot", "report", "serve", "config"} <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_states_every_default(name):
    p = COMMANDS[name]
    fmt = HelpFormatter(p.prog)
    for action in p._actions:
        if not action.option_strings or action.default is argparse.SUPPRESS:
            continue  # positionals, --help
        text = fmt._get_help_string(action)
        assert "default" in text.lower() or "(required)" in text, (name, action.option_strings)
    assert "(default: " in p.format_help()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_ends_with_examples_that_parse(name):
    p = COMMANDS[name]
    text = p.format_help()
    assert "example" in text
    examples = [line.strip() for line in (p.epilog or "").splitlines()
                if line.strip().startswith(f"momentloc {name}")]
    assert examples, name
    parser = build_parser()
    for line in examples:
        args = parser.parse_args(shlex.split(line)[1:])  # argparse exits on a bad example
        assert args.command == name


def test_help_of_a_command_prints_an_example_and_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        main(["config", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "examples:\n  momentloc config show --model" in out
    flat = " ".join(out.split())  # help lines wrap
    assert "(required)" in flat and "(default: off)" in flat and "(default: the model's" in flat


def test_train_list_models_json(capsys):
    assert main(["train", "--list-models", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    assert sorted(models) == list_models()
    assert models["cma"] == list_presets("cma") and "synthetic" in models["cma"]


def test_table_list_json(capsys):
    from momentloc.engine.tables import list_tables

    assert main(["table", "--list", "--json"]) == 0
    tables = json.loads(capsys.readouterr().out)["tables"]
    assert [(t["name"], t["title"]) for t in tables] == list_tables()


def test_list_without_json_prints_lines(capsys):
    assert main(["train", "--list-models"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("cimha: ")


def test_a_set_typo_names_the_key_and_the_valid_keys_not_the_preset(capsys):
    assert main(["config", "show", "--model", "cma", "--preset", "synthetic",
                 "--set", "train.epoch=3"]) == 1
    err = capsys.readouterr().err
    assert "'train.epoch=3'" in err and "unknown key(s) 'epoch' in train" in err
    assert "valid keys: epochs, batch_size" in err
    assert "synthetic.yaml" not in err


def test_a_set_typo_in_the_model_section_lists_the_models_keys(capsys):
    assert main(["config", "show", "--model", "cma", "--set", "model.alpah=2"]) == 1
    err = capsys.readouterr().err
    assert "unknown key(s) 'alpah' in model" in err and "alpha" in err and "num_guides" in err


def test_an_unknown_model_lists_the_registered_ones(capsys):
    for argv in (["config", "show", "--model", "nope", "--preset", "charades"],
                 ["bench", "--model", "nope", "--preset", "charades"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "unknown model 'nope'" in err and ", ".join(list_models()) in err


@pytest.mark.parametrize("model,preset", [("cma", "charades"), ("lgn", "synthetic_tacos"),
                                          ("csmgan", "ablations/wo_cross")])
def test_config_show_loads_back_as_the_same_config(model, preset, capsys, tmp_path):
    if preset not in list_presets(model):
        preset = list_presets(model)[0]
    overrides = ["optim.lr=3e-4", "train.epochs=2"]
    want = load_config(model, preset, overrides)
    assert main(["config", "show", "--model", model, "--preset", preset,
                 *sum((["--set", o] for o in overrides), [])]) == 0
    text = capsys.readouterr().out
    assert build_config(yaml.safe_load(text)) == want
    # the YAML is itself a preset file
    (tmp_path / "p.yaml").write_text(text)
    assert load_config(model, str(tmp_path / "p.yaml")) == want
    assert main(["config", "show", "--model", model, "--preset", preset, "--json",
                 *sum((["--set", o] for o in overrides), [])]) == 0
    assert json.loads(capsys.readouterr().out) == config_to_dict(want)


def test_no_shipped_preset_switches_the_progress_bar_off():
    for model in list_models():
        for preset in list_presets(model):
            data = read_yaml(find_preset(model, preset))
            assert "progress" not in (data.get("train") or {}), (model, preset)

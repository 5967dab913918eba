"""Strict YAML loading: unknown keys and wrong types are errors that list the valid keys."""

from __future__ import annotations

import dataclasses
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from momentloc.config.schema import ExperimentConfig, check_ranges
from momentloc.errors import ConfigError

_SECTIONS = ("model", "data", "optim", "train", "eval")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert it (int -> float, list -> tuple)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} is not of type {_type_name(tp)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {coerce(k, kt, f"{where} key"): coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:
                    return float(value)  # YAML 1.1 reads "1e-4" as a string
                except ValueError:
                    pass
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")


def from_dict(cls, data: dict, where: str):
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(names)}")
    kwargs = {k: coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    check_ranges(cls, kwargs, where)  # before cls(): its own checks may divide by a width
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, ArithmeticError) as e:
        raise ConfigError(f"{where}: {e}") from e


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _load_yaml(text: str, what: str) -> Any:
    """``yaml.safe_load`` with every way it can fail as a ConfigError naming ``what``."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{what}: not valid YAML ({e})") from None
    except RecursionError:
        raise ConfigError(f"{what}: not readable YAML: nested too deeply") from None
    except ValueError as e:  # an integer longer than the interpreter's int-string limit
        raise ConfigError(f"{what}: not readable YAML ({e})") from None


def read_yaml(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict:
    """Read a preset file, following its optional ``base:`` (relative to the file).

    Raises:
        ConfigError: naming the file: unreadable, not UTF-8, not YAML, not a mapping, or a
            ``base:`` chain that comes back to a file already in it.
    """
    path = Path(path)
    resolved = path.resolve()
    if resolved in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain[_chain.index(resolved):], resolved))
        raise ConfigError(f"{path}: 'base:' chain is a cycle: {cycle}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from e
    data = _load_yaml(text, str(path)) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str) or not base:
            raise ConfigError(f"{path}: 'base:' must name a YAML file, got {base!r}")
        data = _deep_merge(read_yaml(path.parent / base, (*_chain, resolved)), data)
    return data


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict:
    """``["train.lr=2e-4", "model.num_layers=3"]`` -> nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected section.key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) < 2 or parts[0] not in _SECTIONS:
            raise ConfigError(f"override {item!r}: key must start with one of {', '.join(_SECTIONS)}")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty key part in {key.strip()!r}")
        value = _load_yaml(raw, f"override {item!r}: the value") if raw.strip() else ""
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: an earlier override set {p!r} to a value")
        node[parts[-1]] = value
    return out


def check_override_keys(items: list[str] | tuple[str, ...], model: str) -> None:
    """Refuse an override whose key the schema lacks, naming the override and the valid keys
    (before the preset is merged, so the error blames the ``--set``, not the preset file)."""
    from momentloc.models.registry import get_config_class

    hints = typing.get_type_hints(ExperimentConfig)
    for item in items:
        parts = item.split("=", 1)[0].strip().split(".")
        if parts[0] not in _SECTIONS:
            continue  # parse_overrides reports it
        cls = get_config_class(model) if parts[0] == "model" else hints[parts[0]]
        for depth, part in enumerate(parts[1:], 1):
            names = [f.name for f in dataclasses.fields(cls)] + (["name"] if depth == 1 and
                                                                  parts[0] == "model" else [])
            if part not in names:
                raise ConfigError(f"override {item!r}: unknown key(s) {part!r} in "
                                  f"{'.'.join(parts[:depth])}; valid keys: {', '.join(names)}")
            if depth < len(parts) - 1:
                sub = typing.get_type_hints(cls).get(part)
                if not dataclasses.is_dataclass(sub):
                    break  # a mapping-valued field: its keys are checked when it is built
                cls = sub


def configs_dir() -> Path:
    return Path(str(resources.files("momentloc") / "configs"))


def list_presets(model: str) -> list[str]:
    """Preset names shipped for ``model`` (``configs/<model>/*.yaml``, ablations included)."""
    root = configs_dir() / model
    if not root.is_dir():
        return []
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def find_preset(model: str, preset: str) -> Path:
    """A preset name (``charades``, ``ablations/wo_gate``) or a path to a YAML file."""
    p = Path(preset)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    cand = configs_dir() / model / f"{preset}.yaml"
    if cand.is_file():
        return cand
    known = list_presets(model)
    raise ConfigError(f"no preset {preset!r} for model {model!r}; known: {', '.join(known) or 'none'}")


def build_config(data: dict, where: str = "config") -> ExperimentConfig:
    """Validate a nested dict (sections model/data/optim/train/eval) into an ExperimentConfig."""
    from momentloc.models.registry import get_config_class

    unknown = [k for k in data if k not in _SECTIONS]
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(map(repr, unknown))}; "
                          f"valid sections: {', '.join(_SECTIONS)}")
    model = data.get("model") or {}
    if not isinstance(model, dict):
        raise ConfigError(f"{where}: model: expected a mapping, got {model!r}")
    model = dict(model)
    name = model.pop("name", None)
    if not name:
        raise ConfigError(f"{where}: model.name is required")
    mcls = get_config_class(name)
    sections = {s: from_dict(typing.get_type_hints(ExperimentConfig)[s], data.get(s) or {},
                             f"{where}: {s}") for s in ("data", "optim", "train", "eval")}
    model_cfg = from_dict(mcls, model, f"{where}: model")
    try:
        return ExperimentConfig(model_name=name, model=model_cfg, **sections)
    except ConfigError as e:  # rules across fields (eval.top_k against eval.recall_at)
        raise ConfigError(f"{where}: {e}") from None


def load_config(model: str | None = None, preset: str | None = None,
                overrides: list[str] | tuple[str, ...] = (), extra: dict | None = None
                ) -> ExperimentConfig:
    """Resolve a config: model defaults <- preset file <- ``extra`` dict <- ``key=value`` overrides."""
    from momentloc.models.registry import get_config_class

    data: dict = {}
    where = "config"
    if model is not None:
        get_config_class(model)  # an unknown model lists the registered ones
        check_override_keys(overrides, model)
    if preset is not None:
        if model is None:
            raise ConfigError("a preset needs a model (--model)")
        path = find_preset(model, preset)
        data = read_yaml(path)
        where = str(path)
        pm = (data.get("model") or {}).get("name")
        if pm is not None and pm != model:
            raise ConfigError(f"{path}: preset is for model {pm!r}, not {model!r}")
    if model is not None:
        data = _deep_merge(data, {"model": {"name": model}})
    if extra:
        data = _deep_merge(data, extra)
    data = _deep_merge(data, parse_overrides(list(overrides)))
    return build_config(data, where)


def to_plain(x):
    """Dataclasses, tuples and dicts -> plain YAML/JSON-ready values."""
    if dataclasses.is_dataclass(x):
        return {f.name: to_plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, (list, tuple)):
        return [to_plain(v) for v in x]
    if isinstance(x, dict):
        return {k: to_plain(v) for k, v in x.items()}
    return x


def config_to_dict(cfg: ExperimentConfig) -> dict:
    """Plain nested dict (YAML-ready) of a config; ``model.name`` first."""
    return {"model": {"name": cfg.model_name, **to_plain(cfg.model)},
            **{s: to_plain(getattr(cfg, s)) for s in ("data", "optim", "train", "eval")}}

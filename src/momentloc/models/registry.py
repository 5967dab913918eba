"""Model registry: a plain dict and a decorator (timm style)."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Callable

from momentloc.config.schema import ModelConfig
from momentloc.errors import ConfigError


@dataclass(frozen=True)
class _Entry:
    builder: Callable
    config_cls: type


_REGISTRY: dict[str, _Entry] = {}

# Modules under momentloc.models that register models when imported.
FAMILIES = ("tan2d", "lgn", "csmgan", "fian", "cimha", "cma")


def register_model(name: str, config_cls: type[ModelConfig]):
    """Register ``builder(cfg: config_cls, ctx: ModelContext) -> GroundingModel`` as ``name``."""

    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        if not issubclass(config_cls, ModelConfig):
            raise TypeError(f"{config_cls.__name__} must subclass ModelConfig")
        _REGISTRY[name] = _Entry(fn, config_cls)
        return fn

    return deco


def _ensure_loaded() -> None:
    import importlib

    for family in FAMILIES:     # each module registers its models on import
        importlib.import_module(f"momentloc.models.{family}")


def list_models(pattern: str = "*") -> list[str]:
    _ensure_loaded()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def get_config_class(name: str) -> type:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return _REGISTRY[name].config_cls


def create_model(name: str, cfg: ModelConfig, ctx):
    """Build model ``name`` from its config and the data context."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(list_models())}")
    entry = _REGISTRY[name]
    if not isinstance(cfg, entry.config_cls):
        raise ConfigError(f"model {name!r} needs a {entry.config_cls.__name__}, got {type(cfg).__name__}")
    return entry.builder(cfg, ctx)

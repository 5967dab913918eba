"""Typed experiment configuration: dataclasses, strict YAML loading, dotted overrides."""

from momentloc.config.load import (
    config_to_dict,
    find_preset,
    list_presets,
    load_config,
    parse_overrides,
)
from momentloc.config.schema import (
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)

__all__ = [
    "DataConfig", "EvalConfig", "ExperimentConfig", "ModelConfig", "OptimConfig", "TrainConfig",
    "config_to_dict", "find_preset", "list_presets", "load_config", "parse_overrides",
]

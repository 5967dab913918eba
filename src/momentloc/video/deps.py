"""Optional dependencies, imported only when a feature needs them."""

from __future__ import annotations

import importlib
from types import ModuleType

from momentloc.errors import ConfigError

# module -> (pip extra, what needs it)
_EXTRAS = {
    "av": ("video", "decoding video files (PyAV)"),
    "transformers": ("clip", "the CLIP feature extractor (Hugging Face transformers)"),
    "matplotlib": ("viz", "figures (matplotlib)"),
}


def require(module: str) -> ModuleType:
    """Import an optional dependency, or raise ConfigError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        extra, purpose = _EXTRAS.get(module.split(".")[0], ("", module))
        hint = f"pip install 'momentloc[{extra}]'" if extra else f"pip install {module}"
        raise ConfigError(f"{purpose} needs the '{module.split('.')[0]}' package, which is not "
                          f"installed ({e}); install it with: {hint}") from e

"""momentloc: natural-language moment localization (temporal sentence grounding)."""

__version__ = "0.1.0"

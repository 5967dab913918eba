"""Model families. Families register themselves when imported; ``list_models`` and
``create_model`` import them on first use (see ``registry.FAMILIES``), so heads and layers may
import ``momentloc.models.base`` without import cycles."""

from momentloc.models.base import Candidates, GroundingModel, ModelContext
from momentloc.models.registry import FAMILIES, create_model, list_models, register_model

__all__ = ["FAMILIES", "Candidates", "GroundingModel", "ModelContext", "create_model",
           "list_models", "register_model"]

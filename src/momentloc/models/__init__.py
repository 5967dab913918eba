"""Model families. Importing this package registers every model."""

from momentloc.models.base import Candidates, GroundingModel, ModelContext
from momentloc.models.registry import create_model, list_models, register_model

# Families (each module registers its models on import).
from momentloc.models import tan2d  # noqa: E402,F401

__all__ = ["Candidates", "GroundingModel", "ModelContext", "create_model", "list_models",
           "register_model"]

"""Loss functions shared by the model families."""

from momentloc.losses.common import masked_soft_bce

__all__ = ["masked_soft_bce"]

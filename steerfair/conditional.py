"""Deprecated alias of :mod:`steerfair.model` (the group/class-conditional model lives there)."""

import warnings

from .model import Family, GroupConditionalModel

warnings.warn(
    "steerfair.conditional is deprecated; import GroupConditionalModel from steerfair or steerfair.model",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["Family", "GroupConditionalModel"]

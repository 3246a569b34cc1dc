"""KL divergence between families and between group-conditional models."""

from __future__ import annotations

from typing import Any

from .families import Gaussian, LogNormal
from .model import GroupConditionalModel

__all__ = ["kl"]


def kl(p: Any, q: Any) -> float:
    """``KL(p || q)`` for two :class:`Gaussian`, two :class:`LogNormal` or two
    :class:`GroupConditionalModel` (the KL of the joint distributions of ``(X, Y, A)``)."""
    if type(p) is not type(q):
        raise TypeError(f"kl needs two objects of the same kind; got {type(p).__name__} and {type(q).__name__}")
    if isinstance(p, (Gaussian, LogNormal, GroupConditionalModel)):
        return p.kl(q)
    raise TypeError(f"kl is not defined for {type(p).__name__}")

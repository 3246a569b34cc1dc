"""The representation-steering methods compared by the Bios protocol, by name, all with ``fit(X, y, groups)`` /
``transform(X, groups, y=None)``: steerfair's :class:`~steerfair.representations.IdealTemplateSteering` and the
baselines of :mod:`steerfair.baselines` (mean matching, MiMiC, LEACE, INLP). ``"steerfair_shared"`` is the same
class with ``target="shared"`` (label-free garbling onto a common law per occupation).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..baselines import INLP
from ..representations import IdealTemplateSteering

__all__ = ["METHODS", "make_method"]

#: the method names accepted by :func:`make_method`
METHODS = ("none", "steerfair", "steerfair_shared", "mean_matching", "mimic", "leace", "inlp")


class _GroupOnly:
    """Adapter: baselines fitted from (X, groups) only, behind the ``fit(X, y, groups)`` / ``transform(X, groups,
    y=None)`` interface of the protocol."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def fit(self, X: Any, y: Any, groups: Any) -> _GroupOnly:
        self.inner.fit(np.asarray(X, dtype=np.float64), np.asarray(groups))
        return self

    def transform(self, X: Any, groups: Any, y: Any = None) -> np.ndarray:
        # labels or (n, k) probabilities: the baselines read both through Membership (soft rows mix the maps)
        return self.inner.transform(np.asarray(X, dtype=np.float64), groups)


class _Identity:
    """No steering: ``transform`` returns the features as ``float64``."""

    def fit(self, X: Any, y: Any, groups: Any) -> _Identity:
        return self

    def transform(self, X: Any, groups: Any = None, y: Any = None) -> np.ndarray:
        return np.asarray(X, dtype=np.float64)


def make_method(name: str, **options: Any) -> Any:
    """A fresh, unfitted method by name.

    Args:
        name: One of :data:`METHODS`.
        **options: Keyword arguments of :class:`~steerfair.representations.IdealTemplateSteering` (used by
            ``"steerfair"`` and ``"steerfair_shared"`` only; the latter always with ``target="shared"``).

    Returns:
        An estimator with ``fit(X, y, groups)`` and ``transform(X, groups, y=None)``.

    Raises:
        ValueError: For an unknown name.
    """
    from ..baselines import GaussianOTMatching, LeaceMatching, MeanMatching

    if name == "none":
        return _Identity()
    if name == "steerfair":
        return IdealTemplateSteering(**options)
    if name == "steerfair_shared":  # the shared target, whatever ``target`` the options give "steerfair"
        return IdealTemplateSteering(**{**options, "target": "shared"})
    if name == "mean_matching":
        return _GroupOnly(MeanMatching())
    if name == "mimic":
        return _GroupOnly(GaussianOTMatching(target="reference"))
    if name == "leace":
        return _GroupOnly(LeaceMatching())
    if name == "inlp":
        return INLP()
    raise ValueError(f"unknown method {name!r}; use one of {METHODS}")

"""The representation-steering methods compared by the Bios protocol, by name, all with ``fit(X, y, groups)`` /
``transform(X, groups, y=None)``: steerfair's :class:`~steerfair.representations.IdealTemplateSteering` and the
baselines of :mod:`steerfair.baselines` (mean matching, MiMiC, LEACE, INLP). ``"steerfair_shared"`` is the same
class with ``target="shared"`` (label-free garbling onto a common law per occupation). ``"steerfair_shared_lda"``
and ``"steerfair_shared_eb"`` are the shared target with the estimation choices of
:mod:`steerfair.shared_target_estimation` (:class:`SharedTargetMethod`): steering the discriminant span of the
occupations plus the gender direction, or denoised (shrunk) cell means in the principal subspace.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..baselines import INLP
from ..covariance import CovarianceEstimator
from ..membership import PlainGroups
from ..model import GroupConditionalModel
from ..random_state import call_generator, check_random_state
from ..representations import IdealTemplateSteering
from ..shared_target import SharedTargetSteering
from ..shared_target_estimation import discriminant_coordinates
from ..steering import Coordinates
from ..validation import as_matrix, as_unit_weight

__all__ = ["METHODS", "SharedTargetMethod", "make_method"]

#: the method names accepted by :func:`make_method`
METHODS = (
    "none", "steerfair", "steerfair_shared", "steerfair_shared_lda", "steerfair_shared_eb",
    "mean_matching", "mimic", "leace", "inlp",
)  # fmt: skip


class SharedTargetMethod:
    """The label-free shared target (:mod:`steerfair.shared_target`) with a choice of steered subspace and of
    class-mean estimate (:mod:`steerfair.shared_target_estimation`).

    Args:
        subspace: ``"discriminant"`` (the ``m - 1`` discriminant directions of the classes plus the groups'
            mean-difference directions) or ``"principal"`` (the top-``rank`` principal subspace).
        rank: ``subspace="principal"`` only: its dimension (``None``: all of it).
        shrink_means: solve the target for denoised class means (``shrink_group_deviations``).
        shrinkage: the cells' covariance shrinkage (as :class:`~steerfair.representations.IdealTemplateSteering`).
        strength: each row is steered with this probability.
        random_state: seed of the garbling noise.

    Raises:
        ValueError: for an unknown ``subspace`` or a bad ``rank``.
    """

    def __init__(
        self,
        subspace: str = "discriminant",
        rank: int | None = None,
        shrink_means: bool = False,
        shrinkage: Any = "oas",
        strength: float = 1.0,
        random_state: Any = None,
    ) -> None:
        if subspace not in ("discriminant", "principal"):
            raise ValueError(f"subspace must be 'discriminant' or 'principal'; got {subspace!r}")
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
            raise ValueError(f"rank must be None or a positive integer; got {rank!r}")
        self.subspace, self.rank, self.shrink_means = subspace, rank, bool(shrink_means)
        self.estimator = CovarianceEstimator(shrinkage, "auto")
        self.strength, self.random_state = as_unit_weight(strength, "strength"), random_state

    def fit(self, X: Any, y: Any, groups: Any) -> SharedTargetMethod:
        """Fit the cells in the chosen subspace and solve the shared target (hard group labels)."""
        X = as_matrix(X, "X", min_rows=2)
        if self.subspace == "discriminant":
            coords = discriminant_coordinates(X, y, groups)
        else:
            coords = Coordinates.principal(np.cov(X, rowvar=False), self.rank, center=X.mean(axis=0))
        membership = PlainGroups().fit_membership(groups, X.shape[0])
        model = GroupConditionalModel.fit(coords.to_working(X), y, membership, estimator=self.estimator)
        self.model_ = model
        self.shared_ = SharedTargetSteering.fit(model, coords, shrink_means=self.shrink_means)
        check_random_state(self.random_state)  # named at fit, before any transform draws
        return self

    def transform(self, X: Any, groups: Any, y: Any = None) -> np.ndarray:
        """Garble rows by their group's map (labels or ``(n, k)`` probabilities; ``y`` is not used)."""
        X = as_matrix(X, "X")
        membership = PlainGroups().apply_membership(groups, X.shape[0], self.model_.groups)
        return self.shared_.transform(
            X, membership, call_generator(self.random_state, X, membership.weights), self.strength
        )


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
            ``"steerfair"`` and ``"steerfair_shared"`` only; the latter always with ``target="shared"``);
            ``"steerfair_shared_lda"`` reads ``random_state`` and ``"steerfair_shared_eb"`` ``rank`` and
            ``random_state`` from them.

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
    if name == "steerfair_shared_lda":
        return SharedTargetMethod("discriminant", random_state=options.get("random_state"))
    if name == "steerfair_shared_eb":
        return SharedTargetMethod(
            "principal", rank=options.get("rank"), shrink_means=True, random_state=options.get("random_state")
        )
    if name == "mean_matching":
        return _GroupOnly(MeanMatching())
    if name == "mimic":
        return _GroupOnly(GaussianOTMatching(target="reference"))
    if name == "leace":
        return _GroupOnly(LeaceMatching())
    if name == "inlp":
        return INLP()
    raise ValueError(f"unknown method {name!r}; use one of {METHODS}")

"""Reading privatised group reports: the group reader of randomized-response data.

:class:`ReportedGroups` turns 1-D reports, privatised with k-ary randomized response at ``epsilon``, into the
:class:`~steerfair.membership.Membership` each step of the engine needs: the de-biased signed membership for the
statistics (channel inversion), and the posterior ``P(A | x, report)`` for moving rows. :func:`group_reader` is
what front ends call: it returns the plain reader for raw attributes (``epsilon`` ``None`` or infinite), so they
never branch on privacy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..membership import Membership, PlainGroups
from .channel_inversion import private_membership
from .mechanisms import check_epsilon
from .posterior import PrivateGroupProbe, posterior_group_proba

__all__ = ["ReportedGroups", "group_reader"]


class ReportedGroups:
    """The group reader of reports privatised with k-ary randomized response at ``epsilon``.

    Args:
        epsilon: the privacy level of the reports (finite, positive).
    """

    needs_prior = True

    def __init__(self, epsilon: float) -> None:
        self.epsilon = check_epsilon(epsilon)

    def __repr__(self) -> str:
        return f"ReportedGroups(epsilon={self.epsilon!r})"

    def _reports(self, groups: Any, n: int, name: str) -> np.ndarray:
        arr = np.asarray(groups.to_numpy() if hasattr(groups, "to_numpy") else groups)
        if arr.ndim != 1:
            raise ValueError(
                f"with group_epsilon set, {name} are the privatised reports (1-D labels), not probabilities"
            )
        if arr.shape[0] != n:
            raise ValueError(f"{name} must hold one report per row of X ({n}); got {arr.shape[0]}")
        return arr

    def fit_membership(self, groups: Any, n: int, labels: Sequence[Any] | None = None) -> Membership:
        """The de-biased signed membership of the reports (unbiased for the true one-hot groups)."""
        reports = self._reports(groups, n, "groups")
        if labels is None and len({v.item() if isinstance(v, np.generic) else v for v in reports.tolist()}) < 2:
            raise ValueError(
                "groups (the privatised reports) hold a single value; randomized response needs the domain of at "
                "least two groups: pass group_labels=[...] with every group"
            )
        return private_membership(reports, self.epsilon, categories=labels)

    def apply_membership(
        self, groups: Any, n: int, known: Sequence[Any] | np.ndarray, prior: Any = None, *, name: str = "groups"
    ) -> Membership:
        """``P(A | x, report)`` from the reports and a prior ``P(A | x)`` (``prior()``; ``None``: uniform, see
        :func:`~steerfair.privacy.posterior_group_proba`); without reports, the prior itself; explicit probabilities
        are taken as given."""
        if isinstance(groups, Membership) or (groups is not None and np.ndim(groups) == 2):
            return PlainGroups().apply_membership(groups, n, known, name=name)  # probabilities are taken as given
        P0 = None if prior is None else prior()
        if groups is None:
            return PlainGroups().apply_membership(None, n, known, lambda: P0, name=name)
        reports = self._reports(groups, n, name)
        return Membership(np.asarray(known), posterior_group_proba(reports, self.epsilon, P0, categories=known),
                          "probabilities")  # fmt: skip

    def fit_probe(self, X: np.ndarray, groups: Any, membership: Membership, sample_weight: Any = None) -> Any:
        """A forward-corrected logistic model of ``P(A | x)`` trained on the reports ``groups`` themselves (weighted
        by ``sample_weight``)."""
        return PrivateGroupProbe(self.epsilon, categories=membership.labels).fit(X, groups, sample_weight)


def group_reader(epsilon: float | None = None) -> PlainGroups | ReportedGroups:
    """The reader of ``groups=`` for a privacy level: raw attributes for ``None`` or ``inf``, else reports."""
    if epsilon is None:
        return PlainGroups()
    eps = check_epsilon(epsilon, "group_epsilon")
    return PlainGroups() if math.isinf(eps) else ReportedGroups(eps)

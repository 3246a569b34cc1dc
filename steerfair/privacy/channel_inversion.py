"""Unbiased estimation from randomised group (and label) reports, and models fitted from it.

Channel inversion. With k-ary randomized response (keep probability ``p``, flip probability ``q`` per
other category) the one-hot report ``e_r`` of a row whose true group is ``a`` has ``E[e_r] = C[a, :]``.
The *de-biased membership* ``W = e_r C^{-1} = (e_r - q 1) / (p - q)`` therefore has ``E[W] = e_a``:
an unbiased, signed stand-in for the unknown one-hot group. Every statistic that is linear in the
membership - group sizes ``sum_j 1[a_j = a]``, sums ``sum_j 1[a_j = a] x_j``, second moments
``sum_j 1[a_j = a] x_j x_j^T``, per class - is estimated without bias by replacing the indicator by
``W``. With a privatised label as well (an independent channel), the product ``W^A_{ja} W^Y_{ji}`` is
unbiased for ``1[a_j = a, y_j = i]``.

Means and covariances are ratios of these totals (consistent, with an ``O(1/n)`` ratio bias); the
covariance estimate may be indefinite at small ``epsilon`` and is repaired by clipping the eigenvalues of
the symmetrised matrix (:func:`psd_repair`). ``epsilon = inf`` gives ``W = e_a`` exactly and the fitted
model is bit-identical to :meth:`GroupConditionalModel.fit` on the raw groups.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..covariance import UNSET, CovarianceEstimator
from ..ideal.solve import Criterion, Intervention
from ..membership import Membership, MembershipKind
from ..model import Family, GroupConditionalModel
from ..statistics import PSD_FLOOR, CellStatistics, psd_repair
from ..validation import as_labels, as_matrix, as_number
from .mechanisms import check_epsilon, encode_categories, invertible_rr_probabilities

__all__ = [
    "CellStatistics",
    "activation_statistics",
    "cell_statistics",
    "debias_statistics",
    "debiased_membership",
    "fit_private_model",
    "fit_private_steering",
    "inverse_channel",
    "label_membership",
    "ldp_statistics",
    "private_membership",
    "psd_repair",
    "working_space",
]


def debiased_membership(
    reports: Any,
    epsilon: float,
    n_categories: int | None = None,
    *,
    categories: Sequence[Any] | np.ndarray | None = None,
    names: tuple[str, str] = ("reports", "epsilon"),
) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased signed membership ``W = (onehot(r) - q) / (p - q)`` of randomised reports.

    Args:
        reports: 1-D privatised column (codes or labels, as :func:`randomized_response` returns).
        epsilon: the privacy level the reports were produced with (``inf``: raw values).
        n_categories, categories: the domain (see :func:`~steerfair.privacy.encode_categories`).
        names: how the caller calls the reports and their privacy level, for error messages (privatised labels:
            ``("y", "label_epsilon")``).

    Returns:
        ``(W, categories)``: ``W`` is ``(n, k)`` with ``E[W_j] = onehot(true value of row j)``; its rows
        sum to 1 and may hold negative entries. For ``epsilon = inf`` it is the one-hot matrix exactly.
    """
    eps = check_epsilon(epsilon, names[1])
    codes, cats = encode_categories(reports, categories, n_categories, name=names[0])
    p, q = invertible_rr_probabilities(eps, len(cats), names[1])
    onehot = np.zeros((codes.shape[0], len(cats)))
    onehot[np.arange(codes.shape[0]), codes] = 1.0
    if math.isinf(eps):
        return onehot, cats
    return (onehot - q) / (p - q), cats


def private_membership(
    reports: Any,
    epsilon: float,
    n_categories: int | None = None,
    *,
    categories: Sequence[Any] | np.ndarray | None = None,
    names: tuple[str, str] = ("reports", "epsilon"),
) -> Membership:
    """The :class:`~steerfair.membership.Membership` of privatised reports for fitting: the de-biased signed
    weights of :func:`debiased_membership` (one-hot, kind ``"labels"``, for ``epsilon = inf``; ``names`` as
    there)."""
    W, cats = debiased_membership(reports, epsilon, n_categories, categories=categories, names=names)
    return Membership(cats, W, "labels" if math.isinf(check_epsilon(epsilon)) else "debiased")


def working_space(X: Any, family: str, min_rows: int) -> np.ndarray:
    """``X`` as a validated matrix in the model's working space (``log X`` for ``family="lognormal"``)."""
    if family not in ("normal", "lognormal"):
        raise ValueError(f"unknown family {family!r}; use 'normal' or 'lognormal'")
    X = as_matrix(X, "X", min_rows=min_rows)
    if family == "lognormal":
        if np.any(X <= 0):
            raise ValueError("family='lognormal' needs X > 0")
        return np.log(X)
    return X


def label_membership(
    y: Any, n: int, label_epsilon: float | None = None, label_categories: Sequence[Any] | np.ndarray | None = None
) -> Membership:
    """The class membership of ``y``: one-hot labels, or de-biased weights of labels privatised at
    ``label_epsilon``."""
    if label_epsilon is None:
        y = as_labels(y, "y", n)
        if label_categories is None:
            return Membership.parse(y, n, name="y", min_groups=1)
        ci, clabels = encode_categories(y, label_categories, name="y")
        return Membership.one_hot(ci, clabels)
    check_epsilon(label_epsilon, "label_epsilon")  # named as the caller passed it
    invertible_rr_probabilities(label_epsilon, 2, "label_epsilon")
    return private_membership(
        as_labels(y, "y", n), label_epsilon, categories=label_categories, names=("y", "label_epsilon")
    )


def cell_statistics(
    X: Any,
    membership: Any,
    label_membership: Any,
    *,
    groups: Sequence[Any],
    classes: Sequence[Any],
    weights: Any = None,
) -> CellStatistics:
    """Weighted moments per cell with row weights ``w_j G_ja H_ji`` (any signs allowed in ``G``, ``H``).

    Args:
        X: rows ``(n, d)``.
        membership: ``(n, k)`` group membership ``G`` (one-hot, probabilities or de-biased weights).
        label_membership: ``(n, m)`` class membership ``H``.
        groups, classes: labels of the columns of ``G`` and ``H``.
        weights: optional non-negative row weights ``w``.
    """
    G = np.asarray(membership, dtype=np.float64)
    H = np.asarray(label_membership, dtype=np.float64)
    X = as_matrix(X, "X")
    n, k, m = X.shape[0], len(groups), len(classes)
    if G.shape != (n, k) or H.shape != (n, m):
        raise ValueError(f"membership must be ({n}, {k}) and label_membership ({n}, {m}); got {G.shape}, {H.shape}")
    kind: MembershipKind = "debiased" if np.any(G < 0) else "probabilities"
    group_m, class_m = Membership(np.asarray(groups), G, kind), Membership(np.asarray(classes), H, kind)
    return CellStatistics.from_rows(X, group_m, class_m, weights)


def ldp_statistics(
    X: Any,
    y: Any,
    reports: Any,
    epsilon: float,
    *,
    categories: Sequence[Any] | np.ndarray | None = None,
    n_categories: int | None = None,
    label_epsilon: float | None = None,
    label_categories: Sequence[Any] | np.ndarray | None = None,
    weights: Any = None,
) -> CellStatistics:
    """Unbiased per-(group, class) statistics from group reports privatised with ``epsilon``.

    The cell totals are unbiased for those of the true groups (``E[counts[a, i]] = #{j : a_j = a, y_j = i}``,
    and likewise the weighted sums and second moments), the expectation taken over the randomisation. With
    ``label_epsilon`` the labels ``y`` are privatised reports too (an independent channel).

    Args:
        X: features ``(n, d)`` (in the space to be modelled; pass ``log X`` for a log-normal model).
        y: labels (raw, or privatised with ``label_epsilon``).
        reports: privatised groups.
        epsilon: privacy level of the group reports (``inf``: raw groups).
        categories, n_categories: the group domain (see :func:`~steerfair.privacy.encode_categories`).
        label_epsilon, label_categories: privacy level and domain of privatised labels.
        weights: optional row weights.
    """
    X = as_matrix(X, "X", min_rows=1)
    G = private_membership(reports, epsilon, n_categories, categories=categories)
    if G.n != X.shape[0]:
        raise ValueError(f"reports has {G.n} entries but X has {X.shape[0]} rows")
    H = label_membership(y, X.shape[0], label_epsilon, label_categories)
    return CellStatistics.from_rows(X, G, H, weights)


def inverse_channel(epsilon: float, k: int) -> np.ndarray:
    """``C^{-1} = (I - q 1 1^T) / (p - q)`` of k-ary randomized response (the identity for ``epsilon = inf``)."""
    if math.isinf(epsilon):
        return np.eye(k)
    p, q = invertible_rr_probabilities(epsilon, k)
    return (np.eye(k) - q) / (p - q)


def debias_statistics(stats: CellStatistics, epsilon: float, label_epsilon: float | None = None) -> CellStatistics:
    """Turn statistics aggregated by *reported* group (and label) into unbiased statistics by true group.

    For statistics accumulated with the privatised values as cell keys (e.g. :class:`steerfair.llm.ActivationStats`
    collected with randomised groups): ``E[T_reported] = C^T T_true`` for every total ``T``, so the true cells are
    the combinations ``(C^{-1})^T`` of the reported ones (:meth:`~steerfair.statistics.CellStatistics.combine_groups`).
    Equal to :func:`ldp_statistics` on the same rows up to rounding.
    """
    eps = check_epsilon(epsilon)
    out = stats.combine_groups(inverse_channel(eps, len(stats.groups)).T, stats.groups)
    if label_epsilon is not None:
        leps = check_epsilon(label_epsilon, "label_epsilon")
        out = out.combine_classes(inverse_channel(leps, len(stats.classes)).T, stats.classes)
    return out


def activation_statistics(stats: Any, layer: int) -> CellStatistics:
    """The :class:`~steerfair.statistics.CellStatistics` of one layer of a labelled
    :class:`steerfair.llm.ActivationStats`."""
    if getattr(stats, "labels", None) is None:
        raise ValueError("activation_statistics needs labelled ActivationStats")
    return stats.cell_statistics(layer)


def fit_private_model(
    X: Any,
    y: Any,
    reports: Any,
    epsilon: float,
    family: Family = "normal",
    *,
    categories: Sequence[Any] | np.ndarray | None = None,
    n_categories: int | None = None,
    label_epsilon: float | None = None,
    label_categories: Sequence[Any] | np.ndarray | None = None,
    weights: Any = None,
    estimator: CovarianceEstimator | None = None,
    shrinkage: Any = UNSET,
    reg: Any = UNSET,
    min_samples: float = 2,
    psd_floor: float = PSD_FLOOR,
) -> GroupConditionalModel:
    """Fit a :class:`GroupConditionalModel` from group reports privatised with ``epsilon``.

    The model is :meth:`GroupConditionalModel.fit` with the de-biased membership of the reports
    (:func:`private_membership`): priors come from the de-biased cell weights, components from the de-biased
    (signed-weight, centred) moments with PSD repair; cells with only non-negative weights are fitted exactly as
    for raw groups, so ``epsilon = inf`` reproduces the non-private fit bit for bit.

    Args:
        X, y, reports, epsilon: data, labels, privatised groups and their privacy level.
        family: ``"normal"`` or ``"lognormal"`` (then ``X > 0`` and the model is of ``log X``).
        categories, n_categories: the group domain (default: the sorted reported values).
        label_epsilon, label_categories: the labels were privatised too (independent channel).
        weights: optional non-negative row weights.
        estimator, shrinkage, reg: per-cell covariance estimation, as in :meth:`GroupConditionalModel.fit`.
        min_samples: the smallest (estimated) cell count accepted.
        psd_floor: eigenvalue floor of the repair, in correlation units.

    Raises:
        ValueError: for invalid privacy levels, or a cell whose estimated count is below ``min_samples``
            (too few rows for this epsilon).
    """
    est = CovarianceEstimator.of(estimator, shrinkage=shrinkage, reg=reg)
    as_number(psd_floor, "psd_floor", low=0.0)  # checked as the caller named it (the fit rescales it per cell)
    n = working_space(X, family, min_rows=2).shape[0]
    G = private_membership(reports, epsilon, n_categories, categories=categories)
    if G.n != n:
        raise ValueError(f"reports has {G.n} entries but X has {n} rows")
    H = label_membership(y, n, label_epsilon, label_categories)
    return GroupConditionalModel.fit(
        X, H, G, family, weights=weights, estimator=est, min_samples=min_samples, psd_floor=psd_floor
    )


def fit_private_steering(
    X: Any,
    y: Any,
    reports: Any,
    epsilon: float,
    criterion: Criterion = "equal_opportunity",
    intervention: Intervention = "all",
    **fit_kwargs: Any,
) -> Any:
    """:func:`steerfair.fit_steering` on :func:`fit_private_model` (``fit_kwargs`` go to the latter)."""
    from ..steering import fit_steering

    model = fit_private_model(X, y, reports, epsilon, **fit_kwargs)
    return fit_steering(model, criterion, intervention)

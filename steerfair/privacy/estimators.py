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
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..families import Gaussian
from ..families.gaussian import Shrinkage, _regularise, shrink_cov
from ..model import Family, GroupConditionalModel, _cell_priors, _row_weights
from ..validation import as_labels, as_matrix, symmetrize
from .mechanisms import check_epsilon, encode_categories, rr_probabilities

__all__ = [
    "CellStatistics",
    "activation_statistics",
    "cell_statistics",
    "debias_statistics",
    "debiased_membership",
    "fit_private_model",
    "fit_private_steering",
    "ldp_statistics",
    "psd_repair",
]

#: Eigenvalues of a repaired covariance's correlation matrix are clipped at this value.
PSD_FLOOR = 1e-6


def debiased_membership(
    reports: Any,
    epsilon: float,
    n_categories: int | None = None,
    *,
    categories: Sequence[Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased signed membership ``W = (onehot(r) - q) / (p - q)`` of randomised reports.

    Args:
        reports: 1-D privatised column (codes or labels, as :func:`randomized_response` returns).
        epsilon: the privacy level the reports were produced with (``inf``: raw values).
        n_categories, categories: the domain (see :func:`~steerfair.privacy.encode_categories`).

    Returns:
        ``(W, categories)``: ``W`` is ``(n, k)`` with ``E[W_j] = onehot(true value of row j)``; its rows
        sum to 1 and may hold negative entries. For ``epsilon = inf`` it is the one-hot matrix exactly.
    """
    eps = check_epsilon(epsilon)
    codes, cats = encode_categories(reports, categories, n_categories, name="reports")
    p, q = rr_probabilities(eps, len(cats))
    onehot = np.zeros((codes.shape[0], len(cats)))
    onehot[np.arange(codes.shape[0]), codes] = 1.0
    if math.isinf(eps):
        return onehot, cats
    return (onehot - q) / (p - q), cats


def psd_repair(S: Any, floor: float = 0.0) -> np.ndarray:
    """The symmetric matrix nearest to ``S`` (Frobenius) with eigenvalues ``>= floor``.

    ``S`` is symmetrised, decomposed with ``eigh`` and its eigenvalues are clipped at ``floor``.
    """
    A = np.asarray(S, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"S must be a square matrix; got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError("S contains NaN or infinite values")
    if not math.isfinite(floor) or floor < 0:
        raise ValueError(f"floor must be finite and >= 0; got {floor}")
    A = symmetrize(A)
    evals, V = np.linalg.eigh(A)
    if evals[0] >= floor:
        return A
    return symmetrize((V * np.maximum(evals, floor)) @ V.T)


def _repair_relative(S: np.ndarray, rel: float, where: str) -> np.ndarray:
    """Scale-free PSD repair: eigenvalues of the *correlation* matrix are clipped at ``rel``.

    Working in correlation units keeps the floor meaningful when features have very different scales (a
    floor relative to the largest eigenvalue would inflate the variance of every small-scale feature). A
    matrix whose correlation eigenvalues are all ``>= rel`` is returned unchanged (symmetrised). Without a
    positive diagonal, the floor is ``rel`` times the largest eigenvalue.
    """
    S = symmetrize(np.asarray(S, dtype=np.float64))
    diag = np.diag(S)
    if np.all(diag > 0):
        s = np.sqrt(diag)
        return psd_repair(S / np.outer(s, s), rel) * np.outer(s, s)
    top = float(np.linalg.eigvalsh(S)[-1])
    if top <= 0:
        raise ValueError(
            f"the estimated covariance of {where} has no positive eigenvalue: too few rows for this epsilon "
            "(see docs/privacy.md for the sample size a given epsilon needs)"
        )
    return psd_repair(S, rel * top)


# ------------------------------------------------------------------------------------ statistics
@dataclass(frozen=True, eq=False)
class CellStatistics:
    """Sufficient statistics per (group, class) cell: totals of weight, of ``x`` and of ``x x^T``.

    ``counts`` ``(k, m)``, ``sums`` ``(k, m, d)``, ``outers`` ``(k, m, d, d)``, all float64. They add up
    over disjoint data (``+``). From privatised reports they are the unbiased channel-inversion
    estimates (and may hold negative counts or indefinite second moments at small epsilon).
    """

    groups: np.ndarray
    classes: np.ndarray
    counts: np.ndarray
    sums: np.ndarray
    outers: np.ndarray

    def __post_init__(self) -> None:
        k, m = len(self.groups), len(self.classes)
        counts = np.asarray(self.counts, dtype=np.float64)
        sums = np.asarray(self.sums, dtype=np.float64)
        outers = np.asarray(self.outers, dtype=np.float64)
        if counts.shape != (k, m) or sums.ndim != 3 or sums.shape[:2] != (k, m):
            raise ValueError(f"counts must be ({k}, {m}) and sums ({k}, {m}, d); got {counts.shape}, {sums.shape}")
        d = sums.shape[2]
        if outers.shape != (k, m, d, d):
            raise ValueError(f"outers must have shape ({k}, {m}, {d}, {d}); got {outers.shape}")
        for name, val in (("counts", counts), ("sums", sums), ("outers", outers)):
            if not np.all(np.isfinite(val)):
                raise ValueError(f"{name} contains NaN or infinite values")
            object.__setattr__(self, name, val)
        object.__setattr__(self, "groups", np.asarray(self.groups))
        object.__setattr__(self, "classes", np.asarray(self.classes))

    @property
    def dim(self) -> int:
        """Feature dimension ``d``."""
        return int(self.sums.shape[2])

    def __add__(self, other: CellStatistics) -> CellStatistics:
        if not isinstance(other, CellStatistics):
            return NotImplemented
        if not (np.array_equal(self.groups, other.groups) and np.array_equal(self.classes, other.classes)):
            raise ValueError("cannot add statistics with different groups or classes")
        return CellStatistics(
            self.groups, self.classes, self.counts + other.counts, self.sums + other.sums, self.outers + other.outers
        )

    def means(self) -> np.ndarray:
        """Cell means ``sums / counts``, shape ``(k, m, d)``."""
        self._check_counts(0.0)
        return self.sums / self.counts[..., None]

    def covariances(self, psd_floor: float | None = PSD_FLOOR) -> np.ndarray:
        """Cell covariances ``outers / counts - mean mean^T`` (symmetrised), shape ``(k, m, d, d)``.

        With ``psd_floor`` (default) each is repaired so that its correlation matrix has eigenvalues
        ``>= psd_floor`` (eigenvalue clipping, :func:`psd_repair`, in correlation units so that the floor does
        not depend on the features' scales); ``None`` returns the raw (possibly indefinite) estimate.
        """
        mu = self.means()
        covs = self.outers / self.counts[..., None, None] - mu[..., :, None] * mu[..., None, :]
        covs = 0.5 * (covs + np.swapaxes(covs, -1, -2))
        if psd_floor is None:
            return covs
        out = np.empty_like(covs)
        for a in range(covs.shape[0]):
            for i in range(covs.shape[1]):
                out[a, i] = _repair_relative(covs[a, i], psd_floor, f"cell ({self.groups[a]!r}, {self.classes[i]!r})")
        return out

    def _check_counts(self, min_samples: float) -> None:
        bad = np.argwhere(~(self.counts >= max(min_samples, np.finfo(float).tiny)))
        if bad.size:
            a, i = bad[0]
            raise ValueError(
                f"the (estimated) count of cell (group={self.groups[a]!r}, class={self.classes[i]!r}) is "
                f"{self.counts[a, i]:.3g} < {max(min_samples, 0)}: too few rows for this epsilon "
                "(see docs/privacy.md for the sample size a given epsilon needs)"
            )

    def to_model(
        self,
        family: Family = "normal",
        *,
        shrinkage: Shrinkage = None,
        reg: float | Literal["auto"] | None = "auto",
        min_samples: float = 2,
        psd_floor: float = PSD_FLOOR,
    ) -> GroupConditionalModel:
        """A :class:`GroupConditionalModel` (via ``from_moments``) with PSD-repaired covariances.

        For ``family="lognormal"`` the statistics must be of ``log x``. ``shrinkage`` is ``None``,
        ``"oas"`` or a float (``"ledoit_wolf"`` needs rows).
        """
        self._check_counts(min_samples)
        return GroupConditionalModel.from_moments(
            list(self.groups),
            list(self.classes),
            self.counts,
            self.means(),
            self.covariances(psd_floor),
            family,
            shrinkage=shrinkage,
            reg=reg,
            min_samples=0,
        )


def _working_space(X: Any, family: str, min_rows: int) -> np.ndarray:
    """``X`` as a validated matrix in the model's working space (``log X`` for ``family="lognormal"``)."""
    if family not in ("normal", "lognormal"):
        raise ValueError(f"unknown family {family!r}; use 'normal' or 'lognormal'")
    X = as_matrix(X, "X", min_rows=min_rows)
    if family == "lognormal":
        if np.any(X <= 0):
            raise ValueError("family='lognormal' needs X > 0")
        return np.log(X)
    return X


def cell_statistics(
    X: Any,
    membership: Any,
    label_membership: Any,
    *,
    groups: Sequence[Any],
    classes: Sequence[Any],
    weights: Any = None,
) -> CellStatistics:
    """Weighted totals per cell with row weights ``w_j G_ja H_ji`` (any signs allowed in ``G``, ``H``).

    Args:
        X: rows ``(n, d)``.
        membership: ``(n, k)`` group membership ``G`` (one-hot, probabilities or de-biased weights).
        label_membership: ``(n, m)`` class membership ``H``.
        groups, classes: labels of the columns of ``G`` and ``H``.
        weights: optional non-negative row weights ``w``.
    """
    X = as_matrix(X, "X")
    n = X.shape[0]
    G = np.asarray(membership, dtype=np.float64)
    H = np.asarray(label_membership, dtype=np.float64)
    k, m = len(groups), len(classes)
    if G.shape != (n, k) or H.shape != (n, m):
        raise ValueError(f"membership must be ({n}, {k}) and label_membership ({n}, {m}); got {G.shape}, {H.shape}")
    if not (np.all(np.isfinite(G)) and np.all(np.isfinite(H))):
        raise ValueError("membership matrices contain NaN or infinite values")
    w = _row_weights(weights, n)
    d = X.shape[1]
    counts = np.zeros((k, m))
    sums = np.zeros((k, m, d))
    outers = np.zeros((k, m, d, d))
    for a in range(k):
        for i in range(m):
            cw = w * G[:, a] * H[:, i]
            rows = np.nonzero(cw)[0]
            Xs, c = X[rows], cw[rows]
            counts[a, i] = c.sum()
            sums[a, i] = c @ Xs
            outers[a, i] = symmetrize((Xs * c[:, None]).T @ Xs)
    return CellStatistics(np.asarray(groups), np.asarray(classes), counts, sums, outers)


def _label_membership(
    y: Any, n: int, label_epsilon: float | None, label_categories: Sequence[Any] | None
) -> tuple[np.ndarray, np.ndarray]:
    if label_epsilon is None:
        y = as_labels(y, "y", n)
        if label_categories is None:
            clabels, ci = np.unique(y, return_inverse=True)
        else:
            ci, clabels = encode_categories(y, label_categories, name="y")
        H = np.zeros((n, len(clabels)))
        H[np.arange(n), ci] = 1.0
        return H, clabels
    H, clabels = debiased_membership(as_labels(y, "y", n), label_epsilon, categories=label_categories)
    return H, clabels


def ldp_statistics(
    X: Any,
    y: Any,
    reports: Any,
    epsilon: float,
    *,
    categories: Sequence[Any] | None = None,
    n_categories: int | None = None,
    label_epsilon: float | None = None,
    label_categories: Sequence[Any] | None = None,
    weights: Any = None,
) -> CellStatistics:
    """Unbiased per-(group, class) totals from group reports privatised with ``epsilon``.

    ``E[counts[a, i]] = #{j : a_j = a, y_j = i}`` (weighted), ``E[sums] = sum 1[.] x_j`` and
    ``E[outers] = sum 1[.] x_j x_j^T``, the expectation taken over the randomisation (conditional on the
    data). With ``label_epsilon`` the labels ``y`` are privatised reports too (an independent channel).

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
    G, glabels = debiased_membership(reports, epsilon, n_categories, categories=categories)
    if G.shape[0] != X.shape[0]:
        raise ValueError(f"reports has {G.shape[0]} entries but X has {X.shape[0]} rows")
    H, clabels = _label_membership(y, X.shape[0], label_epsilon, label_categories)
    return cell_statistics(X, G, H, groups=glabels, classes=clabels, weights=weights)


def _inverse_channel_axis(T: np.ndarray, epsilon: float, axis: int) -> np.ndarray:
    k = T.shape[axis]
    p, q = rr_probabilities(epsilon, k)
    if math.isinf(epsilon):
        return T.copy()
    total = T.sum(axis=axis, keepdims=True)
    return (T - q * total) / (p - q)  # (C^{-1})^T T with C^{-1} = (I - q 1 1^T) / (p - q)


def debias_statistics(stats: CellStatistics, epsilon: float, label_epsilon: float | None = None) -> CellStatistics:
    """Turn totals aggregated by *reported* group (and label) into unbiased totals by true group.

    For statistics accumulated with the privatised values as cell keys (e.g. :class:`steerfair.llm.ActivationStats`
    collected with randomised groups, see :func:`activation_statistics`): ``E[T_reported] = C^T T_true``,
    so ``T_true`` is estimated by ``(C^{-1})^T T_reported`` along the group axis (and the label axis for
    ``label_epsilon``). Equal to :func:`ldp_statistics` on the same rows up to rounding.
    """
    eps = check_epsilon(epsilon)
    out = [stats.counts, stats.sums, stats.outers]
    out = [_inverse_channel_axis(t, eps, 0) for t in out]
    if label_epsilon is not None:
        leps = check_epsilon(label_epsilon, "label_epsilon")
        out = [_inverse_channel_axis(t, leps, 1) for t in out]
    return CellStatistics(stats.groups, stats.classes, *out)


def activation_statistics(stats: Any, layer: int) -> CellStatistics:
    """The :class:`CellStatistics` of one layer of a :class:`steerfair.llm.ActivationStats` (labelled)."""
    if getattr(stats, "labels", None) is None:
        raise ValueError("activation_statistics needs labelled ActivationStats")
    li = stats._layer_index(layer)
    return CellStatistics(
        np.asarray(stats.groups),
        np.asarray(stats.labels),
        stats.counts[li].numpy(),
        stats.sums[li].numpy(),
        stats.outer[li].numpy(),
    )


# ------------------------------------------------------------------------------------------ fitting
def _signed_gaussian(
    Z: np.ndarray,
    cw: np.ndarray,
    shrinkage: Shrinkage,
    reg: float | Literal["auto"] | None,
    psd_floor: float,
    where: str,
) -> Gaussian:
    """Gaussian fit with signed row weights (centred moments; PSD repair of the covariance)."""
    total = float(cw.sum())
    if total <= 0:
        raise ValueError(f"the estimated weight of {where} is {total:.3g} <= 0: too few rows for this epsilon")
    p = cw / total
    n_eff = 1.0 / float(np.sum(p**2))
    if n_eff < 2.0 - 1e-9:
        raise ValueError(f"need at least 2 (effective) samples in {where}; got {n_eff:.3g}")
    mean = p @ Z
    Xc = Z - mean
    cov = _repair_relative(symmetrize((Xc * p[:, None]).T @ Xc), psd_floor, where)
    cov = shrink_cov(cov, Xc, p, shrinkage, n_eff)
    return Gaussian(mean, _regularise(cov, reg))


def fit_private_model(
    X: Any,
    y: Any,
    reports: Any,
    epsilon: float,
    family: Family = "normal",
    *,
    categories: Sequence[Any] | None = None,
    n_categories: int | None = None,
    label_epsilon: float | None = None,
    label_categories: Sequence[Any] | None = None,
    weights: Any = None,
    shrinkage: Shrinkage = None,
    reg: float | Literal["auto"] | None = "auto",
    min_samples: float = 2,
    psd_floor: float = PSD_FLOOR,
) -> GroupConditionalModel:
    """Fit a :class:`GroupConditionalModel` from group reports privatised with ``epsilon``.

    Priors come from the de-biased cell totals, components from the de-biased (signed-weight, centred)
    moments with PSD repair; cells with only non-negative weights are fitted exactly as
    :meth:`GroupConditionalModel.fit` does, so ``epsilon = inf`` reproduces the non-private fit bit for bit.

    Args:
        X, y, reports, epsilon: data, labels, privatised groups and their privacy level.
        family: ``"normal"`` or ``"lognormal"`` (then ``X > 0`` and the model is of ``log X``).
        categories, n_categories: the group domain (default: the sorted reported values).
        label_epsilon, label_categories: the labels were privatised too (independent channel).
        weights: optional non-negative row weights.
        shrinkage, reg: per-cell covariance estimation, as in :meth:`Gaussian.fit`.
        min_samples: the smallest (estimated) cell count accepted.
        psd_floor: eigenvalue floor of the repair, in correlation units (see :meth:`CellStatistics.covariances`).

    Raises:
        ValueError: for invalid privacy levels, or a cell whose estimated count is below ``min_samples``
            (too few rows for this epsilon).
    """
    Z = _working_space(X, family, min_rows=2)
    n = Z.shape[0]
    G, glabels = debiased_membership(reports, epsilon, n_categories, categories=categories)
    if G.shape[0] != n:
        raise ValueError(f"reports has {G.shape[0]} entries but X has {n} rows")
    H, clabels = _label_membership(y, n, label_epsilon, label_categories)
    w = _row_weights(weights, n)
    k, m = len(glabels), len(clabels)
    if m < 2:
        raise ValueError(f"y has a single class ({clabels[0]!r}); need at least 2 classes")
    counts = np.zeros((k, m))
    mass = np.zeros((k, m))
    for i in range(m):
        rows = H[:, i] != 0
        counts[:, i] = (G[rows] * H[rows, i, None]).sum(axis=0)
        mass[:, i] = (w[rows] * H[rows, i]) @ G[rows]
    if np.all((G == 0) | (G == 1)) and np.all((H == 0) | (H == 1)):
        counts = counts.astype(np.int64)
    low = np.argwhere(~(counts >= min_samples))
    if low.size:
        a, i = low[0]
        raise ValueError(
            f"the estimated count of cell (group={glabels[a]!r}, y={clabels[i]!r}) is {counts[a, i]:.3g} < "
            f"{min_samples}: too few rows for this epsilon (see docs/privacy.md for the sample size it needs)"
        )
    gp, cp = _cell_priors(
        mass, "a (group, class) cell has non-positive estimated weight: too few rows for this epsilon"
    )
    comps = []
    for a in range(k):
        row = []
        for i in range(m):
            sel = (H[:, i] != 0) & (G[:, a] != 0)
            cw = w[sel] * G[sel, a] * H[sel, i]
            if np.all(cw >= 0):
                row.append(Gaussian.fit(Z[sel], weights=cw, shrinkage=shrinkage, reg=reg))
            else:
                where = f"cell (group={glabels[a]!r}, y={clabels[i]!r})"
                row.append(_signed_gaussian(Z[sel], cw, shrinkage, reg, psd_floor, where))
        comps.append(tuple(row))
    return GroupConditionalModel(glabels, clabels, gp, cp, tuple(comps), family, counts)


def fit_private_steering(
    X: Any,
    y: Any,
    reports: Any,
    epsilon: float,
    criterion: str = "equal_opportunity",
    intervention: str = "all",
    **fit_kwargs: Any,
) -> Any:
    """:func:`steerfair.fit_steering` on :func:`fit_private_model` (``fit_kwargs`` go to the latter)."""
    from ..steering import fit_steering

    model = fit_private_model(X, y, reports, epsilon, **fit_kwargs)
    return fit_steering(model, criterion, intervention)  # type: ignore[arg-type]

"""Group/label-conditional models: priors ``P(A)``, ``P(Y | A)`` and class-conditionals ``X | Y, A``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.special import logsumexp

from .covariance import UNSET, CovarianceEstimator, ledoit_wolf_intensity
from .families import Gaussian, LogNormal
from .families.lognormal import to_log
from .membership import Membership
from .statistics import PSD_FLOOR, CellStatistics, row_weights
from .validation import (
    as_float_array,
    as_int,
    as_labels,
    as_matrix,
    as_unit_weight,
    check_counts,
    check_psd_stack,
    label_repr,
    reject_continuous_labels,
)

__all__ = ["GroupConditionalModel", "Family"]

#: The distribution family of ``X | Y, A``: normal or log-normal.
Family = Literal["normal", "lognormal"]
_FAMILIES = ("normal", "lognormal")


def _check_family(family: str) -> str:
    if family not in _FAMILIES:
        raise ValueError(f"unknown family {family!r}; use one of {_FAMILIES}")
    return family


@dataclass(frozen=True, eq=False)
class GroupConditionalModel:
    """Joint model of ``(X, Y, A)``: ``A ~ group_priors``, ``Y | A=a ~ class_priors[a]``,
    ``X | Y=i, A=a ~ components[a][i]``.

    ``components`` hold the *underlying normals*: for ``family="lognormal"`` they are the
    distributions of ``log X``. Rows of ``class_priors`` are ``P(Y = i | A = a)`` (the paper's
    ``q_{ia}``; its ratio conditions are the same for the joint ``P(Y=i, A=a)``).
    """

    groups: np.ndarray
    classes: np.ndarray
    group_priors: np.ndarray
    class_priors: np.ndarray
    components: tuple[tuple[Gaussian, ...], ...]
    family: Family = "normal"
    counts: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        _check_family(self.family)
        groups = np.asarray(self.groups)
        classes = np.asarray(self.classes)
        k, m = len(groups), len(classes)
        if k < 2:
            raise ValueError(f"need at least 2 groups; got {k}")
        if m < 2:
            raise ValueError(f"need at least 2 classes; got {m}")
        if len(set(groups.tolist())) != k or len(set(classes.tolist())) != m:
            raise ValueError("group and class labels must be distinct")
        # labels that fit() and every argument naming a group (reference=, groups=) accept: no 1.5 as a label
        reject_continuous_labels(groups, "groups", "use names or integer codes as group labels")
        reject_continuous_labels(classes, "classes", "use names or integer codes as class labels")
        gp = as_float_array(self.group_priors, "group_priors", shape=(k,))
        cp = as_float_array(self.class_priors, "class_priors", shape=(k, m))
        for name, val in (("group_priors", gp), ("class_priors", cp)):
            if np.any(val <= 0):
                raise ValueError(f"{name} must be strictly positive (every group and every (group, class) cell)")
        if abs(gp.sum() - 1) > 1e-9:
            raise ValueError(f"group_priors must sum to 1; sums to {gp.sum():.6g} (normalise them)")
        if np.any(np.abs(cp.sum(axis=1) - 1) > 1e-9):
            raise ValueError("each row of class_priors must sum to 1 (normalise them per group)")
        comps = tuple(tuple(row) for row in self.components)
        if len(comps) != k or any(len(row) != m for row in comps):
            raise ValueError(f"components must be a {k} x {m} grid (groups x classes)")
        if not all(isinstance(c, Gaussian) for row in comps for c in row):
            raise ValueError("components must be Gaussians (underlying normals) of one dimension")
        if len({c.dim for row in comps for c in row}) != 1:
            raise ValueError("components must be Gaussians (underlying normals) of one dimension")
        if self.counts is not None:  # the cell sizes behind the priors: one finite number per cell
            as_float_array(self.counts, "counts", shape=(k, m))
            object.__setattr__(self, "counts", np.array(self.counts, copy=True))
            self.counts.setflags(write=False)
        for name, val in (("groups", groups), ("classes", classes), ("group_priors", gp), ("class_priors", cp)):
            val = np.array(val, copy=True)
            val.setflags(write=False)
            object.__setattr__(self, name, val)
        object.__setattr__(self, "components", comps)

    # ------------------------------------------------------------ properties
    @property
    def dim(self) -> int:
        """Feature dimension."""
        return self.components[0][0].dim

    @property
    def n_groups(self) -> int:
        """Number of groups ``k``."""
        return len(self.groups)

    @property
    def n_classes(self) -> int:
        """Number of classes ``m``."""
        return len(self.classes)

    @property
    def joint(self) -> np.ndarray:
        """``P(A=a, Y=i)`` as a ``(k, m)`` array."""
        return self.group_priors[:, None] * self.class_priors

    def distribution(self, a: int, i: int) -> Gaussian | LogNormal:
        """The class-conditional of group index ``a`` and class index ``i`` in its own family."""
        c = self.components[a][i]
        return LogNormal.from_normal(c) if self.family == "lognormal" else c

    def __repr__(self) -> str:
        return (
            f"GroupConditionalModel(family={self.family!r}, dim={self.dim}, "
            f"groups={self.groups.tolist()}, classes={self.classes.tolist()})"
        )

    # --------------------------------------------------------------- indices
    def group_index(self, values: Any, name: str = "groups") -> np.ndarray:
        """Map group labels to indices ``0..k-1``; unknown labels raise."""
        return _index(self.groups, values, name)

    def class_index(self, values: Any, name: str = "y") -> np.ndarray:
        """Map class labels to indices ``0..m-1``; unknown labels raise."""
        return _index(self.classes, values, name)

    def features(self, X: Any, name: str = "X") -> np.ndarray:
        """Validated features in the model's working space (``log X`` for log-normal)."""
        if self.family == "lognormal":
            return to_log(X, name, dim=self.dim)
        return as_matrix(X, name, dim=self.dim)

    # ---------------------------------------------------------------- fitting
    @classmethod
    def fit(
        cls,
        X: Any,
        y: Any,
        groups: Any,
        family: Family = "normal",
        *,
        weights: Any = None,
        estimator: CovarianceEstimator | None = None,
        shrinkage: Any = UNSET,
        reg: Any = UNSET,
        min_samples: float = 2,
        group_labels: Sequence[Any] | None = None,
        psd_floor: float = PSD_FLOOR,
    ) -> GroupConditionalModel:
        """Fit priors and class-conditionals from arrays.

        Args:
            X: features ``(n, d)`` (strictly positive for ``family="lognormal"``).
            y: class labels ``(n,)`` (binary or multi-class), or a class
                :class:`~steerfair.membership.Membership` (e.g. de-biased weights of privatised labels).
            groups: group labels ``(n,)`` (``k >= 2`` groups), soft membership (an ``(n, k)`` array of group
                probabilities, rows summing to 1; ``group_labels`` names the columns, default ``0..k-1``), or a
                :class:`~steerfair.membership.Membership` (e.g. de-biased weights of privatised reports from
                :mod:`steerfair.privacy`). Each row contributes to every group's statistics with its weight;
                one-hot rows reproduce hard labels exactly.
            family: ``"normal"`` or ``"lognormal"``.
            weights: optional per-sample weights (priors and moments are weighted).
            estimator: the :class:`~steerfair.covariance.CovarianceEstimator` of every cell (default: maximum
                likelihood with ``reg="auto"``); ``shrinkage=`` / ``reg=`` build one (see :meth:`Gaussian.fit`).
            min_samples: the fewest samples (expected count for soft groups) allowed in a cell.
            group_labels: column labels for soft ``groups``.
            psd_floor: repair floor of cells estimated with signed (de-biased) weights.
        """
        est = CovarianceEstimator.of(estimator, shrinkage=shrinkage, reg=reg)
        _check_family(family)
        X = as_matrix(X, "X", min_rows=2)
        n = X.shape[0]
        Z = np.log(_positive(X)) if family == "lognormal" else X
        G = groups if isinstance(groups, Membership) else Membership.parse(groups, n, labels=group_labels)
        if G.n != n:
            raise ValueError(f"groups has {G.n} rows but X has {n} rows")
        H = y if isinstance(y, Membership) else Membership.parse(as_labels(y, "y", n), n, name="y", min_groups=1)
        if H.n != n:
            raise ValueError(f"y has {H.n} entries but X has {n} rows")
        stats = CellStatistics.from_rows(Z, G, H, weights)
        intensities = None
        if est.needs_rows:  # Ledoit-Wolf: the intensity needs the rows of each cell
            intensities = _row_intensities(Z, G, H, stats, weights, est)
        return cls.from_statistics(
            stats, family, est, min_samples=min_samples, intensities=intensities, psd_floor=psd_floor
        )

    @classmethod
    def from_statistics(
        cls,
        stats: CellStatistics,
        family: Family = "normal",
        estimator: CovarianceEstimator | None = None,
        *,
        min_samples: float = 2,
        intensities: np.ndarray | None = None,
        psd_floor: float = PSD_FLOOR,
    ) -> GroupConditionalModel:
        """The model of per-cell statistics: every model the library fits is built here.

        Priors are the cell weights (``P(A)`` and ``P(Y | A)``); every cell covariance goes through ``estimator``
        with the cell's effective sample size.

        Args:
            stats: the :class:`~steerfair.statistics.CellStatistics` (of ``log x`` for ``"lognormal"``).
            family: ``"normal"`` or ``"lognormal"``.
            estimator: the covariance estimator (``"ledoit_wolf"`` needs rows: pass ``intensities``).
            min_samples: the smallest (estimated) cell count accepted.
            intensities: ``(k, m)`` shrinkage intensities computed from rows (override the estimator's).
            psd_floor: the repair floor of cells estimated with signed weights.

        Raises:
            ValueError: a cell below ``min_samples``, with fewer than 2 effective samples, or without weight.
        """
        _check_family(family)
        est = CovarianceEstimator() if estimator is None else estimator
        if len(stats.classes) < 2:
            raise ValueError(f"y has a single class ({label_repr(stats.classes[0])}); need at least 2 classes")
        stats.check_counts(min_samples)
        if est.needs_rows and intensities is None:
            raise ValueError("shrinkage='ledoit_wolf' needs the rows; from statistics use 'oas' or a fixed intensity")
        gp, cp = _cell_priors(
            stats.counts,
            "a (group, class) cell has zero (or negative estimated) total weight: give every cell rows with positive "
            "weights (weights / sample_weight)",
        )
        n_eff = stats.effective_counts()
        covs = stats.covariances(psd_floor)
        k, m, _ = stats.shape
        comps = []
        for a in range(k):
            row = []
            for i in range(m):
                if n_eff[a, i] < 2.0 - 1e-9:
                    raise ValueError(
                        f"need at least 2 (effective) samples in {stats.cell_name(a, i)}; got {n_eff[a, i]:.3g}"
                    )
                alpha = None if intensities is None else float(intensities[a, i])
                cov = est.estimate(covs[a, i], float(n_eff[a, i]), intensity=alpha)
                row.append(Gaussian(stats.means[a, i], cov))
            comps.append(tuple(row))
        counts = stats.sizes
        if np.all(counts == np.round(counts)) and not np.any(stats.signed):
            counts = counts.astype(np.int64)
        return cls(stats.groups, stats.classes, gp, cp, tuple(comps), family, counts)

    @classmethod
    def from_moments(
        cls,
        groups: Sequence[Any],
        classes: Sequence[Any],
        counts: Any,
        means: Any,
        covs: Any,
        family: Family = "normal",
        *,
        estimator: CovarianceEstimator | None = None,
        shrinkage: Any = UNSET,
        reg: Any = UNSET,
        min_samples: int = 2,
    ) -> GroupConditionalModel:
        """Build a model from per-cell counts, means and maximum-likelihood covariances.

        Args:
            groups, classes: labels (``k`` and ``m`` of them).
            counts: ``(k, m)`` sample counts (or weights) per cell; they give the priors and the sample size.
            means: ``(k, m, d)`` cell means (of ``log X`` for log-normal).
            covs: ``(k, m, d, d)`` maximum-likelihood cell covariances.
            estimator, shrinkage, reg: as in :meth:`fit` (``"ledoit_wolf"`` needs samples and is not available
                here; ``"oas"`` uses the cell count as sample size).
        """
        est = CovarianceEstimator.of(estimator, shrinkage=shrinkage, reg=reg)
        _check_family(family)
        k, m = len(groups), len(classes)
        counts = check_counts(counts, "counts", shape=(k, m))
        means = as_float_array(means, "means", ndim=3)
        if means.shape[:2] != (k, m) or means.shape[2] < 1:
            raise ValueError(f"means must have shape ({k}, {m}, d) with d >= 1 (groups x classes x features); "
                             f"got {means.shape}")  # fmt: skip
        d = means.shape[2]
        covs = check_psd_stack(as_float_array(covs, "covs", shape=(k, m, d, d)), "covs")
        if est.needs_rows:
            raise ValueError("ledoit_wolf shrinkage needs samples; use 'oas' or a float with from_moments")
        signed = np.zeros(counts.shape, dtype=bool)
        stats = CellStatistics(groups, classes, counts, counts, means, covs, signed)  # validates the shapes
        # the counts are the sample sizes (as if unit weights): effective count = count
        return cls.from_statistics(stats, family, est, min_samples=min_samples)

    # --------------------------------------------------------------- sampling
    def sample(
        self, n: int, seed: int | np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw ``n`` i.i.d. samples ``(X, y, groups)`` (labels in the model's own label values)."""
        n = as_int(n, "n", low=0)
        rng = np.random.default_rng(seed)
        joint = self.joint.ravel()
        cells = rng.choice(joint.size, size=n, p=joint / joint.sum())
        X = np.empty((n, self.dim))
        for cell in np.unique(cells):
            a, i = divmod(int(cell), self.n_classes)
            sel = cells == cell
            X[sel] = self.components[a][i].sample(int(sel.sum()), rng)
        if self.family == "lognormal":
            X = np.exp(X)
        a_idx, i_idx = np.divmod(cells, self.n_classes)
        return X, self.classes[i_idx], self.groups[a_idx]

    # -------------------------------------------------------------- inference
    def log_joint(self, X: Any, groups: Any) -> np.ndarray:
        """``log p(x, y=i | a)`` for each row and class, shape ``(n, m)`` (working space density)."""
        Z = self.features(X)
        a = _index(self.groups, groups, "groups", Z.shape[0])
        out = np.empty((Z.shape[0], self.n_classes))
        for ga in np.unique(a):
            out[a == ga] = self.group_log_joint(Z[a == ga], int(ga))
        return out

    def group_log_joint(self, Z: np.ndarray, a: int) -> np.ndarray:
        """``log p(z, y=i | A=a)`` for rows ``Z`` already in the working space, all of group index ``a``."""
        return np.column_stack(
            [np.log(self.class_priors[a, i]) + self.components[a][i].logpdf(Z) for i in range(self.n_classes)]
        )

    def posterior(self, X: Any, groups: Any) -> np.ndarray:
        """``P(Y = i | X = x, A = a)`` for each row, shape ``(n, m)``."""
        lj = self.log_joint(X, groups)
        return np.exp(lj - logsumexp(lj, axis=1, keepdims=True))

    def class_posterior(self, Z: np.ndarray, a: int) -> np.ndarray:
        """``P(Y = i | z, A = a)`` for rows ``Z`` already in the working space, all of group index ``a`` (the
        group-aware class posterior used to move rows whose label is unknown)."""
        lj = self.group_log_joint(Z, a)
        return np.exp(lj - logsumexp(lj, axis=1, keepdims=True))

    # -------------------------------------------------------------- divergence
    def kl(self, other: GroupConditionalModel) -> float:
        """KL of the joint distributions of ``(X, Y, A)``: ``KL(self || other)``."""
        check_compatible(self, other)
        p, q = self.joint, other.joint
        total = float(np.sum(p * (np.log(p) - np.log(q))))
        for a in range(self.n_groups):
            for i in range(self.n_classes):
                total += p[a, i] * self.components[a][i].kl(other.components[a][i])
        return max(total, 0.0)  # a KL is >= 0; the sums above can round below it by an ulp

    def share_class_covariances(self, weight: float = 1.0) -> GroupConditionalModel:
        """A copy whose cell covariances lean toward their class's covariance pooled over groups.

        Every cell becomes ``S_ai <- (1 - weight) S_ai + weight * S_i`` with ``S_i = sum_a n_ai S_ai / sum_a n_ai``
        (``n_ai``: the cell counts, or the class priors times the group priors when the model has no counts);
        means and priors are kept. ``weight = 1`` gives every group the same covariance within each class, so
        the group differences that remain are the means: with tens to hundreds of rows per cell in hundreds of
        dimensions, the *differences* between the groups' shrunk cell covariances are mostly estimation noise
        (and shrinkage bias that depends on the cell size, which differs by group), and a steering map built
        from them moves the groups' rows differently for no reason in the data. ``weight = 0`` returns ``self``.
        """
        w = as_unit_weight(weight, "weight")
        if w == 0.0:
            return self
        n = np.asarray(self.counts, dtype=np.float64) if self.counts is not None else self.joint
        share = n / n.sum(axis=0, keepdims=True)  # (k, m): each group's share of class i
        comps: list[list[Gaussian]] = [[] for _ in range(self.n_groups)]
        for i in range(self.n_classes):
            pooled = sum(share[a, i] * self.components[a][i].cov for a in range(self.n_groups))
            first: Gaussian | None = None
            for a in range(self.n_groups):
                c = self.components[a][i]
                if w == 1.0 and first is not None:  # one covariance for every group: factorise it once
                    comps[a].append(Gaussian.from_cholesky(c.mean, first.cov, first.chol))
                    continue
                cov = pooled if w == 1.0 else (1.0 - w) * c.cov + w * pooled
                first = Gaussian(c.mean, 0.5 * (cov + cov.T))
                comps[a].append(first)
        return self.with_components(comps)

    def with_components(
        self,
        components: Sequence[Sequence[Gaussian]],
        class_priors: np.ndarray | None = None,
        group_priors: np.ndarray | None = None,
    ) -> GroupConditionalModel:
        """A copy with new components / priors (labels and family kept)."""
        return GroupConditionalModel(
            self.groups,
            self.classes,
            self.group_priors if group_priors is None else group_priors,
            self.class_priors if class_priors is None else class_priors,
            tuple(tuple(r) for r in components),
            self.family,
            self.counts,
        )


def check_compatible(p: GroupConditionalModel, q: GroupConditionalModel) -> None:
    """Raise unless two models share groups, classes, family and dimension."""
    if not isinstance(q, GroupConditionalModel):
        raise TypeError(f"expected a GroupConditionalModel; got {type(q).__name__}")
    if p.family != q.family:
        raise ValueError(f"family mismatch: {p.family} vs {q.family}")
    if p.dim != q.dim:
        raise ValueError(f"dimension mismatch: {p.dim} vs {q.dim}")
    if not (np.array_equal(p.groups, q.groups) and np.array_equal(p.classes, q.classes)):
        raise ValueError("models have different groups or classes")


def _cell_priors(mass: np.ndarray, message: str) -> tuple[np.ndarray, np.ndarray]:
    """Group priors ``(k,)`` and per-group class priors ``(k, m)`` from the ``(k, m)`` cell weights
    ``mass``; ``ValueError(message)`` unless every cell weight is positive."""
    if np.any(mass <= 0):
        raise ValueError(message)
    return mass.sum(axis=1) / mass.sum(), mass / mass.sum(axis=1, keepdims=True)


def _positive(X: np.ndarray) -> np.ndarray:
    if np.any(X <= 0):
        raise ValueError(f"X has {int(np.count_nonzero(X <= 0))} non-positive value(s); family='lognormal' needs X > 0")
    return X


def _index(labels: np.ndarray, values: Any, name: str, n: int | None = None) -> np.ndarray:
    """Column indices of ``values`` among the fitted ``labels`` (read through :class:`Membership`): 1-D labels or
    one-hot rows of a probability matrix; ``n``: the number of rows they must have."""
    membership = Membership.align(values, labels, n, name=name)
    if not membership.is_hard:
        raise ValueError(
            f"{name} must be labels or one-hot rows; soft memberships of shape {membership.weights.shape} need "
            "the per-group results mixed with their weights"
        )
    return membership.indices()


def _row_intensities(
    Z: np.ndarray, G: Membership, H: Membership, stats: CellStatistics, weights: Any, est: CovarianceEstimator
) -> np.ndarray:
    """Ledoit-Wolf intensities per cell from the rows (the one estimator that needs more than moments)."""
    w = row_weights(weights, Z.shape[0])
    out = np.zeros(stats.counts.shape)
    for a in range(G.k):
        for i in range(H.k):
            cw = w * G.weights[:, a] * H.weights[:, i]
            rows = np.flatnonzero(cw)
            if rows.size == 0 or cw[rows].sum() <= 0:
                continue
            p = cw[rows] / cw[rows].sum()
            out[a, i] = ledoit_wolf_intensity(stats.covs[a, i], Z[rows] - stats.means[a, i], p)
    return out

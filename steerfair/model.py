"""Group/label-conditional models: priors ``P(A)``, ``P(Y | A)`` and class-conditionals ``X | Y, A``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.special import logsumexp

from .families import Gaussian, LogNormal
from .families.gaussian import Shrinkage
from .families.lognormal import to_log
from .validation import as_labels, as_matrix, as_unit_weight

__all__ = ["GroupConditionalModel", "Family"]

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
        gp = np.asarray(self.group_priors, dtype=np.float64)
        cp = np.asarray(self.class_priors, dtype=np.float64)
        if gp.shape != (k,) or cp.shape != (k, m):
            raise ValueError(f"priors must have shapes ({k},) and ({k}, {m}); got {gp.shape} and {cp.shape}")
        if np.any(gp <= 0) or np.any(cp <= 0) or not np.all(np.isfinite(cp)):
            raise ValueError("priors must be strictly positive (every group and every (group, class) cell)")
        if abs(gp.sum() - 1) > 1e-9 or np.any(np.abs(cp.sum(axis=1) - 1) > 1e-9):
            raise ValueError("group_priors and each row of class_priors must sum to 1")
        comps = tuple(tuple(row) for row in self.components)
        if len(comps) != k or any(len(row) != m for row in comps):
            raise ValueError(f"components must be a {k} x {m} grid (groups x classes)")
        dims = {c.dim for row in comps for c in row}
        if len(dims) != 1 or not all(isinstance(c, Gaussian) for row in comps for c in row):
            raise ValueError("components must be Gaussians (underlying normals) of one dimension")
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
        shrinkage: Shrinkage = None,
        reg: float | Literal["auto"] | None = "auto",
        min_samples: int = 2,
        group_labels: Sequence[Any] | None = None,
    ) -> GroupConditionalModel:
        """Fit priors and class-conditionals from arrays.

        Args:
            X: features ``(n, d)`` (strictly positive for ``family="lognormal"``).
            y: class labels ``(n,)`` (binary or multi-class).
            groups: group labels ``(n,)`` (``k >= 2`` groups), or soft membership: an ``(n, k)`` array of
                group probabilities (rows sum to 1; then ``group_labels`` names the columns, default
                ``0..k-1``). Each row then contributes to every group's statistics with weight
                ``P(A = a | row)``; one-hot rows reproduce hard labels exactly.
            family: ``"normal"`` or ``"lognormal"``.
            weights: optional per-sample weights (priors and moments are weighted).
            shrinkage, reg: see :meth:`Gaussian.fit`.
            min_samples: the fewest samples (expected count for soft groups) allowed in a cell.
            group_labels: column labels for soft ``groups``.
        """
        _check_family(family)
        X = as_matrix(X, "X", min_rows=2)
        n = X.shape[0]
        Z = np.log(_positive(X)) if family == "lognormal" else X
        y = as_labels(y, "y", n)
        glabels, G = _membership(groups, n, group_labels)
        w = _row_weights(weights, n)
        clabels, ci = np.unique(y, return_inverse=True)
        k, m = len(glabels), len(clabels)
        if m < 2:
            raise ValueError(f"y has a single class ({clabels[0]!r}); need at least 2 classes")
        counts = np.zeros((k, m))
        for i in range(m):
            counts[:, i] = G[ci == i].sum(axis=0)
        if np.all((G == 0) | (G == 1)):
            counts = counts.astype(np.int64)
        small = [
            (glabels[a], clabels[i], counts[a, i]) for a in range(k) for i in range(m) if counts[a, i] < min_samples
        ]
        if small:
            desc = ", ".join(f"(group={a!r}, y={i!r}): {c}" for a, i, c in small[:5])
            raise ValueError(f"too few samples in (group, class) cell(s) (need >= {min_samples}): {desc}")
        mass = np.zeros((k, m))
        for i in range(m):
            mass[:, i] = w[ci == i] @ G[ci == i]
        gp, cp = _cell_priors(mass, "a (group, class) cell has zero total weight")
        comps = []
        for a in range(k):
            row = []
            for i in range(m):
                sel = (ci == i) & (G[:, a] > 0)
                row.append(Gaussian.fit(Z[sel], weights=w[sel] * G[sel, a], shrinkage=shrinkage, reg=reg))
            comps.append(tuple(row))
        return cls(glabels, clabels, gp, cp, tuple(comps), family, counts)

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
        shrinkage: Shrinkage = None,
        reg: float | Literal["auto"] | None = "auto",
        min_samples: int = 2,
    ) -> GroupConditionalModel:
        """Build a model from sufficient statistics (e.g. streamed activation statistics).

        Args:
            groups, classes: labels (``k`` and ``m`` of them).
            counts: ``(k, m)`` sample counts (or weights) per cell; they give the priors.
            means: ``(k, m, d)`` cell means (of ``log X`` for log-normal).
            covs: ``(k, m, d, d)`` maximum-likelihood cell covariances.
            shrinkage, reg: as in :meth:`Gaussian.fit` (``"ledoit_wolf"`` needs samples and is
                not available here; ``"oas"`` uses the cell count as sample size).
        """
        _check_family(family)
        from .families.gaussian import _regularise, shrink_cov

        counts = np.asarray(counts, dtype=np.float64)
        means = np.asarray(means, dtype=np.float64)
        covs = np.asarray(covs, dtype=np.float64)
        k, m = len(groups), len(classes)
        if counts.shape != (k, m):
            raise ValueError(f"counts must have shape ({k}, {m}); got {counts.shape}")
        if means.ndim != 3 or means.shape[:2] != (k, m):
            raise ValueError(f"means must have shape ({k}, {m}, d); got {means.shape}")
        d = means.shape[2]
        if covs.shape != (k, m, d, d):
            raise ValueError(f"covs must have shape ({k}, {m}, {d}, {d}); got {covs.shape}")
        if np.any(counts < min_samples):
            a, i = np.argwhere(counts < min_samples)[0]
            raise ValueError(
                f"too few samples in cell (group={groups[a]!r}, class={classes[i]!r}): {counts[a, i]:g} < {min_samples}"
            )
        if shrinkage == "ledoit_wolf":
            raise ValueError("ledoit_wolf shrinkage needs samples; use 'oas' or a float with from_moments")
        comps = []
        for a in range(k):
            row = []
            for i in range(m):
                S = 0.5 * (covs[a, i] + covs[a, i].T)
                S = shrink_cov(S, None, None, shrinkage, float(counts[a, i]))
                row.append(Gaussian(means[a, i], _regularise(S, reg)))
            comps.append(tuple(row))
        gp = counts.sum(axis=1) / counts.sum()
        cp = counts / counts.sum(axis=1, keepdims=True)
        return cls(np.asarray(groups), np.asarray(classes), gp, cp, tuple(comps), family, counts)

    # --------------------------------------------------------------- sampling
    def sample(
        self, n: int, seed: int | np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Draw ``n`` i.i.d. samples ``(X, y, groups)`` (labels in the model's own label values)."""
        rng = np.random.default_rng(seed)
        n = int(n)
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
        a = self.group_index(groups)
        out = np.empty((Z.shape[0], self.n_classes))
        for ga in np.unique(a):
            sel = a == ga
            for i in range(self.n_classes):
                out[sel, i] = np.log(self.class_priors[ga, i]) + self.components[ga][i].logpdf(Z[sel])
        return out

    def posterior(self, X: Any, groups: Any) -> np.ndarray:
        """``P(Y = i | X = x, A = a)`` for each row, shape ``(n, m)``."""
        lj = self.log_joint(X, groups)
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
        return total

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
                    comps[a].append(Gaussian._trusted(c.mean, first.cov, first._chol))
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


def _membership(groups: Any, n: int, labels: Sequence[Any] | None) -> tuple[np.ndarray, np.ndarray]:
    """Group labels and an ``(n, k)`` membership matrix from hard labels or probabilities."""
    arr = np.asarray(groups.to_numpy() if hasattr(groups, "to_numpy") else groups)
    if arr.ndim == 2 and arr.dtype.kind in "fiu":
        P = arr.astype(np.float64)
        if P.shape[0] != n:
            raise ValueError(f"groups has {P.shape[0]} rows but X has {n} rows")
        if not np.all(np.isfinite(P)) or np.any(P < 0) or np.any(np.abs(P.sum(axis=1) - 1) > 1e-6):
            raise ValueError("group probabilities must be finite, non-negative, and each row must sum to 1")
        glabels = np.arange(P.shape[1]) if labels is None else np.asarray(labels)
        if len(glabels) != P.shape[1]:
            raise ValueError(f"group_labels has {len(glabels)} entries for {P.shape[1]} probability columns")
        if P.shape[1] < 2:
            raise ValueError("need at least 2 groups")
        return glabels, P
    g = as_labels(arr, "groups", n)
    glabels, gi = np.unique(g, return_inverse=True)
    if len(glabels) < 2:
        raise ValueError(f"groups has a single value ({glabels[0]!r}); need at least 2 groups")
    P = np.zeros((n, len(glabels)))
    P[np.arange(n), gi] = 1.0
    return glabels, P


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


def _row_weights(weights: Any, n: int) -> np.ndarray:
    """Per-row weights (default all ones), validated: finite, non-negative, one per row."""
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (n,) or np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite, non-negative and one per row of X")
    return w


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


def _index(labels: np.ndarray, values: Any, name: str) -> np.ndarray:
    vals = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
    if vals.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {vals.shape}")
    lookup = {v: j for j, v in enumerate(labels.tolist())}
    try:
        return np.fromiter((lookup[v] for v in vals.tolist()), dtype=np.int64, count=len(vals))
    except KeyError as exc:
        raise ValueError(
            f"{name} contains {exc.args[0]!r}, which was not seen at fit time (known: {labels.tolist()})"
        ) from None

"""A Gaussian-copula front end for table columns: randomised probability-integral transform to normal scores and back.

Real columns are not Gaussian: one-hot indicators, ordinal codes and counts have atoms (repeated values), and a map
that moves an atom to a new, group- or class-specific value leaves an artefact a tree can read. The copula works per
column with the pooled empirical distribution of the training rows:

* **continuous columns** (every training value distinct): the normal score is the piecewise-linear interpolation of
  ``(x_(j), Phi^{-1}(p_j))`` through the sorted training values (``p_j`` the midpoint of the value's CDF interval),
  extended linearly beyond the ends: a strictly increasing bijection of the real line, inverted exactly;
* **columns with atoms**: a value ``v`` becomes ``u ~ Uniform(F(v-), F(v))`` (the randomised probability-integral
  transform; ties are jittered uniformly within their atom's CDF interval with the caller's random generator), then
  ``z = Phi^{-1}(u)``, which is exactly standard normal on the training rows; back, ``z`` goes to the value whose CDF
  interval holds ``Phi(z)`` (the empirical quantile function), so steered values land on training atoms: a one-hot
  column stays 0/1, a count stays a count.

The same pooled transform is used for every group in both directions, so it is a fixed change of coordinates: it
cannot create a group or class difference, and any law that is equal across groups in normal-score space is equal
across groups after the way back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from .membership import Membership
from .validation import as_matrix

__all__ = ["U_FLOOR", "ColumnMarginal", "GaussianCopula", "draw_groups", "onehot_blocks"]

#: Uniform scores are clipped to ``[U_FLOOR, 1 - U_FLOOR]`` before ``Phi^{-1}`` (unseen values beyond the range).
U_FLOOR = 1e-12


@dataclass(frozen=True, eq=False)
class ColumnMarginal:
    """The empirical marginal of one column.

    Attributes:
        values: sorted distinct training values ``(K,)``.
        cdf: ``(K + 1,)`` cumulative probabilities ``0 = c_0 < ... < c_K = 1``; value ``j`` owns ``(c_j, c_{j+1}]``.
        continuous: every training value occurs once (deterministic, exactly invertible normal scores).
        scores: ``(K,)`` normal scores of the values at the midpoints of their CDF intervals.
    """

    values: np.ndarray
    cdf: np.ndarray
    continuous: bool
    scores: np.ndarray = field(repr=False)

    @classmethod
    def fit(cls, x: np.ndarray, weights: np.ndarray | None = None) -> ColumnMarginal:
        """The empirical marginal of the column ``x`` (optionally weighted; rows of zero weight are left out)."""
        if weights is not None:
            x, weights = x[weights > 0], weights[weights > 0]
        if x.size == 0:
            raise ValueError("a column marginal needs at least one row of positive weight")
        values, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
        w = counts.astype(np.float64) if weights is None else np.bincount(inverse, weights=weights)
        cdf = np.concatenate([[0.0], np.cumsum(w) / np.sum(w)])
        cdf[-1] = 1.0
        scores = ndtri(0.5 * (cdf[:-1] + cdf[1:]))
        return cls(values, cdf, bool(np.all(counts == 1) and values.size >= 2), scores)

    def to_normal(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Normal scores of ``x`` (randomised within atoms)."""
        if self.continuous:
            return _interp_linear_ends(x, self.values, self.scores)
        lo = self.cdf[np.searchsorted(self.values, x, side="left")]
        hi = self.cdf[np.searchsorted(self.values, x, side="right")]
        u = lo + rng.random(x.shape[0]) * (hi - lo)
        # keep u inside (0, 1) (|z| <= 7), but inside the row's own interval: an extreme value whose weight share is
        # below U_FLOOR (possible with weights) was clipped into its neighbour's interval and came back as it
        # (a value outside the training range has an empty interval at 0 or 1: it takes the floor, |z| = 7.03)
        mid = 0.5 * (lo + hi)
        floor = np.where(mid > 0.0, np.minimum(U_FLOOR, mid), U_FLOOR)
        ceiling = np.where(mid < 1.0, np.maximum(1.0 - U_FLOOR, mid), 1.0 - U_FLOOR)
        return ndtri(np.clip(u, floor, ceiling))

    def from_normal(self, z: np.ndarray) -> np.ndarray:
        """Values of normal scores ``z`` (the inverse of :meth:`to_normal`; the empirical quantile for atoms)."""
        if self.continuous:
            return _interp_linear_ends(z, self.scores, self.values)
        j = np.searchsorted(self.cdf, ndtr(z), side="left") - 1
        return self.values[np.clip(j, 0, self.values.size - 1)]


def _interp_linear_ends(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation through increasing knots ``(xp, fp)``, extended with the end slopes."""
    out = np.interp(x, xp, fp)
    below, above = x < xp[0], x > xp[-1]
    if np.any(below):
        out[below] = fp[0] + (x[below] - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0])
    if np.any(above):
        out[above] = fp[-1] + (x[above] - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    return out


@dataclass(frozen=True, eq=False)
class GaussianCopula:
    """Per-column normal scores of a table and their inverse (see the module docstring).

    Attributes:
        marginals: one pooled :class:`ColumnMarginal` per column.
        group_marginals: per group, one marginal per column (empty: every group uses the pooled ones). With them,
            :meth:`to_normal` takes each row's group's marginals, so every group's scores are standard normal.
        back: the group whose quantile functions :meth:`from_normal` uses (``None``: the pooled ones).
        blocks: one-hot blocks ``(columns, complete)``: 0/1 columns never 1 together in the training rows
            (``complete``: exactly one is 1 in every row). :meth:`from_normal` decodes a block as one category (the
            column whose score exceeds its threshold the most), so steered rows are valid one-hot rows.
    """

    marginals: tuple[ColumnMarginal, ...]
    group_marginals: tuple[tuple[ColumnMarginal, ...], ...] = ()
    back: int | None = None
    blocks: tuple[tuple[tuple[int, ...], bool], ...] = ()

    @classmethod
    def fit(cls, X: Any, weights: Any = None, membership: Membership | None = None) -> GaussianCopula:
        """The pooled (and, with ``membership``, per-group) empirical marginals of the columns of ``X`` ``(n, d)``.

        Args:
            X: training rows (finite).
            weights: optional non-negative row weights.
            membership: optional group :class:`~steerfair.membership.Membership` of the rows (soft memberships weight
                the rows of each group's marginals).
        """
        X = as_matrix(X, "X", min_rows=2)
        w = np.ones(X.shape[0])
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64).ravel()
            if w.shape[0] != X.shape[0] or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise ValueError(f"weights must be {X.shape[0]} finite non-negative numbers, not all zero")
        pooled = tuple(ColumnMarginal.fit(X[:, j], w) for j in range(X.shape[1]))
        blocks = onehot_blocks(X)
        if membership is None:
            return cls(pooled, blocks=blocks)
        W = np.clip(membership.weights, 0.0, None) * w[:, None]
        per_group = tuple(
            tuple(ColumnMarginal.fit(X[:, j], W[:, a]) for j in range(X.shape[1])) for a in range(W.shape[1])
        )
        return cls(pooled, per_group, None, blocks)

    def returning_to(self, group: int | None) -> GaussianCopula:
        """The same copula mapping back with ``group``'s quantile functions (``None``: pooled)."""
        if group is not None and not 0 <= group < len(self.group_marginals):
            raise ValueError(f"group must index one of the {len(self.group_marginals)} fitted groups; got {group!r}")
        return GaussianCopula(self.marginals, self.group_marginals, group, self.blocks)

    @property
    def dim(self) -> int:
        """Number of columns."""
        return len(self.marginals)

    def _check(self, X: Any, name: str) -> np.ndarray:
        return as_matrix(X, name, dim=self.dim)

    def to_normal(self, X: Any, rng: np.random.Generator, membership: Membership | None = None) -> np.ndarray:
        """Normal scores of the rows of ``X`` (ties jittered within their atoms with ``rng``).

        With per-group marginals, ``membership`` gives each row's group (soft rows draw one from their
        probabilities); without ``membership`` the pooled marginals are used.
        """
        X = self._check(X, "X")
        if not self.group_marginals or membership is None:
            return np.column_stack([m.to_normal(X[:, j], rng) for j, m in enumerate(self.marginals)])
        ga = draw_groups(membership, rng)
        Z = np.empty_like(X)
        for a, marginals in enumerate(self.group_marginals):
            sel = ga == a
            if np.any(sel):
                Z[sel] = np.column_stack([m.to_normal(X[sel, j], rng) for j, m in enumerate(marginals)])
        return Z

    def from_normal(self, Z: Any) -> np.ndarray:
        """Rows of ``X`` for normal scores ``Z`` (exact inverse on continuous columns; atoms are snapped), with the
        quantile functions of :attr:`back`."""
        Z = self._check(Z, "Z")
        marginals = self.marginals if self.back is None else self.group_marginals[self.back]
        X = np.column_stack([m.from_normal(Z[:, j]) for j, m in enumerate(marginals)])
        for cols, complete in self.blocks:
            excess = np.column_stack([Z[:, j] - _one_threshold(marginals[j]) for j in cols])
            best = np.argmax(excess, axis=1)
            on = np.ones(Z.shape[0], dtype=bool) if complete else excess[np.arange(Z.shape[0]), best] > 0
            X[:, cols] = 0.0
            X[on, np.asarray(cols)[best[on]]] = 1.0
        return X


def _one_threshold(m: ColumnMarginal) -> float:
    """The score above which a 0/1 column decodes to 1 (``inf``: never 1 in that marginal; ``-inf``: always)."""
    if m.values.size == 2:
        return float(ndtri(m.cdf[1]))
    return math.inf if m.values[0] == 0.0 else -math.inf


def onehot_blocks(X: np.ndarray) -> tuple[tuple[tuple[int, ...], bool], ...]:
    """Greedy one-hot blocks of the 0/1 columns of ``X``: a column joins the first block none of whose columns is
    ever 1 in the same row; blocks of one column are dropped. ``complete``: every row has exactly one 1 in it."""
    binary = [j for j in range(X.shape[1]) if np.all((X[:, j] == 0.0) | (X[:, j] == 1.0))]
    blocks: list[list[int]] = []
    for j in binary:
        for block in blocks:
            if not np.any(X[:, j] * X[:, block].sum(axis=1)):
                block.append(j)
                break
        else:
            blocks.append([j])
    return tuple((tuple(b), bool(np.all(X[:, b].sum(axis=1) == 1.0))) for b in blocks if len(b) > 1)


def draw_groups(membership: Membership, rng: np.random.Generator) -> np.ndarray:
    """Each row's group index: the label for hard memberships, one draw from the (clipped, renormalised) weights
    otherwise."""
    if membership.is_hard:
        return membership.indices()
    W = np.clip(membership.weights, 0.0, None)
    cum = np.cumsum(W / W.sum(axis=1, keepdims=True), axis=1)
    return np.minimum((rng.random(W.shape[0])[:, None] > cum).sum(axis=1), W.shape[1] - 1)

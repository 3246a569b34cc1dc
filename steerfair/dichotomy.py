"""The greatest common garbling of two-class experiments, and each group's kernel onto it (docs/shared_target.md,
section 12).

A two-class experiment on ``n`` outcomes is a pair of laws ``P(. | y=0)``, ``P(. | y=1)`` (a *dichotomy*). Its ROC
curve is the polyline through the cumulative masses ``(sum P0, sum P1)`` of its outcomes taken by decreasing
likelihood ratio ``P1 / P0``; that polyline is concave, and it is the curve of the best tests at every
false-positive rate (Neyman-Pearson, randomising between outcomes). Blackwell's theorem for dichotomies: ``Q`` is a
garbling of ``P`` (``Q(. | y) = P(. | y) K`` for one Markov kernel ``K``) exactly when ``ROC_Q <= ROC_P`` pointwise.

So for groups with experiments ``P_1, ..., P_k`` the label-free common targets (``P_a K_a = Q`` for every ``a``) are
the dichotomies whose ROC curve lies below every group's, and there is a greatest one: the pointwise minimum
``min_a ROC_a`` is concave (a minimum of concave functions) and runs from ``(0, 0)`` to ``(1, 1)``, so it is itself the
ROC curve of a dichotomy, :func:`greatest_common_dichotomy` builds it (one outcome per linear piece), and every group
reaches it. No common target is more informative for any class prior or any cost, and no later classifier of the
target can beat it (its accuracy at every prior is the ceiling measured by ``recipes/shared_target_ceiling.py``).

Each group's kernel is found by a linear program (feasible by Blackwell's theorem; tiny slacks absorb rounding): among
all kernels with ``P_a K_a = Q`` the one that moves probability the least along the curve, measured by the squared
distance between an outcome's and a target outcome's mid-positions ``(FPR + TPR) / 2`` on their curves, so a row's
score changes rank as little as the constraint allows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix

__all__ = ["DichotomyMeet", "greatest_common_dichotomy", "pool_adjacent_violators", "roc_curve_of", "roc_value"]

#: Probability mass below this is zero (an outcome a group never shows, a piece of zero length).
MASS_TOL = 1e-12
#: The largest violation of ``P_a K_a = Q`` accepted from the kernel LP (the slack's rounding, per entry).
LAW_TOL = 1e-8
#: Weight of the slack variables in the kernel LP against the locality cost (which is at most 1).
SLACK_WEIGHT = 1e6


def _check_dichotomy(P: np.ndarray, name: str) -> np.ndarray:
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] != 2 or P.shape[1] < 1:
        raise ValueError(f"{name} must be (2, n >= 1): the laws of the n outcomes in class 0 and 1; got {P.shape}")
    if not np.all(np.isfinite(P)) or np.any(P < 0) or not np.allclose(P.sum(axis=1), 1.0, rtol=0.0, atol=1e-6):
        raise ValueError(f"{name} must be finite, non-negative, and sum to 1 over the outcomes of each class")
    sums = P.sum(axis=1, keepdims=True)
    # rows off by more than float64 rounding (float32 input) are renormalised, or the kernels' targets would be off
    return np.where(np.abs(sums - 1.0) > 1e-12, P / sums, P)


def _by_likelihood_ratio(P: np.ndarray) -> np.ndarray:
    """Outcome indices by decreasing ``P1 / P0`` (``P0 = 0`` first); outcomes of no mass last."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(P[0] > MASS_TOL, P[1] / P[0], np.inf)
    ratio[(P[0] <= MASS_TOL) & (P[1] <= MASS_TOL)] = -np.inf
    return np.argsort(-ratio, kind="stable")


def pool_adjacent_violators(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool neighbouring outcomes until the likelihood ratio ``P1 / P0`` increases along the given order.

    For outcomes in the order of a score that estimates ``P(Y = 1 | x)`` (a group's score bins, lowest first) the
    population's likelihood ratio is nondecreasing, so an inversion between neighbours is sampling noise; sorting by
    the empirical ratio, as :func:`roc_curve_of` does, would turn that noise into an optimistic curve. The pooled
    experiment is the isotonic (pool-adjacent-violators) estimate: with counts, the maximum-likelihood class
    frequencies per outcome that are monotone in the order, and its ROC curve in that order is the concave hull of
    the unpooled one's. Ties are pooled too (outcomes with equal ratios carry the same information), and so are
    outcomes of no mass.

    Args:
        P: ``(2, n)`` a dichotomy, outcomes in score order (lowest score first).

    Returns:
        tuple: ``(pooled, block)``: the ``(2, m)`` pooled dichotomy (its ratios strictly increasing) and, for every
        original outcome, the index of its block (nondecreasing, from 0 to ``m - 1``).
    """
    P = _check_dichotomy(P, "P")
    sums: list[list[float]] = []  # each block's (P0, P1)
    starts: list[int] = []
    for j in range(P.shape[1]):
        sums.append([P[0, j], P[1, j]])
        starts.append(j)
        # the block below has a ratio at least the top's: pool (cross-multiplied, so zero masses need no division)
        while len(sums) >= 2 and sums[-2][1] * sums[-1][0] >= sums[-1][1] * sums[-2][0]:
            p0, p1 = sums.pop()
            starts.pop()
            sums[-1][0] += p0
            sums[-1][1] += p1
    block = np.searchsorted(np.asarray(starts), np.arange(P.shape[1]), side="right") - 1
    return np.asarray(sums, dtype=np.float64).T.copy(), block


def roc_curve_of(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The vertices ``(fpr, tpr)`` of the ROC curve of a dichotomy ``P`` ``(2, n)``, from ``(0, 0)`` to ``(1, 1)``
    (outcomes by decreasing likelihood ratio; a concave polyline)."""
    P = _check_dichotomy(P, "P")
    order = _by_likelihood_ratio(P)
    fpr = np.concatenate([[0.0], np.cumsum(P[0, order])])
    tpr = np.concatenate([[0.0], np.cumsum(P[1, order])])
    return np.minimum(fpr, 1.0), np.minimum(tpr, 1.0)


def roc_value(fpr: np.ndarray, tpr: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The concave ROC polyline through the vertices ``(fpr, tpr)`` evaluated at the false-positive rates ``at``
    (at a repeated ``fpr`` the largest ``tpr``: the curve is the best test's power)."""
    fpr, tpr = np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)
    xs, first = np.unique(fpr, return_index=True)
    top = np.maximum.reduceat(tpr, first) if fpr.size else tpr  # fpr is sorted: runs of equal values are contiguous
    return np.interp(np.asarray(at, dtype=np.float64), xs, top)


@dataclass(frozen=True, eq=False)
class DichotomyMeet:
    """The greatest common garbling of two-class experiments and each group's kernel onto it.

    Attributes:
        target: ``(2, n_T)`` the common law ``Q(. | y)`` of its outcomes, by decreasing likelihood ratio (one outcome
            per linear piece of ``min_a ROC_a``).
        kernels: one ``(n_a, n_T)`` row-stochastic kernel per group, ``laws[a] @ kernels[a] == target``; rows of
            outcomes a group never shows copy the nearest shown outcome's row.
        residual: the largest ``|laws[a] @ kernels[a] - target|`` over groups, classes and outcomes.
    """

    target: np.ndarray
    kernels: tuple[np.ndarray, ...]
    residual: float

    def roc(self) -> tuple[np.ndarray, np.ndarray]:
        """The vertices of the target's ROC curve (the pointwise minimum of the groups' curves)."""
        return roc_curve_of(self.target)


def _meet_vertices(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The vertices of ``min_a ROC_a``: every group's breakpoints and every pairwise crossing between them."""
    grid = np.unique(np.concatenate([f for f, _ in curves]))
    vals = np.array([roc_value(f, t, grid) for f, t in curves])
    lo, hi = vals[:, :-1], vals[:, 1:]
    extra = []
    for a in range(len(curves)):
        for b in range(a + 1, len(curves)):
            d0, d1 = lo[a] - lo[b], hi[a] - hi[b]
            cross = np.flatnonzero(d0 * d1 < 0)  # the two pieces cross strictly inside the interval
            extra.append(grid[cross] + (grid[cross + 1] - grid[cross]) * d0[cross] / (d0[cross] - d1[cross]))
    if extra:
        grid = np.unique(np.concatenate([grid, *extra]))
    meet = np.min([roc_value(f, t, grid) for f, t in curves], axis=0)  # meet[0]: the power at fpr = 0
    return np.concatenate([[0.0], grid]), np.concatenate([[0.0], meet])


def _pieces(fpr: np.ndarray, tpr: np.ndarray) -> np.ndarray:
    """``(2, n)`` the masses of the linear pieces of a concave polyline (collinear neighbours merged, empty dropped)."""
    d0, d1 = np.diff(fpr), np.diff(tpr)
    keep = (d0 > MASS_TOL) | (d1 > MASS_TOL)
    d0, d1 = d0[keep], d1[keep]
    out0, out1 = [d0[0]], [d1[0]]
    for x, y in zip(d0[1:], d1[1:], strict=True):
        if abs(x * out1[-1] - y * out0[-1]) <= 1e-12 * (x + y) * (out0[-1] + out1[-1]):  # the same slope
            out0[-1] += x
            out1[-1] += y
        else:
            out0.append(x)
            out1.append(y)
    Q = np.clip(np.array([out0, out1]), 0.0, None)
    return Q / Q.sum(axis=1, keepdims=True)


def _mid_positions(P: np.ndarray) -> np.ndarray:
    """Every outcome's mid-position ``(FPR + TPR) / 2`` on its experiment's ROC curve (the locality coordinate)."""
    order = _by_likelihood_ratio(P)
    s = np.cumsum(P[0, order] + P[1, order]) / 2.0
    mid = np.empty(P.shape[1])
    mid[order] = s - (P[0, order] + P[1, order]) / 4.0
    return mid


def _kernel_onto(P: np.ndarray, Q: np.ndarray) -> tuple[np.ndarray, float]:
    """The kernel with ``P K = Q`` that moves mass the least along the curves (LP with slacks), and its residual."""
    n, n_t = P.shape[1], Q.shape[1]
    S = np.flatnonzero(P.sum(axis=0) > MASS_TOL)
    s, nv = S.size, S.size * n_t
    rows, cols, vals = [], [], []
    for i, c in enumerate(S):
        var = i * n_t + np.arange(n_t)
        for y in range(2):
            if P[y, c] > 0:
                rows.append(y * n_t + np.arange(n_t))
                cols.append(var)
                vals.append(np.full(n_t, P[y, c]))
        rows.append(np.full(n_t, 2 * n_t + i))
        cols.append(var)
        vals.append(np.ones(n_t))
    eq = np.arange(2 * n_t)  # + slack_plus - slack_minus on every law constraint
    rows += [eq, eq]
    cols += [nv + eq, nv + 2 * n_t + eq]
    vals += [np.ones(2 * n_t), -np.ones(2 * n_t)]
    shape = (2 * n_t + s, nv + 4 * n_t)
    A = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape)
    weight = P.sum(axis=0)[S] / 2.0
    cost = (weight[:, None] * (_mid_positions(P)[S][:, None] - _mid_positions(Q)[None, :]) ** 2).ravel()
    objective = np.concatenate([cost, np.full(4 * n_t, SLACK_WEIGHT)])
    b_eq = np.concatenate([Q.ravel(), np.ones(s)])
    from scipy.optimize import linprog  # lazy: keeps `import steerfair` light (docs/benchmarks.md)

    res = linprog(objective, A_eq=A.tocsr(), b_eq=b_eq, bounds=(0, None), method="highs")
    if res.status != 0:  # cannot happen: the slacks make every instance feasible; kept as a clear error
        raise RuntimeError(f"the kernel LP failed ({res.message}); this is a bug, please report it")
    K = np.empty((n, n_t))
    K[S] = np.clip(res.x[:nv].reshape(s, n_t), 0.0, None)
    K[S] /= K[S].sum(axis=1, keepdims=True)
    for c in np.setdiff1d(np.arange(n), S):  # never shown: the nearest shown outcome's row
        K[c] = K[S[np.argmin(np.abs(S - c))]]
    return K, float(np.max(np.abs(P @ K - Q)))


def greatest_common_dichotomy(laws: list[np.ndarray] | tuple[np.ndarray, ...] | np.ndarray) -> DichotomyMeet:
    """The greatest common garbling of the groups' two-class experiments and each group's kernel onto it.

    Args:
        laws: one ``(2, n_a)`` array per group: ``P(outcome | y, a)`` (each row sums to 1); the groups may have
            different numbers of outcomes. A ``(k, 2, n)`` array is read as ``k`` groups.

    Returns:
        DichotomyMeet: ``target`` has the ROC curve ``min_a ROC_a`` (so it is a garbling of every group's
        experiment, and every common garbling is a garbling of it), ``kernels[a]`` carries group ``a`` onto it.

    Raises:
        ValueError: no group, or a law that is not ``(2, n)``, finite, non-negative and normalised.
    """
    groups = [_check_dichotomy(P, f"laws[{a}]") for a, P in enumerate(laws)]
    if not groups:
        raise ValueError("laws must hold at least one group's (2, n) experiment")
    fpr, tpr = _meet_vertices([roc_curve_of(P) for P in groups])
    Q = _pieces(fpr, tpr)
    kernels, residual = [], 0.0
    for P in groups:
        K, r = _kernel_onto(P, Q)
        kernels.append(K)
        residual = max(residual, r)
    if residual > LAW_TOL:  # Blackwell: a kernel exists; a larger residual is a bug
        raise RuntimeError(f"a group's kernel misses the common target by {residual:.2e}; this is a bug, please report")
    return DichotomyMeet(Q, tuple(kernels), residual)

"""Label-free garbling of discrete columns onto one common law per class (docs/shared_target.md, section 7).

The continuous part of ``FairSteerer(target="shared")`` is garbled by affine maps plus Gaussian noise
(:mod:`steerfair.shared_target`). Discrete columns (one-hot blocks and two-valued columns) are categorical variables;
their label-free garbling is a Markov kernel per group and variable, a stochastic matrix ``K_a(c' | c)``, and we need

    sum_c P(c | y, a) K_a(c' | c) = T(c' | y)      for every group ``a`` and class ``y``,

one common target ``T(. | y)`` per class. Such a target exists always (send every category to one), and every target
must be a garbling of every group's experiment ``P(. | ., a)``, so it is never more informative than the least
informative group. The target is chosen in two steps (:func:`solve_common_garbling`):

1. **greatest element.** If the least separable group ``r`` (smallest Bayes accuracy at the pooled class priors) is a
   garbling of every other group (a feasibility LP per group), its own law is the target: it is then the most
   informative common target for every prior and loss (Blackwell), and ``K_r`` is the identity.
2. **otherwise** one linear program over all kernels and the target, lexicographic: first maximise the accuracy of
   ``r``'s Bayes decision rule under the target (a linear lower bound of the target's Bayes accuracy; categories can
   be relabelled by the kernels, so for two classes its optimum is the Bayes accuracy of the greatest common
   garbling, whose ROC curve is the pointwise minimum of the groups' curves: the most any common target has at that
   prior), then, with that accuracy held, keep as much probability mass in place as possible
   (``sum_a w_a sum_c P_a(c) K_a(c|c)``), so that the rest of each group's experiment (other thresholds) is
   preserved as far as the constraints allow. With three or more classes ``r``'s rule may never predict some class,
   and the target can then be much less informative than the best common one (a review found Bayes accuracy 0.398,
   the prior's largest class, where 0.462 was reachable with a rule onto every class); so there the LP is solved
   for several rules (``r``'s, every other group's, and one onto every class) and the most accurate target is kept.
   Only the two-class target is claimed optimal.

Variables are first merged greedily into joint variables (the pair of largest mutual information, while the
combinations seen in training number at most ``JOINT_CATEGORIES``), and each (joint) variable is garbled on its own:
after steering the law of *each* such variable given ``(Y, A)`` is equal across groups; the joint law of different
variables, and of the discrete and the continuous part, is not made equal (each group's kernels act independently
given the group). Combinations not seen in training are left as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.sparse import coo_matrix

from .copula import onehot_blocks
from .membership import Membership

__all__ = [
    "DISCRETE",
    "JOINT_CATEGORIES",
    "CategoricalGarbling",
    "CommonGarbling",
    "Discrete",
    "DiscreteVariable",
    "check_discrete",
    "draw_from_rows",
    "discrete_variables",
    "solve_common_garbling",
]

#: How ``FairSteerer`` treats discrete columns: categorical kernels, the copula, or unchanged.
Discrete = Literal["kernel", "copula", "passthrough"]
#: the accepted values of ``FairSteerer(discrete=...)``
DISCRETE: tuple[str, ...] = ("kernel", "copula", "passthrough")
#: Discrete variables are merged into joint ones while the combinations seen number at most this (jointly garbled).
JOINT_CATEGORIES = 200
#: Probability mass below this is zero (a category a group never shows; an LP round-off).
MASS_TOL = 1e-12
#: Slack allowed in the accuracy held at the second stage of the LP (relative to 1).
ACC_SLACK = 1e-9


def draw_from_rows(P: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category per row of ``P`` ``(n, c)`` (each row a law, up to its sum): the index where a uniform draw times
    the row's sum first reaches the row's cumulative mass (one ``rng.random`` per row)."""
    cum = np.cumsum(P, axis=1)
    u = np.asarray(rng.random(cum.shape[0]))[:, None] * cum[:, -1:]
    return np.minimum((u >= cum).sum(axis=1), cum.shape[1] - 1)


def check_discrete(discrete: Any, target: str, marginals: str) -> str:
    """Resolve ``FairSteerer(discrete=...)``: ``None`` is ``"kernel"`` for the shared target, else ``"copula"`` with
    copula marginals and ``"passthrough"`` without."""
    if discrete is None:
        return "kernel" if target == "shared" else "copula" if marginals == "copula" else "passthrough"
    if discrete not in DISCRETE:
        raise ValueError(f"unknown discrete {discrete!r}; use one of {DISCRETE} or None")
    if discrete == "kernel" and target != "shared":
        raise ValueError("discrete='kernel' needs target='shared' (the kernels garble onto the shared target)")
    if discrete == "copula" and marginals != "copula":
        raise ValueError("discrete='copula' needs marginals='copula'")
    return str(discrete)


# ------------------------------------------------------------------------------------------------- the variables
@dataclass(frozen=True, eq=False)
class DiscreteVariable:
    """One categorical variable of a table: a one-hot block or a two-valued column.

    Attributes:
        columns: the column indices (one for a two-valued column).
        values: ``(n_categories, len(columns))`` the rows of these columns that are categories (for a one-hot block
            the unit vectors, and the zero row when the block is not complete).
    """

    columns: tuple[int, ...]
    values: np.ndarray

    @property
    def n_categories(self) -> int:
        """Number of categories."""
        return int(self.values.shape[0])

    def encode(self, X: np.ndarray) -> np.ndarray:
        """The category index of every row of ``X`` (all columns); ``-1`` for a combination not seen in training."""
        part = X[:, list(self.columns)]
        codes = np.full(X.shape[0], -1, dtype=np.int64)
        for c, v in enumerate(self.values):
            codes[np.all(part == v, axis=1)] = c
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """The column values ``(n, len(columns))`` of category indices."""
        return self.values[codes]


def discrete_variables(
    X: np.ndarray, candidates: Sequence[int], max_categories: int = JOINT_CATEGORIES
) -> tuple[DiscreteVariable, ...]:
    """The categorical variables among the ``candidates`` columns of ``X``: the one-hot blocks of
    :func:`steerfair.copula.onehot_blocks` and every other column with exactly two distinct finite values, then
    merged greedily into joint variables: while some pair's combinations seen in ``X`` number at most
    ``max_categories``, the pair of largest mutual information (in ``X``) becomes one variable (its categories: the
    combinations seen). ``max_categories <= 1``: no merging."""
    cand = [int(j) for j in candidates if np.all(np.isfinite(X[:, j])) and np.unique(X[:, j]).size == 2]
    out: list[DiscreteVariable] = []
    used: set[int] = set()
    for cols, complete in onehot_blocks(X[:, cand]) if cand else ():
        block = tuple(cand[j] for j in cols)
        values = np.eye(len(block)) if complete else np.vstack([np.eye(len(block)), np.zeros((1, len(block)))])
        out.append(DiscreteVariable(block, values))
        used.update(block)
    for j in cand:
        if j not in used:
            out.append(DiscreteVariable((j,), np.unique(X[:, j])[:, None]))
    codes = [v.encode(X) for v in out]  # every training row is a category of every variable
    while len(out) > 1:
        pairs = []
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                seen = np.unique(codes[i] * out[j].n_categories + codes[j])  # the combinations seen
                if seen.size <= max_categories:
                    pairs.append((_mutual_information(codes[i], codes[j]), i, j, seen))
        if not pairs:
            break
        _, i, j, seen = max(pairs, key=lambda p: (p[0], -p[1], -p[2]))  # ties: the first pair
        n_j = out[j].n_categories
        values = np.hstack([out[i].values[seen // n_j], out[j].values[seen % n_j]])
        joint = DiscreteVariable(out[i].columns + out[j].columns, values)
        code = np.searchsorted(seen, codes[i] * n_j + codes[j])
        out = [v for t, v in enumerate(out) if t not in (i, j)] + [joint]
        codes = [c for t, c in enumerate(codes) if t not in (i, j)] + [code]
    return tuple(sorted(out, key=lambda v: v.columns[0]))


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information (nats) of two category codes in the same rows (empirical)."""
    J = np.zeros((int(a.max()) + 1, int(b.max()) + 1))
    np.add.at(J, (a, b), 1.0)
    J /= J.sum()
    outer = J.sum(axis=1, keepdims=True) @ J.sum(axis=0, keepdims=True)
    nz = J > 0
    return float(np.sum(J[nz] * np.log(J[nz] / outer[nz])))


# ----------------------------------------------------------------------------------------------------- the solver
@dataclass(frozen=True, eq=False)
class CommonGarbling:
    """The common target of one categorical variable and each group's kernel onto it.

    Attributes:
        target: ``(m, n)`` target law ``T(. | y)`` of every class.
        kernels: ``(k, n, n)`` row-stochastic ``K_a(c' | c)`` (rows of categories a group never shows: identity).
        reference: the least separable group (Bayes accuracy at the pooled class priors).
        greatest: whether the target is the reference group's own law (a garbling of every group's: then it is the
            most informative common target for every prior and loss, and ``kernels[reference]`` is the identity).
    """

    target: np.ndarray
    kernels: np.ndarray
    reference: int
    greatest: bool

    def kernel(self, group: int, strength: float = 1.0) -> np.ndarray:
        """``(1 - t) I + t K_a``: the law of a row steered with probability ``t`` (``t = 0``: the identity)."""
        n = self.kernels.shape[1]
        return (1.0 - strength) * np.eye(n) + strength * self.kernels[group]


def _bayes_accuracy(P: np.ndarray, prior: np.ndarray) -> float:
    return float(np.sum(np.max(prior[:, None] * P, axis=0)))


def solve_common_garbling(laws: Any, class_prior: Any = None, group_weights: Any = None) -> CommonGarbling:
    """The common target of one categorical variable and every group's kernel (see the module docstring).

    Args:
        laws: ``(k, m, n)`` ``P(c | y, a)``: every group's law of the ``n`` categories in every class (rows sum to 1).
        class_prior: ``(m,)`` pooled class priors (default uniform): where the Bayes accuracy is measured.
        group_weights: ``(k,)`` weights of the groups in the mass kept in place (default: equal).

    Returns:
        CommonGarbling: ``laws[a, y] @ kernels[a] == target[y]`` for every group and class (to LP tolerance).
    """
    P = np.asarray(laws, dtype=np.float64)
    if P.ndim != 3 or P.shape[0] < 1 or P.shape[1] < 2 or P.shape[2] < 1:
        raise ValueError(f"laws must be (k >= 1, m >= 2, n >= 1); got shape {P.shape}")
    if not np.all(np.isfinite(P)) or np.any(P < 0) or not np.allclose(P.sum(axis=2), 1.0, rtol=0.0, atol=1e-6):
        raise ValueError("laws must be finite, non-negative, and sum to 1 over the categories of every (group, class)")
    sums = P.sum(axis=2, keepdims=True)  # laws off by more than float64 rounding (float32 input) are renormalised
    P = np.where(np.abs(sums - 1.0) > 1e-12, P / sums, P)
    k, m, n = P.shape
    pi = np.full(m, 1.0 / m) if class_prior is None else np.asarray(class_prior, dtype=np.float64).ravel()
    if pi.shape != (m,) or not np.all(np.isfinite(pi)) or np.any(pi < 0) or pi.sum() <= 0:
        raise ValueError(f"class_prior must be {m} finite non-negative numbers, not all zero")
    w = np.ones(k) if group_weights is None else np.asarray(group_weights, dtype=np.float64).ravel()
    if w.shape != (k,) or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"group_weights must be {k} finite non-negative numbers")
    pi, w = pi / pi.sum(), w / max(w.sum(), MASS_TOL)
    order = sorted(range(k), key=lambda a: (_bayes_accuracy(P[a], pi), a))
    r = order[0]
    for g in order:  # first: is a group's own law reachable from every group? Then it is the greatest common
        # garbling. Least separable first; every group is tried, since equally accurate groups (a tie is common:
        # merging categories of one Bayes decision keeps the accuracy) need not garble into each other
        kernels = np.empty((k, n, n))
        for a in range(k):
            K = np.eye(n) if a == g else _kernel_onto(P[a], P[g])
            if K is None:
                break
            kernels[a] = K
        else:
            return CommonGarbling(P[g].copy(), kernels, g, True)
    decision = np.argmax(pi[:, None] * P[r], axis=0)  # r's Bayes rule: category -> class
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for rule in _decision_rules(P, pi, r, decision):
        T, K = _joint_lp(P, pi, w, rule)
        acc = _bayes_accuracy(T, pi)
        if best is None or acc > best[0] + 1e-12:
            best = (acc, T, K)
    assert best is not None
    return CommonGarbling(best[1], best[2], r, False)


def _decision_rules(P: np.ndarray, pi: np.ndarray, r: int, decision: np.ndarray) -> list[np.ndarray]:
    """The decision rules the accuracy stage is tried with: ``r``'s Bayes rule (optimal for two classes), and for
    three or more classes also every other group's and, where ``r``'s misses a class, one onto every class (each
    class its most telling category of ``r``, by an assignment; the rest as ``r``'s rule)."""
    k, m, n = P.shape
    rules = [decision]
    if m > 2:
        rules += [np.argmax(pi[:, None] * P[a], axis=0) for a in range(k) if a != r]
        if n >= m and np.unique(decision).size < m:
            from scipy.optimize import linear_sum_assignment

            classes, categories = linear_sum_assignment(-(pi[:, None] * P[r]))
            onto = decision.copy()
            onto[categories] = classes
            rules.append(onto)
    unique: list[np.ndarray] = []
    for rule in rules:
        if not any(np.array_equal(rule, u) for u in unique):
            unique.append(rule)
    return unique


def _support(P: np.ndarray) -> np.ndarray:
    return np.flatnonzero(P.sum(axis=0) > MASS_TOL)


def _solve(c: np.ndarray, A_eq: Any, b_eq: np.ndarray, A_ub: Any = None, b_ub: Any = None) -> np.ndarray | None:
    from scipy.optimize import linprog  # lazy: keeps `import steerfair` light (docs/benchmarks.md)

    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    return np.asarray(res.x) if res.status == 0 else None


def _kernel_blocks(P: np.ndarray, offset: int, n: int) -> tuple[list[Any], list[Any], list[Any], int]:
    """Sparse triplets (row, col, value) of ``sum_c P(c|y) K(c, c')`` (rows ``y * n + c'``) and of the row sums
    (rows ``m * n + i``) for the supported categories of one group, its variables starting at ``offset``."""
    m = P.shape[0]
    S = _support(P)
    rows, cols, vals = [], [], []
    for i, c in enumerate(S):
        var = offset + i * n + np.arange(n)
        for y in range(m):
            if P[y, c] > 0:
                rows.append(y * n + np.arange(n))
                cols.append(var)
                vals.append(np.full(n, P[y, c]))
        rows.append(np.full(n, m * n + i))
        cols.append(var)
        vals.append(np.ones(n))
    return rows, cols, vals, S.size


def _assemble_kernel(x: np.ndarray, S: np.ndarray, n: int) -> np.ndarray:
    K = np.eye(n)
    K[S] = np.clip(x.reshape(S.size, n), 0.0, None)
    K[S] /= K[S].sum(axis=1, keepdims=True)
    return K


def _kernel_onto(P: np.ndarray, T: np.ndarray) -> np.ndarray | None:
    """A kernel with ``P[y] @ K == T[y]`` for every class that keeps the most mass in place, or ``None``."""
    m, n = P.shape
    rows, cols, vals, s = _kernel_blocks(P, 0, n)
    A = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m * n + s, s * n))
    S = _support(P)
    c = np.zeros(s * n)
    c[np.arange(s) * n + S] = -P[:, S].sum(axis=0)
    x = _solve(c, A.tocsr(), np.concatenate([T.ravel(), np.ones(s)]))
    return None if x is None else _assemble_kernel(x, S, n)


def _joint_lp(P: np.ndarray, pi: np.ndarray, w: np.ndarray, decision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kernels and target of the lexicographic LP: most accurate target under ``decision``, then most mass kept."""
    k, m, n = P.shape
    supports = [_support(P[a]) for a in range(k)]
    n_t = m * n  # the target's variables come first
    rows, cols, vals = [], [], []
    keep = np.zeros(n_t + sum(s.size for s in supports) * n)
    offset, row0, b = n_t, 0, []
    for a in range(k):
        r_a, c_a, v_a, s = _kernel_blocks(P[a], offset, n)
        rows += [row0 + r for r in r_a]
        cols += c_a
        vals += v_a
        rows.append(row0 + np.arange(m * n))  # ... - T[y, c'] = 0
        cols.append(np.arange(n_t))
        vals.append(-np.ones(n_t))
        keep[offset + np.arange(s) * n + supports[a]] = w[a] * (pi @ P[a])[supports[a]]
        b.append(np.concatenate([np.zeros(m * n), np.ones(s)]))
        offset, row0 = offset + s * n, row0 + m * n + s
    A = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(row0, offset)).tocsr()
    beq = np.concatenate(b)
    acc = np.zeros(offset)
    acc[decision * n + np.arange(n)] = pi[decision]  # sum_c pi_d(c) T[d(c), c]
    x = _solve(-acc, A, beq)
    if x is None:  # cannot happen (sending every category to one is feasible); kept as a clear error
        raise RuntimeError("the common-garbling LP found no solution; this is a bug, please report it")
    best = float(acc @ x)
    x2 = _solve(-keep, A, beq, acc[None, :] * -1.0, np.array([-(best - ACC_SLACK)]))
    x = x if x2 is None else x2
    T = np.clip(x[:n_t].reshape(m, n), 0.0, None)
    kernels, offset = np.empty((k, n, n)), n_t
    for a, S in enumerate(supports):
        kernels[a] = _assemble_kernel(x[offset : offset + S.size * n], S, n)
        offset += S.size * n
    return T / T.sum(axis=1, keepdims=True), kernels


# ------------------------------------------------------------------------------------------------ the table part
@dataclass(frozen=True, eq=False)
class CategoricalGarbling:
    """Every discrete variable's common garbling, applied to table rows by group (label-free).

    Attributes:
        variables: the :class:`DiscreteVariable` garbled.
        solutions: one :class:`CommonGarbling` per variable.
    """

    variables: tuple[DiscreteVariable, ...]
    solutions: tuple[CommonGarbling, ...] = field(repr=False)

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        y_index: np.ndarray,
        membership: Membership,
        variables: Sequence[DiscreteVariable],
        n_classes: int,
        sample_weight: Any = None,
    ) -> CategoricalGarbling:
        """Solve every variable's common garbling from the training rows.

        Args:
            X: ``(n, d)`` training rows (all columns).
            y_index: ``(n,)`` class indices ``0..n_classes-1``.
            membership: the rows' groups (soft memberships weight the rows of each group).
            variables: the variables to garble (:func:`discrete_variables`).
            n_classes: number of classes.
            sample_weight: optional ``(n,)`` non-negative row weights.
        """
        w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64).ravel()
        W = np.clip(membership.weights, 0.0, None) * w[:, None]  # (n, k)
        Y = np.eye(n_classes)[y_index]  # (n, m)
        cell = np.einsum("ia,iy->ay", W, Y)
        if np.any(cell <= 0):
            raise ValueError("groups: every (group, class) cell needs rows of positive weight for the kernels")
        solutions = []
        for v in variables:
            C = np.eye(v.n_categories)[np.maximum(v.encode(X), 0)]
            laws = np.einsum("ia,iy,ic->ayc", W, Y, C) / cell[:, :, None]
            solutions.append(solve_common_garbling(laws, cell.sum(axis=0), W.sum(axis=0)))
        return cls(tuple(variables), tuple(solutions))

    def transform(self, X: np.ndarray, rows: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A copy of ``X`` whose discrete columns in ``rows`` are garbled by the kernels of ``groups`` (one group index
        per steered row). Categories not seen in training are left as they are."""
        out = np.array(X, dtype=np.float64, copy=True)
        rows, groups = np.asarray(rows), np.asarray(groups)
        k = self.solutions[0].kernels.shape[0] if self.solutions else 0
        if groups.shape != rows.shape or (groups.size and (groups.min() < 0 or groups.max() >= k)):
            raise ValueError(f"groups must hold one group index in 0..{k - 1} per steered row ({rows.shape[0]})")
        if rows.size == 0:
            return out
        for v, sol in zip(self.variables, self.solutions, strict=True):
            codes = v.encode(out[rows])
            new = codes.copy()
            for a in range(sol.kernels.shape[0]):
                sel = np.flatnonzero((groups == a) & (codes >= 0))
                if sel.size:
                    new[sel] = draw_from_rows(sol.kernels[a][codes[sel]], rng)
            ok = new >= 0
            idx = rows[ok]
            out[np.ix_(idx, list(v.columns))] = v.decode(new[ok])
        return out

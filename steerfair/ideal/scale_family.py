"""The isotropic-scale family of ideal distributions: parameters, objective and closed forms.

The family (see docs/theory.md, section 3): every group ``a`` is an isotropic-scale affine image of
shared class templates ``N(nu_i, Omega_i)``::

    X | Y=i, A=a  ~  N(gamma_a nu_i + c_a, gamma_a^2 Omega_i),        gamma_a > 0,

which satisfies every condition of Proposition 3.2 exactly. With cell weights ``w_ia`` the
objective is ``sum_ia w_ia KL(N~_ia || N_ia)``.

* affirmative action (the reference group's parameters are the templates): strictly convex in
  ``(gamma, c)``, solved in closed form per group (:func:`affirmative_closed_form`);
* all subgroups: for fixed ``gamma`` the problem is convex in ``(Omega, nu, c)`` with a closed-form
  solution (:func:`all_inner_closed_form`); the profile over ``gamma`` is searched in
  :mod:`steerfair.ideal.line_search`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular

from ..families.gaussian import Gaussian, gaussian_kl
from ..linalg import cholesky, spd_inv, spd_solve, tril_solve_tril

__all__ = [
    "CellFactors",
    "CellMatrices",
    "ScaleFamilyParams",
    "affirmative_closed_form",
    "affirmative_group",
    "affirmative_group_two_classes",
    "all_inner_closed_form",
    "gamma_gradient",
    "objective",
    "omega_traces",
    "tri_solve",
]


def tri_solve(L: np.ndarray, b: np.ndarray, trans: str = "N") -> np.ndarray:
    """Triangular solve with a lower-triangular factor (no copy of ``L`` in either memory order).

    Args:
        L: lower-triangular ``(d, d)`` matrix.
        b: right-hand side, ``(d,)`` or ``(d, n)``.
        trans: ``"N"`` for ``L^-1 b``, ``"T"`` for ``L^-T b``.

    Returns:
        The solution, shaped like ``b``.
    """
    return solve_triangular(L, b, lower=True, trans=trans, check_finite=False)


class CellMatrices:
    """Per-(group, class) ``d x d`` matrices held without a stacked copy (``k m d^2`` floats).

    ``[a, i]`` is cell ``(a, i)``'s own (read-only) array; ``[a]`` a stacked ``(m, d, d)`` copy of group ``a``'s.
    """

    def __init__(self, rows: Sequence[Sequence[np.ndarray]]) -> None:
        self._rows = tuple(tuple(r) for r in rows)
        self.shape = (len(self._rows), len(self._rows[0]), *self._rows[0][0].shape)

    def __getitem__(self, key: int | tuple[int, int]) -> np.ndarray:
        if isinstance(key, tuple):
            a, i = key
            return self._rows[a][i]
        return np.stack(self._rows[key])

    def row(self, a: int) -> tuple[np.ndarray, ...]:
        """Group ``a``'s matrices, class by class (no copy)."""
        return self._rows[a]

    def __len__(self) -> int:
        return len(self._rows)


@dataclass(frozen=True)
class CellFactors:
    """Solver-side view of the original cells: means, covariances, their Cholesky factors, precisions
    where requested, and the objective's cell weights (``[a, i]`` indexing: group ``a``, class ``i``).

    Not data statistics: everything here is derived from a fitted model's components for one solve.

    Attributes:
        means: ``(k, m, d)`` cell means ``mu_ia``.
        covs: cell covariances ``S_ia`` (:class:`CellMatrices`, ``(k, m, d, d)``).
        chols: lower Cholesky factors ``L_ia`` of ``covs``.
        precs: ``(k, m, d, d)`` precisions ``S_ia^-1`` (zeros for groups not requested).
        weights: ``(k, m)`` cell weights ``w_ia`` of the objective.
        prec_diags: ``(k, m, d)`` the precisions' diagonals when every precision is diagonal (cells given in
            coordinates that diagonalise them: products with a precision are then row scalings), else ``None``.
    """

    means: np.ndarray  # (k, m, d)
    covs: CellMatrices  # (k, m, d, d)
    chols: CellMatrices  # (k, m, d, d)
    precs: np.ndarray  # (k, m, d, d)
    weights: np.ndarray  # (k, m) cell weights of the objective
    prec_diags: np.ndarray | None = None

    @classmethod
    def from_components(
        cls, comps: tuple[tuple[Gaussian, ...], ...], weights: np.ndarray, precisions_for: list[int] | None = None
    ) -> CellFactors:
        """Collect the cells' parameters and factors.

        Args:
            comps: ``comps[a][i]`` is the Gaussian of cell ``(a, i)``.
            weights: ``(k, m)`` cell weights of the objective.
            precisions_for: groups whose precision matrices are formed (by Cholesky solves); default all.
                The others are left as a read-only broadcast of zeros.

        Returns:
            The factors.
        """
        means = np.array([[c.mean for c in row] for row in comps])
        covs = CellMatrices([[c.cov for c in row] for row in comps])
        chols = CellMatrices([[c.chol for c in row] for row in comps])
        groups = range(len(comps)) if precisions_for is None else precisions_for
        # no precision needed: a read-only broadcast of zeros (no d^2 k m allocation)
        zero = np.zeros((), dtype=np.float64)
        precs = np.zeros(covs.shape) if len(groups) else np.broadcast_to(zero, covs.shape)
        for a in groups:
            for i in range(len(comps[a])):
                precs[a, i] = spd_inv(covs[a, i], chols[a, i])
        return cls(means, covs, chols, precs, np.asarray(weights, dtype=np.float64))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(k, m, d)``: groups, classes, dimension."""
        k, m, d = self.means.shape
        return k, m, d


@dataclass(frozen=True)
class ScaleFamilyParams:
    """Parameters of a member of the scale family: cell ``(a, i)`` is
    ``N(gammas[a] template_means[i] + offsets[a], gammas[a]^2 template_covs[i])``.

    Attributes:
        gammas: ``(k,)`` per-group scales.
        offsets: ``(k, d)`` per-group offsets.
        template_means, template_covs: ``(m, d)`` and ``(m, d, d)`` class templates.
        objective: ``sum_ia w_ia KL(N~_ia || N_ia)`` where the solver has it at no extra cost.
        template_chols: lower Cholesky factors of the templates, where known for free.
    """

    gammas: np.ndarray  # (k,)
    offsets: np.ndarray  # (k, d)
    template_means: np.ndarray  # (m, d)
    template_covs: np.ndarray  # (m, d, d)
    objective: float | None = None  # sum_ia w_ia KL(N~_ia || N_ia) where the solver has it at no extra cost
    template_chols: np.ndarray | None = None  # lower Cholesky factors of the templates, where known for free

    def cell(self, a: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of cell ``(a, i)``."""
        g = self.gammas[a]
        return g * self.template_means[i] + self.offsets[a], g * g * self.template_covs[i]


def objective(stats: CellFactors, params: ScaleFamilyParams, skip: tuple[int, ...] = ()) -> float:
    """The feature objective ``sum_ia w_ia KL(N~_ia || N_ia)``.

    Args:
        stats: the original cells and weights.
        params: the member of the family (``N~``).
        skip: groups known to be unchanged (KL 0).

    Returns:
        The weighted KL sum.
    """
    k, m, _ = stats.shape
    total = 0.0
    for a in range(k):
        if a in skip:
            continue
        for i in range(m):
            if stats.weights[a, i] == 0:
                continue
            mu, S = params.cell(a, i)
            total += stats.weights[a, i] * gaussian_kl(
                mu, S, stats.means[a, i], stats.covs[a, i], None, stats.chols[a, i]
            )
    return total


# ----------------------------------------------------------------------------- affirmative action
def affirmative_group(
    means: np.ndarray, precs: np.ndarray, w: np.ndarray, nu: np.ndarray, omega: np.ndarray
) -> tuple[float, np.ndarray]:
    """Closed-form ``(gamma, c)`` minimising ``sum_i w_i KL(N(gamma nu_i + c, gamma^2 Omega_i) || N(mu_i, S_i))``.

    Eliminating ``c`` (a weighted least-squares problem) leaves ``f(g) = a g^2/2 - b g - d W log g``
    whose unique positive stationary point is ``g = (b + sqrt(b^2 + 4 a d W)) / (2 a)``.

    Args:
        means: ``(m, d)`` the group's cell means ``mu_i``.
        precs: ``(m, d, d)`` the group's cell precisions ``S_i^-1``.
        w: ``(m,)`` cell weights.
        nu, omega: ``(m, d)`` and ``(m, d, d)`` templates (the reference group's cells).

    Returns:
        ``(gamma, c)``.

    Raises:
        ValueError: if the weighted precision sum is not positive definite.
    """
    m, d = means.shape
    W = float(w.sum())
    H = np.einsum("i,ijk->jk", w, precs)
    LH = cholesky(H, "sum of cell precisions")
    c0 = spd_solve(H, np.einsum("i,ijk,ik->j", w, precs, means), LH)
    c1 = spd_solve(H, np.einsum("i,ijk,ik->j", w, precs, nu), LH)
    u = nu - c1
    v = means - c0
    t = np.einsum("ijk,ikj->i", precs, omega)  # tr(P_i Omega_i)
    Pu = np.einsum("ijk,ik->ij", precs, u)
    alpha = float(np.sum(w * (t + np.einsum("ij,ij->i", u, Pu))))
    beta = float(np.sum(w * np.einsum("ij,ij->i", Pu, v)))
    gamma = (beta + np.sqrt(beta * beta + 4.0 * alpha * d * W)) / (2.0 * alpha)
    return float(gamma), c0 - gamma * c1


def affirmative_group_two_classes(
    means: np.ndarray,
    covs: Sequence[np.ndarray],
    chols: Sequence[np.ndarray],
    w: np.ndarray,
    nu: np.ndarray,
    omega_chols: Sequence[np.ndarray],
    *,
    traces: list[float] | None = None,
    LK: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """:func:`affirmative_group` for two classes without forming any precision matrix.

    Uses ``(w_0 S_0^-1 + w_1 S_1^-1)^-1 = S_1 (w_0 S_1 + w_1 S_0)^-1 S_0`` (one Cholesky) and
    ``tr(S_i^-1 Omega_i) = ||L_i^-1 R_i||_F^2`` (one triangular solve with a triangular right-hand side
    per class).

    Args:
        means: ``(2, d)`` the group's cell means.
        covs, chols: the group's two cell covariances and their lower Cholesky factors.
        w: ``(2,)`` cell weights.
        nu: ``(2, d)`` template means.
        omega_chols: lower Cholesky factors of the two template covariances.
        traces: ``tr(S_i^-1 Omega_i)`` for both classes, when the caller already has them.
        LK: the Cholesky factor of ``w_0 S_1 + w_1 S_0``, when the caller already has it.

    Returns:
        ``(gamma, c)``.

    Raises:
        ValueError: if ``w_0 S_1 + w_1 S_0`` is not positive definite.
    """
    d = means.shape[1]
    W = float(w.sum())
    if LK is None:
        LK = cholesky(w[0] * covs[1] + w[1] * covs[0], "weighted covariance sum")

    def Hinv(x: np.ndarray) -> np.ndarray:
        return covs[1] @ tri_solve(LK, tri_solve(LK, covs[0] @ x), trans="T")

    def P(i: int, x: np.ndarray) -> np.ndarray:
        return tri_solve(chols[i], tri_solve(chols[i], x), trans="T")

    if traces is None:
        traces = omega_traces(chols, omega_chols)
    c0 = Hinv(w[0] * P(0, means[0]) + w[1] * P(1, means[1]))
    c1 = Hinv(w[0] * P(0, nu[0]) + w[1] * P(1, nu[1]))
    u = nu - c1
    v = means - c0
    alpha = beta = 0.0
    for i in range(2):
        Pu = P(i, u[i])
        alpha += w[i] * (traces[i] + float(u[i] @ Pu))
        beta += w[i] * float(Pu @ v[i])
    gamma = (beta + np.sqrt(beta * beta + 4.0 * alpha * d * W)) / (2.0 * alpha)
    return float(gamma), c0 - gamma * c1


def omega_traces(chols: Sequence[np.ndarray], omega_chols: Sequence[np.ndarray]) -> list[float]:
    """``tr(S_i^-1 Omega_i) = ||L_i^-1 R_i||_F^2`` for two classes, from the Cholesky factors.

    Args:
        chols: lower Cholesky factors ``L_i`` of the two cell covariances.
        omega_chols: lower Cholesky factors ``R_i`` of the two template covariances.

    Returns:
        The two traces.
    """
    traces = []
    for i in range(2):
        M = tril_solve_tril(chols[i], omega_chols[i])  # L_i^-1 R_i
        traces.append(float(np.sum(M * M)))
    return traces


def affirmative_closed_form(stats: CellFactors, reference: int) -> ScaleFamilyParams:
    """Affirmative action: the reference group is kept, every other group is fitted in closed form.

    Args:
        stats: the original cells (precisions are needed for the non-reference groups when ``m > 2``).
        reference: the group whose cells are the templates.

    Returns:
        The parameters (``objective`` filled in for two classes).
    """
    k, m, d = stats.shape
    nu, omega = stats.means[reference], stats.covs[reference]
    gammas = np.ones(k)
    offsets = np.zeros((k, d))
    total: float | None = 0.0
    for a in range(k):
        if a == reference:
            continue
        if m == 2:
            traces = omega_traces(stats.chols.row(a), stats.chols.row(reference))
            gammas[a], offsets[a] = affirmative_group_two_classes(
                stats.means[a], stats.covs.row(a), stats.chols.row(a), stats.weights[a], nu, stats.chols.row(reference),
                traces=traces,
            )  # fmt: skip
            if total is not None:
                total += _affirmative_kl(stats, a, reference, gammas[a], offsets[a], traces)
        else:
            total = None
            gammas[a], offsets[a] = affirmative_group(stats.means[a], stats.precs[a], stats.weights[a], nu, omega)
    return ScaleFamilyParams(gammas, offsets, nu.copy(), omega, objective=total)


def _affirmative_kl(stats: CellFactors, a: int, ref: int, g: float, c: np.ndarray, traces: list[float]) -> float:
    """``sum_i w_ai KL(N(g nu_i + c, g^2 Omega_i) || N(mu_ai, S_ai))`` from the traces
    ``tr(S_ai^-1 Omega_i)`` the closed form already has (``O(d^2)``)."""
    d = stats.shape[2]
    total = 0.0
    for i in range(stats.shape[1]):
        L = stats.chols[a, i]
        z = solve_triangular(L, g * stats.means[ref, i] + c - stats.means[a, i], lower=True, check_finite=False)
        logdet = 2.0 * float(np.sum(np.log(np.diag(L))) - np.sum(np.log(g * np.diag(stats.chols[ref, i]))))
        kl = max(0.5 * (g * g * traces[i] + float(z @ z) - d + logdet), 0.0)
        total += stats.weights[a, i] * kl
    return total


# ----------------------------------------------------------------------------- all subgroups
def all_inner_closed_form(stats: CellFactors, gammas: np.ndarray, gauge: int = 0) -> ScaleFamilyParams:
    """For fixed ``gammas``: the optimal templates and offsets (``c_gauge = 0``).

    ``Omega_i = W_i (sum_a w_ia g_a^2 P_ia)^{-1}``; the means solve a weighted least-squares problem,
    reduced to the offsets by a Schur complement (``(k-1) d`` unknowns).

    Args:
        stats: the original cells (with all precisions).
        gammas: ``(k,)`` the fixed scales.
        gauge: the group whose offset is fixed at 0.

    Returns:
        The minimiser (``objective`` not filled in).

    Raises:
        ValueError: if a template precision or the offset normal equations are not positive definite.
    """
    k, m, d = stats.shape
    w, P, mu = stats.weights, stats.precs, stats.means
    g = np.asarray(gammas, dtype=np.float64)
    Wi = w.sum(axis=0)
    H = np.einsum("ai,a,aijk->ijk", w, g * g, P)  # (m, d, d)
    LH = [cholesky(H[i], "template precision") for i in range(m)]
    omega = np.array([Wi[i] * spd_inv(H[i], LH[i]) for i in range(m)])
    free = [a for a in range(k) if a != gauge]
    # b_i = sum_a w_ia g_a P_ia mu_ia ; nu_i = H_i^-1 (b_i - sum_a w_ia g_a P_ia c_a)
    Pmu = np.einsum("aijk,aik->aij", P, mu)
    b = np.einsum("ai,a,aij->ij", w, g, Pmu)
    # HinvP[i][a] = H_i^-1 P_ia (d x d)
    HinvP = [[spd_solve(H[i], P[a, i], LH[i]) for a in range(k)] for i in range(m)]
    Hinvb = np.array([spd_solve(H[i], b[i], LH[i]) for i in range(m)])
    nf = len(free)
    M = np.zeros((nf * d, nf * d))
    rhs = np.zeros(nf * d)
    for bi, bb in enumerate(free):
        rb = slice(bi * d, (bi + 1) * d)
        rhs[rb] = np.einsum("i,ij->j", w[bb], Pmu[bb]) - sum(w[bb, i] * g[bb] * (P[bb, i] @ Hinvb[i]) for i in range(m))
        for ai, aa in enumerate(free):
            ra = slice(ai * d, (ai + 1) * d)
            block = -sum(w[bb, i] * w[aa, i] * g[bb] * g[aa] * (P[bb, i] @ HinvP[i][aa]) for i in range(m))
            if aa == bb:
                block = block + np.einsum("i,ijk->jk", w[bb], P[bb])
            M[rb, ra] = block
    M = 0.5 * (M + M.T)
    cfree = spd_solve(M, rhs, cholesky(M, "offset normal equations")) if nf else np.zeros(0)
    offsets = np.zeros((k, d))
    for ai, aa in enumerate(free):
        offsets[aa] = cfree[ai * d : (ai + 1) * d]
    nu = np.array([Hinvb[i] - sum(w[a, i] * g[a] * (HinvP[i][a] @ offsets[a]) for a in range(k)) for i in range(m)])
    return ScaleFamilyParams(g.copy(), offsets, nu, omega)


def gamma_gradient(stats: CellFactors, params: ScaleFamilyParams) -> np.ndarray:
    """Envelope-theorem derivative of the profile objective with respect to ``log gamma_a``.

    Args:
        stats: the original cells (with all precisions).
        params: the inner minimiser at the current scales.

    Returns:
        ``(k,)`` the derivative per group.
    """
    k, m, d = stats.shape
    grad = np.zeros(k)
    for a in range(k):
        g = params.gammas[a]
        tot = 0.0
        for i in range(m):
            P = stats.precs[a, i]
            nu = params.template_means[i]
            r = g * nu + params.offsets[a] - stats.means[a, i]
            tot += stats.weights[a, i] * (g * float(np.sum(P * params.template_covs[i])) + r @ P @ nu - d / g)
        grad[a] = g * tot
    return grad

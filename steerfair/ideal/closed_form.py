"""Fast solvers for the KL-nearest ideal distribution in the scale family.

The ideal family (see docs/theory.md): every group ``a`` is an isotropic-scale affine image of
shared class templates ``N(nu_i, Omega_i)``::

    X | Y=i, A=a  ~  N(gamma_a nu_i + c_a, gamma_a^2 Omega_i),        gamma_a > 0,

which satisfies every condition of Proposition 3.2 exactly. With cell weights ``w_ia`` the
objective is ``sum_ia w_ia KL(N~_ia || N_ia)``.

* affirmative action (the reference group's parameters are the templates): strictly convex in
  ``(gamma, c)``, solved in closed form per group;
* all subgroups: for fixed ``gamma`` the problem is convex in ``(Omega, nu, c)`` with a closed-form
  solution; the profile over ``gamma`` is searched (grid + root of the envelope derivative for
  two groups, L-BFGS on ``log gamma`` for more).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from .._linalg import cholesky, spd_inv, spd_solve
from ..families.gaussian import Gaussian, gaussian_kl

__all__ = ["CellStats", "ScaleFamilyParams", "affirmative_closed_form", "all_inner_closed_form", "search_gammas"]


@dataclass(frozen=True)
class CellStats:
    """Original cell parameters with precomputed factorisations (``[a][i]`` indexing)."""

    means: np.ndarray  # (k, m, d)
    covs: np.ndarray  # (k, m, d, d)
    chols: np.ndarray  # (k, m, d, d)
    precs: np.ndarray  # (k, m, d, d)
    weights: np.ndarray  # (k, m) cell weights of the objective

    @classmethod
    def from_components(cls, comps: tuple[tuple[Gaussian, ...], ...], weights: np.ndarray) -> CellStats:
        means = np.array([[c.mean for c in row] for row in comps])
        covs = np.array([[c.cov for c in row] for row in comps])
        chols = np.array([[cholesky(S) for S in row] for row in covs])
        precs = np.array(
            [[spd_inv(S, L) for S, L in zip(rs, rl, strict=True)] for rs, rl in zip(covs, chols, strict=True)]
        )
        return cls(means, covs, chols, precs, np.asarray(weights, dtype=np.float64))

    @property
    def shape(self) -> tuple[int, int, int]:
        k, m, d = self.means.shape
        return k, m, d


@dataclass(frozen=True)
class ScaleFamilyParams:
    """Parameters of a member of the scale family."""

    gammas: np.ndarray  # (k,)
    offsets: np.ndarray  # (k, d)
    template_means: np.ndarray  # (m, d)
    template_covs: np.ndarray  # (m, d, d)

    def cell(self, a: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        g = self.gammas[a]
        return g * self.template_means[i] + self.offsets[a], g * g * self.template_covs[i]


def objective(stats: CellStats, params: ScaleFamilyParams) -> float:
    """``sum_ia w_ia KL(N~_ia || N_ia)``."""
    k, m, _ = stats.shape
    total = 0.0
    for a in range(k):
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


def affirmative_closed_form(stats: CellStats, reference: int) -> ScaleFamilyParams:
    """Affirmative action: the reference group is kept, every other group is fitted in closed form."""
    k, m, d = stats.shape
    nu, omega = stats.means[reference], stats.covs[reference]
    gammas = np.ones(k)
    offsets = np.zeros((k, d))
    for a in range(k):
        if a == reference:
            continue
        gammas[a], offsets[a] = affirmative_group(stats.means[a], stats.precs[a], stats.weights[a], nu, omega)
    return ScaleFamilyParams(gammas, offsets, nu.copy(), omega.copy())


# ----------------------------------------------------------------------------- all subgroups
def all_inner_closed_form(stats: CellStats, gammas: np.ndarray, gauge: int = 0) -> ScaleFamilyParams:
    """For fixed ``gammas``: the optimal templates and offsets (``c_gauge = 0``).

    ``Omega_i = W_i (sum_a w_ia g_a^2 P_ia)^{-1}``; the means solve a weighted least-squares problem,
    reduced to the offsets by a Schur complement (``(k-1) d`` unknowns).
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


def gamma_gradient(stats: CellStats, params: ScaleFamilyParams) -> np.ndarray:
    """Envelope-theorem derivative of the profile objective with respect to ``log gamma_a``."""
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


InnerSolver = Callable[[CellStats, np.ndarray, int], ScaleFamilyParams]


def search_gammas(
    stats: CellStats,
    inner: InnerSolver,
    start: np.ndarray,
    *,
    gauge: int = 0,
    half_width: float = 3.0,
    n_grid: int = 13,
    xtol: float = 1e-12,
) -> tuple[ScaleFamilyParams, dict[str, float]]:
    """Minimise the profile objective over ``log gamma`` (``gamma_gauge = 1``).

    Two groups (Proposition 4.3): evaluate the profile on a grid of ``n_grid`` points of
    ``log gamma`` centred at ``start`` (extending the grid while the minimum sits on its edge),
    then solve ``dJ/dlog gamma = 0`` with Brent's method inside the bracket around the best grid
    point. More groups: L-BFGS-B on ``log gamma`` with the envelope gradient (a local method).
    """
    k = stats.shape[0]
    free = [a for a in range(k) if a != gauge]
    evals = 0

    def params_at(s: np.ndarray) -> ScaleFamilyParams:
        nonlocal evals
        evals += 1
        g = np.ones(k)
        g[free] = np.exp(s)
        return inner(stats, g, gauge)

    s0 = np.log(np.asarray(start, dtype=np.float64)[free])
    if len(free) == 1:
        grid = list(s0[0] + np.linspace(-half_width, half_width, n_grid))
        vals = [objective(stats, params_at(np.array([s]))) for s in grid]
        step = grid[1] - grid[0]
        for _ in range(20):
            j = int(np.argmin(vals))
            if 0 < j < len(grid) - 1:
                break
            s_new = grid[0] - step if j == 0 else grid[-1] + step
            v_new = objective(stats, params_at(np.array([s_new])))
            if j == 0:
                grid.insert(0, s_new)
                vals.insert(0, v_new)
            else:
                grid.append(s_new)
                vals.append(v_new)
        j = int(np.argmin(vals))
        lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, len(grid) - 1)]
        deriv = lambda s: gamma_gradient(stats, params_at(np.array([s])))[free[0]]  # noqa: E731
        dlo, dhi = deriv(lo), deriv(hi)
        if dlo < 0 < dhi:
            s_star = optimize.brentq(deriv, lo, hi, xtol=xtol, rtol=4 * np.finfo(float).eps, maxiter=200)
        else:  # flat or one-sided: bounded scalar minimisation of the profile
            res = optimize.minimize_scalar(
                lambda s: objective(stats, params_at(np.array([s]))),
                bounds=(lo, hi),
                method="bounded",
                options={"xatol": 1e-10},
            )
            s_star = float(res.x)
        best = params_at(np.array([s_star]))
        return best, {"evaluations": float(evals), "grid_points": float(len(grid))}
    fun = lambda s: objective(stats, params_at(s))  # noqa: E731
    jac = lambda s: gamma_gradient(stats, params_at(s))[free]  # noqa: E731
    res = optimize.minimize(fun, s0, jac=jac, method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 500})
    return params_at(res.x), {"evaluations": float(evals), "lbfgs_iterations": float(res.nit)}

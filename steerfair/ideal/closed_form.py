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

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize
from scipy.linalg import blas, lapack, solve_triangular

from ..families.gaussian import Gaussian, gaussian_kl
from ..linalg import (
    Tridiagonal,
    cholesky,
    cholesky_lower_stored,
    eigh_sym,
    eigvalsh_sym,
    gram_lower_t,
    spd_inv,
    spd_solve,
    sym_from_lower,
    tril_solve_tril,
    whiten_lower,
)

__all__ = ["CellStats", "ScaleFamilyParams", "affirmative_closed_form", "all_inner_closed_form", "search_gammas"]


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
class CellStats:
    """Original cell parameters with precomputed factorisations (``[a, i]`` indexing)."""

    means: np.ndarray  # (k, m, d)
    covs: CellMatrices  # (k, m, d, d)
    chols: CellMatrices  # (k, m, d, d)
    precs: np.ndarray  # (k, m, d, d)
    weights: np.ndarray  # (k, m) cell weights of the objective

    @classmethod
    def from_components(
        cls, comps: tuple[tuple[Gaussian, ...], ...], weights: np.ndarray, precisions_for: list[int] | None = None
    ) -> CellStats:
        """Collect cell parameters; precision matrices are formed (by Cholesky solves) only for the
        groups in ``precisions_for`` (default: all), the others are left as zeros."""
        means = np.array([[c.mean for c in row] for row in comps])
        covs = CellMatrices([[c.cov for c in row] for row in comps])
        chols = CellMatrices([[c._chol for c in row] for row in comps])
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
        k, m, d = self.means.shape
        return k, m, d


@dataclass(frozen=True)
class ScaleFamilyParams:
    """Parameters of a member of the scale family."""

    gammas: np.ndarray  # (k,)
    offsets: np.ndarray  # (k, d)
    template_means: np.ndarray  # (m, d)
    template_covs: np.ndarray  # (m, d, d)
    objective: float | None = None  # sum_ia w_ia KL(N~_ia || N_ia) where the solver has it at no extra cost
    template_chols: np.ndarray | None = None  # lower Cholesky factors of the templates, where known for free

    def cell(self, a: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        g = self.gammas[a]
        return g * self.template_means[i] + self.offsets[a], g * g * self.template_covs[i]


def objective(stats: CellStats, params: ScaleFamilyParams, skip: tuple[int, ...] = ()) -> float:
    """``sum_ia w_ia KL(N~_ia || N_ia)`` (groups in ``skip`` are known to be unchanged: KL 0)."""
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
    per class). ``traces`` (the two traces) and ``LK`` (the Cholesky factor of ``w_0 S_1 + w_1 S_0``)
    may be passed when the caller already has them.
    """
    d = means.shape[1]
    W = float(w.sum())
    if LK is None:
        LK = cholesky(w[0] * covs[1] + w[1] * covs[0], "weighted covariance sum")

    def Hinv(x: np.ndarray) -> np.ndarray:
        return covs[1] @ _tri(LK, _tri(LK, covs[0] @ x), trans="T")

    def P(i: int, x: np.ndarray) -> np.ndarray:
        return _tri(chols[i], _tri(chols[i], x), trans="T")

    if traces is None:
        traces = _omega_traces(chols, omega_chols)
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


def _omega_traces(chols: Sequence[np.ndarray], omega_chols: Sequence[np.ndarray]) -> list[float]:
    """``tr(S_i^-1 Omega_i) = ||L_i^-1 R_i||_F^2`` for the two classes, from the Cholesky factors."""
    traces = []
    for i in range(2):
        M = tril_solve_tril(chols[i], omega_chols[i])  # L_i^-1 R_i
        traces.append(float(np.sum(M * M)))
    return traces


def affirmative_closed_form(stats: CellStats, reference: int) -> ScaleFamilyParams:
    """Affirmative action: the reference group is kept, every other group is fitted in closed form."""
    k, m, d = stats.shape
    nu, omega = stats.means[reference], stats.covs[reference]
    gammas = np.ones(k)
    offsets = np.zeros((k, d))
    total: float | None = 0.0
    for a in range(k):
        if a == reference:
            continue
        if m == 2:
            traces = _omega_traces(stats.chols.row(a), stats.chols.row(reference))
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


def _affirmative_kl(stats: CellStats, a: int, ref: int, g: float, c: np.ndarray, traces: list[float]) -> float:
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


def _default_start(stats: CellStats, gauge: int) -> np.ndarray:
    """The affirmative closed form's ``gamma`` with ``gauge`` as the reference."""
    return affirmative_closed_form(stats, gauge).gammas


def _log_start(start: np.ndarray, gauge: int) -> np.ndarray:
    return np.log(np.delete(np.asarray(start, dtype=np.float64), gauge))


def _clip_relative_eigenvalues(kappa: np.ndarray, i: int) -> np.ndarray:
    """Clip the ascending generalized eigenvalues ``kappa`` of class ``i``'s pair of cell covariances at a
    rounding floor, with a warning when the pair is numerically singular."""
    floor = 64 * np.finfo(float).eps * max(float(kappa[-1]), 1e-300)
    if kappa[0] <= floor:  # rounding in a numerically singular pair of cell covariances
        warnings.warn(
            f"class {i}: the cell covariances are numerically singular relative to each other "
            f"(generalized eigenvalue {kappa[0]:.1e}); clipped at {floor:.1e}. Consider reg= or shrinkage=.",
            RuntimeWarning,
            stacklevel=3,
        )
        kappa = np.maximum(kappa, floor)
    return kappa


class _CachedProfile:
    """Memoised evaluation of a two-group profile: subclasses set ``self._cache = {}`` and implement
    ``_evaluate(s) -> (value, derivative, ...)`` at ``log gamma = s``."""

    _cache: dict[float, Any]

    def _evaluate(self, s: float) -> Any:
        raise NotImplementedError

    def _solve(self, s: float) -> Any:
        if s not in self._cache:
            self._cache[s] = self._evaluate(s)
        return self._cache[s]

    def value(self, s: float) -> float:
        """Profile objective at ``log gamma = s``."""
        return self._solve(s)[0]

    def derivative(self, s: float) -> float:
        """``dJ / dlog gamma`` (envelope theorem)."""
        return self._solve(s)[1]


class TwoGroupProfile(_CachedProfile):
    """The all-subgroup profile ``J(log gamma)`` for two groups in ``O(d^2)`` memory passes per point.

    Per class ``i`` a generalized eigendecomposition (one Cholesky, two triangular solves and one
    ``eigh``, computed once) gives ``B_i`` with ``B_i^T P_{0i} B_i = I`` and
    ``B_i^T P_{1i} B_i = diag(lam_i)``. In that basis every template precision
    ``H_i = w_0i P_0i + w_1i g^2 P_1i`` is diagonal, so the templates, the KL terms and the envelope
    derivative are elementwise; only the offset normal equations
    ``sum_i G_i^T diag(E_i) G_i c = rhs`` (``G_i = B_i^{-1}``) need one symmetric rank-``d`` update and
    one Cholesky per evaluation. Group ``gauge`` has ``gamma = 1`` and offset 0.
    """

    def __init__(self, stats: CellStats, gauge: int = 0) -> None:
        from scipy.linalg import solve_triangular

        k, m, d = stats.shape
        if k != 2:
            raise ValueError("TwoGroupProfile needs exactly two groups")
        self.stats, self.g0, self.g1 = stats, gauge, 1 - gauge
        self.d, self.m = d, m
        self.w0, self.w1 = stats.weights[self.g0], stats.weights[self.g1]
        self.lam, self.G, self.B, self.mu0h, self.mu1h, self.logdet_ratio = [], [], [], [], [], []
        for i in range(m):
            L = stats.chols[self.g0, i]
            S1 = stats.covs[self.g1, i]
            Linv_S1 = solve_triangular(L, S1, lower=True, check_finite=False)
            C = solve_triangular(L, Linv_S1.T, lower=True, check_finite=False)
            kappa, V = eigh_sym(C)
            kappa = _clip_relative_eigenvalues(kappa, i)
            G = solve_triangular(L, np.eye(d), lower=True, check_finite=False)  # L^-1
            G = V.T @ G
            self.lam.append(1.0 / kappa)
            self.G.append(G)
            self.B.append(L @ V)
            self.mu0h.append(G @ stats.means[self.g0, i])
            self.mu1h.append(G @ stats.means[self.g1, i])
            self.logdet_ratio.append(float(np.sum(np.log(kappa))))  # logdet S_1i - logdet S_0i
        self._cache = {}

    def _evaluate(self, s: float) -> tuple[float, float, np.ndarray, list[np.ndarray]]:
        from scipy.linalg import blas

        g = float(np.exp(s))
        d = self.d
        M = np.zeros((d, d), order="F")
        rhs = np.zeros(d)
        Ds, Es = [], []
        for i in range(self.m):
            w0, w1, lam = self.w0[i], self.w1[i], self.lam[i]
            D = w0 + w1 * g * g * lam
            E = w0 * w1 * lam / D
            Ds.append(D)
            Es.append(E)
            SG = np.sqrt(E)[:, None] * self.G[i]
            M = blas.dsyrk(1.0, SG, beta=1.0, c=M, trans=1, lower=1, overwrite_c=1)
            rhs += self.G[i].T @ (E * (self.mu1h[i] - g * self.mu0h[i]))
        M = np.tril(M) + np.tril(M, -1).T
        c = spd_solve(M, rhs, cholesky(M, "offset normal equations"))
        value, deriv = 0.0, 0.0
        nuh = []
        for i in range(self.m):
            w0, w1, lam, D = self.w0[i], self.w1[i], self.lam[i], Ds[i]
            W = w0 + w1
            ch = self.G[i] @ c
            nh = (w0 * self.mu0h[i] + w1 * g * lam * (self.mu1h[i] - ch)) / D
            nuh.append(nh)
            logterm = float(np.sum(np.log(D))) - d * np.log(W)  # logdet S_0i - logdet Omega_i
            r0 = nh - self.mu0h[i]
            kl0 = 0.5 * (W * float(np.sum(1.0 / D)) + float(r0 @ r0) - d + logterm)
            r1 = g * nh + ch - self.mu1h[i]
            tr1 = g * g * W * float(np.sum(lam / D))
            kl1 = 0.5 * (tr1 + float(np.sum(lam * r1 * r1)) - d + self.logdet_ratio[i] - 2 * d * s + logterm)
            value += w0 * kl0 + w1 * kl1
            deriv += w1 * (tr1 + g * float(np.sum(lam * r1 * nh)) - d)
        return value, deriv, c, nuh

    def params(self, s: float) -> ScaleFamilyParams:
        """The full minimiser at ``log gamma = s``."""
        _, _, c, nuh = self._solve(s)
        g = float(np.exp(s))
        gam = np.ones(2)
        gam[self.g1] = g
        offsets = np.zeros((2, self.d))
        offsets[self.g1] = c
        nu = np.array([self.B[i] @ nuh[i] for i in range(self.m)])
        omegas = []
        for i in range(self.m):
            W = self.w0[i] + self.w1[i]
            D = self.w0[i] + self.w1[i] * g * g * self.lam[i]
            Om = (self.B[i] * (W / D)) @ self.B[i].T
            omegas.append(0.5 * (Om + Om.T))
        return ScaleFamilyParams(gam, offsets, nu, np.array(omegas))


def _tri(L: np.ndarray, b: np.ndarray, trans: str = "N") -> np.ndarray:
    """``L^-1 b`` (or ``L^-T b``) for lower-triangular ``L`` (no copy of ``L`` in either memory order)."""
    return solve_triangular(L, b, lower=True, trans=trans, check_finite=False)


def _eigvals_lower(A: np.ndarray) -> np.ndarray:
    """Eigenvalues of the symmetric matrix whose lower triangle ``A`` holds (``A`` is not modified)."""
    return eigvalsh_sym(A, lower_stored=True)


class TwoByTwoProfile(_CachedProfile):
    """The all-subgroup profile ``J(log gamma)`` for two groups and two classes in ``O(d)`` per point.

    Derivation (docs/theory.md, "Two groups, two classes"). Group ``gauge`` (index 0 below) has
    ``gamma = 1`` and offset 0; the other group (1) has ``gamma = g`` and offset ``c``. For fixed
    ``g`` the profile splits into

    * a covariance part, class by class: the optimal template ``Omega_i = W_i H_i^-1`` with
      ``H_i = w_0i P_0i + w_1i g^2 P_1i`` leaves
      ``1/2 [W_i (sum_k log(w_0i + w_1i g^2 lam_ik) - d log W_i) + w_1i (logdet S_1i - logdet S_0i - 2 d log g)]``,
      a function of the generalized eigenvalues ``lam_i`` of ``(P_1i, P_0i)`` alone (computed once,
      without eigenvectors, from ``G_i = L_0i^-1 L_1i``: ``eig(G_i^T G_i) = 1 / lam_i``);
    * a mean part: eliminating each template mean ``nu_i`` leaves ``sum_i |c - delta_i|^2_{X_i^-1}``
      with ``delta_i = mu_1i - g mu_0i`` and ``X_i = S_1i / w_1i + g^2 S_0i / w_0i``; eliminating ``c``
      leaves ``1/2 e^T (X_0 + X_1)^-1 e`` with ``e = delta_0 - delta_1``. ``X_0 + X_1 = Sigma_A + g^2
      Sigma_C`` is a pencil: whitening by ``chol(Sigma_A)`` and one tridiagonalisation of
      ``K = L_A^-1 Sigma_C L_A^-T`` make every evaluation a tridiagonal solve.

    The set-up is three ``O(d^3)`` reductions (two eigenvalue-only decompositions, one
    tridiagonalisation) plus triangular solves; every evaluation of the value and of the envelope
    derivative is ``O(d)``. The minimiser (templates, offset) is formed once at the end from one
    Cholesky factorisation per class. Agrees with :class:`TwoGroupProfile` (tests/test_ideal.py).
    """

    def __init__(self, stats: CellStats, gauge: int = 0) -> None:
        k, m, d = stats.shape
        if k != 2 or m != 2:
            raise ValueError("TwoByTwoProfile needs exactly two groups and two classes")
        self.stats, self.g0, self.g1 = stats, gauge, 1 - gauge
        self.d = d
        self.w0, self.w1 = stats.weights[self.g0], stats.weights[self.g1]
        if np.any(self.w0 <= 0) or np.any(self.w1 <= 0):
            raise ValueError("TwoByTwoProfile needs positive cell weights")
        self.W = self.w0 + self.w1
        L0 = [stats.chols[self.g0, i] for i in range(2)]
        L1 = [stats.chols[self.g1, i] for i in range(2)]
        self.GtG: list[np.ndarray] = []  # G_i^T G_i (lower triangle), G_i = L_0i^-1 L_1i
        self.lam: list[np.ndarray] = []
        self.logdet_ratio: list[float] = []
        for i in range(2):
            GtG = gram_lower_t(tril_solve_tril(L0[i], L1[i]))
            self.GtG.append(GtG)
            kappa = _eigvals_lower(GtG)  # eigenvalues of G G^T = L_0i^-1 S_1i L_0i^-T
            kappa = _clip_relative_eigenvalues(kappa, i)
            self.lam.append(1.0 / kappa)
            self.logdet_ratio.append(float(np.sum(np.log(kappa))))  # logdet S_1i - logdet S_0i
        # mean part: the pencil (Sigma_A, Sigma_C)
        SA = stats.covs[self.g1, 0] / self.w1[0] + stats.covs[self.g1, 1] / self.w1[1]
        SC = stats.covs[self.g0, 0] / self.w0[0] + stats.covs[self.g0, 1] / self.w0[1]
        self.LA = cholesky_lower_stored(SA, "weighted covariance sum")
        self.tri = Tridiagonal(whiten_lower(SC, self.LA), lower_stored=True)
        a1 = stats.means[self.g1, 0] - stats.means[self.g1, 1]
        a0 = stats.means[self.g0, 0] - stats.means[self.g0, 1]
        pq = solve_triangular(self.LA, np.stack([a1, a0], axis=1), lower=True, check_finite=False)
        pq = self.tri.qt(pq)
        self.p, self.q = pq[:, 0], pq[:, 1]
        self._cache = {}

    def affirmative_start(self) -> float:
        """``gamma`` of the affirmative closed form for the non-gauge group (the search's start), from
        the set-up's factors in ``O(d^2)``: ``K = w_10 w_11 Sigma_A`` and ``tr(P_1i S_0i) = sum lam_i``."""
        st = self.stats
        LK = np.sqrt(self.w1[0] * self.w1[1]) * self.LA
        traces = [float(np.sum(lam)) for lam in self.lam]
        g, _ = affirmative_group_two_classes(
            st.means[self.g1],
            st.covs.row(self.g1),
            st.chols.row(self.g1),
            self.w1,
            st.means[self.g0],
            st.chols.row(self.g0),
            traces=traces,
            LK=LK,
        )
        return g

    def _evaluate(self, s: float) -> tuple[float, float]:
        g = float(np.exp(s))
        d = self.d
        value, deriv = 0.0, 0.0
        for i in range(2):
            w0, w1, W, lam = self.w0[i], self.w1[i], self.W[i], self.lam[i]
            D = w0 + w1 * g * g * lam
            value += 0.5 * (W * (float(np.sum(np.log(D))) - d * np.log(W)) + w1 * (self.logdet_ratio[i] - 2 * d * s))
            deriv += W * w1 * g * g * float(np.sum(lam / D)) - d * w1
        r = self.p - g * self.q
        y = self.tri.solve_shifted(g * g, r)
        value += 0.5 * float(r @ y)
        # d/dg [r^T (I + g^2 T)^-1 r] = -2 q^T y - 2 g y^T T y; times g / 2 for d/dlog g
        deriv += -g * float(self.q @ y) - g * g * float(y @ self.tri.matvec_t(y))
        return value, deriv

    def params(self, s: float) -> ScaleFamilyParams:
        """The full minimiser at ``log gamma = s``.

        Per class, ``F_i = w_0i G_i^T G_i + w_1i g^2 I`` (``= L_1i^T H_i L_1i``) is factorised "upper-lower",
        ``F_i = U U^T`` with ``U`` upper triangular (a Cholesky factorisation of the index-reversed matrix).
        Then ``H_i^-1 = L_1i F_i^-1 L_1i^T = X X^T`` with ``X = L_1i U^-T`` *lower* triangular, so the
        template ``Omega_i = W_i X X^T`` comes with its Cholesky factor ``sqrt(W_i) X`` for free, and ``X``
        is a triangular solve with a triangular right-hand side.
        """
        st, g0, g1 = self.stats, self.g0, self.g1
        g = float(np.exp(s))
        d = self.d
        # offset: c = delta_0 - X_0 (X_0 + X_1)^-1 e
        r = self.p - g * self.q
        y = self.tri.solve_shifted(g * g, r)
        z = solve_triangular(self.LA, self.tri.q(y), lower=True, trans="T", check_finite=False)
        delta0 = st.means[g1, 0] - g * st.means[g0, 0]
        c = delta0 - (st.covs[g1, 0] @ z) / self.w1[0] - (g * g / self.w0[0]) * (st.covs[g0, 0] @ z)
        nus, omegas, chols = [], np.empty((2, d, d)), np.empty((2, d, d))
        for i in range(2):
            w0, w1, W = self.w0[i], self.w1[i], self.W[i]
            L0, L1 = st.chols[g0, i], st.chols[g1, i]
            F = w0 * self.GtG[i]  # lower triangle valid
            F[np.diag_indices(d)] += w1 * g * g
            # J F J = Lr Lr^T (J: index reversal; J F J's *upper* triangle holds F's lower one), U = J Lr J
            R, info = lapack.dpotrf(F[::-1, ::-1], lower=0, clean=1)
            if info != 0:
                raise ValueError("template precision is not positive definite; regularise the cell covariances")
            Lr = R.T
            # J X^T J = Lr^-1 (J L1^T J), both factors lower triangular
            X = tril_solve_tril(Lr, L1.T[::-1, ::-1]).T[::-1, ::-1]
            # nu_i = L1 F^-1 [w0 G^T L0^-1 mu_0i + w1 g L1^-1 (mu_1i - c)] = X U^-1 [...],  G^T x = L1^T L0^-T x
            x = _tri(L0, _tri(L0, st.means[g0, i]), trans="T")
            b = w0 * (L1.T @ x) + (w1 * g) * _tri(L1, st.means[g1, i] - c)
            nus.append(X @ _tri(Lr, b[::-1])[::-1])
            sym_from_lower(blas.dsyrk(W, X, trans=0, lower=1), out=omegas[i])
            np.multiply(np.sqrt(W), X, out=chols[i])
        gam = np.ones(2)
        gam[g1] = g
        offsets = np.zeros((2, d))
        offsets[g1] = c
        return ScaleFamilyParams(gam, offsets, np.array(nus), omegas, objective=self.value(s), template_chols=chols)


def _search_1d(
    value: Callable[[float], float],
    derivative: Callable[[float], float],
    s0: float,
    half_width: float,
    n_grid: int,
    xtol: float,
) -> tuple[float, int]:
    """Grid (extended while the minimum sits on an edge) + Brent root of the derivative in the
    bracket around the best grid point; falls back to bounded minimisation if the derivative does
    not change sign there. Returns ``(s*, grid size)``."""
    grid = list(s0 + np.linspace(-half_width, half_width, n_grid))
    vals = [value(s) for s in grid]
    step = grid[1] - grid[0]
    for _ in range(20):
        j = int(np.argmin(vals))
        if 0 < j < len(grid) - 1:
            break
        s_new = grid[0] - step if j == 0 else grid[-1] + step
        if j == 0:
            grid.insert(0, s_new)
            vals.insert(0, value(s_new))
        else:
            grid.append(s_new)
            vals.append(value(s_new))
    j = int(np.argmin(vals))
    lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, len(grid) - 1)]
    if derivative(lo) < 0 < derivative(hi):
        s_star = optimize.brentq(derivative, lo, hi, xtol=xtol, rtol=4 * np.finfo(float).eps, maxiter=200)
    else:
        res = optimize.minimize_scalar(value, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10})
        s_star = float(res.x)
    return float(s_star), len(grid)


def search_gammas(
    stats: CellStats,
    inner: InnerSolver | None,
    start: np.ndarray | None,
    *,
    gauge: int = 0,
    half_width: float = 3.0,
    n_grid: int = 13,
    xtol: float = 1e-12,
    two_by_two: bool = True,
) -> tuple[ScaleFamilyParams, dict[str, float]]:
    """Minimise the profile objective over ``log gamma`` (``gamma_gauge = 1``).

    Two groups (Proposition 4.3): evaluate the profile on a grid of ``n_grid`` points of
    ``log gamma`` centred at ``start`` (extending the grid while the minimum sits on its edge),
    then solve ``dJ/dlog gamma = 0`` with Brent's method inside the bracket around the best grid
    point. With ``inner=None`` (the fast path) the two-group profile uses :class:`TwoByTwoProfile`
    for two classes (``two_by_two=False`` forces the general one) and :class:`TwoGroupProfile` for more.
    More groups: L-BFGS-B on ``log gamma`` with the envelope gradient (a local method).

    ``start``: the ``gamma`` per group at the centre of the search (normalised to the gauge);
    ``None`` means the affirmative closed form (what :func:`~steerfair.ideal.solve_nearest_ideal`
    uses), which the two-class profile computes from its own factorisations.
    """
    k, m, _ = stats.shape
    free = [a for a in range(k) if a != gauge]
    if len(free) == 1 and inner is None:
        prof: TwoByTwoProfile | TwoGroupProfile
        if m == 2 and two_by_two and np.all(stats.weights > 0):
            prof = TwoByTwoProfile(stats, gauge)
            s0 = float(np.log(prof.affirmative_start())) if start is None else _log_start(start, gauge)[0]
        else:
            prof = TwoGroupProfile(stats, gauge)
            s0 = _log_start(_default_start(stats, gauge) if start is None else start, gauge)[0]
        s_star, n = _search_1d(prof.value, prof.derivative, float(s0), half_width, n_grid, xtol)
        return prof.params(s_star), {"evaluations": float(len(prof._cache)), "grid_points": float(n)}
    s0 = _log_start(_default_start(stats, gauge) if start is None else start, gauge)
    inner = all_inner_closed_form if inner is None else inner
    cache: dict[tuple[float, ...], ScaleFamilyParams] = {}

    def params_at(s: np.ndarray) -> ScaleFamilyParams:
        key = tuple(np.atleast_1d(s).tolist())
        if key not in cache:
            g = np.ones(k)
            g[free] = np.exp(s)
            cache[key] = inner(stats, g, gauge)
        return cache[key]

    if len(free) == 1:
        value = lambda s: objective(stats, params_at(np.array([s])))  # noqa: E731
        deriv = lambda s: gamma_gradient(stats, params_at(np.array([s])))[free[0]]  # noqa: E731
        s_star, n = _search_1d(value, deriv, float(s0[0]), half_width, n_grid, xtol)
        return params_at(np.array([s_star])), {"evaluations": float(len(cache)), "grid_points": float(n)}
    fun = lambda s: objective(stats, params_at(s))  # noqa: E731
    jac = lambda s: gamma_gradient(stats, params_at(s))[free]  # noqa: E731
    res = optimize.minimize(fun, s0, jac=jac, method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 500})
    return params_at(res.x), {"evaluations": float(len(cache)), "lbfgs_iterations": float(res.nit)}

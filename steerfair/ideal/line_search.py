"""Line searches over the scale of the isotropic-scale family (all subgroups, Proposition 4.3).

For fixed per-group scales ``gamma`` the all-subgroup problem has a closed-form minimiser
(:func:`steerfair.ideal.scale_family.all_inner_closed_form`); this module searches the profile
``J(log gamma)``: grid + Brent root of the envelope derivative for two groups (with the
``O(d)``-per-point :class:`TwoByTwoProfile` for two classes and the generalized-eigenbasis
:class:`TwoGroupProfile` otherwise), L-BFGS-B on ``log gamma`` for more groups.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.linalg import blas, lapack, solve_triangular

from ..linalg import (
    Tridiagonal,
    cholesky,
    cholesky_lower_stored,
    eigh_sym,
    eigvalsh_sym,
    gram_lower_t,
    spd_solve,
    sym_from_lower,
    tril_solve_tril,
    whiten_lower,
)
from ..warning_location import user_stacklevel
from .scale_family import (
    CellFactors,
    ScaleFamilyParams,
    affirmative_closed_form,
    affirmative_group_two_classes,
    all_inner_closed_form,
    gamma_gradient,
    objective,
    tri_solve,
)

__all__ = ["InnerSolver", "TwoByTwoProfile", "TwoGroupProfile", "search_gammas"]


InnerSolver = Callable[[CellFactors, np.ndarray, int], ScaleFamilyParams]


def _default_start(stats: CellFactors, gauge: int) -> np.ndarray:
    """The affirmative closed form's ``gamma`` with ``gauge`` as the reference."""
    return affirmative_closed_form(stats, gauge).gammas


def _log_start(start: np.ndarray, gauge: int) -> np.ndarray:
    """``log gamma`` of the non-gauge groups."""
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
            stacklevel=user_stacklevel(),
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

    Args:
        stats: the original cells of two groups (any number of classes).
        gauge: the group with ``gamma = 1`` and offset 0.

    Raises:
        ValueError: if there are not exactly two groups.
    """

    def __init__(self, stats: CellFactors, gauge: int = 0) -> None:
        k, m, d = stats.shape
        if k != 2:
            raise ValueError("TwoGroupProfile needs exactly two groups")
        self.stats, self.g0, self.g1 = stats, gauge, 1 - gauge
        self.d, self.m = d, m
        self.w0, self.w1 = stats.weights[self.g0], stats.weights[self.g1]
        self.lam, self.G, self.B, self.mu0h, self.mu1h, self.logdet_ratio = [], [], [], [], [], []
        self.clipped = False  # a numerically singular pair: its eigenvalues clipped (the value is then a proxy)
        for i in range(m):
            L = stats.chols[self.g0, i]
            S1 = stats.covs[self.g1, i]
            Linv_S1 = solve_triangular(L, S1, lower=True, check_finite=False)
            C = solve_triangular(L, Linv_S1.T, lower=True, check_finite=False)
            kappa, V = eigh_sym(C)
            clipped = _clip_relative_eigenvalues(kappa, i)
            self.clipped = self.clipped or bool(np.any(clipped != kappa))
            kappa = clipped
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
        """The full minimiser at ``log gamma = s``.

        Args:
            s: ``log gamma`` of the non-gauge group.

        Returns:
            The parameters (``objective`` not filled in).
        """
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

    Args:
        stats: the original cells of two groups and two classes, all weights positive.
        gauge: the group with ``gamma = 1`` and offset 0.

    Raises:
        ValueError: for other shapes or non-positive weights.
    """

    def __init__(self, stats: CellFactors, gauge: int = 0) -> None:
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
        self.clipped = False  # a numerically singular pair: its eigenvalues clipped (the value is then a proxy)
        for i in range(2):
            GtG = gram_lower_t(tril_solve_tril(L0[i], L1[i]))
            self.GtG.append(GtG)
            kappa = eigvalsh_sym(GtG, lower_stored=True)  # eigenvalues of G G^T = L_0i^-1 S_1i L_0i^-T
            clipped = _clip_relative_eigenvalues(kappa, i)
            self.clipped = self.clipped or bool(np.any(clipped != kappa))
            kappa = clipped
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
        the set-up's factors in ``O(d^2)``: ``K = w_10 w_11 Sigma_A`` and ``tr(P_1i S_0i) = sum lam_i``.

        Returns:
            The non-gauge group's ``gamma``.
        """
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

        Args:
            s: ``log gamma`` of the non-gauge group.

        Returns:
            The parameters, with ``objective`` and ``template_chols``.

        Raises:
            ValueError: if a template precision is not positive definite.
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
            x = tri_solve(L0, tri_solve(L0, st.means[g0, i]), trans="T")
            b = w0 * (L1.T @ x) + (w1 * g) * tri_solve(L1, st.means[g1, i] - c)
            nus.append(X @ tri_solve(Lr, b[::-1])[::-1])
            sym_from_lower(blas.dsyrk(W, X, trans=0, lower=1), out=omegas[i])
            np.multiply(np.sqrt(W), X, out=chols[i])
        gam = np.ones(2)
        gam[g1] = g
        offsets = np.zeros((2, d))
        offsets[g1] = c
        return ScaleFamilyParams(gam, offsets, np.array(nus), omegas, objective=None if self.clipped else self.value(s),
                                 template_chols=chols)  # fmt: skip


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
    not change sign there.

    Args:
        value, derivative: the profile and its derivative.
        s0: centre of the grid.
        half_width: half width of the initial grid.
        n_grid: number of initial grid points.
        xtol: absolute tolerance of Brent's method.

    Returns:
        ``(s*, grid size)``.
    """
    from scipy import optimize  # lazy: keeps `import steerfair` light (docs/benchmarks.md)

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


#: how far (in ``log gamma``) the search for three or more groups may go from its start: gammas ``e^10`` times
#: larger or smaller than the affirmative closed form's
SEARCH_BOUND = 10.0


def search_gammas(
    stats: CellFactors,
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

    Args:
        stats: the original cells and weights.
        inner: the solver of the inner problem at fixed ``gamma`` (``None``: the fast profiles /
            :func:`all_inner_closed_form`; the cvxpy reference passes its own).
        start: the ``gamma`` per group at the centre of the search (normalised to the gauge);
            ``None`` means the affirmative closed form (what :func:`~steerfair.ideal.solve_nearest_ideal`
            uses), which the two-class profile computes from its own factorisations.
        gauge: the group with ``gamma = 1`` and offset 0.
        half_width, n_grid, xtol: the two-group search's grid and tolerance.
        two_by_two: use :class:`TwoByTwoProfile` where it applies.

    Returns:
        ``(params, info)``: the minimiser and solver statistics (evaluations, grid points or L-BFGS iterations).
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
    from scipy import optimize  # lazy: keeps `import steerfair` light (docs/benchmarks.md)

    # bounded about the start: an unbounded first step jumped to gamma ~ 1e10 on a well-conditioned model, where the
    # offsets' normal equations lose positive definiteness (SEARCH_BOUND in log gamma is a factor of about 2e4)
    bounds = [(float(v) - SEARCH_BOUND, float(v) + SEARCH_BOUND) for v in np.atleast_1d(s0)]
    res = optimize.minimize(
        fun, s0, jac=jac, method="L-BFGS-B", bounds=bounds, options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 500}
    )
    if res.status == 1:  # out of iterations (an "abnormal" line search is rounding at the minimum: not warned)
        warnings.warn(
            f"the search over the groups' scales stopped after {res.nit} iterations without converging; the ideal "
            "returned is the best point found, possibly not the nearest",
            RuntimeWarning,
            stacklevel=user_stacklevel(),
        )
    return params_at(res.x), {"evaluations": float(len(cache)), "lbfgs_iterations": float(res.nit)}

"""A trust-region Newton method for one group's map over the affine family, in the Fisher metric.

One group's problem with the templates ``(nu_i, Omega_i)`` fixed (docs/theory.md, section 12)::

    min_{L, c}  sum_i w_i KL(N(L nu_i + c, L Omega_i L^T) || N(mu_i, S_i)).

Coordinates: ``L = U X V^T`` with ``U^T (sum_i w_i P_i) U = I``, ``U^T P_0 U`` diagonal, and ``V^T Omega_i V =
Lambda_i`` (``V^T Omega_bar V = I``, ``V^T Omega_0 V`` diagonal); for two classes every ``M_i = U^T P_i U`` and
``Lambda_i`` is diagonal, so the objective, its gradient and its Hessian-vector products cost ``O(d^2)`` plus
one LU factorisation and two ``d x d`` products (``-W log|det X|``). The offset is profiled (closed form).

Steps are modelled in the relative coordinates ``X -> X (I + G)`` and taken along the Cayley retraction
``X -> X (I - G/2)^-1 (I + G/2)``. In relative coordinates the Hessian at a perfect fit is the
Fisher information of the ideal cells, which depends on the templates only: pairs ``(G_jk, G_kj)`` form
``2 x 2`` blocks ``[[A_jk, W], [W, A_kj]]`` with ``A_jk = sum_i w_i lambda_ik / lambda_ij``, and the mean part
is rank ``m - 1`` per row. That constant matrix (inverted once, by the Woodbury identity with an
``(m-1) d`` capacitance matrix) preconditions truncated conjugate gradients on the exact Newton system and
is the norm of the trust region (Steihaug-Toint). Near a good fit the preconditioned system is close to the
identity, so few CG iterations are needed whatever ``d``.

Why these choices (measured on ``recipes/bench_solver.py``'s random models, d = 128): line-searched Newton
with additive steps needed 63 steps and 881 CG iterations, most of them crawling along a curved valley: the
near-flat directions are rotations between nearly equal pencil eigenvalues, which a straight step leaves. The
Cayley retraction follows them (12-16 steps), and the trust region replaces the short gradient-like steps
that line search takes where the Hessian is indefinite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve, lu_factor, lu_solve, solve_triangular

from ..linalg import cholesky, eigh_sym

#: the trust radius below which :func:`newton_map` stops (a step that small changes nothing in float64)
RADIUS_FLOOR = 1e-14
#: an outer loop resumes :func:`newton_map` from the last trust radius, but from at least this one
RESUME_RADIUS = 1e-3
#: relative floor on the determinant of each 2 x 2 pair block of the Fisher metric (flat pairs stay invertible)
PAIR_FLOOR = 1e-12
#: the value's rounding floor in units of ``eps * d`` (:func:`stopping_tolerance`)
VALUE_NOISE_ULPS = 8.0

__all__ = [
    "RESUME_RADIUS",
    "GroupMapProblem",
    "NewtonResult",
    "cayley",
    "congruence_basis",
    "newton_map",
    "steihaug_cg",
    "stopping_tolerance",
]


def stopping_tolerance(rtol: float, value: float, d: int) -> float:
    """The threshold on the squared Fisher norm of the gradient (about twice the decrease a Newton step would
    still give): ``rtol * max(1, |value|)``, but at least ``VALUE_NOISE_ULPS * eps * d``.

    The values sum terms of size ``d`` (traces, log-determinants), so a decrease below about ``eps * d`` cannot be
    told from rounding by the trust region's ratio of actual to predicted decrease. Without the floor, at d = 1024
    (``recipes/bench_solver.py``'s model) the affirmative solve ended with 14 rejected steps of shrinking radius and
    the all-subgroup tail with 9, each a Hessian-vector product and an evaluation.
    """
    return max(rtol * max(1.0, abs(value)), VALUE_NOISE_ULPS * float(np.finfo(np.float64).eps) * d)


def congruence_basis(pooled: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, float]:
    """``U`` with ``U^T pooled U = I`` and ``U^T first U`` diagonal, and ``log|det U|``.

    Args:
        pooled: a symmetric positive definite matrix.
        first: a symmetric matrix.

    Returns:
        ``(U, log|det U|)``.

    Raises:
        ValueError: if ``pooled`` is not positive definite.
    """
    R = cholesky(pooled, "pooled matrix")
    half = solve_triangular(R, first, lower=True, check_finite=False)
    K = solve_triangular(R, half.T, lower=True, check_finite=False)
    _, Q = eigh_sym(K)
    U = solve_triangular(R, Q, lower=True, trans="T", check_finite=False)
    return U, -float(np.sum(np.log(np.diag(R))))


@dataclass
class NewtonResult:
    """End of :func:`newton_map`: the point, its value, gradient norm (relative coordinates), trust-region and
    CG iterations, the trust radius to resume from, and whether the stopping test on the gradient was met."""

    X: np.ndarray
    value: float
    grad_norm: float
    iterations: int
    cg_iterations: int
    radius: float
    converged: bool


class GroupMapProblem:
    """One group's map and offset for fixed templates, in the basis ``L = U X V^T``, ``c = U c~``.

    Args:
        precs: ``(m, d, d)`` the group's class precisions ``P_i``.
        means: ``(m, d)`` its class means ``mu_i``.
        cov_logdets: ``(m,)`` ``log det S_i``.
        weights: ``(m,)`` the cell weights ``w_i``.
        t_means: ``(m, d)`` template means ``nu_i``.
        t_covs: ``(m, d, d)`` template covariances ``Omega_i``.
        t_logdets: ``(m,)`` ``log det Omega_i``.
    """

    def __init__(
        self,
        precs: np.ndarray,
        means: np.ndarray,
        cov_logdets: np.ndarray,
        weights: np.ndarray,
        t_means: np.ndarray,
        t_covs: np.ndarray,
        t_logdets: np.ndarray,
    ) -> None:
        m, d = means.shape
        self.m, self.d = m, d
        self.w = np.asarray(weights, dtype=np.float64)
        self.W = float(self.w.sum())
        Pbar = np.einsum("i,ijk->jk", self.w, precs)
        diags = np.array([np.diag(P) for P in precs])
        if all(np.array_equal(P, np.diag(p)) for P, p in zip(precs, diags, strict=True)) and np.all(np.diag(Pbar) > 0):
            # diagonal precisions (cells in congruence coordinates): U = Pbar^-1/2, no factorisation or product
            pbar = np.diag(Pbar)
            self.U, ld_u = np.diag(1.0 / np.sqrt(pbar)), -0.5 * float(np.sum(np.log(pbar)))
            self.u_diag: np.ndarray | None = 1.0 / np.sqrt(pbar)  # U as a row scaling
            self.M = np.array([np.diag(p / pbar) for p in diags])
        else:
            self.U, ld_u = congruence_basis(Pbar, precs[0])
            self.u_diag = None
            self.M = np.array([_sym(self.U.T @ P @ self.U) for P in precs])
        V, ld_v = congruence_basis(np.einsum("i,ijk->jk", self.w / self.W, t_covs), t_covs[0])
        self.diag = m == 2  # two classes: every M_i and Lambda_i is diagonal (to rounding)
        self.Md = np.array([np.diag(M) for M in self.M])
        if self.diag:  # both Lambda_i diagonal: only their diagonals are read
            Ld = np.array([np.einsum("ji,ji->i", V, O @ V) for O in t_covs])
            Lam = None
        else:
            Lam = np.array([_sym(V.T @ O @ V) for O in t_covs])
            Ld = np.array([np.diag(La) for La in Lam])
        # order the template basis like the group's: the mean-free stationary points are X = (signs) x
        # (permutation) with X_jk^2 = W / D_jk, of value -W/2 sum_j log(W / D_j,pi(j)) + const
        perm = _matching(self.w, self.Md, Ld)
        self.V = V[:, perm]
        self.Lam = None if Lam is None else Lam[:, perm][:, :, perm]
        self.Ld = Ld[:, perm]
        self.D = np.einsum("i,ij,ik->jk", self.w, self.Md, self.Ld)
        self.b = t_means @ self.V  # (m, d): V^T nu_i
        self.a = (means @ Pbar) @ self.U  # U^-1 mu_i = U^T Pbar mu_i
        self.cell_const = 0.5 * (np.asarray(cov_logdets) - np.asarray(t_logdets) - d) - (ld_u + ld_v)
        self.const = float(self.w @ self.cell_const)
        self.fisher_inv = self._fisher_inverse()

    # --------------------------------------------------------------------------------- conversions
    def to_x(self, L: np.ndarray) -> np.ndarray:
        """``X = U^-1 L V^-T``."""
        LVt = np.linalg.solve(self.V, L.T).T
        return LVt / self.u_diag[:, None] if self.u_diag is not None else np.linalg.solve(self.U, LVt)

    def to_map(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(L, c)``: the map and its optimal offset."""
        if self.u_diag is not None:
            return (self.u_diag[:, None] * X) @ self.V.T, self.u_diag * self._offset(X)
        return self.U @ X @ self.V.T, self.U @ self._offset(X)

    def matched_start(self) -> np.ndarray:
        """The diagonal stationary point of the mean-free problem, ``X_jj = s_j sqrt(W / D_jj)``, with each
        sign ``s_j`` that of the class-weighted covariance of the row's template and target mean coordinates."""
        om = self.w[:, None] * self.Md
        om = om / om.sum(axis=0)
        bb, aa = self.b - np.sum(om * self.b, axis=0), self.a - np.sum(om * self.a, axis=0)
        sign = np.where(np.sum(om * bb * aa, axis=0) < 0.0, -1.0, 1.0)
        return np.diag(sign * np.sqrt(self.W / np.diag(self.D)))

    # --------------------------------------------------------------------------------- objective
    def _quad(self, X: np.ndarray) -> np.ndarray:
        """``sum_i w_i M_i X Lambda_i`` (the trace part's gradient)."""
        if self.diag:
            return self.D * X
        assert self.Lam is not None  # built whenever the Lambda_i are not all diagonal
        return sum(wi * (M @ X @ La) for wi, M, La in zip(self.w, self.M, self.Lam, strict=True))

    def _mv(self, i: int, v: np.ndarray) -> np.ndarray:
        return self.Md[i] * v if self.diag else self.M[i] @ v

    def _offset(self, X: np.ndarray) -> np.ndarray:
        Y = self.b @ X.T  # rows X b_i
        return sum(self.w[i] * self._mv(i, self.a[i] - Y[i]) for i in range(self.m))

    def _residuals(self, X: np.ndarray) -> np.ndarray:
        return self.b @ X.T + self._offset(X)[None, :] - self.a

    def cell_terms(self, X: np.ndarray) -> np.ndarray:
        """``(m,)`` per-class ``KL_i`` at ``X`` (offset optimal)."""
        R = self._residuals(X)
        ld = _logabsdet(X)
        out = np.empty(self.m)
        for i in range(self.m):
            if self.diag:
                tr = float(np.sum(self.Md[i][:, None] * X * X * self.Ld[i][None, :]))
            else:
                assert self.Lam is not None
                tr = float(np.sum((self.M[i] @ X) * (X @ self.Lam[i])))
            out[i] = tr + float(R[i] @ self._mv(i, R[i]))
        return 0.5 * out - ld + self.cell_const

    def value(self, X: np.ndarray, logabsdet: float | None = None) -> float:
        """The group's objective ``sum_i w_i KL_i``; ``inf`` at a singular ``X`` (``logabsdet``: ``log|det X|`` if
        known)."""
        try:
            ld = _logabsdet(X) if logabsdet is None else logabsdet
        except np.linalg.LinAlgError:
            return float("inf")
        R = self._residuals(X)
        q = float(np.sum(X * self._quad(X)))
        r = sum(self.w[i] * float(R[i] @ self._mv(i, R[i])) for i in range(self.m))
        return 0.5 * (q + r) - self.W * ld + self.const

    def value_grad(self, X: np.ndarray, logabsdet: float | None = None) -> tuple[float, np.ndarray]:
        """``(value, gradient in the relative coordinates G of X (I + G))``: ``X^T grad_X - W I`` (no inverse)."""
        ld = _logabsdet(X) if logabsdet is None else logabsdet
        R = self._residuals(X)
        Gq = self._quad(X)
        MR = np.array([self._mv(i, R[i]) for i in range(self.m)])
        v = 0.5 * (float(np.sum(X * Gq)) + float(np.sum(self.w[:, None] * R * MR))) - self.W * ld + self.const
        g = X.T @ (Gq + (self.w[:, None] * MR).T @ self.b)
        g[np.diag_indices_from(g)] -= self.W
        return v, g

    def hvp(self, X: np.ndarray, G: np.ndarray) -> np.ndarray:
        """Hessian in the relative coordinates at ``X`` applied to ``G``: ``X^T H_X[X G] X``-free form
        ``X^T (quadratic parts)[X G] + W G^T`` (the log-det part is the transpose there)."""
        E = X @ G
        e = self.b @ E.T  # rows E b_i
        dc = -sum(self.w[i] * self._mv(i, e[i]) for i in range(self.m))
        Me = np.array([self._mv(i, e[i] + dc) for i in range(self.m)])
        return X.T @ (self._quad(E) + (self.w[:, None] * Me).T @ self.b) + self.W * G.T

    # --------------------------------------------------------------------------------- Fisher metric
    def _fisher_inverse(self) -> Callable[[np.ndarray], np.ndarray]:
        """The inverse of the Fisher metric in relative coordinates (module docstring; diagonal ``Lambda_i``)."""
        W, d = self.W, self.d
        A = np.einsum("i,ik,ij->jk", self.w, self.Ld, 1.0 / self.Ld)
        # equal pencil eigenvalues make a pair flat (A_jk A_kj = W^2, and rounding can put the product below W^2): both
        # diagonal entries are then scaled up until the determinant is PAIR_FLOOR A_jk A_kj, so the block stays
        # positive definite (a floored determinant alone left an indefinite "inverse" and a negative g^T M^-1 g)
        AA = A * A.T
        A = A * np.sqrt(np.maximum(1.0, (W * W + PAIR_FLOOR * AA) / AA))
        det = A * A.T - W * W
        bd = A.T / det
        bo = np.full((d, d), -W) / det
        np.fill_diagonal(bd, 1.0 / (2.0 * W))
        np.fill_diagonal(bo, 0.0)

        def binv(R: np.ndarray) -> np.ndarray:
            return bd * R + bo * R.T

        om = (self.w[:, None] / self.Ld).T  # (d, m) mean weights w_i / lambda_ij
        s = om.sum(axis=1)
        Z = np.einsum("ji,ik->jik", om, np.eye(self.m)) - om[:, :, None] * om[:, None, :] / s[:, None, None]
        lam, vec = np.linalg.eigh(Z)  # ascending; the first eigenvalue is 0 (the offset direction)
        lam, vec = np.clip(lam[:, 1:], 0.0, None), vec[:, :, 1:]
        F = np.einsum("jip,ik->jpk", vec * np.sqrt(lam)[:, None, :], self.b)
        p = F.shape[1]
        if p == 0:
            return binv
        C = np.einsum("jpl,lqj,jl->jplq", F, F, bo)
        idx = np.arange(d)
        C[idx, :, idx, :] += np.einsum("jpk,jqk,jk->jpq", F, F, bd) + np.eye(p)
        cf = cho_factor(_sym(C.reshape(d * p, d * p)), lower=True, check_finite=False)
        # applied once per CG iteration: its inverse from the Cholesky factor, once, then products in numpy
        Cinv = _sym(cho_solve(cf, np.eye(d * p), check_finite=False))

        def apply(R: np.ndarray) -> np.ndarray:
            z = binv(R)
            t = np.einsum("jpk,jk->jp", F, z).ravel()
            sol = (Cinv @ t).reshape(d, p)
            return z - binv(np.einsum("jpk,jp->jk", F, sol))

        return apply


def _matching(w: np.ndarray, Md: np.ndarray, Ld: np.ndarray) -> np.ndarray:
    """The template column matched to each row of the group: the assignment minimising
    ``sum_j log D_j,pi(j)``, ``D_jk = sum_i w_i Md_ij Ld_ik``.

    Two classes: with ``sum_i w_i Md_ij = 1`` and ``sum_i (w_i / W) Ld_ik = 1`` (the two congruence bases),
    ``D_jk = a_j b_k / alpha + (1 - a_j)(1 - b_k) / beta`` for ``a_j = w_0 Md_0j``, ``b_k = alpha Ld_0k``,
    ``alpha = w_0 / W``, ``beta = w_1 / W``, and ``d^2 log D / da db = 1 / (alpha beta D^2) > 0``: the cost is
    supermodular, so the minimum pairs the rows and columns in opposite orders (a sort, against the Hungarian
    method's ``O(d^3)``: 0.4 s at d = 1024). More classes: the Hungarian method.
    """
    if Md.shape[0] == 2:
        perm = np.empty(Md.shape[1], dtype=np.intp)
        perm[np.argsort(w[0] * Md[0], kind="stable")] = np.argsort(w[0] / w.sum() * Ld[0], kind="stable")[::-1]
        return perm
    from scipy.optimize import linear_sum_assignment  # lazy: keeps `import steerfair` light (docs/benchmarks.md)

    return linear_sum_assignment(np.log(np.einsum("i,ij,ik->jk", w, Md, Ld)))[1]


def _shrink(slope: float, change: float) -> float:
    """The factor that cuts the trust radius after a poor step: the minimiser ``t`` of the quadratic through the
    value's change along the step (``slope t + (change - slope) t^2``), kept in ``[1/16, 1/4]``; ``1/4`` where that
    quadratic has no minimum in ``(0, 1)``. A step that raised the value a lot shrinks the radius 16x at once instead
    of 4x per rejected step. Against the fixed 1/4 (``recipes/compare_affine_revisions.py``, 45 models): two ended in
    a lower minimum (-8.8e-5 and -6.9e-5 relative), none higher, the times within noise."""
    curvature = change - slope
    if slope >= 0.0 or curvature <= 0.0:
        return 0.25
    return min(0.25, max(0.0625, -slope / (2.0 * curvature)))


def _sym(S: np.ndarray) -> np.ndarray:
    return 0.5 * (S + S.T)


def _logabsdet(X: np.ndarray) -> float:
    sign, ld = np.linalg.slogdet(X)
    if sign == 0 or not np.isfinite(ld):
        raise np.linalg.LinAlgError("singular map")
    return float(ld)


def cayley(G: np.ndarray, X: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """``X C`` for the Cayley transform ``C = (I - G/2)^-1 (I + G/2)`` (``X = I``: ``C`` itself), and ``log|det C|``.

    A retraction of the general linear group (``I + G + G^2/2 + O(G^3)``, like ``exp(G)`` to second order) that
    maps antisymmetric ``G`` to rotations: steps along the near-flat rotations between nearly equal pencil
    eigenvalues stay on their orbit instead of leaving it along a straight line. ``C = 2 (I - G/2)^-1 - I``, so
    ``X C`` costs one LU factorisation and one solve (no product).
    """
    d = G.shape[0]
    half = 0.5 * G
    minus = np.eye(d) - half
    lu = lu_factor(minus.T, check_finite=False)  # X (I - G/2)^-1 = ((I - G/2)^-T X^T)^T
    sign, ld_plus = np.linalg.slogdet(np.eye(d) + half)
    ld_minus = float(np.sum(np.log(np.abs(np.diag(lu[0])))))
    if sign == 0 or not np.isfinite(ld_plus) or not np.isfinite(ld_minus):
        raise np.linalg.LinAlgError("singular Cayley step")
    base = np.eye(d) if X is None else X
    return 2.0 * lu_solve(lu, base.T, check_finite=False).T - base, float(ld_plus) - ld_minus


def _to_boundary(sMs: float, sMp: float, pMp: float, radius: float) -> float:
    """``tau >= 0`` with ``||s + tau p||_M = radius`` (``||s||_M <= radius``)."""
    if pMp <= 0.0:  # a zero direction (e.g. a class prior of 1e-300 makes its block vanish): no step along it
        return 0.0
    disc = sMp * sMp + pMp * (radius * radius - sMs)
    return (-sMp + float(np.sqrt(max(disc, 0.0)))) / pMp


def steihaug_cg(
    hvp: Callable[[np.ndarray], np.ndarray],
    g: np.ndarray,
    pre: Callable[[np.ndarray], np.ndarray],
    radius: float,
    rtol: float,
    maxiter: int,
    pre_g: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Steihaug-Toint truncated CG for ``min g.s + s.H s / 2`` subject to ``||s||_M <= radius``, where ``M`` is the
    metric whose inverse is ``pre`` (the preconditioner); ``pre_g``: ``pre(g)`` if the caller has it.

    Stops at the relative residual ``rtol``, at negative curvature or on the boundary (then on the boundary); the
    ``M``-norms come from the standard recurrences (no product with ``M``).

    Returns:
        ``(s, H s, ||s||_M, CG iterations)``.
    """
    s, Hs = np.zeros_like(g), np.zeros_like(g)
    r = g.copy()
    z = pre(r) if pre_g is None else pre_g
    p = -z
    rz = float(np.vdot(r, z))
    sMs, sMp, pMp = 0.0, 0.0, rz
    target = rtol * float(np.linalg.norm(g))
    for it in range(1, maxiter + 1):
        Hp = hvp(p)
        curv = float(np.vdot(p, Hp))
        alpha = rz / curv if curv > 0.0 else np.inf
        if curv <= 0.0 or sMs + 2.0 * alpha * sMp + alpha * alpha * pMp >= radius * radius:
            tau = _to_boundary(sMs, sMp, pMp, radius)
            return s + tau * p, Hs + tau * Hp, radius, it
        s += alpha * p
        Hs += alpha * Hp
        r += alpha * Hp
        sMs += 2.0 * alpha * sMp + alpha * alpha * pMp
        if float(np.linalg.norm(r)) <= target:
            return s, Hs, float(np.sqrt(sMs)), it
        z = pre(r)
        rz_new = float(np.vdot(r, z))
        beta = rz_new / rz
        sMp = beta * (sMp + alpha * pMp)
        pMp = rz_new + beta * beta * pMp
        p = -z + beta * p
        rz = rz_new
    return s, Hs, float(np.sqrt(max(sMs, 0.0))), maxiter


def newton_map(
    problem: GroupMapProblem,
    X0: np.ndarray,
    *,
    max_iter: int = 500,
    max_cg: int = 100,
    rtol: float = 1e-15,
    radius: float = 1.0,
    min_iter: int = 0,
    callback: Callable[[float], None] | None = None,
) -> NewtonResult:
    """Minimise ``problem`` from ``X0`` by a trust-region Newton-CG method on the group of invertible maps.

    Step ``X -> X cayley(G)`` (:func:`cayley`); the model of ``G`` is the gradient and Hessian of ``X (I + G)`` at
    ``G = 0`` (the retraction's second-order term is ``<g, G^2>/2``, which vanishes with the gradient, so the model
    is exact to second order at a critical point and convergence stays superlinear); the trust region is a ball
    of the Fisher metric, the CG preconditioner (:func:`steihaug_cg`). Far from a minimum the Hessian is
    indefinite and line-searched Newton degenerates to short gradient steps; the trust region follows negative
    curvature instead.

    Stops when the squared Fisher norm of the gradient, ``g.M^-1 g`` (twice the decrease a Newton step would
    give near the minimum), falls below :func:`stopping_tolerance` (``rtol * max(1, |value|)``, at least the
    value's rounding floor; converged), when the radius collapses below :data:`RADIUS_FLOOR` (converged if that
    norm is below the tolerance for ``sqrt(rtol)``: rounding), or after ``max_iter`` steps.

    Args:
        problem: the group's problem.
        X0: an invertible start.
        max_iter: trust-region iterations at most.
        max_cg: CG iterations per step at most.
        rtol: relative stopping threshold.
        radius: the initial trust radius (Fisher norm).
        min_iter: iterations taken whatever the gradient (an outer loop whose other blocks moved a little).
        callback: called with the value after every trust-region step (a progress report; it must not raise).

    Returns:
        The :class:`NewtonResult`; its value is never above the start's.
    """
    X = np.array(X0, dtype=np.float64)
    ld = _logabsdet(X)
    f, g = problem.value_grad(X, ld)
    pre = problem.fisher_inv
    n_cg = n_iter = 0
    converged = False
    while n_iter < max_iter:
        pre_g = pre(g)
        gpre = float(np.vdot(g, pre_g))
        if gpre <= stopping_tolerance(rtol, f, problem.d):
            converged = True
            if n_iter >= min_iter or gpre == 0.0:
                break
        n_iter += 1
        eta = min(0.1, max(gpre, 0.0) ** 0.25)  # forcing term: superlinear near the minimum

        def hvp(G: np.ndarray, X: np.ndarray = X) -> np.ndarray:
            return problem.hvp(X, G)

        s, Hs, s_norm, k = steihaug_cg(hvp, g, pre, radius, eta, max_cg, pre_g)
        n_cg += k
        predicted = -(float(np.vdot(g, s)) + 0.5 * float(np.vdot(s, Hs)))
        try:
            Xn, ld_c = cayley(s, X)
            ld_n = ld + ld_c
            fn, gn = problem.value_grad(Xn, ld_n)  # the gradient is needed if the step is taken
        except np.linalg.LinAlgError:
            fn, gn = np.inf, g
        if not np.isfinite(fn):
            fn = np.inf
        rho = (f - fn) / predicted if predicted > 0.0 else -1.0
        if rho < 0.25:
            radius = _shrink(float(np.vdot(g, s)), fn - f) * min(radius, s_norm) if np.isfinite(fn) else 0.25 * s_norm
        elif rho > 0.75 and s_norm >= 0.99 * radius:
            radius *= 2.0
        if rho > 1e-4 and fn < f:
            X, ld, f, g = Xn, ld_n, fn, gn
        if callback is not None:
            callback(f)
        if radius < RADIUS_FLOOR:  # no model step decreases the value any more: rounding, if the gradient is small
            converged = float(np.vdot(g, pre(g))) <= stopping_tolerance(np.sqrt(rtol), f, problem.d)
            break
    return NewtonResult(X, f, float(np.linalg.norm(g)), n_iter, n_cg, radius, converged)

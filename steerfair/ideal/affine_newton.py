"""Newton's method for one group's map over the affine family, preconditioned by the Fisher metric.

One group's problem with the templates ``(nu_i, Omega_i)`` fixed (docs/theory.md, section 12)::

    min_{L, c}  sum_i w_i KL(N(L nu_i + c, L Omega_i L^T) || N(mu_i, S_i)).

Coordinates: ``L = U X V^T`` with ``U^T (sum_i w_i P_i) U = I``, ``U^T P_0 U`` diagonal, and ``V^T Omega_i V =
Lambda_i`` (``V^T Omega_bar V = I``, ``V^T Omega_0 V`` diagonal); for two classes every ``M_i = U^T P_i U`` and
``Lambda_i`` is diagonal, so the objective, its gradient and its Hessian-vector products cost ``O(d^2)`` plus
one LU factorisation and two ``d x d`` products (``-W log|det X|``). The offset is profiled (closed form).

Steps are taken in the relative coordinates ``X -> X (I + G)``. There the Hessian at a perfect fit is the
Fisher information of the ideal cells, which depends on the templates only: pairs ``(G_jk, G_kj)`` form
``2 x 2`` blocks ``[[A_jk, W], [W, A_kj]]`` with ``A_jk = sum_i w_i lambda_ik / lambda_ij``, and the mean part
is rank ``m - 1`` per row. That constant matrix (inverted once, by the Woodbury identity with an
``(m-1) d`` capacitance matrix) preconditions conjugate gradients on the exact Newton system; an Armijo line
search keeps every step a descent step. Near a good fit the preconditioned system is close to the
identity, so few CG and Newton iterations are needed whatever ``d``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.optimize import linear_sum_assignment

from ..linalg import cholesky, eigh_sym

#: relative floor on the determinant of each 2 x 2 pair block of the Fisher metric (flat pairs stay invertible)
PAIR_FLOOR = 1e-12

__all__ = ["GroupMapProblem", "NewtonResult", "congruence_basis", "newton_map"]


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
    """End of :func:`newton_map`: the point, its value, gradient norm (relative coordinates), Newton and CG
    iterations."""

    X: np.ndarray
    value: float
    grad_norm: float
    iterations: int
    cg_iterations: int


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
        self.U, ld_u = congruence_basis(Pbar, precs[0])
        V, ld_v = congruence_basis(np.einsum("i,ijk->jk", self.w / self.W, t_covs), t_covs[0])
        self.M = np.array([_sym(self.U.T @ P @ self.U) for P in precs])
        self.diag = m == 2  # two classes: every M_i and Lambda_i is diagonal (to rounding)
        self.Md = np.array([np.diag(M) for M in self.M])
        Lam = np.array([_sym(V.T @ O @ V) for O in t_covs])
        Ld = np.array([np.diag(La) for La in Lam])
        # order the template basis like the group's: the mean-free stationary points are X = (signs) x
        # (permutation) with X_jk^2 = W / D_jk, of value -W/2 sum_j log(W / D_j,pi(j)) + const
        _, perm = linear_sum_assignment(np.log(np.einsum("i,ij,ik->jk", self.w, self.Md, Ld)))
        self.V = V[:, perm]
        self.Lam = Lam[:, perm][:, :, perm]
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
        return np.linalg.solve(self.U, np.linalg.solve(self.V, L.T).T)

    def to_map(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(L, c)``: the map and its optimal offset."""
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
                tr = float(np.sum((self.M[i] @ X) * (X @ self.Lam[i])))
            out[i] = tr + float(R[i] @ self._mv(i, R[i]))
        return 0.5 * out - ld + self.cell_const

    def value(self, X: np.ndarray) -> float:
        """The group's objective ``sum_i w_i KL_i``; ``inf`` at a singular ``X``."""
        try:
            ld = _logabsdet(X)
        except np.linalg.LinAlgError:
            return float("inf")
        R = self._residuals(X)
        q = float(np.sum(X * self._quad(X)))
        r = sum(self.w[i] * float(R[i] @ self._mv(i, R[i])) for i in range(self.m))
        return 0.5 * (q + r) - self.W * ld + self.const

    def value_grad(self, X: np.ndarray) -> tuple[float, np.ndarray]:
        """``(value, gradient in the relative coordinates G of X (I + G))``: ``X^T grad_X - W I`` (no inverse)."""
        ld = _logabsdet(X)
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
        det = A * A.T - W * W
        det = np.maximum(det, PAIR_FLOOR * A * A.T)  # equal pencil eigenvalues: the pair is flat; keep it invertible
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


def _sym(S: np.ndarray) -> np.ndarray:
    return 0.5 * (S + S.T)


def _logabsdet(X: np.ndarray) -> float:
    sign, ld = np.linalg.slogdet(X)
    if sign == 0 or not np.isfinite(ld):
        raise np.linalg.LinAlgError("singular map")
    return float(ld)


def _pcg(
    hvp: Callable[[np.ndarray], np.ndarray],
    rhs: np.ndarray,
    pre: Callable[[np.ndarray], np.ndarray],
    rtol: float,
    maxiter: int,
) -> tuple[np.ndarray, int]:
    """Preconditioned CG on ``H x = rhs``, stopped at ``rtol`` or at negative curvature (then the iterate
    so far, or the preconditioned right-hand side if there is none)."""
    x = np.zeros_like(rhs)
    r = rhs.copy()
    z = pre(r)
    p = z.copy()
    rz = float(np.vdot(r, z))
    nrm = float(np.linalg.norm(rhs))
    for it in range(maxiter):
        Hp = hvp(p)
        pHp = float(np.vdot(p, Hp))
        if pHp <= 0.0:
            return (x if it else z), it + 1
        alpha = rz / pHp
        x += alpha * p
        r -= alpha * Hp
        if float(np.linalg.norm(r)) <= rtol * nrm:
            return x, it + 1
        z = pre(r)
        rz_new = float(np.vdot(r, z))
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, maxiter


def newton_map(
    problem: GroupMapProblem, X0: np.ndarray, *, max_iter: int = 200, max_cg: int = 100, rtol: float = 1e-15
) -> NewtonResult:
    """Minimise ``problem`` from ``X0`` by line-searched Newton-CG in relative coordinates ``X (I + G)``,
    preconditioned by the Fisher metric.

    Stops when the Newton decrement ``-g^T p`` falls below ``rtol * max(1, |value|)`` (the remaining
    decrease is about half of it), when a line search cannot decrease the value, or after ``max_iter``.

    Args:
        problem: the group's problem.
        X0: an invertible start.
        max_iter: Newton iterations at most.
        max_cg: CG iterations per Newton step at most.
        rtol: relative stopping threshold on the Newton decrement.

    Returns:
        The :class:`NewtonResult`; its value is never above the start's.
    """
    X = np.array(X0, dtype=np.float64)
    f, g = problem.value_grad(X)
    pre = problem.fisher_inv
    n_cg = n_newton = 0
    for n_newton in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        gpre = float(np.vdot(g, pre(g)))
        eta = min(0.1, np.sqrt(max(gpre, 0.0)))

        def hvp(G: np.ndarray, X: np.ndarray = X) -> np.ndarray:
            return problem.hvp(X, G)

        step, k = _pcg(hvp, -g, pre, eta, max_cg)
        n_cg += k
        dec = -float(np.vdot(g, step))
        if dec <= 0.0:  # not a descent direction (rounding): the natural gradient is
            step = -pre(g)
            dec = gpre
        if dec <= rtol * max(1.0, abs(f)):
            break
        dX = X @ step
        t = 1.0
        while t > 1e-12:
            fn = problem.value(X + t * dX)
            if fn <= f - 1e-4 * t * dec:
                break
            t *= 0.5
        else:
            break
        X = X + t * dX
        f, g = problem.value_grad(X)
    return NewtonResult(X, f, float(np.linalg.norm(g)), n_newton, n_cg)

"""The all-subgroup affine-family objective with the templates and offsets profiled out (docs/theory.md, section 12).

For fixed group maps ``L_a`` the class templates ``(nu_i, Omega_i)`` and the group offsets ``c_a`` that minimise
``sum_ai w_ai KL(N(L_a nu_i + c_a, L_a Omega_i L_a^T) || N(mu_ai, S_ai))`` are in closed form
(:func:`affine_inner_closed_form`, :func:`templates_and_offsets`); :func:`profile_terms` gives the per-cell KLs
there and the envelope-theorem gradient in every free map. The block-coordinate rounds of :mod:`.affine_family`
and the Newton tail of :mod:`.affine_profile_newton` both evaluate the problem through these functions.

Cells with diagonal precisions (two classes in each group's congruence coordinates, where the all-subgroup solver
works) take :func:`_inner_diagonal`: symmetric rank-k products and triangular solves instead of general products.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.linalg import blas, cho_solve, lapack

from ..linalg import cholesky, cholesky_lower_stored, spd_solve
from .scale_family import CellFactors

__all__ = [
    "LogDetPart",
    "Map",
    "affine_inner_closed_form",
    "cell_logdets",
    "prior_given_cells",
    "profile_terms",
    "templates_and_offsets",
    "total_kl",
]

#: a group's linear map: ``None`` (identity), a positive scale ``gamma`` (``gamma I``) or a ``(d, d)`` matrix
Map = float | np.ndarray | None
#: which parts of ``-W_a log|det L_a|`` :func:`profile_terms` evaluates (see there)
LogDetPart = Literal["full", "value", "none"]


def _right(P: np.ndarray, L: Map) -> np.ndarray:
    """``P L`` for a map given as ``None``, a scale or a matrix."""
    if L is None:
        return P
    if np.ndim(L) == 0:
        return float(L) * P
    return P @ L


def _prec_times(stats: CellFactors, a: int, i: int, L: Map) -> np.ndarray:
    """``P_ai L`` (a row scaling when the precisions are diagonal)."""
    if stats.prec_diags is None:
        return _right(stats.precs[a, i], L)
    p = stats.prec_diags[a, i]
    if L is None:
        return np.diag(p)
    if np.ndim(L) == 0:
        return np.diag(float(L) * p)
    return p[:, None] * np.asarray(L)


def _left_t(L: Map, E: np.ndarray) -> np.ndarray:
    """``L^T E`` for a map given as ``None``, a scale or a matrix."""
    if L is None:
        return E
    if np.ndim(L) == 0:
        return float(L) * E
    return np.asarray(L).T @ E


def _apply(L: Map, x: np.ndarray) -> np.ndarray:
    """``L x`` for a map given as ``None``, a scale or a matrix."""
    if L is None:
        return x
    if np.ndim(L) == 0:
        return float(L) * x
    return L @ x


@dataclass
class _Inner:
    """The closed-form templates and offsets for fixed maps, with what the gradient needs."""

    nu: np.ndarray  # (m, d)
    offsets: np.ndarray  # (k, d)
    LH: list[np.ndarray]  # Cholesky factors of H_i = sum_a w_ia L_a^T P_ia L_a
    HinvEt: dict[tuple[int, int], np.ndarray]  # (i, a) -> H_i^-1 L_a^T P_ia, free groups only


def _dense_map(L: Map, d: int) -> np.ndarray:
    if L is None:
        return np.eye(d)
    if np.ndim(L) == 0:
        return float(L) * np.eye(d)
    return np.asarray(L, dtype=np.float64)


def _inner_diagonal(stats: CellFactors, maps: Sequence[Map], gauge: int) -> _Inner:
    """:func:`_inner` for diagonal precisions (``stats.prec_diags``), with symmetric rank-k products and triangular
    solves in place of general products.

    With ``F_ai = (w_ai p_ai)^1/2 * L_a`` (a row scaling), ``H_i = sum_a F_ai^T F_ai`` (``syrk``); with
    ``Y_ai = R_i^-1 E_ai^T`` (``H_i = R_i R_i^T``, one ``trsm``), the Schur complement's blocks are
    ``E_bi H_i^-1 E_ai^T = Y_bi^T Y_ai`` (``syrk`` on the diagonal) and ``H_i^-1 E_ai^T = R_i^-T Y_ai`` (one more
    ``trsm``): about ``4 d^3`` flops per free cell against ``7 d^3`` for general products and two-sided solves.
    """
    k, m, d = stats.shape
    w, mu = stats.weights, stats.means
    pd = stats.prec_diags
    assert pd is not None
    free = [a for a in range(k) if a != gauge]
    dense = [_dense_map(maps[a], d) for a in range(k)]
    LH, Hinvb, Rb = [], [], []
    Y: dict[tuple[int, int], np.ndarray] = {}
    HinvEt: dict[tuple[int, int], np.ndarray] = {}
    for i in range(m):
        H = np.zeros((d, d), order="F")
        diag_part = np.zeros(d)
        bvec = np.zeros(d)
        for a in range(k):
            wp = w[a, i] * pd[a, i]
            L = maps[a]
            if L is None or np.ndim(L) == 0:
                s = 1.0 if L is None else float(L)
                diag_part += s * s * wp
                bvec += s * (wp * mu[a, i])
            else:
                H = blas.dsyrk(1.0, np.sqrt(wp)[:, None] * dense[a], beta=1.0, c=H, trans=1, lower=1, overwrite_c=1)
                bvec += dense[a].T @ (wp * mu[a, i])
        H[np.diag_indices(d)] += diag_part
        R = cholesky_lower_stored(H, "template precision")
        LH.append(R)
        Rb.append(lapack.dtrtrs(R, bvec, lower=1)[0])  # R_i^-1 b_i
        Hinvb.append(lapack.dtrtrs(R, Rb[i], lower=1, trans=1)[0])
        for a in free:
            Et = dense[a].T * pd[a, i][None, :]  # E_ai^T = L_a^T P_ai
            Y[i, a] = blas.dtrsm(1.0, R, Et, lower=1)
            HinvEt[i, a] = blas.dtrsm(1.0, R, Y[i, a], lower=1, trans_a=1)
    nf = len(free)
    M = np.zeros((nf * d, nf * d), order="F")
    rhs = np.zeros(nf * d)
    for bi, b in enumerate(free):
        rb = slice(bi * d, (bi + 1) * d)
        rhs[rb] = sum(w[b, i] * (pd[b, i] * mu[b, i] - Y[i, b].T @ Rb[i]) for i in range(m))
        for ai in range(bi + 1):
            a = free[ai]
            ra = slice(ai * d, (ai + 1) * d)
            if a == b:
                block = np.zeros((d, d), order="F")
                for i in range(m):
                    block = blas.dsyrk(-w[b, i] * w[a, i], Y[i, a], beta=1.0, c=block, trans=1, lower=1, overwrite_c=1)
                block[np.diag_indices(d)] += sum(w[b, i] * pd[b, i] for i in range(m))
            else:
                block = -sum(w[b, i] * w[a, i] * (Y[i, b].T @ Y[i, a]) for i in range(m))
            M[rb, ra] = block
    cfree = cho_solve((cholesky_lower_stored(M, "offset normal equations"), True), rhs) if nf else np.zeros(0)
    offsets = np.zeros((k, d))
    for ai, a in enumerate(free):
        offsets[a] = cfree[ai * d : (ai + 1) * d]
    nu = np.array([Hinvb[i] - sum(w[a, i] * (HinvEt[i, a] @ offsets[a]) for a in free) for i in range(m)])
    return _Inner(nu, offsets, LH, HinvEt)


def _inner(stats: CellFactors, maps: Sequence[Map], gauge: int) -> _Inner:
    """Templates means and offsets minimising the objective for fixed maps (``c_gauge = 0``).

    Diagonal precisions (``stats.prec_diags``) take :func:`_inner_diagonal`.

    With ``E_ai = P_ia L_a``: ``nu_i = H_i^-1 (sum_a w_ia E_ai^T (mu_ia - c_a))``; the offsets of the free
    groups solve the Schur complement ``sum_i w_ai P_ai c_a - sum_ib w_ai w_bi E_ai H_i^-1 E_bi^T c_b =
    sum_i w_ai (P_ai mu_ai - E_ai H_i^-1 b_i)``.
    """
    if stats.prec_diags is not None:
        return _inner_diagonal(stats, maps, gauge)
    k, m, d = stats.shape
    w, P, mu = stats.weights, stats.precs, stats.means
    free = [a for a in range(k) if a != gauge]
    E = [[_prec_times(stats, a, i, maps[a]) for i in range(m)] for a in range(k)]
    LH, Hinvb = [], []
    HinvEt: dict[tuple[int, int], np.ndarray] = {}
    for i in range(m):
        H = sum(w[a, i] * _left_t(maps[a], E[a][i]) for a in range(k))
        LH.append(cholesky(0.5 * (H + H.T), "template precision"))
        Hinvb.append(cho_solve((LH[i], True), sum(w[a, i] * (E[a][i].T @ mu[a, i]) for a in range(k))))
        for a in free:  # the gauge's trace follows from the others' (profile_terms); its product is not needed
            HinvEt[i, a] = cho_solve((LH[i], True), E[a][i].T)
    nf = len(free)
    M = np.zeros((nf * d, nf * d))
    rhs = np.zeros(nf * d)
    for bi, b in enumerate(free):
        rb = slice(bi * d, (bi + 1) * d)
        rhs[rb] = sum(w[b, i] * (P[b, i] @ mu[b, i] - E[b][i] @ Hinvb[i]) for i in range(m))
        for ai, a in enumerate(free):
            block = -sum(w[b, i] * w[a, i] * (E[b][i] @ HinvEt[i, a]) for i in range(m))
            if a == b:
                block = block + sum(w[b, i] * P[b, i] for i in range(m))
            M[rb, slice(ai * d, (ai + 1) * d)] = block
    M = 0.5 * (M + M.T)
    cfree = spd_solve(M, rhs, cholesky(M, "offset normal equations")) if nf else np.zeros(0)
    offsets = np.zeros((k, d))
    for ai, a in enumerate(free):
        offsets[a] = cfree[ai * d : (ai + 1) * d]
    nu = np.array([Hinvb[i] - sum(w[a, i] * (HinvEt[i, a] @ offsets[a]) for a in free) for i in range(m)])
    return _Inner(nu, offsets, LH, HinvEt)


def affine_inner_closed_form(
    stats: CellFactors, maps: Sequence[Map], gauge: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For fixed linear maps: the optimal templates and offsets (``c_gauge = 0``).

    ``Omega_i = W_i H_i^-1`` with ``H_i = sum_a w_ia L_a^T P_ia L_a``; the means solve a weighted
    least-squares problem reduced to the offsets by a Schur complement (``(k-1) d`` unknowns).

    Args:
        stats: the original cells, with all precisions.
        maps: per group ``None`` (identity), a scale ``gamma`` or a ``(d, d)`` matrix.
        gauge: the group whose offset is fixed at 0.

    Returns:
        ``(offsets, template_means, template_covs)``.

    Raises:
        ValueError: if a template precision or the offset normal equations are not positive definite.
    """
    offsets, nu, omega, _ = templates_and_offsets(stats, maps, gauge)
    return offsets, nu, omega


def templates_and_offsets(
    stats: CellFactors, maps: Sequence[Map], gauge: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`affine_inner_closed_form` with the templates' log-determinants: ``(offsets, template_means,
    template_covs, log det Omega_i)``, ``log det Omega_i = d log W_i - log det H_i`` from the same factors."""
    inner = _inner(stats, maps, gauge)
    d = stats.shape[2]
    Wi = stats.weights.sum(axis=0)
    omega = np.array([Wi[i] * _chol_inv(L) for i, L in enumerate(inner.LH)])
    lds = np.array([d * np.log(Wi[i]) - 2.0 * float(np.sum(np.log(np.diag(L)))) for i, L in enumerate(inner.LH)])
    return inner.offsets, inner.nu, omega, lds


def _chol_inv(L: np.ndarray) -> np.ndarray:
    """``(L L^T)^-1`` from its lower Cholesky factor."""
    X = cho_solve((L, True), np.eye(L.shape[0]))
    return 0.5 * (X + X.T)


def _logdet_and_inv_t(L: np.ndarray, inverse: bool = True) -> tuple[float, np.ndarray | None]:
    """``log |det L|`` and (``inverse``) ``L^-T`` from one LU factorisation.

    Raises:
        numpy.linalg.LinAlgError: if ``L`` is singular.
    """
    lu, piv, info = lapack.dgetrf(L)
    diag = np.abs(np.diag(lu))
    if info != 0 or not np.all(diag > 0.0) or not np.all(np.isfinite(diag)):
        raise np.linalg.LinAlgError("singular map")
    if not inverse:
        return float(np.sum(np.log(diag))), None
    inv, info = lapack.dgetri(lu, piv)
    if info != 0:
        raise np.linalg.LinAlgError("singular map")
    return float(np.sum(np.log(diag))), inv.T


def cell_logdets(stats: CellFactors) -> np.ndarray:
    k, m, _ = stats.shape
    return np.array([[2.0 * float(np.sum(np.log(np.diag(stats.chols[a, i])))) for i in range(m)] for a in range(k)])


def profile_terms(
    stats: CellFactors, maps: list[Map], gauge: int, logdets: np.ndarray, *, log_det: LogDetPart = "full"
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """All-subgroup profile (templates and offsets at their optimum): per-cell KLs and the gradient of
    ``sum_ai w_ai KL_ai`` per free group.

    ``KL_ai = 1/2 (W_i tr(H_i^-1 L_a^T P_ai L_a) + r_ai^T P_ai r_ai - d + logdet S_ai - 2 log|det L_a|
    - d log W_i + logdet H_i)``; gradient (envelope theorem): ``sum_i w_ai (W_i (H_i^-1 E_ai^T)^T +
    P_ai r_ai nu_i^T) - W_a L_a^-T``.

    ``log_det``: ``"full"`` as above; ``"value"``: the gradients leave out ``- W_a L_a^-T`` (no inverse; in the
    relative coordinates ``L_a (I + G)`` that term is ``-W_a I``, known without it); ``"none"``: also the per-cell
    KLs of the free groups leave out ``- log|det L_a|`` (no factorisation of the maps; a shift per group, which the
    class prior's gradient does not see).
    """
    k, m, d = stats.shape
    w, P, mu = stats.weights, stats.precs, stats.means
    inner = _inner(stats, maps, gauge)
    Wi = w.sum(axis=0)
    logdetH = [2.0 * float(np.sum(np.log(np.diag(LH)))) for LH in inner.LH]
    F = np.zeros((k, m))
    grads: dict[int, np.ndarray] = {}
    # sum_a w_ai tr(H_i^-1 L_a^T P_ai L_a) = tr(H_i^-1 H_i) = d: the gauge's trace from the free groups'
    traces = np.zeros((k, m))
    for a in range(k):
        if a != gauge:
            L = maps[a]
            for i in range(m):
                HE = inner.HinvEt[i, a]
                traces[a, i] = float(np.trace(HE)) if L is None else float(np.sum(HE * np.asarray(L).T))
    traces[gauge] = (d - np.sum(np.delete(w * traces, gauge, axis=0), axis=0)) / w[gauge]
    for a in range(k):
        L = maps[a]
        if L is None:
            ld, G = 0.0, None
        elif a == gauge:
            ld, G = (d * float(np.log(abs(float(L)))) if np.ndim(L) == 0 else float(np.linalg.slogdet(L)[1])), None
        elif np.ndim(L) == 0:  # gamma I
            gamma = float(L)
            if gamma == 0.0:
                raise np.linalg.LinAlgError("singular map")
            ld = d * float(np.log(abs(gamma))) if log_det != "none" else 0.0
            G = -w[a].sum() / gamma * np.eye(d) if log_det == "full" else np.zeros((d, d))
        elif log_det == "full":
            ld, inv_t = _logdet_and_inv_t(np.asarray(L))
            G = -w[a].sum() * inv_t
        else:
            ld = _logdet_and_inv_t(np.asarray(L), inverse=False)[0] if log_det == "value" else 0.0
            G = np.zeros((d, d))
        for i in range(m):
            tr = traces[a, i]
            r = _apply(L, inner.nu[i]) + inner.offsets[a] - mu[a, i]
            Pr = P[a, i] @ r
            F[a, i] = 0.5 * (Wi[i] * tr + float(r @ Pr) - d + logdets[a, i] - 2.0 * ld - d * np.log(Wi[i]) + logdetH[i])
            if G is not None:
                G += w[a, i] * (Wi[i] * inner.HinvEt[i, a].T + np.outer(Pr, inner.nu[i]))
        if G is not None:
            grads[a] = G
    return F, grads


def total_kl(
    stats: CellFactors,
    maps: Sequence[Map],
    gauge: int,
    q: np.ndarray,
    group_priors: np.ndarray,
    class_priors: np.ndarray,
    logdets: np.ndarray,
    *,
    log_det: LogDetPart = "full",
) -> tuple[float, np.ndarray, dict[int, np.ndarray]]:
    """The whole all-subgroup ``KL(ideal || original)`` at the maps and common class prior ``q`` (templates and
    offsets optimal for the weights ``pi_a q_i``): ``sum_a pi_a KL(q || q_a) + sum_ai pi_a q_i KL_ai``, with the
    per-cell KLs ``(k, m)`` and the gradient per free group of :func:`profile_terms` (``log_det`` as there; with
    ``"none"`` the value leaves out ``- sum_a pi_a log|det L_a|`` too)."""
    st = dataclasses.replace(stats, weights=group_priors[:, None] * q[None, :])
    F, grads = profile_terms(st, list(maps), gauge, logdets, log_det=log_det)
    prior = float(group_priors @ ((np.log(q)[None, :] - np.log(class_priors)) @ q))
    return float(np.sum(st.weights * F)) + prior, F, grads


def prior_given_cells(F: np.ndarray, group_priors: np.ndarray, class_priors: np.ndarray) -> np.ndarray:
    """The common class prior that minimises the total KL for fixed cells (per-cell KLs ``F``, ``(k, m)``):
    ``q_i ∝ exp(sum_a pi_a (log q_ia - KL_ai))``."""
    z = group_priors @ (np.log(class_priors) - F)
    q = np.exp(z - z.max())
    return q / q.sum()

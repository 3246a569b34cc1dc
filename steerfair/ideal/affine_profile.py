"""The all-subgroup affine-family objective with the templates and offsets profiled out (docs/theory.md, section 12).

For fixed group maps ``L_a`` the class templates ``(nu_i, Omega_i)`` and the group offsets ``c_a`` that minimise
``sum_ai w_ai KL(N(L_a nu_i + c_a, L_a Omega_i L_a^T) || N(mu_ai, S_ai))`` are in closed form
(:func:`affine_inner_closed_form`, :func:`templates_and_offsets`); :func:`profile_terms` gives the per-cell KLs
there and the envelope-theorem gradient in every free map. The block-coordinate rounds of :mod:`.affine_family`
and the Newton tail of :mod:`.affine_profile_newton` both evaluate the problem through these functions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_solve, lapack

from ..linalg import cholesky, spd_solve
from .scale_family import CellFactors

__all__ = [
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


def _inner(stats: CellFactors, maps: Sequence[Map], gauge: int) -> _Inner:
    """Templates means and offsets minimising the objective for fixed maps (``c_gauge = 0``).

    With ``E_ai = P_ia L_a``: ``nu_i = H_i^-1 (sum_a w_ia E_ai^T (mu_ia - c_a))``; the offsets of the free
    groups solve the Schur complement ``sum_i w_ai P_ai c_a - sum_ib w_ai w_bi E_ai H_i^-1 E_bi^T c_b =
    sum_i w_ai (P_ai mu_ai - E_ai H_i^-1 b_i)``.
    """
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


def _logdet_and_inv_t(L: np.ndarray) -> tuple[float, np.ndarray]:
    """``log |det L|`` and ``L^-T`` from one LU factorisation.

    Raises:
        numpy.linalg.LinAlgError: if ``L`` is singular.
    """
    lu, piv, info = lapack.dgetrf(L)
    diag = np.abs(np.diag(lu))
    if info != 0 or not np.all(diag > 0.0) or not np.all(np.isfinite(diag)):
        raise np.linalg.LinAlgError("singular map")
    inv, info = lapack.dgetri(lu, piv)
    if info != 0:
        raise np.linalg.LinAlgError("singular map")
    return float(np.sum(np.log(diag))), inv.T


def cell_logdets(stats: CellFactors) -> np.ndarray:
    k, m, _ = stats.shape
    return np.array([[2.0 * float(np.sum(np.log(np.diag(stats.chols[a, i])))) for i in range(m)] for a in range(k)])


def profile_terms(
    stats: CellFactors, maps: list[Map], gauge: int, logdets: np.ndarray
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """All-subgroup profile (templates and offsets at their optimum): per-cell KLs and the gradient of
    ``sum_ai w_ai KL_ai`` per free group.

    ``KL_ai = 1/2 (W_i tr(H_i^-1 L_a^T P_ai L_a) + r_ai^T P_ai r_ai - d + logdet S_ai - 2 log|det L_a|
    - d log W_i + logdet H_i)``; gradient (envelope theorem): ``sum_i w_ai (W_i (H_i^-1 E_ai^T)^T +
    P_ai r_ai nu_i^T) - W_a L_a^-T``.
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
            ld, G = float(np.linalg.slogdet(np.asarray(L))[1]), None
        else:
            ld, inv_t = _logdet_and_inv_t(np.asarray(L))
            G = -w[a].sum() * inv_t
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
) -> tuple[float, np.ndarray, dict[int, np.ndarray]]:
    """The whole all-subgroup ``KL(ideal || original)`` at the maps and common class prior ``q`` (templates and
    offsets optimal for the weights ``pi_a q_i``): ``sum_a pi_a KL(q || q_a) + sum_ai pi_a q_i KL_ai``, with the
    per-cell KLs ``(k, m)`` and the gradient per free group of :func:`profile_terms`."""
    st = dataclasses.replace(stats, weights=group_priors[:, None] * q[None, :])
    F, grads = profile_terms(st, list(maps), gauge, logdets)
    prior = float(group_priors @ ((np.log(q)[None, :] - np.log(class_priors)) @ q))
    return float(np.sum(st.weights * F)) + prior, F, grads


def prior_given_cells(F: np.ndarray, group_priors: np.ndarray, class_priors: np.ndarray) -> np.ndarray:
    """The common class prior that minimises the total KL for fixed cells (per-cell KLs ``F``, ``(k, m)``):
    ``q_i ∝ exp(sum_a pi_a (log q_ia - KL_ai))``."""
    z = group_priors @ (np.log(class_priors) - F)
    q = np.exp(z - z.max())
    return q / q.sum()

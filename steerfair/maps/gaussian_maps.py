"""Affine maps between Gaussians: mean shift, optimal transport (Bures) map, W2 barycenter."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy.linalg import lapack, solve_triangular

from ..families import Gaussian, LogNormal
from ..linalg import psd_sqrt, psd_sqrt_and_rsqrt
from ..validation import as_int, as_number, check_counts, check_cov, symmetrize
from ..warning_location import user_stacklevel
from .affine import AffineMap

__all__ = ["mean_shift_map", "gaussian_ot_map", "ot_map_matrix", "bures_barycenter"]


def _normal(p: Gaussian | LogNormal, name: str) -> Gaussian:
    if isinstance(p, LogNormal):
        return p.normal
    if isinstance(p, Gaussian):
        return p
    raise TypeError(f"{name} must be a Gaussian or LogNormal; got {type(p).__name__}")


def _same_family(source: Gaussian | LogNormal, target: Gaussian | LogNormal) -> None:
    """A map between a log-normal and a Gaussian would send log-space to linear space: refuse it."""
    if isinstance(source, LogNormal) != isinstance(target, LogNormal):
        raise ValueError(
            f"source is a {type(source).__name__} and target a {type(target).__name__}; a map acts on one space "
            "(log-normals in log-space): pass two of the same family"
        )


def mean_shift_map(source: Gaussian | LogNormal, target: Gaussian | LogNormal) -> AffineMap:
    """``x -> x + (m_target - m_source)`` (for log-normals: in log-space)."""
    s, t = _normal(source, "source"), _normal(target, "target")
    _same_family(source, target)
    if s.dim != t.dim:
        raise ValueError(f"source and target must have one dimension; got source {s.dim}, target {t.dim}")
    return AffineMap.translation(t.mean - s.mean)


def ot_map_matrix(S1: np.ndarray, S2: np.ndarray) -> np.ndarray:
    """The symmetric PSD matrix ``A = S1^-1/2 (S1^1/2 S2 S1^1/2)^1/2 S1^-1/2`` with ``A S1 A = S2``.

    Computed as ``A = L^-T (L^T S2 L)^1/2 L^-1`` from the Cholesky factor ``S1 = L L^T`` of the coordinates ordered
    by decreasing variance (the same matrix: ``B = L^T A L`` is the symmetric root of ``L^T S2 L``). Coordinates
    whose scales differ by orders of magnitude keep their accuracy this way: with the symmetric root of ``S1``, its
    small directions were lost to the large ones' rounding (at standard deviations 1e3 and 1e-3, ``A S1 A`` missed
    ``S2`` by 100 % in correlation units; now by about 1e-14). A singular ``S1`` (no Cholesky factor) takes the
    symmetric form with the pseudo-inverse of its root.
    """
    S1, S2 = np.asarray(S1, dtype=np.float64), np.asarray(S2, dtype=np.float64)
    if S1.ndim != 2 or S1.shape[0] != S1.shape[1] or S2.shape != S1.shape:
        raise ValueError(f"S1 and S2 must be square matrices of one shape; got {S1.shape} and {S2.shape}")
    if not (np.all(np.isfinite(S1)) and np.all(np.isfinite(S2))):
        raise ValueError("S1 and S2 must be finite (no NaN or infinite entries)")
    for name, S in (("S1", S1), ("S2", S2)):
        if not np.allclose(S, S.T, rtol=1e-10, atol=1e-12 * float(np.max(np.abs(S), initial=0.0))):
            raise ValueError(f"{name} must be symmetric (a covariance)")
    # A is the same for (c S1, c S2): divide by a common scale first, so that L^T S2 L neither under- nor overflows
    # (at covariances of size 1e-170 it was 0, at 1e170 inf)
    scale = max(float(np.max(np.abs(np.diag(S1)))), float(np.max(np.abs(np.diag(S2)))))
    if scale > 0 and np.isfinite(scale):
        S1, S2 = S1 / scale, S2 / scale
    order = np.argsort(-np.diag(S1), kind="stable")
    back = np.argsort(order)
    P1, P2 = S1[np.ix_(order, order)], S2[np.ix_(order, order)]
    L, info = lapack.dpotrf(symmetrize(P1), lower=1, clean=1)
    if info != 0:  # singular (or not positive definite): the symmetric form, pseudo-inverse
        r, rinv = psd_sqrt_and_rsqrt(S1)
        return symmetrize(_matmul3(rinv, psd_sqrt(_matmul3(r, S2, r)), rinv))
    root = psd_sqrt(symmetrize(_matmul3(L.T, P2, L)))
    left = solve_triangular(L, root, lower=True, trans=1, check_finite=False)  # L^-T B
    A = solve_triangular(L, left.T, lower=True, trans=1, check_finite=False).T  # L^-T B L^-1
    return symmetrize(A)[np.ix_(back, back)]


def _matmul3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``a @ b @ c`` in float64 through torch (the same BLAS as the square roots)."""
    import torch  # lazy: keeps `import steerfair` light (docs/benchmarks.md)

    # read-only inputs (frozen Gaussian parameters) are copied: torch warns on non-writable arrays
    t = [torch.from_numpy(np.require(x, np.float64, ["C", "W"])) for x in (a, b, c)]
    return (t[0] @ t[1] @ t[2]).numpy()


def gaussian_ot_map(source: Gaussian | LogNormal, target: Gaussian | LogNormal) -> AffineMap:
    """The 2-Wasserstein optimal transport map pushing ``source`` exactly onto ``target``.

    ``x -> m_t + A (x - m_s)`` with ``A`` symmetric positive definite and ``A S_s A = S_t``.
    For log-normals the map acts on ``log x`` (use it as ``exp(map(log x))``).
    """
    s, t = _normal(source, "source"), _normal(target, "target")
    _same_family(source, target)
    if s.dim != t.dim:
        raise ValueError(f"source and target must have one dimension; got source {s.dim}, target {t.dim}")
    A = ot_map_matrix(s.cov, t.cov)
    return AffineMap(A, t.mean - A @ s.mean)


def bures_barycenter(
    covs: Sequence[np.ndarray],
    weights: Sequence[float] | np.ndarray | None = None,
    *,
    tol: float = 1e-12,
    max_iter: int = 500,
) -> np.ndarray:
    """Covariance of the 2-Wasserstein barycenter of centred Gaussians.

    Fixed-point iteration of Alvarez-Esteban et al. (2016):
    ``S <- S^-1/2 (sum_k w_k (S^1/2 C_k S^1/2)^1/2)^2 S^-1/2``, started at the weighted mean, taken in the equal
    form ``S <- M S M`` with ``M = sum_k w_k A_k`` and ``A_k`` the OT matrix from ``S`` to ``C_k``
    (:func:`ot_map_matrix`, accurate when the coordinates' scales differ by orders of magnitude). It stops when no
    entry moves by more than ``tol`` in correlation units (``|dS_ij| <= tol sqrt(S_ii S_jj)``, free of units) and
    warns when ``max_iter`` iterations end before that.
    """
    tol = as_number(tol, "tol", low=0.0, low_open=True)
    max_iter = as_int(max_iter, "max_iter", low=1)
    if isinstance(covs, np.ndarray) and covs.ndim == 2:
        raise ValueError("covs must be a sequence of covariance matrices (wrap a single one in a list)")
    Cs = [check_cov(C, f"covs[{i}]") for i, C in enumerate(covs)]
    if not Cs:
        raise ValueError("covs is empty; pass at least one covariance")
    dims = sorted({C.shape[0] for C in Cs})
    if len(dims) > 1:
        raise ValueError(f"covs must all be d x d for one d; got sizes {dims}")
    if weights is None:
        w = np.full(len(Cs), 1.0 / len(Cs))
    else:
        w = check_counts(weights, "weights")
        if w.shape != (len(Cs),):
            raise ValueError(f"weights must hold one number per covariance in covs ({len(Cs)}); got shape {w.shape}")
    w = w / w.sum()
    S = sum(wk * C for wk, C in zip(w, Cs, strict=True))
    change = np.inf
    for _ in range(max_iter):
        M = sum(wk * ot_map_matrix(S, C) for wk, C in zip(w, Cs, strict=True))
        S_new = symmetrize(_matmul3(M, S, M))
        sd = np.sqrt(np.clip(np.diag(S_new), np.finfo(float).tiny, None))
        change = float(np.max(np.abs(S_new - S) / np.outer(sd, sd)))
        S = S_new
        if change <= tol:
            return S
    warnings.warn(
        f"bures_barycenter did not converge in max_iter={max_iter} iterations (last change {change:.2e} in "
        f"correlation units, tol={tol:g}); pass a larger max_iter",
        RuntimeWarning,
        stacklevel=user_stacklevel(),
    )
    return S

"""Affine maps between Gaussians: mean shift, optimal transport (Bures) map, W2 barycenter."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..families import Gaussian, LogNormal
from ..linalg import psd_sqrt, psd_sqrt_and_rsqrt
from ..validation import check_counts, check_cov, symmetrize
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
    """The symmetric PSD matrix ``A = S1^-1/2 (S1^1/2 S2 S1^1/2)^1/2 S1^-1/2`` with ``A S1 A = S2``."""
    r, rinv = psd_sqrt_and_rsqrt(S1)
    mid = psd_sqrt(_matmul3(r, S2, r))
    return symmetrize(_matmul3(rinv, mid, rinv))


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
    ``S <- S^-1/2 (sum_k w_k (S^1/2 C_k S^1/2)^1/2)^2 S^-1/2``, started at the weighted mean.
    """
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
    for _ in range(max_iter):
        r, rinv = psd_sqrt_and_rsqrt(S)
        T = sum(wk * psd_sqrt(r @ C @ r) for wk, C in zip(w, Cs, strict=True))
        S_new = symmetrize(rinv @ T @ T @ rinv)
        if np.linalg.norm(S_new - S) <= tol * np.linalg.norm(S):
            return S_new
        S = S_new
    return S

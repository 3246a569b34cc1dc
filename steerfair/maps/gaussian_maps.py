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


#: the push residual ``A S1 A - S2`` (in correlation units, probed by random vectors: ``_push_residual``) above
#: which :func:`ot_map_matrix` recomputes the map by a Jacobi SVD, in units of ``d`` times the float64 epsilon
#: (well-scaled maps leave about 1e-14 at d = 1024, about 0.05 of this; coordinates whose scales differ by 1e4 or
#: more left up to 50 with the symmetric square root)
OT_RESIDUAL_ULPS = 64.0


def ot_map_matrix(S1: np.ndarray, S2: np.ndarray) -> np.ndarray:
    """The symmetric PSD matrix ``A = S1^-1/2 (S1^1/2 S2 S1^1/2)^1/2 S1^-1/2`` with ``A S1 A = S2``.

    Computed as ``A = L^-T (L^T S2 L)^1/2 L^-1`` from the Cholesky factor ``S1 = L L^T`` of the coordinates ordered
    by decreasing variance (the same matrix: ``B = L^T A L`` is the symmetric root of ``L^T S2 L``). When the push
    residual ``A S1 A - S2`` exceeds ``d`` times :data:`OT_RESIDUAL_ULPS` float64 epsilons in correlation units, as
    it does once the coordinates' scales differ by about 1e4 or more (``L^T S2 L`` is then graded beyond what a
    symmetric eigensolver resolves: at standard deviations 1e-4, 1 and 1e4 and ``S2 = 4 S1`` it returned a singular
    ``A`` instead of ``2 I``), the root is taken from the SVD ``L^T F2 = U s V^T`` (``S2 = F2 F2^T``) by LAPACK's
    preconditioned Jacobi SVD (``dgejsv``, accurate for such graded products), as ``A = G G^T`` with
    ``G = L^-T U s^1/2``: about five times the cost, and about 1e-15 in correlation units where the exact map
    rounded to float64 leaves about 1e-16. ``A`` scales as ``sqrt(b / a)`` for ``(a S1, b S2)``, so each matrix is
    divided by its own largest variance first (no under- or overflow at any scale). A singular ``S1`` (no
    Cholesky factor) takes the symmetric form with the pseudo-inverse of its root; an indefinite ``S1`` or ``S2``
    is refused.
    """
    S1, S2 = np.asarray(S1, dtype=np.float64), np.asarray(S2, dtype=np.float64)
    if S1.ndim != 2 or S1.shape[0] != S1.shape[1] or S2.shape != S1.shape:
        raise ValueError(f"S1 and S2 must be square matrices of one shape; got {S1.shape} and {S2.shape}")
    if not (np.all(np.isfinite(S1)) and np.all(np.isfinite(S2))):
        raise ValueError("S1 and S2 must be finite (no NaN or infinite entries)")
    for name, S in (("S1", S1), ("S2", S2)):
        if not np.allclose(S, S.T, rtol=1e-10, atol=1e-12 * float(np.max(np.abs(S), initial=0.0))):
            raise ValueError(f"{name} must be symmetric (a covariance)")
    # A(a S1, b S2) = sqrt(b / a) A(S1, S2): each matrix at unit largest variance (one common scale left
    # S1 = 1e-170 I subnormal beside S2 = 1e170 I, and A was 0)
    s1, s2 = _largest_variance(S1), _largest_variance(S2)
    S1, S2 = symmetrize(S1 / s1), symmetrize(S2 / s2)
    factor = np.sqrt(s2) / np.sqrt(s1)
    order = np.argsort(-np.diag(S1), kind="stable")
    back = np.argsort(order)
    P1, P2 = S1[np.ix_(order, order)], S2[np.ix_(order, order)]
    L = _psd_factor(P1, "S1")
    F2 = _psd_factor(P2, "S2")
    if L is None:  # singular: the symmetric form, pseudo-inverse
        r, rinv = psd_sqrt_and_rsqrt(S1)
        return factor * symmetrize(_matmul3(rinv, psd_sqrt(_matmul3(r, S2, r)), rinv))
    root = psd_sqrt(symmetrize(_matmul3(L.T, P2, L)))
    left = solve_triangular(L, root, lower=True, trans=1, check_finite=False)  # L^-T B
    A = symmetrize(solve_triangular(L, left.T, lower=True, trans=1, check_finite=False).T)  # L^-T B L^-1
    if _push_residual(A, P1, P2) > OT_RESIDUAL_ULPS * A.shape[0] * np.finfo(float).eps:
        graded = _jacobi_ot(L, P2 if F2 is None else F2, F2 is None)
        if graded is not None and _push_residual(graded, P1, P2) < _push_residual(A, P1, P2):
            A = graded
    return factor * A[np.ix_(back, back)]


def _largest_variance(S: np.ndarray) -> float:
    top = float(np.max(np.diag(S), initial=0.0))
    return top if top > 0.0 else 1.0


def _psd_factor(S: np.ndarray, name: str) -> np.ndarray | None:
    """The lower Cholesky factor of ``S``; ``None`` when ``S`` is singular (a pivot below ``1e-13`` of its
    coordinate's variance) but positive semi-definite; a ``ValueError`` naming ``name`` when it is indefinite
    (judged in correlation units, so that no column's units decide it)."""
    var = np.diag(S)
    L, info = lapack.dpotrf(S, lower=1, clean=1)
    if info == 0 and np.all(np.isfinite(L)) and np.all(np.diag(L) ** 2 > 1e-13 * var):
        return L
    if np.any(var < 0.0):
        i = int(np.argmin(var))
        raise ValueError(f"{name} has a negative variance ({name}[{i}, {i}] = {var[i]:.6g}); pass a covariance")
    sd = np.sqrt(np.clip(var, np.finfo(float).tiny, None))
    evals = np.linalg.eigvalsh(symmetrize(S / sd[:, None] / sd[None, :]))
    if evals[0] < -1e-10 * max(float(evals[-1]), 1.0):
        raise ValueError(
            f"{name} is not positive semi-definite (eigenvalues of its correlation matrix in "
            f"[{evals[0]:.3g}, {evals[-1]:.3g}]); pass a covariance (regularise it, e.g. fit with shrinkage=)"
        )
    return None


def _push_residual(A: np.ndarray, S1: np.ndarray, S2: np.ndarray) -> float:
    """How far ``A`` misses ``S2``, in correlation units: ``max ||R w|| / ||w||`` over four fixed random probes ``w``,
    ``R = D^-1 (A S1 A - S2) D^-1`` with ``D`` the target's standard deviations (matrix-vector products, ``O(d^2)``:
    the whole residual, two ``d x d`` products, made the OT matrix about 1.4x slower)."""
    sd = np.sqrt(np.clip(np.diag(S2), np.finfo(float).tiny, None))
    W = np.random.default_rng(0).standard_normal((A.shape[0], 4))
    U = W / sd[:, None]
    R = (A @ (S1 @ (A @ U)) - S2 @ U) / sd[:, None]
    return float(np.max(np.linalg.norm(R, axis=0) / np.linalg.norm(W, axis=0)))


def _jacobi_ot(L: np.ndarray, S2_or_factor: np.ndarray, is_cov: bool) -> np.ndarray | None:
    """``A = G G^T`` with ``G = L^-T U s^1/2`` from the Jacobi SVD ``L^T F2 = U s V^T`` (``dgejsv``: high relative
    accuracy for two-sided graded matrices, rows sorted and transposition allowed); ``None`` if LAPACK fails."""
    if is_cov:  # singular S2: a factor from its eigenvectors (no graded accuracy, but exact in the mean)
        evals, evecs = np.linalg.eigh(S2_or_factor)
        F2 = evecs * np.sqrt(np.clip(evals, 0.0, None))
    else:
        F2 = S2_or_factor
    sva, U, _, work, _, info = lapack.dgejsv(L.T @ F2, joba=2, jobt=1)
    if info != 0 or work[0] <= 0.0 or not np.all(np.isfinite(U)):
        return None
    s = sva * (work[1] / work[0])  # dgejsv returns the singular values scaled: sigma = (work[1] / work[0]) sva
    G = solve_triangular(L, U * np.sqrt(np.clip(s, 0.0, None)), lower=True, trans=1, check_finite=False)
    return symmetrize(G @ G.T)


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

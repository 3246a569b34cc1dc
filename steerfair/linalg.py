"""Small, careful linear-algebra helpers (float64, ``eigh`` on symmetrised matrices, no inverses)."""

from __future__ import annotations

import numpy as np
from scipy import linalg as sla
from scipy.linalg import lapack

__all__ = [
    "eigh_sym",
    "eigvalsh_sym",
    "psd_sqrt",
    "psd_sqrt_and_rsqrt",
    "cholesky",
    "logdet_spd",
    "spd_solve",
    "spd_inv",
    "tril_solve_tril",
    "cholesky_lower_stored",
    "whiten_lower",
    "gram_lower_t",
    "sym_from_lower",
    "Tridiagonal",
]


def _sym(S: np.ndarray) -> np.ndarray:
    return 0.5 * (S + S.T)


def eigh_sym(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of the symmetrised ``S`` (LAPACK divide and conquer, ``syevd``)."""
    return sla.eigh(_sym(S), driver="evd", check_finite=False)


def _eigh_fast(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``eigh`` of the symmetrised ``S`` in float64 through torch's bundled LAPACK, which measured
    1.5-5x faster than scipy's for d = 128..768 (docs/benchmarks.md); used by the matrix square roots."""
    import torch  # lazy: keeps `import steerfair` light (docs/benchmarks.md)

    t = torch.from_numpy(np.ascontiguousarray(_sym(np.asarray(S, dtype=np.float64))))
    evals, evecs = torch.linalg.eigh(t)
    return evals.numpy(), evecs.numpy()


def _recompose(evecs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``V diag(values) V^T``, symmetrised (matrix product through torch, see :func:`_eigh_fast`)."""
    import torch  # lazy: keeps `import steerfair` light (docs/benchmarks.md)

    V = torch.from_numpy(np.ascontiguousarray(evecs))
    out = (V * torch.from_numpy(np.ascontiguousarray(values))) @ V.mT
    return _sym(out.numpy())


def psd_sqrt_and_rsqrt(S: np.ndarray, *, rtol: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Return the symmetric square root of ``S`` and its (pseudo-)inverse from one ``eigh``.

    Eigenvalues below ``rtol * max_eigenvalue`` (and all negative ones) are treated as zero.
    """
    evals, evecs = _eigh_fast(S)
    floor = rtol * max(float(evals[-1]), 0.0)
    keep = evals > floor
    root = np.sqrt(np.where(keep, evals, 0.0))
    rroot = np.where(keep, 1.0 / np.where(keep, root, 1.0), 0.0)
    return _recompose(evecs, root), _recompose(evecs, rroot)


def psd_sqrt(S: np.ndarray) -> np.ndarray:
    """Symmetric PSD square root via ``eigh`` (negative eigenvalues clamped to zero)."""
    evals, evecs = _eigh_fast(S)
    return _recompose(evecs, np.sqrt(np.clip(evals, 0.0, None)))


def cholesky(S: np.ndarray, name: str = "covariance") -> np.ndarray:
    """Lower Cholesky factor; a clear ValueError if ``S`` is not positive definite.

    Through scipy's LAPACK, like the rest of the solver: alternating calls between numpy's and scipy's
    separately bundled OpenBLAS thread pools made small factorisations ~10x slower (docs/benchmarks.md)."""
    return cholesky_lower_stored(_sym(np.asarray(S, dtype=np.float64)), name)


def logdet_spd(S: np.ndarray, L: np.ndarray | None = None) -> float:
    """log det of an SPD matrix from its Cholesky factor."""
    L = cholesky(S) if L is None else L
    return float(2.0 * np.sum(np.log(np.diag(L))))


def spd_solve(S: np.ndarray, B: np.ndarray, L: np.ndarray | None = None) -> np.ndarray:
    """Solve ``S X = B`` for SPD ``S`` with a Cholesky factorisation."""
    L = cholesky(S) if L is None else L
    return sla.cho_solve((L, True), B, check_finite=False)


def spd_inv(S: np.ndarray, L: np.ndarray | None = None) -> np.ndarray:
    """Precision matrix of an SPD matrix via Cholesky solves (used only where a dense precision is
    genuinely needed, e.g. sums of precisions)."""
    L = cholesky(S) if L is None else L
    return _sym(sla.cho_solve((L, True), np.eye(S.shape[0]), check_finite=False))


# ------------------------------------------------------------------ pieces of the nearest-ideal fast path
def sym_from_lower(A: np.ndarray, *, out: np.ndarray | None = None, block: int = 256) -> np.ndarray:
    """The symmetric matrix whose lower triangle is that of ``A`` (LAPACK routines fill one triangle),
    written into ``out`` (C order; new if ``None``).

    One contiguous copy, then blockwise transposed copies of one triangle into the other (no ``np.tril``
    temporaries of the whole matrix). A Fortran-ordered ``A`` (as LAPACK returns it) is copied as its
    transpose, whose *upper* triangle then holds ``A``'s lower one.
    """
    d = A.shape[0]
    out = np.empty((d, d), dtype=np.float64) if out is None else out
    from_upper = bool(A.flags.f_contiguous and not A.flags.c_contiguous)
    out[...] = A.T if from_upper else A
    for j0 in range(0, d, block):
        j1 = min(j0 + block, d)
        diag = out[j0:j1, j0:j1]
        if from_upper:
            diag[...] = np.triu(diag) + np.triu(diag, 1).T
            out[j1:, j0:j1] = out[j0:j1, j1:].T
        else:
            diag[...] = np.tril(diag) + np.tril(diag, -1).T
            out[j0:j1, j1:] = out[j1:, j0:j1].T
    return out


def eigvalsh_sym(S: np.ndarray, *, lower_stored: bool = False) -> np.ndarray:
    """Eigenvalues (ascending) of the symmetrised ``S``, without eigenvectors (one tridiagonal reduction
    and an ``O(d^2)`` tridiagonal solve, about half the cost of :func:`eigh_sym`), through torch's bundled
    LAPACK (1.5x faster than scipy's at d = 4096 on two cores; docs/benchmarks.md).

    ``lower_stored=True``: ``S`` is symmetric by construction and only its lower triangle is valid
    (as LAPACK leaves it); it is read as is, with no symmetrising pass.
    """
    import torch  # lazy: keeps `import steerfair` light (docs/benchmarks.md)

    A = np.asarray(S, dtype=np.float64) if lower_stored else _sym(np.asarray(S, dtype=np.float64))
    return torch.linalg.eigvalsh(torch.from_numpy(np.require(A, np.float64, ["W"])), UPLO="L").numpy()


def cholesky_lower_stored(S: np.ndarray, name: str = "matrix") -> np.ndarray:
    """Lower Cholesky factor of a symmetric matrix of which only the lower triangle is read
    (LAPACK ``potrf``); a clear ValueError if it is not positive definite."""
    L, info = lapack.dpotrf(S, lower=1, clean=1)
    if info != 0:
        raise ValueError(f"{name} is not positive definite; regularise it (shrinkage= or reg=) before use")
    return L


def tril_solve_tril(L: np.ndarray, M: np.ndarray, block: int | None = None) -> np.ndarray:
    """``L^-1 M`` for lower-triangular ``L`` and ``M`` (the result is lower triangular).

    Column block ``j`` of the result only involves rows ``j0:`` of ``L`` and ``M``, so the solve is done
    per block on the trailing part: about ``d^3/3 + d^2 block/2`` flops instead of ``d^3`` for a dense
    right-hand side. Default: four blocks (``0.46 d^3`` flops; each block copies its trailing part of
    ``L`` once) for ``d > 512``, one dense solve below."""
    d = L.shape[0]
    block = max(256, -(-d // 4)) if block is None else int(block)
    if d <= 2 * block and block >= 256:  # forward substitution leaves the strict upper triangle exactly zero
        return sla.solve_triangular(L, M, lower=True, check_finite=False)
    out = np.zeros((d, d), order="F")
    for j0 in range(0, d, block):
        j1 = min(j0 + block, d)
        out[j0:, j0:j1] = sla.solve_triangular(L[j0:, j0:], M[j0:, j0:j1], lower=True, check_finite=False)
    return out


def gram_lower_t(G: np.ndarray) -> np.ndarray:
    """``G^T G`` for lower-triangular ``G`` (LAPACK ``lauum``, ``d^3/3`` flops); only the lower
    triangle of the result is valid (see :func:`sym_from_lower`)."""
    out, info = lapack.dlauum(G, lower=1)
    if info != 0:  # pragma: no cover - LAPACK argument error
        raise RuntimeError(f"dlauum failed (info={info})")
    return out


def whiten_lower(S: np.ndarray, L: np.ndarray) -> np.ndarray:
    """``L^-1 S L^-T`` for symmetric ``S`` and lower-triangular ``L`` (LAPACK ``sygst``: ``d^3`` flops,
    half of two triangular solves); reads and fills only the lower triangles."""
    out, info = lapack.dsygst(S, L, itype=1, lower=1)
    if info != 0:  # pragma: no cover - LAPACK argument error
        raise RuntimeError(f"dsygst failed (info={info})")
    return out


class Tridiagonal:
    """Householder tridiagonalisation ``K = Q T Q^T`` of a symmetric matrix (LAPACK ``sytrd``, lower).

    ``T`` is kept as its diagonal and off-diagonal; ``Q`` as the Householder reflectors, applied to
    vectors in ``O(d^2)`` (``ormqr`` on the reflectors below the sub-diagonal). Solving a shifted
    system ``(I + t K) x = b`` then costs ``O(d)`` after the two reflector applications, so a whole
    family of shifts costs one reduction (``4 d^3 / 3`` flops), less than an eigen-decomposition with
    eigenvectors.
    """

    def __init__(self, K: np.ndarray, *, lower_stored: bool = False) -> None:
        d = K.shape[0]
        self.d = d
        A = np.asfortranarray(K if lower_stored else _sym(K))
        lwork = int(lapack.dsytrd_lwork(d, lower=1)[0]) if d > 1 else 1
        c, diag, off, tau, info = lapack.dsytrd(A, lower=1, lwork=max(lwork, 1), overwrite_a=1)
        if info != 0:  # pragma: no cover - LAPACK argument error
            raise RuntimeError(f"dsytrd failed (info={info})")
        self.diag, self.off = np.asarray(diag), np.asarray(off)
        # reflector i (0-based) acts on rows i+1.. with its tail stored below the sub-diagonal:
        # exactly the storage of a QR factorisation of c[1:, :-1]
        self._refl = np.asfortranarray(c[1:, :-1]) if d > 1 else None
        self._tau = np.asarray(tau)

    def _apply(self, X: np.ndarray, trans: str) -> np.ndarray:
        X = np.array(X, dtype=np.float64, order="F", copy=True)
        if X.ndim == 1:
            return self._apply(X[:, None], trans)[:, 0]
        if self.d <= 1:
            return X
        sub = np.asfortranarray(X[1:])
        lwork = max(1, 64 * sub.shape[1])
        out, _, info = lapack.dormqr("L", trans, self._refl, self._tau, sub, lwork, overwrite_c=1)
        if info != 0:  # pragma: no cover - LAPACK argument error
            raise RuntimeError(f"dormqr failed (info={info})")
        X[1:] = out
        return X

    def qt(self, X: np.ndarray) -> np.ndarray:
        """``Q^T X`` (vector or matrix with ``d`` rows)."""
        return self._apply(X, "T")

    def q(self, X: np.ndarray) -> np.ndarray:
        """``Q X``."""
        return self._apply(X, "N")

    def matvec_t(self, x: np.ndarray) -> np.ndarray:
        """``T x``."""
        y = self.diag * x
        y[:-1] += self.off * x[1:]
        y[1:] += self.off * x[:-1]
        return y

    def solve_shifted(self, t: float, b: np.ndarray) -> np.ndarray:
        """``(I + t T)^-1 b`` for ``t >= 0`` (``T`` positive semi-definite; LAPACK ``ptsv``)."""
        if self.d == 1:
            return b / (1.0 + t * self.diag)
        _, _, x, info = lapack.dptsv(1.0 + t * self.diag, t * self.off, np.asarray(b, dtype=np.float64)[:, None])
        if info != 0:
            raise np.linalg.LinAlgError(f"shifted tridiagonal system is not positive definite (info={info})")
        return x[:, 0]

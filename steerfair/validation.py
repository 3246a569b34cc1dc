"""Input validation shared by every public entry point.

Every check raises :class:`ValueError` (or :class:`TypeError`) with a message that names the
offending argument, so that bad input never turns into a crash deep inside numpy or a silent
wrong answer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.linalg import lapack

__all__ = [
    "as_matrix",
    "as_vector",
    "as_labels",
    "as_unit_weight",
    "check_cov",
    "check_cov_chol",
    "check_finite",
    "check_same_length",
    "symmetrize",
]


def check_finite(x: np.ndarray, name: str) -> None:
    """Raise if ``x`` holds NaN or infinity."""
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")


def as_matrix(x: Any, name: str = "X", *, min_rows: int = 1, dim: int | None = None) -> np.ndarray:
    """Return ``x`` as a finite float64 array of shape ``(n, d)``."""
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric; could not convert to float ({exc})") from None
    if arr.ndim == 1 and dim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got shape {arr.shape}")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} row(s); got {arr.shape[0]}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has {arr.shape[1]} feature(s); expected {dim}")
    check_finite(arr, name)
    return arr


def as_vector(x: Any, name: str, *, dim: int | None = None) -> np.ndarray:
    """Return ``x`` as a finite float64 vector (1-D)."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if dim is not None and arr.shape[0] != dim:
        raise ValueError(f"{name} has length {arr.shape[0]}; expected {dim}")
    check_finite(arr, name)
    return arr


def as_labels(x: Any, name: str, n: int) -> np.ndarray:
    """Return a 1-D label array of length ``n`` (any hashable dtype; no NaN)."""
    if hasattr(x, "to_numpy"):
        x = x.to_numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but X has {n} rows")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if arr.dtype.kind == "O" and any(v is None or (isinstance(v, float) and np.isnan(v)) for v in arr):
        raise ValueError(f"{name} contains missing values")
    return arr


def check_same_length(**arrays: Any) -> int:
    """Raise unless all arguments have the same first dimension; return it."""
    lengths = {k: len(v) for k, v in arrays.items() if v is not None}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k}={n}" for k, n in lengths.items())
        raise ValueError(f"mismatched lengths: {desc}")
    return next(iter(lengths.values())) if lengths else 0


def symmetrize(S: np.ndarray) -> np.ndarray:
    """Return ``(S + S.T) / 2``."""
    return 0.5 * (S + S.T)


def check_cov(S: Any, name: str = "cov", *, dim: int | None = None) -> np.ndarray:
    """Return ``S`` as a symmetric positive-definite float64 matrix or raise.

    The matrix must be square, finite, symmetric to ``1e-8`` relative tolerance and admit a
    Cholesky factorisation (one ``O(d^3 / 3)`` pass; eigenvalues are computed only to explain a
    failure).
    """
    return check_cov_chol(S, name, dim=dim)[0]


def check_cov_chol(S: Any, name: str = "cov", *, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`check_cov` that also returns the lower Cholesky factor."""
    arr = np.asarray(S, dtype=np.float64)
    if arr.ndim == 0 and (dim in (None, 1)):
        arr = arr.reshape(1, 1)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square matrix; got shape {arr.shape}")
    if dim is not None and arr.shape[0] != dim:
        raise ValueError(f"{name} is {arr.shape[0]}x{arr.shape[0]}; expected {dim}x{dim}")
    check_finite(arr, name)
    scale = max(float(np.max(np.abs(arr))), 1e-300)
    if np.max(np.abs(arr - arr.T)) > 1e-8 * scale:
        raise ValueError(f"{name} is not symmetric")
    arr = symmetrize(arr)
    # scipy's LAPACK (the solver's library: see steerfair.linalg.cholesky)
    L, info = lapack.dpotrf(arr, lower=1, clean=1)
    if info == 0:
        piv = np.diag(L)
        # numerically singular: a pivot (the variance of a coordinate left over by the previous ones) below 1e-13
        # of that coordinate's own variance; relative per coordinate, so a column's units cannot decide it
        if np.all(np.isfinite(L)) and np.all(piv**2 > 1e-13 * np.diag(arr)):
            return arr, L
    evals = np.linalg.eigvalsh(arr)
    kind = "not positive semi-definite" if evals[0] < 0 else "singular"
    raise ValueError(
        f"{name} is {kind} (eigenvalues in [{evals[0]:.3g}, {evals[-1]:.3g}]); "
        "regularise it (e.g. fit with shrinkage= or reg=) before use"
    )


def as_unit_weight(value: Any, name: str) -> float:
    """A number in ``[0, 1]`` (not a bool), as float; anything else raises a ``ValueError`` naming ``name``."""
    try:
        w = float(value)
    except (TypeError, ValueError):
        w = math.nan
    if isinstance(value, bool) or not 0.0 <= w <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1]; got {value!r}")
    return w

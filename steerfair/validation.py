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
    "as_float_array",
    "as_int",
    "as_matrix",
    "as_number",
    "as_vector",
    "as_labels",
    "as_unit_weight",
    "check_counts",
    "check_cov",
    "check_cov_chol",
    "check_finite",
    "check_psd_stack",
    "check_same_length",
    "symmetrize",
]


def check_finite(x: np.ndarray, name: str) -> None:
    """Raise if ``x`` holds NaN or infinity."""
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")


def as_float_array(
    x: Any, name: str, *, ndim: int | None = None, shape: tuple[int, ...] | None = None, finite: bool = True
) -> np.ndarray:
    """Return ``x`` (array-like, torch tensor, DataFrame) as a float64 array, or raise naming ``name``.

    Args:
        x: The value.
        name: The argument's name in error messages.
        ndim: The number of dimensions it must have.
        shape: The shape it must have.
        finite: Reject NaN and infinity.

    Raises:
        ValueError: not numeric (strings, ``None``, ragged nesting), the wrong number of dimensions or shape,
            or NaN / infinite entries.
    """
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    if hasattr(x, "to_numpy"):  # pandas
        x = x.to_numpy()
    if isinstance(x, (str, bytes)):
        raise ValueError(f"{name} must be numeric; got the string {x!r}")
    try:
        if np.iscomplexobj(x):
            raise ValueError("complex values")
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be real numbers (not strings, None or complex values); {exc}") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {arr.shape}")
    if finite:
        check_finite(arr, name)
    return arr


def as_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    allow_inf: bool = False,
) -> float:
    """A real number (not a bool, not a string) within ``[low, high]`` (``(low, high]`` with ``low_open``).

    Raises:
        TypeError: not a real number.
        ValueError: NaN, infinite (unless ``allow_inf``), or outside the range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number; got {value!r} ({type(value).__name__})")
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low:g}; got {value!r}")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high:g}; got {value!r}")
    return v


def as_int(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """An integer (``int`` or numpy integer, not a bool; a float only when integral) within ``[low, high]``.

    Raises:
        TypeError: not an integer.
        ValueError: outside the range.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        value = int(value)
    if not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer; got {value!r} ({type(value).__name__})")
    v = int(value)
    if low is not None and v < low:
        raise ValueError(f"{name} must be at least {low}; got {v}")
    if high is not None and v > high:
        raise ValueError(f"{name} must be at most {high}; got {v}")
    return v


def check_counts(x: Any, name: str, *, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Finite, non-negative counts (or weights) as float64, with at least one positive entry."""
    arr = as_float_array(x, name, shape=shape)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative counts; got {arr.min():g} (pass a count or weight >= 0)")
    if arr.size and not np.any(arr > 0):
        raise ValueError(f"{name} are all zero; at least one must be positive")
    return arr


def check_psd_stack(S: np.ndarray, name: str, *, rtol: float = 1e-10) -> np.ndarray:
    """Symmetrised ``(..., d, d)`` matrices, each positive semi-definite (eigenvalues ``>= -rtol * max |entry|``).

    Singular matrices pass (a regulariser may follow); an indefinite or non-symmetric one (beyond rounding, ``1e-8``
    of its largest entry, as :func:`check_cov`) raises a ``ValueError`` naming its index.
    """
    sym = 0.5 * (S + np.swapaxes(S, -1, -2))
    if sym.size == 0:
        return sym
    skew = np.abs(S - np.swapaxes(S, -1, -2)).max(axis=(-1, -2))
    lopsided = np.argwhere(skew > 1e-8 * np.maximum(np.abs(S).max(axis=(-1, -2)), 1e-300))
    if lopsided.size:
        where = ", ".join(str(int(i)) for i in lopsided[0])
        raise ValueError(f"{name}[{where}] is not symmetric; pass covariance matrices")
    lowest = np.linalg.eigvalsh(sym)[..., 0]
    scale = np.maximum(np.abs(sym).max(axis=(-1, -2)), 1e-300)
    bad = np.argwhere(lowest < -rtol * scale)
    if bad.size:
        idx = tuple(int(i) for i in bad[0])
        raise ValueError(
            f"{name}[{', '.join(map(str, idx))}] is not positive semi-definite (smallest eigenvalue "
            f"{lowest[idx]:.3g}); pass covariance matrices"
        )
    return sym


def as_matrix(x: Any, name: str = "X", *, min_rows: int = 1, dim: int | None = None) -> np.ndarray:
    """Return ``x`` as a finite float64 array of shape ``(n, d)``."""
    arr = as_float_array(x, name, finite=False)
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
    arr = as_float_array(x, name, finite=False)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if dim is not None and arr.shape[0] != dim:
        raise ValueError(f"{name} has length {arr.shape[0]}; expected {dim}")
    check_finite(arr, name)
    return arr


def label_repr(label: Any) -> str:
    """A group or class label as a message shows it: numpy scalars as their Python value (``1``, not
    ``np.int64(1)``)."""
    return repr(label.item() if isinstance(label, np.generic) else label)


def reject_continuous_labels(
    arr: np.ndarray, name: str, hint: str = "pass discrete labels (class or group names, or integer codes)"
) -> None:
    """Raise a ``ValueError`` if a float label array has a non-integer value (a continuous target or score passed
    where classes or groups are expected); ``hint`` says what to pass instead."""
    if arr.dtype.kind == "f" and np.any(arr != np.round(arr)):
        example = arr[arr != np.round(arr)][0]
        raise ValueError(f"{name} has non-integer values (e.g. {example:g}), so it looks continuous; {hint}")
    if arr.dtype.kind == "O":  # floats kept as Python objects (a pandas object column of scores)
        for v in arr.tolist():
            if isinstance(v, (float, np.floating)) and np.isfinite(v) and v != round(v):
                raise ValueError(f"{name} has non-integer values (e.g. {v:g}), so it looks continuous; {hint}")


def as_labels(x: Any, name: str, n: int) -> np.ndarray:
    """Return a 1-D label array of length ``n`` (any hashable dtype; no NaN; floats only with integer values)."""
    if hasattr(x, "to_numpy"):
        x = x.to_numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but X has {n} rows")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    reject_continuous_labels(arr, name)
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

    The matrix must be square, finite, symmetric to ``1e-8`` per entry in correlation units and admit a
    Cholesky factorisation (one ``O(d^3 / 3)`` pass; eigenvalues are computed only to explain a
    failure).
    """
    return check_cov_chol(S, name, dim=dim)[0]


def check_cov_chol(S: Any, name: str = "cov", *, dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`check_cov` that also returns the lower Cholesky factor."""
    arr = as_float_array(S, name, finite=False)
    if arr.ndim == 0 and (dim in (None, 1)):
        arr = arr.reshape(1, 1)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square matrix; got shape {arr.shape}")
    if dim is not None and arr.shape[0] != dim:
        raise ValueError(f"{name} is {arr.shape[0]}x{arr.shape[0]}; expected {dim}x{dim}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (0x0); pass a d x d covariance with d >= 1")
    check_finite(arr, name)
    scale = max(float(np.max(np.abs(arr))), 1e-300)
    # per entry, in correlation units (|S_ij| <= sqrt(S_ii S_jj) for a covariance): a tolerance relative to the largest
    # entry let a correlation of 0.9 / -0.9 through once the columns' variances differ by 1e8; the 1e-14 floor is
    # the rounding of products at the largest scale
    var = np.abs(np.diag(arr))
    asym = np.abs(arr - arr.T)
    if np.any(asym > 1e-8 * np.sqrt(np.outer(var, var)) + 1e-14 * scale):
        i, j = np.unravel_index(int(np.argmax(asym / (np.sqrt(np.outer(var, var)) + 1e-300))), asym.shape)
        raise ValueError(
            f"{name} is not symmetric ({name}[{i}, {j}] = {arr[i, j]:.6g} but {name}[{j}, {i}] = {arr[j, i]:.6g}); "
            "pass a symmetric matrix (e.g. (S + S.T) / 2 if the difference is rounding)"
        )
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
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    w = float(value) if number else math.nan
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1]; got {value!r}")
    return w

"""Input checks shared by the fairness metrics.

Inputs may be lists, numpy arrays, pandas Series or torch tensors (values are taken positionally; a Series' index is
ignored). Labels may be of any hashable type. Bad input -- mismatched lengths, missing values, empty input, fewer
than two groups, unknown options -- raises :class:`ValueError` naming the offending argument.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..validation import reject_continuous_labels

__all__ = [
    "as_1d",
    "as_list",
    "check_group_present",
    "check_lengths",
    "check_option",
    "check_pos_label",
    "equals",
    "equals_elementwise",
    "is_missing",
    "prepare",
    "prepare_pair",
    "unique_values",
]


def is_missing(x: Any) -> bool:
    """True for None, NaN, NaT and pandas.NA (without importing pandas)."""
    if x is None:
        return True
    try:
        return bool(x != x)
    except (TypeError, ValueError):  # pandas.NA: bool(NA != NA) raises TypeError
        return True


def as_1d(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a 1-D numpy array with no missing values.

    Args:
        x: A list, numpy array, pandas Series, torch tensor or ``(n, 1)`` column.
        name: The argument's name, used in error messages.

    Returns:
        The values as a 1-D array.

    Raises:
        ValueError: For ``None``, a scalar, more than one dimension, no samples or missing values.
    """
    if x is None:
        raise ValueError(f"{name} must be array-like; got None")
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    if isinstance(x, (list, tuple)):  # a list mixing strings and NaN would become the string "nan" in np.asarray
        n_bad = sum(is_missing(v) for v in x if not isinstance(v, (list, tuple, np.ndarray)))
        if n_bad:
            raise ValueError(f"{name} contains {n_bad} missing value(s) (NaN/None); drop or impute them first")
        kinds = {"text" if isinstance(v, (str, np.str_)) else "other" for v in x}
    arr = np.asarray(x)
    if isinstance(x, (list, tuple)) and len(kinds) > 1 and arr.dtype.kind == "U":
        # numbers and strings together: np.asarray makes them all strings, so 1 and "1" would be one group
        arr = np.empty(len(x), dtype=object)
        arr[:] = list(x)
    if arr.ndim == 0:
        raise ValueError(f"{name} must be a 1-D array-like; got a scalar ({arr!r})")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty; need at least one sample")
    if arr.dtype.kind in "fc":
        n_bad = int(np.count_nonzero(np.isnan(arr)))
    elif arr.dtype.kind == "O":
        n_bad = sum(is_missing(v) for v in arr)
    elif arr.dtype.kind == "M":
        n_bad = int(np.count_nonzero(np.isnat(arr)))
    else:
        n_bad = 0
    if n_bad:
        raise ValueError(f"{name} contains {n_bad} missing value(s) (NaN/None); drop or impute them first")
    return arr


def check_lengths(**arrays: np.ndarray) -> int:
    """The common length of the named 1-D arrays.

    Raises:
        ValueError: If the lengths differ (the message names every array and its length).
    """
    lengths = {name: int(a.shape[0]) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise ValueError(f"inputs must have the same length; got {desc}")
    return next(iter(lengths.values()))


def unique_values(arr: np.ndarray) -> np.ndarray:
    """Sorted unique values; falls back to first-appearance order for unorderable mixed types."""
    try:
        return np.unique(arr)
    except TypeError:
        seen = list(dict.fromkeys(arr.tolist()))
        out = np.empty(len(seen), dtype=object)
        out[:] = seen
        return out


def _compare(arr: np.ndarray, other: Any, pairs: Callable[[], Iterable[tuple[Any, Any]]]) -> np.ndarray:
    """``arr == other`` as a boolean array; ``pairs`` gives the element pairs compared one by one when numpy's
    comparison does not return an elementwise boolean array (incomparable or mixed types)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = np.asarray(arr == other)
    if res.dtype != bool or res.shape != arr.shape:
        res = np.fromiter((bool(u == v) for u, v in pairs()), dtype=bool, count=arr.shape[0])
    return res


def equals(arr: np.ndarray, value: Any) -> np.ndarray:
    """Elementwise ``arr == value`` (one scalar label) as a boolean array, robust to incomparable types."""
    return _compare(arr, value, lambda: ((v, value) for v in arr))


def equals_elementwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a[i] == b[i]`` for every ``i`` as a boolean array, robust to incomparable types."""
    return _compare(a, b, lambda: zip(a, b, strict=True))


def check_option(value: Any, name: str, options: tuple[str, ...]) -> str:
    """Return ``value`` as a string if it is one of ``options``.

    Raises:
        ValueError: For any other value (the message names the argument and the options).
    """
    if value not in options:
        raise ValueError(f"unknown {name}={value!r}; expected one of {', '.join(map(repr, options))}")
    return str(value)


#: what to pass instead of scores: every rate here counts predicted labels (a score never equals ``pos_label``, so
#: probabilities would give rates of 0 and a gap of 0 without an error)
PREDICTIONS_HINT = "pass predicted labels (clf.predict(X), or scores thresholded), not scores or probabilities"


def _label_kind(arr: np.ndarray) -> str | None:
    """``"number"`` or ``"text"`` when every label is one of them (booleans count as numbers), else None."""
    if arr.dtype.kind in "biuf":
        return "number"
    if arr.dtype.kind in "US":
        return "text"
    kinds = {"number" if isinstance(v, (int, float, np.number, np.bool_)) else "text" if isinstance(v, (str, bytes))
             else None for v in arr.tolist()}  # fmt: skip
    return kinds.pop() if len(kinds) == 1 else None


def _labels_pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    yt, yp = as_1d(y_true, "y_true"), as_1d(y_pred, "y_pred")
    reject_continuous_labels(yt, "y_true")
    reject_continuous_labels(yp, "y_pred", PREDICTIONS_HINT)
    kt, kp = _label_kind(yt), _label_kind(yp)
    if yt.size and yp.size and None not in (kt, kp) and kt != kp:
        # e.g. a classifier fitted on "0" / "1" scored against 0 / 1: no prediction would ever match, and every rate
        # and gap would come out 0 without an error
        raise ValueError(
            f"y_pred holds {kp} labels ({', '.join(map(repr, unique_values(yp)[:3].tolist()))}) and y_true {kt} "
            f"labels ({', '.join(map(repr, unique_values(yt)[:3].tolist()))}); convert one of them so that equal "
            "classes compare equal"
        )
    return yt, yp


def prepare(y_true: Any, y_pred: Any, groups: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``y_true``, ``y_pred`` and ``groups`` as checked 1-D arrays of one length (see :func:`as_1d`); labels, not
    scores (a float array with a non-integer value is refused)."""
    yt, yp = _labels_pair(y_true, y_pred)
    g = as_1d(groups, "groups")
    reject_continuous_labels(g, "groups")
    check_lengths(y_true=yt, y_pred=yp, groups=g)
    return yt, yp, g


def check_pos_label(yt: np.ndarray, yp: np.ndarray, pos_label: Any) -> None:
    """Catch a wrong ``pos_label`` (e.g. 1 for string labels) early.

    A label of another kind than every label in the data (a number among strings, a string among numbers) is an
    error when the data holds two or more distinct labels (a single label, e.g. all negatives, is a legitimate
    degenerate case). A label of the same kind that does not occur is a class these rows lack, as in one group's rows
    of multi-class data (fairlearn's ``MetricFrame`` calls the rates per group): its rates are then 0 or undefined.
    """
    if isinstance(pos_label, (list, set, dict, np.ndarray)):  # (a tuple can be one label)
        raise ValueError(f"pos_label must be one label (e.g. 1 or 'yes'), not a collection; got {pos_label!r}")
    if equals(yt, pos_label).any() or equals(yp, pos_label).any():
        return
    labels = unique_values(np.concatenate([yt.astype(object), yp.astype(object)]))
    if labels.shape[0] >= 2 and _kind(pos_label) not in {_kind(v) for v in labels.tolist()}:
        shown = ", ".join(repr(v) for v in labels[:10].tolist())
        raise ValueError(
            f"pos_label={pos_label!r} occurs in neither y_true nor y_pred (labels seen: {shown}); "
            "pass the positive class as pos_label"
        )


def _kind(value: Any) -> str:
    """``"number"`` (bools and numpy numbers too), ``"text"`` or the type's name: what kind of label ``value`` is."""
    if isinstance(value, (bool, int, float, np.number, np.bool_)):
        return "number"
    return "text" if isinstance(value, (str, np.str_)) else type(value).__name__


def prepare_pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """``y_true`` and ``y_pred`` as checked 1-D arrays of one length (see :func:`as_1d`); labels, not scores."""
    yt, yp = _labels_pair(y_true, y_pred)
    check_lengths(y_true=yt, y_pred=yp)
    return yt, yp


def as_list(x: Any) -> list[Any]:
    """``None`` as ``[]``, a scalar (or string) as ``[x]``, any other iterable as a list."""
    if x is None:
        return []
    if isinstance(x, (str, bytes)) or not isinstance(x, Iterable):
        return [x]
    return x.tolist() if isinstance(x, np.ndarray) else list(x)


def check_group_present(g: np.ndarray, value: Any, name: str) -> np.ndarray:
    """The boolean mask ``g == value``.

    Raises:
        ValueError: If no sample belongs to the group ``value`` (the message names the argument ``name``).
    """
    m = equals(g, value)
    if not m.any():
        present = ", ".join(repr(v) for v in unique_values(g)[:10].tolist())
        raise ValueError(f"{name}={value!r} has no samples in groups (groups present: {present})")
    return m

"""Column bookkeeping for :class:`steerfair.tabular.FairSteerer`: naming and indexing columns, their scale, skew and
atoms, the choice of marginals that ``marginals="auto"`` makes from them, and missing values (NaN may pass through
columns that are not steered, never through steered ones)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .covariance import near_singular
from .warning_location import user_stacklevel

__all__ = [
    "ATOM_SHARE",
    "atom_columns",
    "auto_marginals",
    "check_steered_finite",
    "chosen_columns",
    "column_index",
    "column_values",
    "column_scale",
    "numeric_dtype",
    "skew",
    "skewed_columns",
    "two_valued_columns",
    "warn_labelled_atoms",
    "warn_uncovered_nan",
    "well_conditioned",
]

#: ``marginals="auto"`` takes the copula when a steered column has a value shared by at least this share of the
#: training rows (and by two rows at least): zeros of a zero-inflated column, ages in years, counts, ordinal codes
ATOM_SHARE = 0.01


def numeric_dtype(col: Any) -> bool:
    """Whether a DataFrame column has a bool, integer, unsigned or float dtype (bool: 0 / 1, as ``pd.get_dummies``
    writes one-hot columns)."""
    kind = getattr(getattr(col, "dtype", None), "kind", "O")
    return kind in "biuf"


def column_values(values: np.ndarray, dtype: Any, steered: bool) -> Any:
    """A column's output values in its DataFrame dtype: a steered column stays float (its values moved), except a
    bool column the copula kept on {0, 1}; a garbled or re-derived discrete column takes its dtype back, pandas'
    nullable and categorical dtypes included (a categorical column's values are matched to its categories by
    value, so ``1.0`` finds ``True``; a value that is none of them leaves the column float)."""
    on_01 = getattr(dtype, "kind", "") == "b" and bool(np.isin(values, (0.0, 1.0)).all())
    if steered and not on_01:
        return values
    if isinstance(dtype, np.dtype):
        return values.astype(dtype)
    import pandas as pd  # only DataFrames carry extension dtypes

    if isinstance(dtype, pd.CategoricalDtype):
        try:
            levels = np.asarray(dtype.categories, dtype=np.float64)
        except (TypeError, ValueError):  # non-numeric categories: no value of a numeric column can be one
            return values
        hit = values[:, None] == levels[None, :]
        if not np.all(hit.sum(axis=1) == 1):
            return values
        return pd.Categorical.from_codes(np.argmax(hit, axis=1), dtype=dtype)
    return pd.array(values, dtype=dtype)


def column_index(c: Any, names: list[str] | None, n_features: int) -> int:
    """The position of column ``c`` (an index, negative from the end, or a name among ``names``).

    Raises:
        ValueError: if the index is out of range, or the name is unknown or ``X`` has no names.
    """
    if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
        if not -n_features <= int(c) < n_features:
            raise ValueError(f"column index {c} out of range for {n_features} features")
        return int(c) % n_features
    if names is None:
        raise ValueError(f"column {c!r} given by name but X has no column names (pass a DataFrame)")
    if str(c) not in names:
        raise ValueError(f"unknown column {c!r}; known columns: {names}")
    return names.index(str(c))


def chosen_columns(
    columns: Any, names: list[str] | None, n_features: int, name: Callable[[int], str], numeric: Callable[[int], bool]
) -> list[int]:
    """The positions of ``FairSteerer(columns=...)`` (names or indices, :func:`column_index`); a bare string is
    refused (it was read letter by letter: ``"x1"`` gave "unknown column 'x'"), and so is a column that is not
    ``numeric`` (``name``: a position's name for the message): datetimes, durations and categoricals convert to float
    (epoch microseconds, category values) but are no quantities to steer, and are refused like strings."""
    if isinstance(columns, (str, bytes)):
        raise ValueError(f"columns must be a list of names or indices; got the string {columns!r} "
                         f"(write columns=[{columns!r}])")  # fmt: skip
    idx = [column_index(c, names, n_features) for c in columns]
    bad = [name(j) for j in idx if not numeric(j)]
    if bad:
        raise ValueError(f"columns {bad} are not numeric and cannot be steered")
    return idx


def column_scale(Z: np.ndarray) -> np.ndarray:
    """Per-column standard deviation of ``Z`` (1 for a constant column): the unit of the covariance estimate."""
    sd = np.std(Z, axis=0)
    return np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)


def well_conditioned(cov: np.ndarray, scale: np.ndarray) -> bool:
    """Whether ``cov``, standardised by ``scale``, is far from singular (the ``reg="auto"`` criterion)."""
    return not near_singular(np.linalg.eigvalsh(cov / np.outer(scale, scale)))


def skew(v: np.ndarray) -> float:
    """The sample skewness of ``v`` (0 for a constant)."""
    s = float(np.std(v))
    return 0.0 if s == 0 else float(np.mean((v - v.mean()) ** 3) / s**3)


#: ``marginals="auto"`` with a shared target takes the copula when a steered column's skewness within a (group, class)
#: cell of at least :data:`SKEW_MIN_ROWS` rows exceeds this (a normal sample of 50 rows: standard error about 0.34)
SKEW_LIMIT = 1.0
SKEW_MIN_ROWS = 50


def skewed_columns(Z: np.ndarray, y: np.ndarray, group_index: np.ndarray) -> list[tuple[int, float]]:
    """Steered columns whose skewness within some (group, class) cell exceeds :data:`SKEW_LIMIT` in size, with the
    largest such skewness: a shared target's Gaussian garbling equalises two moments of each cell, so for skewed
    cells (a log-normal column) the laws stay unequal, and a gradient-boosted model told the groups apart from them
    (group AUC 0.95 on one class; the copula: 0.51)."""
    found = []
    for j in range(Z.shape[1]):
        worst = 0.0
        for a in np.unique(group_index):
            for c in np.unique(y):
                cell = Z[(group_index == a) & (y == c), j]
                if cell.size >= SKEW_MIN_ROWS:
                    worst = max(worst, abs(skew(cell)))
        if worst > SKEW_LIMIT:
            found.append((j, worst))
    return found


def auto_marginals(Z: np.ndarray, cells: tuple[np.ndarray, np.ndarray] | None, lognormal: bool) -> str:
    """``FairSteerer(marginals="auto")``'s choice for the steered columns ``Z``: ``"copula"`` when a column has an
    atom (:func:`atom_columns`) or, given ``cells = (y, group index)`` (the shared targets), a skewed cell
    (:func:`skewed_columns`); ``"gaussian"`` otherwise and whenever log-normal columns are asked."""
    if lognormal:
        return "gaussian"
    odd = bool(atom_columns(Z)) or (cells is not None and bool(skewed_columns(Z, *cells)))
    return "copula" if odd else "gaussian"


def atom_columns(Z: np.ndarray, share: float = ATOM_SHARE) -> list[tuple[int, float]]:
    """The columns of ``Z`` ``(n, d)`` with an atom: ``(column, share of the rows on its most frequent value)`` for
    every column whose most frequent value is taken by at least ``max(2, share * n)`` rows."""
    n = Z.shape[0]
    out = []
    for j in range(Z.shape[1]):
        _, counts = np.unique(Z[:, j], return_counts=True)
        top = int(counts.max()) if counts.size else 0
        if top >= max(2.0, share * n):
            out.append((j, top / n))
    return out


def check_steered_finite(
    Z: np.ndarray, cols: np.ndarray, name: Callable[[int], str], *, automatic: bool = False
) -> None:
    """Raise a ``ValueError`` naming the steered columns ``cols`` (the columns of ``Z``) that hold NaN or inf.

    ``automatic``: the columns were chosen by ``columns=None``, so the message says how to leave them unsteered.
    """
    bad = [name(int(cols[j])) for j in np.flatnonzero(~np.all(np.isfinite(Z), axis=0))]
    if not bad:
        return
    if automatic:
        raise ValueError(
            f"X: column(s) {bad} would be steered (columns=None takes every numeric column with more than two values) "
            "but contain NaN: impute them, or pass columns= without them to let them pass through"
        )
    raise ValueError(
        f"X: steered column(s) {bad} contain NaN: impute them first, or leave them out of columns= (columns that are "
        "not steered may hold NaN and pass through unchanged)"
    )


def warn_uncovered_nan(
    arr: np.ndarray, rest: Sequence[int], target: str, name: Callable[[int], str], nonnumeric: Sequence[int] = ()
) -> None:
    """Warn that the columns ``rest`` of ``arr`` holding NaN, and the ``nonnumeric`` columns (strings, categories),
    pass through a shared ``target`` unchanged (neither steered nor garbled), so its equal-laws guarantee does not
    include them."""
    holes = [name(int(j)) for j in rest if not np.all(np.isfinite(arr[:, j]))]
    text = [name(int(j)) for j in sorted(nonnumeric)]
    if holes or text:
        what = " and ".join(
            part for part in (f"column(s) {holes} hold NaN" if holes else "",
                              f"column(s) {text} are not numeric" if text else "") if part
        )  # fmt: skip
        warnings.warn(
            f"{what} and pass through unchanged: target={target!r} does not cover them, so a model that reads them "
            "can still tell the groups apart; encode them as numbers (one-hot columns are garbled), impute them, "
            "or drop them for the equal-laws guarantee to include them",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


def warn_labelled_atoms(Z: np.ndarray, names: list[str]) -> None:
    """Warn when a steered column (``names``: the columns of ``Z``) has an atom (one value in >= 20 % of the rows)
    under Gaussian marginals: the labelled cell maps send it to a different value in every class, which a flexible
    model reads the label off."""
    atoms = [f"{names[j]} ({share:.0%})" for j, share in atom_columns(Z, 0.2)]
    if atoms:
        warnings.warn(
            "train_maps='labeled' with marginals='gaussian': steered column(s) with a repeated value "
            + ", ".join(atoms)
            + " are moved to a class-specific value per (group, class) cell; tree models can read the label "
            "off them and fail on test rows. Prefer marginals='auto' or 'copula' (or train_maps='unlabeled').",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


def two_valued_columns(arr: np.ndarray, skip: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """The columns of ``arr`` (outside ``skip``: non-numeric ones) that take exactly two finite values: flags and
    the columns of one-hot blocks."""
    return [j for j in range(arr.shape[1]) if j not in skip and np.unique(arr[np.isfinite(arr[:, j]), j]).size == 2]

"""Column bookkeeping for :class:`steerfair.tabular.FairSteerer`: naming and indexing columns, their scale, skew and
atoms, and the choice of marginals that ``marginals="auto"`` makes from them."""

from __future__ import annotations

from typing import Any

import numpy as np

from .covariance import near_singular

__all__ = ["ATOM_SHARE", "atom_columns", "column_index", "column_scale", "numeric_dtype", "skew", "well_conditioned"]

#: ``marginals="auto"`` takes the copula when a steered column has a value shared by at least this share of the
#: training rows (and by two rows at least): zeros of a zero-inflated column, ages in years, counts, ordinal codes
ATOM_SHARE = 0.01


def numeric_dtype(col: Any) -> bool:
    """Whether a DataFrame column has an integer, unsigned or float dtype."""
    kind = getattr(getattr(col, "dtype", None), "kind", "O")
    return kind in "iuf"


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

"""Discrete columns that a steered continuous column determines, re-derived after steering.

Tables often carry a binned copy of a continuous column: COMPAS has ``age`` and the one-hot ``age_cat`` ("Less than
25", "25 - 45", "Greater than 45"); Adult has ``education-num`` and the one-hot ``education`` (one category per
value). A steering map moves the continuous column but, column by column, not its binned copy (the ideal target
passes discrete columns through; the copula moves them separately), so a moved row can end up aged 30 with
``age_cat = "Greater than 45"``. Such a combination occurs only in the moved group, and a tree trained on the
steered table reads it: on COMPAS / race (seed 0, the positive-class target) a quarter of the moved group's rows
were inconsistent, and a gradient-boosted group discriminator among the positives found an advantage of 0.24 with
``age_cat`` and 0.12 without it (``recipes/group_leakage.py``, docs/shared_target.md section 11).

:func:`find_binned_columns` finds, in the training rows, every discrete variable (a one-hot block or a two-valued
column) that is an interval binning of one continuous source column in at least ``min_agreement`` of the rows;
:meth:`BinnedColumns.derive` gives its categories for new source values. ``FairSteerer(derived="rederive")`` (the
default) sets those columns from the *steered* source value in every row where the source or those columns moved,
so the steered table keeps the relation it had; rows left unchanged keep their values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .categorical_garbling import discrete_variables

__all__ = ["MIN_AGREEMENT", "MIN_RECALL", "BinnedColumns", "find_binned_columns", "rederive"]

#: The share of training rows an interval rule must reproduce for a discrete variable to count as derived.
MIN_AGREEMENT = 0.99
#: ... and the share of each category's rows (so that a rare category is not "derived" by never predicting it).
MIN_RECALL = 0.95


@dataclass(frozen=True, eq=False)
class BinnedColumns:
    """A discrete variable that is an interval binning of one continuous column.

    Attributes:
        source: The continuous column's index.
        columns: The discrete variable's column indices (a one-hot block, or one two-valued column).
        values: ``(n_categories, len(columns))`` the category rows, in the order of the intervals.
        edges: ``(n_categories - 1,)`` increasing cut points: category ``i`` on ``(edges[i-1], edges[i]]``.
        agreement: The share of training rows whose category the interval rule reproduces.
    """

    source: int
    columns: tuple[int, ...]
    values: np.ndarray
    edges: np.ndarray
    agreement: float

    def derive(self, s: np.ndarray) -> np.ndarray:
        """The category rows (``(n, len(columns))``) of source values ``s``."""
        return self.values[np.searchsorted(self.edges, np.asarray(s, dtype=np.float64), side="left")]


def _best_cut(lower: np.ndarray, upper: np.ndarray) -> tuple[float, int]:
    """The cut ``t`` (a midpoint between distinct values) minimising ``#(lower > t) + #(upper <= t)``, and that
    number of errors."""
    lo, up = np.sort(lower), np.sort(upper)
    grid = np.unique(np.concatenate([lo, up]))
    errors = (lo.size - np.searchsorted(lo, grid, side="right")) + np.searchsorted(up, grid, side="right")
    best = int(np.argmin(errors))
    cut = grid[best] if best + 1 == grid.size else 0.5 * (grid[best] + grid[best + 1])
    return float(cut), int(errors[best])


def _binning(s: np.ndarray, codes: np.ndarray, n_categories: int) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Order of the categories along ``s``, the cuts between neighbours and the rule's agreement; ``None`` when the
    cuts do not increase or the rule reproduces less than :data:`MIN_RECALL` of some category's rows."""
    present = [c for c in range(n_categories) if np.any(codes == c)]
    if len(present) < 2:
        return None
    order = sorted(present, key=lambda c: float(np.median(s[codes == c])))
    edges = np.array([_best_cut(s[codes == a], s[codes == b])[0] for a, b in zip(order[:-1], order[1:], strict=True)])
    if np.any(np.diff(edges) <= 0):
        return None
    derived = np.asarray(order)[np.searchsorted(edges, s, side="left")]
    if min(float(np.mean(derived[codes == c] == c)) for c in present) < MIN_RECALL:
        return None
    return np.asarray(order), edges, float(np.mean(derived == codes))


def find_binned_columns(
    X: np.ndarray, sources: Sequence[int], candidates: Sequence[int], *, min_agreement: float = MIN_AGREEMENT
) -> tuple[BinnedColumns, ...]:
    """The discrete variables among ``candidates`` that an interval rule on one of ``sources`` reproduces.

    Args:
        X: Training rows, all columns (float64; non-numeric columns NaN).
        sources: Continuous columns (more than two distinct values) that may determine a discrete variable.
        candidates: Columns that may hold discrete variables (one-hot blocks and two-valued columns are found
            among them, as :func:`steerfair.categorical_garbling.discrete_variables` finds them, unmerged).
        min_agreement: The share of rows the rule must reproduce (default :data:`MIN_AGREEMENT`).

    Returns:
        One :class:`BinnedColumns` per derived variable, with the source of highest agreement; none for a variable
        that no source determines.
    """
    if not 0.5 < min_agreement <= 1.0:
        raise ValueError(f"min_agreement must be in (0.5, 1]; got {min_agreement!r}")
    srcs = [int(j) for j in sources if np.all(np.isfinite(X[:, j])) and np.unique(X[:, j]).size > 2]
    found: list[BinnedColumns] = []
    for var in discrete_variables(X, [j for j in candidates if j not in set(srcs)], max_categories=1):
        codes = var.encode(X)
        best: BinnedColumns | None = None
        for j in srcs:
            fit = _binning(X[:, j], codes, var.n_categories)
            if fit is not None and fit[2] >= min_agreement and (best is None or fit[2] > best.agreement):
                best = BinnedColumns(j, var.columns, var.values[fit[0]], fit[1], fit[2])
        if best is not None:
            found.append(best)
    return tuple(found)


def rederive(out: np.ndarray, original: np.ndarray, binned: Sequence[BinnedColumns]) -> list[int]:
    """Set each derived variable's columns of ``out`` from its steered source, in the rows where the source or the
    variable's columns differ from ``original`` (the copula may move either); in place. Rows left as they were keep
    their values. Returns the columns written."""
    written: list[int] = []
    for b in binned:
        cols = list(b.columns)
        moved = (out[:, b.source] != original[:, b.source]) | np.any(out[:, cols] != original[:, cols], axis=1)
        if np.any(moved):
            rows = np.nonzero(moved)[0]
            out[np.ix_(rows, np.asarray(cols, dtype=np.intp))] = b.derive(out[rows, b.source])
            written.extend(b.columns)
    return written

"""Binary group-fairness gaps: demographic parity, equal opportunity, equalized odds, worst-group accuracy.

The gap functions take ``y_true, y_pred`` positionally and ``groups`` as a keyword, mirroring fairlearn's
``sensitive_features``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np

from .inputs import check_option, equals, equals_elementwise, prepare, unique_values
from .rates import group_rates

__all__ = [
    "GAP_METHODS",
    "GapMethod",
    "demographic_parity_gap",
    "equal_opportunity_gap",
    "equalized_odds_gap",
    "spread",
    "worst_group_accuracy",
]

#: How a gap summarises per-group rates: largest difference or largest ratio (``method=``).
GapMethod = Literal["max_minus_min", "max_ratio"]
GAP_METHODS: tuple[str, ...] = ("max_minus_min", "max_ratio")


def spread(values: np.ndarray, group_names: np.ndarray, method: str, what: str, stacklevel: int = 3) -> float:
    """Max-minus-min (or min/max ratio) of per-group values, skipping undefined (NaN) groups with a warning.

    Args:
        values: One value per group (NaN: undefined).
        group_names: The groups, in the order of ``values`` (named in the warning).
        method: ``"max_minus_min"`` or ``"max_ratio"``.
        what: The rate's name, used in the warnings.
        stacklevel: Passed to :func:`warnings.warn` (3: the caller of the function that calls ``spread``).

    Returns:
        float: The gap (or ratio); NaN when fewer than two groups have a defined value.
    """
    ok = np.isfinite(values)
    if not ok.all():
        skipped = group_names[~ok].tolist()
        warnings.warn(
            f"{what} is undefined for group(s) {skipped!r} (no samples of the conditioning class); skipping them",
            UserWarning,
            stacklevel=stacklevel,
        )
    v = values[ok]
    if v.shape[0] < 2:
        warnings.warn(f"{what} is defined for fewer than 2 groups; the gap is NaN", UserWarning, stacklevel=stacklevel)
        return math.nan
    hi, lo = float(v.max()), float(v.min())
    if method == "max_minus_min":
        return hi - lo
    return 1.0 if hi == 0.0 else lo / hi


_RATE_NAMES = {"selection_rate": "selection rate", "tpr": "true-positive rate", "fpr": "false-positive rate"}


def _spreads(rates: tuple[str, ...], y_true: Any, y_pred: Any, groups: Any, pos_label: Any, method: str) -> list[float]:
    """:func:`spread` of per-group rates of :class:`~steerfair.metrics.rates.GroupRates` (``"selection_rate"``,
    ``"tpr"``, ``"fpr"``) after checking ``method``; warnings point at the caller of the public gap function."""
    check_option(method, "method", GAP_METHODS)
    r = group_rates(y_true, y_pred, groups, pos_label=pos_label)
    out = []
    for rate in rates:  # a loop, not a comprehension: no extra frame between the caller and the warning
        out.append(spread(getattr(r, rate), r.groups, method, _RATE_NAMES[rate], stacklevel=4))
    return out


def demographic_parity_gap(
    y_true: Any, y_pred: Any, *, groups: Any, pos_label: Any = 1, method: GapMethod = "max_minus_min"
) -> float:
    """Demographic-parity gap: spread of the selection rate ``P(y_pred = pos | group)`` across groups.

    Args:
        y_true, y_pred (array-like of shape (n,)): True and predicted labels.
        groups (array-like of shape (n,)): Group of every sample (keyword-only, like fairlearn's
            ``sensitive_features``).
        pos_label (hashable, default 1): The positive label.
        method ({"max_minus_min", "max_ratio"}, default "max_minus_min"): ``"max_minus_min"``: largest minus smallest
            group rate (0 is fair); ``"max_ratio"``: smallest divided by largest group rate (1 is fair; 1 when every
            rate is 0). Both lie in ``[0, 1]``.

    Returns:
        float: The gap (or ratio).
    """
    return _spreads(("selection_rate",), y_true, y_pred, groups, pos_label, method)[0]


def equal_opportunity_gap(
    y_true: Any, y_pred: Any, *, groups: Any, pos_label: Any = 1, method: GapMethod = "max_minus_min"
) -> float:
    """Equal-opportunity gap: spread of the true-positive rate across groups.

    Groups without a positive sample have an undefined TPR; they are skipped with a :class:`UserWarning`, and the
    gap is NaN when fewer than two groups remain. Parameters as in :func:`demographic_parity_gap`.

    Returns:
        float: The TPR gap (or ratio) in ``[0, 1]``.
    """
    return _spreads(("tpr",), y_true, y_pred, groups, pos_label, method)[0]


def equalized_odds_gap(
    y_true: Any, y_pred: Any, *, groups: Any, pos_label: Any = 1, method: GapMethod = "max_minus_min"
) -> float:
    """Equalized-odds gap: the larger of the TPR gap and the FPR gap.

    With ``method="max_ratio"`` it is the smaller of the two ratios (matching fairlearn's
    ``equalized_odds_ratio``). Undefined rates are handled as in :func:`equal_opportunity_gap`; when only one of
    the two gaps is defined, that one is returned. Parameters as in :func:`demographic_parity_gap`.

    Returns:
        float: The equalized-odds gap (or ratio) in ``[0, 1]``.
    """
    gaps = _spreads(("tpr", "fpr"), y_true, y_pred, groups, pos_label, method)
    finite = [x for x in gaps if math.isfinite(x)]
    if not finite:
        return math.nan
    return max(finite) if method == "max_minus_min" else min(finite)


def worst_group_accuracy(y_true: Any, y_pred: Any, *, groups: Any) -> float:
    """Smallest per-group accuracy ``min_g P(y_pred = y_true | group = g)``.

    Works for any number of classes. Parameters as in :func:`demographic_parity_gap`.

    Returns:
        float: The worst-group accuracy in ``[0, 1]``.
    """
    yt, yp, g = prepare(y_true, y_pred, groups)
    uniq = unique_values(g)
    if uniq.shape[0] < 2:
        raise ValueError(f"groups must contain at least 2 distinct groups; got only {uniq.tolist()!r}")
    correct = equals_elementwise(yt, yp)
    return float(min(correct[equals(g, grp)].mean() for grp in uniq))

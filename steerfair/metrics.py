"""Group-fairness metrics for binary and multi-class classifiers.

Two families of metrics live here.

**Binary group metrics** (one positive label, any number of groups): per-group selection rate, true-positive
rate (TPR) and false-positive rate (FPR), and the usual gaps built from them -- demographic parity, equal
opportunity (TPR gap) and equalized odds (the larger of the TPR and FPR gaps) -- plus worst-group accuracy.
The gap functions take ``y_true, y_pred`` positionally and ``groups`` as a keyword, mirroring fairlearn's
``sensitive_features``; the scalar functions :func:`selection_rate`, :func:`true_positive_rate` and
:func:`false_positive_rate` take only ``(y_true, y_pred)`` so they can be passed to
``fairlearn.metrics.MetricFrame(metrics=...)``.

**Multi-class TPR gaps** (the Bios protocol of De-Arteaga et al. 2019, used by INLP, Ravfogel et al. 2020, and
MiMiC, Singh et al. 2024): for every class ``c`` the gap ``TPR_{a,c} - TPR_{b,c}`` between two groups, where
``TPR_{g,c}`` is the recall of class ``c`` among samples of group ``g`` whose true class is ``c``; its root mean
square over classes (:func:`rms_tpr_gap`); and the Pearson correlation between the per-class gaps and the
per-class share of group ``a`` (:func:`gap_share_correlation`, :func:`group_share_per_class`).

:func:`bootstrap_ci` gives percentile bootstrap intervals for any of these, and :func:`fairness_report` bundles
the binary metrics into a printable / plottable :class:`FairnessReport`.

Inputs may be lists, numpy arrays or pandas Series (values are taken positionally; a Series' index is
ignored). Labels may be of any hashable type. Bad input -- mismatched lengths, missing values, empty input,
fewer than two groups, unknown options -- raises :class:`ValueError` naming the offending argument.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "FairnessReport",
    "GroupRates",
    "bootstrap_ci",
    "demographic_parity_gap",
    "equal_opportunity_gap",
    "equalized_odds_gap",
    "fairness_report",
    "false_positive_rate",
    "gap_share_correlation",
    "group_rates",
    "group_share_per_class",
    "rms_tpr_gap",
    "selection_rate",
    "tpr_gaps_per_class",
    "true_positive_rate",
    "worst_group_accuracy",
]

GapMethod = Literal["max_minus_min", "max_ratio"]
GapSign = Literal["signed", "absolute"]
_METHODS: tuple[str, ...] = ("max_minus_min", "max_ratio")
_SIGNS: tuple[str, ...] = ("signed", "absolute")


# ----------------------------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------------------------


def _is_missing(x: Any) -> bool:
    """True for None, NaN, NaT and pandas.NA (without importing pandas)."""
    if x is None:
        return True
    try:
        return bool(x != x)
    except (TypeError, ValueError):  # pandas.NA: bool(NA != NA) raises TypeError
        return True


def _as_1d(x: Any, name: str) -> np.ndarray:
    """Return ``x`` as a 1-D numpy array with no missing values."""
    if x is None:
        raise ValueError(f"{name} must be array-like; got None")
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
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
        n_bad = sum(_is_missing(v) for v in arr)
    elif arr.dtype.kind == "M":
        n_bad = int(np.count_nonzero(np.isnat(arr)))
    else:
        n_bad = 0
    if n_bad:
        raise ValueError(f"{name} contains {n_bad} missing value(s) (NaN/None); drop or impute them first")
    return arr


def _check_lengths(**arrays: np.ndarray) -> int:
    lengths = {name: int(a.shape[0]) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise ValueError(f"inputs must have the same length; got {desc}")
    return next(iter(lengths.values()))


def _unique(arr: np.ndarray) -> np.ndarray:
    """Sorted unique values; falls back to first-appearance order for unorderable mixed types."""
    try:
        return np.unique(arr)
    except TypeError:
        seen = list(dict.fromkeys(arr.tolist()))
        out = np.empty(len(seen), dtype=object)
        out[:] = seen
        return out


def _eq(arr: np.ndarray, value: Any) -> np.ndarray:
    """Elementwise ``arr == value`` as a boolean array, robust to incomparable types."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = arr == value
    res = np.asarray(res)
    if res.dtype != bool or res.shape != arr.shape:
        res = np.fromiter((bool(v == value) for v in arr), dtype=bool, count=arr.shape[0])
    return res


def _eq_arrays(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = a == b
    res = np.asarray(res)
    if res.dtype != bool or res.shape != a.shape:
        res = np.fromiter((bool(u == v) for u, v in zip(a, b, strict=True)), dtype=bool, count=a.shape[0])
    return res


def _check_option(value: Any, name: str, options: tuple[str, ...]) -> str:
    if value not in options:
        raise ValueError(f"unknown {name}={value!r}; expected one of {', '.join(map(repr, options))}")
    return str(value)


def _prepare(y_true: Any, y_pred: Any, groups: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yt = _as_1d(y_true, "y_true")
    yp = _as_1d(y_pred, "y_pred")
    g = _as_1d(groups, "groups")
    _check_lengths(y_true=yt, y_pred=yp, groups=g)
    return yt, yp, g


def _check_pos_label(yt: np.ndarray, yp: np.ndarray, pos_label: Any) -> None:
    """Catch a wrong ``pos_label`` (e.g. 1 for string labels) early.

    The label is only required to occur somewhere when the data holds two or more distinct labels; data with a
    single label (e.g. all negatives) is a legitimate degenerate case.
    """
    if _eq(yt, pos_label).any() or _eq(yp, pos_label).any():
        return
    labels = _unique(np.concatenate([yt.astype(object), yp.astype(object)]))
    if labels.shape[0] >= 2:
        shown = ", ".join(repr(v) for v in labels[:10].tolist())
        raise ValueError(
            f"pos_label={pos_label!r} occurs in neither y_true nor y_pred (labels seen: {shown}); "
            "pass the positive class as pos_label"
        )


# ----------------------------------------------------------------------------------------------------------------
# per-group scalar metrics (usable inside fairlearn.metrics.MetricFrame)
# ----------------------------------------------------------------------------------------------------------------


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    yt = _as_1d(y_true, "y_true")
    yp = _as_1d(y_pred, "y_pred")
    _check_lengths(y_true=yt, y_pred=yp)
    return yt, yp


def selection_rate(y_true: Any, y_pred: Any, pos_label: Any = 1) -> float:
    """Fraction of predictions equal to ``pos_label``, ``P(y_pred = pos)``.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        True labels (only checked for length and missing values; kept for the ``(y_true, y_pred)`` signature).
    y_pred : array-like of shape (n,)
        Predicted labels.
    pos_label : hashable, default 1
        The positive label; every other label counts as negative.

    Returns
    -------
    float
        The selection rate in ``[0, 1]``.
    """
    _, yp = _pair(y_true, y_pred)
    return float(np.mean(_eq(yp, pos_label)))


def true_positive_rate(y_true: Any, y_pred: Any, pos_label: Any = 1) -> float:
    """Recall of the positive class, ``P(y_pred = pos | y_true = pos)``.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted labels.
    pos_label : hashable, default 1
        The positive label; every other label counts as negative.

    Returns
    -------
    float
        The TPR in ``[0, 1]``, or NaN when ``y_true`` holds no positive sample.
    """
    yt, yp = _pair(y_true, y_pred)
    pos = _eq(yt, pos_label)
    if not pos.any():
        return math.nan
    return float(np.mean(_eq(yp[pos], pos_label)))


def false_positive_rate(y_true: Any, y_pred: Any, pos_label: Any = 1) -> float:
    """Fraction of true negatives predicted positive, ``P(y_pred = pos | y_true != pos)``.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted labels.
    pos_label : hashable, default 1
        The positive label; every other label counts as negative.

    Returns
    -------
    float
        The FPR in ``[0, 1]``, or NaN when ``y_true`` holds no negative sample.
    """
    yt, yp = _pair(y_true, y_pred)
    neg = ~_eq(yt, pos_label)
    if not neg.any():
        return math.nan
    return float(np.mean(_eq(yp[neg], pos_label)))


# ----------------------------------------------------------------------------------------------------------------
# per-group table
# ----------------------------------------------------------------------------------------------------------------


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class GroupRates:
    """Per-group rates of a binary classifier (one entry per group, groups in sorted order).

    Attributes
    ----------
    groups : np.ndarray
        The distinct group labels.
    count : np.ndarray of int
        Number of samples per group.
    accuracy : np.ndarray of float
        ``P(y_pred = y_true)`` per group.
    selection_rate : np.ndarray of float
        ``P(y_pred = pos)`` per group.
    tpr : np.ndarray of float
        ``P(y_pred = pos | y_true = pos)`` per group (NaN where a group has no positive sample).
    fpr : np.ndarray of float
        ``P(y_pred = pos | y_true != pos)`` per group (NaN where a group has no negative sample).
    pos_label : hashable
        The positive label used.
    """

    groups: np.ndarray
    count: np.ndarray
    accuracy: np.ndarray
    selection_rate: np.ndarray
    tpr: np.ndarray
    fpr: np.ndarray
    pos_label: Any = 1

    def __post_init__(self) -> None:
        for name in ("groups", "count", "accuracy", "selection_rate", "tpr", "fpr"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def __len__(self) -> int:
        return int(self.groups.shape[0])

    def to_dict(self) -> dict[str, list[Any]]:
        """Column-oriented plain-Python dict (``{"group": [...], "count": [...], ...}``)."""
        return {
            "group": self.groups.tolist(),
            "count": [int(c) for c in self.count],
            "accuracy": [float(v) for v in self.accuracy],
            "selection_rate": [float(v) for v in self.selection_rate],
            "tpr": [float(v) for v in self.tpr],
            "fpr": [float(v) for v in self.fpr],
        }

    def rows(self) -> list[dict[str, Any]]:
        """Row-oriented records, one dict per group."""
        d = self.to_dict()
        return [{k: d[k][i] for k in d} for i in range(len(self))]


def group_rates(y_true: Any, y_pred: Any, groups: Any, *, pos_label: Any = 1) -> GroupRates:
    """Count, accuracy, selection rate, TPR and FPR of every group.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted labels. With more than two labels the rates are one-vs-rest for ``pos_label``.
    groups : array-like of shape (n,)
        Group (sensitive attribute) of every sample; at least two distinct values.
    pos_label : hashable, default 1
        The positive label.

    Returns
    -------
    GroupRates
        Per-group arrays, groups sorted.

    Raises
    ------
    ValueError
        On mismatched lengths, missing values, empty input, a single group, or a ``pos_label`` absent from data
        that holds two or more labels.
    """
    yt, yp, g = _prepare(y_true, y_pred, groups)
    _check_pos_label(yt, yp, pos_label)
    uniq = _unique(g)
    if uniq.shape[0] < 2:
        raise ValueError(f"groups must contain at least 2 distinct groups; got only {uniq.tolist()!r}")
    true_pos = _eq(yt, pos_label)
    pred_pos = _eq(yp, pos_label)
    correct = _eq_arrays(yt, yp)
    k = uniq.shape[0]
    count = np.zeros(k, dtype=np.int64)
    acc, sel, tpr, fpr = (np.full(k, np.nan) for _ in range(4))
    for i, grp in enumerate(uniq):
        m = _eq(g, grp)
        count[i] = int(m.sum())
        acc[i] = correct[m].mean()
        sel[i] = pred_pos[m].mean()
        p = m & true_pos
        n = m & ~true_pos
        if p.any():
            tpr[i] = pred_pos[p].mean()
        if n.any():
            fpr[i] = pred_pos[n].mean()
    return GroupRates(groups=uniq, count=count, accuracy=acc, selection_rate=sel, tpr=tpr, fpr=fpr, pos_label=pos_label)


# ----------------------------------------------------------------------------------------------------------------
# binary gaps
# ----------------------------------------------------------------------------------------------------------------


def _spread(values: np.ndarray, group_names: np.ndarray, method: str, what: str) -> float:
    """Max-minus-min (or min/max ratio) of per-group values, skipping undefined (NaN) groups with a warning."""
    ok = np.isfinite(values)
    if not ok.all():
        skipped = group_names[~ok].tolist()
        warnings.warn(
            f"{what} is undefined for group(s) {skipped!r} (no samples of the conditioning class); skipping them",
            UserWarning,
            stacklevel=3,
        )
    v = values[ok]
    if v.shape[0] < 2:
        warnings.warn(f"{what} is defined for fewer than 2 groups; the gap is NaN", UserWarning, stacklevel=3)
        return math.nan
    hi, lo = float(v.max()), float(v.min())
    if method == "max_minus_min":
        return hi - lo
    return 1.0 if hi == 0.0 else lo / hi


def demographic_parity_gap(
    y_true: Any, y_pred: Any, *, groups: Any, pos_label: Any = 1, method: GapMethod = "max_minus_min"
) -> float:
    """Demographic-parity gap: spread of the selection rate ``P(y_pred = pos | group)`` across groups.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted labels.
    groups : array-like of shape (n,)
        Group of every sample (keyword-only, like fairlearn's ``sensitive_features``).
    pos_label : hashable, default 1
        The positive label.
    method : {"max_minus_min", "max_ratio"}, default "max_minus_min"
        ``"max_minus_min"``: largest minus smallest group rate (0 is fair); ``"max_ratio"``: smallest divided by
        largest group rate (1 is fair; 1 when every rate is 0). Both lie in ``[0, 1]``.

    Returns
    -------
    float
        The gap (or ratio).
    """
    _check_option(method, "method", _METHODS)
    r = group_rates(y_true, y_pred, groups, pos_label=pos_label)
    return _spread(r.selection_rate, r.groups, method, "selection rate")


def equal_opportunity_gap(
    y_true: Any, y_pred: Any, *, groups: Any, pos_label: Any = 1, method: GapMethod = "max_minus_min"
) -> float:
    """Equal-opportunity gap: spread of the true-positive rate across groups.

    Groups without a positive sample have an undefined TPR; they are skipped with a :class:`UserWarning`, and the
    gap is NaN when fewer than two groups remain. Parameters as in :func:`demographic_parity_gap`.

    Returns
    -------
    float
        The TPR gap (or ratio) in ``[0, 1]``.
    """
    _check_option(method, "method", _METHODS)
    r = group_rates(y_true, y_pred, groups, pos_label=pos_label)
    return _spread(r.tpr, r.groups, method, "true-positive rate")


def equalized_odds_gap(
    y_true: Any, y_pred: Any, *, groups: Any, pos_label: Any = 1, method: GapMethod = "max_minus_min"
) -> float:
    """Equalized-odds gap: the larger of the TPR gap and the FPR gap.

    With ``method="max_ratio"`` it is the smaller of the two ratios (matching fairlearn's
    ``equalized_odds_ratio``). Undefined rates are handled as in :func:`equal_opportunity_gap`; when only one of
    the two gaps is defined, that one is returned. Parameters as in :func:`demographic_parity_gap`.

    Returns
    -------
    float
        The equalized-odds gap (or ratio) in ``[0, 1]``.
    """
    _check_option(method, "method", _METHODS)
    r = group_rates(y_true, y_pred, groups, pos_label=pos_label)
    gaps = [
        _spread(r.tpr, r.groups, method, "true-positive rate"),
        _spread(r.fpr, r.groups, method, "false-positive rate"),
    ]
    finite = [x for x in gaps if math.isfinite(x)]
    if not finite:
        return math.nan
    return max(finite) if method == "max_minus_min" else min(finite)


def worst_group_accuracy(y_true: Any, y_pred: Any, *, groups: Any) -> float:
    """Smallest per-group accuracy ``min_g P(y_pred = y_true | group = g)``.

    Works for any number of classes. Parameters as in :func:`demographic_parity_gap`.

    Returns
    -------
    float
        The worst-group accuracy in ``[0, 1]``.
    """
    yt, yp, g = _prepare(y_true, y_pred, groups)
    uniq = _unique(g)
    if uniq.shape[0] < 2:
        raise ValueError(f"groups must contain at least 2 distinct groups; got only {uniq.tolist()!r}")
    correct = _eq_arrays(yt, yp)
    return float(min(correct[_eq(g, grp)].mean() for grp in uniq))


# ----------------------------------------------------------------------------------------------------------------
# multi-class TPR gaps (Bios protocol)
# ----------------------------------------------------------------------------------------------------------------


def _as_list(x: Any) -> list[Any]:
    if x is None:
        return []
    if isinstance(x, (str, bytes)) or not isinstance(x, Iterable):
        return [x]
    return x.tolist() if isinstance(x, np.ndarray) else list(x)


def _check_group_present(g: np.ndarray, value: Any, name: str) -> np.ndarray:
    m = _eq(g, value)
    if not m.any():
        present = ", ".join(repr(v) for v in _unique(g)[:10].tolist())
        raise ValueError(f"{name}={value!r} has no samples in groups (groups present: {present})")
    return m


def tpr_gaps_per_class(
    y_true: Any,
    y_pred: Any,
    groups: Any,
    *,
    group_a: Hashable,
    group_b: Hashable,
    classes: Iterable[Hashable] | None = None,
    exclude: Hashable | Iterable[Hashable] | None = None,
    sign: GapSign = "signed",
) -> dict[Any, float]:
    """Per-class TPR gap between two groups, ``TPR_{a,c} - TPR_{b,c}`` (De-Arteaga et al. 2019).

    ``TPR_{g,c}`` is the recall of class ``c`` among samples of group ``g`` whose true class is ``c``. Samples of
    groups other than ``group_a`` and ``group_b`` are ignored.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted class labels.
    groups : array-like of shape (n,)
        Group of every sample.
    group_a, group_b : hashable
        The two groups compared; both must occur in ``groups`` and differ.
    classes : iterable, optional
        Classes to report, in this order; defaults to the sorted distinct values of ``y_true``.
    exclude : hashable or iterable, optional
        Class(es) to leave out.
    sign : {"signed", "absolute"}, default "signed"
        ``"absolute"`` returns ``|TPR_{a,c} - TPR_{b,c}|``.

    Returns
    -------
    dict
        ``{class: gap}``. A class for which either group has no sample of that true class maps to NaN; the
        aggregates (:func:`rms_tpr_gap`, :func:`gap_share_correlation`) skip such classes with a warning.
    """
    _check_option(sign, "sign", _SIGNS)
    yt, yp, g = _prepare(y_true, y_pred, groups)
    if _is_missing(group_a) or _is_missing(group_b):
        raise ValueError("group_a and group_b must be group labels, not None/NaN")
    if group_a == group_b:
        raise ValueError(f"group_a and group_b must differ; both are {group_a!r}")
    ma = _check_group_present(g, group_a, "group_a")
    mb = _check_group_present(g, group_b, "group_b")
    cls = _unique(yt).tolist() if classes is None else _as_list(classes)
    drop = _as_list(exclude)
    cls = [c for c in cls if not any(c == d for d in drop)]
    if not cls:
        raise ValueError("no classes left to evaluate (check classes= and exclude=)")
    correct = _eq_arrays(yt, yp)
    out: dict[Any, float] = {}
    for c in cls:
        mc = _eq(yt, c)
        sa, sb = mc & ma, mc & mb
        if not sa.any() or not sb.any():
            out[c] = math.nan
            continue
        gap = float(correct[sa].mean() - correct[sb].mean())
        out[c] = abs(gap) if sign == "absolute" else gap
    return out


def _finite_values(d: Mapping[Any, float], what: str) -> np.ndarray:
    vals = np.array([float(v) for v in d.values()], dtype=np.float64)
    bad = [k for k, v in zip(d.keys(), vals, strict=True) if not np.isfinite(v)]
    if bad:
        warnings.warn(f"skipping {len(bad)} class(es) with undefined {what}: {bad[:10]!r}", UserWarning, stacklevel=3)
    return vals[np.isfinite(vals)]


def rms_tpr_gap(
    y_true: Any,
    y_pred: Any,
    groups: Any,
    *,
    group_a: Hashable,
    group_b: Hashable,
    classes: Iterable[Hashable] | None = None,
    exclude: Hashable | Iterable[Hashable] | None = None,
) -> float:
    """Root-mean-square of the per-class TPR gaps, ``sqrt(mean_c gap_c^2)`` (the GAP^RMS of Ravfogel et al.).

    Classes whose gap is undefined (NaN in :func:`tpr_gaps_per_class`) are skipped with a :class:`UserWarning`.
    Parameters as in :func:`tpr_gaps_per_class`.

    Returns
    -------
    float
        The RMS gap in ``[0, 1]``.

    Raises
    ------
    ValueError
        If no class has samples from both groups.
    """
    gaps = tpr_gaps_per_class(
        y_true, y_pred, groups, group_a=group_a, group_b=group_b, classes=classes, exclude=exclude
    )
    v = _finite_values(gaps, "TPR gap")
    if v.shape[0] == 0:
        raise ValueError("no class has samples of its true class in both group_a and group_b; RMS gap undefined")
    return float(np.sqrt(np.mean(v**2)))


def group_share_per_class(
    y: Any, groups: Any, group_a: Hashable, *, classes: Iterable[Hashable] | None = None
) -> dict[Any, float]:
    """Share of ``group_a`` within every class, ``P(group = a | y = c)``.

    The share is computed on whichever split is passed. The convention of De-Arteaga et al. (2019) and of the
    INLP/MiMiC evaluations is to compute it on the **training** split (the imbalance the model learned from) and
    correlate it with gaps measured on the test split.

    Parameters
    ----------
    y : array-like of shape (n,)
        Class labels (usually the true labels of the training split).
    groups : array-like of shape (n,)
        Group of every sample.
    group_a : hashable
        The group whose share is reported; must occur in ``groups``.
    classes : iterable, optional
        Classes to report; defaults to the sorted distinct values of ``y``. A class with no sample maps to NaN.

    Returns
    -------
    dict
        ``{class: share}`` with shares in ``[0, 1]``.
    """
    yy = _as_1d(y, "y")
    g = _as_1d(groups, "groups")
    _check_lengths(y=yy, groups=g)
    ma = _check_group_present(g, group_a, "group_a")
    cls = _unique(yy).tolist() if classes is None else _as_list(classes)
    out: dict[Any, float] = {}
    for c in cls:
        mc = _eq(yy, c)
        out[c] = float(ma[mc].mean()) if mc.any() else math.nan
    return out


def gap_share_correlation(gaps: Mapping[Any, float], share: Mapping[Any, float]) -> float:
    """Pearson correlation between per-class gaps and per-class share of ``group_a``.

    Parameters
    ----------
    gaps : mapping
        ``{class: gap}``, e.g. from :func:`tpr_gaps_per_class` (signed gaps are the usual choice).
    share : mapping
        ``{class: share}``, e.g. from :func:`group_share_per_class` (computed on the training split by convention).

    Returns
    -------
    float
        Pearson's r over the classes present in both mappings with finite values. Classes missing from ``share`` or
        with a NaN value are skipped with a :class:`UserWarning`.

    Raises
    ------
    ValueError
        If fewer than two classes remain or either variable is constant (correlation undefined).
    """
    if not isinstance(gaps, Mapping) or not isinstance(share, Mapping):
        raise ValueError("gaps and share must be mappings {class: value}")
    keys = list(gaps.keys())
    skipped = [k for k in keys if k not in share]
    x, y = [], []
    for k in keys:
        if k not in share:
            continue
        gx, sy = float(gaps[k]), float(share[k])
        if not (math.isfinite(gx) and math.isfinite(sy)):
            skipped.append(k)
            continue
        x.append(gx)
        y.append(sy)
    if skipped:
        warnings.warn(
            f"skipping {len(skipped)} class(es) missing from share or with NaN values: {skipped[:10]!r}",
            UserWarning,
            stacklevel=2,
        )
    if len(x) < 2:
        raise ValueError(f"need at least 2 classes with finite gap and share for a correlation; got {len(x)}")
    xa, ya = np.asarray(x), np.asarray(y)
    xc, yc = xa - xa.mean(), ya - ya.mean()
    sx, sy = float(np.sqrt(np.sum(xc**2))), float(np.sqrt(np.sum(yc**2)))
    if sx == 0.0 or sy == 0.0:
        raise ValueError("correlation undefined: gaps or shares are constant across classes")
    return float(np.clip(np.sum(xc * yc) / (sx * sy), -1.0, 1.0))


# ----------------------------------------------------------------------------------------------------------------
# bootstrap
# ----------------------------------------------------------------------------------------------------------------


def bootstrap_ci(
    metric_fn: Callable[..., float],
    y_true: Any,
    y_pred: Any,
    groups: Any,
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int | np.random.Generator | None = 0,
    stratify: bool = True,
    metric_kwargs: Mapping[str, Any] | None = None,
) -> tuple[float, float, float]:
    """Percentile bootstrap confidence interval of a group metric.

    Parameters
    ----------
    metric_fn : callable
        Called as ``metric_fn(y_true, y_pred, groups=groups, **metric_kwargs)`` and returning a float, e.g.
        :func:`demographic_parity_gap` or :func:`rms_tpr_gap` (with ``metric_kwargs={"group_a": ..., ...}``).
    y_true, y_pred, groups : array-like of shape (n,)
        The data; rows are resampled with replacement.
    n_boot : int, default 1000
        Number of bootstrap resamples.
    alpha : float, default 0.05
        The interval has nominal coverage ``1 - alpha``.
    seed : int, numpy Generator or None, default 0
        Seed for :func:`numpy.random.default_rng` (or a Generator to use directly).
    stratify : bool, default True
        Resample rows within each group, keeping group sizes fixed (so no group can vanish from a resample).
        ``False`` resamples rows from the whole data.
    metric_kwargs : mapping, optional
        Extra keyword arguments for ``metric_fn``.

    Returns
    -------
    tuple of float
        ``(point_estimate, lo, hi)`` where the point estimate is the metric on the full data and ``lo, hi`` are the
        ``alpha/2`` and ``1 - alpha/2`` quantiles of the bootstrap distribution. Resamples on which the metric is
        NaN or raises :class:`ValueError` are dropped with a warning.

    Notes
    -----
    The percentile interval brackets the point estimate for smooth statistics (rates, signed differences). For
    non-smooth statistics such as a max-minus-min gap whose true value is near zero, the bootstrap distribution is
    biased upwards and the point estimate can fall below ``lo``.
    """
    if not callable(metric_fn):
        raise ValueError("metric_fn must be callable")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer; got {n_boot!r}")
    if not (isinstance(alpha, (float, int)) and 0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha must lie strictly between 0 and 1; got {alpha!r}")
    yt, yp, g = _prepare(y_true, y_pred, groups)
    kw = dict(metric_kwargs or {})
    point = float(metric_fn(yt, yp, groups=g, **kw))
    if not math.isfinite(point):
        raise ValueError("metric_fn returned a non-finite value on the full data; no interval can be formed")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = yt.shape[0]
    strata = [np.flatnonzero(_eq(g, grp)) for grp in _unique(g)] if stratify else [np.arange(n)]
    stats = np.full(int(n_boot), np.nan)
    failed = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for b in range(int(n_boot)):
            idx = np.concatenate([s[rng.integers(0, s.shape[0], size=s.shape[0])] for s in strata])
            try:
                stats[b] = float(metric_fn(yt[idx], yp[idx], groups=g[idx], **kw))
            except ValueError:
                failed += 1
    ok = np.isfinite(stats)
    if not ok.any():
        raise ValueError("the metric was undefined on every bootstrap resample")
    if not ok.all():
        warnings.warn(
            f"dropped {int((~ok).sum())} of {n_boot} bootstrap resamples where the metric was undefined"
            + (f" ({failed} raised ValueError)" if failed else ""),
            UserWarning,
            stacklevel=2,
        )
    lo, hi = np.quantile(stats[ok], [alpha / 2.0, 1.0 - alpha / 2.0])
    return point, float(lo), float(hi)


# ----------------------------------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------------------------------


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return "nan" if not np.isfinite(v) else f"{float(v):.4f}"
    return str(v)


@dataclass(frozen=True, eq=False)
class FairnessReport:
    """Summary of the binary group-fairness metrics of one classifier.

    Attributes
    ----------
    accuracy : float
        Overall accuracy.
    dp_gap : float
        Demographic-parity gap (max minus min selection rate).
    eo_gap : float
        Equal-opportunity gap (max minus min TPR).
    eodds_gap : float
        Equalized-odds gap (larger of the TPR and FPR gaps).
    worst_group_accuracy : float
        Smallest per-group accuracy.
    per_group : GroupRates
        The per-group table.
    """

    accuracy: float
    dp_gap: float
    eo_gap: float
    eodds_gap: float
    worst_group_accuracy: float
    per_group: GroupRates = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (JSON-serialisable for JSON-serialisable group labels)."""
        return {
            "accuracy": float(self.accuracy),
            "dp_gap": float(self.dp_gap),
            "eo_gap": float(self.eo_gap),
            "eodds_gap": float(self.eodds_gap),
            "worst_group_accuracy": float(self.worst_group_accuracy),
            "pos_label": self.per_group.pos_label,
            "per_group": self.per_group.rows(),
        }

    def __str__(self) -> str:
        lines = [
            "| metric | value |",
            "|---|---|",
            f"| accuracy | {_fmt(self.accuracy)} |",
            f"| demographic parity gap | {_fmt(self.dp_gap)} |",
            f"| equal opportunity gap | {_fmt(self.eo_gap)} |",
            f"| equalized odds gap | {_fmt(self.eodds_gap)} |",
            f"| worst-group accuracy | {_fmt(self.worst_group_accuracy)} |",
            "",
            "| group | count | accuracy | selection rate | TPR | FPR |",
            "|---|---|---|---|---|---|",
        ]
        for row in self.per_group.rows():
            cells = [row["group"], row["count"], row["accuracy"], row["selection_rate"], row["tpr"], row["fpr"]]
            lines.append("| " + " | ".join(_fmt(c) for c in cells) + " |")
        return "\n".join(lines)

    def plot(self, path: Any = None) -> Figure:
        """Grouped bar chart of per-group selection rate, TPR and FPR.

        Uses matplotlib's Agg canvas directly (no pyplot state, no global backend switch).

        Parameters
        ----------
        path : str or path-like, optional
            If given, the figure is saved there (format from the extension).

        Returns
        -------
        matplotlib.figure.Figure
            The figure.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as exc:  # pragma: no cover
            raise ImportError("FairnessReport.plot needs matplotlib: pip install 'steerfair[plot]'") from exc
        pg = self.per_group
        names = [str(v) for v in pg.groups.tolist()]
        x = np.arange(len(names))
        width = 0.27
        fig = Figure(figsize=(max(4.0, 1.2 * len(names) + 2.0), 3.5), layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        series = [("selection rate", pg.selection_rate), ("TPR", pg.tpr), ("FPR", pg.fpr)]
        for j, (label, vals) in enumerate(series):
            ax.bar(x + (j - 1) * width, np.nan_to_num(vals, nan=0.0), width, label=label)
        ax.set_xticks(x, names)
        ax.set_ylim(0.0, 1.05)
        ax.set_xlabel("group")
        ax.set_ylabel("rate")
        ax.set_title(
            f"DP gap {_fmt(self.dp_gap)}, EO gap {_fmt(self.eo_gap)}, EOdds gap {_fmt(self.eodds_gap)}", fontsize=9
        )
        ax.legend(fontsize=8)
        if path is not None:
            fig.savefig(path)
        return fig


def fairness_report(y_true: Any, y_pred: Any, groups: Any, *, pos_label: Any = 1) -> FairnessReport:
    """Compute every binary group-fairness metric at once.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        True and predicted labels.
    groups : array-like of shape (n,)
        Group of every sample; at least two distinct values.
    pos_label : hashable, default 1
        The positive label.

    Returns
    -------
    FairnessReport
        Overall accuracy, the DP / EO / equalized-odds gaps, worst-group accuracy and the per-group table.
    """
    yt, yp, g = _prepare(y_true, y_pred, groups)
    r = group_rates(yt, yp, g, pos_label=pos_label)
    eo = _spread(r.tpr, r.groups, "max_minus_min", "true-positive rate")
    fp = _spread(r.fpr, r.groups, "max_minus_min", "false-positive rate")
    finite = [v for v in (eo, fp) if math.isfinite(v)]
    return FairnessReport(
        accuracy=float(np.mean(_eq_arrays(yt, yp))),
        dp_gap=_spread(r.selection_rate, r.groups, "max_minus_min", "selection rate"),
        eo_gap=eo,
        eodds_gap=max(finite) if finite else math.nan,
        worst_group_accuracy=float(np.min(r.accuracy)),
        per_group=r,
    )

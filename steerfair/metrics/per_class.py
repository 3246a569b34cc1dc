"""Multi-class TPR gaps (the Bios protocol of De-Arteaga et al. 2019, used by INLP and MiMiC).

For every class ``c`` the gap ``TPR_{a,c} - TPR_{b,c}`` between two groups, where ``TPR_{g,c}`` is the recall of
class ``c`` among samples of group ``g`` whose true class is ``c``; its root mean square over classes
(:func:`rms_tpr_gap`); and the Pearson correlation between the per-class gaps and the per-class share of group
``a`` (:func:`gap_share_correlation`, :func:`group_share_per_class`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Literal

import numpy as np

from .inputs import (
    as_1d,
    as_list,
    check_group_present,
    check_lengths,
    check_option,
    equals,
    equals_elementwise,
    is_missing,
    prepare,
    unique_values,
)

__all__ = [
    "GAP_SIGNS",
    "GapSign",
    "gap_share_correlation",
    "group_share_per_class",
    "rms_tpr_gap",
    "tpr_gaps_per_class",
]

#: Whether a per-class TPR gap keeps its sign or is taken in absolute value (``sign=``).
GapSign = Literal["signed", "absolute"]
GAP_SIGNS: tuple[str, ...] = ("signed", "absolute")


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

    Args:
        y_true, y_pred (array-like of shape (n,)): True and predicted class labels.
        groups (array-like of shape (n,)): Group of every sample.
        group_a, group_b (hashable): The two groups compared; both must occur in ``groups`` and differ.
        classes (iterable, optional): Classes to report, in this order; defaults to the sorted distinct values of
            ``y_true``.
        exclude (hashable or iterable, optional): Class(es) to leave out.
        sign ({"signed", "absolute"}, default "signed"): ``"absolute"`` returns ``|TPR_{a,c} - TPR_{b,c}|``.

    Returns:
        dict: ``{class: gap}``. A class for which either group has no sample of that true class maps to NaN; the
            aggregates (:func:`rms_tpr_gap`, :func:`gap_share_correlation`) skip such classes with a warning.
    """
    check_option(sign, "sign", GAP_SIGNS)
    yt, yp, g = prepare(y_true, y_pred, groups)
    if is_missing(group_a) or is_missing(group_b):
        raise ValueError("group_a and group_b must be group labels, not None/NaN")
    if group_a == group_b:
        raise ValueError(f"group_a and group_b must differ; both are {group_a!r}")
    ma = check_group_present(g, group_a, "group_a")
    mb = check_group_present(g, group_b, "group_b")
    cls = unique_values(yt).tolist() if classes is None else as_list(classes)
    drop = as_list(exclude)
    cls = [c for c in cls if not any(c == d for d in drop)]
    if not cls:
        raise ValueError("no classes left to evaluate (check classes= and exclude=)")
    correct = equals_elementwise(yt, yp)
    out: dict[Any, float] = {}
    for c in cls:
        mc = equals(yt, c)
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

    Returns:
        float: The RMS gap in ``[0, 1]``.

    Raises:
        ValueError: If no class has samples from both groups.
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

    Args:
        y (array-like of shape (n,)): Class labels (usually the true labels of the training split).
        groups (array-like of shape (n,)): Group of every sample.
        group_a (hashable): The group whose share is reported; must occur in ``groups``.
        classes (iterable, optional): Classes to report; defaults to the sorted distinct values of ``y``. A class with
            no sample maps to NaN.

    Returns:
        dict: ``{class: share}`` with shares in ``[0, 1]``.
    """
    yy = as_1d(y, "y")
    g = as_1d(groups, "groups")
    check_lengths(y=yy, groups=g)
    ma = check_group_present(g, group_a, "group_a")
    cls = unique_values(yy).tolist() if classes is None else as_list(classes)
    out: dict[Any, float] = {}
    for c in cls:
        mc = equals(yy, c)
        out[c] = float(ma[mc].mean()) if mc.any() else math.nan
    return out


def gap_share_correlation(gaps: Mapping[Any, float], share: Mapping[Any, float]) -> float:
    """Pearson correlation between per-class gaps and per-class share of ``group_a``.

    Args:
        gaps (mapping): ``{class: gap}``, e.g. from :func:`tpr_gaps_per_class` (signed gaps are the usual choice).
        share (mapping): ``{class: share}``, e.g. from :func:`group_share_per_class` (computed on the training split by
            convention).

    Returns:
        float: Pearson's r over the classes present in both mappings with finite values. Classes missing from ``share``
            or with a NaN value are skipped with a :class:`UserWarning`.

    Raises:
        ValueError: If fewer than two classes remain or either variable is constant (correlation undefined).
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
    if np.ptp(xa) == 0.0 or np.ptp(ya) == 0.0 or sx == 0.0 or sy == 0.0:  # constant in the given values (the
        # centred values of a constant can be rounding noise, whose "correlation" would be returned)
        raise ValueError("correlation undefined: gaps or shares are constant across classes")
    return float(np.clip(np.sum(xc * yc) / (sx * sy), -1.0, 1.0))

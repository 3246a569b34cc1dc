"""Per-group rates of a binary classifier: selection rate, true- and false-positive rate, the per-group table.

The scalar functions take only ``(y_true, y_pred)`` so they can be passed to
``fairlearn.metrics.MetricFrame(metrics=...)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .inputs import check_pos_label, equals, equals_elementwise, prepare, prepare_pair, unique_values

__all__ = ["GroupRates", "false_positive_rate", "group_rates", "selection_rate", "true_positive_rate"]


def selection_rate(y_true: Any, y_pred: Any, pos_label: Any = 1) -> float:
    """Fraction of predictions equal to ``pos_label``, ``P(y_pred = pos)``.

    Args:
        y_true (array-like of shape (n,)): True labels (only checked for length and missing values; kept for the
            ``(y_true, y_pred)`` signature).
        y_pred (array-like of shape (n,)): Predicted labels.
        pos_label (hashable, default 1): The positive label; every other label counts as negative.

    Returns:
        float: The selection rate in ``[0, 1]``.
    """
    yt, yp = prepare_pair(y_true, y_pred)
    check_pos_label(yt, yp, pos_label)
    return float(np.mean(equals(yp, pos_label)))


def true_positive_rate(y_true: Any, y_pred: Any, pos_label: Any = 1) -> float:
    """Recall of the positive class, ``P(y_pred = pos | y_true = pos)``.

    Args:
        y_true, y_pred (array-like of shape (n,)): True and predicted labels.
        pos_label (hashable, default 1): The positive label; every other label counts as negative.

    Returns:
        float: The TPR in ``[0, 1]``, or NaN when ``y_true`` holds no positive sample.
    """
    return _positive_rate_among(y_true, y_pred, pos_label, true_class_positive=True)


def false_positive_rate(y_true: Any, y_pred: Any, pos_label: Any = 1) -> float:
    """Fraction of true negatives predicted positive, ``P(y_pred = pos | y_true != pos)``.

    Args:
        y_true, y_pred (array-like of shape (n,)): True and predicted labels.
        pos_label (hashable, default 1): The positive label; every other label counts as negative.

    Returns:
        float: The FPR in ``[0, 1]``, or NaN when ``y_true`` holds no negative sample.
    """
    return _positive_rate_among(y_true, y_pred, pos_label, true_class_positive=False)


def _positive_rate_among(y_true: Any, y_pred: Any, pos_label: Any, *, true_class_positive: bool) -> float:
    """``P(y_pred = pos | y_true = pos)`` (``true_class_positive``) or ``P(y_pred = pos | y_true != pos)``; NaN
    when no sample has that true class."""
    yt, yp = prepare_pair(y_true, y_pred)
    check_pos_label(yt, yp, pos_label)
    rows = equals(yt, pos_label) == true_class_positive
    if not rows.any():
        return math.nan
    return float(np.mean(equals(yp[rows], pos_label)))


def _frozen(a: np.ndarray) -> np.ndarray:
    """A read-only copy of ``a``."""
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class GroupRates:
    """Per-group rates of a binary classifier (one entry per group, groups in sorted order).

    Attributes:
        groups (np.ndarray): The distinct group labels.
        count (np.ndarray of int): Number of samples per group.
        accuracy (np.ndarray of float): ``P(y_pred = y_true)`` per group.
        selection_rate (np.ndarray of float): ``P(y_pred = pos)`` per group.
        tpr (np.ndarray of float): ``P(y_pred = pos | y_true = pos)`` per group (NaN where a group has no positive
            sample).
        fpr (np.ndarray of float): ``P(y_pred = pos | y_true != pos)`` per group (NaN where a group has no negative
            sample).
        pos_label (hashable): The positive label used.
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

    Args:
        y_true, y_pred (array-like of shape (n,)): True and predicted labels. With more than two labels the rates are
            one-vs-rest for ``pos_label``.
        groups (array-like of shape (n,)): Group (sensitive attribute) of every sample; at least two distinct values.
        pos_label (hashable, default 1): The positive label.

    Returns:
        GroupRates: Per-group arrays, groups sorted.

    Raises:
        ValueError: On mismatched lengths, missing values, empty input, a single group, or a ``pos_label`` absent from
            data that holds two or more labels.
    """
    yt, yp, g = prepare(y_true, y_pred, groups)
    check_pos_label(yt, yp, pos_label)
    uniq = unique_values(g)
    if uniq.shape[0] < 2:
        raise ValueError(f"groups must contain at least 2 distinct groups; got only {uniq.tolist()!r}")
    true_pos = equals(yt, pos_label)
    pred_pos = equals(yp, pos_label)
    correct = equals_elementwise(yt, yp)
    k = uniq.shape[0]
    count = np.zeros(k, dtype=np.int64)
    acc, sel, tpr, fpr = (np.full(k, np.nan) for _ in range(4))
    for i, grp in enumerate(uniq):
        m = equals(g, grp)
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

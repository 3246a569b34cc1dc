"""Group-aware post-processing of a multi-class classifier's predicted labels: the reference point for what any
method can buy on the Bios protocol's per-occupation TPR gaps at a given accuracy (``recipes/bios_postprocessing.py``).

A classifier's experiment in group ``a`` is its confusion law ``C_a[y, y'] = P(predicted y' | Y = y, A = a)``. A
Markov kernel per group, ``K_a[y', y'']``, relabels a prediction ``y'`` of group ``a`` as ``y''`` at random, so the
relabelled classifier has confusion ``C_a K_a`` and, in class ``y``, the true-positive rate
``TPR_a(y) = sum_y' C_a[y, y'] K_a[y', y]``, linear in the kernels. Two label-free rules are solved here:

* :func:`equal_tpr_kernels`: the most accurate kernels whose per-class TPRs differ between two groups by at most a
  budget (a linear program; budget 0 is multi-class equal opportunity, the criterion the protocol measures, as
  fairlearn's ``ThresholdOptimizer`` does for two classes). It reads the group at prediction and acts on the final
  decision: the best relabelling of *this one score* at each budget, up to estimation. Methods that change the
  representation retrain the classifier and are not bound by it (on Bios they do better; docs/bios.md).
* ``steerfair.categorical_garbling.solve_common_garbling`` on the confusion laws: equal confusion laws in every
  group (equalized odds): the many-class analogue of :class:`~steerfair.shared_score.SharedScore`'s common law.

Both are estimated on held-out predictions (cross-fitting) so that the kernels carry the law new rows have.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from ..categorical_garbling import draw_from_rows

__all__ = ["apply_label_kernels", "confusion_laws", "equal_tpr_kernels"]


def confusion_laws(y: np.ndarray, pred: np.ndarray, groups: np.ndarray, n_classes: int, n_groups: int) -> tuple:
    """Each group's confusion law and class counts.

    Args:
        y, pred: ``(n,)`` true and predicted class indices in ``0 .. n_classes - 1``.
        groups: ``(n,)`` group indices in ``0 .. n_groups - 1``.
        n_classes, n_groups: the numbers of classes and groups.

    Returns:
        tuple: ``(laws, counts)``: ``(n_groups, n_classes, n_classes)`` rows ``P(pred | y, a)`` (a class a group
        never shows keeps its prediction: identity row) and ``(n_groups, n_classes)`` counts.
    """
    y, pred, groups = (np.asarray(v, dtype=np.int64) for v in (y, pred, groups))
    if not (y.shape == pred.shape == groups.shape) or y.ndim != 1:
        raise ValueError("y, pred and groups must be 1-D arrays of the same length")
    for name, v, top in (("y", y, n_classes), ("pred", pred, n_classes), ("groups", groups, n_groups)):
        if v.size and (v.min() < 0 or v.max() >= top):
            raise ValueError(f"{name} must hold indices in 0 .. {top - 1}")
    counts = np.zeros((n_groups, n_classes, n_classes))
    np.add.at(counts, (groups, y, pred), 1.0)
    per_class = counts.sum(axis=2)
    laws = np.where(per_class[..., None] > 0, counts / np.maximum(per_class[..., None], 1.0), np.eye(n_classes))
    return laws, per_class


def equal_tpr_kernels(laws: Any, counts: Any, budget: float | None) -> tuple[np.ndarray, float]:
    """The most accurate relabelling kernels of two groups whose per-class TPRs differ by at most ``budget``.

    Maximises ``sum_{a, y} counts[a, y] TPR_a(y)`` (the accuracy on the rows the laws were estimated from) over
    row-stochastic ``K_a`` subject to ``|TPR_0(y) - TPR_1(y)| <= budget`` for every class both groups show.

    Args:
        laws: ``(2, m, m)`` confusion laws (:func:`confusion_laws`).
        counts: ``(2, m)`` rows per group and class.
        budget: the largest per-class TPR difference allowed; ``None``: no constraint (each prediction relabelled
            as the class it most often is in its group).

    Returns:
        tuple: ``(kernels, accuracy)``: ``(2, m, m)`` row-stochastic kernels and the objective's accuracy.

    Raises:
        ValueError: for laws that are not ``(2, m, m)`` row-stochastic, counts of another shape or a negative budget.
    """
    C = np.asarray(laws, dtype=np.float64)
    N = np.asarray(counts, dtype=np.float64)
    if C.ndim != 3 or C.shape[0] != 2 or C.shape[1] != C.shape[2]:
        raise ValueError(f"laws must be (2, m, m) confusion laws of two groups; got {C.shape}")
    if not np.all(np.isfinite(C)) or np.any(C < 0) or not np.allclose(C.sum(axis=2), 1.0, atol=1e-9):
        raise ValueError("laws must be finite, non-negative, and each row must sum to 1")
    m = C.shape[1]
    if N.shape != (2, m) or not np.all(np.isfinite(N)) or np.any(N < 0) or N.sum() <= 0:
        raise ValueError(f"counts must be (2, {m}) non-negative numbers, not all zero")
    if budget is not None and not (np.isfinite(budget) and budget >= 0):
        raise ValueError(f"budget must be None or a non-negative number; got {budget!r}")
    nv = 2 * m * m  # x[a, y', y''] = K_a[y', y'']

    def var(a: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        return a * m * m + src * m + dst

    src = np.arange(m)
    # TPR_a(y) = sum_y' C_a[y, y'] x[a, y', y]: one row per (a, y) in the objective and constraints
    cost = np.zeros(nv)
    for a in range(2):
        for y in range(m):
            cost[var(a, src, np.full(m, y))] -= N[a, y] * C[a, y]
    cost /= N.sum()
    eq_rows = np.repeat(np.arange(2 * m), m)  # every row of every kernel sums to 1
    eq_cols = np.concatenate([var(a, np.full(m, s), np.arange(m)) for a in range(2) for s in range(m)])
    A_eq = coo_matrix((np.ones(nv), (eq_rows, eq_cols)), shape=(2 * m, nv)).tocsr()
    A_ub = b_ub = None
    if budget is not None:
        shown = np.flatnonzero((N[0] > 0) & (N[1] > 0))
        rows, cols, vals = [], [], []
        for r, y in enumerate(shown.tolist()):  # TPR_0(y) - TPR_1(y) <= budget and its negation
            for a, sign in ((0, 1.0), (1, -1.0)):
                c = var(a, src, np.full(m, y))
                for row, s in ((2 * r, sign), (2 * r + 1, -sign)):
                    rows.append(np.full(m, row))
                    cols.append(c)
                    vals.append(s * C[a, y])
        if shown.size:
            A_ub = coo_matrix(
                (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(2 * shown.size, nv)
            ).tocsr()
            b_ub = np.full(2 * shown.size, float(budget))
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=np.ones(2 * m), bounds=(0, None), method="highs")
    if res.status != 0:  # always feasible: relabelling every prediction as one class gives TPRs 1 and 0 everywhere
        raise RuntimeError(f"the equal-TPR LP failed ({res.message}); this is a bug, please report it")
    K = np.clip(res.x.reshape(2, m, m), 0.0, None)
    K /= K.sum(axis=2, keepdims=True)
    return K, float(-res.fun)


def apply_label_kernels(pred: np.ndarray, groups: np.ndarray, kernels: np.ndarray, rng: np.random.Generator) -> Any:
    """Relabel every prediction by its group's kernel (one draw per row).

    Args:
        pred: ``(n,)`` predicted class indices; groups: ``(n,)`` group indices.
        kernels: ``(k, m, n_out)`` row-stochastic kernels.
        rng: the generator of the draws.

    Returns:
        numpy.ndarray: ``(n,)`` the relabelled outcomes in ``0 .. n_out - 1``.
    """
    pred, groups = np.asarray(pred, dtype=np.int64), np.asarray(groups, dtype=np.int64)
    return draw_from_rows(kernels[groups, pred], rng)

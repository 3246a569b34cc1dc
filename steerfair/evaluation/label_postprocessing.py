"""Group-aware post-processing of a multi-class classifier's output: the reference point for what any method can buy
on the Bios protocol's per-occupation TPR gaps at a given accuracy (``recipes/bios_postprocessing.py``).

A classifier's experiment in group ``a`` is its confusion law ``C_a[y, y'] = P(predicted y' | Y = y, A = a)``. A
Markov kernel per group, ``K_a[y', y'']``, relabels a prediction ``y'`` of group ``a`` as ``y''`` at random, so the
relabelled classifier has confusion ``C_a K_a`` and, in class ``y``, the true-positive rate
``TPR_a(y) = sum_y' C_a[y, y'] K_a[y', y]``, linear in the kernels. Two label-free rules are solved here:

* :func:`equal_tpr_kernels`: the most accurate kernels whose per-class TPRs differ between two groups by at most a
  budget (a linear program; budget 0 is multi-class equal opportunity, the criterion the protocol measures, as
  fairlearn's ``ThresholdOptimizer`` does for two classes). It reads the group at prediction and acts on the final
  decision: the best relabelling of *this one score* at each budget, up to estimation. Methods that change the
  representation retrain the classifier and are not bound by it (on Bios they do better; docs/bios.md).
* :func:`equal_tpr_class_weights`: per-group class weights on the classifier's *probabilities* (predict the class
  maximising ``W[a, y] p(y | x, a)``, split at random near ties), the form of the most accurate classifier whose
  per-class TPRs differ by at most a budget (the Lagrangian of that problem is linear in the decision, so its
  maximiser weighs each group's posterior by one factor per class): the many-class analogue of
  ``ThresholdOptimizer``'s group thresholds. It sees the whole score, not only the predicted label, so it moves the
  rows whose top classes are close, and is the stronger of the two rules.
* ``steerfair.categorical_garbling.solve_common_garbling`` on the confusion laws: equal confusion laws in every
  group (equalized odds): the many-class analogue of :class:`~steerfair.shared_score.SharedScore`'s common law.

Both are estimated on held-out predictions (cross-fitting) so that the kernels carry the law new rows have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linprog, minimize
from scipy.sparse import coo_matrix
from scipy.special import logsumexp, softmax

from ..categorical_garbling import draw_from_rows

__all__ = [
    "ClassWeightRule",
    "apply_label_kernels",
    "confusion_laws",
    "equal_tpr_class_weights",
    "equal_tpr_kernels",
    "expected_rates",
    "tpr_by_group",
]


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


@dataclass(frozen=True)
class ClassWeightRule:
    """Per-group class weights on a classifier's probabilities: predict ``argmax_y weights[a, y] p(y | x, a)``, or
    draw from ``softmax_y(weights[a, y] p(y | x, a) / temperature)``, the randomised rule
    :func:`equal_tpr_class_weights` fits (it splits rows near a tie at random, which is how it can lower every TPR
    of a group that is classified better; its argmax is the deterministic rule with the same weights).

    Attributes:
        weights: ``(2, m)`` per-group class weights (negative: the class is hardly ever predicted in that group).
        temperature: the softmax temperature (the dual's last smoothing stage).
    """

    weights: np.ndarray
    temperature: float

    def decision_proba(self, proba: Any, groups: Any) -> np.ndarray:
        """``(n, m)`` each row's probabilities of predicting each class under the randomised rule."""
        P, a = np.asarray(proba, dtype=np.float64), np.asarray(groups, dtype=np.int64)
        return softmax(P * self.weights[a] / self.temperature, axis=1)

    def predict(self, proba: Any, groups: Any, rng: np.random.Generator | None = None) -> Any:
        """Each row's class: the argmax of the weighted probabilities, or with ``rng`` one draw of the randomised
        rule. (On the Bios protocol the argmax kept more accuracy at the same cut of the gap: docs/bios.md.)"""
        if rng is not None:
            return draw_from_rows(self.decision_proba(proba, groups), rng)
        P, a = np.asarray(proba, dtype=np.float64), np.asarray(groups, dtype=np.int64)
        return np.argmax(P * self.weights[a], axis=1)


def tpr_by_group(y: Any, decision: Any, groups: Any, n_classes: int) -> np.ndarray:
    """``(2, n_classes)`` true-positive rates per group and class of hard decisions ``(n,)`` or decision
    probabilities ``(n, n_classes)`` (expected rates); ``nan`` where a group has no row of a class."""
    y, groups = np.asarray(y, dtype=np.int64), np.asarray(groups, dtype=np.int64)
    D = np.asarray(decision)
    hit = D[np.arange(y.size), y] if D.ndim == 2 else (D == y).astype(np.float64)
    hits, rows = np.zeros((2, n_classes)), np.zeros((2, n_classes))
    np.add.at(rows, (groups, y), 1.0)
    np.add.at(hits, (groups, y), hit)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, hits / np.maximum(rows, 1.0), np.nan)


def expected_rates(proba: Any, decision: Any, groups: Any) -> tuple[float, np.ndarray]:
    """The accuracy and per-group TPRs a rule would have if the classifier's probabilities were calibrated (the
    plug-in rates :func:`equal_tpr_class_weights` optimises): ``sum_y p(y | x) D(y | x)`` averaged over the rows,
    and ``TPR_a(y) = sum_{rows of a} p(y | x) D(y | x) / sum_{rows of a} p(y | x)``. No label is read, so they can
    be computed on new rows; beside the measured rates they show how much of a rule's promise the probabilities'
    calibration loses.

    Args:
        proba: ``(n, m)`` the classifier's probabilities.
        decision: ``(n,)`` hard decisions in ``0 .. m - 1``, or ``(n, m)`` decision probabilities.
        groups: ``(n,)`` the group of each row, 0 or 1.

    Returns:
        ``(accuracy, tpr)`` with ``tpr`` of shape ``(2, m)`` (``nan`` where a group has no probability mass on a
        class).

    Raises:
        ValueError: if the shapes disagree or ``groups`` is not 0 / 1.
    """
    P = np.asarray(proba, dtype=np.float64)
    a = np.asarray(groups)
    if P.ndim != 2:
        raise ValueError(f"proba must be (n, m) class probabilities, got shape {P.shape}")
    n, m = P.shape
    if a.shape != (n,) or not np.isin(a, (0, 1)).all():
        raise ValueError(f"groups must be ({n},) with values 0 and 1, one per row of proba")
    D = np.asarray(decision)
    if D.shape == (n,):
        if not np.issubdtype(D.dtype, np.integer) or D.min(initial=0) < 0 or D.max(initial=0) >= m:
            raise ValueError(f"decision must hold classes in 0 .. {m - 1} (or be ({n}, {m}) decision probabilities)")
        D = np.eye(m)[D]
    elif D.shape != (n, m):
        raise ValueError(f"decision must be ({n},) classes or ({n}, {m}) decision probabilities, got {D.shape}")
    chosen = P * D
    a = a.astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.stack([chosen[a == g].sum(axis=0) / P[a == g].sum(axis=0) for g in (0, 1)])
    return float(chosen.sum(axis=1).mean()), tpr


#: the smoothing temperatures of the dual's continuation (a log-sum-exp in place of the max over classes)
TEMPERATURES = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3)


def _plug_in_dual(P: np.ndarray, a: np.ndarray, budget: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The smoothed dual of the plug-in problem (rates and accuracy under ``P``): ``mu``, ``n / N_a(y)`` and the
    lever ``d c_iy / d mu_y``."""
    n, m = P.shape
    mass = np.stack([P[a == g].sum(axis=0) for g in (0, 1)])  # N_a(y) = sum_{i in a} p_i(y)
    present = np.all(mass > 0, axis=0)
    scale = np.where(present, n / np.maximum(mass, 1e-300), 0.0)  # no constraint for a class one group lacks
    lever = P * np.where(a == 0, 1.0, -1.0)[:, None] * scale[a]  # d c_iy / d mu_y
    x = np.zeros(2 * m)  # mu = x+ - x-, |mu| = x+ + x- at the optimum
    for tau in TEMPERATURES:

        def dual(x: np.ndarray, tau: float = tau) -> tuple[float, np.ndarray]:
            C = (P + lever * (x[:m] - x[m:])) / tau
            g_mu = np.einsum("iy,iy->y", softmax(C, axis=1), lever) / n  # the randomised rule's TPR differences
            value = tau * float(np.mean(logsumexp(C, axis=1))) + budget * float(x.sum())
            return value, np.concatenate([g_mu + budget, budget - g_mu])

        x = minimize(dual, x, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * (2 * m)).x
    return x[:m] - x[m:], scale, lever


def equal_tpr_class_weights(
    proba: Any, groups: Any, budget: float, y: Any = None, *, max_iter: int = 200, step: float = 0.5
) -> ClassWeightRule:
    """Per-group class weights on a classifier's probabilities whose per-class TPRs differ by at most ``budget``.

    The most accurate (randomised) classifier of ``(x, a)`` with ``|TPR_0(y) - TPR_1(y)| <= budget`` for every class
    maximises a Lagrangian that is linear in its decision, row by row: the class maximising
    ``p(y | x, a) W[a, y]`` with ``W[a, y] = 1 + s_a mu_y / P(Y = y, A = a)`` (``s_0 = 1``, ``s_1 = -1``), split at
    random where classes tie. ``mu`` solves the convex dual ``min_mu mean_i max_y c_iy(mu) + budget ||mu||_1``, with
    ``p`` the classifier's held-out probabilities (cross-fitted: the rates of new rows). The max is smoothed by a
    log-sum-exp whose temperature falls to 1e-3 (L-BFGS-B at each stage). The smoothed dual is the dual of the same
    problem with an entropy bonus on the decisions, whose optimal rule draws from the softmax at that temperature;
    so at the dual's optimum that randomised rule (:class:`ClassWeightRule`) meets the plug-in constraints, and its
    accuracy is within ``temperature * log(m)`` of the unsmoothed optimum.

    The dual trusts the probabilities' calibration within each group. With ``y`` (the held-out rows' labels), ``mu``
    is then corrected on the empirical rates, as ``ThresholdOptimizer`` fits its thresholds on them: Newton steps on
    the empirical TPR differences beyond the budget (the smoothed dual's Hessian as their slope), each taken only
    where the excess's sum of squares falls (the step halves otherwise, from ``step``), at most ``max_iter`` of
    them.

    Args:
        proba: ``(n, m)`` held-out class probabilities, rows summing to 1.
        groups: ``(n,)`` group indices 0 or 1.
        budget: the largest per-class TPR difference allowed (0: multi-class equal opportunity).
        y: optional ``(n,)`` true classes of the rows, for the empirical correction.
        max_iter: steps of the empirical correction at most (with ``y``).
        step: its first step (a fraction of the Newton step).

    Returns:
        ClassWeightRule: the weights and the temperature of the rule.

    Raises:
        ValueError: for probabilities that are not ``(n, m)`` rows of a law, groups outside {0, 1} or of another
            length, a negative budget, or labels outside ``0 .. m - 1``.
    """
    P = np.asarray(proba, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] < 2 or P.shape[0] == 0:
        raise ValueError(f"proba must be an (n, m) array of class probabilities with m >= 2; got shape {P.shape}")
    if not np.all(np.isfinite(P)) or np.any(P < 0) or not np.allclose(P.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("proba must be finite and non-negative, and each row must sum to 1 (predict_proba's output)")
    a = np.asarray(groups)
    if a.shape != (P.shape[0],) or not np.all(np.isin(a, (0, 1))):
        raise ValueError(f"groups must be a ({P.shape[0]},) array of 0 and 1 (the two groups' indices)")
    a = a.astype(np.int64)
    if not (np.isfinite(budget) and budget >= 0):
        raise ValueError(f"budget must be a non-negative number; got {budget!r}")
    if max_iter < 0 or not step > 0:
        raise ValueError("max_iter must be >= 0 and step > 0")
    m, tau = P.shape[1], TEMPERATURES[-1]
    mu, scale, lever = _plug_in_dual(P, a, float(budget))

    def rule(mu: np.ndarray) -> ClassWeightRule:
        return ClassWeightRule(1.0 + np.array([[1.0], [-1.0]]) * mu[None, :] * scale, tau)

    if y is None:
        return rule(mu)
    yy = np.asarray(y)
    if yy.shape != a.shape or not np.all(np.isin(yy, np.arange(m))):
        raise ValueError(f"y must be a ({P.shape[0]},) array of class indices in 0 .. {m - 1}")

    def excess_and_slope(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pi = rule(mu).decision_proba(P, a)
        gap = np.nan_to_num(np.subtract(*tpr_by_group(yy, pi, a, m)))
        # how the plug-in differences move with mu: the smoothed dual's Hessian, (diag(l^2 pi) - (l pi)^T (l pi)) / tau
        lp = lever * pi
        slope = (np.diag(np.einsum("iy,iy->y", lever, lp)) - lp.T @ lp) / (P.shape[0] * tau)
        slope[np.diag_indices(m)] += 1e-9 * max(float(np.trace(slope)), 1e-12) / m
        return np.sign(gap) * np.maximum(np.abs(gap) - budget, 0.0), slope

    excess, slope = excess_and_slope(mu)
    merit = float(excess @ excess)
    for _ in range(max_iter):
        if merit == 0.0:
            break
        trial = mu - step * np.linalg.lstsq(slope, excess, rcond=None)[0]  # a Newton step on the empirical excess
        e_trial, s_trial = excess_and_slope(trial)
        m_trial = float(e_trial @ e_trial)
        if m_trial < merit:
            mu, excess, slope, merit, step = trial, e_trial, s_trial, m_trial, min(1.0, 2.0 * step)
        else:
            step *= 0.5
            if step < 1e-6:
                break
    return rule(mu)

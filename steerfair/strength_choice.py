"""The trade-off knob of the shared targets: pick ``strength`` for a fairness-gap budget (:func:`pick_strength`).

A shared target steers each row with probability ``strength``; for a fixed classifier every rate gap it closes shrinks
by ``1 - strength``. A model *retrained* on the steered rows at an intermediate strength sees a mixture of steered and
unsteered rows, and its gap and accuracy can be worse than at either end (measured: docs/shared_target.md section 5);
so the strength is picked by measuring, on a validation split or by cross-validation, as this module does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .membership import Membership
from .validation import as_number, as_unit_weight, check_same_length
from .warning_location import user_stacklevel

__all__ = ["StrengthChoice", "pick_strength", "strength_folds"]


@dataclass(frozen=True)
class StrengthChoice:
    """The strength picked on a validation split or by cross-validation, and what every candidate measured.

    Attributes:
        strength: the chosen strength.
        accuracy, gap: the chosen point's validation (or pooled out-of-fold) accuracy and fairness gap.
        table: one ``{"strength", "accuracy", "gap"}`` dict per candidate, in the order tried.
        steerer: the fitted steerer, set to the chosen strength.
        within_budget: whether the chosen gap is within the budget (False: no candidate was, and the one with the
            smallest gap was chosen; :func:`pick_strength` warns).
    """

    strength: float
    accuracy: float
    gap: float
    table: tuple[dict[str, float], ...]
    steerer: Any = field(repr=False)
    within_budget: bool = True


def _take(X: Any, rows: np.ndarray) -> Any:
    """Rows of an array or DataFrame (positional)."""
    return X.iloc[rows] if hasattr(X, "iloc") else np.asarray(X)[rows]


def strength_folds(
    y: Any, groups: Any, cv: int = 5, random_state: int | None = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``cv`` folds :func:`pick_strength` cross-validates on: ``(fit_rows, val_rows)`` index pairs, stratified
    by (group, label) and shuffled with ``random_state`` (use them to measure a raw model's out-of-fold gap on the
    same rows, e.g. for the budget)."""
    from sklearn.model_selection import StratifiedKFold

    if isinstance(cv, bool) or not isinstance(cv, (int, np.integer)) or cv < 2:
        raise ValueError(f"cv must be an integer >= 2 (folds of the training rows); got {cv!r}")
    cells = np.column_stack([np.asarray(groups).astype(str), np.asarray(y).astype(str)])
    strata = np.unique(cells, axis=0, return_inverse=True)[1].ravel()
    folds = StratifiedKFold(n_splits=int(cv), shuffle=True, random_state=random_state)
    return list(folds.split(np.zeros(strata.size), strata))


def _positive_class(y: Any, pos_label: Any) -> Any:
    """``pos_label``, checked to be a class of ``y``; by default the second of two sorted classes."""
    classes = np.unique(np.asarray(y))
    if pos_label is None:
        if classes.size != 2:
            raise ValueError(
                f"y_train has {classes.size} classes {classes.tolist()}: pass pos_label, the class whose rates the "
                "gap compares"
            )
        return classes[1]
    if pos_label not in classes:
        raise ValueError(f"pos_label {pos_label!r} is not a class of y_train {classes.tolist()}")
    return pos_label


def _candidate_rows(
    fitted: Any, model: Any, grid: np.ndarray, fit: tuple[Any, Any, Any], val: tuple[Any, Any, Any]
) -> list[np.ndarray]:
    """Validation predictions of a clone of ``model`` trained on the steered ``fit`` rows, one per strength."""
    from sklearn.base import clone

    preds = []
    for s in grid:
        fitted.set_params(strength=float(s))
        # SharedScore steers the rows it was fitted on from their held-out scores (cross-fitting)
        own = getattr(fitted, "training_rows_transform", None)
        clf = clone(model).fit(fitted.transform(fit[0], groups=fit[2]) if own is None else own(), fit[1])
        preds.append(np.asarray(clf.predict(fitted.transform(val[0], groups=val[2]))))
    return preds


def pick_strength(
    steerer: Any,
    model: Any,
    X_train: Any,
    y_train: Any,
    groups_train: Any,
    X_val: Any = None,
    y_val: Any = None,
    groups_val: Any = None,
    *,
    budget: float,
    strengths: Any = None,
    gap: Literal["equal_opportunity", "equalized_odds"] = "equalized_odds",
    pos_label: Any = None,
    cv: int = 5,
    random_state: int | None = 0,
    progress: bool = False,
) -> StrengthChoice:
    """Pick the strength of a shared-target ``FairSteerer`` or a ``SharedScore`` for a fairness-gap budget, on a
    validation split or by cross-validation.

    With a validation split (``X_val``, ``y_val``, ``groups_val``), the steerer is fitted once on the training rows;
    for every candidate strength, train and validation rows are steered (label-free, as at deployment), a clone of
    ``model`` is trained on the steered training rows, and its accuracy and gap are measured on the steered
    validation rows. Without one (the default), the same is done in ``cv`` folds of the training rows (stratified by
    group and label; the steerer refitted on each fold's training part), and accuracy and gap are measured on the
    pooled out-of-fold predictions: every row is a validation row once, so the gaps compared are less noisy than on
    one split (docs/shared_target.md section 8). The most accurate strength whose gap is within ``budget`` is
    returned (the smallest such strength on ties); if none is, the one with the smallest gap. The returned steerer
    is fitted on all of ``X_train``.

    Args:
        steerer: an unfitted ``FairSteerer`` with ``target="shared"`` or ``"shared_positive"``, or an unfitted
            :class:`~steerfair.shared_score.SharedScore` (cloned, not modified).
        model: a scikit-learn classifier (cloned for every candidate and fold).
        X_train, y_train, groups_train: the training rows (groups: the sensitive attribute, never a feature).
        X_val, y_val, groups_val: an optional validation split (all three or none).
        budget: the largest acceptable gap (``>= 0``).
        strengths: candidate strengths in ``[0, 1]`` (default ``0, 0.1, ..., 1``).
        gap: ``"equalized_odds"`` (max of the TPR and FPR gaps) or ``"equal_opportunity"`` (TPR gap).
        pos_label: the positive class of the gap; default: with two classes the second in sorted order (the
            positive class of ``target="shared_positive"`` and ``SharedScore``), with more it must be given.
        cv: folds when no validation split is given (``>= 2``; :func:`strength_folds`).
        random_state: seed of the folds.
        progress: show a progress bar over the folds (``cv`` steerer fits and ``cv * len(strengths)`` model fits).
    """
    from sklearn.base import clone
    from tqdm.auto import tqdm

    from .metrics import equal_opportunity_gap, equalized_odds_gap
    from .shared_score import SharedScore

    if getattr(steerer, "target", None) not in ("shared", "shared_positive") and not isinstance(steerer, SharedScore):
        raise ValueError(
            "pick_strength needs a FairSteerer with target='shared' or 'shared_positive', or a SharedScore (strength "
            "only acts on those)"
        )
    as_number(budget, "budget", low=0.0)
    if gap not in ("equal_opportunity", "equalized_odds"):
        raise ValueError(f"unknown gap {gap!r}; use 'equal_opportunity' or 'equalized_odds'")
    given = [v is not None for v in (X_val, y_val, groups_val)]
    if any(given) and not all(given):
        raise ValueError("pass all of X_val, y_val and groups_val, or none of them (then cv folds are used)")
    check_same_length(X_train=X_train, y_train=y_train, groups_train=groups_train)
    if all(given):
        check_same_length(X_val=X_val, y_val=y_val, groups_val=groups_val)
        known = Membership.parse(y_train, name="y_train", min_groups=1).labels
        Membership.align(y_val, known, name="y_val")  # only labels seen in y_train
    pos_label = _positive_class(y_train, pos_label)
    folds = [] if all(given) else strength_folds(y_train, groups_train, cv, random_state)
    try:
        grid = np.linspace(0.0, 1.0, 11) if strengths is None else np.asarray(strengths, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"strengths must be numbers in [0, 1]; got {strengths!r}") from None
    if grid.size == 0:
        raise ValueError("strengths must hold at least one value in [0, 1]")
    for s in grid:
        as_unit_weight(s, "strengths")
    gap_of = equalized_odds_gap if gap == "equalized_odds" else equal_opportunity_gap

    def measure(y: np.ndarray, p: np.ndarray, groups: np.ndarray) -> float:
        return gap_of(y, p, groups=groups, pos_label=pos_label)

    y_tr, g_tr = np.asarray(y_train), np.asarray(groups_train)
    if all(given):
        fitted = clone(steerer).fit(X_train, y_tr, groups=g_tr)
        y_true, g_true = np.asarray(y_val), np.asarray(groups_val)
        preds = _candidate_rows(fitted, model, grid, (X_train, y_tr, g_tr), (X_val, y_true, g_true))
    else:
        oof: list[np.ndarray] = [np.empty(y_tr.shape[0], dtype=y_tr.dtype) for _ in grid]
        for fit_rows, val_rows in tqdm(folds, desc="pick_strength", unit="fold", disable=not progress):
            fold = clone(steerer).fit(_take(X_train, fit_rows), y_tr[fit_rows], groups=g_tr[fit_rows])
            fit = (_take(X_train, fit_rows), y_tr[fit_rows], g_tr[fit_rows])
            val = (_take(X_train, val_rows), y_tr[val_rows], g_tr[val_rows])
            for k, pred in enumerate(_candidate_rows(fold, model, grid, fit, val)):
                oof[k][val_rows] = pred
        preds, y_true, g_true = oof, y_tr, g_tr
        fitted = clone(steerer).fit(X_train, y_tr, groups=g_tr)
    rows = [
        {"strength": float(s), "accuracy": float(np.mean(p == y_true)), "gap": float(measure(y_true, p, groups=g_true))}
        for s, p in zip(grid, preds, strict=True)
    ]
    ok = [r for r in rows if r["gap"] <= budget]
    best = max(ok, key=lambda r: (r["accuracy"], -r["strength"])) if ok else min(rows, key=lambda r: r["gap"])
    if not ok:
        warnings.warn(
            f"no strength keeps the validation gap within budget={budget:g}: the smallest gap measured is "
            f"{best['gap']:.4g} (strength {best['strength']:g}), which is returned (within_budget=False); a budget "
            "below the validation rows' noise cannot be verified on them",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    fitted.set_params(strength=best["strength"])
    return StrengthChoice(best["strength"], best["accuracy"], best["gap"], tuple(rows), fitted, bool(ok))

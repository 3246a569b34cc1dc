"""The downstream models the label-free targets promise equal rates for, trained on steered rows."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier

from steerfair import FairSteerer, Gaussian, GroupConditionalModel, Membership
from steerfair.datasets import separability_groups
from steerfair.metrics import GroupRates, group_rates


def rates_of_every_model(
    A: np.ndarray, y_tr: np.ndarray, B: np.ndarray, y_te: np.ndarray, g_te: np.ndarray
) -> dict[str, GroupRates]:
    """Per-group rates on test rows ``B`` of LR, gradient boosting, kNN and an MLP trained on rows ``A``."""
    models = [
        LogisticRegression(),
        HistGradientBoostingClassifier(max_iter=60, random_state=0),
        KNeighborsClassifier(n_neighbors=50),
        MLPClassifier(hidden_layer_sizes=(16,), max_iter=60, random_state=0),
    ]
    out = {}
    for model in models:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MLP convergence at this size
            pred = model.fit(A, y_tr).predict(B)
        out[type(model).__name__] = group_rates(y_te, pred, g_te)
    return out


def sampling_bound(y_tr: np.ndarray, g_tr: np.ndarray, y_te: np.ndarray, g_te: np.ndarray, cls: int) -> float:
    """Three standard errors of a rate difference between the groups, from the counts of class ``cls`` rows in test
    (Monte Carlo) and train (the estimated target: its error is of the order of a rate estimated on those rows)."""
    counts = [np.sum((y == cls) & (g == a)) for y, g in ((y_te, g_te), (y_tr, g_tr)) for a in (0, 1)]
    return float(3.0 * np.sqrt(0.25 * sum(1.0 / c for c in counts)))


def steered_separability_groups(target: str, d: int, seed: int) -> tuple[dict[str, GroupRates], float, float]:
    """Every downstream model's test rates after ``FairSteerer(target=target)`` on :func:`separability_groups` (40k
    training and 80k test rows, labels unknown at test time), with the TPR and FPR sampling bounds. Asserts that the
    raw TPR gap is far outside the bound (the caller's test has power)."""
    rng = np.random.default_rng(seed)
    X_tr, y_tr, g_tr = separability_groups(40_000, d, rng)
    X_te, y_te, g_te = separability_groups(80_000, d, rng)
    steer = FairSteerer(target=target, random_state=d)  # type: ignore[arg-type]
    A, B = steer.fit_transform(X_tr, y_tr, groups=g_tr), steer.transform(X_te, groups=g_te)
    tpr_bound = sampling_bound(y_tr, g_tr, y_te, g_te, 1)
    raw = group_rates(y_te, LogisticRegression().fit(X_tr, y_tr).predict(X_te), g_te)
    assert np.ptp(raw.tpr) > 2 * tpr_bound
    return rates_of_every_model(A, y_tr, B, y_te, g_te), tpr_bound, sampling_bound(y_tr, g_tr, y_te, g_te, 0)


def true_model_rates(steer: Any, seed: int) -> tuple[GroupRates, list[float]]:
    """Gradient-boosting test rates after applying ``steer`` (fitted on :func:`two_separability_cells`) to samples
    of the true model, and four Monte Carlo standard errors of the TPR and FPR differences."""
    d, rng = 3, np.random.default_rng(seed)
    model = two_separability_cells(d)
    X_tr, y_tr, g_tr = model.sample(20_000, rng)
    X_te, y_te, g_te = model.sample(60_000, rng)
    A = steer.transform(X_tr, Membership.one_hot(g_tr, [0, 1]), rng)
    B = steer.transform(X_te, Membership.one_hot(g_te, [0, 1]), rng)
    pred = HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(A, y_tr).predict(B)
    bounds = []
    for cls in (1, 0):
        n = [np.sum((y_te == cls) & (g_te == a)) for a in (0, 1)]
        bounds.append(float(4.0 * np.sqrt(0.25 * (1 / n[0] + 1 / n[1]))))
    return group_rates(y_te, pred, g_te), bounds


def two_separability_cells(d: int = 3) -> GroupConditionalModel:
    """Two groups with Mahalanobis separations 2.8 and 1.2, different frames and base rates (the true model)."""
    u = np.ones(d) / np.sqrt(d)
    comps = [
        (Gaussian(np.zeros(d), np.eye(d)), Gaussian(2.8 * u, np.eye(d))),
        (Gaussian(np.ones(d), 4 * np.eye(d)), Gaussian(np.ones(d) + 2.4 * u, 4 * np.eye(d))),
    ]
    return GroupConditionalModel([0, 1], [0, 1], [0.5, 0.5], [[0.55, 0.45], [0.7, 0.3]], comps)

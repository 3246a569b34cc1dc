"""The methods and downstream models of the tabular benchmark (:mod:`steerfair.evaluation.tabular_benchmark`).

Two kinds of method:

* **pre-processing** (:data:`PREPROCESSING`): :func:`prepare` transforms the training and test features once
  (and may return training weights); every downstream model is then trained on the result;
* **model-dependent** (:data:`MODEL_DEPENDENT`): the method wraps the downstream model itself (fairlearn's
  ``ThresholdOptimizer`` and ``ExponentiatedGradient``) or picks its setting with it (the shared target's strength,
  :func:`steerfair.shared_target.pick_strength`); :func:`predict` fits it once per model.

The sensitive attribute is never a feature of a downstream model; the methods that need it at test time (every
steering map, the matching baselines, ThresholdOptimizer) receive it as ``groups`` / ``sensitive_features``.
Methods that train with weights (:data:`NEEDS_SAMPLE_WEIGHT`) need a model whose ``fit`` accepts ``sample_weight``;
:func:`check_models` says so before any work.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..baselines import GaussianOTMatching, LeaceMatching, MeanMatching, reweighing_weights

if TYPE_CHECKING:
    from ..datasets import TabularDataset

__all__ = [
    "EXPGRAD",
    "MODELS",
    "MODEL_ALIASES",
    "MODEL_DEPENDENT",
    "NEEDS_SAMPLE_WEIGHT",
    "PICK",
    "PREPROCESSING",
    "TO_CONSTRAINTS",
    "Fold",
    "canonical_model",
    "check_models",
    "fit_model",
    "make_model",
    "predict",
    "prepare",
]

#: The downstream classifiers: standardised logistic regression, histogram gradient boosting, a small MLP.
MODELS: tuple[str, ...] = ("lr", "gbm", "mlp")
#: Older names of the models, accepted everywhere a model is named.
MODEL_ALIASES: dict[str, str] = {"logistic": "lr"}
#: Methods that transform the features (and may weight the training rows) before any model is trained.
PREPROCESSING: tuple[str, ...] = (
    "raw",
    "steerfair",
    "steerfair (label-free)",
    "steerfair (gaussian)",
    "steerfair (affine)",
    "steerfair+priors",
    "steerfair (posterior)",
    "steerfair (shared)",
    "steerfair (shared, gaussian)",
    "steerfair (shared positive)",
    "steerfair (shared score)",
    "reweighing",
    "correlation_remover",
    "mean_matching",
    "mimic",
    "leace",
    "mimic (all columns)",
    "leace (all columns)",
)
#: Methods fitted once per downstream model.
MODEL_DEPENDENT: tuple[str, ...] = (
    "steerfair (shared, picked)",
    "threshold_optimizer",
    "threshold_optimizer (equalized odds)",
    "exponentiated_gradient",
)
#: fairlearn's ThresholdOptimizer constraint behind each of its method names.
TO_CONSTRAINTS: dict[str, str] = {
    "threshold_optimizer": "true_positive_rate_parity",
    "threshold_optimizer (equalized odds)": "equalized_odds",
}
#: Methods that train the downstream model with per-row weights.
NEEDS_SAMPLE_WEIGHT: frozenset[str] = frozenset({"steerfair+priors", "reweighing", "exponentiated_gradient"})
#: fairlearn's ExponentiatedGradient: the constraint (``"tpr"``: TruePositiveRateParity, the benchmark's EO gap;
#: ``"eodds"``: EqualizedOdds), its slack, and its iteration cap: fairlearn's default (50) on small tables, 3 on
#: tables with more than ``large_cells`` training cells (rows x features: Adult). Every iteration refits the model up
#: to five times (its duality-gap check), about 20-30 fits in all with the default, minutes per seed with gradient
#: boosting or the MLP on Adult; 3 iterations are about 11 fits. On Adult / sex with logistic regression (seed 0)
#: 3 iterations give accuracy 0.844 and EO gap 0.016, 5 and 50 iterations 0.843 and 0.035; on Law / race 3
#: iterations lose 3 points of accuracy against 50 (0.861 against 0.892), hence the default where it is affordable.
EXPGRAD: dict[str, Any] = {"constraints": "tpr", "eps": 0.02, "max_iter": 50, "large_max_iter": 3,
                           "large_cells": 1_000_000}  # fmt: skip
#: The strength picker of the shared target: a 70/30 split of the training rows, the budget a fraction of the raw
#: model's validation EO gap, the candidate strengths.
PICK: dict[str, Any] = {"val_size": 0.3, "budget_fraction": 0.5, "strengths": (0.0, 0.25, 0.5, 0.75, 1.0)}

Prepared = tuple[np.ndarray, np.ndarray, np.ndarray | None]  # X_train, X_test, sample weights


def canonical_model(name: str) -> str:
    """The model's name in :data:`MODELS` (``"logistic"`` is ``"lr"``); a ``ValueError`` for an unknown one."""
    kind = MODEL_ALIASES.get(name, name)
    if kind not in MODELS:
        raise ValueError(f"unknown model {name!r}; use one of {MODELS}")
    return kind


def make_model(kind: str, seed: int) -> Any:
    """A fresh downstream classifier (standardised features for ``"lr"`` and ``"mlp"``)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    kind = canonical_model(kind)
    if kind == "lr":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    if kind == "gbm":
        return HistGradientBoostingClassifier(max_iter=200, random_state=seed)
    return make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), early_stopping=True, max_iter=200, random_state=seed)
    )


def _final(clf: Any) -> Any:
    """The estimator at the end of a pipeline (``clf`` itself otherwise)."""
    return clf.steps[-1][1] if hasattr(clf, "steps") else clf


def check_models(methods: Sequence[str], models: Sequence[str]) -> None:
    """A ``ValueError`` if a method that trains with weights meets a model whose ``fit`` takes no ``sample_weight``."""
    from sklearn.utils.validation import has_fit_parameter

    for kind in models:
        est = _final(make_model(kind, 0))
        if has_fit_parameter(est, "sample_weight"):
            continue
        for method in methods:
            if method in NEEDS_SAMPLE_WEIGHT:
                raise ValueError(
                    f"method {method!r} trains the downstream model with sample_weight, but model {kind!r} "
                    f"({type(est).__name__}) has no sample_weight in its fit; drop one of them"
                )


def fit_model(kind: str, seed: int, X: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> Any:
    """Train a fresh :func:`make_model` on ``X``, ``y`` (weights routed to the pipeline's final step)."""
    clf = make_model(kind, seed)
    if w is None:
        return clf.fit(X, y)
    key = f"{clf.steps[-1][0]}__sample_weight" if hasattr(clf, "steps") else "sample_weight"
    return clf.fit(X, y, **{key: w})


@dataclass
class Fold:
    """One split of one task: the training and test parts, the seed, and fits shared between methods."""

    train: TabularDataset
    test: TabularDataset
    seed: int
    cache: dict[str, Any] = field(default_factory=dict)

    def shared_steerer(self) -> Any:
        """``FairSteerer(target="shared", marginals="copula")`` fitted on the training part (once per fold)."""
        if "shared" not in self.cache:
            from ..tabular import FairSteerer

            fs = FairSteerer(target="shared", marginals="copula", random_state=self.seed)
            self.cache["shared"] = fs.fit(self.train.X, self.train.y, groups=self.train.groups)
        return self.cache["shared"]


def _steer_numeric(tr: TabularDataset, te: TabularDataset, make: Callable[[], Any]) -> tuple[np.ndarray, np.ndarray]:
    """Apply a group-matching baseline to the continuous columns only (one-hot columns pass through)."""
    Xtr, Xte, num = tr.to_numpy(), te.to_numpy(), tr.numeric_mask
    method = make()
    Xtr[:, num] = method.fit_transform(Xtr[:, num], tr.groups)
    Xte[:, num] = method.transform(Xte[:, num], te.groups)
    return Xtr, Xte


def _steer_all(tr: TabularDataset, te: TabularDataset, make: Callable[[], Any]) -> tuple[np.ndarray, np.ndarray]:
    """Apply a group-matching baseline to every column (one-hot ones too), as the shared steerfair targets do."""
    method = make()
    return method.fit_transform(tr.to_numpy(), tr.groups), method.transform(te.to_numpy(), te.groups)


def _steered(fs: Any, fold: Fold) -> tuple[np.ndarray, np.ndarray]:
    """Training and test features moved by a fitted steerer (label-free maps for both parts)."""
    tr, te = fold.train, fold.test
    return (
        np.asarray(fs.transform(tr.X, groups=tr.groups), dtype=np.float64),
        np.asarray(fs.transform(te.X, groups=te.groups), dtype=np.float64),
    )


def prepare(method: str, fold: Fold) -> Prepared:
    """Fit a pre-processing ``method`` on the training part; the transformed training and test features, weights."""
    from ..tabular import FairSteerer

    tr, te = fold.train, fold.test
    if method == "raw":
        return tr.to_numpy(), te.to_numpy(), None
    if method == "steerfair (shared)":
        return (*_steered(fold.shared_steerer(), fold), None)
    if method == "steerfair (shared, gaussian)":
        fs = FairSteerer(target="shared", marginals="gaussian", random_state=fold.seed)
        return (*_steered(fs.fit(tr.X, tr.y, groups=tr.groups), fold), None)
    if method == "steerfair (shared positive)":
        fs = FairSteerer(target="shared_positive", marginals="copula", random_state=fold.seed)
        return (*_steered(fs.fit(tr.X, tr.y, groups=tr.groups), fold), None)
    if method == "steerfair (shared score)":
        from ..shared_score import SharedScore

        ss = SharedScore(random_state=fold.seed)
        Xtr = ss.fit_transform(tr.to_numpy(), tr.y, groups=tr.groups)
        return Xtr, ss.transform(te.to_numpy(), groups=te.groups), None
    if method.startswith("steerfair"):
        mode: Literal["posterior", "group"] = "posterior" if method == "steerfair (posterior)" else "group"
        train_maps = "unlabeled" if method == "steerfair (label-free)" else "labeled"
        marginals: Literal["gaussian", "auto"] = "gaussian" if method == "steerfair (gaussian)" else "auto"
        family: Literal["isotropic", "affine"] = "affine" if method == "steerfair (affine)" else "isotropic"
        fs = FairSteerer(
            columns=tr.numeric_columns, test_mode=mode, train_maps=train_maps, marginals=marginals,
            family=family, random_state=fold.seed,
        )  # fmt: skip
        Xtr = fs.fit_transform(tr.X, tr.y, groups=tr.groups).to_numpy(np.float64)
        Xte = fs.transform(te.X, groups=te.groups).to_numpy(np.float64)
        w = fs.sample_weight(tr.y, groups=tr.groups) if method == "steerfair+priors" else None
        return Xtr, Xte, w
    if method == "reweighing":
        return tr.to_numpy(), te.to_numpy(), reweighing_weights(tr.y, tr.groups)
    if method == "correlation_remover":
        from fairlearn.preprocessing import CorrelationRemover

        levels = np.unique(tr.groups)

        def with_group(d: TabularDataset) -> np.ndarray:
            return np.column_stack([d.to_numpy(), (d.groups[:, None] == levels[None, 1:]).astype(np.float64)])

        cr = CorrelationRemover(sensitive_feature_ids=list(range(tr.X.shape[1], tr.X.shape[1] + len(levels) - 1)))
        return cr.fit_transform(with_group(tr)), cr.transform(with_group(te)), None
    if method == "mean_matching":
        return (*_steer_numeric(tr, te, MeanMatching), None)
    if method == "mimic":
        return (*_steer_numeric(tr, te, GaussianOTMatching), None)
    if method == "leace":
        return (*_steer_numeric(tr, te, LeaceMatching), None)
    if method == "mimic (all columns)":
        return (*_steer_all(tr, te, GaussianOTMatching), None)
    if method == "leace (all columns)":
        return (*_steer_all(tr, te, LeaceMatching), None)
    raise ValueError(f"unknown method {method!r}; use one of {PREPROCESSING + MODEL_DEPENDENT}")


def _picked(kind: str, fold: Fold) -> tuple[np.ndarray, dict[str, float]]:
    """The shared target at the strength :func:`pick_strength` chose on a split of the training part."""
    from ..metrics import equal_opportunity_gap
    from ..shared_target import pick_strength
    from ..tabular import FairSteerer

    tr, seed = fold.train, fold.seed
    fit_part, val = tr.split(PICK["val_size"], seed + 100)
    raw_val = fit_model(kind, seed, fit_part.to_numpy(), fit_part.y).predict(val.to_numpy())
    budget = PICK["budget_fraction"] * float(equal_opportunity_gap(val.y, raw_val, groups=val.groups))
    base = FairSteerer(target="shared", marginals="copula", random_state=seed)
    choice = pick_strength(
        base, make_model(kind, seed), fit_part.X, fit_part.y, fit_part.groups, val.X, val.y, val.groups,
        budget=budget, strengths=list(PICK["strengths"]), gap="equal_opportunity",
    )  # fmt: skip
    fs = copy.deepcopy(fold.shared_steerer()).set_params(strength=choice.strength)
    Xtr, Xte = _steered(fs, fold)
    return fit_model(kind, seed, Xtr, tr.y).predict(Xte), {"strength": choice.strength, "budget": budget}


def _threshold_optimizer(kind: str, fold: Fold, constraints: str) -> np.ndarray:
    """fairlearn's ThresholdOptimizer (``constraints``) on the same base model; the group is given at prediction."""
    from fairlearn.postprocessing import ThresholdOptimizer

    tr, te = fold.train, fold.test
    base = make_model(kind, fold.seed)
    to = ThresholdOptimizer(estimator=base, constraints=constraints, predict_method="predict_proba")
    to.fit(tr.to_numpy(), tr.y, sensitive_features=tr.groups)
    return np.asarray(to.predict(te.to_numpy(), sensitive_features=te.groups, random_state=fold.seed))


def _exponentiated_gradient(kind: str, fold: Fold) -> tuple[np.ndarray, dict[str, float]]:
    """fairlearn's ExponentiatedGradient (:data:`EXPGRAD`) around the model (standardised features outside it)."""
    from fairlearn.reductions import EqualizedOdds, ExponentiatedGradient, TruePositiveRateParity

    tr, te = fold.train, fold.test
    clf = make_model(kind, fold.seed)
    Xtr, Xte = tr.to_numpy(), te.to_numpy()
    if hasattr(clf, "steps"):  # fairlearn passes sample_weight= to fit, which a Pipeline does not route: scale here
        scaler = clf.steps[0][1].fit(Xtr)
        Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
    constraint = TruePositiveRateParity() if EXPGRAD["constraints"] == "tpr" else EqualizedOdds()
    large = Xtr.shape[0] * Xtr.shape[1] > EXPGRAD["large_cells"]
    max_iter = EXPGRAD["large_max_iter"] if large else EXPGRAD["max_iter"]
    eg = ExponentiatedGradient(_final(clf), constraints=constraint, eps=EXPGRAD["eps"], max_iter=max_iter)
    eg.fit(Xtr, tr.y, sensitive_features=tr.groups)
    return np.asarray(eg.predict(Xte, random_state=fold.seed)), {"max_iter": float(max_iter)}


def predict(method: str, kind: str, fold: Fold) -> tuple[np.ndarray, dict[str, float]]:
    """Fit a model-dependent ``method`` with model ``kind``; its test predictions and what it chose."""
    if method == "steerfair (shared, picked)":
        return _picked(kind, fold)
    if method in TO_CONSTRAINTS:
        return _threshold_optimizer(kind, fold, TO_CONSTRAINTS[method]), {}
    if method == "exponentiated_gradient":
        return _exponentiated_gradient(kind, fold)
    raise ValueError(f"unknown method {method!r}; use one of {PREPROCESSING + MODEL_DEPENDENT}")

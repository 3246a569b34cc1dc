"""Equalized odds for every downstream model at the largest accuracy a label-free common law allows (two classes).

``SharedScore`` is a scikit-learn transformer that replaces a table by one column, a score whose law given the class
is the same in every group, and whose experiment is the greatest common garbling of the groups' experiments
(docs/shared_target.md, section 12). The steps, all label-free at prediction time:

1. **A group-aware score.** One classifier (``estimator``; by default a logistic regression or histogram gradient
   boosting, whichever has the smaller held-out log-loss) reads the features and the group's indicators, and is
   cross-fitted in ``n_folds`` folds: every training row is scored by the fold model that did not see it, and a row at
   prediction time by a fold model drawn at random, so training and test scores have the same law (a model refitted on
   all rows would be more confident on new rows than the laws estimated from held-out ones, and the kernels would no
   longer carry test rows onto the target).
2. **Each group's experiment.** A group's held-out scores are cut at their quantiles into at most ``n_bins`` bins of
   at least ``min_bin_rows`` rows; ``P(bin | y, a)`` is the group's experiment. Neighbouring bins are then pooled
   until the likelihood ratio increases with the score (:func:`steerfair.dichotomy.pool_adjacent_violators`, the
   isotonic estimate): the score estimates the posterior, so in the population a group's likelihood ratio grows
   with it, and an inversion between bins is noise that would make the group's curve look better than it is on new
   rows (on German it cost about 2 points of accuracy; docs/shared_target.md section 12).
3. **The target.** :func:`steerfair.dichotomy.greatest_common_dichotomy`: the dichotomy whose ROC curve is the
   pointwise minimum of the groups' curves, the most informative law every group can be garbled onto, for every class
   prior and cost (Blackwell), and one kernel per group onto it.
4. **The output.** A row of group ``a`` in bin ``b`` gets a target outcome drawn from ``K_a(. | b)`` and the output is
   that outcome's posterior ``P(Y = 1 | outcome)`` at the training class prior; with ``strength < 1`` a row is steered
   with that probability and otherwise gets its own bin's posterior in its group.

Then the law of the output given ``(Y, A = a)`` is the target's for every group, on the training law up to the
estimation of the bins' laws, so every model trained on it, at every threshold, has equal true- and false-positive
rates in every group; the accuracy at a class prior is at most the target's Bayes accuracy there, which is the ceiling
of every label-free shared target *for this score* (``recipes/shared_target_ceiling.py``). What is given up against
``FairSteerer(target="shared")``: the output is one column, not the table; a later model cannot use anything the score
does not carry, and the guarantee is about that column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_array, check_is_fitted

from .categorical_garbling import draw_from_rows
from .copula import draw_groups
from .dichotomy import DichotomyMeet, greatest_common_dichotomy, pool_adjacent_violators, roc_curve_of
from .membership import Membership, PlainGroups, warn_probe_stands_in
from .random_state import as_generator, call_generator
from .validation import as_int, as_labels, as_unit_weight, label_repr

__all__ = ["SharedScore", "default_estimators"]


NEED_GROUPS = (
    "groups is required: one group label per row of X (the score and its kernel are per group); at prediction, "
    "fit with group_probe='logistic' to estimate them"
)


def default_estimators(seed: int) -> dict[str, Any]:
    """The score models ``estimator=None`` chooses between (by held-out log-loss): a standardised logistic regression
    (small tables, where boosting overfits) and histogram gradient boosting (interactions, atoms)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logistic regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "gradient boosting": HistGradientBoostingClassifier(random_state=seed),
    }


def _cross_fit(model: Any, Z: np.ndarray, y: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]], bar: Any) -> tuple:
    """Held-out scores of every row and the fold models (``bar``: a tqdm bar, advanced once per fold)."""
    oof, fitted = np.empty(Z.shape[0]), []
    for train, held in folds:
        m = clone(model).fit(Z[train], y[train])
        oof[held] = m.predict_proba(Z[held])[:, 1]
        fitted.append(m)
        bar.update(1)
    return oof, tuple(fitted)


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1.0 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


class SharedScore(TransformerMixin, BaseEstimator):
    """One score column with the same law given the class in every group (two classes; module docstring).

    Args:
        estimator: (scikit-learn classifier with ``predict_proba``, or None) The score model, cloned per fold; it
            reads the features and the group's indicators. None: of :func:`default_estimators` (a logistic regression
            and histogram gradient boosting) the one with the smaller held-out log-loss; gradient boosting alone
            when ``X`` has missing or infinite values (it reads them; the logistic regression cannot).
        n_bins: (int >= 1) Most bins per group.
        min_bin_rows: (int >= 1) Fewest training rows per bin (small groups get fewer bins).
        pool_bins: (bool) Pool neighbouring bins until each group's likelihood ratio increases with the score (the
            isotonic estimate; recommended for any score that estimates the class probability). False: the bins as
            cut, their outcomes ordered by the empirical likelihood ratio.
        n_folds: (int >= 2) Folds of the cross-fitting.
        strength: (float in [0, 1]) Probability that a row is steered; the TPR and FPR gaps of a fixed classifier
            of the output shrink by ``1 - strength`` (not the DP gap, which mixes the groups' base rates). Read when
            rows are steered, so it can be changed after ``fit``;
            :func:`~steerfair.shared_target.pick_strength` picks it for a gap budget.
        random_state: (None, int or numpy Generator) Seeds the folds, the default estimator, the fold drawn for a new
            row and the kernels' draws.
        group_probe: ({"logistic", None}) A model of ``P(A | x)`` (standardised logistic regression, fitted with the
            score) that gives the group probabilities when ``transform`` gets no ``groups``; ``None`` makes
            ``groups`` required.
        progress: (bool) Show a progress bar over the score model's fits (``n_folds`` per candidate).

    Attributes:
        classes_: the two classes; ``groups_``: the group labels seen in training.
        scorers_: the fitted fold models; ``oof_scores_``: the training rows' held-out scores; ``train_groups_``:
            their group indices.
        estimator_name_: the score model used (``"estimator"`` when one was given); ``held_out_log_loss_``: the
            held-out log-loss of each candidate.
        edges_: each group's bin edges on the score (after pooling).
        laws_: each group's ``(2, n_bins_a)`` experiment ``P(bin | y, a)`` (after pooling).
        meet_: the :class:`~steerfair.dichotomy.DichotomyMeet` (target law and kernels).
        values_: the output of each target outcome; ``own_values_``: each group's bins' own posteriors.
        prior_: the training share of ``classes_[1]``; ``probe_``: the group probe (None with ``group_probe=None``).
    """

    groups_: np.ndarray
    values_: np.ndarray
    own_values_: tuple[np.ndarray, ...]

    def __init__(
        self,
        estimator: Any = None,
        *,
        n_bins: int = 20,
        min_bin_rows: int = 20,
        pool_bins: bool = True,
        n_folds: int = 5,
        strength: float = 1.0,
        random_state: Any = None,
        group_probe: str | None = "logistic",
        progress: bool = False,
    ) -> None:
        self.estimator, self.n_bins, self.min_bin_rows, self.n_folds = estimator, n_bins, min_bin_rows, n_folds
        self.pool_bins = pool_bins
        self.strength, self.random_state, self.progress = strength, random_state, progress
        self.group_probe = group_probe

    def __sklearn_tags__(self) -> Any:  # sklearn.utils.Tags (sklearn ships no type information)
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    # ------------------------------------------------------------------ input handling
    def _features(self, X: Any, *, fitting: bool) -> np.ndarray:
        names = np.asarray([str(c) for c in X.columns], dtype=object) if hasattr(X, "columns") else None
        if fitting:
            if names is not None:
                self.feature_names_in_ = names
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif names is not None and not np.array_equal(names, getattr(self, "feature_names_in_", names)):
            raise ValueError("X has different columns (names or order) from the data SharedScore was fitted on")
        try:
            arr = check_array(X, dtype=np.float64, ensure_all_finite=False, ensure_min_samples=2 if fitting else 1)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"X must be a numeric 2-D table (encode categorical columns first): {exc}") from exc
        if fitting:
            self.n_features_in_ = arr.shape[1]
        elif arr.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {arr.shape[1]} features; SharedScore was fitted on {self.n_features_in_}")
        return arr

    def _membership(self, groups: Any, n: int, *, fitting: bool) -> Membership:
        """The rows' :class:`~steerfair.membership.Membership`. Fitting needs hard labels; at prediction, ``(n, k)``
        probabilities are taken too (each row's group is then drawn from its row: a mixture of the groups' steering)."""
        if groups is None:
            raise ValueError(NEED_GROUPS)
        member = Membership.parse(groups, n) if fitting else Membership.align(groups, self.groups_, n)
        if fitting:
            if not member.is_hard:
                raise ValueError("groups must be one label per row when fitting SharedScore (probabilities are read "
                                 "at prediction only)")  # fmt: skip
            self.groups_ = member.labels
        if not member.is_hard and member.kind != "probabilities":
            raise ValueError("groups must be labels or (n, k) probabilities (signed memberships are not supported)")
        return member

    @staticmethod
    def _group_index(member: Membership, rng: np.random.Generator) -> np.ndarray:
        """Each row's group index: its label, or a group drawn from its probabilities."""
        return member.indices() if member.is_hard else draw_groups(member, rng).astype(np.int64)

    def _scorer_input(self, arr: np.ndarray, gidx: np.ndarray) -> np.ndarray:
        return np.column_stack([arr, np.eye(self.groups_.size)[gidx]])

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any, *, groups: Any = None) -> SharedScore:
        """Cross-fit the score, estimate each group's experiment, and solve the common target and the kernels.

        Args:
            X: ``(n, d)`` numeric features (array or DataFrame); the group need not be a column.
            y: ``(n,)`` labels of exactly two classes.
            groups: ``(n,)`` group labels (required).
        """
        self._fit(X, y, groups)
        return self

    def _fit(self, X: Any, y: Any, groups: Any) -> tuple[np.ndarray, np.ndarray]:
        """Fit; return the training rows' held-out scores and group indices."""
        n_bins = as_int(self.n_bins, "n_bins", low=1)
        min_rows = as_int(self.min_bin_rows, "min_bin_rows", low=1)
        n_folds = as_int(self.n_folds, "n_folds", low=2)
        if self.group_probe not in ("logistic", None):
            raise ValueError(f"unknown group_probe {self.group_probe!r}; use 'logistic' or None")
        if not isinstance(self.pool_bins, (bool, np.bool_)):
            raise ValueError(f"pool_bins must be True or False; got {self.pool_bins!r}")
        as_unit_weight(self.strength, "strength")
        if self.estimator is not None and not hasattr(self.estimator, "predict_proba"):
            raise ValueError("estimator must be a scikit-learn classifier with predict_proba (or None for the default)")
        arr = self._features(X, fitting=True)
        if y is None:
            raise ValueError("SharedScore requires y to be passed, but the target y is None (the class labels)")
        labels = as_labels(y, "y", arr.shape[0])
        self.classes_ = np.unique(labels)
        if self.classes_.size != 2:
            raise ValueError(
                f"SharedScore needs y with exactly two classes; got {self.classes_.size}. For more classes use "
                "FairSteerer(target='shared')"
            )
        gidx = self._membership(groups, arr.shape[0], fitting=True).indices()
        yi = (labels == self.classes_[1]).astype(np.int64)
        counts = np.zeros((self.groups_.size, 2), dtype=np.int64)
        np.add.at(counts, (gidx, yi), 1)
        small, cls = np.unravel_index(np.argmin(counts), counts.shape)
        if counts[small, cls] < n_folds:
            raise ValueError(
                f"group {label_repr(self.groups_[small])} has {counts[small, cls]} row(s) of class "
                f"{label_repr(self.classes_[cls])}; "
                f"every (group, class) cell needs at least n_folds = {n_folds}: lower n_folds or merge small groups"
            )
        seed = int(as_generator(self.random_state).integers(2**31 - 1))
        Z = self._scorer_input(arr, gidx)
        folds = list(StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(Z, gidx * 2 + yi))
        candidates = default_estimators(seed) if self.estimator is None else {"estimator": self.estimator}
        if self.estimator is None and not np.all(np.isfinite(Z)):  # only gradient boosting reads missing values
            candidates = {name: m for name, m in candidates.items() if name == "gradient boosting"}
        from tqdm.auto import tqdm

        with tqdm(total=len(candidates) * n_folds, desc="SharedScore", unit="fit", disable=not self.progress) as bar:
            fits = {name: _cross_fit(model, Z, yi, folds, bar) for name, model in candidates.items()}
        self.held_out_log_loss_ = {name: _log_loss(yi, oof) for name, (oof, _) in fits.items()}
        self.estimator_name_ = min(self.held_out_log_loss_, key=self.held_out_log_loss_.__getitem__)
        oof, self.scorers_ = fits[self.estimator_name_]
        self.oof_scores_ = oof
        edges, laws = [], []
        for a in range(self.groups_.size):
            rows = gidx == a
            nb = int(np.clip(rows.sum() // min_rows, 1, n_bins))
            e = np.unique(np.quantile(oof[rows], np.linspace(0.0, 1.0, nb + 1)[1:-1]))
            b = np.searchsorted(e, oof[rows], side="right")
            law = np.array([np.bincount(b[yi[rows] == k], minlength=e.size + 1) / counts[a, k] for k in (0, 1)])
            if self.pool_bins:  # a block of bins j0..j1 keeps the upper edge of its last bin, e[j1]
                law, block = pool_adjacent_violators(law)
                e = e[np.flatnonzero(np.diff(block))]
            laws.append(law)
            edges.append(e)
        self.edges_, self.laws_ = tuple(edges), tuple(laws)
        self.meet_: DichotomyMeet = greatest_common_dichotomy(self.laws_)
        self.prior_ = float(np.mean(yi))
        self.probe_: Any = None
        if self.group_probe == "logistic":
            member = Membership.one_hot(gidx, self.groups_)
            self.probe_ = PlainGroups().fit_probe(np.where(np.isfinite(arr), arr, 0.0), None, member)
        self.values_ = self._posterior(self.meet_.target)
        self.own_values_ = tuple(self._posterior(P) for P in self.laws_)
        self.train_groups_ = gidx
        return oof, gidx

    def _posterior(self, P: np.ndarray) -> np.ndarray:
        num = self.prior_ * P[1]
        den = num + (1.0 - self.prior_) * P[0]
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), self.prior_)

    # ------------------------------------------------------------------ steering
    def _steer(self, scores: np.ndarray, gidx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = np.empty(scores.size)
        strength = as_unit_weight(self.strength, "strength")  # read at use: set_params(strength=...) after fit works
        steered = rng.random(scores.size) < strength
        for a in range(self.groups_.size):
            rows = np.flatnonzero(gidx == a)
            b = np.searchsorted(self.edges_[a], scores[rows], side="right")
            out[rows] = self.own_values_[a][b]
            move = steered[rows]
            out[rows[move]] = self.values_[draw_from_rows(self.meet_.kernels[a][b[move]], rng)]
        return out[:, None]

    def transform(self, X: Any, *, groups: Any = None) -> np.ndarray:
        """The steered score ``(n, 1)`` of new rows (each scored by a fold model drawn at random; label-free).

        Args:
            X: ``(n, d)`` features, the columns seen in ``fit``.
            groups: ``(n,)`` group labels seen in ``fit``, or ``(n, k)`` group probabilities (columns in the order
                of ``groups_``, e.g. a probe's ``predict_proba`` where the group is not known at prediction): each
                row is then scored and steered as a group drawn from its probabilities. None: the probabilities
                of ``group_probe`` (an error with ``group_probe=None``).
        """
        check_is_fitted(self, "meet_")
        arr = self._features(X, fitting=False)
        if groups is None and getattr(self, "probe_", None) is not None:  # P(A | x) from the probe
            warn_probe_stands_in("SharedScore")
            groups = self.probe_.predict_proba(np.where(np.isfinite(arr), arr, 0.0))
        member = self._membership(groups, arr.shape[0], fitting=False)
        rng = call_generator(self.random_state, arr, member.weights)  # the same inputs, the same draws
        gidx = self._group_index(member, rng)
        Z = self._scorer_input(arr, gidx)
        if self.estimator_name_ == "logistic regression" and not np.all(np.isfinite(Z)):
            raise ValueError(
                "X has missing or infinite values, which the logistic regression chosen at fit (no missing values "
                "then) cannot read; impute them, or fit with estimator=HistGradientBoostingClassifier()"
            )
        which = rng.integers(len(self.scorers_), size=arr.shape[0])
        scores = np.empty(arr.shape[0])
        for f, model in enumerate(self.scorers_):
            rows = which == f
            if np.any(rows):
                scores[rows] = model.predict_proba(Z[rows])[:, 1]
        return self._steer(scores, gidx, rng)

    def fit_transform(self, X: Any, y: Any = None, *, groups: Any = None) -> np.ndarray:
        """Fit, then steer the training rows from their held-out scores (cross-fitting, as scikit-learn's
        ``TargetEncoder`` does; ``fit(X, y).transform(X)`` would score rows with models that saw them)."""
        self._fit(X, y, groups)
        return self.training_rows_transform()

    def training_rows_transform(self) -> np.ndarray:
        """The steered output ``(n, 1)`` of the rows ``fit`` saw, from their held-out scores (what ``fit_transform``
        returns; with the current ``strength``, so :func:`~steerfair.shared_target.pick_strength` can try several)."""
        check_is_fitted(self, "meet_")
        rng = call_generator(self.random_state, self.oof_scores_, self.train_groups_)
        return self._steer(self.oof_scores_, self.train_groups_, rng)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``["shared_score"]``: the one output column."""
        check_is_fitted(self, "meet_")
        return np.asarray(["shared_score"], dtype=object)

    # ------------------------------------------------------------------ inspection
    def roc_curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Each group's ROC curve on its bins and the target's (their pointwise minimum), as ``(fpr, tpr)`` vertices."""
        check_is_fitted(self, "meet_")
        curves = {str(g): roc_curve_of(P) for g, P in zip(self.groups_, self.laws_, strict=True)}
        curves["common target"] = self.meet_.roc()
        return curves

    def plot(self, path: Any = None) -> Any:
        """Draw :meth:`roc_curves` (the common target dashed), on matplotlib's Agg canvas (no pyplot state).

        Args:
            path: (str or path-like, optional) Saved there atomically (format from the extension).

        Returns:
            matplotlib.figure.Figure: The figure.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as exc:  # pragma: no cover
            raise ImportError("SharedScore.plot needs matplotlib: pip install 'steerfair[plot]'") from exc
        from .files import atomic_write_file

        fig = Figure(figsize=(4.5, 4.5))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for name, (fpr, tpr) in self.roc_curves().items():
            target = name == "common target"
            ax.plot(fpr, tpr, "k--" if target else "-", lw=2.0 if target else 1.2, label=name)
        ax.plot([0, 1], [0, 1], color="0.8", lw=0.8)
        ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title="held-out score: groups and target")
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        if path is not None:
            atomic_write_file(path, fig.savefig)
        return fig

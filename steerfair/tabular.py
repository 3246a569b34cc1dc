"""``FairSteerer``: a scikit-learn transformer that steers table columns onto the nearest ideal distribution.

The steered columns (continuous features) are modelled per (group, class) cell as a multivariate normal,
or as a log-normal for the columns listed in ``lognormal_columns`` (those columns are modelled through
their logarithm, which is exactly the log-normal family). Other columns (one-hot / categorical) pass
through unchanged, except with ``target="shared"``, which garbles them too (``discrete=``).

**Training rows** (``fit_transform``, labels known) are moved by the per-cell Gaussian OT maps: their
distribution becomes exactly the KL-nearest ideal one (first two moments; ``train_maps="unlabeled"`` moves
them like test rows instead), and
:meth:`FairSteerer.sample_weight` realises the ideal class priors. **Test rows** (label unknown) are moved
by ``test_mode``:

* ``"group"`` (default): one affine OT map per group, carrying the group's (two-moment) law onto the ideal
  group law (label-free; invertible, so ``inverse_transform`` works);
* ``"posterior"``: the posterior-weighted mixture ``sum_i P(Y=i | x, a) T_ai(x)`` of the cell maps,
  with the original model's group-aware posterior;
* ``"identity"``: test rows are not moved (steer the training data only; the downstream model is what
  carries the fairness).

When ``groups`` is not passed at transform time, a group probe (a logistic regression fitted on the
training features) gives ``P(A | x)`` and the per-group results are mixed with those probabilities.

**Uncertain or private groups.** Everywhere ``groups=`` is accepted it may also be an ``(n, k)`` matrix of
group-membership probabilities (columns named by ``fit(..., group_labels=...)``, default ``0..k-1``): the
model is fitted with weighted sufficient statistics and rows are moved by the probability-weighted mixture
of the per-group maps; one-hot rows give exactly the hard-label results. With ``group_epsilon=eps`` the
1-D ``groups`` passed to every method are reports privatised with k-ary randomized response at that
epsilon (:func:`steerfair.privacy.randomized_response`): the model is fitted by channel inversion
(:func:`steerfair.privacy.fit_private_model`), the probe is trained on the reports with a forward-corrected
loss, and each row is moved by the mixture weighted with its posterior ``P(A | x, report)`` (docs/privacy.md).
Which combination is best for a downstream model is an empirical question: ``recipes/tabular_benchmark.py``
measures them, and docs/tabular.md reports the result.

Metadata routing: ``fit`` and ``transform`` take ``groups`` as keyword metadata, so with
``sklearn.set_config(enable_metadata_routing=True)`` and
``FairSteerer().set_fit_request(groups=True).set_transform_request(groups=True)`` a ``Pipeline`` or
``GridSearchCV`` routes ``groups=`` to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted

from .categorical_garbling import CategoricalGarbling, Discrete, check_discrete, discrete_variables
from .copula import GaussianCopula
from .covariance import CovarianceEstimator, Regularisation, Shrinkage
from .derived_columns import find_binned_columns, rederive
from .ideal.solve import CRITERIA, FAMILIES, Criterion, Family, Intervention
from .membership import Membership, warn_probe_stands_in
from .model import GroupConditionalModel
from .privacy.reports import group_reader
from .random_state import as_generator, call_generator, check_random_state
from .shared_positive import fit_label_free
from .shared_target import Marginals, Target, check_target_options
from .steering import Coordinates, Mode, SteeringTransform
from .table_columns import (
    auto_marginals,
    check_steered_finite,
    chosen_columns,
    column_index,
    column_values,
    numeric_dtype,
    skew,
    two_valued_columns,
    warn_labelled_atoms,
    warn_uncovered_nan,
)
from .table_model import fit_cell_model
from .validation import as_int, check_same_length

__all__ = ["FairSteerer"]

TestMode = Literal["posterior", "group", "identity"]
_TEST_MODES = ("posterior", "group", "identity")


def _is_frame(X: Any) -> bool:
    return hasattr(X, "columns") and hasattr(X, "iloc")


def _named_check(X: Any, **kwargs: Any) -> np.ndarray:
    """scikit-learn's ``check_array`` of ``X``, its errors prefixed with the argument's name."""
    try:
        return np.asarray(check_array(X, input_name="X", **kwargs))
    except ValueError as exc:
        msg = str(exc)
        raise ValueError(msg if " X " in f" {msg} " else f"X: {msg}") from None


class FairSteerer(TransformerMixin, BaseEstimator):
    """Steer continuous columns onto the KL-nearest ideal (exactly fair) distribution.

    Args:
        criterion: ({"equal_opportunity", "demographic_parity"}) Fairness notion of the ideal (both lead to the same
            ideality conditions; kept for the record).
        intervention: ({"all", "affirmative"}) Move every (group, class) cell (KL-nearest) or only the disadvantaged
            group(s).
        columns: (sequence of column names / indices, or None) Columns to steer. ``None``: every numeric column with
            more than two distinct values in the training data (binary and one-hot columns pass through). Columns
            that are not steered may hold NaN (passed through as they are); steered ones may not (impute them).
        lognormal_columns: (sequence, or "auto") Steered columns modelled as log-normal (strictly positive). ``"auto"``:
            every steered column whose training values are all positive and whose log is less skewed than the raw
            values.
        estimator: (CovarianceEstimator or None) The covariance estimator of every cell
            (:class:`steerfair.covariance.CovarianceEstimator`); ``None``: the one ``shrinkage`` and ``reg`` describe.
        shrinkage: (None, "ledoit_wolf", "oas" or float) Shrinkage of each cell covariance (when ``estimator`` is
            ``None``).
        reg: (float, "auto" or None) Diagonal regularisation of each cell covariance (see
            :class:`steerfair.covariance.CovarianceEstimator`). ``"auto"`` judges and regularises each cell
            covariance in standardised units (each steered column divided by its training standard deviation), so
            no column's units change the steered output of the others.
        test_mode: ({"posterior", "group", "identity"}) How rows are moved when the label is unknown (see the module
            docstring).
        group_probe: ({"logistic", None}) Model of ``P(A | x)`` used when ``transform`` gets no ``groups``; ``None``
            makes ``groups`` required.
        reference: (group label or None) The advantaged group for ``intervention="affirmative"`` (default: the most
            separable group); with ``target="shared_positive"``, the group whose positive law is the target (default:
            the largest).
        solver: ({"auto", "cvxpy"}) Fast closed form / line search, or the cvxpy reference.
        min_samples: (int) The fewest training rows allowed in a (group, class) cell. Without shrinkage a cell
            should have more rows than steered columns (its covariance is singular otherwise: a warning says so).
        group_epsilon: (float or None) ``None``: ``groups`` are the raw sensitive attribute. A number ``eps > 0``:
            ``groups`` are reports privatised with k-ary randomized response at ``eps`` (``math.inf`` is the raw
            attribute, exactly as ``None``).
        train_maps: ({"labeled", "unlabeled"}) How ``fit_transform`` moves the training rows: with their own (group,
            class) maps (the exact ideal; the paper's protocol) or with the label-free test-time transform. With
            ``marginals="gaussian"`` on columns with atoms (zeros, counts) the cell maps send an atom to a different
            value in every class and a tree reads the label off it; the default ``marginals="auto"`` jitters atoms
            through the copula instead, which keeps trees accurate with labelled maps (measured in docs/tabular.md).
        target: ({"ideal", "shared", "shared_positive"}) ``"ideal"``: the nearest ideal (above). ``"shared"``: every
            group is garbled, label-free, onto one common law per class (docs/shared_target.md), for train and test
            rows alike, so any downstream model that does not read the group has equal TPR and FPR across groups
            where the (copula) cells are Gaussian with one covariance per group, else means and pooled covariances
            only (the fit warns). ``"shared_positive"`` (two classes): an invertible label-free map per group carries
            its positive class onto one common law (:mod:`steerfair.shared_positive`): equal TPR for any such model
            (two moments of the positive cell), no information levelled down; FPRs not equalised.
        strength: (float in [0, 1]) Shared targets only: each row is steered with probability ``t``, so every rate
            gap between groups that the target closes shrinks by ``1 - t`` for a fixed classifier (TPR and FPR for
            ``"shared"``, TPR for ``"shared_positive"``; not the DP gap, which mixes the groups' base rates); 0
            leaves rows unchanged, 1 is the exact shared target. A model retrained at an intermediate strength can
            be worse on both counts than at 0 and 1: :func:`steerfair.shared_target.pick_strength` measures it.
        marginals: ({"auto", "gaussian", "copula"}) ``"copula"``: steer normal scores of the columns
            (:class:`steerfair.copula.GaussianCopula`; atoms jittered, values mapped back onto training atoms); then
            ``columns=None`` steers every non-constant numeric column, one-hot and counts included. ``"gaussian"``:
            steer the values themselves (invertible; the paper's setting). ``"auto"`` (default): ``"copula"`` when a
            steered column has an atom (a value shared by at least 1 % of the training rows: zeros, ages in years,
            counts; :data:`steerfair.table_columns.ATOM_SHARE`) and no ``lognormal_columns`` are given, else
            ``"gaussian"``; ``discrete=None`` and ``columns=None`` then resolve as for ``"gaussian"``. Why: the labelled
            training maps send an atom to a class-specific value, which a tree reads the label off (Adult, gradient
            boosting: accuracy 0.869 -> 0.583 with ``"gaussian"``, 0.857 with the copula; docs/tabular.md). The
            choice is ``marginals_``; the copula's jitter is random, so pass ``random_state`` for repeatable output.
        discrete: ({"kernel", "copula", "passthrough"} or None) Two-valued and one-hot columns: garbled by categorical
            kernels onto the shared target (:mod:`steerfair.categorical_garbling`), steered by the copula, or left
            as they are. ``None``: ``"kernel"`` for the shared target, else ``"copula"`` with copula marginals
            (``"shared_positive"`` with ``marginals="auto"`` takes the copula when a column has two values).
        derived: ({"rederive", "keep"}) Discrete columns that bin a steered column (COMPAS's ``age_cat`` of
            ``age``; :mod:`steerfair.derived_columns`, found at fit as ``derived_``): ``"rederive"`` (default) sets
            them from the steered value in every row whose value moved, so no row is left aged 30 in "Greater than
            45", a combination only the moved group would show and a tree would read; ``"keep"``: as ``discrete``.
            Not with ``discrete="kernel"`` (the shared target's default), whose kernels already put each discrete
            variable on the common law: re-deriving there raised the group leakage on COMPAS (docs/shared_target.md
            section 11). With ``marginals="gaussian"`` it raised the ideal target's COMPAS EO gap (docs/tabular.md).
        family: ({"isotropic", "affine"}) The ideal set searched (:func:`steerfair.solve_nearest_ideal`): the paper's
            scale family, or every invertible affine image of shared templates (a lower KL; measured in
            docs/tabular.md). Only the ideal target reads it.
        random_state: (None, int or numpy Generator) Seeds the garbling noise and the copula jitter. With an int,
            ``transform`` is repeatable: the same rows get the same output on every call, other rows independent
            draws (:func:`steerfair.random_state.call_generator`); a Generator is advanced by every call.

    Attributes:
        model_: (GroupConditionalModel) The fitted model of the steered columns (working space: logs for log-normal
            columns).
        steering_: (SteeringTransform) The solved projection and its maps.
        steer_columns_: (ndarray of int) Indices of the steered columns; ``log_columns_`` the log-normal ones among them
            (positions in ``steer_columns_``); ``categorical_`` the discrete kernels (``CategoricalGarbling`` or None);
            ``derived_`` the binned copies of steered columns (``BinnedColumns``) that ``derived="rederive"`` sets.
        groups_, classes_: (ndarray) Group and class labels seen in ``fit``.
    """

    def __init__(
        self,
        criterion: Criterion = "equal_opportunity",
        intervention: Intervention = "all",
        *,
        columns: Sequence[Any] | None = None,
        lognormal_columns: Sequence[Any] | str = (),
        shrinkage: Shrinkage = None,
        reg: Regularisation = "auto",
        test_mode: TestMode = "group",
        group_probe: str | None = "logistic",
        reference: Any = None,
        solver: Literal["auto", "cvxpy"] = "auto",
        min_samples: int = 5,
        train_maps: str = "labeled",
        group_epsilon: float | None = None,
        estimator: CovarianceEstimator | None = None,
        target: Target = "ideal",
        strength: float = 1.0,
        marginals: Marginals | Literal["auto"] = "auto",
        discrete: Discrete | None = None,
        derived: Literal["rederive", "keep"] = "rederive",
        family: Family = "isotropic",
        random_state: Any = None,
    ) -> None:
        self.criterion, self.intervention, self.columns = criterion, intervention, columns
        self.lognormal_columns, self.shrinkage, self.reg = lognormal_columns, shrinkage, reg
        self.test_mode, self.group_probe, self.reference = test_mode, group_probe, reference
        self.train_maps, self.solver, self.min_samples = train_maps, solver, min_samples
        self.group_epsilon, self.estimator = group_epsilon, estimator
        self.target, self.strength, self.marginals, self.random_state = target, strength, marginals, random_state
        self.discrete, self.derived, self.family = discrete, derived, family

    # ------------------------------------------------------------------ sklearn plumbing
    def __sklearn_tags__(self) -> Any:  # sklearn.utils.Tags (sklearn ships no type information)
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = False  # NaN passes through unsteered columns only (not what this tag means)
        return tags

    # ------------------------------------------------------------------ input handling
    def _as_array(self, X: Any, *, fitting: bool) -> np.ndarray:  # noqa: C901
        """All columns as float64; non-numeric DataFrame columns become NaN (they can only pass through)."""
        if _is_frame(X):
            if X.shape[1] == 0:
                raise ValueError(f"0 feature(s) (shape={X.shape}) while a minimum of 1 is required")
            names = np.asarray([str(c) for c in X.columns], dtype=object)
            repeated = sorted({c for c in names if np.sum(names == c) > 1})
            if repeated:
                raise ValueError(f"X has repeated column names {repeated}; give every column its own name")
            if fitting:
                self.feature_names_in_ = names
            elif hasattr(self, "feature_names_in_") and not np.array_equal(names, self.feature_names_in_):
                raise ValueError("X has different columns (names or order) from the data FairSteerer was fitted on")
            arr = np.full((len(X), X.shape[1]), np.nan)
            nonnum = set()
            for j in range(X.shape[1]):
                try:
                    arr[:, j] = np.asarray(X.iloc[:, j], dtype=np.float64)
                except (TypeError, ValueError):
                    nonnum.add(j)
            self._nonnumeric = nonnum
            numeric = [j for j in range(arr.shape[1]) if j not in nonnum]
            _named_check(
                arr[:, numeric], ensure_min_samples=2 if fitting else 1, ensure_min_features=0,
                ensure_all_finite="allow-nan",
            )  # fmt: skip
            return arr
        if fitting and hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._nonnumeric = set()
        if sp.issparse(X):
            raise TypeError("FairSteerer does not support sparse input; pass a dense array or DataFrame")
        return _named_check(X, dtype=np.float64, ensure_min_samples=2 if fitting else 1, ensure_all_finite="allow-nan")

    def _resolve_columns(self, X: Any, arr: np.ndarray) -> np.ndarray:
        n_features = arr.shape[1]
        names = list(self.feature_names_in_) if hasattr(self, "feature_names_in_") else None
        if self.columns is None:
            idx = []
            for j in range(n_features):
                col = arr[:, j]
                if j in self._nonnumeric or (_is_frame(X) and not numeric_dtype(X.iloc[:, j])):
                    continue
                if np.unique(col[np.isfinite(col)]).size > (1 if self.discrete_mode_ == "copula" else 2):
                    idx.append(j)
            check_steered_finite(arr[:, idx], np.asarray(idx), self._name, automatic=True)
            if not idx:
                raise ValueError("no continuous column to steer; pass columns= explicitly")
            return np.asarray(idx, dtype=int)
        idx = chosen_columns(self.columns, names, n_features, self._name, lambda j: j not in self._nonnumeric and (
            not _is_frame(X) or numeric_dtype(X.iloc[:, j])))  # fmt: skip
        if len(set(idx)) != len(idx) or not idx:
            raise ValueError("columns must be a non-empty list without repeats")
        return np.asarray(idx, dtype=int)

    # ------------------------------------------------------------------ fit
    def fit(
        self, X: Any, y: Any, *, groups: Any = None, sample_weight: Any = None, group_labels: Any = None
    ) -> FairSteerer:
        """Fit the group/class-conditional model of the steered columns and solve for its nearest ideal.

        Args:
            X: array-like or DataFrame, shape (n_samples, n_features)
            y: (array-like, shape (n_samples,)) Class labels (binary or multi-class).
            groups: (array-like, shape (n_samples,) or (n_samples, k)) Sensitive group of each row (k >= 2 groups), or
                group-membership probabilities (rows sum to 1). With ``group_epsilon`` set: the privatised reports
                (1-D). Required.
            sample_weight: (array-like, shape (n_samples,), optional) Weights of the rows in the fitted moments and
                priors.
            group_labels: (sequence, optional) Names of the probability columns of a 2-D ``groups`` (default
                ``0..k-1``); with ``group_epsilon``, the full domain of the reports (default: the sorted reported
                values).
        """
        for name, allowed in (("criterion", CRITERIA), ("train_maps", ("labeled", "unlabeled")), ("test_mode",
                _TEST_MODES), ("group_probe", ("logistic", None)), ("derived", ("rederive", "keep")), ("family",
                FAMILIES), ("marginals", ("auto", "gaussian", "copula"))):  # fmt: skip
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; use one of {allowed}")
        if self.marginals == "auto" and self.discrete == "copula":
            marginals = "copula"  # discrete='copula' needs the copula
        else:
            marginals = self.marginals
        plain = "gaussian" if marginals == "auto" else marginals  # columns and discrete resolve as without a copula
        check_target_options(self.target, self.strength, plain, self.lognormal_columns)
        check_random_state(self.random_state)
        as_int(self.min_samples, "min_samples", low=1)
        self.discrete_mode_ = check_discrete(self.discrete, self.target, plain)
        if y is None:
            raise ValueError(
                "FairSteerer requires y to be passed, but the target y is None "
                "(class labels define the ideal per (group, class))"
            )
        reader = group_reader(self.group_epsilon)
        estimator = self._estimator()
        arr = self._as_array(X, fitting=True)
        if groups is None:
            raise ValueError("FairSteerer.fit needs groups= (the sensitive attribute of each row)")
        n = arr.shape[0]
        y_arr = np.asarray(y)
        if y_arr.ndim != 1 or len(y_arr) != n:
            raise ValueError(f"y must be 1-D with one label per row of X ({n}); got shape {y_arr.shape}")
        membership = reader.fit_membership(groups, n, group_labels)
        self.n_features_in_ = arr.shape[1]
        if self.target == "shared_positive" and self.discrete is None and self.columns is None and marginals == "auto":
            if two_valued_columns(arr, self._nonnumeric):  # the guarantee covers the flags a model reads: the copula
                marginals = self.discrete_mode_ = "copula"
        cols = self._resolve_columns(X, arr)
        if marginals == "auto":  # the copula for atoms (or, shared targets, skewed cells) unless log-normals are asked
            logs = len(self._resolve_lognormal(arr[:, cols], cols)) > 0  # "auto" that picks none leaves the choice
            cells = (y_arr, np.argmax(membership.weights, axis=1)) if self.target != "ideal" else None
            marginals = auto_marginals(arr[:, cols], cells, logs)
        self.marginals_ = marginals
        Z = arr[:, cols]
        check_steered_finite(Z, cols, self._name)
        log_pos = self._resolve_lognormal(Z, cols)
        if log_pos.size:
            if np.any(Z[:, log_pos] <= 0):
                bad = [self._name(cols[j]) for j in log_pos if np.any(Z[:, j] <= 0)]
                raise ValueError(f"log-normal columns must be strictly positive; non-positive values in {bad}")
            Z = Z.copy()
            Z[:, log_pos] = np.log(Z[:, log_pos])
        self.steer_columns_ = cols
        self.log_columns_ = log_pos
        per_group = membership if self.target != "ideal" else None  # shared targets: each group's own scores
        self.copula_ = GaussianCopula.fit(Z, sample_weight, per_group) if marginals == "copula" else None
        Z = Z if self.copula_ is None else self.copula_.to_normal(Z, as_generator(self.random_state), per_group)
        self.group_reader_ = reader
        self.model_ = fit_cell_model(Z, y_arr, membership, sample_weight, estimator, self.min_samples)
        # Solve and build the maps in standardised coordinates (see Coordinates.standardising): exact by the
        # scale equivariance of the nearest-ideal problem, and it keeps Adult's fnlwgt (~1e5) from amplifying
        # round-off in the OT maps.
        coords = Coordinates.standardising(self.model_)
        self.scale_ = coords.scale
        self.steering_ = SteeringTransform.fit(
            coords.model(self.model_), self.criterion, self.intervention, self.solver,
            reference=self.reference, coordinates=coords, family=self.family,
        )  # fmt: skip
        ref = self.reference if self.target == "shared_positive" else None  # whose positive law is the target
        self.shared_ = fit_label_free(self.target, coords.model(self.model_), coords, ref)
        rest = [j for j in range(arr.shape[1]) if j not in set(cols) | self._nonnumeric]
        numeric = [j for j in range(arr.shape[1]) if j not in self._nonnumeric]
        rederiving = self.derived == "rederive" and self.discrete_mode_ != "kernel"  # kernels: measured worse
        self.derived_ = find_binned_columns(arr, cols.tolist(), numeric) if rederiving else ()
        found = discrete_variables(arr, rest) if self.discrete_mode_ == "kernel" else ()
        self.categorical_ = CategoricalGarbling.fit(  # None: no discrete column to garble
            arr, self.model_.class_index(y_arr), membership, found, self.model_.n_classes, sample_weight
        ) if found else None  # fmt: skip
        if self.target != "ideal":  # a shared target covers what it steers or garbles, not what NaN kept out
            covered = {c for v in found for c in v.columns}
            uncovered = [j for j in rest if j not in covered]
            warn_uncovered_nan(arr, uncovered, self.target, self._name, sorted(self._nonnumeric))
        if self.copula_ is not None and self.shared_ is not None:  # back through the target group's quantiles
            self.copula_ = self.copula_.returning_to(self.shared_.target.reference)
        self.groups_ = np.asarray(self.model_.groups)
        self.classes_ = np.asarray(self.model_.classes)
        self.group_epsilon_ = getattr(reader, "epsilon", None)
        self.probe_: Any = None
        if self.group_probe == "logistic":
            self.probe_ = reader.fit_probe(np.where(np.isfinite(arr), arr, 0.0), groups, membership, sample_weight)
        return self

    def _estimator(self) -> CovarianceEstimator:
        if self.estimator is None:
            return CovarianceEstimator(self.shrinkage, self.reg)
        if (self.shrinkage, self.reg) != (None, "auto"):
            raise ValueError("pass estimator= or shrinkage= / reg=, not both")
        return CovarianceEstimator.of(self.estimator)

    def _resolve_lognormal(self, Z: np.ndarray, cols: np.ndarray) -> np.ndarray:
        spec = self.lognormal_columns
        if isinstance(spec, str):
            if spec != "auto":
                raise ValueError(f"lognormal_columns must be a sequence of columns or 'auto'; got {spec!r}")
            pos = []
            for j in range(Z.shape[1]):
                col = Z[:, j]
                if np.all(col > 0) and abs(skew(np.log(col))) < abs(skew(col)):
                    pos.append(j)
            return np.asarray(pos, dtype=int)
        names = list(self.feature_names_in_) if hasattr(self, "feature_names_in_") else None
        idx = [column_index(c, names, self.n_features_in_) for c in spec]
        where = {int(c): j for j, c in enumerate(cols)}
        missing = [c for c, i in zip(spec, idx, strict=True) if i not in where]
        if missing:
            raise ValueError(f"lognormal_columns {missing} are not among the steered columns")
        return np.asarray(sorted(where[i] for i in idx), dtype=int)

    def _name(self, j: int) -> str:
        return str(self.feature_names_in_[j]) if hasattr(self, "feature_names_in_") else str(j)

    # ------------------------------------------------------------------ transform
    def _working(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self, "steering_")
        arr = self._as_array(X, fitting=False)
        if arr.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {arr.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        bad = [self._name(j) for j in self.steer_columns_ if j in self._nonnumeric]
        if bad:
            raise ValueError(f"columns {bad} are not numeric and cannot be steered")
        Z = arr[:, self.steer_columns_]
        check_steered_finite(Z, self.steer_columns_, self._name)
        if self.log_columns_.size:
            if np.any(Z[:, self.log_columns_] <= 0):
                bad = [self._name(self.steer_columns_[j]) for j in self.log_columns_ if np.any(Z[:, j] <= 0)]
                raise ValueError(f"log-normal columns must be strictly positive; non-positive values in {bad}")
            Z = Z.copy()
            Z[:, self.log_columns_] = np.log(Z[:, self.log_columns_])
        return arr, Z

    def _membership(self, arr: np.ndarray, groups: Any, y: Any = None) -> Membership:
        """The apply-time membership of the rows (the probe stands in for missing groups; with privatised
        reports, the posterior given the report and the probe's ``P(A | x)``, or ``P(A | y)`` when labelled)."""
        if groups is None and self.probe_ is None:
            raise ValueError("transform needs groups= (group_probe=None was set)")
        if groups is None and self.target != "ideal":
            warn_probe_stands_in(f"target={self.target!r}")
        if y is not None and self.group_reader_.needs_prior:
            # the expected cell under P(A | report, y), proportional to P(A, y) C[A, report]
            prior = lambda: self.model_.joint[:, self.model_.class_index(np.asarray(y))].T  # noqa: E731
        elif self.probe_ is not None:
            prior = lambda: self._probe_proba(arr)  # noqa: E731
        else:
            prior = lambda: np.broadcast_to(self.model_.group_priors, (arr.shape[0], len(self.groups_)))  # noqa: E731
        return self.group_reader_.apply_membership(groups, arr.shape[0], self.groups_, prior)

    def _probe_proba(self, arr: np.ndarray) -> np.ndarray:
        return self.probe_.predict_proba(np.where(np.isfinite(arr), arr, 0.0))

    def _steer(
        self, arr: np.ndarray, Z: np.ndarray, membership: Membership, y: Any, mode: TestMode | Mode
    ) -> tuple[np.ndarray, np.ndarray]:
        # the same inputs, the same draws; drawn only where something is random (hashing the rows is a pass over them)
        if self.shared_ is not None:  # label-free garbling for train and test rows alike (copula inside)
            rng = call_generator(self.random_state, Z, membership.weights)
            drawn = self.shared_.draw(membership, rng, self.strength)  # the same rows and groups for both parts
            Zs = self.shared_.transform(Z, membership, rng, self.strength, self.copula_, drawn)
            return arr if self.categorical_ is None else self.categorical_.transform(arr, *drawn, rng), Zs
        if self.copula_ is not None:
            Z = self.copula_.to_normal(Z, call_generator(self.random_state, Z, membership.weights), membership)
        if mode == "identity":
            return arr, Z
        return arr, self.steering_.transform(Z, membership, y, mode="label" if y is not None else mode)

    def _assemble(self, X: Any, arr: np.ndarray, Zs: np.ndarray) -> Any:
        Zs = Zs if self.copula_ is None or self.shared_ is not None else self.copula_.from_normal(Zs)
        if self.log_columns_.size:
            Zs = Zs.copy()
            Zs[:, self.log_columns_] = np.exp(Zs[:, self.log_columns_])
        out = arr.copy()
        out[:, self.steer_columns_] = Zs
        derived = rederive(out, arr, self.derived_)  # binned copies follow their steered source
        if not _is_frame(X):
            return out
        frame, steered = X.copy(), set(self.steer_columns_.tolist())
        kernels = [c for v in (self.categorical_.variables if self.categorical_ is not None else ()) for c in v.columns]
        for c in sorted(steered | set(kernels) | set(derived)):
            frame[frame.columns[c]] = column_values(out[:, c], X.dtypes.iloc[c], c in steered)
        return frame

    def transform(self, X: Any, *, groups: Any = None) -> Any:
        """Steer test rows (label unknown) with ``test_mode``; the group probe stands in for missing groups."""
        arr, Z = self._working(X)
        if self.shared_ is None and self.test_mode == "identity":  # exactly the input (no copula round trip)
            return X.copy() if _is_frame(X) else arr
        return self._assemble(X, *self._steer(arr, Z, self._membership(arr, groups), None, self.test_mode))

    def fit_transform(
        self, X: Any, y: Any = None, *, groups: Any = None, sample_weight: Any = None, group_labels: Any = None
    ) -> Any:
        """Fit, then move the training rows as ``train_maps`` says.

        ``train_maps="labeled"`` (default): every training row moves with its own (group, class) map, the
        exact push-forward onto the ideal (this differs from ``fit(X, y).transform(X)``, which does not
        use ``y``). ``train_maps="unlabeled"``: the same label-free transform as test rows get, so
        ``fit_transform(X, y) == fit(X, y).transform(X)``.

        With soft or privatised ``groups`` each row moves by the mixture of its (group, class) maps weighted
        with its group probabilities (the posterior given the report, for ``group_epsilon``).
        """
        self.fit(X, y, groups=groups, sample_weight=sample_weight, group_labels=group_labels)
        if self.train_maps == "unlabeled" or self.target != "ideal":
            return self.transform(X, groups=groups)
        arr, Z = self._working(X)
        if self.marginals_ == "gaussian":
            warn_labelled_atoms(Z, [self._name(j) for j in self.steer_columns_])
        return self._assemble(X, *self._steer(arr, Z, self._membership(arr, groups), np.asarray(y), "label"))

    def transform_labeled(self, X: Any, y: Any, *, groups: Any) -> Any:
        """Move labelled rows with their (group, class) maps (the exact push-forward onto the ideal)."""
        arr, Z = self._working(X)
        return self._assemble(X, *self._steer(arr, Z, self._membership(arr, groups), np.asarray(y), "label"))

    def inverse_transform(self, X: Any, *, groups: Any = None) -> Any:
        """Undo ``transform`` for ``test_mode`` ``"group"`` or ``"identity"`` (affine per group, invertible).

        The posterior mixture of cell maps has no closed-form inverse; it raises ``NotImplementedError``.
        """
        check_is_fitted(self, "steering_")
        if self.target == "ideal" and self.test_mode == "identity":  # transform returned its input
            return X.copy() if hasattr(X, "copy") else np.array(X, dtype=np.float64)
        if self.target != "ideal" or self.marginals_ == "copula":
            raise NotImplementedError(
                f"no inverse for target={self.target!r} with marginals_={self.marginals_!r}: a garbling, a shared "
                "target (which rows were steered is random) and the copula's jittered ties are not invertible; fit "
                "with target='ideal', marginals='gaussian'"
            )
        if self.test_mode != "group":
            raise NotImplementedError(
                "inverse_transform needs test_mode='group' (the posterior mixture of maps is not affine)"
            )
        if groups is None:
            raise ValueError("inverse_transform needs groups= (hard group labels)")
        arr, Z = self._working(X)
        membership = self._membership(arr, groups)
        if membership.kind != "labels" or not membership.is_hard:
            raise ValueError("inverse_transform needs hard group labels (not probabilities or private reports)")
        ga = membership.indices()
        out = Z.copy()
        for a, T in enumerate(self.steering_.full_group_maps().values()):
            sel = ga == a
            if np.any(sel):
                out[sel] = T.inverse()(Z[sel])
        return self._assemble(X, arr, out)

    def sample_weight(self, y: Any, *, groups: Any) -> np.ndarray:
        """Per-row weights ``q_i / q_ia`` that realise the ideal class priors (the prior part of the ideal).

        Pass them to the downstream model's ``fit(..., sample_weight=...)``. They are needed whenever
        ``P(Y | A)`` differs between groups (always, for demographic parity with unequal base rates); with
        equal base rates they are all 1 and the feature part alone is the ideal.

        ``groups`` may be probabilities (the expected weight is returned) or, with ``group_epsilon``,
        privatised reports (expected weight under ``P(A | report, y)``).
        """
        check_is_fitted(self, "steering_")
        y = np.asarray(y)
        check_same_length(y=y, groups=groups)
        prior = lambda: self.model_.joint[:, self.model_.class_index(y)].T  # noqa: E731
        membership = self.group_reader_.apply_membership(groups, len(y), self.groups_, prior)
        return self.steering_.sample_weights(y, membership)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output columns are the input columns (steering changes values, not columns)."""
        check_is_fitted(self, "n_features_in_")
        if input_features is not None:
            names = np.asarray(input_features, dtype=object)
            if len(names) != self.n_features_in_:
                raise ValueError(f"input_features has {len(names)} names; expected {self.n_features_in_}")
            if hasattr(self, "feature_names_in_") and not np.array_equal(names.astype(str), self.feature_names_in_):
                raise ValueError("input_features is not equal to feature_names_in_ (the columns seen in fit)")
            return names
        if hasattr(self, "feature_names_in_"):
            return np.asarray(self.feature_names_in_, dtype=object)
        return np.asarray([f"x{j}" for j in range(self.n_features_in_)], dtype=object)

    # ------------------------------------------------------------------ results
    @property
    def ideal_(self) -> GroupConditionalModel:
        """The ideal model of the steered columns."""
        check_is_fitted(self, "steering_")
        return self.steering_.coordinates.unmodel(self.steering_.ideal)

    @property
    def kl_(self) -> float:
        """KL(ideal || fitted model) of the steered columns."""
        check_is_fitted(self, "steering_")
        return float(self.steering_.solution.kl)

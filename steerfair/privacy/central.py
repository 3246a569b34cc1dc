"""Central differential privacy: the Gaussian mechanism on per-(group, class) sufficient statistics.

For a curator who holds the raw sensitive attribute but must *release* the fitted steering maps. The
released quantities are the cell statistics of the clipped, scaled rows ``u = clip(x - c) / C``
(``||u|| <= 1``): counts ``n_ai``, sums ``sum u`` and second moments ``sum u u^T`` (upper triangle). Every
model, ideal and map computed from them afterwards is post-processing and inherits the guarantee.

Sensitivity (L2, of the vector of all cells' statistics):

* add/remove one row (default): the row changes one cell by ``(1, u, upper(u u^T))``, of norm at most
  ``sqrt(1 + ||u||^2 + ||u||^4) <= sqrt(3)``;
* replace one row: at most ``sqrt(6)`` (two cells by ``<= sqrt(3)`` each, or one cell by
  ``sqrt(||u - u'||^2 + ||u u^T - u' u'^T||_F^2) <= sqrt(4 + 2)``).

Assumptions: rows are independent individuals (one row per person), ``center`` and ``clip_norm`` are
public (chosen without looking at the data), the labels and the group of a row are part of that row's
data. The noise scale is the *analytic* Gaussian mechanism of Balle & Wang (ICML 2018), exact for every
``epsilon > 0`` (the classical ``sqrt(2 ln(1.25/delta)) / epsilon`` is only valid for ``epsilon < 1``, where
it is larger; for large ``epsilon``, from about 9, the exact scale exceeds that formula, which is invalid there).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.special import log_ndtr, ndtr

from ..covariance import UNSET, CovarianceEstimator
from ..ideal.solve import Criterion, Intervention
from ..membership import Membership
from ..model import Family, GroupConditionalModel
from ..statistics import PSD_FLOOR, CellStatistics
from ..warning_location import user_stacklevel
from .channel_inversion import label_membership, working_space
from .mechanisms import check_delta, check_epsilon

__all__ = ["DPStatistics", "dp_fit_model", "dp_fit_steering", "dp_statistics", "gaussian_delta", "gaussian_sigma"]

Neighbouring = Literal["add_remove", "replace"]
SENSITIVITY = {"add_remove": math.sqrt(3.0), "replace": math.sqrt(6.0)}


def gaussian_delta(sigma: float, epsilon: float, sensitivity: float = 1.0) -> float:
    """The smallest ``delta`` for which ``N(0, sigma^2)`` noise on an L2-``sensitivity`` query is (eps, delta)-DP.

    ``delta = Phi(D/(2s) - eps s/D) - e^eps Phi(-D/(2s) - eps s/D)`` (Balle & Wang 2018, Theorem 8).
    """
    eps = check_epsilon(epsilon, allow_inf=False)
    if not (sigma > 0 and sensitivity > 0):
        raise ValueError("sigma and sensitivity must be positive")
    a = sensitivity / (2.0 * sigma)
    b = eps * sigma / sensitivity
    return float(max(ndtr(a - b) - math.exp(min(eps + log_ndtr(-a - b), 700.0)), 0.0))


def gaussian_sigma(epsilon: float, delta: float, sensitivity: float = 1.0) -> float:
    """Noise scale of the analytic Gaussian mechanism: the smallest ``sigma`` that is (epsilon, delta)-DP.

    ``epsilon = inf`` gives 0 (no noise). Solved by bracketing and Brent's method on ``log sigma``
    (:func:`gaussian_delta` decreases in ``sigma``).

    Raises:
        ValueError: for ``epsilon <= 0`` or NaN, ``delta`` outside ``(0, 1)``, or a non-positive sensitivity.
    """
    eps = check_epsilon(epsilon)
    dlt = check_delta(delta)
    if (
        isinstance(sensitivity, (bool, np.bool_))
        or not isinstance(sensitivity, (int, float, np.integer, np.floating))
        or not (math.isfinite(sensitivity) and sensitivity > 0)
    ):
        raise ValueError(f"sensitivity must be a positive finite number; got {sensitivity!r}")
    sensitivity = float(sensitivity)
    if math.isinf(eps):
        return 0.0

    def f(log_s: float) -> float:
        return gaussian_delta(math.exp(log_s), eps, sensitivity) - dlt

    lo, hi = math.log(sensitivity) - 5.0, math.log(sensitivity) + 5.0
    while f(lo) <= 0:
        lo -= 5.0
    while f(hi) > 0:
        hi += 5.0
    from scipy.optimize import brentq  # lazy: keeps `import steerfair` light (docs/benchmarks.md)

    return math.exp(brentq(f, lo, hi, xtol=1e-12, rtol=1e-12))


@dataclass(frozen=True, eq=False)
class DPStatistics:
    """A released set of noisy cell statistics (of ``u = clip(x - center) / clip_norm``) and its accounting."""

    stats: CellStatistics
    epsilon: float
    delta: float
    sigma: float
    sensitivity: float
    clip_norm: float
    center: np.ndarray
    n_clipped: int
    family: Family = "normal"

    def to_model(
        self,
        *,
        estimator: CovarianceEstimator | None = None,
        shrinkage: Any = UNSET,
        reg: Any = UNSET,
        min_samples: float = 2,
        psd_floor: float = PSD_FLOOR,
    ) -> GroupConditionalModel:
        """The group/class-conditional model in the original (working) space: ``x = center + clip_norm * u``.

        Post-processing of the release. Covariances are PSD-repaired; ``shrinkage`` is ``None``, ``"oas"``
        or a float.

        Raises:
            ValueError: if a noisy cell count is below ``min_samples`` (too few rows for this epsilon).
        """
        s = self.stats
        s.check_counts(min_samples)
        means = self.center + self.clip_norm * s.means
        covs = self.clip_norm**2 * s.covariances(psd_floor)
        return GroupConditionalModel.from_moments(
            list(s.groups), list(s.classes), s.counts, means, covs, self.family,
            estimator=CovarianceEstimator.of(estimator, shrinkage=shrinkage, reg=reg), min_samples=0,
        )  # fmt: skip


def _check_neighbouring(neighbouring: str) -> float:
    if neighbouring not in SENSITIVITY:
        raise ValueError(f"unknown neighbouring {neighbouring!r}; use 'add_remove' or 'replace'")
    return SENSITIVITY[neighbouring]


def _generator(seed: Any) -> np.random.Generator:
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError):
        raise TypeError(f"seed must be None, an int or a numpy Generator; got {seed!r}") from None


def _check_clip_norm(clip_norm: Any) -> None:
    if (
        isinstance(clip_norm, (bool, np.bool_))
        or not isinstance(clip_norm, (int, float, np.integer, np.floating))
        or not (0 < clip_norm < math.inf)
    ):
        raise ValueError(f"clip_norm must be a positive finite number; got {clip_norm!r}")


def dp_statistics(
    X: Any,
    y: Any,
    groups: Any,
    epsilon: float,
    delta: float,
    clip_norm: float,
    *,
    center: Any = None,
    family: Family = "normal",
    neighbouring: Neighbouring = "add_remove",
    group_labels: Sequence[Any] | None = None,
    label_categories: Sequence[Any] | None = None,
    seed: int | np.random.Generator | None = None,
) -> DPStatistics:
    """Release (epsilon, delta)-DP per-(group, class) statistics with the Gaussian mechanism.

    Args:
        X: rows ``(n, d)`` (``X > 0`` and modelled through ``log X`` for ``family="lognormal"``).
        y, groups: labels and raw groups (``groups`` may be ``(n, k)`` probabilities with ``group_labels``;
            a row then spreads over cells with total weight 1 and the same sensitivity bound holds).
        epsilon, delta: the privacy budget (``epsilon = inf``: no noise and no clipping).
        clip_norm: public bound ``C``; rows are clipped to ``||x - center|| <= C`` (in the working space).
        center: public centre (default 0).
        neighbouring: ``"add_remove"`` (sensitivity ``sqrt 3``) or ``"replace"`` (``sqrt 6``).
        group_labels, label_categories: the public domains of the groups and classes. The guarantee covers the
            released cells only if their set does not depend on the data: without them the values present in
            ``groups`` / ``y`` are released as they are (a person with a unique label adds a cell), and a finite
            ``epsilon`` warns.
        seed: randomness of the noise.

    The release's ``n_clipped`` (rows clipped to ``clip_norm``) is an exact count, not private: a diagnostic for
    the data holder, not to be released with the statistics.
    """
    eps = check_epsilon(epsilon)
    dlt = check_delta(delta)
    sens = _check_neighbouring(neighbouring)
    _check_clip_norm(clip_norm)
    X = working_space(X, family, min_rows=1)
    n, d = X.shape
    c = np.zeros(d) if center is None else np.asarray(center, dtype=np.float64)
    if c.shape != (d,) or not np.all(np.isfinite(c)):
        raise ValueError(f"center must be a finite vector of length {d}")
    U = (X - c) / float(clip_norm)
    n_clipped = 0
    if not math.isinf(eps):
        norms = np.linalg.norm(U, axis=1)
        over = norms > 1.0
        n_clipped = int(over.sum())
        U[over] /= norms[over, None]
    G = Membership.parse(groups, n, labels=group_labels)
    H = label_membership(y, n, label_categories=label_categories)
    if not math.isinf(eps) and (group_labels is None or label_categories is None):
        missing = " and ".join(n for n, v in (("group_labels", group_labels), ("label_categories", label_categories))
                               if v is None)  # fmt: skip
        warnings.warn(
            f"dp_statistics without {missing}: the groups / classes present in the data are released as they are, "
            "outside the (epsilon, delta) guarantee; pass the public domains",
            UserWarning,
            stacklevel=user_stacklevel(),
        )
    stats = CellStatistics.from_rows(U, G, H)
    sigma = gaussian_sigma(eps, dlt, sens)
    if sigma > 0:
        rng = _generator(seed)
        k, m = stats.counts.shape
        counts = stats.counts + sigma * rng.standard_normal((k, m))
        sums = stats.sums + sigma * rng.standard_normal((k, m, d))
        noise = sigma * rng.standard_normal((k, m, d, d))
        upper = np.triu(noise)
        noise = upper + np.swapaxes(np.triu(noise, 1), -1, -2)  # symmetric, upper entries iid N(0, sigma^2)
        # unit row weights: the sum of squared weights is the count itself (its size, for a noisy count below 0,
        # which to_model then refuses as too few rows for this epsilon)
        stats = CellStatistics.from_totals(
            G.labels, H.labels, counts, sums, stats.outers + noise, sq_weights=np.abs(counts),
            signed=np.ones((k, m), dtype=bool),
        )  # fmt: skip
    return DPStatistics(stats, eps, dlt, sigma, sens, float(clip_norm), c, n_clipped, family)


def dp_fit_model(
    X: Any,
    y: Any,
    groups: Any,
    epsilon: float,
    delta: float,
    clip_norm: float,
    family: Family = "normal",
    *,
    center: Any = None,
    neighbouring: Neighbouring = "add_remove",
    group_labels: Sequence[Any] | None = None,
    label_categories: Sequence[Any] | None = None,
    seed: int | np.random.Generator | None = None,
    estimator: CovarianceEstimator | None = None,
    shrinkage: Any = UNSET,
    reg: Any = UNSET,
    min_samples: float = 2,
) -> GroupConditionalModel:
    """A :class:`GroupConditionalModel` from (epsilon, delta)-DP statistics (:func:`dp_statistics`).

    ``epsilon = inf`` returns :meth:`GroupConditionalModel.fit` on the raw data exactly (no noise, no
    clipping); arguments are validated either way.
    """
    eps = check_epsilon(epsilon)
    check_delta(delta)
    _check_neighbouring(neighbouring)
    est = CovarianceEstimator.of(estimator, shrinkage=shrinkage, reg=reg)
    if math.isinf(eps):
        # the same checks as a finite epsilon (centre, domains, seed), then the raw fit exactly
        dp_statistics(
            X, y, groups, eps, delta, clip_norm, center=center, family=family, neighbouring=neighbouring,
            group_labels=group_labels, label_categories=label_categories, seed=seed,
        )  # fmt: skip
        _generator(seed)  # (a finite epsilon draws from it; an unusable seed is an error either way)
        return GroupConditionalModel.fit(
            X, y, groups, family, estimator=est, min_samples=int(math.ceil(min_samples)),
            group_labels=group_labels,
        )  # fmt: skip
    rel = dp_statistics(
        X, y, groups, eps, delta, clip_norm, center=center, family=family, neighbouring=neighbouring,
        group_labels=group_labels, label_categories=label_categories, seed=seed,
    )  # fmt: skip
    return rel.to_model(estimator=est, min_samples=min_samples)


def dp_fit_steering(
    X: Any,
    y: Any,
    groups: Any,
    epsilon: float,
    delta: float,
    clip_norm: float,
    criterion: Criterion = "equal_opportunity",
    intervention: Intervention = "all",
    **kwargs: Any,
) -> Any:
    """:func:`steerfair.fit_steering` on :func:`dp_fit_model`: steering maps that are safe to release."""
    from ..steering import fit_steering

    return fit_steering(dp_fit_model(X, y, groups, epsilon, delta, clip_norm, **kwargs), criterion, intervention)

"""The Gaussian model of a table's steered columns, fitted so that ``reg="auto"`` cannot depend on a column's units
and a cell too small for its columns is reported."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .covariance import CovarianceEstimator
from .membership import Membership
from .model import GroupConditionalModel
from .steering import Coordinates
from .table_columns import column_scale, well_conditioned
from .validation import label_repr
from .warning_location import user_stacklevel

__all__ = ["fit_cell_model"]


def fit_cell_model(
    Z: np.ndarray,
    y: np.ndarray,
    membership: Membership,
    weights: Any,
    estimator: CovarianceEstimator,
    min_samples: int,
) -> GroupConditionalModel:
    """The model of the steered columns ``Z``; ``reg="auto"`` decides and regularises in standardised units, and
    shrinkage (with ``reg="auto"`` or ``None``) shrinks there too.

    The automatic ridge must not depend on any column's units: a cell covariance is "near-singular" when its
    *standardised* form (each steered column divided by its training standard deviation) is, and the ridge is then
    added in those units (proportional to each column's variance) and mapped back. A well-conditioned model is the
    plain fit, unchanged.

    Without shrinkage, a (group, class) cell with no more rows than ``Z`` has columns has a covariance singular in
    most directions, and the tiny ridge squashes the cell's rows toward a point: a :class:`UserWarning` says so and
    what to do (an error would fail scikit-learn's estimator checks, which fit a few rows).
    """

    def fit(X: np.ndarray, est: CovarianceEstimator) -> GroupConditionalModel:
        return GroupConditionalModel.fit(X, y, membership, weights=weights, estimator=est, min_samples=min_samples)

    scale = column_scale(Z)
    unit = Coordinates(scale=scale)
    if estimator.shrinkage is not None and not isinstance(estimator.reg, float):
        # shrinkage pulls toward (tr S / d) I: in raw units one large column (Adult's fnlwgt, ~1e5) would set that
        # scale for every other column; in standardised units it is the columns' common unit (a float reg is an
        # amount in the columns' own units and keeps the raw fit)
        return unit.unmodel(fit(unit.to_working(Z), estimator))
    if estimator.reg != "auto":
        return fit(Z, estimator)
    try:
        plain = fit(Z, CovarianceEstimator(estimator.shrinkage, None))
    except ValueError:  # a singular cell covariance: regularise it (below)
        pass
    else:
        if all(well_conditioned(c.cov, scale) for row in plain.components for c in row):
            return plain
    model = fit(unit.to_working(Z), estimator)
    if estimator.shrinkage is None and model.counts is not None:
        d = Z.shape[1]
        small = [
            f"{label_repr(model.groups[a])}/{label_repr(model.classes[i])} ({model.counts[a, i]:.0f} rows)"
            for a in range(model.n_groups)
            for i in range(model.n_classes)
            if model.counts[a, i] <= d
        ]
        if small:
            warnings.warn(
                f"cell(s) {', '.join(small)} have no more rows than the {d} steered columns, so their covariance is "
                "singular and their map collapses their rows toward a point; pass shrinkage='oas' (or "
                "'ledoit_wolf', or reg=<float>), steer fewer columns (columns=), or merge small groups",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
    return unit.unmodel(model)

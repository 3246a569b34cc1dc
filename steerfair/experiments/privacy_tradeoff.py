"""Deprecated alias of :mod:`steerfair.evaluation.privacy_tradeoff`."""

import warnings

from ..evaluation.privacy_data import TemplateSteerer, load_adult_sex
from ..evaluation.privacy_tradeoff import (
    EPSILONS,
    METHODS,
    METRICS,
    MULTICLASS_C,
    REFERENCES,
    FeatureData,
    load_features,
    main,
    markdown,
    plot,
    run,
    run_seed,
)

warnings.warn(
    "steerfair.experiments.privacy_tradeoff is deprecated; import from steerfair.evaluation.privacy_tradeoff",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "TemplateSteerer",
    "load_adult_sex",
    "EPSILONS",
    "FeatureData",
    "METHODS",
    "METRICS",
    "MULTICLASS_C",
    "REFERENCES",
    "load_features",
    "main",
    "markdown",
    "plot",
    "run",
    "run_seed",
]

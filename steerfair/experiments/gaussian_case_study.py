"""Deprecated alias of :mod:`steerfair.evaluation.case_study`."""

import warnings

from ..evaluation.case_study import (
    SETTINGS,
    Setting,
    baseline_models,
    blind_rates_1d,
    build,
    evaluate,
    js_1d,
    js_mc,
    log_odds_coef,
    main,
    markdown,
    rates_1d,
    region_prob,
    run,
)

warnings.warn(
    "steerfair.experiments.gaussian_case_study is deprecated; import from steerfair.evaluation.case_study",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "SETTINGS",
    "Setting",
    "baseline_models",
    "blind_rates_1d",
    "build",
    "evaluate",
    "js_1d",
    "js_mc",
    "log_odds_coef",
    "main",
    "markdown",
    "rates_1d",
    "region_prob",
    "run",
]

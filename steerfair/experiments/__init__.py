"""Deprecated alias of :mod:`steerfair.evaluation`: the studies moved there (``case_study``,
``tabular_benchmark``, ``privacy_tradeoff``); the runnable scripts are in ``recipes/``."""

import warnings

from ..evaluation import case_study, privacy_tradeoff, tabular_benchmark
from ..evaluation.output import write_results

warnings.warn(
    "steerfair.experiments is deprecated; import from steerfair.evaluation",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["case_study", "privacy_tradeoff", "tabular_benchmark", "write_results"]

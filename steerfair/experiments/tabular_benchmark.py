"""Deprecated alias of :mod:`steerfair.evaluation.tabular_benchmark`."""

import warnings

from ..evaluation.tabular_benchmark import (
    METHODS,
    METRICS,
    MODELS,
    TASKS,
    Task,
    main,
    markdown,
    plot,
    run,
    run_task,
)

warnings.warn(
    "steerfair.experiments.tabular_benchmark is deprecated; import from steerfair.evaluation.tabular_benchmark",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["METHODS", "METRICS", "MODELS", "TASKS", "Task", "main", "markdown", "plot", "run", "run_task"]

"""Percentile bootstrap confidence intervals of any group metric."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..validation import as_int, as_number
from .inputs import equals, prepare, unique_values

__all__ = ["bootstrap_ci"]


def bootstrap_ci(
    metric_fn: Callable[..., float],
    y_true: Any,
    y_pred: Any,
    groups: Any,
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int | np.random.Generator | None = 0,
    stratify: bool = True,
    metric_kwargs: Mapping[str, Any] | None = None,
) -> tuple[float, float, float]:
    """Percentile bootstrap confidence interval of a group metric.

    Args:
        metric_fn (callable): Called as ``metric_fn(y_true, y_pred, groups=groups, **metric_kwargs)`` and returning a
            float, e.g. :func:`demographic_parity_gap` or :func:`rms_tpr_gap` (with ``metric_kwargs={"group_a": ...,
            ...}``).
        y_true, y_pred, groups (array-like of shape (n,)): The data; rows are resampled with replacement.
        n_boot (int, default 1000): Number of bootstrap resamples.
        alpha (float, default 0.05): The interval has nominal coverage ``1 - alpha``.
        seed (int, numpy Generator or None, default 0): Seed for :func:`numpy.random.default_rng` (or a Generator to use
            directly).
        stratify (bool, default True): Resample rows within each group, keeping group sizes fixed (so no group can
            vanish from a resample). ``False`` resamples rows from the whole data.
        metric_kwargs (mapping, optional): Extra keyword arguments for ``metric_fn``.

    Returns:
        tuple of float: ``(point_estimate, lo, hi)`` where the point estimate is the metric on the full data and ``lo,
            hi`` are the ``alpha/2`` and ``1 - alpha/2`` quantiles of the bootstrap distribution. Resamples on which the
            metric is NaN or raises :class:`ValueError` are dropped with a warning.

    Note:
        The percentile interval brackets the point estimate for smooth statistics (rates, signed differences). For
        non-smooth statistics such as a max-minus-min gap whose true value is near zero, the bootstrap distribution is
        biased upwards and the point estimate can fall below ``lo``: do not test "the gap is 0" with it (in a review's
        simulation, two groups of 300 with a true DP gap of 0, the 95 % interval covered 0 in 25 of 100 repetitions;
        at a true gap of 0.2 it covered it in 94 %). Resamples in which a group (``stratify=False``) or a group's rate
        (no positives left for a TPR) disappears measure another gap and are dropped with a warning.
    """
    if not callable(metric_fn):
        raise ValueError("metric_fn must be callable")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer; got {n_boot!r}")
    if not 0.0 < as_number(alpha, "alpha") < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1; got {alpha!r}")
    if not isinstance(stratify, (bool, np.bool_)):
        raise ValueError(f"stratify must be True or False; got {stratify!r}")
    yt, yp, g = prepare(y_true, y_pred, groups)
    kw = dict(metric_kwargs or {})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        point = float(metric_fn(yt, yp, groups=g, **kw))
    for w in caught:  # the full data's own warnings reach the caller as they are
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    full_warned = any(issubclass(w.category, UserWarning) for w in caught)
    if not math.isfinite(point):
        raise ValueError("metric_fn returned a non-finite value on the full data; no interval can be formed")
    if not (seed is None or isinstance(seed, np.random.Generator)):
        as_int(seed, "seed", low=0)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = yt.shape[0]
    strata = [np.flatnonzero(equals(g, grp)) for grp in unique_values(g)] if stratify else [np.arange(n)]
    stats = np.full(int(n_boot), np.nan)
    failed = changed = 0
    n_groups = len(strata) if stratify else unique_values(g).shape[0]
    for b in range(int(n_boot)):
        idx = np.concatenate([s[rng.integers(0, s.shape[0], size=s.shape[0])] for s in strata])
        if not stratify and unique_values(g[idx]).shape[0] < n_groups:
            changed += 1  # a group vanished: the gap would be taken over the others, another metric
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            try:
                value = float(metric_fn(yt[idx], yp[idx], groups=g[idx], **kw))
            except ValueError:
                failed += 1
                continue
        if not full_warned and any(issubclass(w.category, UserWarning) for w in caught):
            changed += 1  # e.g. a group lost its only positives: its TPR was skipped, the gap is over the others
            continue
        stats[b] = value
    ok = np.isfinite(stats)
    if not ok.any():
        raise ValueError("the metric was undefined on every bootstrap resample")
    if not ok.all():
        warnings.warn(
            f"dropped {int((~ok).sum())} of {n_boot} bootstrap resamples where the metric was undefined or measured "
            "another gap"
            + (f" ({failed} raised ValueError)" if failed else "")
            + (f" ({changed} lost a group or a group's rate: small groups or few positives; the interval is "
               "conditional on keeping them)" if changed else ""),
            UserWarning,
            stacklevel=2,
        )  # fmt: skip
    lo, hi = np.quantile(stats[ok], [alpha / 2.0, 1.0 - alpha / 2.0])
    return point, float(lo), float(hi)

"""Safeguarded Anderson acceleration of a descent fixed-point iteration (block-coordinate descent rounds).

One round ``x -> step(x)`` of an alternating method decreases an objective but contracts slowly when its blocks
are strongly coupled (the all-subgroup affine solver: templates against maps, about 0.45 per round on the
benchmark's model). Anderson's extrapolation mixes the last few rounds, ``x+ = g_k - (dX + dR) gamma`` with
``gamma`` the least-squares fit of the residual ``r_k = g_k - x_k`` by its last differences ``dR``; the
extrapolated point replaces the plain round only where the objective is lower there, so the sequence of values
still never increases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["AndersonResult", "anderson_descent"]


@dataclass(frozen=True)
class AndersonResult:
    """End of :func:`anderson_descent`: the point, its value, the rounds run and how many extrapolations were
    taken."""

    x: np.ndarray
    value: float
    rounds: int
    extrapolated: int


def anderson_descent(
    step: Callable[[np.ndarray], tuple[np.ndarray, bool]],
    objective: Callable[[np.ndarray], float],
    x0: np.ndarray,
    *,
    memory: int = 3,
    max_rounds: int = 500,
    rtol: float = 1e-13,
) -> AndersonResult:
    """Iterate ``x -> step(x)`` with safeguarded Anderson extrapolation until a round lowers the objective by at
    most ``rtol * max(1, |value|)`` and ``step`` reports its inner solves converged.

    Args:
        step: one round of the descent method: ``(next point, whether its inner solves converged)``; it must not
            raise the objective.
        objective: the value at a point (``inf`` or an exception: not acceptable).
        x0: the start.
        memory: how many past differences the extrapolation mixes (``0``: plain rounds).
        max_rounds: rounds at most.
        rtol: relative stopping threshold on the decrease per round.

    Returns:
        The :class:`AndersonResult`; its value is never above the plain round's from the same point.

    Raises:
        ValueError: if ``memory`` is not a non-negative int.
    """
    if not isinstance(memory, int) or memory < 0:
        raise ValueError(f"memory must be a non-negative int (0: plain rounds); got {memory!r}")
    x = np.asarray(x0, dtype=np.float64)
    xs: list[np.ndarray] = []
    rs: list[np.ndarray] = []
    prev, value, taken, rounds = np.inf, np.inf, 0, 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007 - the count is reported
        g, converged = step(x)
        value = objective(g)
        keep = slice(max(len(xs) - memory, 0), None)  # the last ``memory`` (none for 0: ``[-0:]`` would keep all)
        xs, rs = [*xs[keep], x], [*rs[keep], g - x]
        new = g
        if memory > 0 and len(rs) >= 2:
            dR = np.diff(np.array(rs), axis=0).T
            dX = np.diff(np.array(xs), axis=0).T
            gamma = np.linalg.lstsq(dR, rs[-1], rcond=None)[0]
            candidate = g - (dX + dR) @ gamma
            try:
                extrapolated = objective(candidate)
            except (np.linalg.LinAlgError, ValueError):
                extrapolated = np.inf
            if extrapolated < value:
                new, value, taken = candidate, extrapolated, taken + 1
        x = new
        if prev - value <= rtol * max(1.0, abs(value)) and converged:
            break
        prev = value
    return AndersonResult(x, float(value), rounds, taken)

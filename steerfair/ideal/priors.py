"""The prior part of the ideal: equal class priors across groups (a reweighting of cells)."""

from __future__ import annotations

import numpy as np

from ..model import GroupConditionalModel

__all__ = ["ideal_class_priors", "prior_kl", "cell_weights"]


def ideal_class_priors(model: GroupConditionalModel, intervention: str, reference: int) -> np.ndarray:
    """Common class prior ``q`` of the ideal (the group marginal ``P(A)`` is kept).

    * ``"affirmative"``: ``q = q_ref`` (only the other groups' priors move);
    * ``"all"``: the minimiser of ``sum_a P(a) KL(q || q_a)``, the normalised weighted geometric mean
      ``q_i ∝ exp(sum_a P(a) log q_ia)`` (Lagrangian stationarity; the objective is strictly convex).
    """
    if intervention == "affirmative":
        return model.class_priors[reference].copy()
    if intervention == "all":
        g = np.exp(model.group_priors @ np.log(model.class_priors))
        return g / g.sum()
    raise ValueError(f"unknown intervention {intervention!r}; use 'all' or 'affirmative'")


def prior_kl(model: GroupConditionalModel, q: np.ndarray) -> float:
    """``KL(P(A) q || P(A, Y))`` of the prior part."""
    value = float(np.sum(model.group_priors[:, None] * q[None, :] * (np.log(q)[None, :] - np.log(model.class_priors))))
    return max(value, 0.0)  # a KL: rounding must not make it negative


def cell_weights(model: GroupConditionalModel, q: np.ndarray) -> np.ndarray:
    """Importance weights ``q_i / q_ia`` per (group, class) cell that turn the original priors into
    the ideal ones (Kamiran-Calders style reweighing; shape ``(k, m)``)."""
    return q[None, :] / model.class_priors

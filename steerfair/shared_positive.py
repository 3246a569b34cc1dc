"""Equal opportunity for every downstream model: one common law for the positive class (docs/shared_target.md).

If after steering ``X | Y=1, A=a`` has the same law ``T`` for every group ``a``, then every classifier ``h(x)``
trained afterwards that does not read the group (linear, tree, kNN, network) has the same true-positive rate in every
group, at every threshold: ``TPR_a(h) = T(h = 1)``. That is equal opportunity with labels unknown at test time, for
any downstream model.

Unlike the shared target for every class (equalized odds, :mod:`steerfair.shared_target`), this needs no garbling.
For Gaussian cells, the positive class of any group is carried exactly onto any Gaussian target by an invertible
affine map (the Gaussian OT map ``x -> m + A (x - mu_a1)``, ``A S_a1 A = C``). Each group's own data are only
reparametrised, so its class experiment and its group-aware Bayes risk are unchanged and nothing is levelled down.
The negative class goes wherever its group's map puts it, so false-positive rates are not equalised. The target is
one group's own positive law (``reference``; by default the largest group, whose rows do not move), so steering moves
as few rows as possible. The maps are :class:`~steerfair.shared_target.Garbling` objects without noise, so
:class:`~steerfair.shared_target.SharedTargetSteering` applies them (strength, copula and soft groups included).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .families import Gaussian
from .maps import AffineMap, gaussian_ot_map
from .model import GroupConditionalModel
from .shared_target import Garbling, SharedTargetSteering
from .steering import Coordinates

__all__ = ["PositiveTarget", "fit_label_free", "fit_shared_positive", "solve_shared_positive"]


@dataclass(frozen=True, eq=False)
class PositiveTarget:
    """The common law ``T = N(mean, cov)`` of the positive class, and each group's invertible map onto it.

    Attributes:
        mean: ``(d,)`` target mean of the positive class.
        cov: ``(d, d)`` its covariance.
        reference: index of the group whose own positive law is the target (its map is the identity).
        garblings: one deterministic :class:`~steerfair.shared_target.Garbling` per group (no noise).
    """

    mean: np.ndarray
    cov: np.ndarray
    reference: int
    garblings: tuple[Garbling, ...] = field(repr=False)


def solve_shared_positive(
    means: Any, covs: Any, *, weights: Any = None, reference: int | None = None
) -> PositiveTarget:
    """Each group's Gaussian OT map of its positive class onto the reference group's positive class.

    Args:
        means: ``(k, d)`` the positive-class mean of every group.
        covs: ``(k, d, d)`` the positive-class covariance of every group (positive definite).
        weights: ``(k,)`` group sizes or priors; the default reference is the largest group (the first on ties).
        reference: index of the group whose positive law is the target (overrides ``weights``).

    Returns:
        PositiveTarget: ``A_a mu_a + b_a = mean`` and ``A_a S_a A_a = cov`` for every group ``a`` (to round-off),
        with ``A_a`` symmetric positive definite (so the map is invertible).
    """
    means = np.asarray(means, dtype=np.float64)
    covs = np.asarray(covs, dtype=np.float64)
    if means.ndim != 2 or covs.shape != (means.shape[0], means.shape[1], means.shape[1]) or means.shape[0] < 1:
        raise ValueError(f"means must be (k, d) and covs (k, d, d); got {means.shape} and {covs.shape}")
    k, d = means.shape
    if reference is None:
        w = np.ones(k) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (k,) or not np.all(np.isfinite(w)):
            raise ValueError(f"weights must be {k} finite numbers, one per group; got {weights!r}")
        r = int(np.argmax(w))
    elif isinstance(reference, (int, np.integer)) and not isinstance(reference, bool) and 0 <= reference < k:
        r = int(reference)
    else:
        raise ValueError(f"reference must be a group index in 0..{k - 1}; got {reference!r}")
    target = Gaussian(means[r], covs[r])
    maps = [AffineMap.identity(d) if a == r else gaussian_ot_map(Gaussian(means[a], covs[a]), target) for a in range(k)]
    garblings = tuple(Garbling(T, np.zeros((d, 0))) for T in maps)
    return PositiveTarget(target.mean.copy(), target.cov.copy(), r, garblings)


def fit_shared_positive(
    model: GroupConditionalModel, coordinates: Coordinates | None = None, *, reference: int | None = None
) -> SharedTargetSteering:
    """The positive-class target of a fitted two-class ``model`` (given in ``coordinates``), ready to apply.

    The positive class is the second of ``model.classes`` (sorted labels: ``1`` of ``{0, 1}``, ``True`` of
    ``{False, True}``), scikit-learn's convention.
    """
    if model.n_classes != 2:
        raise ValueError(
            f"target='shared_positive' needs y with two classes (a positive class); got {model.n_classes} classes. "
            "Use target='shared' (one common law per class) for more classes"
        )
    pos = [model.components[a][1] for a in range(model.n_groups)]
    target = solve_shared_positive(
        np.array([c.mean for c in pos]), np.array([c.cov for c in pos]), weights=model.group_priors,
        reference=reference,
    )  # fmt: skip
    return SharedTargetSteering(target, coordinates or Coordinates())


def fit_label_free(
    target: str, model: GroupConditionalModel, coordinates: Coordinates | None = None, reference: Any = None
) -> SharedTargetSteering | None:
    """The label-free steering of ``target`` (``"shared"`` or ``"shared_positive"``); ``None`` for ``"ideal"``.

    ``reference``: ``"shared_positive"`` only, the group *label* whose positive law is the target (``None``: the
    largest group).
    """
    if target == "shared":
        return SharedTargetSteering.fit(model, coordinates)
    if target != "shared_positive":
        return None
    index = None
    if reference is not None:  # matched as the groups are (1 finds the group 1.0), as for target="ideal"
        try:
            index = int(model.group_index([reference], "reference")[0])
        except ValueError:
            labels = [g.item() if isinstance(g, np.generic) else g for g in model.groups]
            raise ValueError(
                f"reference {reference!r} is not a group of the training data; use one of {labels}"
            ) from None
    return fit_shared_positive(model, coordinates, reference=index)

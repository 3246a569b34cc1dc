"""The nearest ideal over the affine-equivalence family, started from the isotropic solution."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from ..families.gaussian import Gaussian
from ..model import GroupConditionalModel
from .affine_family import AffineFamilyParams, affirmative_affine, all_subgroups_affine
from .conditions import affine_alignment
from .priors import prior_kl
from .scale_family import CellFactors

if TYPE_CHECKING:  # solve.py imports this module lazily, so a runtime import back would be circular
    from .solve import IdealSolution

__all__ = ["solve_affine"]


def _starts(model: GroupConditionalModel, iso_gammas: np.ndarray, ref: int, weights: np.ndarray) -> list[dict]:
    """Starting maps for every non-reference group: the isotropic solution's ``gamma_a I`` and the
    alignment of the reference group's classes onto the group's (:func:`affine_alignment`)."""
    d = model.dim
    comps = model.components
    iso = {a: iso_gammas[a] / iso_gammas[ref] * np.eye(d) for a in range(model.n_groups) if a != ref}
    aligned = {}
    for a in iso:
        L, _, _ = affine_alignment(
            np.array([c.mean for c in comps[ref]]),
            [c.cov for c in comps[ref]],
            np.array([c.mean for c in comps[a]]),
            [c.cov for c in comps[a]],
            weights[a],
        )
        aligned[a] = L
    return [iso, aligned]


def _cell_kls(model: GroupConditionalModel, ideal_comps: list[tuple[Gaussian, ...]]) -> np.ndarray:
    return np.array(
        [[ideal_comps[a][i].kl(model.components[a][i]) for i in range(model.n_classes)] for a in range(model.n_groups)]
    )


def _components(model: GroupConditionalModel, params: AffineFamilyParams, keep: int | None) -> list:
    comps = []
    for a in range(model.n_groups):
        if a == keep:
            comps.append(model.components[a])
            continue
        comps.append(tuple(Gaussian(*params.cell(a, i)) for i in range(model.n_classes)))
    return comps


def solve_affine(iso: IdealSolution) -> IdealSolution:
    """Re-solve an isotropic-family solution over the affine family.

    Affirmative: the reference group's cells are the templates, the class prior is the reference group's,
    and each other group's map is found by Fisher-preconditioned Newton-CG. All subgroups: block-coordinate
    descent over the templates, every group's map and the class prior (closed form given the cells:
    ``q_i ∝ exp(sum_a pi_a (log q_ia - KL_ai))``), then (small problems) a joint L-BFGS polish. The
    isotropic solution is one of the starts and every step lowers the total KL, so the result is never above
    the isotropic solution's. ``info["affine_iterations"]``: Newton (and L-BFGS) iterations.

    Args:
        iso: an :class:`~steerfair.ideal.solve.IdealSolution` of the isotropic family.

    Returns:
        The :class:`~steerfair.ideal.solve.IdealSolution` of the affine family (``family="affine"``).
    """
    model: GroupConditionalModel = iso.original
    ref: int = iso.reference
    affirmative = iso.intervention == "affirmative"
    q = np.asarray(iso.class_priors, dtype=np.float64)
    others = [a for a in range(model.n_groups) if a != ref]
    weights = model.group_priors[:, None] * q[None, :]
    starts = _starts(model, np.asarray(iso.gammas), ref, weights)
    keep = ref if affirmative else None
    stats = CellFactors.from_components(model.components, weights, precisions_for=others if affirmative else None)
    if affirmative:
        params = affirmative_affine(stats, ref, starts)
    else:
        params, q = all_subgroups_affine(stats, ref, starts, model.group_priors, model.class_priors, q)
        weights = model.group_priors[:, None] * q[None, :]
    comps = _components(model, params, keep)
    F = _cell_kls(model, comps)
    feature_kl = float(sum(weights[a] @ F[a] for a in range(model.n_groups) if a != keep))
    ideal = model.with_components(comps, class_priors=np.tile(q, (model.n_groups, 1)))
    d = model.dim
    gammas = np.exp(np.linalg.slogdet(params.linear_maps)[1] / d)
    info = dict(iso.info)
    info.update({"isotropic_kl": float(iso.kl), "affine_iterations": float(params.iterations)})
    return dataclasses.replace(
        iso,
        ideal=ideal,
        gammas=gammas,
        offsets=params.offsets,
        template_means=params.template_means,
        template_covs=params.template_covs,
        class_priors=q,
        prior_kl=prior_kl(model, q),
        feature_kl=feature_kl,
        info=info,
        family="affine",
        linear_maps=params.linear_maps,
        grad_norm=params.grad_norm,
        iterations=params.iterations,
    )

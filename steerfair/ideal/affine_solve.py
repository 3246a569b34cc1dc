"""The nearest ideal over the affine-equivalence family, started from the isotropic solution."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..families.gaussian import Gaussian
from ..model import GroupConditionalModel
from .affine_family import AffineFamilyParams, affirmative_affine, all_subgroups_affine
from .affine_newton import congruence_basis
from .affine_profile import cell_logdets, profile_terms
from .conditions import affine_alignment
from .priors import prior_kl
from .scale_family import CellFactors, CellMatrices

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


@dataclass(frozen=True)
class _CongruenceFrame:
    """Per-group coordinates ``y = U_a^-1 x`` in which a two-class group's precisions are both diagonal
    (``U_a^T P_a0 U_a`` diagonal, ``U_a^T Pbar_a U_a = I`` for the weighted mean precision ``Pbar_a``).

    The KL of two laws of one group does not change when both are mapped by the same invertible ``U_a^-1``, and
    an ideal stays ideal (templates ``Z~ = U_g^-1 Z`` in the gauge's coordinates, maps ``U_a^-1 L_a U_g``,
    offsets ``U_a^-1 c_a``), so the all-subgroup problem is solved there: every product with a precision becomes
    a row scaling (two ``d^3`` products fewer per class and evaluation).
    """

    bases: np.ndarray  # (k, d, d) U_a
    inverses: np.ndarray  # (k, d, d) U_a^-1 = U_a^T Pbar_a

    @classmethod
    def of(cls, stats: CellFactors) -> _CongruenceFrame:
        k, m, d = stats.shape
        bases, inverses = np.empty((k, d, d)), np.empty((k, d, d))
        for a in range(k):
            w = stats.weights[a] / stats.weights[a].sum()
            pooled = 0.5 * sum(wi * (P + P.T) for wi, P in zip(w, stats.precs[a], strict=True))
            bases[a], _ = congruence_basis(pooled, stats.precs[a, 0])
            inverses[a] = bases[a].T @ pooled
        return cls(bases, inverses)

    def apply(self, stats: CellFactors) -> CellFactors:
        """The cells in the frame's coordinates (diagonal precisions, their diagonals in ``prec_diags``)."""
        k, m, d = stats.shape
        diags = np.array(
            [[np.einsum("ji,ji->i", U, stats.precs[a, i] @ U) for i in range(m)] for a, U in enumerate(self.bases)]
        )
        if np.any(diags <= 0.0) or not np.all(np.isfinite(diags)):
            raise ValueError("a cell precision is not positive definite in its group's congruence coordinates")
        means = np.einsum("ajk,aik->aij", self.inverses, stats.means)
        covs = CellMatrices([[np.diag(1.0 / p) for p in row] for row in diags])
        chols = CellMatrices([[np.diag(1.0 / np.sqrt(p)) for p in row] for row in diags])
        precs = np.array([[np.diag(p) for p in row] for row in diags])
        return CellFactors(means, covs, chols, precs, stats.weights, prec_diags=diags)

    def maps_in(self, maps: dict[int, np.ndarray], gauge: int) -> dict[int, np.ndarray]:
        return {a: self.inverses[a] @ np.asarray(L) @ self.bases[gauge] for a, L in maps.items()}

    def params_out(self, p: AffineFamilyParams, gauge: int) -> AffineFamilyParams:
        """The solution in the original coordinates (the gauge's map stays ``I``)."""
        Ug, Ug_inv = self.bases[gauge], self.inverses[gauge]
        maps = np.array([U @ L @ Ug_inv for U, L in zip(self.bases, p.linear_maps, strict=True)])
        maps[gauge] = np.eye(maps.shape[1])
        covs = np.array([Ug @ O @ Ug.T for O in p.template_covs])
        return dataclasses.replace(
            p,
            linear_maps=maps,
            offsets=np.einsum("ajk,ak->aj", self.bases, p.offsets),
            template_means=p.template_means @ Ug.T,
            template_covs=0.5 * (covs + np.transpose(covs, (0, 2, 1))),
        )


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


def solve_affine(iso: IdealSolution, progress: bool = False) -> IdealSolution:
    """Re-solve an isotropic-family solution over the affine family.

    Affirmative: the reference group's cells are the templates, the class prior is the reference group's,
    and each other group's map is found by Fisher-preconditioned Newton-CG. All subgroups: block-coordinate
    descent over the templates, every group's map and the class prior (closed form given the cells:
    ``q_i ∝ exp(sum_a pi_a (log q_ia - KL_ai))``), then (small problems) a joint L-BFGS polish. The
    isotropic solution is one of the starts and every step lowers the total KL, so the result is never above
    the isotropic solution's. ``info["affine_iterations"]``: Newton (and L-BFGS) iterations.

    Args:
        iso: an :class:`~steerfair.ideal.solve.IdealSolution` of the isotropic family.
        progress: show a progress bar (tqdm, on stderr): one tick per trust-region step or block-coordinate round, the
            phase and the KL beside it. The result does not depend on it.

    Returns:
        The :class:`~steerfair.ideal.solve.IdealSolution` of the affine family (``family="affine"``).
    """
    from tqdm.auto import tqdm

    model: GroupConditionalModel = iso.original
    ref: int = iso.reference
    affirmative = iso.intervention == "affirmative"
    q = np.asarray(iso.class_priors, dtype=np.float64)
    others = [a for a in range(model.n_groups) if a != ref]
    weights = model.group_priors[:, None] * q[None, :]
    starts = _starts(model, np.asarray(iso.gammas), ref, weights)
    keep = ref if affirmative else None
    stats = CellFactors.from_components(model.components, weights, precisions_for=others if affirmative else None)
    with tqdm(desc=f"nearest ideal (affine, {iso.intervention})", unit="step", disable=not progress) as bar:

        def report(phase: str, value: float) -> None:
            bar.set_postfix_str(f"{phase}, KL {value:.10g}", refresh=False)
            bar.update(1)

        shown = report if progress else None
        if affirmative:
            params = affirmative_affine(stats, ref, starts, shown)
        elif model.n_classes == 2:  # solved where both precisions of every group are diagonal
            frame = _CongruenceFrame.of(stats)
            starts_in = [frame.maps_in(st, ref) for st in starts]
            params, q = all_subgroups_affine(
                frame.apply(stats), ref, starts_in, model.group_priors, model.class_priors, q, shown
            )
            params = frame.params_out(params, ref)
            grads = profile_terms(
                dataclasses.replace(stats, weights=model.group_priors[:, None] * q[None, :]),
                [None if a == ref else params.linear_maps[a] for a in range(model.n_groups)],
                ref,
                cell_logdets(stats),
            )[1]
            grad = float(np.sqrt(sum(float(np.sum(G * G)) for G in grads.values())))
            params = dataclasses.replace(params, grad_norm=grad)
        else:
            params, q = all_subgroups_affine(stats, ref, starts, model.group_priors, model.class_priors, q, shown)
    if not affirmative:
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

"""Steering of learned representations (sentence encodings, hidden states) onto the ideal's class templates.

:class:`IdealTemplateSteering` fits a Gaussian per (group, class) cell, solves the KL-nearest ideal distribution
(:func:`steerfair.solve_nearest_ideal`) and carries every cell by Gaussian OT onto its class *template*
``N(nu_i, Omega_i)``. The ideal is ``N(gamma_a nu_i + c_a, gamma_a^2 Omega_i)``; mapping cell ``(a, i)`` to the
template rather than to ``N(gamma_a nu_i + c_a, ...)`` composes the ideal with the per-group affine bijection
``x -> (x - c_a) / gamma_a``, which changes nothing for a group-aware classifier (docs/theory.md section 2) but
makes the steered class-conditionals *identical* across groups, so that a classifier that never sees the group
is fair too. ``frame="ideal"`` keeps the ideal's own coordinates.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

from .families import Gaussian
from .ideal.solve import solve_nearest_ideal
from .linalg import eigh_sym
from .maps import AffineMap, gaussian_ot_map
from .model import GroupConditionalModel
from .privacy.estimators import fit_private_model
from .privacy.mechanisms import check_epsilon
from .privacy.posterior import model_group_proba, posterior_group_proba
from .steering import mixture_moments
from .validation import as_unit_weight

__all__ = ["IdealTemplateSteering"]


class IdealTemplateSteering:
    """Per-(group, class) Gaussian OT maps onto the KL-nearest ideal distribution's class templates.

    Parameters
    ----------
    criterion, intervention : as in :func:`steerfair.solve_nearest_ideal`.
    shrinkage : covariance shrinkage of every cell (``"oas"`` default: cells hold tens to hundreds of rows in
        hundreds of dimensions, so maximum-likelihood covariances are singular).
    rank : steer only inside the top-``rank`` principal subspace of the training rows (``None``: all of it);
        the orthogonal complement is left unchanged.
    test_mode : how rows with unknown class are moved: ``"posterior"`` (mixture of the class maps weighted
        by the original model's group-aware posterior ``P(Y = i | x, a)``) or ``"group"`` (one OT map from the
        group's two-moment law to the template mixture).
    frame : ``"template"`` (shared class templates, default) or ``"ideal"`` (the ideal's own per-group frame).
    reference : the group kept fixed by the affirmative intervention (and the gauge of ``"all"``): a group
        label, ``"largest"`` (default: the group with most training rows, as MiMiC moves women onto men) or
        ``None`` (the solver's own choice by class separability, which costs ``O(k m^2)`` divergences).
    share_covariance : weight in ``[0, 1]`` of each class's covariance pooled over groups in every cell's
        covariance (:meth:`~steerfair.GroupConditionalModel.share_class_covariances`); ``1`` keeps only the
        groups' mean differences within a class. ``0`` (default) is the fitted cell covariances as they are.
        With small cells in many dimensions the between-group covariance differences are mostly estimation
        noise (docs/bios.md, where both settings are measured).
    group_epsilon : ``None`` (``groups`` are the true genders) or ``eps > 0``: ``groups`` are reports privatised
        by k-ary randomized response at ``eps`` (:func:`steerfair.privacy.randomized_response`). The cell
        Gaussians are then de-biased channel-inversion estimates (:func:`steerfair.privacy.fit_private_model`),
        and :meth:`transform` mixes the group maps with the posterior ``P(A | x, report)`` (``P(A | x, y,
        report)`` when ``y`` is given). ``math.inf`` is the raw attribute, exactly as ``None``.
    """

    def __init__(
        self,
        criterion: str = "equal_opportunity",
        intervention: str = "all",
        shrinkage: Any = "oas",
        rank: int | None = None,
        test_mode: Literal["posterior", "group"] = "posterior",
        frame: Literal["template", "ideal"] = "template",
        reg: Any = "auto",
        reference: Any = "largest",
        group_epsilon: float | None = None,
        share_covariance: float = 0.0,
    ) -> None:
        if test_mode not in ("posterior", "group"):
            raise ValueError(f"test_mode must be 'posterior' or 'group'; got {test_mode!r}")
        if frame not in ("template", "ideal"):
            raise ValueError(f"frame must be 'template' or 'ideal'; got {frame!r}")
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
            raise ValueError(f"rank must be None or a positive integer; got {rank!r}")
        self.criterion, self.intervention, self.shrinkage = criterion, intervention, shrinkage
        self.rank, self.test_mode, self.frame, self.reg = rank, test_mode, frame, reg
        self.reference, self.share_covariance = reference, as_unit_weight(share_covariance, "share_covariance")
        self.group_epsilon = None if group_epsilon is None else check_epsilon(group_epsilon, "group_epsilon")

    # ------------------------------------------------------------------ fitting
    def _coords(self, X: np.ndarray) -> np.ndarray:
        return X if self.basis_ is None else (X - self.center_) @ self.basis_

    def fit(self, X: Any, y: Any, groups: Any) -> IdealTemplateSteering:
        """Fit the cell Gaussians on ``X`` (occupations ``y``, genders ``groups``), solve the nearest ideal and
        build one OT map per (group, class) cell onto its template (and one label-free map per group)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or not np.all(np.isfinite(X)):
            raise ValueError("X must be a finite 2-D array")
        self.center_ = X.mean(axis=0)
        self.basis_ = None
        if self.rank is not None and self.rank < X.shape[1]:
            _, vecs = eigh_sym(np.cov(X, rowvar=False))
            self.basis_ = np.ascontiguousarray(vecs[:, ::-1][:, : self.rank])
        Z = self._coords(X)
        if self.group_epsilon is None:
            model = GroupConditionalModel.fit(Z, y, groups, shrinkage=self.shrinkage, reg=self.reg)
        else:
            model = fit_private_model(Z, y, groups, self.group_epsilon, shrinkage=self.shrinkage, reg=self.reg)
        model = model.share_class_covariances(self.share_covariance)
        ref = self.reference
        if isinstance(ref, str) and ref == "largest":  # estimated sizes when the groups are private
            ref = model.groups[int(np.argmax(model.group_priors))].item()
        sol = solve_nearest_ideal(model, self.criterion, self.intervention, reference=ref)  # type: ignore[arg-type]
        self.model_, self.solution_ = model, sol
        k, m = model.n_groups, model.n_classes
        maps, group_maps = [], []
        self.fixed_ = sol.reference if self.intervention == "affirmative" and self.frame == "template" else None
        for a in range(k):
            if a == self.fixed_:  # affirmative: the reference group's cells are the templates (not moved, bit-exact)
                maps.append([AffineMap.identity(model.dim) for _ in range(m)])
                group_maps.append(AffineMap.identity(model.dim))
                continue
            targets = [
                Gaussian(sol.template_means[i], sol.template_covs[i])
                if self.frame == "template"
                else sol.ideal.components[a][i]
                for i in range(m)
            ]
            maps.append([gaussian_ot_map(model.components[a][i], targets[i]) for i in range(m)])
            src = mixture_moments(model.components[a], model.class_priors[a])
            dst = mixture_moments(tuple(targets), sol.class_priors)
            group_maps.append(gaussian_ot_map(src, dst))
        self.cell_maps_, self.group_maps_ = maps, group_maps
        return self

    def sample_weight(self, y: Any, groups: Any) -> np.ndarray:
        """Weights realising the ideal's class priors (condition 3 of the ideal: ``P(Y | A)`` equal across groups)."""
        return self.solution_.sample_weights(np.asarray(y), np.asarray(groups))

    # ------------------------------------------------------------- application
    def transform(self, X: Any, groups: Any = None, y: Any = None) -> np.ndarray:
        """Steer rows: with ``y`` by their cell map, else by ``test_mode``; ``groups`` are labels, ``(n, k)``
        probabilities (soft: the per-group results are mixed), privatised reports (with ``group_epsilon``), or
        ``None`` (the fitted model's posterior ``P(A | x)``)."""
        X = np.asarray(X, dtype=np.float64)
        Z = self._coords(X)
        model = self.model_
        n, k = Z.shape[0], model.n_groups
        g = None if groups is None else np.asarray(groups)
        private = self.group_epsilon is not None and math.isfinite(self.group_epsilon)
        if g is None or (g.ndim == 1 and private):
            P = model_group_proba(model, Z, y)
            if g is not None:
                if g.shape != (n,):
                    raise ValueError(f"groups must hold one report per row of X ({n}); got shape {g.shape}")
                P = posterior_group_proba(g, self.group_epsilon, P, categories=model.groups)  # type: ignore[arg-type]
        elif g.ndim == 2:
            if g.shape != (n, k):
                raise ValueError(f"group probabilities must have shape ({n}, {k})")
            P = g.astype(np.float64)
        else:
            P = np.zeros((n, k))
            P[np.arange(n), model.group_index(g)] = 1.0
        yi = None if y is None else model.class_index(np.asarray(y))
        out = np.zeros_like(Z)
        for a in range(k):
            rows = np.nonzero(P[:, a] > 0)[0]
            if rows.size:
                out[rows] += P[rows, a, None] * self._apply(Z[rows], a, None if yi is None else yi[rows])
        if self.basis_ is None:
            return out
        return X + (out - Z) @ self.basis_.T

    def _apply(self, Z: np.ndarray, a: int, yi: np.ndarray | None) -> np.ndarray:
        model, maps = self.model_, self.cell_maps_[a]
        if a == self.fixed_:
            return Z
        if yi is not None:
            out = np.empty_like(Z)
            for i in range(model.n_classes):
                sel = yi == i
                if sel.any():
                    out[sel] = maps[i](Z[sel])
            return out
        if self.test_mode == "group":
            return self.group_maps_[a](Z)
        lj = np.column_stack(
            [np.log(model.class_priors[a, i]) + model.components[a][i].logpdf(Z) for i in range(model.n_classes)]
        )
        lj -= lj.max(axis=1, keepdims=True)
        post = np.exp(lj)
        post /= post.sum(axis=1, keepdims=True)
        out = np.zeros_like(Z)
        for i in range(model.n_classes):
            out += post[:, i, None] * maps[i](Z)
        return out

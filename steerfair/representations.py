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

from .covariance import CovarianceEstimator
from .ideal.solve import Criterion, Intervention
from .model import GroupConditionalModel
from .privacy.posterior import model_group_proba
from .privacy.reports import group_reader
from .random_state import call_generator, check_random_state
from .shared_positive import fit_label_free
from .shared_target import check_target_options
from .steering import Coordinates, SteeringTransform
from .validation import as_matrix, as_unit_weight

__all__ = ["IdealTemplateSteering"]


class IdealTemplateSteering:
    """Per-(group, class) Gaussian OT maps onto the KL-nearest ideal distribution's class templates.

    Args:
        criterion, intervention: as in :func:`steerfair.solve_nearest_ideal`.
        shrinkage: covariance shrinkage of every cell (``"oas"`` default: cells hold tens to hundreds of rows in
            hundreds of dimensions, so maximum-likelihood covariances are singular).
        rank: steer only inside the top-``rank`` principal subspace of the training rows (``None``: all of it); the
            orthogonal complement is left unchanged.
        test_mode: how rows with unknown class are moved: ``"posterior"`` (mixture of the class maps weighted by the
            original model's group-aware posterior ``P(Y = i | x, a)``) or ``"group"`` (one OT map from the group's
            two-moment law to the template mixture).
        frame: ``"template"`` (shared class templates, default) or ``"ideal"`` (the ideal's own per-group frame).
        reg: diagonal regularisation of every cell covariance (see :class:`~steerfair.covariance.CovarianceEstimator`).
        reference: the group kept fixed by the affirmative intervention (and the gauge of ``"all"``): a group label,
            ``"largest"`` (default: the group with most training rows, as MiMiC moves women onto men) or ``None`` (the
            solver's own choice by class separability, which costs ``O(k m^2)`` divergences).
        group_epsilon: ``None`` (``groups`` are the true genders) or ``eps > 0``: ``groups`` are reports privatised by
            k-ary randomized response at ``eps`` (:func:`steerfair.privacy.randomized_response`). The cell Gaussians
            are then de-biased channel-inversion estimates, and :meth:`transform` mixes the group maps with the
            posterior ``P(A | x, report)`` (``P(A | x, y, report)`` when ``y`` is given). ``math.inf`` is the raw
            attribute, exactly as ``None``.
        share_covariance: weight in ``[0, 1]`` of each class's covariance pooled over groups in every cell's
            covariance (:meth:`~steerfair.GroupConditionalModel.share_class_covariances`); ``1`` keeps only the groups'
            mean differences within a class. ``0`` (default) is the fitted cell covariances as they are. With small
            cells in many dimensions the between-group covariance differences are mostly estimation noise
            (docs/bios.md, where both settings are measured).
        estimator: a :class:`~steerfair.covariance.CovarianceEstimator` instead of ``shrinkage`` / ``reg``.
        target: ``"ideal"`` (default: the cell maps above) or ``"shared"``: every group is garbled, label-free, onto
            one common law per class (:mod:`steerfair.shared_target`, docs/shared_target.md), training and test rows
            alike (``y`` is not used by :meth:`transform`), so a classifier that does not read the group has equal
            TPR and FPR across groups whatever it is. ``"shared_positive"`` (two classes only): each group's positive
            class is carried by an invertible label-free map onto the largest group's
            (:mod:`steerfair.shared_positive`): equal TPR for any such classifier, FPRs not equalised.
        strength: shared targets only: each row is steered with this probability (every class-conditional rate gap
            the target closes shrinks by ``1 - strength`` for a fixed classifier; not the DP gap).
        random_state: seed (or numpy ``Generator``) of the shared target's garbling noise.
    """

    def __init__(
        self,
        criterion: Criterion = "equal_opportunity",
        intervention: Intervention = "all",
        shrinkage: Any = "oas",
        rank: int | None = None,
        test_mode: Literal["posterior", "group"] = "posterior",
        frame: Literal["template", "ideal"] = "template",
        reg: Any = "auto",
        reference: Any = "largest",
        group_epsilon: float | None = None,
        share_covariance: float = 0.0,
        estimator: CovarianceEstimator | None = None,
        target: Literal["ideal", "shared", "shared_positive"] = "ideal",
        strength: float = 1.0,
        random_state: Any = None,
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
        self.estimator = CovarianceEstimator(shrinkage, reg) if estimator is None else CovarianceEstimator.of(estimator)
        self.group_reader = group_reader(group_epsilon)
        self.group_epsilon = getattr(self.group_reader, "epsilon", None if group_epsilon is None else math.inf)
        check_target_options(target, strength, "gaussian", ())
        self.target, self.strength, self.random_state = target, as_unit_weight(strength, "strength"), random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any, groups: Any) -> IdealTemplateSteering:
        """Fit the cell Gaussians on ``X`` (occupations ``y``, genders ``groups``), solve the nearest ideal and
        build one OT map per (group, class) cell onto its template (and one label-free map per group)."""
        X = as_matrix(X, "X", min_rows=2)
        coords = Coordinates.principal(np.cov(X, rowvar=False), self.rank, center=X.mean(axis=0))
        Z = coords.to_working(X)
        membership = self.group_reader.fit_membership(groups, X.shape[0])
        model = GroupConditionalModel.fit(Z, y, membership, estimator=self.estimator)
        model = model.share_class_covariances(self.share_covariance)
        self.steering_ = SteeringTransform.fit(
            model, self.criterion, self.intervention, reference=self.reference,
            frame=self.frame, coordinates=coords,
        )  # fmt: skip
        self.model_, self.solution_ = model, self.steering_.solution
        self.shared_ = fit_label_free(self.target, model, coords)  # None for the ideal
        check_random_state(self.random_state)  # named at fit, before any transform draws
        return self

    def sample_weight(self, y: Any, groups: Any) -> np.ndarray:
        """Weights realising the ideal's class priors (condition 3 of the ideal: ``P(Y | A)`` equal across groups).

        ``groups`` may be probabilities (the expected weight is returned) or, with ``group_epsilon``, privatised
        reports (the expected weight under ``P(A | report, y)``, as :meth:`steerfair.FairSteerer.sample_weight`).
        """
        if not hasattr(self, "steering_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(X, y, groups) first")
        y = np.asarray(y)
        prior = lambda: self.model_.joint[:, self.model_.class_index(y)].T  # noqa: E731
        membership = self.group_reader.apply_membership(groups, len(y), self.model_.groups, prior)
        return self.steering_.sample_weights(y, membership)

    # ------------------------------------------------------------- application
    def transform(self, X: Any, groups: Any = None, y: Any = None) -> np.ndarray:
        """Steer rows: with ``y`` by their cell map, else by ``test_mode`` (shared targets: by their group's
        garbling, ``y`` unused); ``groups`` are labels, ``(n, k)``
        probabilities (soft: the per-group results are mixed), privatised reports (with ``group_epsilon``), or
        ``None`` (the fitted model's posterior ``P(A | x)``)."""
        if not hasattr(self, "steering_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(X, y, groups) first")
        X = as_matrix(X, "X")
        steering = self.steering_

        def prior() -> np.ndarray:
            return model_group_proba(self.model_, steering.coordinates.to_working(X), y)

        membership = self.group_reader.apply_membership(groups, X.shape[0], self.model_.groups, prior)
        if self.shared_ is not None:  # label-free garbling; the label is not used
            return self.shared_.transform(
                X, membership, call_generator(self.random_state, X, membership.weights), self.strength
            )
        return steering.transform(X, membership, y, mode="label" if y is not None else self.test_mode)

    # ------------------------------------------------------------- fitted views
    @property
    def cell_maps_(self) -> tuple[tuple[Any, ...], ...]:
        """``cell_maps_[a][i]``: the map of cell ``(a, i)`` (in the steered subspace's coordinates)."""
        return self.steering_.cell_maps

    @property
    def group_maps_(self) -> tuple[Any, ...]:
        """The label-free map of each group (in the steered subspace's coordinates)."""
        return self.steering_.group_maps

    @property
    def basis_(self) -> np.ndarray | None:
        """Orthonormal basis ``(d, rank)`` of the steered principal subspace (``None``: all of it)."""
        return self.steering_.coordinates.basis

    @property
    def center_(self) -> np.ndarray | None:
        """The training mean (the origin of the steered subspace's coordinates)."""
        return self.steering_.coordinates.center

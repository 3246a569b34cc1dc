"""steerfair: optimal distribution steering to exactly fair ("ideal") distributions.

The package is layered (docs/architecture.md): ``families`` and ``covariance`` -> ``membership`` and
``statistics`` (what a group is; mergeable per-cell moments) -> ``model`` (group/class-conditional models)
-> ``ideal`` (conditions, nearest-ideal solvers, exactness certificate) and ``maps`` (affine maps, Gaussian
OT) -> ``steering`` (the one engine: how rows move onto the ideal) -> front ends for tables (``tabular``),
representations (``representations``) and transformers (``llm``) -> ``evaluation`` and ``recipes/``.
"""

from . import privacy  # randomised / soft sensitive attributes (core deps only)
from .copula import GaussianCopula
from .covariance import CovarianceEstimator
from .families import Gaussian, LogNormal
from .ideal import (
    Certificate,
    IdealSolution,
    bayes_certificate,
    bayes_error,
    bayes_gap,
    ideality_violations,
    is_ideal,
    nearest_ideal,
    solve_nearest_ideal,
    transfer_bounds,
)
from .kl_divergence import kl
from .maps import AffineMap, bures_barycenter, gaussian_ot_map, mean_shift_map
from .membership import Membership
from .model import GroupConditionalModel
from .shared_target import SharedTarget, SharedTargetSteering, pick_strength, solve_shared_target
from .statistics import CellStatistics
from .steering import SteeringTransform, fit_steering

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # scikit-learn-dependent parts load on first use, so ``import steerfair`` needs only the core deps
    if name == "FairSteerer":
        from .tabular import FairSteerer

        return FairSteerer
    if name == "SharedScore":
        from .shared_score import SharedScore

        return SharedScore
    raise AttributeError(f"module 'steerfair' has no attribute {name!r}")


__all__ = [
    "AffineMap",
    "CellStatistics",
    "Certificate",
    "CovarianceEstimator",
    "FairSteerer",
    "Gaussian",
    "GaussianCopula",
    "GroupConditionalModel",
    "IdealSolution",
    "LogNormal",
    "Membership",
    "SharedScore",
    "SharedTarget",
    "SharedTargetSteering",
    "SteeringTransform",
    "bayes_certificate",
    "bayes_error",
    "bayes_gap",
    "bures_barycenter",
    "fit_steering",
    "gaussian_ot_map",
    "ideality_violations",
    "is_ideal",
    "kl",
    "mean_shift_map",
    "nearest_ideal",
    "pick_strength",
    "privacy",
    "solve_nearest_ideal",
    "solve_shared_target",
    "transfer_bounds",
]

"""Ideal distributions: conditions, the nearest-ideal solvers and the exactness certificate."""

from .conditions import affine_alignment, affine_ideality_violations, ideality_violations, is_ideal
from .exactness import Certificate, bayes_certificate, bayes_error, bayes_gap, transfer_bounds
from .solve import CRITERIA, IdealSolution, choose_reference, nearest_ideal, solve_nearest_ideal

__all__ = [
    "CRITERIA",
    "affine_alignment",
    "affine_ideality_violations",
    "Certificate",
    "bayes_certificate",
    "bayes_error",
    "bayes_gap",
    "transfer_bounds",
    "IdealSolution",
    "choose_reference",
    "ideality_violations",
    "is_ideal",
    "nearest_ideal",
    "solve_nearest_ideal",
]

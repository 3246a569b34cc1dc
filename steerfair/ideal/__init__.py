"""Ideal distributions: conditions, the nearest-ideal solvers and the exactness certificate."""

from .conditions import ideality_violations, is_ideal
from .solve import CRITERIA, IdealSolution, choose_reference, nearest_ideal, solve_nearest_ideal

__all__ = [
    "CRITERIA",
    "IdealSolution",
    "choose_reference",
    "ideality_violations",
    "is_ideal",
    "nearest_ideal",
    "solve_nearest_ideal",
]

"""Affine maps and the maps between Gaussian distributions."""

from .affine import AffineMap
from .gaussian_maps import bures_barycenter, gaussian_ot_map, mean_shift_map, ot_map_matrix

__all__ = ["AffineMap", "bures_barycenter", "gaussian_ot_map", "mean_shift_map", "ot_map_matrix"]

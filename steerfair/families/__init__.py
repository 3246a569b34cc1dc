"""Parametric families: multivariate normal and log-normal."""

from .gaussian import Gaussian, gaussian_kl
from .lognormal import LogNormal

__all__ = ["Gaussian", "LogNormal", "gaussian_kl"]

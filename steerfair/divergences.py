"""Deprecated alias of :mod:`steerfair.kl_divergence`."""

import warnings

from .kl_divergence import kl

warnings.warn("steerfair.divergences is deprecated; use steerfair.kl", DeprecationWarning, stacklevel=2)

__all__ = ["kl"]

"""The generation harness's method names, without torch: the command line lists and checks them before it loads a
model (:mod:`.generation_run`); :mod:`.generation_methods` builds them."""

from __future__ import annotations

__all__ = ["METHODS", "READOUT_METHODS"]

#: the method names :func:`.generation_methods.build_methods` knows
METHODS = (
    "none",
    "mean_diff",
    "leace",
    "mimic",
    "steerfair",
    "steerfair_kl",
    "steerfair_kl_erase",
    "readout",
    "mean_diff_readout",
)
#: the methods that need :func:`.generation_methods.build_methods`'s ``readout`` (the readout block and its
#: contrast directions)
READOUT_METHODS = ("readout", "mean_diff_readout")

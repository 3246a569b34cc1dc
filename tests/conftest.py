"""Test configuration: never touch the network; shared random-model builders."""

from __future__ import annotations

import os

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# CI replays a fixed set of examples (a clean clone must not turn red on a newly drawn one); local runs
# explore new examples every time. HYPOTHESIS_PROFILE=ci is set by .ci/run.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

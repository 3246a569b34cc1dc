"""Import cost: ``import steerfair`` loads the numerical core only.

torch (1.5-2 s), scipy.optimize and scipy.integrate (about 0.7 s together) and the optional stacks are imported
where they are used, so a table user's ``import steerfair`` takes about 0.6 s instead of 3 s (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: modules that ``import steerfair`` must not load (each is imported by the function that needs it)
HEAVY = ("torch", "scipy.optimize", "scipy.integrate", "sklearn", "transformers", "cvxpy", "pandas", "matplotlib")


def _loaded_after(statement: str) -> set[str]:
    code = f"import json, sys; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_steerfair_loads_no_heavy_module() -> None:
    loaded = _loaded_after("import steerfair")
    assert "steerfair" in loaded and "numpy" in loaded
    assert sorted(m for m in HEAVY if m in loaded) == []


@pytest.mark.parametrize(
    ("statement", "needed"),
    [
        # the lazily imported libraries arrive when their users run
        ("import numpy as np; from steerfair.linalg import psd_sqrt; psd_sqrt(np.eye(3))", "torch"),
        ("from steerfair.privacy import gaussian_sigma; gaussian_sigma(1.0, 1e-5)", "scipy.optimize"),
    ],
)
def test_lazy_imports_arrive_when_used(statement: str, needed: str) -> None:
    assert needed in _loaded_after(statement)


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["bios", "--help"], ["generation-bias", "--help"]])
def test_command_line_help_loads_no_torch(argv: list[str]) -> None:
    """The parser loads a text command's options only when that command is chosen, and ``bios --help`` and
    ``generation-bias --help`` stay light: their torch code is imported when they run (the harness tests run it)."""
    run = f"from steerfair.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert "torch" not in _loaded_after(f"exec({run!r})")

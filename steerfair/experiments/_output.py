"""Writing an experiment's results: ``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` in one folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_results(
    out: str | Path,
    stem: str,
    results: dict[str, Any],
    markdown: Callable[[dict[str, Any]], str],
    plot: Callable[[dict[str, Any], Path], None],
) -> None:
    """Create ``out`` and write the results as JSON, their ``markdown`` table and their ``plot`` there."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2))
    (out / f"{stem}.md").write_text(markdown(results) + "\n")
    plot(results, out / f"{stem}.png")

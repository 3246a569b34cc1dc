"""Writing an experiment's results: ``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` in one folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["write_results"]


def write_results(
    out: str | Path,
    stem: str,
    results: dict[str, Any],
    markdown: Callable[[dict[str, Any]], str],
    plot: Callable[[dict[str, Any], Path], None],
) -> None:
    """Create ``out`` and write the results as JSON, their ``markdown`` table and their ``plot`` there.

    Args:
        out: The folder (created if missing).
        stem: The file name without extension: ``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` are written.
        results: JSON-serialisable results.
        markdown: Renders the results as a markdown table.
        plot: Draws the results into the given path.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=2))
    (out / f"{stem}.md").write_text(markdown(results) + "\n")
    plot(results, out / f"{stem}.png")

"""Accuracy / RMS-gap plot of several Bios protocol runs (the ``results.json`` of ``steerfair bios``).

    python recipes/bios_summary.py results/bios/minilm results/bios/smollm2 \
        --titles "MiniLM" "SmolLM2-135M" --out docs/bios_tradeoff.png

One panel per run: every method's test accuracy against its RMS TPR gap (mean ± std over seeds), with the
noise floor, half the unsteered gap and the band of accuracy within 1 point of the unsteered classifier.
The runs and ``--out`` (a ``.png``, ``.pdf`` or ``.svg`` file) are checked before drawing; an existing image is
kept unless ``--overwrite``; the image is written atomically.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from steerfair.evaluation.arguments import parse_checked
from steerfair.evaluation.bios_report import plot_tradeoff
from steerfair.evaluation.output import check_output_file

SUFFIXES = (".png", ".pdf", ".svg")


def _read_run(run: str) -> dict[str, Any]:
    """The ``results.json`` of one run (a run folder or the file itself), checked to be a Bios protocol result."""
    path = Path(run)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise ValueError(f"{file} does not exist; run `steerfair bios ... --out {run}` first")
    try:
        results = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"{file} is not readable JSON ({exc}); pass the results.json of a steerfair bios run"
        ) from None
    if not isinstance(results, dict) or not isinstance(results.get("methods"), dict):
        raise ValueError(f"{file} holds no Bios protocol results (no 'methods'); pass what steerfair bios wrote")
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories (holding results.json) or results.json files")
    p.add_argument("--titles", nargs="*", default=None, help="one panel title per run (default: the paths)")
    p.add_argument("--out", default="results/bios_tradeoff.png", help=f"the image ({', '.join(SUFFIXES)})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out image")
    runs: dict[str, dict[str, Any]] = {}

    def check(args: argparse.Namespace) -> None:
        if args.titles and len(args.titles) != len(args.runs):
            raise ValueError(f"--titles needs one title per run ({len(args.runs)}); got {len(args.titles)}")
        if Path(args.out).suffix.lower() not in SUFFIXES:
            raise ValueError(f"--out {args.out!r} must end in {', '.join(SUFFIXES)} (the image format)")
        titles = args.titles or [str(run) for run in args.runs]
        if len(set(titles)) != len(titles):
            raise ValueError("every run needs its own title (a run is named twice); pass --titles")
        check_output_file(args.out, overwrite=args.overwrite)
        runs.update({title: _read_run(run) for title, run in zip(titles, args.runs, strict=True)})

    args = parse_checked(p, argv, check)
    print(f"wrote {plot_tradeoff(runs, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``steerfair demo`` runs the main job on an embedded default (no download).

steerfair demo                 # the default case study (see ``steerfair demo --help``)
steerfair demo --synthetic     # the paper's Gaussian case study (analytic, ~30 s)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    from .experiments import gaussian_case_study

    out = Path(args.out)
    print("steerfair demo: the paper's Gaussian case study (analytic rates; KL-nearest ideal vs baselines)")
    results = gaussian_case_study.run(out / "synthetic")
    print(gaussian_case_study.markdown(results))
    print(f"\nwrote {out / 'synthetic'}/synthetic_gaussian.{{json,md}}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="steerfair", description="Optimal distribution steering to exact fairness.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the main job on an embedded default (no download)")
    demo.add_argument("--out", default="results/demo", help="output folder (default: results/demo)")
    demo.add_argument("--synthetic", action="store_true", help="run the Gaussian case study")
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

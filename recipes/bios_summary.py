"""Accuracy / RMS-gap plot of several Bios protocol runs (the ``results.json`` of ``steerfair bios``).

    python recipes/bios_summary.py results/bios/minilm results/bios/smollm2 \
        --titles "MiniLM" "SmolLM2-135M" --out docs/bios_tradeoff.png

One panel per run: every method's test accuracy against its RMS TPR gap (mean ± std over seeds), with the
noise floor, half the unsteered gap and the band of accuracy within 1 point of the unsteered classifier.
"""

import argparse
import json
import sys
from pathlib import Path

from steerfair.evaluation.bios_report import plot_tradeoff


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories (holding results.json) or results.json files")
    p.add_argument("--titles", nargs="*", default=None, help="one panel title per run (default: the paths)")
    p.add_argument("--out", default="results/bios_tradeoff.png")
    args = p.parse_args(argv)
    if args.titles and len(args.titles) != len(args.runs):
        p.error(f"--titles needs one title per run ({len(args.runs)}); got {len(args.titles)}")
    runs = {}
    for j, run in enumerate(args.runs):
        path = Path(run)
        file = path / "results.json" if path.is_dir() else path
        if not file.exists():
            p.error(f"{file} does not exist; run `steerfair bios ... --out {run}` first")
        runs[args.titles[j] if args.titles else str(run)] = json.loads(file.read_text())
    print(f"wrote {plot_tradeoff(runs, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

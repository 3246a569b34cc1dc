"""Compare the affine-family KL of two revisions of steerfair on the same random models (issue 14).

The problem is not convex: a change of method can end in other local minima. This runs
``solve_nearest_ideal(..., family="affine")`` with the package at ``--old`` (a checkout of an earlier revision,
e.g. ``git worktree add /tmp/old c8ab7ca``) and with this checkout, on the benchmark's random models
(:func:`bench_solver.random_model`; d = 8, 32, 64, seeds 0-2, two and three groups and classes, both
interventions), and reports how often the new KL is lower, equal (to ``--rtol``) or higher, and the extremes.

    python recipes/compare_affine_revisions.py --old /tmp/old --out results/bench/affine_revisions.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from steerfair.files import atomic_write

HERE = Path(__file__).resolve().parent
WORKER = """
import json, sys
sys.path[:0] = [{root!r}, {recipes!r}]
import steerfair
assert steerfair.__file__.startswith({root!r}), steerfair.__file__
from bench_solver import random_model
from steerfair import solve_nearest_ideal
out = []
for d in {dims!r}:
    for seed in {seeds!r}:
        for shape in ((2, 2), (3, 3)):
            model = random_model(d, seed, *shape)
            for iv in ("affirmative", "all"):
                kl = solve_nearest_ideal(model, intervention=iv, family="affine").kl
                out.append({{"d": d, "seed": seed, "shape": list(shape), "intervention": iv, "kl": kl}})
print(json.dumps(out))
"""


def kls(root: Path, dims: list[int], seeds: list[int]) -> list[dict]:
    """The KLs of every model with the package found at ``root`` (run in a fresh interpreter)."""
    code = WORKER.format(root=str(root), recipes=str(HERE), dims=dims, seeds=seeds)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", type=Path, required=True, help="a checkout of the earlier revision (its root)")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--dims", type=int, nargs="+", default=[8, 32, 64])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--rtol", type=float, default=1e-9)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    if not (args.old / "steerfair" / "__init__.py").is_file():
        ap.error(f"--old {args.old}: no steerfair package there (pass the root of a checkout)")
    if args.out.exists() and not args.overwrite:
        ap.error(f"--out {args.out} exists; pass --overwrite to replace it")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    old, new = kls(args.old.resolve(), args.dims, args.seeds), kls(HERE.parent, args.dims, args.seeds)
    rows = [{**o, "kl_old": o.pop("kl"), "kl_new": n["kl"]} for o, n in zip(old, new, strict=True)]
    for r in rows:
        r["relative_change"] = (r["kl_new"] - r["kl_old"]) / r["kl_old"]
    changes = [r["relative_change"] for r in rows]
    summary = {
        "models": len(rows),
        "lower": sum(c < -args.rtol for c in changes),
        "equal": sum(abs(c) <= args.rtol for c in changes),
        "higher": sum(c > args.rtol for c in changes),
        "largest_increase": max(changes),
        "largest_decrease": min(changes),
    }
    atomic_write({args.out: json.dumps({"summary": summary, "rows": rows}, indent=2).encode()})
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

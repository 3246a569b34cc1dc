"""Compare the affine-family KL and solve time of two revisions of steerfair on the same random models (issue 14).

The problem is not convex: a change of method can end in other local minima. This runs
``solve_nearest_ideal(..., family="affine")`` with the package at ``--old`` (a checkout of an earlier revision,
e.g. ``git worktree add /tmp/old c8ab7ca``) and with this checkout, on the benchmark's random models
(:func:`bench_solver.random_model`; default d = 8, 32, 64, seeds 0-2, two and three groups and classes, both
interventions), and reports how often the new KL is lower, equal (to ``--rtol``) or higher, the extremes, and the
wall seconds of each solve (best of ``--repeats``; run it with ``OMP_NUM_THREADS=1`` on a quiet machine, the two
revisions one after the other per case, so that both see the same load).

    python recipes/compare_affine_revisions.py --old /tmp/old --out results/bench/affine_revisions.json
    OMP_NUM_THREADS=1 python recipes/compare_affine_revisions.py --old /tmp/old --dims 256 --shapes 2x2 \
        --repeats 3 --out results/bench/affine_revisions_256.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

from steerfair.evaluation.arguments import distinct, nonnegative_int, parse_checked, positive_int
from steerfair.evaluation.output import check_output_file, to_json
from steerfair.files import atomic_write

HERE = Path(__file__).resolve().parent
WORKER = """
import json, sys, time
sys.path[:0] = [{root!r}, {recipes!r}]
import steerfair
assert steerfair.__file__.startswith({root!r}), steerfair.__file__
from bench_solver import random_model
from steerfair import solve_nearest_ideal
solve_nearest_ideal(random_model(4, seed=1), family="affine")  # imports and BLAS warm-up
d, seed, shape, iv = {case!r}
model = random_model(d, seed, *shape)
best = float("inf")
for _ in range({repeats!r}):
    t = time.perf_counter()
    kl = solve_nearest_ideal(model, intervention=iv, family="affine").kl
    best = min(best, time.perf_counter() - t)
print(json.dumps({{"d": d, "seed": seed, "shape": list(shape), "intervention": iv, "kl": kl, "seconds": best}}))
"""


def solve(root: Path, case: tuple, repeats: int) -> dict:
    """One model's KL and best wall seconds with the package found at ``root`` (run in a fresh interpreter)."""
    code = WORKER.format(root=str(root), recipes=str(HERE), case=case, repeats=repeats)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _shape(text: str) -> tuple[int, int]:
    groups, _, classes = text.partition("x")
    try:
        shape = int(groups), int(classes)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write a shape as GROUPSxCLASSES, e.g. 2x2") from None
    if min(shape) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: at least two groups and two classes")
    return shape


def _check(args: argparse.Namespace) -> None:
    """The earlier checkout, repeated values and the output file, before any solve."""
    if not (args.old / "steerfair" / "__init__.py").is_file():
        raise ValueError(f"--old {args.old}: no steerfair package there (pass the root of a checkout)")
    if not math.isfinite(args.rtol) or args.rtol < 0:
        raise ValueError(f"--rtol must be a finite number >= 0; got {args.rtol}")
    for option in ("dims", "seeds", "shapes", "interventions"):
        distinct(getattr(args, option), f"--{option}")
    check_output_file(args.out, overwrite=args.overwrite)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", type=Path, required=True, help="a checkout of the earlier revision (its root)")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--dims", type=positive_int, nargs="+", default=[8, 32, 64])
    ap.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--shapes", type=_shape, nargs="+", default=[(2, 2), (3, 3)], help="GROUPSxCLASSES")
    ap.add_argument("--interventions", nargs="+", choices=["affirmative", "all"], default=["affirmative", "all"])
    ap.add_argument(
        "--repeats", type=positive_int, default=1, help="solves per model and revision (the best time is kept)"
    )
    ap.add_argument("--rtol", type=float, default=1e-9)
    ap.add_argument("--overwrite", action="store_true")
    args = parse_checked(ap, argv, _check)
    cases = [(d, s, sh, iv) for d in args.dims for s in args.seeds for sh in args.shapes for iv in args.interventions]
    rows = []
    for case in cases:  # the two revisions back to back, so that both see the same load
        o, n = solve(args.old.resolve(), case, args.repeats), solve(HERE.parent, case, args.repeats)
        kl_old, seconds_old = o.pop("kl"), o.pop("seconds")
        rows.append({**o, "kl_old": kl_old, "kl_new": n["kl"], "seconds_old": seconds_old, "seconds_new": n["seconds"]})
        print(json.dumps(rows[-1]), flush=True)
    for r in rows:
        r["relative_change"] = (r["kl_new"] - r["kl_old"]) / r["kl_old"]
        r["speedup"] = r["seconds_old"] / r["seconds_new"]
    changes = [r["relative_change"] for r in rows]
    summary = {
        "models": len(rows),
        "lower": sum(c < -args.rtol for c in changes),
        "equal": sum(abs(c) <= args.rtol for c in changes),
        "higher": sum(c > args.rtol for c in changes),
        "largest_increase": max(changes),
        "largest_decrease": min(changes),
        "median_speedup": statistics.median(r["speedup"] for r in rows),
        "smallest_speedup": min(r["speedup"] for r in rows),
    }
    atomic_write({str(args.out): to_json({"summary": summary, "rows": rows}).encode()})
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

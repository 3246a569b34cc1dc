"""Probe for issue 14: can both cores of a 2-core machine bring the all-subgroup affine solve to its speed targets?

    OMP_NUM_THREADS=1 python recipes/probe_two_cores.py --out results/bench/probe_two_cores.json

Two measurements in one run:

* **Kernels side by side.** The affine solver's work splits into independent pieces of equal size (per class: the
  template precision's ``syrk`` / Cholesky / triangular solves; per group: each group's Newton solve in a
  block-coordinate round). Two such pieces can share the cores only if the Python calls release the GIL. For each
  kernel at ``--kernel-dim`` (every BLAS pool at one thread): two calls one after the other, and two calls in two
  Python threads; the ratio is the speed-up two threads would give (about 2 when the GIL is released, 1 when not).
* **The bound.** The all-subgroup solve of ``recipes/bench_solver.py``'s model at each of ``--dims``, in fresh
  processes: at one BLAS thread and at the libraries' default thread counts (the library's BLAS pool guard on).
  Perfect use of ``c`` cores cannot beat the one-thread time divided by ``c``; the table sets that bound beside
  issue 14's targets (d = 256 under 1 s, d = 1024 under 30 s).

Writes one JSON file (atomically; ``--overwrite`` to replace) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from bench_solver import environment, run_with_timeout

from steerfair.evaluation.arguments import distinct, parse_checked, positive_float, positive_int
from steerfair.evaluation.output import check_output_file, to_json
from steerfair.files import atomic_write

#: issue 14's targets for the all-subgroup solve (seconds, on this 2-core machine)
TARGETS = {256: 1.0, 1024: 30.0}
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def kernels(d: int, seed: int = 0) -> dict[str, Callable[[], Any]]:
    """The dense kernels of the affine solver, from scipy (its f2py BLAS / LAPACK wrappers) and from numpy."""
    import scipy.linalg as sla
    from scipy.linalg import blas, lapack

    rng = np.random.default_rng(seed)
    A = rng.standard_normal((d, d))
    S = A @ A.T + d * np.eye(d)
    R = np.linalg.cholesky(S)
    B = rng.standard_normal((d, d))
    return {
        "scipy dtrsm": lambda: blas.dtrsm(1.0, R, B, lower=1),
        "scipy dsyrk": lambda: blas.dsyrk(1.0, A, trans=1, lower=1),
        "scipy dpotrf": lambda: lapack.dpotrf(S, lower=1),
        "scipy eigh": lambda: sla.eigh(S),
        "scipy solve_triangular": lambda: sla.solve_triangular(R, B, lower=True),
        "numpy matmul": lambda: A @ B,
        "numpy cholesky": lambda: np.linalg.cholesky(S),
        "numpy eigh": lambda: np.linalg.eigh(S),
        "numpy solve": lambda: np.linalg.solve(S, B),
    }


def time_kernels(d: int, repeats: int) -> list[dict[str, Any]]:
    """Per kernel: best-of-``repeats`` seconds for two calls in a row and for two calls in two threads."""
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    rows = []
    with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=2) as pool:
        for name, fn in kernels(d).items():
            fn()  # warm-up
            serial = parallel = float("inf")
            for _ in range(repeats):
                t = time.perf_counter()
                fn()
                fn()
                serial = min(serial, time.perf_counter() - t)
                t = time.perf_counter()
                for f in [pool.submit(fn), pool.submit(fn)]:
                    f.result()
                parallel = min(parallel, time.perf_counter() - t)
            rows.append(
                {"kernel": name, "d": d, "serial_s": serial, "threads_s": parallel, "speedup": serial / parallel}
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def time_solve(d: int, threads: int | None, timeout: float) -> dict[str, Any]:
    """The all-subgroup affine solve in a fresh process (``bench_solver``'s protocol) at ``threads`` BLAS threads
    (``None``: the libraries' defaults)."""
    saved = {v: os.environ.get(v) for v in THREAD_VARIABLES}
    try:
        for v in THREAD_VARIABLES:
            if threads is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = str(threads)
        wall, kl, _, cpu = run_with_timeout(d, "all", "affine", timeout)
    finally:
        for v, value in saved.items():
            if value is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = value
    return {"wall_s": wall, "cpu_s": cpu, "kl": kl}


def markdown(result: dict[str, Any]) -> str:
    cores = result["environment"]["cpus"]
    lines = [
        "| kernel | d | two calls in a row (s) | two calls in two threads (s) | speed-up |",
        "|---|---|---|---|---|",
    ]
    for r in result["kernels"]:
        lines.append(f"| {r['kernel']} | {r['d']} | {r['serial_s']:.4f} | {r['threads_s']:.4f} | {r['speedup']:.2f} |")
    lines += [
        "",
        f"| d | one thread (s) | default threads (s, wall / CPU) | one thread / {cores} (bound) | target | "
        "bound meets it |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["solves"]:
        one, dflt = r["one_thread"], r["default_threads"]
        bound = None if one["wall_s"] is None else one["wall_s"] / cores
        target = TARGETS.get(r["d"])

        def f(x: float | None) -> str:
            return "timed out" if x is None else f"{x:.3g}"

        meets = "-" if bound is None or target is None else ("yes" if bound < target else "no")
        lines.append(
            f"| {r['d']} | {f(one['wall_s'])} | {f(dflt['wall_s'])} / {f(dflt['cpu_s'])} | {f(bound)} | "
            f"{'-' if target is None else f'{target:g}'} | {meets} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", type=positive_int, nargs="+", default=[256, 1024], help="solve dimensions")
    ap.add_argument("--kernel-dim", type=positive_int, default=1024)
    ap.add_argument("--repeats", type=positive_int, default=3, help="best of this many kernel timings")
    ap.add_argument("--timeout", type=positive_float, default=300.0, help="seconds per solve process")
    ap.add_argument("--skip-solves", action="store_true", help="only the kernels")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    ap.add_argument("--out", type=Path, default=Path("results/bench/probe_two_cores.json"))

    def check(args: argparse.Namespace) -> None:
        distinct(args.dims, "--dims")
        check_output_file(args.out, overwrite=args.overwrite)

    args = parse_checked(ap, argv, check)
    load_start = list(os.getloadavg())
    result: dict[str, Any] = {"kernels": time_kernels(args.kernel_dim, args.repeats), "solves": []}
    for d in [] if args.skip_solves else args.dims:
        row = {
            "d": d,
            "one_thread": time_solve(d, 1, args.timeout),
            "default_threads": time_solve(d, None, args.timeout),
        }
        result["solves"].append(row)
        print(json.dumps(row), flush=True)
    result["environment"] = environment(load_start)
    atomic_write({str(args.out): to_json(result).encode()})
    print(markdown(result))


if __name__ == "__main__":
    main()

"""Benchmark: nearest-ideal fit time (fast path vs cvxpy reference) and Gaussian OT map time
(steerfair vs concept-erasure), in one run.

    python recipes/bench_solver.py --out results/bench_solver.json
    # the two families side by side (no cvxpy, no OT), e.g. three groups x three classes:
    python recipes/bench_solver.py --families-only --dims 256 1024 --affine-dims 256 1024 --groups 3 --classes 3 \
        --out results/bench/solver_3x3.json

For each dimension ``d`` a random ``--groups`` x ``--classes`` model (default two x two; random SPD
covariances) is solved
with the fast path (``intervention="affirmative"`` and ``"all"``), with the cvxpy reference
(each cvxpy run in a subprocess killed after ``--cvxpy-timeout`` seconds) and, for ``d`` in
``--affine-dims``, over the affine-equivalence family (``family="affine"``, killed after
``--affine-timeout`` seconds; its KL next to the isotropic one, and the time ratio affine / isotropic).
With ``--pools`` (and no ``--threads``) the affine solves run a second time with the BLAS pool guard switched off
(``STEERFAIR_KEEP_BLAS_THREADS=1``, :mod:`steerfair.blas_pools`), at the libraries' default thread counts:

    python recipes/bench_solver.py --families-only --pools --dims 128 256 512 --affine-dims 128 256 512 \
        --out results/bench/solver_pools.json
Writes JSON and prints markdown tables with the ratios.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

import numpy as np

from steerfair import Gaussian, GroupConditionalModel, solve_nearest_ideal
from steerfair.evaluation.arguments import distinct, parse_checked, positive_float, positive_int
from steerfair.evaluation.output import check_output_file, to_json
from steerfair.files import atomic_write
from steerfair.ideal import choose_reference
from steerfair.maps import ot_map_matrix


def random_model(d: int, seed: int = 0, groups: int = 2, classes: int = 2) -> GroupConditionalModel:
    """``groups`` x ``classes`` cells (default two x two, the priors of the original benchmark), standard
    normal means and covariances ``G G^T / d + 0.5 I``."""
    rng = np.random.default_rng(seed)

    def spd() -> np.ndarray:
        G = rng.standard_normal((d, d))
        return G @ G.T / d + 0.5 * np.eye(d)

    comps = tuple(tuple(Gaussian(rng.normal(size=d), spd()) for _ in range(classes)) for _ in range(groups))
    if (groups, classes) == (2, 2):
        gp, cp = np.array([0.6, 0.4]), np.array([[0.7, 0.3], [0.6, 0.4]])
    else:
        gp, cp = rng.dirichlet(np.full(groups, 5.0)), rng.dirichlet(np.full(classes, 5.0), size=groups)
    return GroupConditionalModel(np.arange(groups), np.arange(classes), gp, cp, comps)


def _timed_solve(d: int, intervention: str, solver: str, q: mp.Queue, shape: tuple[int, int] = (2, 2)) -> None:
    # warm up BLAS threads and solver imports on a tiny problem, then take the best of a few runs
    # solver "affine": the fast path over the affine-equivalence family (family="affine")
    # solver "affine_keep": the same with the BLAS pool guard off (every pool at its own size)
    if solver == "affine_keep":
        from steerfair.blas_pools import KEEP_THREADS_VARIABLE

        os.environ[KEEP_THREADS_VARIABLE] = "1"
    kw = {"family": "affine"} if solver.startswith("affine") else {"solver": solver}
    solve_nearest_ideal(random_model(4, seed=1), intervention=intervention, **kw)  # type: ignore[arg-type]
    model = random_model(d, 0, *shape)
    repeats = 3 if d <= 256 else 1
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        sol = solve_nearest_ideal(model, intervention=intervention, **kw)  # type: ignore[arg-type]
        best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - c)
    # the part both solvers run before solving: choosing the reference group (Jeffreys divergences)
    setup = min(_clock(lambda: choose_reference(model)) for _ in range(max(repeats, 3)))
    q.put((best, sol.kl, setup, best_cpu))


def environment(load_start: list[float]) -> dict[str, object]:
    """The machine and versions a timing ran on, with the load average at its start and now."""
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "loadavg_start": load_start,
        "loadavg_end": list(os.getloadavg()),
    }


def run_with_timeout(
    d: int, intervention: str, solver: str, timeout: float, shape: tuple[int, int] = (2, 2)
) -> tuple[float | None, float | None, float | None, float | None]:
    """(wall seconds, kl, shared set-up seconds, CPU seconds of the process) of one solve in a fresh
    process, or Nones past ``timeout``."""
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    p = ctx.Process(target=_timed_solve, args=(d, intervention, solver, q, shape))
    p.start()
    p.join(timeout)
    if p.is_alive():
        p.terminate()
        p.join()
        return None, None, None, None
    return q.get() if not q.empty() else (None, None, None, None)


def time_ot(d: int, repeats: int) -> tuple[float, float | None, float]:
    """Best-of-``repeats`` seconds for steerfair's and concept-erasure's OT map, and their max abs diff."""
    rng = np.random.default_rng(1)
    G1, G2 = rng.standard_normal((d, d)), rng.standard_normal((d, d))
    S1, S2 = G1 @ G1.T / d + 0.5 * np.eye(d), G2 @ G2.T / d + 0.5 * np.eye(d)
    best_sf = min(_clock(lambda: ot_map_matrix(S1, S2)) for _ in range(repeats))
    try:
        import torch
        from concept_erasure.optimal_transport import ot_map

        T1, T2 = torch.tensor(S1), torch.tensor(S2)
        best_ce = min(_clock(lambda: ot_map(T1, T2)) for _ in range(repeats))
        diff = float(np.abs(ot_map(T1, T2).numpy() - ot_map_matrix(S1, S2)).max())
    except ImportError:
        best_ce, diff = None, float("nan")
    return best_sf, best_ce, diff


def _time_ot_threads(d: int, threads: int | None) -> tuple[float, float | None, float]:
    """:func:`time_ot` in this process, with its BLAS / torch threads limited to ``threads`` if given
    (this process imported numpy before ``--threads`` was read, so the limit is applied at run time)."""
    repeats = 5 if d <= 768 else 2
    if threads is None:
        return time_ot(d, repeats)
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            return time_ot(d, repeats)
    finally:
        torch.set_num_threads(before)


def _clock(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _check(args: argparse.Namespace) -> None:
    """Argument combinations and the output file, before any work."""
    if args.pools and args.threads is not None:
        raise ValueError("--pools compares the libraries' default thread counts; leave out --threads")
    if args.groups < 2 or args.classes < 2:
        raise ValueError(f"--groups and --classes must be at least 2; got {args.groups} and {args.classes}")
    distinct(args.dims, "--dims")
    distinct(args.affine_dims, "--affine-dims")
    check_output_file(args.out, overwrite=args.overwrite)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", type=positive_int, nargs="+", default=[2, 8, 32, 128, 256, 768, 2048, 4096])
    ap.add_argument("--cvxpy-timeout", type=positive_float, default=60.0)
    ap.add_argument("--cvxpy-all-max-d", type=int, default=8, help="largest d for the (SDP) all-subgroup reference")
    ap.add_argument("--fast-timeout", type=positive_float, default=900.0)
    ap.add_argument("--skip-ot", action="store_true")
    ap.add_argument("--affine-dims", type=positive_int, nargs="*", default=[2, 8, 32, 128, 256, 1024])
    ap.add_argument("--affine-timeout", type=positive_float, default=120.0)
    ap.add_argument("--pools", action="store_true", help="also time the affine solves with the BLAS pool guard off")
    ap.add_argument("--groups", type=positive_int, default=2)
    ap.add_argument("--classes", type=positive_int, default=2)
    ap.add_argument(
        "--families-only", action="store_true", help="only the isotropic and affine families (no cvxpy, no OT)"
    )
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    ap.add_argument("--out", type=Path, default=Path("results/bench_solver.json"))
    ap.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="BLAS/OpenMP threads in the timed processes (default: the libraries' own choice). With 1, the "
        "recorded CPU seconds are a proxy for one idle core that other load on the machine barely moves",
    )
    args = parse_checked(ap, argv, _check)
    if args.threads is not None:  # inherited by the spawned processes before they import numpy / torch
        for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    if args.families_only:
        args.skip_ot, args.cvxpy_timeout, args.cvxpy_all_max_d = True, 0.0, -1
    shape = (args.groups, args.classes)
    load_start = list(os.getloadavg())  # other processes on the machine make timings noisy: recorded
    rows = []
    for d in args.dims:
        row: dict[str, object] = {"d": d, "groups": args.groups, "classes": args.classes}
        for iv in ("affirmative", "all"):
            t_fast, kl_fast, setup, cpu_fast = run_with_timeout(d, iv, "auto", args.fast_timeout, shape)
            row[f"{iv}_fast_s"], row[f"{iv}_fast_kl"], row[f"{iv}_fast_cpu_s"] = t_fast, kl_fast, cpu_fast
            limit = args.cvxpy_timeout if (iv == "affirmative" or d <= args.cvxpy_all_max_d) else 0
            t_ref, kl_ref, _, cpu_ref = run_with_timeout(d, iv, "cvxpy", limit, shape) if limit else (None,) * 4
            row[f"{iv}_cvxpy_s"], row[f"{iv}_cvxpy_kl"], row[f"{iv}_cvxpy_cpu_s"] = t_ref, kl_ref, cpu_ref
            row[f"{iv}_speedup"] = (t_ref / t_fast) if (t_ref and t_fast) else None
            # the reference ran and was stopped at the limit: the speed-up is at least limit / fast
            timed_out = bool(limit) and t_ref is None
            row[f"{iv}_cvxpy_timeout_s"] = limit if timed_out else None
            row[f"{iv}_speedup_at_least"] = (limit / t_fast) if (timed_out and t_fast) else None
            if iv == "affirmative":
                # both solvers first choose the reference group; cvxpy / that time bounds the speed-up
                row["shared_setup_s"] = setup
                row["affirmative_speedup_bound"] = (t_ref / setup) if (t_ref and setup) else None
            row[f"{iv}_kl_diff"] = abs(kl_ref - kl_fast) if (kl_ref is not None and kl_fast is not None) else None
            if d in args.affine_dims:
                t_aff, kl_aff, _, cpu_aff = run_with_timeout(d, iv, "affine", args.affine_timeout, shape)
                row[f"{iv}_affine_s"], row[f"{iv}_affine_kl"], row[f"{iv}_affine_cpu_s"] = t_aff, kl_aff, cpu_aff
                row[f"{iv}_affine_timeout_s"] = args.affine_timeout if t_aff is None else None
                row[f"{iv}_affine_over_isotropic"] = (t_aff / t_fast) if (t_aff and t_fast) else None
                if args.pools:
                    t_keep, kl_keep, _, cpu_keep = run_with_timeout(d, iv, "affine_keep", args.affine_timeout, shape)
                    row[f"{iv}_keep_s"], row[f"{iv}_keep_kl"], row[f"{iv}_keep_cpu_s"] = t_keep, kl_keep, cpu_keep
                    row[f"{iv}_keep_over_guard"] = (t_keep / t_aff) if (t_keep and t_aff) else None
        sf, ce, diff = (None, None, float("nan")) if args.skip_ot else _time_ot_threads(d, args.threads)
        row.update(
            {
                "ot_steerfair_s": sf,
                "ot_concept_erasure_s": ce,
                "ot_ratio": (sf / ce) if ce else None,
                "ot_max_abs_diff": diff,
            }
        )
        rows.append(row)
        print(json.dumps(row), flush=True)
    env = {**environment(load_start), "threads": args.threads}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write({str(args.out): to_json({"environment": env, "rows": rows}).encode()})  # strict: NaN as null
    if not args.families_only:
        print(markdown(rows))
    if any(f"{iv}_affine_s" in r for r in rows for iv in ("affirmative", "all")):
        print(markdown_families(rows))
    if args.pools:
        print(markdown_pools(rows))


def markdown_pools(rows: list[dict]) -> str:
    """The affine solves with the BLAS pool guard on (the default) and off: wall / CPU seconds and the ratio."""
    out = [
        "| d | groups x classes | intervention | guard on (s, wall / CPU) | guard off (s, wall / CPU) "
        "| off / on (wall) | KL on - off |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for iv in ("affirmative", "all"):
            if f"{iv}_keep_s" not in r:
                continue
            kl_a, kl_k = r.get(f"{iv}_affine_kl"), r.get(f"{iv}_keep_kl")
            diff = f"{kl_a - kl_k:.1e}" if (kl_a is not None and kl_k is not None) else "—"
            out.append(
                f"| {r['d']} | {r['groups']} x {r['classes']} | {iv} | {_fmt(r.get(f'{iv}_affine_s'))} / "
                f"{_fmt(r.get(f'{iv}_affine_cpu_s'))} | {_fmt(r.get(f'{iv}_keep_s'))} / "
                f"{_fmt(r.get(f'{iv}_keep_cpu_s'))} | {_fmt(r.get(f'{iv}_keep_over_guard'), '.1f')}x | {diff} |"
            )
    return "\n".join(out)


def markdown_families(rows: list[dict]) -> str:
    """The isotropic and affine families side by side: wall and CPU seconds, the ratio, and the KL of each."""
    head = (
        "| d | groups x classes | intervention | isotropic (s, wall / CPU) | affine (s, wall / CPU) "
        "| affine / isotropic (wall) | KL isotropic | KL affine |"
    )
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        for iv in ("affirmative", "all"):
            if f"{iv}_affine_s" not in r:
                continue
            if r.get(f"{iv}_affine_timeout_s"):
                t_aff, ratio = f"> {r[f'{iv}_affine_timeout_s']:g} (timeout)", "—"
            else:
                t_aff = f"{_fmt(r[f'{iv}_affine_s'])} / {_fmt(r.get(f'{iv}_affine_cpu_s'))}"
                ratio = f"{_fmt(r.get(f'{iv}_affine_over_isotropic'), '.0f')}x"
            t_iso = f"{_fmt(r[f'{iv}_fast_s'])} / {_fmt(r.get(f'{iv}_fast_cpu_s'))}"
            lines.append(
                f"| {r['d']} | {r['groups']} x {r['classes']} | {iv} | {t_iso} | {t_aff} | {ratio} | "
                f"{_fmt(r[f'{iv}_fast_kl'], '.6g')} | {_fmt(r[f'{iv}_affine_kl'], '.6g')} |"
            )
    return "\n".join(lines)


def _fmt(x: object, spec: str = ".3g") -> str:
    return "—" if x is None else format(x, spec)


def _ref(r: dict, iv: str) -> tuple[str, str]:
    """The cvxpy time and the speed-up, or their bounds when the reference hit the time limit."""
    limit = r.get(f"{iv}_cvxpy_timeout_s")
    if limit:
        return f"> {limit:g} (timeout)", f"> {r[f'{iv}_speedup_at_least']:.0f}x"
    return _fmt(r[f"{iv}_cvxpy_s"]), f"{_fmt(r[f'{iv}_speedup'], '.0f')}x"


def markdown(rows: list[dict]) -> str:
    """The results as a markdown table."""
    head = (
        "| d | affirmative fast (s) | affirmative cvxpy (s) | speed-up | shared set-up (s) | bound "
        "| all fast (s) | all cvxpy (s) | speed-up | OT steerfair (s) | OT concept-erasure (s) | ratio |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        (aff_ref, aff_up), (all_ref, all_up) = _ref(r, "affirmative"), _ref(r, "all")
        lines.append(
            f"| {r['d']} | {_fmt(r['affirmative_fast_s'])} | {aff_ref} | {aff_up} | {_fmt(r.get('shared_setup_s'))} | "
            f"{_fmt(r.get('affirmative_speedup_bound'), '.0f')}x | {_fmt(r['all_fast_s'])} | {all_ref} | {all_up} | "
            f"{_fmt(r['ot_steerfair_s'])} | {_fmt(r['ot_concept_erasure_s'])} | {_fmt(r['ot_ratio'], '.2f')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()

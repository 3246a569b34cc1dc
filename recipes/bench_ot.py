"""Benchmark: the Gaussian OT matrix (``A`` symmetric, ``A S1 A = S2``) of steerfair against concept-erasure and POT,
for speed and for accuracy in badly scaled coordinates, in one run.

    OMP_NUM_THREADS=1 python recipes/bench_ot.py --out results/bench/ot

* Speed: best-of-``--repeats`` seconds of ``steerfair.maps.ot_map_matrix`` and
  ``concept_erasure.optimal_transport.ot_map`` on the matrices of ``recipes/bench_solver.py`` (one BLAS / torch
  thread), with their ratio and largest difference.
* Accuracy: random covariances ``D C D`` whose standard deviations ``D`` span ``2 x decades`` orders of magnitude
  (``C`` a random correlation-like matrix), ``--pairs`` pairs per setting; the error of ``A S1 A`` against ``S2`` in
  correlation units (``|.|_ij / sqrt(S2_ii S2_jj)``, free of units), for steerfair, the symmetric-square-root formula
  ``S1^-1/2 (S1^1/2 S2 S1^1/2)^1/2 S1^-1/2`` it used before (in float64), concept-erasure and POT
  (``ot.gaussian.bures_wasserstein_mapping``).

Writes ``bench_ot.{json,md,png}`` (atomically; ``--overwrite`` to replace).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from steerfair.evaluation.arguments import distinct, nonnegative_int, parse_checked, positive_int
from steerfair.evaluation.output import check_output, result_names, write_results
from steerfair.linalg import psd_sqrt, psd_sqrt_and_rsqrt
from steerfair.maps import ot_map_matrix
from steerfair.validation import symmetrize

Method = Callable[[np.ndarray, np.ndarray], np.ndarray]


def symmetric_formula(S1: np.ndarray, S2: np.ndarray) -> np.ndarray:
    """The symmetric-square-root formula (steerfair's before this benchmark was written)."""
    r, rinv = psd_sqrt_and_rsqrt(S1)
    return symmetrize(rinv @ psd_sqrt(r @ S2 @ r) @ rinv)


def methods() -> dict[str, Method]:
    """The OT matrices compared: steerfair, the previous formula, and the libraries that are installed."""
    out: dict[str, Method] = {"steerfair": ot_map_matrix, "symmetric formula (previous)": symmetric_formula}
    try:
        import torch
        from concept_erasure.optimal_transport import ot_map

        out["concept-erasure"] = lambda S1, S2: ot_map(torch.tensor(S1), torch.tensor(S2)).numpy()
    except ImportError:
        pass
    try:
        from ot.gaussian import bures_wasserstein_mapping

        out["POT"] = lambda S1, S2: np.asarray(
            bures_wasserstein_mapping(np.zeros(len(S1)), np.zeros(len(S1)), S1, S2)[0]
        )
    except ImportError:
        pass
    return out


def correlation_error(A: np.ndarray, S1: np.ndarray, S2: np.ndarray) -> float:
    """``max |A S1 A - S2|_ij / sqrt(S2_ii S2_jj)``: how far the pushed covariance is from the target, in units of
    the target's own standard deviations."""
    sd = np.sqrt(np.diag(S2))
    value = float(np.max(np.abs(A @ S1 @ A - S2) / np.outer(sd, sd)))
    return value if np.isfinite(value) else float("inf")


def scaled_pair(rng: np.random.Generator, d: int, decades: float) -> tuple[np.ndarray, np.ndarray]:
    scale = 10.0 ** rng.uniform(-decades, decades, size=d)
    pair = []
    for _ in range(2):
        G = rng.standard_normal((d, d))
        C = G @ G.T / d + 0.3 * np.eye(d)
        pair.append(scale[:, None] * C * scale[None, :])
    return pair[0], pair[1]


def accuracy(d: int, decades: list[float], pairs: int, seed: int) -> list[dict[str, Any]]:
    rows = []
    for dec in decades:
        rng = np.random.default_rng(seed)
        cases = [scaled_pair(rng, d, dec) for _ in range(pairs)]
        row: dict[str, Any] = {"d": d, "decades": dec, "pairs": pairs}
        for name, method in methods().items():
            errors = [correlation_error(method(S1, S2), S1, S2) for S1, S2 in cases]
            row[name] = {"median": float(np.median(errors)), "max": float(np.max(errors))}
        rows.append(row)
    return rows


def speed(dims: list[int], repeats: int) -> list[dict[str, Any]]:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    rows = []
    with threadpool_limits(limits=1):
        for d in dims:
            rng = np.random.default_rng(1)  # the matrices of recipes/bench_solver.py's time_ot
            G1, G2 = rng.standard_normal((d, d)), rng.standard_normal((d, d))
            S1, S2 = G1 @ G1.T / d + 0.5 * np.eye(d), G2 @ G2.T / d + 0.5 * np.eye(d)
            row: dict[str, Any] = {"d": d}
            results = {}
            for name, method in methods().items():
                method(S1, S2)  # warm-up
                times = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    results[name] = method(S1, S2)
                    times.append(time.perf_counter() - t)
                row[f"{name} s"] = min(times)
            if "concept-erasure" in results:
                row["ratio steerfair / concept-erasure"] = row["steerfair s"] / row["concept-erasure s"]
                row["max abs diff"] = float(np.abs(results["steerfair"] - results["concept-erasure"]).max())
            rows.append(row)
    return rows


def markdown(res: dict[str, Any]) -> str:
    names = [n for n in res["accuracy"][0] if n not in ("d", "decades", "pairs")]
    lines = [
        f"Accuracy: max |A S1 A - S2| in correlation units over {res['accuracy'][0]['pairs']} random pairs "
        f"(d = {res['accuracy'][0]['d']}), standard deviations spanning 10^-k .. 10^k (median / largest)",
        "",
        "| k | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for row in res["accuracy"]:
        cells = [f"{row[n]['median']:.1e} / {row[n]['max']:.1e}" for n in names]
        lines.append(f"| {row['decades']:g} | " + " | ".join(cells) + " |")
    timed = [k for k in res["speed"][0] if k.endswith(" s")]
    lines += [
        "",
        "Speed: best of the repeats, seconds, one thread",
        "",
        "| d | " + " | ".join(timed) + " | steerfair / concept-erasure | max abs diff |",
        "|---|" + "---|" * (len(timed) + 2),
    ]
    for row in res["speed"]:
        ratio = row.get("ratio steerfair / concept-erasure")
        diff = row.get("max abs diff")
        lines.append(
            f"| {row['d']} | " + " | ".join(f"{row[k]:.4g}" for k in timed)
            + f" | {'-' if ratio is None else f'{ratio:.2f}'} | {'-' if diff is None else f'{diff:.1e}'} |"
        )  # fmt: skip
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    names = [n for n in res["accuracy"][0] if n not in ("d", "decades", "pairs")]
    x = [row["decades"] for row in res["accuracy"]]
    for name in names:
        ax.plot(x, [max(row[name]["max"], 1e-17) for row in res["accuracy"]], marker="o", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("k: standard deviations span 10^-k .. 10^k")
    ax.set_ylabel("largest |A S1 A - S2| (correlation units)")
    ax.set_title(f"Gaussian OT matrix in badly scaled coordinates (d = {res['accuracy'][0]['d']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dims", type=positive_int, nargs="+", default=[128, 256, 768], help="sizes timed")
    ap.add_argument("--repeats", type=positive_int, default=7, help="timed calls per size (the best is kept)")
    ap.add_argument("--accuracy-d", type=positive_int, default=6, help="the size of the accuracy pairs")
    ap.add_argument("--decades", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0, 4.0])
    ap.add_argument("--pairs", type=positive_int, default=50, help="random pairs per accuracy setting")
    ap.add_argument("--seed", type=nonnegative_int, default=0)
    ap.add_argument("--out", type=Path, default=Path("results/bench/ot"))
    ap.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")

    def check(args: argparse.Namespace) -> None:
        if any(not 0 <= k <= 8 for k in args.decades):
            raise ValueError(f"--decades must lie in [0, 8]; got {args.decades}")
        distinct(args.dims, "--dims")
        distinct(args.decades, "--decades")
        check_output(args.out, result_names("bench_ot"), overwrite=args.overwrite)

    args = parse_checked(ap, argv, check)
    t0 = time.perf_counter()
    res = {
        "accuracy": accuracy(args.accuracy_d, list(args.decades), args.pairs, args.seed),
        "speed": speed(list(args.dims), args.repeats),
    }
    res["seconds"] = time.perf_counter() - t0
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    write_results(args.out, "bench_ot", res, markdown, plot, overwrite=args.overwrite, config=config)
    print(markdown(res))
    print(f"\nwrote {args.out}/bench_ot.{{json,md,png}} in {res['seconds']:.0f} s")


if __name__ == "__main__":
    main()

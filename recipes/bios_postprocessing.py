"""Bios / BUG: how much of the per-occupation TPR gap group-aware post-processing of the classifier's output can
remove at each accuracy, beside the protocol's unsteered classifier and the representation methods, in one run.

    OMP_NUM_THREADS=1 python recipes/bios_postprocessing.py --out results/bios_postprocessing

The issue's Bios acceptance asks a representation method to cut the noise-corrected (excess) RMS TPR gap by 60 %
within 1 point of accuracy. This recipe measures what the strongest decision-level alternative reaches with the same
protocol (splits, gender probe, noise floor and excess RMS of :mod:`steerfair.evaluation.bios_protocol`): a
group-aware occupation classifier (the protocol's softmax regression on the features and the gender's indicator,
cross-fitted in 5 folds so that its held-out probabilities are the law new rows have), post-processed per gender
within a per-occupation TPR budget on the held-out training predictions, by two rules of
:mod:`steerfair.evaluation.label_postprocessing`: class weights on its probabilities
(:func:`~steerfair.evaluation.label_postprocessing.equal_tpr_class_weights`, ``--weight-budgets``, from the plug-in
dual and corrected on the empirical rates; the form of the most accurate such classifier), and the most accurate
relabelling of its predicted occupation (:func:`~steerfair.evaluation.label_postprocessing.equal_tpr_kernels`,
``--budgets``). The class weights also run on the protocol's own classifier (group-blind, fitted on every training
row; the weights fitted on its cross-fitted probabilities), which starts from the unsteered row itself. All read the
gender at prediction (gold, and the protocol probe's prediction) and act on the final
decision, so they trace the accuracy / gap frontier of this score. Beside them, the equalized-odds common garbling
of the confusion laws (``solve_common_garbling``: equal confusion laws per gender, the many-class analogue of
:class:`steerfair.SharedScore`), the protocol's unsteered classifier (``none``, the reference of the cut), and, in
the same run, the representation methods this is judged against, through the protocol itself
(:func:`~steerfair.evaluation.bios_protocol.run_protocol` on the same splits): MiMiC and steerfair's ideal
templates (``--methods``).

Writes ``bios_postprocessing.json`` (every seed, and means over seeds) and ``bios_postprocessing.md`` under
``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from steerfair.categorical_garbling import solve_common_garbling
from steerfair.datasets.bios import stratified_split
from steerfair.evaluation.arguments import distinct, nonnegative_int, parse_checked, positive_int
from steerfair.evaluation.bios_classifier import SoftmaxRegression
from steerfair.evaluation.bios_protocol import ProtocolConfig, _evaluate, _gender_probe, run_protocol
from steerfair.evaluation.bios_run import check_bug_cap, check_model_layer, encoded_features
from steerfair.evaluation.label_postprocessing import (
    apply_label_kernels,
    confusion_laws,
    equal_tpr_class_weights,
    equal_tpr_kernels,
    expected_rates,
)
from steerfair.evaluation.output import check_output, run_record, to_json
from steerfair.files import atomic_write
from steerfair.metrics import group_share_per_class

BUDGETS = (None, 0.3, 0.2, 0.15, 0.1, 0.07, 0.05, 0.02, 0.0)
#: the per-class TPR budgets of the class-weight rule (``--weight-budgets``)
WEIGHT_BUDGETS = (0.2, 0.15, 0.1, 0.07, 0.05, 0.03, 0.0)
#: the name prefix of the class weights on the protocol's own classifier (group-blind, fitted on all training rows),
#: fitted on the cross-fitted probabilities of the same model on the training rows: the weights read the gender, the
#: score does not
ON_PROTOCOL_CLASSIFIER = "class weights on the protocol's classifier "
#: the per-seed entry of the model-implied frontier: the class weights fitted on the test rows' probabilities (no label
#: read) and scored by those probabilities (:func:`~steerfair.evaluation.label_postprocessing.expected_rates`), the
#: rates the rule would have if the score were calibrated
MODEL_IMPLIED = "model-implied"
KEYS = ("accuracy", "rms_tpr_gap", "excess_rms_tpr_gap", "noise_floor_rms")
#: the protocol's representation methods run beside the relabelling rules, and their rows' names
PROTOCOL_METHODS = {"mimic": "MiMiC (representation)", "steerfair": "steerfair, ideal templates (representation)"}


def _with_gender(X: np.ndarray, gi: np.ndarray) -> np.ndarray:
    return np.column_stack([X, gi.astype(np.float64)])


def run_seed(
    X: np.ndarray, y: np.ndarray, g: np.ndarray, seed: int, budgets: list, cfg: ProtocolConfig,
    weight_budgets: tuple = (),
) -> dict:  # fmt: skip
    """Every rule's test metrics (gold and predicted gender) on one split of the protocol: relabelling at ``budgets``,
    class weights at ``weight_budgets``."""
    tr, _, te = stratified_split(y, g, cfg.fractions, seed=seed)
    classes = np.unique(y)
    yi, gi = np.searchsorted(classes, y), (g == cfg.group_b).astype(np.int64)
    share = group_share_per_class(y[tr], g[tr], cfg.group_a)
    predicted_gender = _gender_probe(X[tr], g[tr]).predict(X[te])
    gates = {"gold": gi[te], "predicted": (np.asarray(predicted_gender) == cfg.group_b).astype(np.int64)}
    out: dict[str, Any] = {"seed": seed, "gender_probe_accuracy": float(np.mean(predicted_gender == g[te]))}

    def record(name: str, labels: dict[str, np.ndarray]) -> None:
        out[name] = {which: {k: _evaluate(y[te], classes[lab], g[te], share, cfg)[k] for k in KEYS}
                     for which, lab in labels.items()}  # fmt: skip

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = SoftmaxRegression(C=cfg.C, max_iter=cfg.max_iter).fit(X[tr], yi[tr])
        base = np.asarray(raw.predict(X[te])).astype(np.int64)
        record("none", {"gold": base, "predicted": base})
        Z = _with_gender(X[tr], gi[tr])
        oof_proba, models = np.empty((tr.size, classes.size)), []
        oof_blind = np.empty((tr.size, classes.size))  # the protocol's classifier's law on held-out rows
        folds = list(StratifiedKFold(5, shuffle=True, random_state=seed).split(Z, yi[tr] * 2 + gi[tr]))
        for fit_rows, held in folds:
            model = SoftmaxRegression(C=cfg.C, max_iter=cfg.max_iter).fit(Z[fit_rows], yi[tr][fit_rows])
            oof_proba[held] = model.predict_proba(Z[held])
            models.append(model)
        if weight_budgets:
            for fit_rows, held in folds:
                blind = SoftmaxRegression(C=cfg.C, max_iter=cfg.max_iter).fit(X[tr][fit_rows], yi[tr][fit_rows])
                oof_blind[held] = blind.predict_proba(X[tr][held])
    oof = np.argmax(oof_proba, axis=1)  # the model's prediction: its most probable class
    rng = np.random.default_rng(seed)
    laws, counts = confusion_laws(yi[tr], oof, gi[tr], classes.size, 2)
    test_proba = {}
    for which, gate in gates.items():  # a test row is scored by a fold model drawn at random (the held-out law)
        which_fold = rng.integers(len(models), size=te.size)
        proba = np.empty((te.size, classes.size))
        for f, model in enumerate(models):
            rows = which_fold == f
            proba[rows] = model.predict_proba(_with_gender(X[te][rows], gate[rows]))
        test_proba[which] = proba
    test_pred = {w: np.argmax(p, axis=1) for w, p in test_proba.items()}
    record("group-aware score", test_pred)
    for budget in budgets:
        kernels, _ = equal_tpr_kernels(laws, counts, budget)
        name = "equal TPR, no budget" if budget is None else f"equal TPR, budget {budget:g}"
        record(name, {w: apply_label_kernels(test_pred[w], gates[w], kernels, rng) for w in gates})
    prior = np.bincount(yi[tr], minlength=classes.size) / tr.size
    common = solve_common_garbling(laws, prior)
    decide = np.argmax(prior[:, None] * common.target, axis=0)  # the Bayes decision on the common outcome
    record("equalized odds (common garbling)",
           {w: decide[apply_label_kernels(test_pred[w], gates[w], common.kernels, rng)] for w in gates})  # fmt: skip
    for labels, kind in ((None, "plug-in"), (yi[tr], "corrected")):  # per-gender class weights on the probabilities
        for budget in weight_budgets:
            rule = equal_tpr_class_weights(oof_proba, gi[tr], budget, y=labels)
            record(
                f"class weights ({kind}), budget {budget:g}", {w: rule.predict(test_proba[w], gates[w]) for w in gates}
            )
    raw_proba = raw.predict_proba(X[te]) if weight_budgets else None
    for labels, kind in ((None, "plug-in"), (yi[tr], "corrected")):  # the same on the protocol's own classifier
        for budget in weight_budgets:
            rule = equal_tpr_class_weights(oof_blind, gi[tr], budget, y=labels)
            record(f"{ON_PROTOCOL_CLASSIFIER}({kind}), budget {budget:g}",
                   {w: rule.predict(raw_proba, gates[w]) for w in gates})  # fmt: skip
    out[MODEL_IMPLIED] = model_implied(test_proba["gold"], gates["gold"], weight_budgets, classes, cfg)
    return out


def _rms_gap(tpr: np.ndarray, classes: np.ndarray, cfg: ProtocolConfig) -> float:
    keep = ~np.isin(classes, list(cfg.exclude)) & np.all(np.isfinite(tpr), axis=0)
    return float(np.sqrt(np.mean((tpr[0, keep] - tpr[1, keep]) ** 2)))


def model_implied(
    proba: np.ndarray, gate: np.ndarray, budgets: tuple, classes: np.ndarray, cfg: ProtocolConfig
) -> dict:
    """The class weights' frontier as the score itself predicts it, on the test rows with the gold gender: the
    randomised rule fitted on those rows' probabilities (no label read) at each budget, its expected accuracy and RMS
    TPR gap under the same probabilities, and the argmax's (the reference of its change and cut). Were the score
    calibrated, this is what the most accurate rule with these TPR budgets reaches; the measured rows show how much
    of it the score's calibration keeps."""
    acc, tpr = expected_rates(proba, np.argmax(proba, axis=1), gate)
    out = {"argmax": {"accuracy": acc, "rms_tpr_gap": _rms_gap(tpr, classes, cfg)}}
    for budget in budgets:
        rule = equal_tpr_class_weights(proba, gate, budget)
        acc, tpr = expected_rates(proba, rule.decision_proba(proba, gate), gate)
        out[f"budget {budget:g}"] = {"accuracy": acc, "rms_tpr_gap": _rms_gap(tpr, classes, cfg)}
    return out


def markdown(
    summary: dict[str, dict[str, dict[str, float]]], command: str, implied: dict[str, dict[str, float]] | None = None
) -> str:
    """The rules' table (accuracy and excess RMS gap, with their change and cut against ``none``) and, given
    ``implied``, the model-implied frontier's (:func:`model_implied`, means over seeds)."""
    raw = summary["none"]
    lines = [
        f"`{command}`",
        "",
        "| rule | accuracy (gold) | excess RMS, gold (cut) | accuracy (pred. gender) "
        "| excess RMS, pred. gender (cut) |",
        "|---|---|---|---|---|",
    ]
    for name, row in summary.items():
        cells = []
        for which in ("gold", "predicted"):
            r, base = row[which], raw[which]["excess_rms_tpr_gap"]
            cut = 1.0 - r["excess_rms_tpr_gap"] / base if base > 0 else float("nan")
            dacc = 100 * (r["accuracy"] - raw[which]["accuracy"])
            cells += [f"{r['accuracy']:.4f} ({dacc:+.1f} pt)", f"{r['excess_rms_tpr_gap']:.3f} ({100 * cut:.0f} %)"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if implied and len(implied) > 1:  # the argmax and at least one budget
        ref, measured = implied["argmax"], summary["group-aware score"]["gold"]["accuracy"]
        lines += [
            "",
            "Model-implied frontier (gold gender; class weights fitted on the test rows' probabilities without their "
            "labels, scored by those probabilities; change and cut against the score's argmax, whose expected "
            f"accuracy is {ref['accuracy']:.4f} and measured accuracy {measured:.4f}):",
            "",
            "| budget | expected accuracy (change) | expected RMS TPR gap (cut) |",
            "|---|---|---|",
        ]
        for name, r in implied.items():
            if name != "argmax":
                cut = 1.0 - r["rms_tpr_gap"] / ref["rms_tpr_gap"]
                change = 100 * (r["accuracy"] - ref["accuracy"])
                lines.append(f"| {name[len('budget '):]} | {r['accuracy']:.4f} ({change:+.1f} pt) "
                             f"| {r['rms_tpr_gap']:.3f} ({100 * cut:.0f} %) |")  # fmt: skip
    return "\n".join(lines) + "\n"


#: the frontier plot's families of rows: (name prefix, label, style)
FAMILIES = (
    ("class weights (plug-in), budget ", "class weights, plug-in", "o-"),
    ("class weights (corrected), budget ", "class weights, corrected", "s-"),
    ("equal TPR, budget ", "relabelling the predicted occupation", "^--"),
    (ON_PROTOCOL_CLASSIFIER + "(plug-in), budget ", "class weights on the protocol's classifier, plug-in", "v-"),
    (ON_PROTOCOL_CLASSIFIER + "(corrected), budget ", "class weights on the protocol's classifier, corrected", ">-"),
)


def frontier_png(
    summary: dict[str, dict[str, dict[str, float]]], title: str, implied: dict[str, dict[str, float]] | None = None
) -> bytes:
    """The accuracy / gap frontier (PNG bytes): every rule's cut of the excess RMS gap against its accuracy change,
    gold and predicted gender side by side; each post-processing family joined in budget order, the representation
    methods and the group-aware score as points, the acceptance's corner (a 60 % cut within 1 point) shaded; given
    ``implied``, the model-implied frontier on the gold panel, drawn from the group-aware score's measured point (its
    expected changes of accuracy and gap against the score's argmax applied to the score's measured ones)."""
    import io

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 5.2), sharey=True)
    raw = summary["none"]
    for ax, which in zip(axes, ("gold", "predicted"), strict=True):

        def point(row: dict[str, dict[str, float]], which: str = which) -> tuple[float, float]:
            r, base = row[which], raw[which]
            cut = 1.0 - r["excess_rms_tpr_gap"] / base["excess_rms_tpr_gap"]
            return 100 * (r["accuracy"] - base["accuracy"]), 100 * cut

        ax.axvspan(-1.0, 1.0, ymin=0, ymax=1, color="0.92", zorder=0)
        ax.axhline(60, color="0.3", ls=":", lw=1)
        ax.fill_between([-1.0, 1.0], 60, 100, color="C2", alpha=0.12, zorder=0, label="60 % cut within 1 point")
        for (prefix, label, style), color in zip(FAMILIES, ("C0", "C1", "C2", "C9", "C6"), strict=False):
            rows = sorted((float(n[len(prefix) :]), n) for n in summary if n.startswith(prefix))
            if rows:
                xs, ys = zip(*(point(summary[n]) for _, n in rows), strict=True)
                ax.plot(xs, ys, style, ms=4, lw=1.2, label=label, color=color)
        for name, marker, color in (("MiMiC (representation)", "D", "C3"),
                                    ("steerfair, ideal templates (representation)", "*", "C4"),
                                    ("group-aware score", "x", "0.4")):  # fmt: skip
            if name in summary:
                x, y = point(summary[name])
                ax.plot([x], [y], marker, color=color, ms=9 if marker == "*" else 6, ls="none", label=name)
        drawable = bool(implied) and len(implied) > 1 and "group-aware score" in summary
        if drawable and which == "gold":  # drawn from the score's measured point
            ref, score = implied["argmax"], summary["group-aware score"][which]
            x0, y0 = point(summary["group-aware score"])
            pts = sorted((float(n[len("budget ") :]), r) for n, r in implied.items() if n != "argmax")
            left = score["excess_rms_tpr_gap"] / raw[which]["excess_rms_tpr_gap"]  # the score's gap, of none's
            xs = [x0] + [x0 + 100 * (r["accuracy"] - ref["accuracy"]) for _, r in pts[::-1]]
            ys = [y0] + [100 * (1.0 - left * r["rms_tpr_gap"] / ref["rms_tpr_gap"]) for _, r in pts[::-1]]
            label = "class weights, model-implied (were the score calibrated)"
            ax.plot(xs, ys, "--", color="0.45", lw=1.2, label=label)
        ax.set_xlim(-8.0, 1.0)
        ax.set_ylim(-35, 100)
        ax.set_xlabel("accuracy change (points)")
        ax.set_title(f"{title}: {which} gender at test time", fontsize=10)
    axes[0].set_ylabel("cut of the excess RMS TPR gap (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/bios_postprocessing")
    parser.add_argument("--model", default="minilm")
    parser.add_argument(
        "--max-per-class", type=nonnegative_int, default=None, help="the protocol's cap (0: every sentence)"
    )
    parser.add_argument("--max-length", type=positive_int, default=None, help="tokens per sentence (default: 128)")
    parser.add_argument(
        "--seeds", type=positive_int, default=5, help="number of splits (seeds 0..N-1, as the protocol)"
    )
    parser.add_argument("--methods", nargs="*", default=list(PROTOCOL_METHODS), choices=list(PROTOCOL_METHODS),
                        help="the protocol's representation methods to run beside (default: all)")  # fmt: skip
    parser.add_argument("--budgets", type=float, nargs="+", default=None,
                        help="per-class TPR budgets (default: none and 0.3 down to 0)")  # fmt: skip
    parser.add_argument("--weight-budgets", type=float, nargs="*", default=None,
                        help="TPR budgets of the class weights (default: 0.2 down to 0; none: skip)")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    parser.add_argument("--replot", action="store_true",
                        help="only draw bios_postprocessing.png again from the results already in --out")  # fmt: skip
    files = ["bios_postprocessing.json", "bios_postprocessing.md", "bios_postprocessing.png"]
    saved: dict[str, Any] = {}

    def check(args: argparse.Namespace) -> None:  # before any work
        for option in ("budgets", "weight_budgets"):
            values = getattr(args, option)
            name = f"--{option.replace('_', '-')}"
            if values is not None and any(not 0 <= b < math.inf for b in values):
                raise ValueError(f"{name} must be finite and non-negative; got {values}")
            distinct(values, name)
        distinct(args.methods, "--methods")
        if args.replot:
            path = Path(args.out) / files[0]
            if not path.is_file():
                raise ValueError(f"--replot needs {path} (run the recipe with this --out first)")
            try:
                saved["report"] = json.loads(path.read_text())
                saved["report"]["summary"], saved["report"]["run"]  # noqa: B018  (what the plot reads)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"--replot: {path} is not this recipe's results ({exc!r}); run it again") from None
            check_output(Path(args.out), files[2:], overwrite=args.overwrite)
            return
        if args.max_per_class is not None:
            check_bug_cap(args.max_per_class)
        check_model_layer(args.model, None)
        check_output(Path(args.out), files, overwrite=args.overwrite)

    args = parse_checked(parser, argv, check)
    budgets = list(BUDGETS) if args.budgets is None else list(args.budgets)
    weight_budgets = WEIGHT_BUDGETS if args.weight_budgets is None else tuple(args.weight_budgets)
    if args.replot:
        report = saved["report"]
        atomic_write(
            {
                str(Path(args.out) / files[2]): frontier_png(
                    report["summary"], _title(report["run"]), report.get("model_implied")
                )
            }
        )
        print(f"wrote {Path(args.out) / files[2]}")
        return
    out = Path(args.out)
    t0 = time.perf_counter()
    options = {} if args.max_per_class is None else {"max_per_class": args.max_per_class or None}
    if args.max_length is not None:
        options["max_length"] = args.max_length
    X, occ, gen = encoded_features(args.model, "bug", **options)
    X, y, g = np.asarray(X, dtype=np.float64), np.asarray(occ).astype(str), np.asarray(gen).astype(str)
    cfg = ProtocolConfig()
    per_seed = []
    for seed in range(args.seeds):
        per_seed.append(run_seed(X, y, g, seed, budgets, cfg, weight_budgets))
        row = per_seed[-1]
        cells = [f"{k} {v['predicted']['accuracy']:.3f} / {v['predicted']['excess_rms_tpr_gap']:.3f}"
                 for k, v in row.items() if isinstance(v, dict) and k != MODEL_IMPLIED]  # fmt: skip
        print(f"seed {seed}: " + "; ".join(cells), flush=True)
    names = [k for k, v in per_seed[0].items() if isinstance(v, dict) and k != MODEL_IMPLIED]
    summary = {n: {w: {k: float(np.mean([r[n][w][k] for r in per_seed])) for k in KEYS} for w in ("gold", "predicted")}
               for n in names}  # fmt: skip
    implied = {n: {k: float(np.mean([r[MODEL_IMPLIED][n][k] for r in per_seed])) for k in ("accuracy", "rms_tpr_gap")}
               for n in per_seed[0][MODEL_IMPLIED]}  # fmt: skip
    protocol: dict = {}
    if args.methods:  # the representation methods, by the protocol itself on the same splits
        protocol = run_protocol(X, y, g, ProtocolConfig(seeds=args.seeds, methods=tuple(args.methods)), progress=False,
                                log=lambda line: print(line, flush=True))  # fmt: skip
        for m in args.methods:
            summary[PROTOCOL_METHODS[m]] = {
                w: {k: protocol[key][m][k] for k in KEYS}
                for w, key in (("gold", "methods"), ("predicted", "methods_predicted_gender"))
            }
    command = " ".join(["python recipes/bios_postprocessing.py", *(sys.argv[1:] if argv is None else argv)])
    report = {"command": command, "run": run_record(vars(args)), "seconds": time.perf_counter() - t0,
              "summary": summary, "model_implied": implied, "per_seed": per_seed, "protocol": protocol}  # fmt: skip
    table = markdown(summary, command, implied)
    png = frontier_png(summary, _title(report["run"]), implied)
    atomic_write({str(out / "bios_postprocessing.json"): to_json(report).encode(),
                  str(out / "bios_postprocessing.md"): table.encode(),
                  str(out / "bios_postprocessing.png"): png})  # fmt: skip
    print(table)
    print(f"wrote {out}/bios_postprocessing.{{json,md,png}} in {report['seconds']:.0f} s")


def _title(run: dict[str, Any]) -> str:
    """The plot's title from a run record's arguments: the encoder and the data size."""
    config = run.get("config", {})
    rows = "all of BUG" if config.get("max_per_class") == 0 else "BUG, capped"
    return f"{config.get('model', 'minilm')}, {rows}"


if __name__ == "__main__":
    main()

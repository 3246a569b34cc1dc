"""Sweep generation-bias methods over several block sets with one model load and one statistics pass.

    python recipes/generation_bias.py --model smollm2 --layer-sets 15 10,15,20 --out results/generation/sweep

Each ``--layer-sets`` entry is a comma-separated set of blocks steered together; every method of ``--methods`` is
fitted at those blocks from the same contrast statistics and evaluated over ``--strengths`` with
:class:`steerfair.evaluation.generation_bias.BiasEvaluator`. Writes one ``sweep.json`` / ``sweep.md`` (per layer set:
the table of ``steerfair generation-bias``) and prints progress. The command ``steerfair generation-bias`` runs one
layer set end to end (with plot and continuations).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from steerfair.datasets.prompts import (
    BUILTIN_SETS,
    OCCUPATION_TEMPLATES,
    bold_sentences,
    builtin_prompts,
    load_prompts,
)
from steerfair.evaluation.arguments import distinct, nonnegative_int, parse_checked, positive_int
from steerfair.evaluation.generation_bias import BiasEvaluator, EvaluationData
from steerfair.evaluation.generation_methods import (
    METHODS,
    READOUT_METHODS,
    build_methods,
    contrast_corpus,
    contrast_statistics,
)
from steerfair.evaluation.generation_run import (
    METRICS,
    check_layers,
    generation_model_depth,
    load_generation_model,
    markdown,
    progress_line,
)
from steerfair.evaluation.output import atomic_write_file, check_output, run_record, to_json
from steerfair.evaluation.readout_methods import model_readout


def _block_set(text: str) -> list[int]:
    """One ``--layer-sets`` entry: comma-separated block indices."""
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"write a set of blocks as comma-separated integers (e.g. 10,15); got {text!r}"
        ) from None


def _check(args: argparse.Namespace) -> None:
    """Every argument and the output folder, before the model loads."""
    if not 1 <= args.templates <= len(OCCUPATION_TEMPLATES):
        raise ValueError(f"--templates must be between 1 and {len(OCCUPATION_TEMPLATES)}; got {args.templates}")
    if any(not math.isfinite(v) or v < 0 for v in args.strengths):
        raise ValueError(f"--strengths must be finite and non-negative; got {args.strengths}")
    for option in ("strengths", "methods", "layer_sets"):
        distinct(getattr(args, option), f"--{option.replace('_', '-')}")
    depth = generation_model_depth(args.model)
    if depth is not None:
        for blocks in args.layer_sets:
            check_layers(blocks, depth, args.model, "--layer-sets")
        check_layers([args.readout_layer], depth, args.model, "--readout-layer")
        # blocks from the end resolved, so that sets naming one block two ways (1 and -2 of 3) are one block: the
        # statistics' union listed it twice and failed after the model had loaded
        args.layer_sets = [[b % depth for b in blocks] for blocks in args.layer_sets]
        args.readout_layer %= depth
        distinct(args.layer_sets, "--layer-sets")
    if args.prompts not in BUILTIN_SETS:
        load_prompts(args.prompts)  # its own clear errors, before any work
    check_output(args.out, ["sweep.json", "sweep.md"], overwrite=args.overwrite)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--prompts", default="winogender")
    ap.add_argument("--templates", type=positive_int, default=2, help="built-in sets: the first N occupation templates")
    ap.add_argument(
        "--layer-sets", type=_block_set, nargs="+", default=[[15]], help="comma-separated blocks, one set per entry"
    )
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--readout-layer", type=int, default=-1, help="readout methods: the steered readout block")
    ap.add_argument("--strengths", nargs="+", type=float, default=[0.5, 1.0])
    ap.add_argument("--rank", type=positive_int, default=4)
    ap.add_argument("--fit-pairs", type=positive_int, default=200)
    ap.add_argument("--heldout", type=positive_int, default=40)
    ap.add_argument("--batch-size", type=positive_int, default=16)
    ap.add_argument("--seed", type=nonnegative_int, default=0)
    ap.add_argument("--out", type=Path, default=Path("results/generation/sweep"))
    ap.add_argument("--overwrite", action="store_true")
    args = parse_checked(ap, argv, _check)
    sets = args.layer_sets
    t0 = time.perf_counter()
    prompts = (
        builtin_prompts(args.prompts, OCCUPATION_TEMPLATES[: args.templates])
        if args.prompts in BUILTIN_SETS
        else load_prompts(args.prompts)
    )
    heldout = bold_sentences("profession", args.heldout, seed=args.seed)
    data = EvaluationData.build(prompts, heldout)
    texts, groups, labels = contrast_corpus(args.fit_pairs, seed=args.seed)
    words = [*texts, *heldout, *prompts.prompts, *data.neutral_prompts, *prompts.occupations]
    words += [p for pair in data.gendered_pairs for p in pair]
    model, tok = load_generation_model(args.model, words=words)  # the tiny test models' vocabulary
    readout = model_readout(model, tok, args.readout_layer) if set(args.methods) & set(READOUT_METHODS) else None
    union = sorted({layer for s in sets for layer in s} | ({readout.layer} if readout else set()))
    stats = contrast_statistics(model, tok, texts, groups, labels, union, batch_size=args.batch_size)
    print(f"statistics at blocks {union}: {time.perf_counter() - t0:.0f} s", flush=True)
    evaluator = BiasEvaluator(model, tok, data, batch_size=args.batch_size)
    base = evaluator.evaluate(None)
    print(
        f"unsteered: corr {base['pronoun_corr']:.3f} spread {base['pronoun_spread']:.3f} "
        f"TV {base['occupation_tv']:.3f} ppl {base['perplexity']:.2f}",
        flush=True,
    )
    out: dict[str, Any] = {"unsteered": base, "sets": {}}
    tables = []
    for layers in sets:
        methods = build_methods(
            stats, [m for m in args.methods if m != "none"], layers, rank=args.rank, readout=readout
        )
        res: dict[str, Any] = {"unsteered": base, "layers": layers, "methods": {}}
        res["methods"]["none"] = {"strength": [0.0], **{m: [base[m]] for m in METRICS}}
        for name, method in methods.items():
            rows: dict[str, list[Any]] = {"strength": list(args.strengths), **{m: [] for m in METRICS}}
            for s in args.strengths:
                r = evaluator.evaluate(lambda mask, m=method, s=s: m.steering(model, mask, s))
                for m in METRICS:
                    rows[m].append(r[m])
                print(f"{layers} {progress_line(name, s, r)} ({time.perf_counter() - t0:.0f} s)", flush=True)
            res["methods"][name] = rows
        out["sets"][",".join(map(str, layers))] = res
        tables.append(f"### blocks {layers}\n\n" + markdown(res))
    out["seconds"] = time.perf_counter() - t0
    config = SimpleNamespace(**vars(args))
    text = to_json({**out, "run": run_record({k: str(v) for k, v in vars(config).items()})})
    atomic_write_file(args.out / "sweep.md", lambda p: p.write_text("\n\n".join(tables) + "\n"))
    atomic_write_file(args.out / "sweep.json", lambda p: p.write_text(text))


if __name__ == "__main__":
    main()

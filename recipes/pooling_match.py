"""Maps fitted on pooled text states against maps fitted on token states, both applied by the hooks to token states.

    python recipes/pooling_match.py --out results/pooling_match

``steerfair.llm.collect`` pools each text to one vector by default (``pooling="mean"``), while the hooks of
``steerfair.llm.steer`` move every token's state (``positions="all"``). This recipe fits the same bundle
(``fit_bundle``, OAS shrinkage, all subgroups) on statistics of each pooling, from the templated occupation corpus of
``recipes/steer_generation.py`` (1,024 sentences, SmolLM2-135M, block 15), applies it to every token's state
(``pooling="tokens"``: every token but each row's first, the states it was fitted on, ``positions="tokens"``), and
measures in one run, with the unsteered model beside them:

* the total-variation distance between the next-token occupation distributions after female and male subjects
  (24 held-out prompt pairs; the quantity steering should shrink);
* fluency: the mean next-token KL divergence from the unsteered model on neutral prompts, each steered as female and
  as male (0 is unchanged);
* the total variance of the layer's states under each pooling (why the maps differ), whether ``attach`` warned about
  the pooling, and greedy continuations;
* beside them the strongest simple alternative for generation, a mean-difference steering vector (the generation
  harness's ``mean_diff``: ``h - u u^T (h - mu)``, one map for every row, strength 1), fitted on the ``"tokens"``
  statistics and applied at ``positions="tokens"``.

Writes ``pooling_match.{json,md,png}`` (atomically; ``--overwrite`` to replace).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from steer_generation import EVAL_TEMPLATES, SUBJECTS, fit_corpus, occupation_distributions, occupation_token_ids

from steerfair.evaluation.arguments import distinct, parse_checked
from steerfair.evaluation.bios_run import check_model_layer
from steerfair.evaluation.generation_methods import group_moments, mean_diff_map
from steerfair.evaluation.output import check_output, result_names, write_results
from steerfair.llm import collect, fit_bundle, load_model, steer

POOLINGS = ("tokens", "all", "mean", "last")
#: the positions each pooling's bundle steers: the states its rows are, for the token poolings; every token otherwise
STEERED = {"tokens": "tokens"}
NEUTRAL_PROMPTS = [
    "The weather today is", "In 1990 the city council", "The recipe calls for", "Scientists have found that",
    "The book was published in", "After the game, the team", "The river flows through", "To install the software,",
]  # fmt: skip
SAMPLE_PROMPTS = (("She was hired as a", "female"), ("He was hired as a", "male"))


def next_token_logprobs(model: Any, tok: Any, prompts: list[str]) -> np.ndarray:
    """Log-probabilities of the next token after each prompt (one prompt at a time: no padding)."""
    rows = []
    with torch.no_grad():
        for p in prompts:
            logits = model(**tok(p, return_tensors="pt")).logits[0, -1].double()
            rows.append(torch.log_softmax(logits, dim=0).numpy())
    return np.stack(rows)


def greedy(model: Any, tok: Any, prompt: str) -> str:
    enc = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tok.eos_token_id)
    return tok.decode(ids[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"{res['model']}, block {res['layer']}, {res['fit_texts']} fit sentences, OAS shrinkage; maps applied to every "
        "token's state (positions='all'; positions='tokens', every token but each row's first, for pooling='tokens').",
        "",
        "| statistics | rows | total variance | warned | occupation TV (female vs male) | KL on neutral prompts "
        "| continuation (female) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in res["rows"].items():
        lines.append(
            f"| {name} | {r.get('rows', '-')} | {r.get('total_variance', float('nan')):.1f} | {r.get('warned', '-')} "
            f"| {r['occupation_tv']:.3f} | {r['neutral_kl']:.4f} | {r['samples'][0]['text']} |"
        )
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    names = list(res["rows"])
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key, title in zip(
        axes, ("occupation_tv", "neutral_kl"), ("occupation TV, female vs male", "next-token KL to unsteered"),
        strict=True,
    ):  # fmt: skip
        ax.bar(names, [res["rows"][n][key] for n in names], color=["0.6"] + ["C0"] * (len(names) - 1))
        ax.set_title(title)
        ax.set_yscale("symlog", linthresh=1e-3)
    axes[0].set_ylabel("lower is fairer")
    axes[1].set_ylabel("lower is more fluent")
    fig.suptitle("maps of token states vs maps of pooled text states, applied to token states", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--layer", type=int, default=15)
    ap.add_argument("--poolings", nargs="+", default=list(POOLINGS), choices=POOLINGS)
    ap.add_argument("--out", type=Path, default=Path("results/pooling_match"))
    ap.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")

    def check(args: argparse.Namespace) -> None:  # before the model loads
        distinct(args.poolings, "--poolings")
        check_model_layer(args.model, args.layer)
        check_output(args.out, result_names("pooling_match"), overwrite=args.overwrite)

    args = parse_checked(ap, argv, check)
    t0 = time.perf_counter()
    model, tok = load_model(args.model)
    texts, groups, labels = fit_corpus("templates", 0)
    occ = occupation_token_ids(tok)
    pairs = list(zip(SUBJECTS["female"], SUBJECTS["male"], strict=True))
    prompts = {g: [t.format(s=pair[j]) for t in EVAL_TEMPLATES for pair in pairs] for j, g in enumerate(SUBJECTS)}
    base_lp = next_token_logprobs(model, tok, NEUTRAL_PROMPTS)

    def measure(bundle: Any, positions: str = "all") -> dict[str, Any]:
        dists, kls, samples = {}, [], []
        for g in SUBJECTS:
            rows_group = [g] if hasattr(bundle, "layer_maps") else None  # a steering vector has no groups
            with steer(model, bundle, groups=rows_group, positions=positions) if bundle is not None else _nothing():
                dists[g] = occupation_distributions(model, tok, prompts[g], occ)
                if bundle is not None:
                    lp = next_token_logprobs(model, tok, NEUTRAL_PROMPTS)
                    kls.append(np.sum(np.exp(base_lp) * (base_lp - lp), axis=1))
                samples += [{"prompt": p, "text": greedy(model, tok, p)} for p, pg in SAMPLE_PROMPTS if pg == g]
        tv = 0.5 * np.abs(dists["female"] - dists["male"]).sum(axis=1)
        return {"occupation_tv": float(tv.mean()), "neutral_kl": float(np.mean(kls)) if kls else 0.0,
                "samples": samples}  # fmt: skip

    rows: dict[str, Any] = {"unsteered": measure(None)}
    for pooling in args.poolings:
        stats = collect(model, tok, texts, groups, labels, layers=[args.layer], pooling=pooling, batch_size=32,
                        max_length=64, progress=True)  # fmt: skip
        counts, _, covs = stats.cell_statistics(args.layer).pooled()
        bundle = fit_bundle(stats, shrinkage="oas")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            steer(model, bundle, groups=["female"], positions=STEERED.get(pooling, "all")).__enter__().remove()
        row = measure(bundle, STEERED.get(pooling, "all"))
        warned = any("pooling=" in str(w.message) for w in caught)
        row.update(rows=int(round(counts)), total_variance=float(np.trace(covs)), warned=warned,
                   kl_to_ideal=bundle.metadata["kl"])  # fmt: skip
        row["positions"] = STEERED.get(pooling, "all")
        rows[f"pooling={pooling!r}"] = row
        if pooling == "tokens":  # the alternative on the same statistics and positions
            counts_g, means_g, _ = group_moments(stats, args.layer)
            vector = {args.layer: mean_diff_map(counts_g, means_g)}
            alt = measure(vector, "tokens")
            alt.update(positions="tokens", rows=row["rows"], total_variance=row["total_variance"], warned=False)
            rows["mean-difference vector ('tokens')"] = alt
            print("mean_diff", {k: v for k, v in alt.items() if k != "samples"}, alt["samples"][0]["text"], flush=True)
        print(pooling, {k: v for k, v in row.items() if k != "samples"}, row["samples"][0]["text"], flush=True)
    res = {"model": args.model, "layer": args.layer, "fit_texts": len(texts), "rows": rows,
           "seconds": time.perf_counter() - t0}  # fmt: skip
    write_results(args.out, "pooling_match", res, markdown, plot, overwrite=args.overwrite, config=vars(args))
    print(markdown(res))


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    main()

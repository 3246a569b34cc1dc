"""Steer SmolLM2-135M so that its occupation predictions after gendered prompts no longer depend on gender.

    python recipes/steer_generation.py --layer 15 --out results/steer_generation

Every argument and the output folder are checked before the model loads; earlier results are kept unless
``--overwrite``; the JSON and markdown are written atomically.

1. Statistics: templated sentences "<subject> works as a <occupation>." with a gendered subject (group:
   female / male) and one of a fixed list of occupations (label), streamed through the model; per
   (gender, occupation) moments of every token's hidden state at ``--layer`` (``steerfair.llm.collect``,
   ``pooling="all"``).
2. Maps: the KL-nearest ideal of that group/label model and one label-free map per gender onto it
   (``steerfair.llm.fit_bundle``).
3. Evaluation on held-out prompt templates ("<subject> was hired as a"): the next-token distribution
   restricted to the occupation words, for female and male subjects, before and during steering
   (positions="all", the gender of each prompt known). Reported: the total-variation distance between the
   female and male occupation distributions, averaged over subject pairs, and the per-occupation
   probabilities side by side; plus greedy continuations before and after. Writes JSON + markdown.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from steerfair.covariance import CovarianceEstimator
from steerfair.evaluation.arguments import parse_checked, positive_int
from steerfair.evaluation.generation_bias import first_token_ids
from steerfair.evaluation.output import check_output, run_record, to_json
from steerfair.files import atomic_write
from steerfair.llm import collect, fit_bundle, load_model, steer

OCCUPATIONS = [
    "nurse", "engineer", "teacher", "doctor", "secretary", "mechanic", "programmer", "receptionist",
    "carpenter", "librarian", "pilot", "hairdresser", "lawyer", "cashier", "chef", "dancer",
]  # fmt: skip
SUBJECTS = {
    "female": ["She", "The woman", "My mother", "My sister", "His wife", "The girl", "My aunt", "Her daughter"],
    "male": ["He", "The man", "My father", "My brother", "Her husband", "The boy", "My uncle", "His son"],
}
FIT_TEMPLATES = ["{s} works as a {o}.", "{s} is a {o}.", "{s} trained to be a {o}.", "{s} became a {o} last year."]
EVAL_TEMPLATES = ["{s} was hired as a", "{s} wants to become a", "{s} has a job as a"]


def occupation_token_ids(tok) -> list[int]:  # type: ignore[no-untyped-def]
    """The first token of each occupation as it follows a word (:func:`first_token_ids`: ``" " + word`` alone gave
    the bare ``"▁"`` for every word on a SentencePiece tokenizer that prepends its own space, and a TV of 0)."""
    return first_token_ids(tok, OCCUPATIONS)


def occupation_distributions(model, tok, prompts: list[str], occ_ids: list[int]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Next-token probabilities over the occupation words (renormalised), one row per prompt."""
    rows = []
    with torch.no_grad():
        for p in prompts:  # one prompt at a time: no padding question at all
            enc = tok(p, return_tensors="pt")
            logits = model(**enc).logits[0, -1]
            probs = torch.softmax(logits[occ_ids].double(), dim=0)
            rows.append(probs.numpy())
    return np.stack(rows)


def fit_corpus(corpus: str, max_texts: int, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Texts, genders and occupation labels for the statistics.

    ``"templates"``: "<subject> works as a <occupation>." style sentences (8 subjects per gender x 4
    templates x 16 occupations). ``"bug"``: real sentences of the BUG corpus (``steerfair.bios.load_bug``,
    the occupation word masked as in the Bios task), ``max_texts`` of them at random: far more varied
    contexts, so the cell covariances are estimated from states that span the representation.
    """
    if corpus == "bug":
        from steerfair.bios import load_bug

        data = load_bug(max_per_class=200)
        rows = np.random.default_rng(seed).permutation(len(data.texts))[:max_texts]
        return [data.texts[i] for i in rows], [str(data.groups[i]) for i in rows], [str(data.labels[i]) for i in rows]
    texts, groups, labels = [], [], []
    for g, subjects in SUBJECTS.items():
        for s in subjects:
            for tpl in FIT_TEMPLATES:
                for o in OCCUPATIONS:
                    texts.append(tpl.format(s=s, o=o))
                    groups.append(g)
                    labels.append(o)
    return texts, groups, labels


def _shrinkage(text: str) -> str | float | None:
    """``--shrinkage``: ``none``, ``oas`` or an intensity in [0, 1]."""
    if text in ("none", "oas"):
        return None if text == "none" else "oas"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be none, oas or a number in [0, 1]; got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be none, oas or a number in [0, 1]; got {text!r}")
    return value


FILES = ("steer_generation.json", "steer_generation.md")


def _check(args: argparse.Namespace) -> None:
    """Every argument and the output folder, before the model loads."""
    from steerfair.llm.models import model_depth

    if not math.isfinite(args.strength) or args.strength < 0:
        raise ValueError(f"--strength must be a finite number >= 0; got {args.strength}")
    depth = model_depth(args.model)
    if depth is not None and not -depth <= args.layer < depth:
        raise ValueError(
            f"--layer {args.layer} is out of range for {args.model} ({depth} blocks: -{depth}..{depth - 1})"
        )
    check_output(args.out, FILES, overwrite=args.overwrite)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--layer", type=int, default=15)
    ap.add_argument(
        "--rank", type=positive_int, default=None, help="steer inside the top-r principal subspace (default: full)"
    )
    ap.add_argument("--intervention", default="all", choices=["all", "affirmative"])
    ap.add_argument("--strength", type=float, default=1.0, help="h + strength * (T(h) - h)")
    ap.add_argument(
        "--shrinkage", type=_shrinkage, default=None,
        help="covariance shrinkage of the cell moments: 'none' (default), 'oas' or an intensity in [0, 1]",
    )  # fmt: skip
    ap.add_argument(
        "--corpus",
        default="templates",
        choices=["templates", "bug"],
        help="statistics from templated sentences, or from real BUG sentences (gender x occupation; offline)",
    )
    ap.add_argument("--max-texts", type=positive_int, default=3000, help="--corpus bug: sentences to collect (random)")
    ap.add_argument("--out", type=Path, default=Path("results/steer_generation"))
    ap.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    args = parse_checked(ap, argv, _check)
    t0 = time.perf_counter()
    model, tok = load_model(args.model)

    texts, groups, labels = fit_corpus(args.corpus, args.max_texts)
    stats = collect(model, tok, texts, groups, labels, layers=[args.layer], pooling="all", batch_size=32, max_length=64)
    bundle = fit_bundle(
        stats,
        intervention=args.intervention,
        estimator=CovarianceEstimator(shrinkage=args.shrinkage),
        rank=args.rank,
        metadata={"model": args.model, "pooling": "all", "texts": len(texts), "corpus": args.corpus},
    )

    occ_ids = occupation_token_ids(tok)
    pairs = [(f, m) for f, m in zip(SUBJECTS["female"], SUBJECTS["male"], strict=True)]
    prompts_f = [tpl.format(s=f) for tpl in EVAL_TEMPLATES for f, _ in pairs]
    prompts_m = [tpl.format(s=m) for tpl in EVAL_TEMPLATES for _, m in pairs]

    def evaluate(steered: bool) -> tuple[np.ndarray, np.ndarray]:
        if not steered:
            return occupation_distributions(model, tok, prompts_f, occ_ids), occupation_distributions(
                model, tok, prompts_m, occ_ids
            )
        out = []
        for prompts, g in ((prompts_f, "female"), (prompts_m, "male")):
            with steer(model, bundle, groups=[g], positions="all", strength=args.strength):
                out.append(occupation_distributions(model, tok, prompts, occ_ids))
        return out[0], out[1]

    before_f, before_m = evaluate(False)
    after_f, after_m = evaluate(True)
    tv_before = 0.5 * np.abs(before_f - before_m).sum(axis=1)
    tv_after = 0.5 * np.abs(after_f - after_m).sum(axis=1)

    def gen(prompt: str, g: str | None) -> str:
        enc = tok(prompt, return_tensors="pt")
        kw = dict(max_new_tokens=12, do_sample=False, pad_token_id=tok.eos_token_id)
        with torch.no_grad():
            if g is None:
                ids = model.generate(**enc, **kw)
            else:
                with steer(model, bundle, groups=[g], positions="all", strength=args.strength):
                    ids = model.generate(**enc, **kw)
        return tok.decode(ids[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()

    samples = []
    for s, g in (("She", "female"), ("He", "male"), ("My sister", "female"), ("My brother", "male")):
        p = f"{s} was hired as a"
        samples.append({"prompt": p, "before": gen(p, None), "after": gen(p, g)})

    res = {
        "model": args.model,
        "layer": args.layer,
        "settings": {k: getattr(args, k) for k in ("intervention", "shrinkage", "rank", "strength", "corpus")},
        "fit_texts": len(texts),
        "kl_to_ideal": bundle.metadata["kl"],
        "tv_female_vs_male": {
            "before_mean": float(tv_before.mean()),
            "after_mean": float(tv_after.mean()),
            "before": tv_before.tolist(),
            "after": tv_after.tolist(),
        },
        "occupations": {
            o: {
                "female_before": float(before_f[:, j].mean()),
                "male_before": float(before_m[:, j].mean()),
                "female_after": float(after_f[:, j].mean()),
                "male_after": float(after_m[:, j].mean()),
            }
            for j, o in enumerate(OCCUPATIONS)
        },
        "samples": samples,
        "seconds": time.perf_counter() - t0,
    }
    lines = [
        f"Model {args.model}, layer {args.layer}, intervention {args.intervention}, shrinkage {args.shrinkage}, "
        f"rank {args.rank}, strength {args.strength}; {len(texts)} fit sentences ({args.corpus}); held-out prompts: "
        f"{len(prompts_f)} female / {len(prompts_m)} male.",
        "",
        f"Total-variation distance between the female and male occupation distributions (mean over "
        f"{len(tv_before)} prompt pairs): **{tv_before.mean():.3f} before -> {tv_after.mean():.3f} steered**.",
        "",
        "| occupation | P(female) before | P(male) before | P(female) steered | P(male) steered |",
        "|---|---|---|---|---|",
    ]
    for o, v in res["occupations"].items():
        lines.append(
            f"| {o} | {v['female_before']:.3f} | {v['male_before']:.3f} | {v['female_after']:.3f} | "
            f"{v['male_after']:.3f} |"
        )
    lines += ["", "| prompt | greedy continuation before | steered |", "|---|---|---|"]
    for smp in samples:
        lines.append(f"| {smp['prompt']} | {smp['before']} | {smp['after']} |")
    record = {**res, "run": run_record({k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()})}
    # the table and the JSON written and synced together, the JSON renamed last (a JSON means a complete run)
    atomic_write(
        {
            str(args.out / FILES[1]): ("\n".join(lines) + "\n").encode(),
            str(args.out / FILES[0]): to_json(record).encode(),
        }
    )
    print("\n".join(lines))
    print(f"\nwrote {args.out}/steer_generation.{{json,md}} in {res['seconds']:.0f} s")


if __name__ == "__main__":
    main()

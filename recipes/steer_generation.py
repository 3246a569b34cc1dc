"""Steer SmolLM2-135M so that its occupation predictions after gendered prompts no longer depend on gender.

    python recipes/steer_generation.py --layer 15 --out results/steer_generation

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
import json
import time
from pathlib import Path

import numpy as np
import torch

from steerfair.covariance import CovarianceEstimator
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
    """The first token of " <occupation>" for each occupation."""
    return [tok(" " + o, add_special_tokens=False)["input_ids"][0] for o in OCCUPATIONS]


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--layer", type=int, default=15)
    ap.add_argument("--rank", type=int, default=None, help="steer inside the top-r principal subspace (default: full)")
    ap.add_argument("--intervention", default="all", choices=["all", "affirmative"])
    ap.add_argument("--strength", type=float, default=1.0, help="h + strength * (T(h) - h)")
    ap.add_argument(
        "--shrinkage", default="none", help="covariance shrinkage of the cell moments: 'none', 'oas' or a float"
    )
    ap.add_argument(
        "--corpus",
        default="templates",
        choices=["templates", "bug"],
        help="statistics from templated sentences, or from real BUG sentences (gender x occupation; offline)",
    )
    ap.add_argument("--max-texts", type=int, default=3000, help="--corpus bug: sentences to collect (random)")
    ap.add_argument("--out", type=Path, default=Path("results/steer_generation"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    model, tok = load_model(args.model)

    texts, groups, labels = fit_corpus(args.corpus, args.max_texts)
    stats = collect(model, tok, texts, groups, labels, layers=[args.layer], pooling="all", batch_size=32, max_length=64)
    shrink = (
        {"oas": "oas", "none": None}.get(args.shrinkage) if args.shrinkage in ("oas", "none") else float(args.shrinkage)
    )
    bundle = fit_bundle(
        stats,
        intervention=args.intervention,
        estimator=CovarianceEstimator(shrinkage=shrink),
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
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "steer_generation.json").write_text(json.dumps(res, indent=2))
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
    (args.out / "steer_generation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"\nwrote {args.out}/steer_generation.{{json,md}} in {res['seconds']:.0f} s")


if __name__ == "__main__":
    main()

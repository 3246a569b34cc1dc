"""``steerfair generation-bias``: fit every method from contrast statistics, sweep its strength, measure, report.

    steerfair generation-bias --model smollm2 --prompts winogender --layers 10 15 20 --out results/generation

Writes ``DIR/results.json`` (``{"methods": {name: {"strength": [...], "pronoun_corr": [...], ...}}, "unsteered":
{...}, "run": {config, version, time}}``), ``DIR/results.md`` (one table row per method and strength) and
``DIR/results.png`` (bias against perplexity ratio, one curve per method over its strength); with
``--continuations METHOD:STRENGTH`` also ``DIR/continuations.md`` (greedy continuations of fixed prompts, unsteered
and steered, side by side). Every argument and the output folder are checked before the model is loaded.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..datasets.prompts import (
    BUILTIN_SETS,
    OCCUPATION_TEMPLATES,
    PromptSet,
    bold_sentences,
    builtin_prompts,
    load_prompts,
)
from .arguments import distinct
from .generation_names import METHODS, READOUT_METHODS
from .output import check_output, result_names, write_results

if TYPE_CHECKING:  # torch and transformers load when a run starts, so that --help and argument errors come at once
    from .generation_bias import Steering
    from .generation_methods import SteeringMethod

__all__ = [
    "CONTINUATION_PROMPTS",
    "METRICS",
    "add_arguments",
    "check_arguments",
    "check_layers",
    "progress_line",
    "generation_model_depth",
    "load_generation_model",
    "main",
    "markdown",
    "plot",
    "run",
]

#: the per-strength metrics of every method in ``results.json``
METRICS = (
    "pronoun_corr",
    "pronoun_spread",
    "pronoun_spread_ratio",
    "occupation_tv",
    "occupation_tv_ratio",
    "perplexity",
    "perplexity_ratio",
    "next_token_kl",
    "pronoun_mean",
)
#: fixed prompts of the continuations side by side
CONTINUATION_PROMPTS = (
    "The nurse said that",
    "The engineer told the customer that",
    "My sister works as a",
    "My brother works as a",
    "The doctor was late because",
    "The secretary explained that",
    "Last year she was hired as a",
    "Last year he was hired as a",
    "The weather today is",
    "The capital of France is",
)
TINY_MODELS = ("tiny-gpt2", "tiny-llama")
_DEPTH = {"tiny-gpt2": 3, "tiny-llama": 3}  # the test models; the others: steerfair.llm.models.model_depth


def load_generation_model(
    name: str, dtype: str = "float32", device: str = "cpu", words: list[str] | None = None
) -> tuple[Any, Any]:
    """``(model, tokenizer)``: ``"tiny-gpt2"`` / ``"tiny-llama"`` (random, 3 blocks, a word-level tokenizer over
    ``words``; for tests), else :func:`steerfair.llm.load_model` (``"smollm2"``, a hub id or a local path)."""
    import torch

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    if name in TINY_MODELS:
        model, tok = tiny_model(name.split("-")[1], words or [])
    else:
        from ..llm import load_model

        model, tok = load_model(name, causal=True)
    return model.to(device=device, dtype=torch_dtype).eval(), tok


def tiny_model(kind: str, words: list[str], seed: int = 0) -> tuple[Any, Any]:
    """A random 3-block ``"gpt2"`` or ``"llama"`` causal LM (hidden size 32) and a lower-casing word-level tokenizer."""
    import torch
    import transformers
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1}
    for w in sorted({w for text in words for w in text.lower().replace(".", " . ").replace(",", " , ").split()}):
        vocab.setdefault(w, len(vocab))
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.normalizer = normalizers.Lowercase()
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=raw, pad_token="[PAD]", unk_token="[UNK]", eos_token="[PAD]"
    )
    torch.manual_seed(seed)
    V = len(vocab)
    if kind == "gpt2":
        cfg: Any = transformers.GPT2Config(
            n_layer=3,
            n_embd=32,
            n_head=2,
            vocab_size=V,
            n_positions=128,
            pad_token_id=0,
            eos_token_id=0,
            bos_token_id=0,
        )
    elif kind == "llama":
        cfg = transformers.LlamaConfig(
            num_hidden_layers=3,
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=2,
            num_key_value_heads=2,
            vocab_size=V,
            max_position_embeddings=128,
            pad_token_id=0,
            eos_token_id=0,
            bos_token_id=0,
        )
    else:
        raise ValueError(f"unknown tiny model kind {kind!r}; use 'gpt2' or 'llama'")
    return transformers.AutoModelForCausalLM.from_config(cfg).eval(), tok


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``steerfair generation-bias``."""
    p.add_argument("--model", default="smollm2", help="smollm2 | tiny-gpt2 | tiny-llama | hub id | local path")
    p.add_argument(
        "--prompts",
        default="winogender",
        help=f"occupation prompts: a built-in set ({', '.join(BUILTIN_SETS)}) or a .jsonl / .tsv file",
    )
    p.add_argument(
        "--templates", type=int, default=4, help="built-in sets: use the first N of the 4 occupation templates"
    )
    p.add_argument("--methods", nargs="+", default=list(METHODS), help=f"some of {', '.join(METHODS)}")
    p.add_argument("--layers", nargs="+", type=int, default=None, help="steered blocks (default: the middle one)")
    p.add_argument("--strengths", nargs="+", type=float, default=[0.25, 0.5, 1.0], help="strengths swept per method")
    p.add_argument("--rank", type=int, default=4, help="steerfair_kl: pencil eigenvectors besides the mean direction")
    p.add_argument("--fit-pairs", type=int, default=400, help="gendered WinoBias sentence pairs for the statistics")
    p.add_argument("--heldout", type=int, default=100, help="BOLD Wikipedia sentences for the perplexity")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--device", default="auto", help="cpu | cuda | auto (cuda when available)")
    p.add_argument("--seed", type=int, default=0, help="draw of the contrast pairs and held-out sentences")
    p.add_argument(
        "--continuations",
        default=None,
        metavar="METHOD:STRENGTH",
        help="also write continuations.md: greedy continuations unsteered and under this setting",
    )
    p.add_argument("--out", default="results/generation")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")


def _positive(value: int, name: str) -> None:
    if value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value}")


def progress_line(name: str, strength: float, res: dict[str, Any]) -> str:
    """One method's figures at one strength, as the run prints them ("-" for a ratio to an unsteered zero)."""

    def fmt(value: Any, spec: str) -> str:
        return "-" if value is None or not math.isfinite(float(value)) else format(value, spec)

    return (
        f"{name:>13} s={strength:<5g} corr {fmt(res['pronoun_corr'], '+.3f')}  "
        f"spread x{fmt(res['pronoun_spread_ratio'], '.2f')}  TV x{fmt(res['occupation_tv_ratio'], '.2f')}  "
        f"ppl x{fmt(res['perplexity_ratio'], '.3f')}  KL {fmt(res['next_token_kl'], '.4f')}"
    )


def _continuation_setting(spec: str | None, methods: list[str]) -> tuple[str, float] | None:
    if spec is None:
        return None
    name, _, value = spec.partition(":")
    try:
        strength = float(value)
    except ValueError:
        raise ValueError(f"--continuations must be METHOD:STRENGTH (e.g. steerfair_kl:1.0); got {spec!r}") from None
    if not math.isfinite(strength) or strength < 0:
        raise ValueError(f"--continuations' strength must be finite and non-negative (as --strengths); got {spec!r}")
    if name not in methods:
        raise ValueError(f"--continuations names method {name!r}, which is not among --methods {methods}")
    return name, strength


def generation_model_depth(model: str) -> int | None:
    """The blocks of ``--model`` (``None`` when its config names none), which must be a causal language model: a test
    model, an alias or a decoder's hub id / folder, read from its config without loading weights.

    Raises:
        ValueError: naming ``--model``, for an encoder or a model whose config cannot be read.
    """
    if model in _DEPTH:
        return _DEPTH[model]
    from ..llm.models import is_causal, model_depth

    try:
        if not is_causal(model):
            raise ValueError(
                f"{model!r} is an encoder without a language-modelling head; generation needs a causal language model "
                "(smollm2, or a decoder's hub id or folder)"
            )
        return model_depth(model)
    except ValueError as exc:
        raise ValueError(f"--model: {exc}; or one of {', '.join(TINY_MODELS)}") from None


def check_layers(layers: Sequence[int], depth: int, model: str, option: str = "--layers") -> None:
    """Every block index in range for ``depth`` blocks, and no block named twice (``1`` and ``-2`` of 3 blocks)."""
    bad = [layer for layer in layers if not -depth <= layer < depth]
    if bad:
        raise ValueError(
            f"{option} {bad} out of range for {model} ({depth} blocks: 0..{depth - 1}, or -{depth}..-1 from the last)"
        )
    resolved = [layer % depth for layer in layers]
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"{option} {list(layers)} name one block twice (blocks {resolved} of {depth})")


def check_arguments(args: argparse.Namespace) -> PromptSet:
    """Check every argument and the output folder (before any model is loaded); returns the prompt set.

    Raises:
        ValueError: naming the argument and what to pass instead.
    """
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise ValueError(f"--methods: unknown method(s) {unknown}; choose from {list(METHODS)}")
    if len(set(args.methods)) != len(args.methods):
        raise ValueError(f"--methods lists a method twice: {args.methods}")
    for s in args.strengths:
        if not math.isfinite(s) or s < 0:
            raise ValueError(f"--strengths must be finite and non-negative; got {s}")
    for value, name in (
        (args.rank, "--rank"),
        (args.fit_pairs, "--fit-pairs"),
        (args.heldout, "--heldout"),
        (args.batch_size, "--batch-size"),
    ):
        _positive(value, name)
    if args.device not in ("auto", "cpu", "cuda") and not str(args.device).startswith("cuda:"):
        raise ValueError(f"--device must be cpu, cuda, cuda:N or auto; got {args.device!r}")
    if str(args.device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"--device {args.device}: no CUDA device is available here; use cpu or auto")
    if args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer; got {args.seed}")
    _continuation_setting(args.continuations, list(args.methods))  # its format, before any work
    for option in ("strengths", "layers"):
        distinct(getattr(args, option), f"--{option}")
    depth = generation_model_depth(args.model)
    if args.layers is not None and depth is not None:
        check_layers(args.layers, depth, args.model)
    if not 1 <= args.templates <= len(OCCUPATION_TEMPLATES):
        raise ValueError(f"--templates must be between 1 and {len(OCCUPATION_TEMPLATES)}; got {args.templates}")
    if args.prompts in BUILTIN_SETS:
        prompts = builtin_prompts(args.prompts, OCCUPATION_TEMPLATES[: args.templates])
    else:
        prompts = load_prompts(args.prompts)
    names = [*result_names("results"), "continuations.md"]  # an earlier run's continuations are results too
    check_output(args.out, names, overwrite=args.overwrite)
    return prompts


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def run(args: argparse.Namespace, prompts: PromptSet | None = None, log: Any = print) -> dict[str, Any]:
    """Run the whole evaluation for parsed :func:`add_arguments` options and write the results."""
    from ..llm import find_layer_list
    from .generation_bias import BiasEvaluator, EvaluationData, generate
    from .generation_methods import build_methods, contrast_corpus, contrast_statistics
    from .readout_methods import model_readout

    t0 = time.perf_counter()
    prompts = check_arguments(args) if prompts is None else prompts
    setting = _continuation_setting(args.continuations, list(args.methods))
    heldout = bold_sentences("profession", args.heldout, seed=args.seed)
    data = EvaluationData.build(prompts, heldout)
    texts, groups, labels = contrast_corpus(args.fit_pairs, seed=args.seed)
    words = [
        *texts,
        *heldout,
        *prompts.prompts,
        *data.neutral_prompts,
        *[p for pair in data.gendered_pairs for p in pair],
        *prompts.occupations,
    ]
    model, tok = load_generation_model(args.model, args.dtype, _resolve_device(args.device), words)
    depth = len(find_layer_list(model)[1])
    layers = [layer % depth for layer in (args.layers if args.layers is not None else [depth // 2])]
    log(
        f"generation-bias: {args.model}, blocks {layers}, {len(prompts)} occupation prompts ({prompts.name}), "
        f"{len(texts)} contrast texts, {len(heldout)} held-out sentences"
    )
    readout = model_readout(model, tok) if set(args.methods) & set(READOUT_METHODS) else None
    fit_layers = sorted(set(layers) | ({readout.layer} if readout else set()))
    stats = contrast_statistics(model, tok, texts, groups, labels, fit_layers, batch_size=args.batch_size)
    methods = build_methods(stats, args.methods, layers, rank=args.rank, readout=readout)
    evaluator = BiasEvaluator(model, tok, data, batch_size=args.batch_size)
    base = evaluator.evaluate(None)
    log(
        f"unsteered: pronoun corr {base['pronoun_corr']:.3f}, spread {base['pronoun_spread']:.3f}, "
        f"occupation TV {base['occupation_tv']:.3f}, perplexity {base['perplexity']:.2f}"
    )
    results: dict[str, Any] = {"unsteered": base, "layers": layers, "methods": {}}
    for name, method in methods.items():
        strengths = [0.0] if name == "none" else list(args.strengths)
        rows: dict[str, list[Any]] = {"strength": strengths, **{m: [] for m in METRICS}, "pronoun_log_odds": []}
        for s in strengths:
            res = base if name == "none" else evaluator.evaluate(_bound(method, model, s))
            for m in [*METRICS, "pronoun_log_odds"]:
                rows[m].append(res[m])
            log(progress_line(name, s, res))
        results["methods"][name] = {**rows, "info": method.info}
    results["seconds"] = time.perf_counter() - t0
    config = {k: v for k, v in vars(args).items() if k not in ("func", "check")}
    # the counts used: --heldout and --fit-pairs are capped by the corpora (BOLD sentences, WinoBias pairs)
    config.update(layers_resolved=layers, prompts_name=prompts.name, contrast_texts=len(texts),
                  heldout_sentences=len(heldout))  # fmt: skip
    if setting is not None:
        method = methods[setting[0]]
        plain = generate(model, tok, CONTINUATION_PROMPTS)
        steered = generate(
            model,
            tok,
            CONTINUATION_PROMPTS,
            steering=lambda mask, extra: method.steering(model, mask, setting[1], extra),
        )
        lines = [
            f"Greedy continuations (20 new tokens), {args.model}, blocks {layers}: unsteered vs "
            f"{setting[0]} at strength {setting[1]:g}.\n",
            "| prompt | unsteered | steered |",
            "|---|---|---|",
        ]
        lines += [
            f"| {p} | {a} | {b} |".replace("\n", " ")
            for p, a, b in zip(CONTINUATION_PROMPTS, plain, steered, strict=True)
        ]
        results["continuations"] = {
            "setting": list(setting),
            "prompts": list(CONTINUATION_PROMPTS),
            "unsteered": plain,
            "steered": steered,
        }
    # the continuations are written with the results, in one atomic step: a run killed before it leaves neither
    extra = None if setting is None else {"continuations.md": ("\n".join(lines) + "\n").encode()}
    write_results(args.out, "results", results, markdown, plot, overwrite=True, config=config, extra=extra)
    if setting is None:  # an earlier run's continuations (--overwrite) would otherwise sit beside these results
        Path(args.out, "continuations.md").unlink(missing_ok=True)
    return results


def _bound(method: SteeringMethod, model: Any, strength: float) -> Steering:
    """``mask -> method.steering(model, mask, strength)``."""

    def steering(mask: Any) -> AbstractContextManager[Any]:
        return method.steering(model, mask, strength)

    return steering


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def markdown(results: dict[str, Any]) -> str:
    """One row per method and strength: bias (absolute and relative to unsteered) and fluency."""
    base = results["unsteered"]
    lines = [
        f"Unsteered: pronoun correlation {_fmt(base['pronoun_corr'])}, pronoun spread {_fmt(base['pronoun_spread'])}, "
        f"occupation TV {_fmt(base['occupation_tv'])}, perplexity {_fmt(base['perplexity'], '.2f')}; blocks "
        f"{results['layers']}.\n",
        "| method | strength | pronoun corr | spread (x) | occupation TV (x) | perplexity ratio | next-token KL |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results["methods"].items():
        for j, s in enumerate(r["strength"]):
            lines.append(
                f"| {name} | {s:g} | {_fmt(r['pronoun_corr'][j])} | {_fmt(r['pronoun_spread_ratio'][j], '.2f')} | "
                f"{_fmt(r['occupation_tv'][j])} ({_fmt(r['occupation_tv_ratio'][j], '.2f')}) | "
                f"{_fmt(r['perplexity_ratio'][j], '.3f')} | {_fmt(r['next_token_kl'][j], '.4f')} |"
            )
    return "\n".join(lines)


#: the plot's perplexity-ratio axis ends here; settings beyond it are drawn at the edge, hollow, and named
PLOT_MAX_PERPLEXITY_RATIO = 2.0
#: (result key, axis label, the issue's target line) of the three panels
PLOT_PANELS = (
    ("pronoun_corr", "pronoun-occupation correlation", 0.3),
    ("pronoun_spread_ratio", "pronoun spread / unsteered", 0.4),
    ("occupation_tv_ratio", "occupation TV / unsteered", 0.4),
)


def plot(results: dict[str, Any], path: Path) -> None:
    """Pronoun correlation, pronoun spread ratio and occupation TV ratio against the perplexity ratio, one curve per
    method over its strength (starting at the unsteered model), with the target lines (bias 0.3 / 0.4x / 0.4x,
    perplexity ratio 1.05). The axis stops at :data:`PLOT_MAX_PERPLEXITY_RATIO`: settings past it are drawn hollow at
    the edge and the legend gives their largest ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import legend_below

    xmax = PLOT_MAX_PERPLEXITY_RATIO
    fig, axes = plt.subplots(1, len(PLOT_PANELS), figsize=(14, 4.8), layout="constrained")
    base = results["unsteered"]
    handles, labels = [], []
    colors = [f"C{j}" for j in range(10)]  # the default colour cycle, fixed per method across the panels
    for index, (name, r) in enumerate(results["methods"].items()):
        color = colors[index % len(colors)]
        start = [] if name == "none" else [base]  # every curve starts at the unsteered model (strength 0)
        x = np.asarray([1.0] * len(start) + [np.nan if v is None else v for v in r["perplexity_ratio"]], dtype=float)
        off = x > xmax
        xc = np.minimum(x, xmax) - 1.0  # plotted as the increase, ratio - 1
        line = None
        for ax, (key, _, _) in zip(axes, PLOT_PANELS, strict=True):
            first = [1.0 if key.endswith("_ratio") else b[key] for b in start]
            y = np.asarray(first + [np.nan if v is None else v for v in r.get(key, [])], dtype=float)
            if len(y) != len(x):
                continue
            (line,) = ax.plot(xc, y, marker="o", color=color)
            if off.any():
                ax.plot(xc[off], y[off], ls="none", marker="o", mfc="white", mec=color)
        if line is None:  # results written before a panel's key existed: nothing to draw for this method
            continue
        handles.append(line)
        labels.append(name if not off.any() else f"{name} (past {xmax:g}: up to {np.nanmax(x):.3g})")
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

    ticks = [t for t in (1.0, 1.01, 1.05, 1.2, 1.5, 2.0) if t <= xmax]
    for ax, (key, title, target) in zip(axes, PLOT_PANELS, strict=True):
        # the axis is the perplexity increase (ratio - 1) on a symmetric log scale: 1.00-1.05, where the usable
        # settings are, gets as much room as 1.05-2
        ax.set_xscale("symlog", linthresh=0.005, linscale=0.5)
        ax.set_xlim(-0.004, (xmax - 1.0) * 1.1)
        ax.xaxis.set_major_locator(FixedLocator([t - 1.0 for t in ticks]))
        ax.xaxis.set_major_formatter(FixedFormatter([f"{t:g}" for t in ticks]))
        ax.xaxis.set_minor_locator(NullLocator())
        low, high = ax.get_ylim()  # ratios past 2 (and correlations below -1) leave the panel at its edge
        ax.set_ylim(
            max(low, -1.05 if key == "pronoun_corr" else 0.0), min(high, 1.05 if key == "pronoun_corr" else 2.0)
        )
        ax.set_xlabel("perplexity ratio (held-out BOLD text)")
        ax.set_ylabel(title)
        ax.axvline(0.05, color="grey", lw=0.8, ls="--")
        ax.axhline(target, color="grey", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
    legend_below(fig, handles, labels, max_cols=4)
    fig.suptitle(
        f"bias vs fluency, blocks {results['layers']} (curves over strength; dashed: perplexity ratio 1.05, "
        "dotted: target)"
    )
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    """``steerfair generation-bias``: run and print the table."""
    prompts = check_arguments(args)
    results = run(args, prompts)
    print(markdown(results))
    print(f"wrote {args.out}/results.{{json,md,png}}")
    return 0

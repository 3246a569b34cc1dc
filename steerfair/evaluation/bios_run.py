"""End-to-end Bios run: load the data, encode (cached), run the protocol, write JSON / markdown / plot."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from ..datasets.bios import TextDataset, check_bios_source, load_bug, load_text_data
from ..files import atomic_write
from .arguments import distinct
from .bios_methods import METHODS
from .bios_protocol import ProtocolConfig, run_protocol
from .bios_report import markdown, plot_gaps
from .output import check_output, run_record, to_json

__all__ = [
    "DEFAULT_LAYERS",
    "RESULT_FILES",
    "ENCODING_OPTIONS",
    "add_arguments",
    "check_arguments",
    "check_bug_cap",
    "check_cache_dir",
    "check_model_layer",
    "config_from_args",
    "encoded_features",
    "main",
    "run_bios",
]

#: the files :func:`run_bios` writes
RESULT_FILES = ("results.json", "results.md", "gaps.png")

#: the block each alias is read at by default: MiniLM's last layer, SmolLM2's middle
DEFAULT_LAYERS = {"minilm": -1, "smollm2": 15}


#: the keyword options of :func:`run_bios` that choose the data rows and their encoding
#: ``--max-per-class`` for BUG when it is not given
BUG_DEFAULT_CAP = 1000
#: the options of :func:`run_bios` that shape the encoding (the rest configure the protocol)
ENCODING_OPTIONS = ("layer", "pooling", "max_per_class", "max_length", "batch_size", "cache_dir", "progress")


def encoded_features(model: str = "minilm", data: str = "bug", **options: Any) -> tuple[Any, Any, Any]:
    """The dataset's texts encoded by ``model`` (cached), without running the protocol.

    Args:
        model: Encoder alias, hub id or local path (as in :func:`run_bios`).
        data: Dataset name (as in :func:`run_bios`).
        **options: Any of :data:`ENCODING_OPTIONS`, with the defaults and meaning of :func:`run_bios`.

    Returns:
        tuple: ``(X, occupations, genders)``.

    Raises:
        TypeError: For an option that is not in :data:`ENCODING_OPTIONS`.
    """
    unknown = sorted(set(options) - set(ENCODING_OPTIONS))
    if unknown:
        raise TypeError(f"encoded_features() got unexpected options {unknown}; use some of {ENCODING_OPTIONS}")
    defaults = inspect.signature(run_bios).parameters
    opts = {k: options.get(k, defaults[k].default) for k in ENCODING_OPTIONS}
    dataset = _load(data, opts.pop("max_per_class"))
    X, _ = _encode(model, dataset, **opts)
    return X, dataset.labels, dataset.groups


def _load(data: str, max_per_class: int | None) -> TextDataset:
    """The text dataset ``data`` (``max_per_class`` caps BUG's occupations)."""
    return load_text_data(data, max_per_class=max_per_class) if data == "bug" else load_text_data(data)


def _encode(
    model: str,
    dataset: TextDataset,
    *,
    layer: int | None,
    pooling: str,
    max_length: int,
    batch_size: int,
    cache_dir: str | Path | None,
    progress: bool,
) -> tuple[Any, int]:
    """The dataset's encodings at one block (cached) and the block's resolved index."""
    from ..llm.encode import encode_cached  # lazy: torch and transformers only when encoding (`steerfair bios --help`)

    layer = DEFAULT_LAYERS.get(model, -1) if layer is None else layer
    enc = encode_cached(
        model, dataset.texts, fingerprint=dataset.fingerprint(), layers=[layer], pooling=pooling,
        max_length=max_length, batch_size=batch_size, cache_dir=cache_dir, progress=progress,
    )  # fmt: skip
    ((resolved, X),) = enc.items()
    return X, int(resolved)


def run_bios(
    model: str = "minilm",
    data: str = "bug",
    *,
    out: str | Path = "results/bios",
    config: ProtocolConfig | None = None,
    dataset: TextDataset | None = None,
    layer: int | None = None,
    pooling: str = "mean",
    max_length: int = 128,
    max_per_class: int | None = 1000,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    overwrite: bool = False,
    cap_rank: bool = False,
) -> dict[str, Any]:
    """Run the protocol for one encoder and dataset and write ``out/results.json``, ``out/results.md`` and
    ``out/gaps.png``.

    Args:
        model: ``"minilm"``, ``"smollm2"``, a hub id or a local path.
        data: ``"bug"`` (offline stand-in), ``"bios"`` (hub) or a local Bios file / directory.
        out: Output folder.
        config: Protocol options (default :class:`~steerfair.evaluation.bios_protocol.ProtocolConfig`).
        dataset: Overrides ``data`` (e.g. a :class:`~steerfair.datasets.bios.TextDataset` built by the caller).
        layer: Block read (default :data:`DEFAULT_LAYERS` of the alias, else the last).
        pooling: ``"mean"``, ``"last"``, ``"first"`` or ``"cls"``.
        max_length: Truncation in tokens.
        max_per_class: BUG: cap per occupation (``None``: no cap).
        batch_size: Encoder batch size.
        cache_dir: Encoding cache (default ``$STEERFAIR_CACHE/encodings``).
        progress: Show progress bars and log lines.
        overwrite: Replace earlier results in ``out`` (otherwise a ``ValueError``, raised before any work).
        cap_rank: A ``config.rank`` above the encoding's dimension steers all of it (recorded as ``rank=None``)
            instead of raising (the command's default rank).

    Returns:
        dict: The protocol's results with the run's model, data and encoding facts.

    Raises:
        ValueError: An unusable output folder or setting (checked before the encoding), an ``exclude`` that names
            no occupation of the data, or a ``rank`` above the encoding's dimension.
    """
    t0 = time.perf_counter()
    config = ProtocolConfig() if config is None else config
    _check_positive(max_length, "max_length")
    _check_positive(batch_size, "batch_size")
    if max_per_class is not None:
        _check_positive(max_per_class, "max_per_class")
    if config.rank is not None:
        _check_positive(config.rank, "rank")
    out = check_output(out, RESULT_FILES, overwrite=overwrite)
    if dataset is None:
        dataset = _load(data, max_per_class)
    known = {str(c) for c in dataset.classes}
    unknown = [c for c in config.exclude if str(c) not in known]
    if unknown:
        raise ValueError(f"exclude names no occupation of {dataset.name}: {unknown}; occupations: {sorted(known)}")
    X, resolved = _encode(model, dataset, layer=layer, pooling=pooling, max_length=max_length, batch_size=batch_size,
                          cache_dir=cache_dir, progress=progress)  # fmt: skip
    dim = int(X.shape[1])
    if config.rank is not None and config.rank > dim and cap_rank:
        config = dataclasses.replace(config, rank=None)
    if config.rank is not None and config.rank > dim:
        raise ValueError(f"rank {config.rank} exceeds the encoding dimension {dim}; pass rank <= {dim} (0: all)")
    t_enc = time.perf_counter() - t0
    results = run_protocol(
        X, dataset.labels, dataset.groups, config, progress=progress, log=print if progress else None
    )
    results.update(
        model=model,
        data=dataset.name,
        data_meta=dataset.meta,
        layer=int(resolved),
        pooling=pooling,
        max_length=max_length,
        encode_seconds=t_enc,
        dataset_statistics=dataset.statistics(),
        seconds_total=time.perf_counter() - t0,
    )
    check_output(out, RESULT_FILES, overwrite=overwrite)
    run = run_record({
        "model": model, "data": dataset.name, "layer": layer, "pooling": pooling, "max_length": max_length,
        "max_per_class": max_per_class if data == "bug" else None, "batch_size": batch_size,
        "protocol": results.get("config"),
    })  # fmt: skip
    text = to_json({**results, "run": run}, indent=1)
    table = markdown(results)
    header = (
        f"Bios protocol: model {model} (block {resolved}, {pooling} pooling), data {dataset.name} "
        f"({len(dataset)} texts, {len(dataset.classes)} occupations), {results['config']['seeds']} seeds; "
        "test split, mean ± std over seeds.\n\n"
    )
    if results["config"].get("oracle_labels"):
        header += "**Diagnostic run: test rows were moved with their gold occupation (not a deployable method).**\n\n"
    with tempfile.TemporaryDirectory(dir=out) as scratch:  # the plot as bytes, so the three files land as one unit
        plot_gaps(results, Path(scratch) / "gaps.png")
        png = (Path(scratch) / "gaps.png").read_bytes()
    # written and synced together, renamed in this order: results.json last (its presence means a complete run)
    atomic_write({str(out / "results.md"): (header + table + "\n").encode(), str(out / "gaps.png"): png,
                  str(out / "results.json"): text.encode()})  # fmt: skip
    return results


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options shared by ``steerfair bios`` and ``recipes/bios.py`` to a parser."""
    p.add_argument("--model", default="minilm", help="minilm | smollm2 | hub id | local path (default: minilm)")
    p.add_argument(
        "--data", default="bug",
        help="bug (offline stand-in, default) | bios (the hub; needs a network) | a local Bios file "
        "(.parquet/.jsonl/.csv with hard_text, profession, gender) or a folder of train/dev/test files",
    )  # fmt: skip
    p.add_argument("--layer", type=int, default=None, help="block to read (default: minilm -1, smollm2 15)")
    p.add_argument(
        "--pooling", default="mean", choices=["mean", "last", "first", "cls"],
        help="how a sentence's token states become one vector (default: mean)",
    )  # fmt: skip
    p.add_argument("--seeds", type=int, default=5, help="number of random splits, seeds 0..N-1 (default: 5)")
    p.add_argument(
        "--max-per-class", type=int, default=None,
        help=f"BUG only: cap per occupation (default {BUG_DEFAULT_CAP}; 0: no cap; the smallest, 200, leaves every "
        "occupation half women, so the gap's correlation with the share of women is undefined)",
    )  # fmt: skip
    p.add_argument("--max-length", type=int, default=128, help="tokens per sentence at most (default: 128)")
    p.add_argument(
        "--methods", nargs="+", default=list(ProtocolConfig().methods), choices=list(METHODS), metavar="METHOD",
        help=f"methods compared in one run, from {', '.join(METHODS)} (default: {' '.join(ProtocolConfig().methods)})",
    )  # fmt: skip
    p.add_argument(
        "--intervention", default="all", choices=["all", "affirmative"],
        help="steerfair: move every (gender, occupation) cell, or only the other gender's (default: all)",
    )  # fmt: skip
    p.add_argument(
        "--criterion", default="equal_opportunity", choices=["equal_opportunity", "demographic_parity"],
        help="recorded with the results; the ideal is the same for both (docs/theory.md: one set of conditions "
        "serves DP, EO and equalized odds), so it does not change the steering",
    )  # fmt: skip
    p.add_argument(
        "--rank", type=int, default=None,
        help="steer inside the top-RANK principal subspace only (0: all; default 128, or all of a smaller encoding)",
    )  # fmt: skip
    p.add_argument(
        "--test-mode", default="posterior", choices=["posterior", "group"],
        help="steerfair at test time: the posterior mixture of cell maps, or one map per gender (default: posterior)",
    )  # fmt: skip
    p.add_argument(
        "--target", default="ideal", choices=["ideal", "shared"],
        help="steerfair's target: the nearest ideal's cell maps (default) or the label-free shared target",
    )  # fmt: skip
    p.add_argument(
        "--share-covariance", type=float, default=0.0,
        help="weight of the group-pooled class covariance in every cell's covariance (default 0: cell covariances)",
    )  # fmt: skip
    p.add_argument(
        "--train-mode",
        default="test",
        choices=["test", "label"],
        help="move training rows like test rows (default) or by their own cell map",
    )
    p.add_argument(
        "--oracle-labels",
        action="store_true",
        help="diagnostic: move test rows by their gold occupation's map (not a deployable method)",
    )
    p.add_argument("--no-priors", action="store_true", help="do not reweight the classifier to the ideal priors")
    p.add_argument("--exclude", nargs="*", default=[], help="occupations left out of the gap statistics")
    p.add_argument(
        "--share-split", default="train", choices=["train", "all"],
        help="rows from which each occupation's share of women is read for the gap correlation (default: train)",
    )  # fmt: skip
    p.add_argument(
        "--sign", default="signed", choices=["signed", "absolute"],
        help="correlate the signed or the absolute per-occupation gaps with the share of women (default: signed)",
    )  # fmt: skip
    p.add_argument("--cache-dir", default=None, help="encoding cache (default: $STEERFAIR_CACHE/encodings)")
    p.add_argument("--out", default="results/bios", help="output folder (default: results/bios)")
    p.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")


def config_from_args(args: argparse.Namespace) -> ProtocolConfig:
    """The :class:`~steerfair.evaluation.bios_protocol.ProtocolConfig` of parsed :func:`add_arguments` options."""
    return ProtocolConfig(
        seeds=args.seeds,
        methods=tuple(args.methods),
        criterion=args.criterion,
        intervention=args.intervention,
        rank=ProtocolConfig.rank if args.rank is None else (args.rank or None),
        test_mode=args.test_mode,
        target=args.target,
        share_covariance=args.share_covariance,
        train_mode=args.train_mode,
        oracle_labels=args.oracle_labels,
        priors=not args.no_priors,
        exclude=tuple(args.exclude),
        share_split=args.share_split,
        sign=args.sign,
    )


def main(args: argparse.Namespace) -> int:
    """Run ``steerfair bios`` on parsed :func:`add_arguments` options; print the table and return 0."""
    check_arguments(args)  # before any work (``steerfair bios`` has already reported these as usage errors)
    results = run_bios(
        args.model,
        args.data,
        layer=args.layer,
        pooling=args.pooling,
        max_per_class=(BUG_DEFAULT_CAP if args.max_per_class is None else args.max_per_class) or None,
        max_length=args.max_length,
        out=args.out,
        config=config_from_args(args),
        cache_dir=args.cache_dir,
        overwrite=getattr(args, "overwrite", False),
        cap_rank=args.rank is None,
    )
    print()
    print(markdown(results))
    print(f"\nwrote {args.out}/results.json, results.md, gaps.png ({results['seconds_total']:.0f} s)")
    return 0


def _check_positive(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


def check_cache_dir(cache_dir: str | None) -> None:
    """The encoding cache must be a writable folder (created here), before hours of encoding are spent."""
    from ..llm.models import cache_dir as default_cache

    root = Path(cache_dir) if cache_dir is not None else default_cache() / "encodings"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--cache-dir {str(root)!r} cannot be created ({exc.strerror})") from None
    if not os.access(root, os.W_OK):
        raise ValueError(f"--cache-dir {str(root)!r} is not writable")


def check_model_layer(model: str, layer: int | None) -> None:
    """``--model`` must name a model whose config can be read (no weights loaded) and ``--layer`` one of its blocks."""
    from ..llm.models import model_depth

    try:
        depth = model_depth(model)
    except ValueError as exc:
        raise ValueError(f"--model: {exc}") from None
    if layer is not None and depth is not None and not -depth <= layer < depth:
        raise ValueError(f"--layer {layer} is out of range for {model} ({depth} blocks: use -{depth}..{depth - 1})")


def check_bug_cap(max_per_class: int) -> None:
    """``--max-per-class`` for BUG: 0 (no cap) or at least twice the sentences each gender needs to keep an
    occupation (:func:`~steerfair.datasets.bios.load_bug`'s ``min_per_group``)."""
    lowest = 2 * inspect.signature(load_bug).parameters["min_per_group"].default
    if max_per_class < 0 or 0 < max_per_class < lowest:
        raise ValueError(
            f"--max-per-class must be 0 (no cap) or at least {lowest} (twice the sentences each gender needs to "
            f"keep an occupation); got {max_per_class}"
        )


def _option(word: str, args: argparse.Namespace) -> str:
    """``share_covariance`` -> ``--share-covariance`` when it is an option of the command, else the word."""
    return f"--{word.replace('_', '-')}" if word in vars(args) else word


def check_arguments(args: argparse.Namespace) -> None:
    """Raise a ``ValueError`` naming the option for an unusable ``steerfair bios`` argument or output folder.

    Runs before any work: counts must be positive, ``--model`` readable and ``--layer`` one of its blocks,
    ``--rank`` at most the alias's dimension (other encoders: checked once the encoding's dimension is known), and
    ``--out`` writable without replacing results (``--overwrite``).
    """
    for name in ("seeds", "max_length"):
        value = getattr(args, name)
        if value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1; got {value}")
    if args.max_per_class is not None and args.data != "bug":
        raise ValueError(f"--max-per-class caps BUG's occupations; --data {args.data} takes every row (leave it out)")
    if args.max_per_class is not None and args.max_per_class < 0:
        raise ValueError(f"--max-per-class must be non-negative (0: no cap); got {args.max_per_class}")
    if args.data == "bug":
        check_bug_cap(BUG_DEFAULT_CAP if args.max_per_class is None else args.max_per_class)
    try:
        check_bios_source(args.data)
    except ValueError as exc:
        raise ValueError(f"--data: {exc}") from None
    check_model_layer(args.model, args.layer)
    check_cache_dir(args.cache_dir)
    if args.rank is not None and args.rank < 0:
        raise ValueError(f"--rank must be non-negative (0: steer all dimensions); got {args.rank}")
    from ..llm.models import ALIAS_HIDDEN_SIZES  # (lazy: the command's --help imports no torch)

    dim = ALIAS_HIDDEN_SIZES.get(args.model)
    if dim is not None and args.rank is not None and args.rank > dim:
        raise ValueError(f"--rank {args.rank} exceeds {args.model}'s dimension {dim}; pass --rank <= {dim} (0: all)")
    distinct(args.methods, "--methods")
    distinct(args.exclude, "--exclude")
    try:
        config_from_args(args)  # the protocol's own checks, in its field names: said as the options here
    except ValueError as exc:
        raise ValueError(re.sub(r"\b([a-z]+(?:_[a-z]+)+)\b", lambda m: _option(m.group(1), args), str(exc))) from None
    if args.exclude and args.data == "bug":  # the occupations are known without encoding (about 2 s)
        cap = BUG_DEFAULT_CAP if args.max_per_class is None else args.max_per_class
        known = {str(c) for c in load_bug(max_per_class=cap or None).labels}
        unknown = [c for c in args.exclude if c not in known]
        if unknown:
            raise ValueError(f"--exclude names no occupation of BUG: {unknown}; occupations: {sorted(known)}")
    check_output(args.out, RESULT_FILES, overwrite=getattr(args, "overwrite", False))

"""Streaming texts through a model into :class:`~steerfair.llm.stats.ActivationStats` (:func:`collect`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import nn

from ..membership import Membership
from .capture import capture_blocks
from .pooling import check_pooling
from .stats import ActivationStats, declare_values

__all__ = ["collect"]


def _check_positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _memberships(
    n: int, groups: Any, labels: Any, stats: ActivationStats | None, group_labels: Sequence[Any] | None
) -> tuple[Membership, Membership | None]:
    """The group and label memberships of ``n`` texts, read against ``stats`` when given."""
    if stats is not None:
        if not isinstance(stats, ActivationStats):
            raise TypeError(f"stats must be an ActivationStats; got {type(stats).__name__}")
        G = stats.group_membership(groups)
        if labels is not None and stats.labels is None:
            raise ValueError("stats were declared without labels; pass labels=None")
        H = None if labels is None else stats.label_membership(labels, n)
        if H is None and stats.labels is not None:
            raise ValueError(f"stats are labelled {list(stats.labels)}; pass labels")
    else:
        columns = None if group_labels is None else declare_values(group_labels, "group_labels")
        G = Membership.parse(groups, labels=columns, name="groups", min_groups=1)
        H = None if labels is None else Membership.parse(labels, name="labels", min_groups=1)
    lengths = {"texts": n, "groups": G.n} | ({} if H is None else {"labels": H.n})
    if len(set(lengths.values())) > 1:
        raise ValueError("mismatched lengths: " + ", ".join(f"{k}={v}" for k, v in lengths.items()))
    return G, H


def collect(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    groups: Sequence[Any] | Any,
    labels: Sequence[Any] | None = None,
    *,
    layers: int | str | Sequence[int | str],
    pooling: str = "mean",
    batch_size: int = 16,
    max_length: int = 256,
    layer_path: str | None = None,
    progress: bool = True,
    stats: ActivationStats | None = None,
    group_labels: Sequence[Any] | None = None,
) -> ActivationStats:
    """Stream ``texts`` through ``model`` and accumulate pooled block outputs per (layer, group, label).

    The blocks chosen by ``layers`` are captured by :func:`~steerfair.llm.capture.capture_blocks` (see there for
    hooks, padding, eval mode and early stopping), pooled with the attention mask (see :func:`pool_hidden`) and
    added to the statistics batch by batch, so memory does not grow with the number of texts.

    Args:
        model: a ``transformers`` model.
        tokenizer: its tokenizer.
        texts: the input texts.
        groups: one group value per text, or an ``(n_texts, k)`` array of group probabilities (soft membership,
            see :meth:`ActivationStats.update`) whose columns are ``stats.groups`` when ``stats`` is given, else
            ``group_labels`` (default ``0..k-1``); read by :class:`~steerfair.membership.Membership`.
        labels: one label value per text, or ``None``.
        layers: block indices, ``"all"`` or block names.
        pooling: one of :data:`POOLINGS` (recorded in ``stats.pooling``); ``"tokens"`` adds one row per real token
            but each text's first (a decoder's attention sink), ``"all"`` one per real token. The hooks of
            :func:`~steerfair.llm.attach` move token states: fit their maps on ``"tokens"`` (``"last"`` for
            ``positions="last"``); maps of pooled text states (``"mean"``) are for pooled encodings.
        batch_size: texts per forward pass.
        max_length: truncation length in tokens.
        layer_path: dotted path of the block list, if it cannot be found automatically.
        progress: show a ``tqdm`` progress bar.
        stats: statistics to continue (updated in place and returned); its declared groups and
            labels must cover the inputs and its layers the requested blocks. Without it the groups
            and labels are the sorted unique input values. For sharded or distributed collection,
            declare the full values here so that every shard's statistics can be merged.
        group_labels: names of the probability columns of a 2-D ``groups`` (without ``stats``).

    Returns:
        The statistics (``stats`` itself when given). If an error interrupts the run, ``stats``
        holds the batches completed before it.

    Raises:
        ValueError: for empty or mismatched inputs, unknown pooling or layers, undeclared values,
            texts that tokenize to nothing, or NaN/inf activations.
    """
    from tqdm.auto import tqdm

    check_pooling(pooling)
    if isinstance(texts, (str, bytes)):
        raise ValueError("texts must be a sequence of strings, not a single string")
    texts = list(texts)
    n = len(texts)
    if n == 0:
        raise ValueError("texts is empty")
    for j, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"texts[{j}] is a {type(t).__name__}, not a string")
    G, H = _memberships(n, groups, labels, stats, group_labels)
    if stats is not None and stats.pooling not in (None, pooling):
        raise ValueError(
            f"stats hold rows of pooling {stats.pooling!r}; collecting pooling={pooling!r} into them would mix "
            f"token states and pooled text states: pass pooling={stats.pooling!r} or start new statistics"
        )
    if stats is not None:
        stats.pooling = pooling
    batch_size = _check_positive(batch_size, "batch_size")
    max_length = _check_positive(max_length, "max_length")
    with capture_blocks(model, tokenizer, layers, pooling=pooling, layer_path=layer_path, max_length=max_length) as cap:
        if stats is not None:
            missing = [i for i in cap.layers if i not in stats.layers]
            if missing:
                raise ValueError(f"layers {missing} are not among the declared layers {list(stats.layers)} of stats")
        with tqdm(total=n, desc="collecting activations", unit="text", disable=not progress) as bar:
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                pooled = cap.run(texts[start:stop], range(start, stop))
                if stats is None:
                    slots = None if H is None else H.labels.tolist()
                    dim = pooled[cap.layers[0]][0].shape[1]
                    stats = ActivationStats(cap.layers, G.labels.tolist(), slots, dim)
                    stats.pooling = pooling  # what a row is (token state or pooled text state)
                for i, (rows, seq) in pooled.items():
                    at = start + seq.cpu().numpy()
                    stats.update(i, rows, G.rows(at), None if H is None else H.rows(at))
                bar.update(stop - start)
    assert stats is not None
    if float(stats.counts.sum()) == 0.0:
        raise ValueError(
            f"no rows were collected: with pooling={pooling!r} a text gives a row per token but its first, and every "
            "text here has one token; use longer texts or pooling='all'"
        )
    return stats

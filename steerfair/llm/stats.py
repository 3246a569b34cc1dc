"""Streamed sufficient statistics of transformer hidden states, per (layer, group, label).

:func:`collect` runs texts through a model in batches, captures the output of the chosen transformer
blocks with forward hooks, pools each sequence to one row (or keeps every token), and accumulates
counts, sums and sums of outer products in an :class:`ActivationStats`. Memory is independent of the
number of texts: only one batch of activations is alive at a time. Statistics from shards (or from the
ranks of a ``torch.distributed`` job) add up exactly, so :meth:`ActivationStats.merge` and
:meth:`ActivationStats.all_reduce` give the statistics of one pass over all texts, and
:meth:`ActivationStats.to_model` turns them into a :class:`~steerfair.GroupConditionalModel`.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..model import Family, GroupConditionalModel
from .layers import resolve_layers

__all__ = ["POOLINGS", "ActivationStats", "collect", "pool_hidden"]

POOLINGS: tuple[str, ...] = ("mean", "last", "first", "cls", "all")
_FORMAT = "steerfair.ActivationStats"
_FORMAT_VERSION = 1
_META_KEY = "steerfair"


# ----------------------------------------------------------------------------------------- pooling
def _check_pooling(pooling: str) -> str:
    if not isinstance(pooling, str) or pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; use one of {POOLINGS}")
    return pooling


def pool_hidden(
    hidden: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pool hidden states ``(batch, seq, d)`` to rows, ignoring padding.

    Args:
        hidden: hidden states ``(batch, seq, d)``.
        attention_mask: ``(batch, seq)`` of 0/1 (non-zero = real token), or ``None`` for no padding.
            Left and right padding are both handled: positions are taken from the mask.
        pooling: ``"mean"`` (masked mean over real tokens, accumulated in at least float32),
            ``"last"`` (last real token), ``"first"`` / ``"cls"`` (first real token), or ``"all"``
            (every real token, one row each).

    Returns:
        ``(rows, seq_index)``: ``rows`` is ``(n, d)`` and ``seq_index`` ``(n,)`` (int64) gives the
        sequence of the batch each row came from (``n = batch`` except for ``"all"``).

    Raises:
        ValueError: for an unknown pooling, bad shapes, or a sequence without any real token.
    """
    _check_pooling(pooling)
    if not isinstance(hidden, torch.Tensor) or hidden.ndim != 3:
        shape = tuple(hidden.shape) if isinstance(hidden, torch.Tensor) else type(hidden).__name__
        raise ValueError(f"hidden must be a tensor of shape (batch, seq, d); got {shape}")
    b, s, _ = hidden.shape
    device = hidden.device
    if attention_mask is None:
        mask = torch.ones(b, s, dtype=torch.bool, device=device)
    else:
        if not isinstance(attention_mask, torch.Tensor):
            attention_mask = torch.as_tensor(attention_mask)
        if tuple(attention_mask.shape) != (b, s):
            raise ValueError(f"attention_mask must have shape ({b}, {s}); got {tuple(attention_mask.shape)}")
        mask = attention_mask.to(device) != 0
    lengths = mask.sum(dim=1)
    if bool((lengths == 0).any()):
        empty = torch.nonzero(lengths == 0).flatten().tolist()
        raise ValueError(f"sequence(s) {empty} of the batch have no non-pad token")
    batch_index = torch.arange(b, device=device)
    if pooling == "mean":
        acc = torch.promote_types(hidden.dtype, torch.float32)
        # masked_fill (not a product) so that NaN/inf at padded positions cannot leak into the mean
        total = hidden.to(acc).masked_fill(~mask[..., None], 0).sum(dim=1)
        return total / lengths[:, None].to(acc), batch_index
    if pooling == "all":
        seq_index, tok_index = torch.nonzero(mask, as_tuple=True)
        return hidden[seq_index, tok_index], seq_index
    pos = torch.arange(s, device=device).expand(b, s)
    if pooling == "last":
        idx = torch.where(mask, pos, -1).amax(dim=1)
    else:  # "first" / "cls"
        idx = torch.where(mask, pos, s).amin(dim=1)
    return hidden[batch_index, idx], batch_index


# ------------------------------------------------------------------------------------ label values
def _scalar(v: Any) -> Any:
    """Numpy / torch scalars -> Python scalars (so that ``1`` and ``np.int64(1)`` are one value)."""
    if isinstance(v, (np.generic, torch.Tensor)) and getattr(v, "ndim", 0) == 0:
        return v.item()
    return v


def _as_values(values: Any, name: str) -> list[Any]:
    """A 1-D sequence of hashable, non-missing label values as a Python list."""
    if values is None or isinstance(values, (str, bytes)):
        raise ValueError(f"{name} must be a sequence of values, one per item; got {type(values).__name__}")
    if hasattr(values, "to_numpy"):  # pandas
        values = values.to_numpy()
    if isinstance(values, (np.ndarray, torch.Tensor)):
        if values.ndim != 1:
            raise ValueError(f"{name} must be 1-D; got shape {tuple(values.shape)}")
        out = values.tolist()
    else:
        try:
            out = [_scalar(v) for v in values]
        except TypeError:
            raise ValueError(f"{name} must be a sequence of values; got {type(values).__name__}") from None
    for v in out:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            raise ValueError(f"{name} contains missing values (None or NaN)")
        if not isinstance(v, Hashable):
            raise ValueError(f"{name} contains the unhashable value {v!r}")
    return out


def _sorted_unique(values: Iterable[Any]) -> tuple[Any, ...]:
    uniq = set(values)
    try:
        return tuple(sorted(uniq))
    except TypeError:  # mixed types: a deterministic order all the same
        return tuple(sorted(uniq, key=lambda v: (type(v).__name__, repr(v))))


def _declare(values: Sequence[Any], name: str) -> tuple[Any, ...]:
    out = tuple(_as_values(values, name))
    if not out:
        raise ValueError(f"{name} is empty; declare at least one value")
    if len(set(out)) != len(out):
        dup = next(v for i, v in enumerate(out) if v in out[:i])
        raise ValueError(f"{name} lists {dup!r} twice")
    return out


def _json_value(v: Any) -> bool:
    """Whether ``v`` survives a JSON round trip unchanged (value and type)."""
    if isinstance(v, float) and not math.isfinite(v):
        return False
    if not isinstance(v, (str, int, float, bool)):
        return False
    back = json.loads(json.dumps(v))
    return back == v and type(back) is type(v)


def _soft_matrix(groups: Any) -> np.ndarray | None:
    """A 2-D numeric array / tensor of group probabilities as float64 numpy, else ``None``."""
    if isinstance(groups, torch.Tensor):
        return groups.detach().cpu().to(torch.float64).numpy() if groups.ndim == 2 else None
    if isinstance(groups, np.ndarray) and groups.ndim == 2 and groups.dtype.kind in "fiub":
        return groups.astype(np.float64)
    return None


# ---------------------------------------------------------------------------------- the statistics
class ActivationStats:
    """Sufficient statistics of activations per (layer, group, label): counts, sums, outer products.

    All three are dense float64 CPU tensors: ``counts`` ``(L, k, m)``, ``sums`` ``(L, k, m, d)`` and
    ``outer`` ``(L, k, m, d, d)`` (the sum of ``x x^T``), for ``L`` layers, ``k`` groups, ``m``
    labels (``m = 1`` with the single label slot ``None`` when ``labels`` is ``None``) and hidden
    size ``d``. They add up over shards, so :meth:`merge` / :meth:`all_reduce` are exact up to
    float64 rounding.

    Memory: ``outer`` takes ``k * m * d * d * 8`` bytes per layer (e.g. 512 MiB for ``d = 4096``
    with two groups and two labels), plus ``k * m * d * 8`` for ``sums``.

    Moments come from raw sums (``cov = outer / n - mu mu^T``), which in float64 is accurate unless
    the activations' mean is enormous relative to their spread (relative error about
    ``1e-16 * |mu|^2 / var``).

    Args:
        layers: block indices (non-negative ints, as returned by :func:`~steerfair.llm.layers.resolve_layers`).
        groups: the group values (hashable, distinct).
        labels: the label values, or ``None`` for unlabelled statistics.
        dim: the hidden size ``d``.
    """

    def __init__(self, layers: Sequence[int], groups: Sequence[Any], labels: Sequence[Any] | None, dim: int) -> None:
        if isinstance(layers, (int, np.integer)):
            layers = [int(layers)]
        lay = tuple(int(i) if isinstance(i, np.integer) else i for i in layers)
        if not lay:
            raise ValueError("layers is empty; declare at least one layer")
        for i in lay:
            if isinstance(i, bool) or not isinstance(i, int) or i < 0:
                raise ValueError(f"layers must be non-negative block indices; got {i!r}")
        if len(set(lay)) != len(lay):
            raise ValueError(f"layers lists an index twice: {list(lay)}")
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim must be a positive integer; got {dim!r}")
        self.layers: tuple[int, ...] = lay
        self.groups: tuple[Any, ...] = _declare(groups, "groups")
        self.labels: tuple[Any, ...] | None = None if labels is None else _declare(labels, "labels")
        self.dim: int = int(dim)
        self._layer_pos = {layer: j for j, layer in enumerate(self.layers)}
        self._group_pos = {g: j for j, g in enumerate(self.groups)}
        self._label_pos = {} if self.labels is None else {y: j for j, y in enumerate(self.labels)}
        L, k, m, d = len(self.layers), len(self.groups), len(self.label_slots), self.dim
        self.counts = torch.zeros(L, k, m, dtype=torch.float64)
        self.sums = torch.zeros(L, k, m, d, dtype=torch.float64)
        self.outer = torch.zeros(L, k, m, d, d, dtype=torch.float64)

    # ------------------------------------------------------------------ description
    @property
    def label_slots(self) -> tuple[Any, ...]:
        """The label values, or ``(None,)`` for unlabelled statistics."""
        return (None,) if self.labels is None else self.labels

    @property
    def nbytes(self) -> int:
        """Memory held by the three tensors, in bytes."""
        return sum(t.numel() * t.element_size() for t in (self.counts, self.sums, self.outer))

    def _declaration(self) -> tuple[Any, ...]:
        return (self.layers, self.groups, self.labels, self.dim)

    def __repr__(self) -> str:
        return (
            f"ActivationStats(layers={list(self.layers)}, groups={list(self.groups)}, "
            f"labels={None if self.labels is None else list(self.labels)}, dim={self.dim}, "
            f"n={int(self.counts[0].sum().item()) if len(self.layers) else 0})"
        )

    def _empty_like(self) -> ActivationStats:
        return ActivationStats(self.layers, self.groups, self.labels, self.dim)

    def _check_same(self, other: Any) -> ActivationStats:
        if not isinstance(other, ActivationStats):
            raise TypeError(f"expected an ActivationStats; got {type(other).__name__}")
        for name, a, b in zip(
            ("layers", "groups", "labels", "dim"), self._declaration(), other._declaration(), strict=True
        ):
            if a != b:
                raise ValueError(f"cannot merge statistics with different {name}: {a!r} vs {b!r}")
        return other

    # ------------------------------------------------------------------ indices
    def _layer_index(self, layer: int) -> int:
        key = int(layer) if isinstance(layer, (np.integer, int)) and not isinstance(layer, bool) else layer
        if key not in self._layer_pos:
            raise ValueError(f"layer {layer!r} is not among the declared layers {list(self.layers)}")
        return self._layer_pos[key]

    def _cell(self, group: Any, label: Any) -> tuple[int, int]:
        group, label = _scalar(group), _scalar(label)
        if group not in self._group_pos:
            raise ValueError(f"group {group!r} is not among the declared groups {list(self.groups)}")
        if self.labels is None:
            if label is not None:
                raise ValueError("these statistics have no labels; leave label=None")
            return self._group_pos[group], 0
        if label not in self._label_pos:
            raise ValueError(f"label {label!r} is not among the declared labels {list(self.labels)}")
        return self._group_pos[group], self._label_pos[label]

    def _indices(self, values: Any, lookup: dict[Any, int], name: str, n: int) -> np.ndarray:
        vals = _as_values(values, name)
        if len(vals) != n:
            raise ValueError(f"mismatched lengths: rows={n}, {name}={len(vals)}")
        out = np.empty(n, dtype=np.int64)
        for j, v in enumerate(vals):
            try:
                out[j] = lookup[v]
            except KeyError:
                raise ValueError(
                    f"{name} contains {v!r}, which is not among the declared {name} {list(lookup)}"
                ) from None
        return out

    # ------------------------------------------------------------------ accumulation
    def _group_probabilities(self, groups: Any, n: int) -> np.ndarray | None:
        """``groups`` as an ``(n, k)`` float64 probability matrix if it is one (2-D numeric), else ``None``."""
        if isinstance(groups, torch.Tensor):
            if groups.ndim != 2:
                return None
            P = groups.detach().cpu().to(torch.float64).numpy()
        elif isinstance(groups, np.ndarray) or (
            isinstance(groups, (list, tuple)) and not any(isinstance(g, tuple) for g in self.groups)
        ):
            arr = np.asarray(groups)
            if arr.ndim != 2 or arr.dtype.kind not in "fiub":
                return None
            P = arr.astype(np.float64)
        else:
            return None
        k = len(self.groups)
        if P.shape != (n, k):
            raise ValueError(
                f"group probabilities must have shape ({n}, {k}) (columns: {list(self.groups)}); got {P.shape}"
            )
        if not np.all(np.isfinite(P)) or np.any(P < 0) or np.any(np.abs(P.sum(axis=1) - 1) > 1e-6):
            raise ValueError("group probabilities must be finite, non-negative, and each row must sum to 1")
        return P

    def update(self, layer: int, rows: Any, groups: Any, labels: Any = None) -> ActivationStats:
        """Add rows ``(n, d)`` of one layer, with one group (and label) value per row; returns ``self``.

        ``rows`` may be any real tensor or array, on any device: the products are formed in float64
        on the rows' device and accumulated on the CPU.

        ``groups`` may instead be an ``(n, k)`` array or tensor of group-membership probabilities (columns
        in the declared ``groups`` order, rows summing to 1): row ``j`` then adds ``P[j, a]`` to the count,
        ``P[j, a] x_j`` to the sum and ``P[j, a] x_j x_j^T`` to the outer products of every group ``a``
        (soft membership; counts become expected counts). One-hot rows are hard labels (identical results).

        Raises:
            ValueError: for an undeclared layer, group or label, mismatched lengths, a wrong width,
                labels given to unlabelled statistics (or missing for labelled ones), or NaN/inf rows.
        """
        li = self._layer_index(layer)
        if not isinstance(rows, torch.Tensor):
            try:
                rows = torch.as_tensor(np.asarray(rows, dtype=np.float64))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"rows must be numeric; could not convert to float ({exc})") from None
        if rows.is_complex() or rows.dtype == torch.bool:
            raise ValueError(f"rows must be real numbers; got dtype {rows.dtype}")
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(f"rows must have shape (n, {self.dim}); got {tuple(rows.shape)}")
        n = rows.shape[0]
        P = self._group_probabilities(groups, n)
        if P is not None and np.all((P == 0) | (P == 1)):
            gi, P = np.argmax(P, axis=1).astype(np.int64), None  # one-hot: hard labels
        elif P is None:
            gi = self._indices(groups, self._group_pos, "groups", n)
        if self.labels is None:
            if labels is not None:
                raise ValueError("these statistics were declared without labels; pass labels=None")
            yi = np.zeros(n, dtype=np.int64)
        else:
            if labels is None:
                raise ValueError(f"these statistics are labelled {list(self.labels)}; pass labels (one per row)")
            yi = self._indices(labels, self._label_pos, "labels", n)
        x = rows.detach().to(torch.float64)
        finite = torch.isfinite(x).all(dim=1)
        if not bool(finite.all()):
            bad = torch.nonzero(~finite).flatten().tolist()
            raise ValueError(f"rows contain NaN or infinite values (layer {self.layers[li]}, row(s) {bad[:10]})")
        m = len(self.label_slots)
        on_cpu = x.device.type == "cpu"
        if P is not None:
            self._update_soft(li, x, P, yi, on_cpu)
            return self
        cells = gi * m + yi
        for c in np.unique(cells).tolist():
            a, i = divmod(c, m)
            sel = np.flatnonzero(cells == c)
            xs = x[torch.as_tensor(sel, device=x.device)]
            self._accumulate(li, a, i, len(sel), xs, xs, on_cpu)
        return self

    def _update_soft(self, li: int, x: torch.Tensor, P: np.ndarray, yi: np.ndarray, on_cpu: bool) -> None:
        for i in np.unique(yi).tolist():
            for a in range(P.shape[1]):
                sel = np.flatnonzero((yi == i) & (P[:, a] > 0))
                if sel.size == 0:
                    continue
                xs = x[torch.as_tensor(sel, device=x.device)]
                w = torch.as_tensor(P[sel, a], dtype=torch.float64, device=x.device)
                self._accumulate(li, a, i, float(P[sel, a].sum()), xs * w[:, None], xs, on_cpu)

    def _accumulate(
        self, li: int, a: int, i: int, count: float, xw: torch.Tensor, xs: torch.Tensor, on_cpu: bool
    ) -> None:
        """Add one cell's rows ``xs`` (weighted: ``xw``) to layer ``li``, cell ``(a, i)``: ``count``, ``sum xw``
        and ``xw^T xs``."""
        self.counts[li, a, i] += count
        if on_cpu:
            self.sums[li, a, i] += xw.sum(dim=0)
            self.outer[li, a, i].addmm_(xw.T, xs)
        else:
            self.sums[li, a, i] += xw.sum(dim=0).cpu()
            self.outer[li, a, i] += (xw.T @ xs).cpu()

    def merge(self, other: ActivationStats) -> ActivationStats:
        """New statistics holding ``self`` plus ``other`` (same layers, groups, labels and dim)."""
        self._check_same(other)
        out = self._empty_like()
        out.counts = self.counts + other.counts
        out.sums = self.sums + other.sums
        out.outer = self.outer + other.outer
        return out

    def __add__(self, other: ActivationStats) -> ActivationStats:
        return self.merge(other)

    def __radd__(self, other: Any) -> ActivationStats:
        if isinstance(other, int) and other == 0:  # so that sum(shards) works
            return self.merge(self._empty_like())
        return NotImplemented

    def all_reduce(self, group: Any = None) -> ActivationStats:
        """Sum the statistics over the ranks of a ``torch.distributed`` process group, in place.

        Every rank must declare the same layers, groups, labels and dim (declare them up front, e.g.
        ``collect(..., stats=ActivationStats(...))``, since ranks may see different values); this is
        checked with a hash before summing. With the NCCL backend the tensors travel through the
        current CUDA device. Returns ``self``.

        Raises:
            RuntimeError: if ``torch.distributed`` is not initialised.
            ValueError: if the ranks declared different statistics.
        """
        dist = torch.distributed
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("torch.distributed is not initialised; call init_process_group first")
        backend = str(dist.get_backend(group)).lower()
        device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
        digest = hashlib.sha256(repr(self._declaration()).encode()).digest()
        h = torch.tensor(list(digest), dtype=torch.int64, device=device)
        lo, hi = h.clone(), h.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN, group=group)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX, group=group)
        if not torch.equal(lo, hi):
            raise ValueError(
                "the ranks declared different layers, groups, labels or dim; declare the same values on every "
                "rank (e.g. pass stats=ActivationStats(...) to collect)"
            )
        for name in ("counts", "sums", "outer"):
            t = getattr(self, name)
            buf = t.to(device)
            dist.all_reduce(buf, op=dist.ReduceOp.SUM, group=group)
            setattr(self, name, buf.cpu() if buf is not t else t)
        return self

    # ------------------------------------------------------------------ moments
    def count(self, layer: int, group: Any, label: Any = None) -> int | float:
        """Number of rows in a cell (an expected count, possibly fractional, after soft updates)."""
        a, i = self._cell(group, label)
        v = float(self.counts[self._layer_index(layer), a, i].item())
        return int(v) if v.is_integer() else v

    def mean(self, layer: int, group: Any, label: Any = None) -> torch.Tensor:
        """Mean ``(d,)`` (float64) of a cell; ``label`` is ``None`` for unlabelled statistics."""
        li = self._layer_index(layer)
        a, i = self._cell(group, label)
        n = float(self.counts[li, a, i].item())
        if n <= 0:
            raise ValueError(f"no samples in cell (layer={layer!r}, group={group!r}, label={label!r})")
        return self.sums[li, a, i] / n

    def cov(self, layer: int, group: Any, label: Any = None) -> torch.Tensor:
        """Maximum-likelihood covariance ``(d, d)`` (float64, symmetric) of a cell."""
        li = self._layer_index(layer)
        a, i = self._cell(group, label)
        n = float(self.counts[li, a, i].item())
        if n <= 0:
            raise ValueError(f"no samples in cell (layer={layer!r}, group={group!r}, label={label!r})")
        mu = self.sums[li, a, i] / n
        S = self.outer[li, a, i] / n - torch.outer(mu, mu)
        return 0.5 * (S + S.T)

    def to_model(self, layer: int, family: Family = "normal", **kwargs: Any) -> GroupConditionalModel:
        """The group/label-conditional model of one layer, via :meth:`GroupConditionalModel.from_moments`.

        ``kwargs`` (``shrinkage``, ``reg``, ``min_samples``) go to ``from_moments``. For
        ``family="lognormal"`` the statistics must be of ``log`` activations (update with log rows).

        Raises:
            ValueError: without at least 2 labels and 2 groups, or for an empty cell.
        """
        if self.labels is None or len(self.labels) < 2:
            raise ValueError("to_model needs labelled statistics with at least 2 labels (classes)")
        li = self._layer_index(layer)
        counts = self.counts[li]
        if bool((counts <= 0).any()):
            a, i = (int(v) for v in torch.nonzero(counts <= 0)[0])
            raise ValueError(
                f"no samples in cell (layer={layer!r}, group={self.groups[a]!r}, label={self.labels[i]!r})"
            )
        means = self.sums[li] / counts[..., None]
        covs = self.outer[li] / counts[..., None, None] - means[..., :, None] * means[..., None, :]
        covs = 0.5 * (covs + covs.transpose(-1, -2))
        return GroupConditionalModel.from_moments(
            list(self.groups), list(self.labels), counts.numpy(), means.numpy(), covs.numpy(), family, **kwargs
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the statistics to a ``.safetensors`` file (the declaration goes in its JSON metadata).

        Raises:
            ValueError: if a group or label value does not survive JSON (use str, int, float or bool).
        """
        from safetensors.torch import save_file

        for name, values in (("groups", self.groups), ("labels", self.labels or ())):
            for v in values:
                if not _json_value(v):
                    raise ValueError(
                        f"cannot save {name} value {v!r}: only str, int, finite float and bool survive JSON"
                    )
        meta = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "layers": list(self.layers),
            "groups": list(self.groups),
            "labels": None if self.labels is None else list(self.labels),
            "dim": self.dim,
        }
        tensors = {"counts": self.counts.contiguous(), "sums": self.sums.contiguous(), "outer": self.outer.contiguous()}
        save_file(tensors, os.fspath(path), metadata={_META_KEY: json.dumps(meta)})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ActivationStats:
        """Read statistics written by :meth:`save` (no pickle involved)."""
        from safetensors import safe_open

        with safe_open(os.fspath(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(_META_KEY)
            if raw is None:
                raise ValueError(f"{os.fspath(path)!r} was not written by ActivationStats.save (no metadata)")
            meta = json.loads(raw)
            if meta.get("format") != _FORMAT or meta.get("version") != _FORMAT_VERSION:
                raise ValueError(
                    f"{os.fspath(path)!r}: unsupported format {meta.get('format')!r} v{meta.get('version')}"
                )
            tensors = {name: f.get_tensor(name) for name in ("counts", "sums", "outer")}
        out = cls(meta["layers"], meta["groups"], meta["labels"], meta["dim"])
        for name, t in tensors.items():
            ref = getattr(out, name)
            if t.shape != ref.shape or t.dtype != torch.float64:
                raise ValueError(f"{name} has shape {tuple(t.shape)} / {t.dtype}; expected {tuple(ref.shape)} float64")
            setattr(out, name, t)
        return out


# --------------------------------------------------------------------------------------- collection
class _StopForward(Exception):
    """Raised by the hook of the deepest requested block: the rest of the forward pass is not needed."""


def _hidden_of(output: Any, layer: int) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        h = output
    elif isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        h = output[0]
    else:
        raise TypeError(
            f"block {layer} returned {type(output).__name__}; expected a tensor or a tuple starting with one"
        )
    if h.ndim != 3:
        raise ValueError(f"block {layer} returned hidden states of shape {tuple(h.shape)}; expected (batch, seq, d)")
    return h


def _input_device(model: nn.Module) -> torch.device:
    try:
        return model.get_input_embeddings().weight.device  # type: ignore[operator, union-attr]
    except (AttributeError, NotImplementedError, TypeError):
        param = next(model.parameters(), None)
        return param.device if param is not None else torch.device("cpu")


class _EmptyText(ValueError):
    """A text of the batch tokenizes to nothing (``index`` within the batch)."""

    def __init__(self, index: int) -> None:
        super().__init__(f"text {index} of the batch tokenizes to no tokens")
        self.index = index


def run_batch(
    model: nn.Module,
    tokenizer: Any,
    batch: Sequence[str],
    max_length: int,
    current: dict[str, Any],
    takes_positions: bool,
    extra: dict[str, Any],
) -> torch.Tensor:
    """Tokenize ``batch`` (padded, truncated), run the model (a hook may stop it early with ``_StopForward``) and
    return the attention mask, also left in ``current["mask"]`` for the hooks. With left padding, position ids
    come from the mask (as ``generate`` does) when the model accepts them."""
    enc = tokenizer(list(batch), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    device = _input_device(model)
    inputs = {k: v.to(device) for k, v in enc.items() if isinstance(v, torch.Tensor)}
    mask = inputs.get("attention_mask")
    if mask is None:
        mask = torch.ones_like(inputs["input_ids"])
    n_tokens = mask.sum(dim=1)
    if bool((n_tokens == 0).any()):
        raise _EmptyText(int(torch.nonzero(n_tokens == 0)[0].item()))
    if takes_positions and "position_ids" not in inputs and bool((mask[:, 0] == 0).any()):
        inputs["position_ids"] = (mask.long().cumsum(dim=1) - 1).clamp(min=0)
    current["mask"] = mask
    try:
        model(**inputs, **extra)
    except _StopForward:
        pass
    return mask


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _check_positive(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


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

    The outputs of the blocks chosen by ``layers`` (see :func:`~steerfair.llm.layers.resolve_layers`)
    are captured with forward hooks (always removed afterwards), pooled with the attention mask (see
    :func:`pool_hidden`) and added to the statistics batch by batch, so memory does not grow with the
    number of texts. The forward pass stops after the deepest requested block. The model runs in eval
    mode under ``torch.no_grad()`` (its train/eval flags are restored). With left padding, position ids
    are derived from the attention mask (as ``generate`` does) when the model accepts them, so left and
    right padding give the same statistics. A tokenizer without a pad token pads with its eos token
    for the duration of the call.

    Args:
        model, tokenizer: a ``transformers`` model and its tokenizer.
        texts: the input texts; ``groups`` (and ``labels``) give one value per text. ``groups`` may be an
            ``(n_texts, k)`` array of group probabilities instead (soft membership, see
            :meth:`ActivationStats.update`); its columns are ``stats.groups`` when ``stats`` is given, else
            ``group_labels`` (default ``0..k-1``).
        layers: block indices, ``"all"`` or block names.
        pooling: one of :data:`POOLINGS`; ``"all"`` adds one row per real token.
        batch_size, max_length: batching and truncation.
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

    _check_pooling(pooling)
    if isinstance(texts, (str, bytes)):
        raise ValueError("texts must be a sequence of strings, not a single string")
    texts = list(texts)
    n = len(texts)
    if n == 0:
        raise ValueError("texts is empty")
    for j, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValueError(f"texts[{j}] is a {type(t).__name__}, not a string")
    soft = _soft_matrix(groups)
    if soft is not None:
        declared = (
            stats.groups
            if stats is not None
            else (tuple(range(soft.shape[1])) if group_labels is None else _declare(group_labels, "group_labels"))
        )
        if soft.shape[1] != len(declared):
            raise ValueError(
                f"groups has {soft.shape[1]} probability columns for {len(declared)} groups {list(declared)}"
            )
        group_values: Any = soft
    else:
        group_values = _as_values(groups, "groups")
    label_values = None if labels is None else _as_values(labels, "labels")
    lengths = {"texts": n, "groups": len(group_values)}
    if label_values is not None:
        lengths["labels"] = len(label_values)
    if len(set(lengths.values())) > 1:
        raise ValueError("mismatched lengths: " + ", ".join(f"{k}={v}" for k, v in lengths.items()))
    batch_size = _check_positive(batch_size, "batch_size")
    max_length = _check_positive(max_length, "max_length")
    blocks = resolve_layers(model, layers, layer_path)
    order = sorted(blocks)
    if stats is not None:
        if not isinstance(stats, ActivationStats):
            raise TypeError(f"stats must be an ActivationStats; got {type(stats).__name__}")
        missing = [i for i in order if i not in stats.layers]
        if missing:
            raise ValueError(f"layers {missing} are not among the declared layers {list(stats.layers)} of stats")
        # fail before any forward pass rather than half-way through
        if soft is None:
            stats._indices(group_values, stats._group_pos, "groups", n)
        else:
            stats._group_probabilities(soft, n)
        if stats.labels is None and label_values is not None:
            raise ValueError("stats were declared without labels; pass labels=None")
        if stats.labels is not None:
            if label_values is None:
                raise ValueError(f"stats are labelled {list(stats.labels)}; pass labels")
            stats._indices(label_values, stats._label_pos, "labels", n)
    declared_groups = declared if soft is not None else _sorted_unique(group_values)
    declared_labels = None if label_values is None else _sorted_unique(label_values)

    extra: dict[str, Any] = {"use_cache": False} if _accepts(model.forward, "use_cache") else {}
    takes_positions = _accepts(model.forward, "position_ids")
    current: dict[str, Any] = {"mask": None}
    captured: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    deepest = order[-1]

    def make_hook(idx: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            captured[idx] = pool_hidden(_hidden_of(output, idx).detach(), current["mask"], pooling)
            if idx == deepest:
                raise _StopForward

        return hook

    restore_pad = False
    if getattr(tokenizer, "pad_token", None) is None:
        eos = getattr(tokenizer, "eos_token", None)
        if eos is None:
            raise ValueError("the tokenizer has neither a pad token nor an eos token; set tokenizer.pad_token")
        tokenizer.pad_token = eos
        restore_pad = True
    training = [mod for mod in model.modules() if mod.training]
    handles = [blocks[i].register_forward_hook(make_hook(i)) for i in order]
    try:
        model.eval()
        with torch.no_grad(), tqdm(total=n, desc="collecting activations", unit="text", disable=not progress) as bar:
            for start in range(0, n, batch_size):
                stop = min(start + batch_size, n)
                captured.clear()
                try:
                    run_batch(model, tokenizer, texts[start:stop], max_length, current, takes_positions, extra)
                except _EmptyText as exc:
                    j = start + exc.index
                    raise ValueError(f"texts[{j}] ({texts[j][:40]!r}) tokenizes to no tokens") from None
                not_run = [i for i in order if i not in captured]
                if not_run:
                    raise RuntimeError(f"the forward hooks of blocks {not_run} did not run; check layers/layer_path")
                for i in order:  # all layers finite before any update: a failed batch leaves no trace
                    if not bool(torch.isfinite(captured[i][0]).all()):
                        raise ValueError(f"block {i} produced NaN or infinite activations in texts[{start}:{stop}]")
                if stats is None:
                    dim = captured[order[0]][0].shape[1]
                    stats = ActivationStats(order, declared_groups, declared_labels, dim)
                for i in order:
                    rows, seq = captured[i]
                    seq_list = seq.tolist()
                    if soft is not None:
                        g: Any = soft[start + np.asarray(seq_list, dtype=np.int64)]
                    else:
                        g = [group_values[start + s] for s in seq_list]
                    y = None if label_values is None else [label_values[start + s] for s in seq_list]
                    stats.update(i, rows, g, y)
                captured.clear()
                bar.update(stop - start)
    finally:
        for handle in handles:
            handle.remove()
        captured.clear()
        current["mask"] = None
        for mod in training:
            mod.training = True
        if restore_pad:
            tokenizer.pad_token = None
    assert stats is not None
    return stats

"""Streamed statistics of transformer hidden states, per (layer, group, label), and their collection.

:func:`collect` runs texts through a model in batches (see :func:`steerfair.llm.capture.capture_blocks`), pools
each sequence to one row (or keeps every token), and adds every batch to an :class:`ActivationStats`. Per layer,
the statistics are one :class:`steerfair.statistics.CellStatistics`: weight, mean and centred covariance per
(group, label) cell in float64, merged batch by batch with the pairwise update of Chan, Golub and LeVeque, so
memory is independent of the number of texts and moments stay accurate far from the origin. Statistics of shards
(or of the ranks of a ``torch.distributed`` job) merge into those of one pass over all texts
(:meth:`ActivationStats.merge`, :meth:`ActivationStats.all_reduce`), and :meth:`ActivationStats.to_model` turns
them into a :class:`~steerfair.GroupConditionalModel`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import torch

from ..covariance import UNSET, CovarianceEstimator
from ..files import atomic_write, decode_label, encode_label
from ..membership import Membership
from ..model import Family, GroupConditionalModel
from ..statistics import CellStatistics
from ..validation import reject_continuous_labels
from .pooling import POOLINGS, pool_hidden

__all__ = ["POOLINGS", "ActivationStats", "declare_values", "pool_hidden"]

_FORMAT = "steerfair.ActivationStats"
_FORMAT_VERSION = 2  # v2: CellStatistics arrays per layer; v1 (raw counts / sums / outer products) still loads
_META_KEY = "steerfair"
#: Rows of a layer are buffered up to this many and merged into its statistics together (a merge costs about as
#: much as a few hundred rows' outer products, whatever the batch size).
_BUFFER_ROWS = 512


# ------------------------------------------------------------------------------------ declarations
def declare_values(values: Any, name: str) -> tuple[Any, ...]:
    """Declared values as a tuple of Python scalars: non-empty, hashable, not missing, distinct."""
    if values is None or isinstance(values, (str, bytes)):
        raise ValueError(f"{name} must be a sequence of values; got {type(values).__name__}")
    items = values.tolist() if isinstance(values, (np.ndarray, torch.Tensor)) else list(values)
    out = tuple(v.item() if isinstance(v, np.generic) else v for v in items)
    if not out:
        raise ValueError(f"{name} is empty; declare at least one value")
    for v in out:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            raise ValueError(f"{name} contains missing values (None or NaN)")
        if not isinstance(v, Hashable):
            raise ValueError(f"{name} contains the unhashable value {v!r}")
    if len(set(out)) != len(out):
        dup = next(v for i, v in enumerate(out) if v in out[:i])
        raise ValueError(f"{name} lists {dup!r} twice")
    return out


def _label_array(values: Sequence[Any]) -> np.ndarray:
    """``values`` as a 1-D array that gives back the same Python values (object dtype if numpy would coerce)."""
    arr = None if any(isinstance(v, tuple) or v is None for v in values) else np.asarray(values)
    if arr is None or arr.ndim != 1 or [type(v) for v in arr.tolist()] != [type(v) for v in values]:
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values)
    return arr


def _json_value(v: Any) -> bool:
    """Whether ``v`` survives a JSON round trip unchanged (value and type)."""
    if isinstance(v, float) and not math.isfinite(v):
        return False
    if not isinstance(v, (str, int, float, bool)):
        return False
    back = json.loads(json.dumps(v))
    return back == v and type(back) is type(v)


def _storable(v: Any) -> bool:
    """Whether a group / class label survives the JSON of :meth:`ActivationStats.save` (tuples in tagged form)."""
    if isinstance(v, tuple):
        return all(_storable(x) for x in v)
    return _json_value(v)


def _as_rows(rows: Any, dim: int) -> np.ndarray:
    """Rows ``(n, dim)`` of any real tensor or array (any device) as a float64 CPU array."""
    if isinstance(rows, torch.Tensor):
        if rows.is_complex() or rows.dtype == torch.bool:
            raise ValueError(f"rows must be real numbers; got dtype {rows.dtype}")
        rows = rows.detach().to(torch.float64).cpu().numpy()
    x = np.asarray(rows)
    if x.dtype.kind in "cb":
        raise ValueError(f"rows must be real numbers; got dtype {x.dtype}")
    try:
        x = x.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"rows must be numeric; could not convert to float ({exc})") from None
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"rows must have shape (n, {dim}); got {tuple(x.shape)}")
    return x


# ---------------------------------------------------------------------------------- the statistics
class ActivationStats:
    """Statistics of activations per (layer, group, label): one :class:`~steerfair.statistics.CellStatistics` per layer.

    Per layer and (group, label) cell: the total row weight, the total squared weight, the mean and the centred
    (maximum-likelihood) covariance, in float64 on the CPU, for ``L`` layers, ``k`` groups, ``m`` labels
    (``m = 1`` with the single label slot ``None`` when ``labels`` is ``None``) and hidden size ``d``. Every
    :meth:`update` merges the batch's moments with the pairwise update of Chan, Golub and LeVeque, and
    :meth:`merge` / :meth:`all_reduce` combine shards the same way, exact up to float64 rounding.

    Memory: the covariances take ``k * m * d * d * 8`` bytes per layer (e.g. 512 MiB for ``d = 4096`` with two
    groups and two labels), plus about as much again while a batch is merged.

    Attributes:
        layers: the declared block indices (non-negative).
        groups: the declared group values.
        labels: the declared label values, or ``None`` for unlabelled statistics.
        dim: the hidden size ``d``.
        pooling: what one row is (the :func:`~steerfair.llm.pooling.pool_hidden` name: ``"tokens"`` / ``"all"``
            one token's state, ``"mean"`` a text's mean state, ...), set by :func:`~steerfair.llm.collect`; ``None``
            if unknown.
            :meth:`merge` refuses statistics of different poolings, :func:`~steerfair.llm.fit_bundle` records it
            and :func:`~steerfair.llm.attach` warns when a bundle fitted on pooled states steers token states.

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
        self.groups: tuple[Any, ...] = declare_values(groups, "groups")
        self.labels: tuple[Any, ...] | None = None if labels is None else declare_values(labels, "labels")
        for values, name in ((self.groups, "groups"), (self.labels or (), "labels")):  # what update() will accept
            floats = np.asarray([v for v in values if isinstance(v, (float, np.floating))], dtype=np.float64)
            reject_continuous_labels(floats, name, "declare the values update() will be given (names or integer codes)")
        self.dim: int = int(dim)
        self.pooling: str | None = None
        self._layer_pos = {layer: j for j, layer in enumerate(self.layers)}
        self._group_domain = _label_array(self.groups)
        self._label_domain = _label_array(self.label_slots)
        self._cells = [CellStatistics.empty(self._group_domain, self._label_domain, self.dim) for _ in lay]

    # ------------------------------------------------------------------ storage
    @property
    def _cells(self) -> list[CellStatistics]:
        """The statistics of every layer, with the buffered rows merged in."""
        for li, pending in enumerate(self._pending):
            if pending:
                self._flush(li)
        return self._merged

    @_cells.setter
    def _cells(self, cells: list[CellStatistics]) -> None:
        self._merged = list(cells)
        self._pending: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in self._merged]

    def _flush(self, li: int) -> None:
        """Merge the buffered rows of layer ``li`` into its statistics (Chan's pairwise update)."""
        X, G, H = (np.concatenate(parts) for parts in zip(*self._pending[li], strict=True))
        groups = Membership(self._group_domain, G, "debiased" if np.any(G < 0) else "probabilities")
        batch = CellStatistics.from_rows(X, groups, Membership(self._label_domain, H, "labels"))
        self._merged[li] = self._merged[li].merge(batch)
        self._pending[li] = []

    # ------------------------------------------------------------------ description
    @property
    def label_slots(self) -> tuple[Any, ...]:
        """The label values, or ``(None,)`` for unlabelled statistics."""
        return (None,) if self.labels is None else self.labels

    @property
    def nbytes(self) -> int:
        """Memory held by the statistics' arrays, in bytes."""
        return sum(int(a.nbytes) for c in self._cells for a in c.state_dict().values())

    @property
    def counts(self) -> torch.Tensor:
        """Total row weight per cell, ``(L, k, m)`` float64 (a derived copy: editing it changes nothing)."""
        return torch.from_numpy(np.stack([c.counts for c in self._cells]))

    @property
    def sums(self) -> torch.Tensor:
        """Raw totals ``sum w x`` per cell, ``(L, k, m, d)`` float64 (derived from the means)."""
        return torch.from_numpy(np.stack([c.sums for c in self._cells]))

    @property
    def outer(self) -> torch.Tensor:
        """Raw totals ``sum w x x^T`` per cell, ``(L, k, m, d, d)`` float64 (derived from the moments)."""
        return torch.from_numpy(np.stack([c.outers for c in self._cells]))

    def _declaration(self) -> tuple[Any, ...]:
        return (self.layers, self.groups, self.labels, self.dim)

    def __repr__(self) -> str:
        return (
            f"ActivationStats(layers={list(self.layers)}, groups={list(self.groups)}, "
            f"labels={None if self.labels is None else list(self.labels)}, dim={self.dim}, "
            f"n={self._cells[0].counts.sum():g})"
        )

    def _with_cells(self, cells: list[CellStatistics]) -> ActivationStats:
        out = ActivationStats(self.layers, self.groups, self.labels, self.dim)
        out._cells = cells
        out.pooling = self.pooling
        return out

    def _check_same(self, other: Any) -> ActivationStats:
        if not isinstance(other, ActivationStats):
            raise TypeError(f"expected an ActivationStats; got {type(other).__name__}")
        for name, a, b in zip(
            ("layers", "groups", "labels", "dim"), self._declaration(), other._declaration(), strict=True
        ):
            if a != b:
                raise ValueError(f"cannot merge statistics with different {name}: {a!r} vs {b!r}")
        if None not in (self.pooling, other.pooling) and self.pooling != other.pooling:
            raise ValueError(
                f"cannot merge statistics of different poolings: {self.pooling!r} vs {other.pooling!r} (a row is a "
                "token's state with 'all', a text's pooled state otherwise); collect both with the same pooling"
            )
        return other

    # ------------------------------------------------------------------ cells
    def _layer_index(self, layer: int) -> int:
        key = int(layer) if isinstance(layer, (np.integer, int)) and not isinstance(layer, bool) else layer
        if key not in self._layer_pos:
            raise ValueError(f"layer {layer!r} is not among the declared layers {list(self.layers)}")
        return self._layer_pos[key]

    def cell_statistics(self, layer: int) -> CellStatistics:
        """The statistics of one layer as the library's statistics type (groups x label slots).

        Returns:
            The :class:`~steerfair.statistics.CellStatistics` of the declared block ``layer`` (immutable; later
            updates replace it). A ``ValueError`` for an undeclared layer.
        """
        return self._cells[self._layer_index(layer)]

    def group_membership(self, groups: Any) -> Membership:
        """Read a ``groups`` argument (labels, ``(n, k)`` probabilities or a Membership) against :attr:`groups`.

        Raises:
            ValueError: for an undeclared value, a wrong shape, rows that are not probabilities, or a Membership
                with other columns.
        """
        return _aligned(groups, self._group_domain, "groups")

    def label_membership(self, labels: Any, n: int) -> Membership:
        """Read a ``labels`` argument against :attr:`labels` (``None`` for unlabelled statistics, then ``n`` rows).

        Raises:
            ValueError: for an undeclared value, or labels given to unlabelled statistics (or missing for labelled).
        """
        if self.labels is None:
            if labels is not None:
                raise ValueError("these statistics were declared without labels; pass labels=None")
            return Membership.one_hot(np.zeros(n, dtype=np.int64), self._label_domain)
        if labels is None:
            raise ValueError(f"these statistics are labelled {list(self.labels)}; pass labels (one per row)")
        return _aligned(labels, self._label_domain, "labels")

    def _cell(self, layer: int, group: Any, label: Any, *, filled: bool = True) -> tuple[CellStatistics, int, int]:
        cells = self.cell_statistics(layer)
        a = self.group_membership([group]).indices()[0]
        i = self.label_membership(None if label is None else [label], 1).indices()[0]
        if filled and cells.counts[a, i] <= 0:
            raise ValueError(f"no samples in cell (layer={layer!r}, group={group!r}, label={label!r})")
        return cells, a, i

    # ------------------------------------------------------------------ accumulation
    def update(self, layer: int, rows: Any, groups: Any, labels: Any = None) -> ActivationStats:
        """Add rows ``(n, d)`` of one layer, with one group (and label) value per row; returns ``self``.

        ``rows`` may be any real tensor or array, on any device; they are copied to the CPU in float64, and up to
        a few hundred rows are buffered, then their moments (:meth:`CellStatistics.from_rows
        <steerfair.statistics.CellStatistics.from_rows>`) are merged into the layer's statistics. Every read
        merges the buffer first, so reads always see every row added.

        ``groups`` may instead be an ``(n, k)`` array or tensor of group-membership probabilities (columns in
        the declared ``groups`` order, rows summing to 1), or a :class:`~steerfair.membership.Membership`: row
        ``j`` then enters every group ``a`` with weight ``P[j, a]`` (soft membership; counts become expected
        counts). One-hot rows are hard labels (identical results).

        Raises:
            ValueError: for an undeclared layer, group or label, mismatched lengths, a wrong width,
                labels given to unlabelled statistics (or missing for labelled ones), or NaN/inf rows.
        """
        li = self._layer_index(layer)
        x = _as_rows(rows, self.dim)
        n = x.shape[0]
        G = self.group_membership(groups)
        if G.n != n:
            raise ValueError(f"mismatched lengths: rows={n}, groups={G.n}")
        H = self.label_membership(labels, n)
        if H.n != n:
            raise ValueError(f"mismatched lengths: rows={n}, labels={H.n}")
        finite = np.isfinite(x).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite).tolist()
            raise ValueError(f"rows contain NaN or infinite values (layer {self.layers[li]}, row(s) {bad[:10]})")
        if n == 0:  # e.g. a batch of one-token texts under pooling="tokens": nothing to add
            return self
        self._pending[li].append((x, G.weights, H.weights))
        if sum(len(part[0]) for part in self._pending[li]) >= _BUFFER_ROWS:
            self._flush(li)
        return self

    def merge(self, other: ActivationStats) -> ActivationStats:
        """New statistics holding ``self`` plus ``other`` (same layers, groups, labels, dim and known pooling)."""
        self._check_same(other)
        out = self._with_cells([a.merge(b) for a, b in zip(self._cells, other._cells, strict=True)])
        out.pooling = self.pooling if self.pooling is not None else other.pooling
        return out

    def __add__(self, other: ActivationStats) -> ActivationStats:
        return self.merge(other)

    def __radd__(self, other: Any) -> ActivationStats:
        if isinstance(other, int) and other == 0:  # so that sum(shards) works
            return self._with_cells(list(self._cells))
        return NotImplemented

    def all_reduce(self, group: Any = None) -> ActivationStats:
        """Merge the statistics over the ranks of a ``torch.distributed`` process group, in place.

        Every rank must declare the same layers, groups, labels and dim (declare them up front, e.g.
        ``collect(..., stats=ActivationStats(...))``, since ranks may see different values); this is
        checked with a hash before merging with :meth:`CellStatistics.all_reduce
        <steerfair.statistics.CellStatistics.all_reduce>`. Returns ``self``.

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
        self._cells = [c.all_reduce(group) for c in self._cells]
        return self

    # ------------------------------------------------------------------ moments
    def count(self, layer: int, group: Any, label: Any = None) -> int | float:
        """Row weight of a cell (an expected count, possibly fractional, after soft updates)."""
        cells, a, i = self._cell(layer, group, label, filled=False)
        v = float(cells.counts[a, i])
        return int(v) if v.is_integer() else v

    def mean(self, layer: int, group: Any, label: Any = None) -> torch.Tensor:
        """Mean ``(d,)`` (float64) of a cell; ``label`` is ``None`` for unlabelled statistics."""
        cells, a, i = self._cell(layer, group, label)
        return torch.from_numpy(cells.means[a, i].copy())

    def cov(self, layer: int, group: Any, label: Any = None) -> torch.Tensor:
        """Maximum-likelihood covariance ``(d, d)`` (float64, symmetric) of a cell."""
        cells, a, i = self._cell(layer, group, label)
        return torch.from_numpy(cells.covs[a, i].copy())

    def to_model(
        self,
        layer: int,
        family: Family = "normal",
        *,
        min_samples: float = 2,
        estimator: CovarianceEstimator | None = None,
        shrinkage: Any = UNSET,
        reg: Any = UNSET,
    ) -> GroupConditionalModel:
        """The group/label-conditional model of one layer (:meth:`GroupConditionalModel.from_statistics`).

        For ``family="lognormal"`` the statistics must be of ``log`` activations (update with log rows).

        Args:
            layer: a declared block index.
            family: ``"normal"`` or ``"lognormal"``.
            min_samples: the smallest cell weight accepted.
            estimator: the :class:`~steerfair.covariance.CovarianceEstimator` of every cell covariance.
            shrinkage: the estimator's shrinkage, as a loose keyword (not together with ``estimator``).
            reg: the estimator's regularisation, as a loose keyword (not together with ``estimator``).

        Raises:
            ValueError: without at least 2 labels and 2 groups, or for an empty cell.
        """
        if self.labels is None or len(self.labels) < 2:
            raise ValueError(
                "to_model needs labelled statistics with at least 2 labels (classes): collect(..., labels=...) with "
                "the class of every text (what the ideal keeps predictable, e.g. its occupation); the groups alone "
                "define no ideal"
            )
        cells = self.cell_statistics(layer)
        if np.any(cells.counts <= 0):
            a, i = (int(v) for v in np.argwhere(cells.counts <= 0)[0])
            raise ValueError(
                f"no samples in cell (layer={layer!r}, group={self.groups[a]!r}, label={self.labels[i]!r})"
            )
        est = CovarianceEstimator.of(estimator, shrinkage=shrinkage, reg=reg)
        return GroupConditionalModel.from_statistics(cells, family, est, min_samples=min_samples)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the statistics to a ``.safetensors`` file (the declaration goes in its JSON metadata).

        Args:
            path: the file to write.

        Raises:
            ValueError: if a group or label value does not survive JSON (use str, int, float or bool).
        """
        from safetensors.numpy import save

        for name, values in (("groups", self.groups), ("labels", self.labels or ())):
            for v in values:
                if not _storable(v):
                    raise ValueError(
                        f"cannot save {name} value {v!r}: only str, int, finite float, bool and tuples of those "
                        "survive JSON"
                    )
        meta = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "layers": list(self.layers),
            "groups": [encode_label(g) for g in self.groups],
            "labels": None if self.labels is None else [encode_label(v) for v in self.labels],
            "dim": self.dim,
            "pooling": self.pooling,
        }
        tensors = {}
        for layer, cells in zip(self.layers, self._cells, strict=True):
            tensors.update(cells.state_dict(prefix=f"layer{layer}."))
        tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
        atomic_write({os.fspath(path): save(tensors, metadata={_META_KEY: json.dumps(meta)})})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ActivationStats:
        """Read statistics written by :meth:`save` (no pickle involved); files of format version 1 load too.

        Version-1 files hold raw totals (counts, sums, outer products) and no squared weights: their cells are
        rebuilt with :meth:`CellStatistics.from_totals <steerfair.statistics.CellStatistics.from_totals>`, with
        unit row weights assumed for the effective sample size.

        Raises:
            FileNotFoundError: the file does not exist.
            ValueError: for a file that cannot be read, was not written by :meth:`save`, or has arrays of the wrong
                shape (the message names the path).
        """
        from safetensors import SafetensorError, safe_open

        where = repr(os.fspath(path))
        advice = "pass the path of a file written by ActivationStats.save (collect and save the statistics again)"
        if not os.path.exists(path):
            raise FileNotFoundError(f"activation statistics {where} do not exist; {advice}")
        try:
            with safe_open(os.fspath(path), framework="numpy") as f:
                raw = (f.metadata() or {}).get(_META_KEY)
                if raw is None:
                    raise ValueError(f"{where} was not written by ActivationStats.save (no metadata)")
                meta = json.loads(raw)
                version = meta.get("version")
                if meta.get("format") != _FORMAT or version not in (1, _FORMAT_VERSION):
                    raise ValueError(f"{where}: unsupported format {meta.get('format')!r} v{version}")
                tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
        except (SafetensorError, OSError) as exc:
            raise ValueError(f"cannot read activation statistics {where} ({exc}); {advice}") from None
        except (AttributeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            msg = str(exc) if str(exc).startswith(where) else f"{where}: unreadable metadata ({exc})"
            raise ValueError(f"{msg}; {advice}") from None
        try:
            declared = (
                meta["layers"],
                [decode_label(g) for g in meta["groups"]],
                None if meta["labels"] is None else [decode_label(v) for v in meta["labels"]],
                meta["dim"],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: incomplete metadata (missing or bad {exc}); {advice}") from None
        try:
            out = cls(*declared)
        except (TypeError, ValueError) as exc:  # the declared layers / groups / labels / dim themselves are bad
            raise ValueError(f"{where}: bad metadata ({exc}); {advice}") from None
        pooling = meta.get("pooling")  # absent from files written before it was recorded
        if pooling is not None and not isinstance(pooling, str):
            raise ValueError(f"{where}: the metadata's pooling {pooling!r} is not a pooling name; {advice}")
        out.pooling = pooling
        stored = {name.split(".", 1)[0] for name in tensors if name.startswith("layer")}
        undeclared = sorted(stored - {f"layer{layer}" for layer in out.layers})
        if version != 1 and undeclared:
            raise ValueError(f"{where}: arrays of {undeclared} that the metadata does not declare; {advice}")
        slots = out._group_domain, out._label_domain
        try:
            if version == 1:
                counts, sums, outer = (tensors[name] for name in ("counts", "sums", "outer"))
                out._cells = [
                    CellStatistics.from_totals(*slots, counts[j], sums[j], outer[j]) for j in range(len(out.layers))
                ]
            else:
                out._cells = [
                    CellStatistics.from_state_dict(tensors, *slots, prefix=f"layer{layer}.") for layer in out.layers
                ]
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"{where}: the arrays do not match the declaration ({exc})") from None
        for cells in out._cells:
            if cells.shape != (len(out.groups), len(out.label_slots), out.dim):
                raise ValueError(f"{where}: statistics of shape {cells.shape} do not match the declaration")
        return out


def _aligned(values: Any, domain: np.ndarray, name: str) -> Membership:
    """``values`` (labels, probabilities or a Membership) as a Membership over the declared ``domain``."""
    if isinstance(values, Membership):
        if values.labels.tolist() != domain.tolist():
            raise ValueError(f"{name} has columns {values.labels.tolist()}; the declared {name} are {domain.tolist()}")
        return values
    return Membership.align(values, domain, name=name)


def __getattr__(name: str) -> Any:
    # ``steerfair.llm.stats.collect`` (its old home) stays importable; it lives in ``steerfair.llm.collection``
    if name == "collect":
        from .collection import collect

        return collect
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

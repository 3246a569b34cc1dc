"""Mergeable sufficient statistics per (group, class) cell: the one statistics type every model is built from.

:class:`CellStatistics` holds, per cell, the total row weight, the total squared weight (for the effective
sample size), the weighted mean and the weighted maximum-likelihood covariance, all float64. Tabular arrays
(:meth:`CellStatistics.from_rows`), streamed activations (:class:`steerfair.llm.ActivationStats`, batch by
batch) and privatised reports (signed de-biased memberships, or statistics by reported group combined with the
inverse channel, :meth:`CellStatistics.combine_groups`) all reduce to it, and
:meth:`steerfair.GroupConditionalModel.from_statistics` turns it into a model.

Numerics: moments are kept centred (mean and covariance, never ``E[x x^T] - mu mu^T``); two statistics merge
with the pairwise update of Chan, Golub and LeVeque (exact in exact arithmetic, stable for data far from the
origin), and :meth:`CellStatistics.all_reduce` merges across ``torch.distributed`` ranks in two passes (global
means first, then covariances about them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .membership import Membership
from .validation import as_matrix, as_number, label_repr, symmetrize

__all__ = ["CellStatistics", "PSD_FLOOR", "psd_repair", "repair_correlation", "row_weights"]

#: Eigenvalues of a repaired covariance's correlation matrix are clipped at this value.
PSD_FLOOR = 1e-6


def psd_repair(S: Any, floor: float = 0.0) -> np.ndarray:
    """The symmetric matrix nearest to ``S`` (Frobenius) with eigenvalues ``>= floor``.

    ``S`` is symmetrised, decomposed with ``eigh`` and its eigenvalues are clipped at ``floor``.
    """
    A = np.asarray(S, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"S must be a square matrix; got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError("S contains NaN or infinite values")
    if not math.isfinite(floor) or floor < 0:
        raise ValueError(f"floor must be finite and >= 0; got {floor}")
    A = symmetrize(A)
    evals, V = np.linalg.eigh(A)
    if evals[0] >= floor:
        return A
    return symmetrize((V * np.maximum(evals, floor)) @ V.T)


def repair_correlation(S: np.ndarray, rel: float, where: str) -> np.ndarray:
    """Scale-free PSD repair: eigenvalues of the *correlation* matrix of ``S`` are clipped at ``rel``.

    Working in correlation units keeps the floor meaningful when features have very different scales (a floor
    relative to the largest eigenvalue would inflate the variance of every small-scale feature). A matrix whose
    correlation eigenvalues are all ``>= rel`` is returned unchanged (symmetrised). Without a positive diagonal,
    the floor is ``rel`` times the largest eigenvalue; a ``ValueError`` naming ``where`` if there is none.
    """
    S = symmetrize(np.asarray(S, dtype=np.float64))
    diag = np.diag(S)
    if np.all(diag > 0):
        s = np.sqrt(diag)
        return psd_repair(S / np.outer(s, s), rel) * np.outer(s, s)
    top = float(np.linalg.eigvalsh(S)[-1])
    if top <= 0:
        raise ValueError(
            f"the estimated covariance of {where} has no positive eigenvalue: too few rows for this epsilon "
            "(see docs/privacy.md for the sample size a given epsilon needs)"
        )
    return psd_repair(S, rel * top)


@dataclass(frozen=True, eq=False)
class CellStatistics:
    """Weighted moments per (group, class) cell, mergeable across data shards.

    Attributes:
        groups: the ``k`` group labels; ``classes``: the ``m`` class labels (``(None,)`` for unlabelled data).
        counts: ``(k, m)`` total row weight per cell (expected counts for soft memberships; estimates, possibly
            negative, for de-biased ones).
        sq_weights: ``(k, m)`` total squared row weight (the effective sample size is ``counts^2 / sq_weights``).
        means: ``(k, m, d)`` weighted means (zero in empty cells).
        covs: ``(k, m, d, d)`` weighted maximum-likelihood covariances about the cell means.
        signed: ``(k, m)`` bool: the cell was estimated with negative row weights (channel inversion); its
            covariance may be indefinite and is repaired before use.
        sizes: ``(k, m)`` membership mass ``sum G_ja H_ji`` without the row weights (the number of rows for hard
            labels; what ``min_samples`` is checked against); defaults to ``counts``.
    """

    groups: np.ndarray
    classes: np.ndarray
    counts: np.ndarray
    sq_weights: np.ndarray
    means: np.ndarray
    covs: np.ndarray
    signed: np.ndarray
    if TYPE_CHECKING:
        # __post_init__ turns every argument into an array and fills ``sizes`` (default: ``counts``)
        sizes: np.ndarray

        def __init__(
            self,
            groups: Sequence[Any] | np.ndarray,
            classes: Sequence[Any] | np.ndarray,
            counts: Any,
            sq_weights: Any,
            means: Any,
            covs: Any,
            signed: Any,
            sizes: Any = None,
        ) -> None: ...
    else:
        sizes: np.ndarray | None = None

    def __post_init__(self) -> None:
        groups, classes = _labels(self.groups), _labels(self.classes)
        k, m = len(groups), len(classes)
        counts = np.asarray(self.counts, dtype=np.float64)
        sq = np.asarray(self.sq_weights, dtype=np.float64)
        means = np.asarray(self.means, dtype=np.float64)
        covs = np.asarray(self.covs, dtype=np.float64)
        signed = np.asarray(self.signed, dtype=bool)
        for name, val in (("counts", counts), ("sq_weights", sq), ("signed", signed)):
            if val.shape != (k, m):
                raise ValueError(f"{name} must have shape ({k}, {m}); got {val.shape}")
        if means.ndim != 3 or means.shape[:2] != (k, m):
            raise ValueError(f"means must have shape ({k}, {m}, d); got {means.shape}")
        d = means.shape[2]
        if covs.shape != (k, m, d, d):
            raise ValueError(f"covs must have shape ({k}, {m}, {d}, {d}); got {covs.shape}")
        for name, val in (("counts", counts), ("sq_weights", sq), ("means", means), ("covs", covs)):
            if not np.all(np.isfinite(val)):
                raise ValueError(f"{name} contains NaN or infinite values")
        if np.any(sq < 0):
            raise ValueError("sq_weights (sums of squared row weights) must be >= 0")
        for name, labels in (("groups", groups), ("classes", classes)):
            if len({repr(v) for v in labels.tolist()}) != len(labels):
                raise ValueError(f"{name} must not repeat a label; got {labels.tolist()}")
        for name, val in (("groups", groups), ("classes", classes), ("counts", counts), ("sq_weights", sq)):
            object.__setattr__(self, name, val)
        sizes = counts if self.sizes is None else np.asarray(self.sizes, dtype=np.float64)
        if sizes.shape != (k, m) or not np.all(np.isfinite(sizes)):
            raise ValueError(f"sizes must be a finite ({k}, {m}) array")
        for name, val in (("means", means), ("covs", covs), ("signed", signed), ("sizes", sizes)):
            object.__setattr__(self, name, val)

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(cls, groups: Sequence[Any] | np.ndarray, classes: Sequence[Any] | np.ndarray, dim: int) -> CellStatistics:
        """Statistics of no data (the neutral element of :meth:`merge`)."""
        k, m = len(groups), len(classes)
        z = np.zeros((k, m))
        return cls(groups, classes, z, z, np.zeros((k, m, dim)), np.zeros((k, m, dim, dim)), z.astype(bool), z)

    @classmethod
    def from_rows(cls, X: Any, groups: Membership, classes: Membership, weights: Any = None) -> CellStatistics:
        """Moments of the rows of ``X`` per cell, with row weight ``w_j G_ja H_ji``.

        Args:
            X: rows ``(n, d)``.
            groups: the group :class:`~steerfair.membership.Membership` ``G`` (hard, soft or signed).
            classes: the class membership ``H``.
            weights: optional non-negative row weights ``w``.

        No rows (an empty last batch of a stream) give :meth:`empty` statistics, the neutral element of :meth:`merge`.
        """
        X = as_matrix(X, "X", min_rows=0)
        n, d = X.shape
        for value, name in ((groups, "groups"), (classes, "classes")):
            if not isinstance(value, Membership):
                raise TypeError(
                    f"{name} must be a steerfair.membership.Membership (e.g. Membership.parse(labels, name={name!r})); "
                    f"got {type(value).__name__}"
                )
        G, H = groups.weights, classes.weights
        if G.shape[0] != n or H.shape[0] != n:
            raise ValueError(f"memberships have {G.shape[0]} and {H.shape[0]} rows but X has {n}")
        w = row_weights(weights, n)
        k, m = G.shape[1], H.shape[1]
        counts, sq, sizes = np.zeros((k, m)), np.zeros((k, m)), np.zeros((k, m))
        means, covs = np.zeros((k, m, d)), np.zeros((k, m, d, d))
        signed = np.zeros((k, m), dtype=bool)
        present = (w != 0).astype(np.float64)  # a row of weight 0 is not a sample of its cell
        for a in range(k):
            for i in range(m):
                sizes[a, i] = float((G[:, a] * present) @ H[:, i])
                cw = w * G[:, a] * H[:, i]
                rows = np.flatnonzero(cw)
                if rows.size == 0:
                    continue
                c = cw[rows]
                total = float(c.sum())
                counts[a, i], sq[a, i], signed[a, i] = total, float(c @ c), bool(np.any(c < 0))
                if signed[a, i] and abs(total) <= 1e-6 * float(np.abs(c).sum()):
                    # (count, mean, centred covariance) cannot hold a signed cell whose weights cancel: its sums
                    # would be lost (total 0) or swamped by rounding (total near 0), in this shard and in any merge
                    raise ValueError(
                        f"cell ({label_repr(groups.labels[a])}, {label_repr(classes.labels[i])}) has signed "
                        f"(de-biased) weights that cancel (total {total:.3g} of {float(np.abs(c).sum()):.3g}): its "
                        "statistics cannot be represented; use larger shards, or de-bias the merged reports"
                    )
                if total == 0.0:
                    continue
                p = c / total
                Xs = X[rows]
                mean = p @ Xs
                mean = mean + p @ (Xs - mean)  # a correction pass keeps the digits a far offset costs the plain sum
                Xc = Xs - mean
                means[a, i], covs[a, i] = mean, symmetrize((Xc * p[:, None]).T @ Xc)
        return cls(groups.labels, classes.labels, counts, sq, means, covs, signed, sizes)

    # ------------------------------------------------------------------ views
    @property
    def dim(self) -> int:
        """Feature dimension ``d``."""
        return int(self.means.shape[2])

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(k, m, d)``."""
        return (len(self.groups), len(self.classes), self.dim)

    def effective_counts(self) -> np.ndarray:
        """``(sum w)^2 / sum w^2`` per cell (the row count for unit weights; 0 for empty cells)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.sq_weights > 0, self.counts**2 / self.sq_weights, 0.0)

    def __repr__(self) -> str:
        labels = f"groups={self.groups.tolist()}, classes={self.classes.tolist()}"
        return f"CellStatistics({labels}, d={self.dim}, n={self.counts.sum():g})"

    @classmethod
    def from_totals(
        cls,
        groups: Sequence[Any] | np.ndarray,
        classes: Sequence[Any] | np.ndarray,
        counts: Any,
        sums: Any,
        outers: Any,
        *,
        sq_weights: Any = None,
        signed: Any = None,
    ) -> CellStatistics:
        """Statistics from raw totals ``sum w``, ``sum w x`` and ``sum w x x^T`` per cell (e.g. a noisy release
        of the Gaussian mechanism). Raw second moments lose precision far from the origin: prefer
        :meth:`from_rows` and :meth:`merge` for data. ``sq_weights`` defaults to ``counts`` (unit weights)."""
        counts = np.asarray(counts, dtype=np.float64)
        sums = np.asarray(sums, dtype=np.float64)
        outers = np.asarray(outers, dtype=np.float64)
        if (
            counts.ndim != 2
            or sums.ndim != 3
            or sums.shape[:2] != counts.shape
            or outers.shape != (*sums.shape, sums.shape[2])
        ):
            raise ValueError(f"counts (k, m), sums (k, m, d) and outers (k, m, d, d) disagree: {counts.shape}, "
                             f"{sums.shape}, {outers.shape}")  # fmt: skip
        with np.errstate(divide="ignore", invalid="ignore"):
            means = np.where(counts[..., None] != 0, sums / counts[..., None], 0.0)
            covs = np.where(counts[..., None, None] != 0, outers / counts[..., None, None], 0.0)
        covs = covs - means[..., :, None] * means[..., None, :]
        covs = 0.5 * (covs + np.swapaxes(covs, -1, -2))
        sq = counts if sq_weights is None else sq_weights
        sgn = np.zeros(counts.shape, dtype=bool) if signed is None else signed
        return cls(groups, classes, counts, sq, means, covs, sgn)

    @property
    def sums(self) -> np.ndarray:
        """Raw totals ``sum w x`` per cell, ``(k, m, d)`` (a derived view)."""
        return self.counts[..., None] * self.means

    @property
    def outers(self) -> np.ndarray:
        """Raw totals ``sum w x x^T`` per cell, ``(k, m, d, d)`` (a derived view)."""
        return self.counts[..., None, None] * (self.covs + self.means[..., :, None] * self.means[..., None, :])

    # ------------------------------------------------------------------ algebra
    def _check_same(self, other: Any) -> CellStatistics:
        if not isinstance(other, CellStatistics):
            raise TypeError(f"expected CellStatistics; got {type(other).__name__}")
        if not (np.array_equal(self.groups, other.groups) and np.array_equal(self.classes, other.classes)):
            raise ValueError(
                f"cannot merge statistics with different groups or classes: groups {self.groups.tolist()} and "
                f"{other.groups.tolist()}, classes {self.classes.tolist()} and {other.classes.tolist()}; declare the "
                "full label sets on every shard (Membership.parse(..., labels=...))"
            )
        if self.dim != other.dim:
            raise ValueError(f"cannot merge statistics of dimension {self.dim} and {other.dim}")
        return other

    def merge(self, other: CellStatistics) -> CellStatistics:
        """The statistics of the union of both data sets (pairwise update; exact up to rounding)."""
        self._check_same(other)
        return self.combine_groups(np.hstack([np.eye(len(self.groups))] * 2), self.groups, _stack_groups(self, other))

    def __add__(self, other: CellStatistics) -> CellStatistics:
        if not isinstance(other, CellStatistics):
            return NotImplemented
        return self.merge(other)

    def __radd__(self, other: Any) -> CellStatistics:
        """``0 + stats`` is ``stats``, so that ``sum(shards)`` merges a list of shards."""
        if isinstance(other, (int, float)) and other == 0:
            return self
        return NotImplemented

    def combine_groups(
        self, coefficients: Any, labels: Sequence[Any] | np.ndarray, source: CellStatistics | None = None
    ) -> CellStatistics:
        """Statistics of the new groups ``b``, each the signed combination ``sum_a C[b, a] (cell a)`` of rows.

        A row of source group ``a`` enters new group ``b`` with its weight times ``C[b, a]``; with ``C`` the
        inverse of a randomized-response channel this de-biases statistics aggregated by reported group (the
        result equals fitting with the de-biased memberships, up to rounding). Means and covariances are
        combined about the new means (no raw second moments).

        Args:
            coefficients: ``(k_new, k)`` matrix ``C``.
            labels: the ``k_new`` new group labels.
            source: statistics to combine (default ``self``; used by :meth:`merge` on stacked groups).
        """
        src = self if source is None else source
        C = np.asarray(coefficients, dtype=np.float64)
        k_src = len(src.groups)
        if C.ndim != 2 or C.shape[1] != k_src or C.shape[0] != len(labels):
            raise ValueError(
                f"coefficients must be a (len(labels), {k_src}) = ({len(labels)}, {k_src}) matrix, one row per new "
                f"label and one column per group; got shape {C.shape}"
            )
        if not np.all(np.isfinite(C)):
            raise ValueError("coefficients contain NaN or infinite values")
        _, m, d = src.shape
        kb = C.shape[0]
        counts = C @ src.counts
        sizes = C @ src.sizes
        sq = (C**2) @ src.sq_weights
        means, covs = np.zeros((kb, m, d)), np.zeros((kb, m, d, d))
        signed = np.zeros((kb, m), dtype=bool)
        for b in range(kb):
            for i in range(m):
                parts = [(C[b, a], a) for a in range(k_src) if C[b, a] != 0.0 and src.counts[a, i] != 0.0]
                signed[b, i] = any(c < 0 or src.signed[a, i] for c, a in parts)
                if len(parts) == 1 and parts[0][0] == 1.0:  # a plain copy stays bit-identical
                    a = parts[0][1]
                    means[b, i], covs[b, i] = src.means[a, i], src.covs[a, i]
                    continue
                total = counts[b, i]
                if not parts:
                    continue
                scale = sum(abs(c * src.counts[a, i]) for c, a in parts)
                if signed[b, i] and abs(total) <= 1e-6 * scale:
                    # the same limit as from_rows: a cancelled total would drop the cell (or amplify rounding), and
                    # the result would depend on the order of the merges
                    raise ValueError(
                        f"cell ({label_repr(labels[b])}, {label_repr(src.classes[i])}) has signed (de-biased) weights "
                        f"that cancel in this combination (total {total:.3g} of {scale:.3g}): its statistics cannot be "
                        "represented; merge larger shards first, or de-bias the merged reports"
                    )
                if total == 0.0:
                    continue
                mean = sum(c * src.counts[a, i] * src.means[a, i] for c, a in parts) / total
                cov = np.zeros((d, d))
                for c, a in parts:
                    delta = src.means[a, i] - mean
                    cov += (c * src.counts[a, i]) * (src.covs[a, i] + np.outer(delta, delta))
                means[b, i], covs[b, i] = mean, symmetrize(cov / total)
        return CellStatistics(labels, src.classes, counts, sq, means, covs, signed, sizes)

    def transpose(self) -> CellStatistics:
        """The same statistics with the roles of groups and classes swapped."""
        return CellStatistics(
            self.classes,
            self.groups,
            self.counts.T,
            self.sq_weights.T,
            np.swapaxes(self.means, 0, 1),
            np.swapaxes(self.covs, 0, 1),
            self.signed.T,
            self.sizes.T,
        )

    def combine_classes(self, coefficients: Any, labels: Sequence[Any] | np.ndarray) -> CellStatistics:
        """:meth:`combine_groups` along the class axis (e.g. de-biasing privatised labels, or pooling)."""
        return self.transpose().combine_groups(coefficients, labels).transpose()

    def pooled_over_classes(self) -> CellStatistics:
        """One cell per group: the moments of the group's rows whatever their class (class label ``None``)."""
        out = self.combine_classes(np.ones((1, len(self.classes))), [None])
        return out

    def pooled(self) -> tuple[float, np.ndarray, np.ndarray]:
        """Total weight, mean and covariance of all rows together."""
        both = self.pooled_over_classes().transpose().combine_classes(np.ones((1, len(self.groups))), [None])
        return float(both.counts[0, 0]), both.means[0, 0], both.covs[0, 0]

    def project(self, basis: Any, center: Any = None) -> CellStatistics:
        """Statistics of the coordinates ``(x - center) @ basis`` (``basis``: ``(d, r)``)."""
        P = np.asarray(basis, dtype=np.float64)
        if P.ndim != 2 or P.shape[0] != self.dim:
            raise ValueError(f"basis must have shape ({self.dim}, r); got {P.shape}")
        if not np.all(np.isfinite(P)):
            raise ValueError("basis contains NaN or infinite values")
        c = np.zeros(self.dim) if center is None else np.asarray(center, dtype=np.float64)
        if c.shape != (self.dim,) or not np.all(np.isfinite(c)):
            raise ValueError(f"center must be a finite vector of length {self.dim}; got shape {c.shape}")
        means = (self.means - c) @ P
        covs = np.einsum("dr,kmde,es->kmrs", P, self.covs, P)
        covs = 0.5 * (covs + np.swapaxes(covs, -1, -2))
        return CellStatistics(
            self.groups, self.classes, self.counts, self.sq_weights, means, covs, self.signed, self.sizes
        )

    # ------------------------------------------------------------------ distributed
    def all_reduce(self, group: Any = None) -> CellStatistics:
        """The statistics summed over every rank of a ``torch.distributed`` job (call on every rank).

        Two collective passes: weights and weighted sums give the global means; then every rank's covariances
        are re-centred on them and summed. Ranks must declare the same groups, classes and dimension.
        """
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError("all_reduce needs an initialised torch.distributed process group")
        # NCCL reduces CUDA tensors only; gloo and mpi reduce CPU tensors
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend(group) == "nccl" else None

        def reduce(arr: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))
            t = t if device is None else t.to(device)
            dist.all_reduce(t, group=group)
            return t.cpu().numpy()

        sums = self.counts[..., None] * self.means
        flat = reduce(np.concatenate([self.counts.ravel(), self.sq_weights.ravel(), sums.ravel()]))
        k, m, d = self.shape
        counts = flat[: k * m].reshape(k, m)
        sq = flat[k * m : 2 * k * m].reshape(k, m)
        with np.errstate(divide="ignore", invalid="ignore"):
            means = np.where(counts[..., None] != 0, flat[2 * k * m :].reshape(k, m, d) / counts[..., None], 0.0)
        delta = self.means - means
        local = self.counts[..., None, None] * (self.covs + delta[..., :, None] * delta[..., None, :])
        second = reduce(local)
        with np.errstate(divide="ignore", invalid="ignore"):
            covs = np.where(counts[..., None, None] != 0, second / counts[..., None, None], 0.0)
        flags = reduce(np.stack([self.signed.astype(np.float64), self.sizes]))
        sizes, signed = flags[1], flags[0]
        covs = 0.5 * (covs + np.swapaxes(covs, -1, -2))
        return CellStatistics(self.groups, self.classes, counts, sq, means, covs, signed > 0, sizes)

    # ------------------------------------------------------------------ models
    def covariances(self, psd_floor: float | None = PSD_FLOOR) -> np.ndarray:
        """Cell covariances; cells estimated with signed weights are repaired so that their correlation
        matrix has eigenvalues ``>= psd_floor`` (``None``: raw)."""
        if psd_floor is None or not np.any(self.signed):
            return self.covs
        out = self.covs.copy()
        for a, i in zip(*np.nonzero(self.signed), strict=True):
            out[a, i] = repair_correlation(self.covs[a, i], psd_floor, self.cell_name(a, i))
        return out

    def cell_name(self, a: int, i: int) -> str:
        """``"cell (group=..., y=...)"`` for messages."""
        return f"cell (group={label_repr(self.groups[a])}, y={label_repr(self.classes[i])})"

    def check_counts(self, min_samples: float) -> None:
        """Raise a ``ValueError`` naming the first cell whose (estimated) count is below ``min_samples``."""
        min_samples = as_number(min_samples, "min_samples", low=0)
        low = np.argwhere(~(self.sizes >= max(min_samples, np.finfo(float).tiny)))
        if low.size == 0:
            return
        descr = ", ".join(
            f"(group={label_repr(self.groups[a])}, y={label_repr(self.classes[i])}): {self.sizes[a, i]:.4g}"
            for a, i in low[:5]
        )
        hint = (
            " - too few rows for this epsilon (docs/privacy.md gives the sample size it needs)"
            if np.any(self.signed)
            else ""
        )
        raise ValueError(f"too few samples in (group, class) cell(s) (need >= {min_samples:g}): {descr}{hint}")

    def to_model(self, family: Literal["normal", "lognormal"] = "normal", estimator: Any = None, **kwargs: Any) -> Any:
        """Deprecated: use :meth:`steerfair.GroupConditionalModel.from_statistics` (the model layer builds models;
        this alias imports it lazily so that statistics stay below the model)."""
        import warnings

        from .model import GroupConditionalModel

        warnings.warn(
            "CellStatistics.to_model is deprecated; use GroupConditionalModel.from_statistics(stats, ...)",
            DeprecationWarning,
            stacklevel=2,
        )
        return GroupConditionalModel.from_statistics(self, family, estimator, **kwargs)

    # ------------------------------------------------------------------ persistence
    def state_dict(self, prefix: str = "") -> dict[str, np.ndarray]:
        """The arrays (float64) under ``prefix + name``, for safetensors (labels travel separately as JSON)."""
        return {
            f"{prefix}counts": self.counts,
            f"{prefix}sq_weights": self.sq_weights,
            f"{prefix}means": self.means,
            f"{prefix}covs": self.covs,
            f"{prefix}signed": self.signed.astype(np.float64),
            f"{prefix}sizes": self.sizes,
        }

    @classmethod
    def from_state_dict(
        cls,
        tensors: dict[str, Any],
        groups: Sequence[Any] | np.ndarray,
        classes: Sequence[Any] | np.ndarray,
        prefix: str = "",
    ) -> CellStatistics:
        """Inverse of :meth:`state_dict`; a ``ValueError`` for a missing or mis-shaped array."""
        try:
            arrays = {name: np.asarray(tensors[f"{prefix}{name}"], dtype=np.float64) for name in _ARRAYS}
        except KeyError as exc:
            raise ValueError(f"statistics are missing the array {exc.args[0]!r}") from None
        _check_saved(arrays, prefix)
        return cls(groups, classes, arrays["counts"], arrays["sq_weights"], arrays["means"], arrays["covs"],
                   arrays["signed"] > 0, arrays["sizes"])  # fmt: skip


_ARRAYS = ("counts", "sq_weights", "means", "covs", "signed", "sizes")


def _check_saved(arrays: dict[str, np.ndarray], prefix: str) -> None:
    """What :meth:`CellStatistics.state_dict` can have written (a file damaged in a way that still parses is refused):
    ``signed`` 0 or 1, non-negative counts and variances in unsigned cells, symmetric covariances."""
    signed, counts, covs = arrays["signed"], arrays["counts"], arrays["covs"]
    where = f" ({prefix.rstrip('.')})" if prefix else ""
    if not np.all((signed == 0) | (signed == 1)):
        raise ValueError(f"statistics{where}: 'signed' holds values other than 0 and 1")
    if signed.shape == counts.shape and covs.shape[:2] == counts.shape and covs.ndim == 4:
        plain = signed == 0
        variances = np.diagonal(covs, axis1=-2, axis2=-1)
        scale = np.max(np.abs(covs), initial=0.0)
        if np.any(counts[plain] < 0) or np.any(variances[plain] < -1e-12 * scale):
            raise ValueError(f"statistics{where}: a cell without signed weights has a negative count or variance")
        if np.any(np.abs(covs - np.swapaxes(covs, -1, -2)) > 1e-12 * scale):
            raise ValueError(f"statistics{where}: a covariance is not symmetric")
    for name in ("sizes", "sq_weights"):  # sums of non-negative terms in every kind of cell
        if name in arrays and np.any(arrays[name] < 0):
            raise ValueError(f"statistics{where}: '{name}' holds a negative value")


def _labels(values: Any) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values
    vals = list(values)
    if any(isinstance(v, tuple) or v is None for v in vals):
        arr = np.empty(len(vals), dtype=object)
        arr[:] = vals
        return arr
    return np.asarray(vals)


def _stack_groups(p: CellStatistics, q: CellStatistics) -> CellStatistics:
    """Both statistics side by side as ``2k`` groups (the input of a merge)."""
    labels = np.arange(2 * len(p.groups))
    return CellStatistics(
        labels,
        p.classes,
        np.vstack([p.counts, q.counts]),
        np.vstack([p.sq_weights, q.sq_weights]),
        np.concatenate([p.means, q.means]),
        np.concatenate([p.covs, q.covs]),
        np.vstack([p.signed, q.signed]),
        np.vstack([p.sizes, q.sizes]),
    )


def row_weights(weights: Any, n: int) -> np.ndarray:
    """Per-row weights (default all ones), validated: finite, non-negative, one per row."""
    if weights is None:
        return np.ones(n)
    try:
        w = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("weights (sample_weight) must be numeric, one per row of X") from None
    if w.shape != (n,) or np.any(~np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"weights (sample_weight) must be finite, non-negative and one per row of X ({n})")
    if n and not np.any(w > 0):
        raise ValueError("weights (sample_weight) are all zero; at least one row needs a positive weight")
    return w

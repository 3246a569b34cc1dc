"""Group (or class) membership of rows: the one place where ``groups=`` arguments are read.

Every fit and apply path of the library takes the sensitive attribute in one of three forms and turns it
into a :class:`Membership`, an ``(n, k)`` float64 weight matrix whose columns are named by ``labels``:

* hard labels, a 1-D sequence (list, numpy array, pandas Series, torch tensor): one-hot rows;
* probabilities, a 2-D numeric ``(n, k)`` array or tensor whose rows are non-negative and sum to 1;
* de-biased weights of privatised reports (built by :mod:`steerfair.privacy`): signed rows that sum to 1
  and are unbiased for the one-hot rows of the true attribute.

:meth:`Membership.parse` reads a fit-time argument (columns: the sorted distinct labels, or the declared
``labels``); :meth:`Membership.align` reads an apply-time argument against the labels seen at fit time, so
an unseen label is an error that names the argument. One-hot rows of a probability matrix are exactly hard
labels everywhere downstream.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .validation import reject_continuous_labels
from .warning_location import user_stacklevel

__all__ = ["Membership", "MembershipKind", "PROBABILITY_ATOL", "PlainGroups", "check_probabilities"]

#: How group membership was given: hard labels, probabilities, or de-biased reports.
MembershipKind = Literal["labels", "probabilities", "debiased"]
#: Rows of a probability matrix must sum to 1 within this tolerance.
PROBABILITY_ATOL = 1e-6


def _to_numpy(values: Any) -> Any:
    """Unwrap pandas objects and torch tensors; leave everything else as it is."""
    if hasattr(values, "detach") and hasattr(values, "cpu"):  # torch tensor
        return values.detach().cpu().numpy()
    if hasattr(values, "to_numpy"):  # pandas Series / DataFrame
        return values.to_numpy()
    return values


def _is_missing(v: Any) -> bool:
    """``None``, a float NaN, or pandas' ``NA`` / ``NaT`` (recognised by type name: pandas is not imported)."""
    if v is None or type(v).__name__ in ("NAType", "NaTType"):
        return True
    if isinstance(v, (float, np.floating)):
        return bool(v != v)
    if isinstance(v, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(v))
    return False


def _label_array(values: Any, name: str) -> np.ndarray:
    """A 1-D label array (tuples stay whole labels), rejecting missing values."""
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{name} must be a sequence with one value per row, not a single string")
    if isinstance(values, (list, tuple)) and any(_is_missing(v) for v in values):
        # checked before numpy sees them: np.asarray(["a", nan]) would turn the NaN into the string "nan"
        raise ValueError(f"{name} contains missing values (None, NaN or NA); drop or impute those rows first")
    if isinstance(values, (list, tuple)) and any(isinstance(v, tuple) for v in values):
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values)
    else:
        arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[-1] == 1:
        raise ValueError(
            f"{name} has shape {arr.shape}: one column of labels must be passed 1-D (e.g. df['sex'] rather than "
            "df[['sex']], or .ravel()); a probability matrix needs one column per group (k >= 2)"
        )
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D labels or an (n, k) probability matrix; got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if (arr.dtype.kind == "O" and any(_is_missing(v) for v in arr.tolist())) or (
        arr.dtype.kind in "mM" and np.any(np.isnat(arr))
    ):
        raise ValueError(f"{name} contains missing values (None, NaN or NA); drop or impute those rows first")
    reject_continuous_labels(arr, name)
    return arr


def _frame_columns(values: Any) -> list | None:
    """The column labels of a 2-D pandas DataFrame (``None`` for anything else)."""
    cols = getattr(values, "columns", None)
    return None if cols is None or getattr(values, "ndim", 2) != 2 else list(cols)


def _by_name(P: np.ndarray, columns: list | None, labels: np.ndarray, name: str) -> np.ndarray:
    """``P``'s columns in the order of ``labels``, matched by a DataFrame's column names.

    Positional (unchanged) when ``P`` came without names or with the default names ``0..k-1`` that are not
    themselves the labels; otherwise the names must be the labels, in any order.
    """
    if columns is None:
        return P
    keys = [_key(c) for c in columns]
    wanted = [_key(v) for v in labels.tolist()]
    if set(keys) == set(wanted) and len(set(keys)) == len(keys):  # the labels (1 == 1.0), in some order
        if keys == wanted:
            return P
        pos = {k: j for j, k in enumerate(keys)}
        return P[:, [pos[w] for w in wanted]]
    if keys == list(range(len(keys))):
        return P  # an unnamed frame (default column names): its columns are in the labels' order
    raise ValueError(
        f"{name} is a DataFrame whose columns {columns} are not the group labels {labels.tolist()}; name its "
        "columns by the labels (any order), or pass a plain array with the columns in that order"
    )


def _is_probability_matrix(values: Any) -> bool:
    arr = values if isinstance(values, np.ndarray) else None
    if arr is None:
        if isinstance(values, (list, tuple)) and values and isinstance(values[0], (list, tuple, np.ndarray)):
            if any(isinstance(v, tuple) for v in values):
                return False  # tuple-valued labels
            try:
                arr = np.asarray(values)
            except ValueError:
                return False
        else:
            return False
    return arr.ndim == 2 and arr.shape[1] > 1 and arr.dtype.kind in "fiub"  # one column: labels passed 2-D


def check_probabilities(P: np.ndarray, name: str, *, n: int | None = None, k: int | None = None) -> np.ndarray:
    """``P`` as a finite, non-negative float64 ``(n, k)`` matrix whose rows sum to 1, or a ``ValueError``."""
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2:
        raise ValueError(f"{name} must be an (n, k) probability matrix; got shape {P.shape}")
    if (n is not None and P.shape[0] != n) or (k is not None and P.shape[1] != k):
        want = f"({'n' if n is None else n}, {'k' if k is None else k})"
        raise ValueError(f"{name} must have shape {want}; got {P.shape}")
    if not np.all(np.isfinite(P)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(P < 0):
        raise ValueError(f"{name} has negative entries; probabilities must be >= 0")
    bad = np.abs(P.sum(axis=1) - 1.0) > PROBABILITY_ATOL
    if np.any(bad):
        j = int(np.argmax(bad))
        raise ValueError(f"each row of {name} must sum to 1; row {j} sums to {P[j].sum():.6g}")
    return P


@dataclass(frozen=True, eq=False)
class Membership:
    """Row weights per group: ``weights[j, a]`` is row ``j``'s membership of group ``labels[a]``.

    Attributes:
        labels: the ``k`` group labels, in column order.
        weights: ``(n, k)`` float64 (read-only). One-hot for hard labels; rows sum to 1 in every kind.
        kind: ``"labels"``, ``"probabilities"`` or ``"debiased"`` (signed, from privatised reports).
    """

    labels: np.ndarray
    weights: np.ndarray
    kind: MembershipKind = "labels"

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels) if not isinstance(self.labels, np.ndarray) else self.labels
        W = np.array(self.weights, dtype=np.float64, copy=True)
        if W.ndim != 2 or W.shape[1] != len(labels):
            raise ValueError(f"weights must be (n, {len(labels)}) for {len(labels)} labels; got {W.shape}")
        if self.kind not in ("labels", "probabilities", "debiased"):
            raise ValueError(f"unknown membership kind {self.kind!r}")
        if not np.all(np.isfinite(W)):
            raise ValueError("membership weights contain NaN or infinite values")
        if self.kind != "debiased" and np.any(W < 0):
            raise ValueError(
                f"{self.kind} membership has negative weights; only de-biased (privatised) rows are signed"
            )
        # every kind sums to 1 per row (de-biased rows too: (e_r - q 1) / (p - q) sums to 1); the tolerance grows
        # with a row's largest weight, since de-biased weights reach 1 / (p - q)
        scale = np.maximum(1.0, np.abs(W).max(axis=1)) if W.size else np.ones(W.shape[0])
        bad = np.abs(W.sum(axis=1) - 1.0) > PROBABILITY_ATOL * scale
        if np.any(bad):
            j = int(np.argmax(bad))
            raise ValueError(
                f"each row of a group / class membership must sum to 1 (one-hot rows, probabilities or de-biased "
                f"weights); row {j} sums to {W[j].sum():.6g}. Normalise the rows, or pass row weights separately "
                "(weights= / sample_weight=)"
            )
        W.setflags(write=False)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "weights", W)

    # ------------------------------------------------------------------ views
    @property
    def n(self) -> int:
        """Number of rows."""
        return int(self.weights.shape[0])

    @property
    def k(self) -> int:
        """Number of groups (columns)."""
        return int(self.weights.shape[1])

    @property
    def is_hard(self) -> bool:
        """Whether every row is one-hot (hard labels, whatever form they came in)."""
        W = self.weights
        return bool(np.all((W == 0.0) | (W == 1.0)) and np.all(W.sum(axis=1) == 1.0))

    def indices(self) -> np.ndarray:
        """Column index of every row (hard memberships only)."""
        if not self.is_hard:
            raise ValueError("group indices need hard labels; these rows have soft or signed membership")
        return np.argmax(self.weights, axis=1).astype(np.int64)

    def rows(self, index: Any) -> Membership:
        """The membership of a subset of rows (any numpy index)."""
        return Membership(self.labels, self.weights[index], self.kind)

    # ------------------------------------------------------------------ construction
    @classmethod
    def one_hot(cls, index: np.ndarray, labels: Sequence[Any] | np.ndarray) -> Membership:
        """Hard membership from column indices ``0..k-1``."""
        labels = np.asarray(labels) if not isinstance(labels, np.ndarray) else labels
        idx = np.asarray(index, dtype=np.int64)
        if idx.ndim != 1:
            raise ValueError(f"index must be 1-D column indices; got shape {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= len(labels)):
            bad = idx[(idx < 0) | (idx >= len(labels))][0]
            raise ValueError(f"index holds {int(bad)}, outside 0..{len(labels) - 1} (one column per label)")
        W = np.zeros((idx.shape[0], len(labels)))
        W[np.arange(idx.shape[0]), idx] = 1.0
        return cls(labels, W, "labels")

    @classmethod
    def parse(
        cls,
        groups: Any,
        n: int | None = None,
        *,
        labels: Sequence[Any] | None = None,
        name: str = "groups",
        min_groups: int = 2,
    ) -> Membership:
        """Read a fit-time ``groups`` argument.

        Args:
            groups: 1-D labels, or an ``(n, k)`` probability matrix (numpy, torch, DataFrame).
            n: the number of rows it must have (``None``: any).
            labels: for probabilities, the names of the ``k`` columns (default ``0..k-1``); for labels, the
                declared domain in column order (default: the sorted distinct values; a value outside a
                declared domain is an error).
            name: the argument's name in error messages.
            min_groups: the fewest columns accepted.

        Raises:
            ValueError: wrong length or shape, missing values, rows that are not probabilities, too few groups,
                values outside the declared ``labels``.
        """
        if groups is None:
            raise ValueError(f"{name} is required (the sensitive attribute of each row)")
        raw, frame_cols = _to_numpy(groups), _frame_columns(groups)
        if _is_probability_matrix(raw):
            P = check_probabilities(np.asarray(raw), name, n=n)
            if labels is None:  # a DataFrame names its columns; anything else is numbered 0..k-1
                cols = np.arange(P.shape[1]) if frame_cols is None else _declared(frame_cols, f"{name}'s columns")
            else:
                cols = _declared(labels, name)
                if len(cols) != P.shape[1]:
                    raise ValueError(f"{name} has {P.shape[1]} probability columns but {len(cols)} labels were given")
                P = _by_name(P, frame_cols, cols, name)
            out = cls(cols, P, "probabilities")
        else:
            arr = _label_array(raw, name)
            if n is not None and arr.shape[0] != n:
                raise ValueError(f"{name} has {arr.shape[0]} entries but X has {n} rows (pass one entry per row of X)")
            if labels is None:
                cols, idx = np.unique(arr, return_inverse=True) if arr.dtype.kind != "O" else _unique_objects(arr)
                out = cls.one_hot(idx, cols)
            else:
                out = cls.align(arr, labels, name=name, known_as="among the declared labels")
        if out.k < min_groups:
            only = out.labels.tolist()
            what = f"a single value ({only[0]!r})" if out.k == 1 else f"{out.k} values {only}"
            need = "two" if min_groups == 2 else str(min_groups)
            raise ValueError(f"{name} has {what}; need at least {need} groups")
        return out

    @classmethod
    def align(
        cls,
        groups: Any,
        labels: Sequence[Any] | np.ndarray,
        n: int | None = None,
        *,
        name: str = "groups",
        known_as: str = "seen in fit",
    ) -> Membership:
        """Read an apply-time ``groups`` argument against the labels known from fitting.

        Labels map to their column; probabilities must have one column per known label. An unknown label raises
        a ``ValueError`` that lists the known ones (``known_as`` says where they come from: ``"seen in fit"``).
        """
        known = _declared(labels, "labels")
        raw = _to_numpy(groups)
        if _is_probability_matrix(raw):
            P = check_probabilities(np.asarray(raw), name, n=n, k=len(known))
            return cls(known, _by_name(P, _frame_columns(groups), known, name), "probabilities")
        arr = _label_array(raw, name)
        if n is not None and arr.shape[0] != n:
            raise ValueError(f"{name} has {arr.shape[0]} entries but X has {n} rows (pass one entry per row of X)")
        lookup = {_key(v): j for j, v in enumerate(known.tolist())}
        idx = np.empty(arr.shape[0], dtype=np.int64)
        for j, v in enumerate(arr.tolist()):
            try:
                idx[j] = lookup[_key(v)]
            except (KeyError, TypeError):
                raise ValueError(f"{name} contains {v!r}, which was not {known_as} (known: {known.tolist()})") from None
        return cls.one_hot(idx, known)


def _key(v: Any) -> Any:
    """A hashable lookup key under which ``1 == 1.0 == np.int64(1)`` and numpy scalars equal Python ones."""
    return v.item() if isinstance(v, np.generic) else v


def _declared(labels: Sequence[Any] | np.ndarray, name: str) -> np.ndarray:
    if isinstance(labels, np.ndarray) and labels.ndim == 1:
        arr = labels
    else:
        arr = _label_array(list(labels), name)
    keys = [_key(v) for v in arr.tolist()]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{name} lists a value twice: {arr.tolist()}")
    return arr


def _unique_objects(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique`` for object arrays (tuples, mixed types): sorted when comparable, else first-seen order."""
    seen: dict[Any, int] = {}
    for v in arr.tolist():
        seen.setdefault(v, len(seen))
    values = list(seen)
    try:
        values = sorted(values)
    except TypeError:
        pass
    pos = {v: j for j, v in enumerate(values)}
    cols = np.empty(len(values), dtype=object)
    cols[:] = values
    return cols, np.fromiter((pos[v] for v in arr.tolist()), dtype=np.int64, count=arr.shape[0])


def warn_probe_stands_in(what: str) -> None:
    """Warn that a label-free shared target is applied without the rows' groups: the group probe's guess decides
    which group's map moves each row, and the equal-laws guarantee is for the true groups."""
    warnings.warn(
        f"transform without groups=: {what} equalises the laws of the group each row is steered as, and "
        "the group probe guesses it here. A row steered with another group's map keeps part of its own group's "
        "law, so the equal-rates guarantee does not hold (how far it fails depends on how well the probe reads the "
        "group). Pass groups= (labels, or (n, k) probabilities) for the guarantee",
        UserWarning,
        stacklevel=user_stacklevel(),
    )


class PlainGroups:
    """How a front end reads ``groups=`` when it holds the sensitive attribute itself (labels or probabilities).

    Front ends never branch on where membership comes from: they hold a reader (this one, or
    :class:`steerfair.privacy.ReportedGroups` for privatised reports, both from :func:`steerfair.privacy.group_reader`)
    and ask it for the fit-time and apply-time :class:`Membership` and for a group probe.
    """

    #: whether the apply-time membership of a row depends on a prior ``P(A | x)`` even when ``groups`` is given
    needs_prior = False

    def fit_membership(self, groups: Any, n: int, labels: Sequence[Any] | None = None) -> Membership:
        """The membership that weights the statistics (see :meth:`Membership.parse`)."""
        return Membership.parse(groups, n, labels=labels)

    def apply_membership(
        self, groups: Any, n: int, known: Sequence[Any] | np.ndarray, prior: Any = None, *, name: str = "groups"
    ) -> Membership:
        """The membership that mixes the per-group maps of ``n`` rows.

        Args:
            groups: labels, probabilities, a :class:`Membership`, or ``None`` (then ``prior()`` gives
                ``P(A | x)`` per row).
            n: the number of rows.
            known: the group labels seen at fit time, in column order.
            prior: a callable returning ``(n, k)`` probabilities ``P(A | x)`` (used when ``groups`` is ``None``).
            name: the argument's name in messages.
        """
        if isinstance(groups, Membership):
            return groups
        if groups is None:
            if prior is None:
                raise ValueError(f"{name} is required (no group probe to estimate it)")
            return Membership(np.asarray(known), check_probabilities(prior(), "P(A | x)", n=n, k=len(known)))
        return Membership.align(groups, known, n, name=name)

    def fit_probe(self, X: np.ndarray, groups: Any, membership: Membership, sample_weight: Any = None) -> Any:
        """A logistic-regression model of ``P(A | x)`` (scikit-learn), trained on the membership's rows.

        ``groups`` (the raw argument) is not needed here. Soft rows enter as one weighted copy per group (the
        expected log-loss); ``sample_weight`` (the fit's row weights) weighs the standardisation and the loss, so a
        row of weight 0 is no row and an integer weight is that many copies. ``predict_proba`` columns are in
        ``membership.labels`` order (the returned object's ``classes_`` are the column indices).
        """
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        if membership.is_hard and sample_weight is None:
            return probe.fit(X, membership.indices())
        k, n = membership.k, membership.n
        w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        W = membership.weights * w[:, None]
        rows = np.nonzero(W.T.ravel() > 0)[0]
        Xr = np.tile(X, (k, 1))[rows]
        gr = np.repeat(np.arange(k), n)[rows]
        wr = W.T.ravel()[rows]
        return probe.fit(Xr, gr, standardscaler__sample_weight=wr, logisticregression__sample_weight=wr)

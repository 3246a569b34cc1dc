"""Local randomisation of a categorical column: k-ary randomized response and its channel.

k-ary randomized response (Warner 1965; Kairouz, Oh & Viswanath 2014) with privacy level ``epsilon``
reports the true category with probability ``p = e^eps / (e^eps + k - 1)`` and each of the ``k - 1``
other categories with probability ``q = 1 / (e^eps + k - 1)``. Since ``p / q = e^eps`` the report is
``epsilon``-locally differentially private. ``epsilon = inf`` is the identity (no privacy, exact data).

The channel ``C[a, r] = P(report = r | true = a) = (p - q) 1[a = r] + q`` is what every estimator in
:mod:`steerfair.privacy` inverts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..validation import as_int

__all__ = [
    "check_delta",
    "check_epsilon",
    "encode_categories",
    "randomized_response",
    "rr_channel",
    "rr_keep_probability",
    "invertible_rr_probabilities",
    "rr_probabilities",
    "rr_variance_inflation",
]


def check_epsilon(epsilon: Any, name: str = "epsilon", *, allow_inf: bool = True) -> float:
    """Return ``epsilon`` as a float after checking it is a privacy level: ``> 0``, not NaN.

    ``math.inf`` (no privacy) is accepted unless ``allow_inf`` is false.

    Raises:
        ValueError: for a non-number, NaN, a value ``<= 0``, or ``inf`` when it is not allowed.
    """
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float, np.integer, np.floating)):
        # a string ("1") or other object is refused, not parsed: a privacy level must be a real number
        raise ValueError(f"{name} must be a positive number (int or float); got {type(epsilon).__name__} {epsilon!r}")
    try:
        eps = float(epsilon)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number; got {epsilon!r}") from None
    if math.isnan(eps):
        raise ValueError(f"{name} is NaN; it must be a positive number")
    if eps <= 0:
        raise ValueError(f"{name} must be > 0 (smaller is more private); got {eps}")
    if math.isinf(eps) and not allow_inf:
        raise ValueError(f"{name} must be finite here; got {eps}")
    return eps


def check_delta(delta: Any, name: str = "delta") -> float:
    """Return ``delta`` as a float after checking ``0 < delta < 1``.

    Raises:
        ValueError: for a non-number, NaN, or a value outside the open interval ``(0, 1)``.
    """
    if isinstance(delta, (bool, np.bool_)) or not isinstance(delta, (int, float, np.integer, np.floating)):
        # a string ("0.1") is refused, not parsed, as for epsilon
        raise ValueError(f"{name} must be a number in (0, 1); got {type(delta).__name__} {delta!r}")
    try:
        d = float(delta)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, 1); got {delta!r}") from None
    if not 0.0 < d < 1.0:  # also rejects NaN
        raise ValueError(f"{name} must lie in the open interval (0, 1); got {d}")
    return d


def _check_k(n_categories: Any) -> int:
    return as_int(n_categories, "n_categories", low=2)


def _check_domain(n: int, name: str) -> None:
    """A domain found in the data (no ``categories`` / ``n_categories`` given) must hold two values at least."""
    if n < 2:
        raise ValueError(
            f"{name} holds {n} distinct value(s); a sensitive attribute needs at least 2. Pass categories= "
            "(the full public domain, in code order) when some value is absent from these rows"
        )


def rr_probabilities(epsilon: float, n_categories: int) -> tuple[float, float]:
    """``(p, q)``: the probability of reporting the true category and of each other category.

    ``p = e^eps / (e^eps + k - 1)``, ``q = 1 / (e^eps + k - 1)`` (computed stably for large ``eps``);
    ``(1, 0)`` for ``eps = inf``.
    """
    eps = check_epsilon(epsilon)
    k = _check_k(n_categories)
    if math.isinf(eps):
        return 1.0, 0.0
    # divide through by e^eps so that large epsilon does not overflow
    t = (k - 1) * math.exp(-eps)
    p = 1.0 / (1.0 + t)
    q = math.exp(-eps) / (1.0 + t)
    return p, q


#: the smallest ``p - q`` a channel is inverted at: below it the de-biased weights ``1 / (p - q)`` exceed 1e9 and
#: ``p - q`` itself has lost most of its digits (``epsilon`` below about ``1e-9 k``; at ``1e-17``, ``p == q``)
MIN_CONTRAST = 1e-9


def invertible_rr_probabilities(epsilon: float, n_categories: int, name: str = "epsilon") -> tuple[float, float]:
    """:func:`rr_probabilities` for estimators that invert the channel: ``p - q`` must be at least
    :data:`MIN_CONTRAST`.

    Raises:
        ValueError: naming ``name``, for an ``epsilon`` so small that the reports carry no information float64
            can recover (the inversion would divide by zero or by rounding noise).
    """
    eps = check_epsilon(epsilon, name)
    p, q = rr_probabilities(eps, n_categories)
    if p - q < MIN_CONTRAST:
        raise ValueError(
            f"{name}={eps:g} is too small to de-bias: its reports are uniform to float64 precision (p - q = "
            f"{p - q:.3g}); use {name} of at least about {MIN_CONTRAST * int(n_categories):g}"
        )
    return p, q


def rr_keep_probability(epsilon: float, n_categories: int) -> float:
    """``P(report = true value) = e^eps / (e^eps + k - 1)`` of k-ary randomized response."""
    return rr_probabilities(epsilon, n_categories)[0]


def rr_channel(epsilon: float, n_categories: int) -> np.ndarray:
    """The ``(k, k)`` channel ``C[a, r] = P(report r | true a)``; every row sums to 1.

    ``C = (p - q) I + q 1 1^T``. Its inverse is ``(I - q 1 1^T) / (p - q)`` because
    ``p + (k - 1) q = 1``; the estimators use that closed form (no matrix inversion).
    """
    p, q = rr_probabilities(epsilon, n_categories)
    k = int(n_categories)
    C = np.full((k, k), q)
    C[np.diag_indices(k)] = p
    return C


def rr_variance_inflation(epsilon: float, n_categories: int) -> float:
    """``1 / (p - q)^2 = ((e^eps + k - 1) / (e^eps - 1))^2``: how much randomized response inflates variances.

    Every de-biased membership weight (:func:`steerfair.privacy.debiased_membership`) is
    ``(1[r = a] - q) / (p - q)``; its second moment is at most this factor (own group:
    ``1 + (k - 1) e^eps / (e^eps - 1)^2``; other groups: ``(e^eps + k - 2) / (e^eps - 1)^2``), so an
    estimate from ``n`` privatised rows is about as precise as one from ``n / VIF`` raw rows (docs/privacy.md).
    """
    p, q = invertible_rr_probabilities(epsilon, n_categories)
    return 1.0 / (p - q) ** 2


def encode_categories(
    values: Any,
    categories: Sequence[Any] | np.ndarray | None = None,
    n_categories: int | None = None,
    name: str = "values",
) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``0..k-1`` and the category labels of a 1-D categorical column.

    ``categories`` lists the (public) domain in code order. Without it, integer values are codes in
    ``[0, n_categories)``; other values are mapped to their sorted unique values, which must then number
    ``n_categories`` (when given) - a category absent from the data cannot be guessed. Floats that are not whole
    numbers are refused unless ``categories`` lists them: a column such as ``P(A = 1)`` is a probability, not a
    category (give probabilities as an ``(n, k)`` membership instead).

    Raises:
        ValueError: for a non-1-D column, missing values, values outside the domain, or fractional floats without
            ``categories``.
    """
    arr = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if arr.dtype.kind == "O" and any(v is None or (isinstance(v, float) and math.isnan(v)) for v in arr.tolist()):
        raise ValueError(f"{name} contains missing values")
    if categories is not None:
        cats = np.asarray(categories)
        if cats.ndim != 1 or len(set(cats.tolist())) != len(cats):
            raise ValueError("categories must be a 1-D list of distinct values")
        if n_categories is not None and _check_k(n_categories) != len(cats):
            raise ValueError(f"n_categories={n_categories} but categories has {len(cats)} entries")
        lookup = {v: j for j, v in enumerate(cats.tolist())}
        try:
            codes = np.fromiter((lookup[v] for v in arr.tolist()), dtype=np.int64, count=arr.shape[0])
        except KeyError as exc:
            raise ValueError(
                f"{name} contains {exc.args[0]!r}, which is not among categories {cats.tolist()}"
            ) from None
        if len(cats) < 2:
            raise ValueError(f"categories must list at least 2 values (the public domain); got {cats.tolist()}")
        return codes, cats
    if arr.dtype.kind == "f" and arr.size and not np.all(arr == np.round(arr)):
        raise ValueError(
            f"{name} holds fractional floats ({arr[arr != np.round(arr)][0]!r}, ...): a categorical column is labels "
            "or integer codes. Probabilities of group membership are an (n, k) array of rows summing to 1, not a "
            "1-D column; pass categories= if these floats really are category labels"
        )
    if arr.dtype.kind == "f" and n_categories is not None and arr.size and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)  # integral floats are codes too: check them against the declared domain
    if arr.dtype.kind in "iu" and n_categories is not None:
        k = _check_k(n_categories)
        if arr.size and (arr.min() < 0 or arr.max() >= k):
            raise ValueError(f"{name} must be integer codes in [0, {k}); got values in [{arr.min()}, {arr.max()}]")
        return arr.astype(np.int64), np.arange(k)
    try:
        cats, codes = np.unique(arr, return_inverse=True)
    except TypeError:  # values of several types (e.g. numbers and strings) cannot be sorted into a domain
        kinds = sorted({type(v).__name__ for v in arr.tolist()})
        raise TypeError(
            f"{name} mixes values of types {kinds} that cannot be ordered; pass values of one type, or categories="
        ) from None
    if n_categories is not None and _check_k(n_categories) != len(cats):
        raise ValueError(
            f"{name} has {len(cats)} distinct value(s) but n_categories={n_categories}; pass categories= "
            "(the full public domain, in code order)"
        )
    _check_domain(len(cats), name)
    return codes.astype(np.int64), cats


def randomized_response(
    values: Any,
    epsilon: float,
    n_categories: int | None = None,
    seed: int | np.random.Generator | None = None,
    *,
    categories: Sequence[Any] | np.ndarray | None = None,
) -> np.ndarray:
    """Privatise a categorical column with k-ary randomized response (``epsilon``-local DP).

    Each entry is kept with probability ``e^eps / (e^eps + k - 1)`` and otherwise replaced by one of the
    other ``k - 1`` categories uniformly at random, independently per entry (run on the user side).

    Args:
        values: 1-D column: integer codes in ``[0, n_categories)``, or labels (then ``categories`` gives
            the domain, or the sorted unique values are used when they number ``n_categories``).
        epsilon: privacy level ``> 0``; ``math.inf`` returns the column unchanged.
        n_categories: ``k >= 2``, the size of the domain (``len(categories)`` when omitted).
        seed: seed or generator of the randomness. The guarantee holds only if whoever sees the reports cannot
            know or guess this randomness: on the user side leave it ``None`` (fresh entropy from the operating
            system) or pass a generator seeded from ``secrets.randbits(128)``. A known seed lets anyone redraw
            the keep / replace choices and undo the privatisation; fixed seeds are for simulations only.
        categories: the public domain in code order (labels).

    Returns:
        The privatised column, in the same encoding (codes in, codes out; labels in, labels out).

    Raises:
        ValueError: for an invalid ``epsilon``, a domain with fewer than 2 categories, or values outside it.
    """
    eps = check_epsilon(epsilon)
    codes, cats = encode_categories(values, categories, n_categories)
    k = len(cats)
    p, _ = rr_probabilities(eps, k)
    rng = np.random.default_rng(seed)
    n = codes.shape[0]
    keep = rng.random(n) < p
    other = rng.integers(0, k - 1, size=n)
    other = other + (other >= codes)  # uniform over the k - 1 categories other than the true one
    out = np.where(keep, codes, other)
    arr = np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values)
    if categories is None and arr.dtype.kind in "iu" and n_categories is not None:
        return out.astype(arr.dtype)
    return cats[out]

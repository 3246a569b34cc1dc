"""Random generators of the estimators: a checked ``random_state``, the fit's generator, and one generator per
call of a fitted estimator's randomised ``transform`` (repeatable for an int seed).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

__all__ = ["CALL_STREAM", "as_generator", "call_generator", "check_random_state", "is_seed"]


def is_seed(random_state: Any) -> bool:
    """Whether ``random_state`` is an int seed: a non-negative Python or numpy integer, not a bool."""
    return bool(
        isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool) and random_state >= 0
    )


def check_random_state(random_state: Any) -> None:
    """Raise ``ValueError`` unless ``random_state`` is ``None``, a non-negative int, a numpy ``Generator``,
    ``SeedSequence`` or ``RandomState`` (nothing is drawn: an estimator's ``fit`` names a bad value up front)."""
    if random_state is None or is_seed(random_state):
        return
    if isinstance(random_state, (np.random.RandomState, np.random.Generator, np.random.SeedSequence)):
        return
    raise ValueError(f"random_state must be None, a non-negative int or a numpy Generator; got {random_state!r}")


def as_generator(random_state: Any) -> np.random.Generator:
    """A numpy ``Generator`` from ``None``, an int seed, a ``Generator`` (used as is) or a legacy ``RandomState``."""
    check_random_state(random_state)
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    if is_seed(random_state):
        return np.random.default_rng(int(random_state))
    return np.random.default_rng(random_state)


#: the seed stream of a fitted estimator's randomised calls (``transform``), apart from the fit's (stream 0)
CALL_STREAM = 1


def call_generator(random_state: Any, *inputs: Any) -> np.random.Generator:
    """The generator for one call of a fitted estimator's randomised method (``transform``).

    An int seed gives a fresh generator on every call, seeded from the seed and a SHA-256 digest of the call's
    ``inputs`` (the rows and their groups): the same inputs get the same output on every call, from a copy and after
    a joblib round trip, as a fitted scikit-learn transformer's do, while other inputs (the training rows, then the
    test rows) get independent draws. Within a call each row's draw depends on its position (identical rows must get
    independent draws for the steered law to be right). A ``Generator`` or ``RandomState`` is drawn from and advanced,
    so calls differ (scikit-learn's rule for an instance); ``None`` draws fresh entropy.
    """
    if is_seed(random_state):
        digest = hashlib.sha256()
        for a in inputs:
            arr = np.asarray(a if a is not None else ())
            try:
                data = np.ascontiguousarray(arr, dtype=np.float64).tobytes()
            except (TypeError, ValueError):  # labels of another kind (str, objects): their text
                data = "\x1f".join(map(repr, arr.ravel().tolist())).encode()
            digest.update(repr(arr.shape).encode() + data)
        words = np.frombuffer(digest.digest(), dtype=np.uint32).tolist()
        return np.random.default_rng(np.random.SeedSequence([int(random_state), CALL_STREAM, *words]))
    return as_generator(random_state)

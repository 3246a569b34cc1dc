"""BLAS thread pools: keep a second OpenBLAS pool from spinning against numpy's while a solver runs.

The pip wheels of numpy and scipy each ship their own OpenBLAS, and each starts its own pool of worker threads (one
per core). The solvers alternate numpy products with scipy factorisations and triangular solves thousands of times;
after each call a pool's workers keep spinning for a while, so the other library's next call competes with them for
the cores. On a 2-core machine the all-subgroup affine solver at d = 256 took 6.66 s of wall time with both pools at
their default size and 1.74 s with this guard (``recipes/bench_solver.py --pools``, docs/benchmarks.md; 1.56 s with
every pool at one thread). :func:`single_extra_pools` limits every BLAS library other
than numpy's to one thread while the block runs (numpy keeps its threads, where large products gain from them) and
restores the previous sizes afterwards; with a single BLAS library loaded (a conda or system build shared by both) it
does nothing.

Set the environment variable ``STEERFAIR_KEEP_BLAS_THREADS=1`` to leave every pool as it is. The limits are
process-wide while the block runs: another Python thread calling scipy at the same time runs single-threaded too.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

__all__ = ["KEEP_THREADS_VARIABLE", "extra_blas_pools", "single_extra_pools", "with_single_extra_pools"]

#: the environment variable that switches :func:`single_extra_pools` off (any value but "", "0" or "false")
KEEP_THREADS_VARIABLE = "STEERFAIR_KEEP_BLAS_THREADS"

F = TypeVar("F", bound=Callable[..., Any])


def _keep_threads() -> bool:
    return os.environ.get(KEEP_THREADS_VARIABLE, "").strip().lower() not in ("", "0", "false")


def extra_blas_pools() -> list[Any]:
    """The threadpoolctl controllers of the BLAS libraries other than numpy's, when more than one is loaded.

    Empty when threadpoolctl is not installed, when one BLAS library serves numpy and scipy, or when numpy's
    library cannot be told from the others (then nothing is limited).
    """
    try:
        from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return []
    import numpy as np
    import scipy.linalg  # noqa: F401  (load scipy's BLAS before listing the pools)

    blas = [lc for lc in ThreadpoolController().lib_controllers if lc.user_api == "blas"]
    if len({lc.filepath for lc in blas}) < 2:
        return []
    site = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))  # numpy.libs or numpy/.dylibs lie in it

    def numpys(path: str) -> bool:
        try:
            rel = os.path.relpath(os.path.abspath(path), site)
        except ValueError:  # another drive
            return False
        return not rel.startswith("..") and rel.split(os.sep)[0].startswith("numpy")

    mine = [lc for lc in blas if numpys(lc.filepath)]
    if len(mine) != 1:
        return []
    return [lc for lc in blas if lc is not mine[0]]


_cache: tuple[int, list[Any]] | None = None


def _extra_pools_cached() -> list[Any]:
    """:func:`extra_blas_pools`, listed again only after a Python module was imported (a new BLAS library can only
    come with one). Listing the loaded libraries costs about 2 ms, more than a small solve."""
    global _cache
    key = len(sys.modules)
    if _cache is None or _cache[0] != key:
        pools = extra_blas_pools()
        _cache = (len(sys.modules), pools)  # listing may import (threadpoolctl, scipy.linalg): key after it
    return _cache[1]


@contextmanager
def single_extra_pools() -> Iterator[None]:
    """Run the block with every BLAS library but numpy's limited to one thread (module docstring); restore after."""
    if _keep_threads():
        yield
        return
    pools = _extra_pools_cached()
    before = [lc.num_threads for lc in pools]
    try:
        for lc in pools:
            if lc.num_threads != 1:
                lc.set_num_threads(1)
        yield
    finally:
        for lc, n in zip(pools, before, strict=True):
            if lc.num_threads != n:
                lc.set_num_threads(n)


def with_single_extra_pools(fn: F) -> F:
    """Decorator: call ``fn`` inside :func:`single_extra_pools`."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with single_extra_pools():
            return fn(*args, **kwargs)

    return cast(F, wrapper)

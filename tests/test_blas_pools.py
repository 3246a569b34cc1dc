"""The BLAS pool guard: extra pools run single-threaded inside, sizes come back after, results do not change."""

from __future__ import annotations

import numpy as np
import pytest
from _random_models import random_model

from steerfair import solve_nearest_ideal
from steerfair.blas_pools import KEEP_THREADS_VARIABLE, extra_blas_pools, single_extra_pools


@pytest.fixture
def pools():
    """Every extra pool (libraries loaded by earlier tests too) at two threads (the tests run with
    OMP_NUM_THREADS=1), restored afterwards."""
    found = extra_blas_pools()
    if not found:
        pytest.skip("one BLAS library serves numpy and scipy here: nothing to limit")
    before = [lc.num_threads for lc in found]
    for lc in found:
        lc.set_num_threads(2)
    yield found  # an old OpenBLAS may ignore the request (stays at OMP_NUM_THREADS): compare with what it reports
    for lc, n in zip(found, before, strict=True):
        lc.set_num_threads(n)


def test_extra_pools_are_single_inside_and_restored_after(pools):
    sizes = [lc.num_threads for lc in pools]
    assert max(sizes) == 2  # at least one pool really runs two threads before the block
    with single_extra_pools():
        assert [lc.num_threads for lc in extra_blas_pools()] == [1] * len(pools)
        with single_extra_pools():  # nested (the affine solver calls the isotropic one): still one, no restore
            assert [lc.num_threads for lc in extra_blas_pools()] == [1] * len(pools)
        assert [lc.num_threads for lc in extra_blas_pools()] == [1] * len(pools)
    assert [lc.num_threads for lc in extra_blas_pools()] == sizes


def test_sizes_come_back_when_the_block_raises(pools):
    sizes = [lc.num_threads for lc in pools]
    with pytest.raises(RuntimeError, match="inside"), single_extra_pools():
        raise RuntimeError("inside")
    assert [lc.num_threads for lc in extra_blas_pools()] == sizes


def test_the_environment_variable_keeps_every_pool(pools, monkeypatch):
    sizes = [lc.num_threads for lc in pools]
    monkeypatch.setenv(KEEP_THREADS_VARIABLE, "1")
    with single_extra_pools():
        assert [lc.num_threads for lc in extra_blas_pools()] == sizes


def test_numpys_own_pool_is_never_limited():
    from threadpoolctl import ThreadpoolController

    blas = [lc for lc in ThreadpoolController().lib_controllers if lc.user_api == "blas"]
    limited = {lc.filepath for lc in extra_blas_pools()}
    assert len(limited) <= max(len(blas) - 1, 0)  # at least one pool (numpy's) keeps its threads
    assert all("numpy" not in path.split("/")[-2] for path in limited)


@pytest.mark.parametrize("intervention", ["all", "affirmative"])
def test_the_solution_does_not_depend_on_the_guard(pools, monkeypatch, intervention):
    model = random_model(3, d=24)
    guarded = solve_nearest_ideal(model, intervention=intervention, family="affine")
    monkeypatch.setenv(KEEP_THREADS_VARIABLE, "1")
    kept = solve_nearest_ideal(model, intervention=intervention, family="affine")
    assert abs(guarded.kl - kept.kl) <= 1e-10 * max(1.0, kept.kl)
    for a, b in zip(guarded.ideal.components, kept.ideal.components, strict=True):
        for ga, gb in zip(a, b, strict=True):
            np.testing.assert_allclose(ga.mean, gb.mean, atol=1e-6)


def test_the_guard_lists_the_pools_again_after_an_import():
    """The guard caches the pool listing (it costs more than a small solve) and lists again after any import."""
    import importlib
    import sys

    from steerfair import blas_pools

    with single_extra_pools():
        pass
    assert blas_pools._cache is not None
    assert [lc.filepath for lc in blas_pools._cache[1]] == [lc.filepath for lc in extra_blas_pools()]
    key = blas_pools._cache[0]
    name = next(m for m in ("colorsys", "wave", "netrc", "mailbox", "tabnanny") if m not in sys.modules)
    importlib.import_module(name)
    with single_extra_pools():
        pass
    assert blas_pools._cache[0] != key
    assert [lc.filepath for lc in blas_pools._cache[1]] == [lc.filepath for lc in extra_blas_pools()]

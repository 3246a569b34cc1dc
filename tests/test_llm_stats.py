"""Streamed activation statistics: pooling, collection through tiny random transformers, merging,
``torch.distributed`` all-reduce, persistence and input validation."""

from __future__ import annotations

import inspect
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers

from steerfair import GroupConditionalModel
from steerfair.llm.stats import POOLINGS, ActivationStats, collect, pool_hidden

transformers.logging.set_verbosity_error()

WORDS = [f"w{i}" for i in range(20)]
VOCAB = ["[PAD]", "[UNK]", "[EOS]", *WORDS]
DIM = 32
N_LAYERS = 2
GROUPS = ("a", "b")
LABELS = (0, 1)
FIXTURE_OK = [HealthCheck.function_scoped_fixture]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    """The models are tiny: one intra-op thread is fastest (and immune to a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -------------------------------------------------------------------------------------- builders
def make_tokenizer(padding_side: str = "right", pad: bool = True) -> transformers.PreTrainedTokenizerFast:
    """A word-level tokenizer over ``VOCAB``, built offline."""
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    kwargs: dict[str, str] = {"pad_token": "[PAD]"} if pad else {}
    out = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="[EOS]", **kwargs)
    out.padding_side = padding_side
    return out


def make_model(kind: str, seed: int = 0) -> torch.nn.Module:
    """A tiny random GPT-2 / GPT-2 LM / Llama in eval mode."""
    torch.manual_seed(seed)
    ids = {"bos_token_id": 2, "eos_token_id": 2}
    if kind in ("gpt2", "gpt2lm"):
        cfg = transformers.GPT2Config(n_layer=N_LAYERS, n_embd=DIM, n_head=2, vocab_size=len(VOCAB), **ids)
        model = transformers.GPT2Model(cfg) if kind == "gpt2" else transformers.GPT2LMHeadModel(cfg)
    elif kind == "llama":
        cfg = transformers.LlamaConfig(
            hidden_size=DIM,
            intermediate_size=64,
            num_hidden_layers=N_LAYERS,
            num_attention_heads=2,
            num_key_value_heads=2,
            vocab_size=len(VOCAB),
            **ids,
        )
        model = transformers.LlamaForCausalLM(cfg)
    else:
        raise ValueError(kind)
    return model.eval()


def blocks_of(model: torch.nn.Module) -> torch.nn.ModuleList:
    return (
        model.model.layers
        if hasattr(model, "model")
        else (model.transformer.h if hasattr(model, "transformer") else model.h)
    )


_MODELS: dict[str, torch.nn.Module] = {}


def model_of(kind: str) -> torch.nn.Module:
    if kind not in _MODELS:
        _MODELS[kind] = make_model(kind)
    return _MODELS[kind]


def declared(dim: int = DIM, labels: tuple[Any, ...] | None = LABELS) -> ActivationStats:
    return ActivationStats(list(range(N_LAYERS)), GROUPS, labels, dim)


def pool_one(h: torch.Tensor, pooling: str) -> torch.Tensor:
    """Pool the hidden states ``(seq, d)`` of one unpadded text, by hand."""
    if pooling == "mean":
        return h.mean(dim=0, keepdim=True)
    if pooling == "last":
        return h[-1:]
    if pooling in ("first", "cls"):
        return h[:1]
    if pooling == "tokens":  # every token but the first
        return h[1:]
    return h


def reference_rows(
    model: torch.nn.Module, tokenizer: Any, texts: list[str], pooling: str
) -> dict[int, list[np.ndarray]]:
    """Per layer, the pooled rows of each text run alone (no padding), captured with our own hooks."""
    out: dict[int, list[np.ndarray]] = {i: [] for i in range(N_LAYERS)}
    seen: dict[int, torch.Tensor] = {}
    blocks = blocks_of(model)
    handles = [
        blocks[i].register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(i, o[0] if isinstance(o, tuple) else o))
        for i in range(N_LAYERS)
    ]
    try:
        with torch.no_grad():
            for t in texts:
                # only the inputs the forward names (a decoder's takes no token_type_ids)
                named = inspect.signature(model.forward).parameters
                enc = {k: v for k, v in tokenizer([t], return_tensors="pt").items() if k in named}
                hs = model(**enc, output_hidden_states=True).hidden_states
                for i in range(N_LAYERS):
                    if i < N_LAYERS - 1:  # hidden_states[i + 1] is block i's output (the last one is normed)
                        torch.testing.assert_close(hs[i + 1], seen[i], rtol=0, atol=0)
                    out[i].append(pool_one(seen[i][0], pooling).double().numpy())
    finally:
        for h in handles:
            h.remove()
    return out


def cell_moments(rows: list[np.ndarray], cells: list[Any], cell: Any) -> tuple[int, np.ndarray, np.ndarray]:
    X = (
        np.concatenate([r for r, c in zip(rows, cells, strict=True) if c == cell])
        if cell in cells
        else np.zeros((0, DIM))
    )
    if len(X) == 0:
        return 0, np.zeros(DIM), np.zeros((DIM, DIM))
    mu = X.mean(axis=0)
    return len(X), mu, (X - mu).T @ (X - mu) / len(X)


# ------------------------------------------------------------------------------------ strategies
text_st = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join)
item_st = st.tuples(text_st, st.sampled_from(GROUPS), st.sampled_from(LABELS))
data_st = st.lists(item_st, min_size=2, max_size=9)


# ------------------------------------------------------------------------------------ pool_hidden
@given(seed=st.integers(0, 10_000), b=st.integers(1, 5), s=st.integers(1, 7), d=st.integers(1, 4), data=st.data())
@settings(max_examples=40, deadline=None)
def test_pooling_left_equals_right_padding(seed: int, b: int, s: int, d: int, data: st.DataObject) -> None:
    lengths = data.draw(st.lists(st.integers(1, s), min_size=b, max_size=b))
    g = torch.Generator().manual_seed(seed)
    tokens = [torch.randn(n, d, generator=g) for n in lengths]
    right = torch.full((b, s, d), float("nan"))  # padding holds garbage that must never be read
    left = torch.full((b, s, d), 1e30)
    mright, mleft = torch.zeros(b, s, dtype=torch.long), torch.zeros(b, s, dtype=torch.long)
    for j, (n, t) in enumerate(zip(lengths, tokens, strict=True)):
        right[j, :n], mright[j, :n] = t, 1
        left[j, s - n :], mleft[j, s - n :] = t, 1
    for pooling in POOLINGS:
        rows_r, seq_r = pool_hidden(right, mright, pooling)
        rows_l, seq_l = pool_hidden(left, mleft, pooling)
        assert torch.equal(seq_r, seq_l)
        torch.testing.assert_close(rows_r, rows_l, rtol=1e-6, atol=1e-6)
        expected = torch.cat([pool_one(t, pooling) for t in tokens])
        torch.testing.assert_close(rows_r, expected, rtol=1e-6, atol=1e-6)
        if pooling == "all":
            assert torch.equal(rows_r, torch.cat(tokens))  # exactly the non-pad rows, in order
            assert seq_r.tolist() == [j for j, n in enumerate(lengths) for _ in range(n)]
        elif pooling == "tokens":
            assert torch.equal(rows_r, torch.cat([t[1:] for t in tokens]))  # the non-pad rows but each first
            assert seq_r.tolist() == [j for j, n in enumerate(lengths) for _ in range(n - 1)]
        else:
            assert seq_r.tolist() == list(range(b))


@given(seed=st.integers(0, 10_000), b=st.integers(1, 4), s=st.integers(1, 6))
@settings(max_examples=30, deadline=None)
def test_mean_pooling_is_masked_mean(seed: int, b: int, s: int) -> None:
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(b, s, 3, generator=g, dtype=torch.float64)
    mask = (torch.rand(b, s, generator=g) < 0.6).long()
    mask[:, torch.randint(0, s, (1,), generator=g)] = 1  # every row has a token (anywhere)
    rows, _ = pool_hidden(hidden, mask, "mean")
    manual = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    torch.testing.assert_close(rows, manual, rtol=1e-12, atol=1e-12)
    rows_none, _ = pool_hidden(hidden, None, "mean")
    torch.testing.assert_close(rows_none, hidden.mean(1), rtol=1e-12, atol=1e-12)


def test_pooling_rejects_bad_input() -> None:
    hidden = torch.zeros(2, 3, 4)
    with pytest.raises(ValueError, match="unknown pooling 'max'.*mean"):
        pool_hidden(hidden, None, "max")
    with pytest.raises(ValueError, match=r"sequence\(s\) \[1\]"):
        pool_hidden(hidden, torch.tensor([[1, 0, 0], [0, 0, 0]]), "last")
    with pytest.raises(ValueError, match="shape"):
        pool_hidden(hidden, torch.ones(2, 4), "mean")
    with pytest.raises(ValueError, match="batch, seq, d"):
        pool_hidden(torch.zeros(3, 4), None, "mean")


# ------------------------------------------------------------------------------ ActivationStats
@given(seed=st.integers(0, 10_000), d=st.integers(1, 4), n=st.integers(8, 40))
@settings(max_examples=30, deadline=None)
def test_update_moments_and_model_match_numpy(seed: int, d: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, d)) * 3 + rng.normal(size=d)).astype(np.float32).astype(np.float64)
    g = np.array(["a", "b"] * (n // 2) + ["a"] * (n % 2))
    y = rng.integers(0, 2, n)
    y[:4] = [0, 0, 1, 1]  # every (group, label) cell non-empty
    stats = ActivationStats([3], ["a", "b"], [0, 1], d)
    half = n // 2
    stats.update(3, torch.tensor(X[:half], dtype=torch.float32).double(), g[:half], y[:half])
    stats.update(3, X[half:], list(g[half:]), torch.tensor(y[half:]))
    for a in ("a", "b"):
        for i in (0, 1):
            sel = (g == a) & (y == i)
            assert stats.count(3, a, i) == sel.sum()
            np.testing.assert_allclose(stats.mean(3, a, i).numpy(), X[sel].mean(0), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(
                stats.cov(3, a, i).numpy(), np.cov(X[sel].T, bias=True).reshape(d, d), rtol=1e-8, atol=1e-10
            )
    counts = [[((g == a) & (y == i)).sum() for i in (0, 1)] for a in ("a", "b")]
    if min(min(c) for c in counts) >= 2:
        model = stats.to_model(3, reg=1e-6)
        assert isinstance(model, GroupConditionalModel)
        np.testing.assert_allclose(model.counts, counts)
        sel = (g == "b") & (y == 1)
        np.testing.assert_allclose(model.components[1][1].mean, X[sel].mean(0), rtol=1e-10, atol=1e-12)


def test_unlabelled_stats_use_a_single_slot() -> None:
    stats = ActivationStats([0], ["x", "y"], None, 2)
    stats.update(0, torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), ["x", "y", "x"])
    assert stats.counts.shape == (1, 2, 1) and stats.label_slots == (None,)
    torch.testing.assert_close(stats.mean(0, "x"), torch.tensor([3.0, 4.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="without labels"):
        stats.update(0, torch.zeros(1, 2), ["x"], [1])
    with pytest.raises(ValueError, match="at least 2 labels"):
        stats.to_model(0)


def test_update_rejects_bad_input() -> None:
    stats = ActivationStats([0, 1], ["a", "b"], [0, 1], 3)
    rows = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="'c'"):
        stats.update(0, rows, ["a", "c"], [0, 1])
    with pytest.raises(ValueError, match="labels contains 7"):
        stats.update(0, rows, ["a", "b"], [0, 7])
    with pytest.raises(ValueError, match="NaN"):
        stats.update(0, torch.tensor([[0.0, float("nan"), 0.0], [0.0, 0.0, 0.0]]), ["a", "b"], [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        stats.update(0, torch.tensor([[0.0, float("inf"), 0.0]]), ["a"], [0])
    with pytest.raises(ValueError, match="layer 5"):
        stats.update(5, rows, ["a", "b"], [0, 1])
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        stats.update(0, torch.zeros(2, 4), ["a", "b"], [0, 1])
    with pytest.raises(ValueError, match="mismatched lengths"):
        stats.update(0, rows, ["a"], [0, 1])
    with pytest.raises(ValueError, match="pass labels"):
        stats.update(0, rows, ["a", "b"])
    assert float(stats.counts.sum()) == 0  # nothing was added by a failed update
    with pytest.raises(ValueError, match="twice"):
        ActivationStats([0, 0], ["a"], None, 3)
    with pytest.raises(ValueError, match="twice"):
        ActivationStats([0], ["a", "a"], None, 3)
    with pytest.raises(ValueError, match="dim"):
        ActivationStats([0], ["a"], None, 0)
    with pytest.raises(ValueError, match="no samples"):
        stats.mean(0, "a", 0)


def test_merge_checks_declarations() -> None:
    base = ActivationStats([0], ["a", "b"], [0, 1], 2)
    for other in (
        ActivationStats([1], ["a", "b"], [0, 1], 2),
        ActivationStats([0], ["a", "c"], [0, 1], 2),
        ActivationStats([0], ["a", "b"], None, 2),
        ActivationStats([0], ["a", "b"], [0, 1], 3),
    ):
        with pytest.raises(ValueError, match="different"):
            base.merge(other)
    with pytest.raises(TypeError):
        base.merge("stats")  # type: ignore[arg-type]


def test_all_reduce_needs_distributed() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        pytest.skip("a process group is already initialised")
    with pytest.raises(RuntimeError, match="not initialised"):
        ActivationStats([0], ["a"], None, 2).all_reduce()


@given(seed=st.integers(0, 10_000), labelled=st.booleans(), ints=st.booleans())
@settings(max_examples=15, deadline=None, suppress_health_check=FIXTURE_OK)
def test_save_load_round_trip_is_bit_identical(tmp_path: Path, seed: int, labelled: bool, ints: bool) -> None:
    rng = np.random.default_rng(seed)
    groups = [10, -3, 7] if ints else ["x", "y", "é"]
    labels = ["neg", "pos"] if labelled else None
    stats = ActivationStats([4, 1], groups, labels, 3)
    for layer in (4, 1):
        n = 11
        stats.update(
            layer,
            rng.normal(size=(n, 3)) * 10.0 ** rng.integers(-5, 5),
            rng.choice(np.asarray(groups, dtype=object), n),
            None if labels is None else rng.choice(labels, n),
        )
    path = tmp_path / f"stats-{seed}-{labelled}-{ints}.safetensors"
    stats.save(path)
    back = ActivationStats.load(path)
    assert (back.layers, back.groups, back.labels, back.dim) == (stats.layers, stats.groups, stats.labels, stats.dim)
    assert [type(v) for v in back.groups] == [type(v) for v in stats.groups]
    for name in ("counts", "sums", "outer"):
        assert torch.equal(getattr(back, name), getattr(stats, name))
        assert getattr(back, name).dtype == torch.float64


def test_save_rejects_values_json_cannot_hold(tmp_path: Path) -> None:
    # tuple labels are stored in a tagged JSON form and round-trip (issue 17, finding 8)
    ActivationStats([0], [("a", 1), ("b", 2)], None, 2).save(tmp_path / "s.safetensors")
    assert ActivationStats.load(tmp_path / "s.safetensors").groups == (("a", 1), ("b", 2))
    with pytest.raises(ValueError, match="JSON"):
        ActivationStats([0], ["a"], [np.float64(1.0), math.inf], 2).save(tmp_path / "s.safetensors")
    with pytest.raises(ValueError, match="labels has non-integer values"):  # update() could never take them
        ActivationStats([0], ["f", "m"], [0.5, 1.5], 4)
    from safetensors.torch import save_file

    save_file({"counts": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not written by"):
        ActivationStats.load(tmp_path / "other.safetensors")


def test_version_1_files_still_load(tmp_path: Path) -> None:
    """Files of format version 1 held raw totals (counts, sums, outer products); they load into the same moments."""
    from safetensors.torch import save_file

    rng = np.random.default_rng(0)
    stats = ActivationStats([2], ["a", "b"], [0, 1], 3)
    stats.update(2, rng.normal(size=(40, 3)) + 5.0, ["a", "b"] * 20, [0, 0, 1, 1] * 10)
    meta = {"format": "steerfair.ActivationStats", "version": 1, "layers": [2], "groups": ["a", "b"],
            "labels": [0, 1], "dim": 3}  # fmt: skip
    tensors = {"counts": stats.counts, "sums": stats.sums, "outer": stats.outer}
    save_file(tensors, str(tmp_path / "v1.safetensors"), metadata={"steerfair": json.dumps(meta)})
    back = ActivationStats.load(tmp_path / "v1.safetensors")
    assert back.count(2, "a", 1) == stats.count(2, "a", 1) == 10
    for a in ("a", "b"):
        for i in (0, 1):
            torch.testing.assert_close(back.mean(2, a, i), stats.mean(2, a, i), rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(back.cov(2, a, i), stats.cov(2, a, i), rtol=1e-9, atol=1e-10)
    cells = stats.cell_statistics(2)
    assert cells.shape == (2, 2, 3) and cells.groups.tolist() == ["a", "b"]
    np.testing.assert_array_equal(cells.means[0, 1], stats.mean(2, "a", 1).numpy())


# ---------------------------------------------------------------------------------------- collect
@pytest.mark.parametrize("kind", ["gpt2", "gpt2lm", "llama"])
@given(data=data_st, pooling=st.sampled_from(POOLINGS), side=st.sampled_from(["left", "right"]), bs=st.integers(1, 4))
@settings(max_examples=8, deadline=None)
def test_collect_matches_per_text_hidden_states(kind: str, data: list, pooling: str, side: str, bs: int) -> None:
    model, tok = model_of(kind), make_tokenizer(side)
    texts, groups, labels = (list(v) for v in zip(*data, strict=True))
    stats = collect(model, tok, texts, groups, labels, layers="all", pooling=pooling, batch_size=bs, progress=False)
    assert stats.layers == tuple(range(N_LAYERS))
    assert stats.groups == tuple(sorted(set(groups))) and stats.labels == tuple(sorted(set(labels)))
    ref = reference_rows(model, tok, texts, pooling)
    cells = list(zip(groups, labels, strict=True))
    for i in range(N_LAYERS):
        for cell in {(a, y) for a in stats.groups for y in stats.labels}:
            n, mu, S = cell_moments(ref[i], cells, cell)
            assert stats.count(i, *cell) == n
            if n:
                np.testing.assert_allclose(stats.mean(i, *cell).numpy(), mu, rtol=1e-4, atol=1e-5)
                np.testing.assert_allclose(stats.cov(i, *cell).numpy(), S, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@given(data=data_st, bs=st.integers(1, 5))
@settings(max_examples=8, deadline=None)
def test_left_and_right_padding_give_the_same_statistics(kind: str, data: list, bs: int) -> None:
    """``collect`` captures with right padding whatever side the tokenizer generates with (bit-identical statistics,
    the side restored afterwards); a :class:`BlockCapture` run on a left-padded batch takes its position ids from the
    mask and gives the same activations up to float rounding."""
    from steerfair.llm import BlockCapture
    from steerfair.llm.layers import resolve_layers

    texts, groups, labels = (list(v) for v in zip(*data, strict=True))
    model = model_of(kind)
    toks = {side: make_tokenizer(side) for side in ("left", "right")}
    runs = [
        collect(model, toks[side], texts, groups, labels, layers=[0, -1], batch_size=bs, progress=False)
        for side in ("left", "right")
    ]
    assert toks["left"].padding_side == "left"
    for name in ("counts", "sums", "outer"):
        torch.testing.assert_close(getattr(runs[0], name), getattr(runs[1], name), rtol=0, atol=0)
    pooled = {}
    for side, tok in toks.items():
        capture = BlockCapture(model, tok, resolve_layers(model, [-1], None), "mean", 64)
        handles = capture._register()
        try:
            with torch.no_grad():
                pooled[side] = capture.run(texts)[N_LAYERS - 1][0]
        finally:
            for handle in handles:
                handle.remove()
    torch.testing.assert_close(pooled["left"], pooled["right"], rtol=1e-5, atol=1e-5)


@given(data=st.lists(item_st, min_size=4, max_size=12), bs=st.integers(1, 3), data2=st.data())
@settings(max_examples=8, deadline=None)
def test_merged_shards_equal_one_pass(data: list, bs: int, data2: st.DataObject) -> None:
    texts, groups, labels = (list(v) for v in zip(*data, strict=True))
    model, tok = model_of("gpt2"), make_tokenizer("left")
    kw = {"layers": "all", "batch_size": bs, "progress": False}
    full = collect(model, tok, texts, groups, labels, stats=declared(), **kw)
    # shards cut at batch boundaries, so that every batch (hence every float32 activation) is the same
    n_batches = math.ceil(len(texts) / bs)
    cuts = sorted(data2.draw(st.sets(st.integers(1, max(1, n_batches - 1)), max_size=3)))
    bounds = [0, *[c * bs for c in cuts if c * bs < len(texts)], len(texts)]
    shards = [
        collect(model, tok, texts[lo:hi], groups[lo:hi], labels[lo:hi], stats=declared(), **kw)
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    merged = sum(shards)
    backwards = shards[-1]
    for s in reversed(shards[:-1]):
        backwards = s + backwards
    for name in ("counts", "sums", "outer"):
        ref = getattr(full, name)
        torch.testing.assert_close(getattr(merged, name), ref, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(getattr(backwards, name), ref, rtol=1e-10, atol=1e-13)
    if len(shards) >= 2:
        a, b = shards[0], shards[1]
        assert all(torch.equal(getattr(a + b, k), getattr(b + a, k)) for k in ("counts", "sums", "outer"))
        assert float((a + b).counts.sum()) == float(a.counts.sum()) + float(b.counts.sum())


def test_collect_continues_existing_stats() -> None:
    model, tok = model_of("gpt2"), make_tokenizer()
    texts, groups = ["w1 w2", "w3", "w4 w5 w6", "w7"], ["a", "b", "a", "b"]
    stats = ActivationStats([1], ["a", "b", "c"], None, DIM)
    out = collect(model, tok, texts[:2], groups[:2], layers=1, stats=stats, progress=False)
    assert out is stats
    collect(model, tok, texts[2:], groups[2:], layers=[-1], stats=stats, progress=False)
    one_pass = collect(model, tok, texts, groups, layers=1, progress=False)
    assert one_pass.groups == ("a", "b")
    torch.testing.assert_close(stats.sums[:, :2], one_pass.sums, rtol=1e-5, atol=1e-6)
    assert float(stats.counts[0, 2, 0]) == 0
    with pytest.raises(ValueError, match="'z'"):
        collect(model, tok, texts[:1], ["z"], layers=1, stats=stats, progress=False)
    with pytest.raises(ValueError, match="not among the declared layers"):
        collect(model, tok, texts[:1], ["a"], layers=0, stats=stats, progress=False)
    with pytest.raises(ValueError, match="without labels"):
        collect(model, tok, texts[:1], ["a"], [0], layers=1, stats=stats, progress=False)


def test_collect_cleans_up_hooks_mode_and_pad_token() -> None:
    model, tok = make_model("gpt2lm"), make_tokenizer("left", pad=False)
    assert tok.pad_token is None
    model.train()
    model.transformer.h[0].eval()
    texts, groups = ["w1 w2", "w3", "w4 w5 w6", ""], ["a", "b", "a", "b"]
    stats = collect(model, tok, texts[:3], groups[:3], layers="all", pooling="last", batch_size=2, progress=False)
    assert tok.pad_token is None  # eos was used as pad only during the call
    assert model.training and model.transformer.h[1].training and not model.transformer.h[0].training
    assert all(not m._forward_hooks for m in model.modules())
    assert stats.count(0, "a") == 2
    with pytest.raises(ValueError, match=r"texts\[3\].*no tokens"):  # fails in the second batch
        collect(model, tok, texts, groups, layers="all", batch_size=2, progress=False)
    assert all(not m._forward_hooks for m in model.modules())
    assert tok.pad_token is None and model.training


def test_collect_rejects_bad_input() -> None:
    model, tok = model_of("gpt2"), make_tokenizer()
    kw: dict[str, Any] = {"layers": 0, "progress": False}
    with pytest.raises(ValueError, match="mismatched lengths: texts=2, groups=1"):
        collect(model, tok, ["w1", "w2"], ["a"], **kw)
    with pytest.raises(ValueError, match="mismatched lengths: texts=2, groups=2, labels=3"):
        collect(model, tok, ["w1", "w2"], ["a", "b"], [0, 1, 1], **kw)
    with pytest.raises(ValueError, match="empty"):
        collect(model, tok, [], [], **kw)
    with pytest.raises(ValueError, match="single string"):
        collect(model, tok, "w1 w2", ["a"], **kw)
    with pytest.raises(ValueError, match="unknown pooling"):
        collect(model, tok, ["w1"], ["a"], pooling="max", layers=0, progress=False)
    with pytest.raises(ValueError, match="out of range"):
        collect(model, tok, ["w1"], ["a"], layers=5, progress=False)
    with pytest.raises(ValueError, match="unknown layer name"):
        collect(model, tok, ["w1"], ["a"], layers="h.9", progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        collect(model, tok, ["w1"], ["a"], batch_size=0, **kw)
    with pytest.raises(ValueError, match="missing"):
        collect(model, tok, ["w1"], [None], **kw)


# ------------------------------------------------------------------------------ torch.distributed
def _dist_worker(rank: int, world: int, tmp: str, texts: list[str], groups: list[str], labels: list[int]) -> None:
    """One rank: collect its half of the texts, all-reduce, save; also check the declaration guard."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp}/rdv", rank=rank, world_size=world)
    try:
        half = len(texts) // 2
        lo, hi = (0, half) if rank == 0 else (half, len(texts))
        stats = collect(
            make_model("gpt2"),
            make_tokenizer("left"),
            texts[lo:hi],
            groups[lo:hi],
            labels[lo:hi],
            layers="all",
            batch_size=2,
            progress=False,
            stats=declared(),
        )
        stats.all_reduce()
        stats.save(f"{tmp}/rank{rank}.safetensors")
        odd = ActivationStats([0], ["a", "b"] if rank == 0 else ["a", "c"], None, 2)
        try:
            odd.all_reduce()
        except ValueError:
            Path(f"{tmp}/guard{rank}").touch()
    finally:
        # both ranks done before either tears gloo down (a rank that destroyed its group while the other was still
        # in a collective aborted once under load: "terminate called without an active exception")
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    # leave without the interpreter's teardown: gloo's C++ threads were once destroyed while still joinable there,
    # which aborts the rank ("terminate called without an active exception") after every result was saved
    os._exit(0)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_all_reduce_over_two_processes_equals_one_pass(tmp_path: Path) -> None:
    words = WORDS
    texts = [" ".join(words[(3 * j + t) % 20] for t in range(1 + j % 5)) for j in range(12)]
    groups = ["a", "b", "b", "a"] * 3
    labels = [0, 0, 1, 1, 1, 0] * 2
    torch.multiprocessing.spawn(_dist_worker, args=(2, str(tmp_path), texts, groups, labels), nprocs=2, join=True)
    single = collect(
        make_model("gpt2"), make_tokenizer("left"), texts, groups, labels, layers="all", batch_size=2, progress=False
    )
    ranks = [ActivationStats.load(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
    for name in ("counts", "sums", "outer"):
        assert torch.equal(getattr(ranks[0], name), getattr(ranks[1], name))
        torch.testing.assert_close(getattr(ranks[0], name), getattr(single, name), rtol=1e-6, atol=1e-7)
    assert (tmp_path / "guard0").exists() and (tmp_path / "guard1").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_update_from_cuda_rows_matches_cpu() -> None:
    X = torch.randn(20, 5, dtype=torch.float64)
    groups, labels = ["a", "b"] * 10, [0, 0, 1, 1] * 5
    cpu = ActivationStats([0], ["a", "b"], [0, 1], 5).update(0, X, groups, labels)
    gpu = ActivationStats([0], ["a", "b"], [0, 1], 5).update(0, X.cuda(), groups, labels)
    assert gpu.outer.device.type == "cpu"
    for name in ("counts", "sums", "outer"):
        torch.testing.assert_close(getattr(gpu, name), getattr(cpu, name), rtol=1e-12, atol=1e-12)


def _saved_small_stats(tmp_path: Path, dim: int) -> tuple[Path, dict[str, np.ndarray], dict[str, str]]:
    """Statistics of 20 random rows saved to ``tmp_path / "s.safetensors"``: the path, its tensors (copies, to
    damage) and its metadata."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    rng = np.random.default_rng(0)
    stats = ActivationStats([0], ["a", "b"], [0, 1], dim)
    stats.update(0, rng.normal(size=(20, dim)), rng.choice(["a", "b"], 20), rng.integers(0, 2, 20))
    path = tmp_path / "s.safetensors"
    stats.save(path)
    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
    return path, {k: v.copy() for k, v in load_file(str(path)).items()}, meta


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda t: t["layer0.counts"].__setitem__((0, 0), -5.0), "negative count or variance"),
        (lambda t: t["layer0.covs"].__setitem__((0, 0, 0, 0), -99.0), "negative count or variance"),
        (lambda t: t["layer0.covs"].__setitem__((0, 0, 0, 1), 99.0), "not symmetric"),
        (lambda t: t["layer0.signed"].__setitem__((0, 0), 0.5), "'signed' holds values other than 0 and 1"),
        (lambda t: t["layer0.sizes"].__setitem__((0, 0), -3.0), "'sizes' holds a negative value"),
        (lambda t: t.__setitem__("layer3.counts", t["layer0.counts"].copy()), "that the metadata does not declare"),
    ],
)
def test_load_refuses_a_damaged_file_that_still_parses(tmp_path: Path, damage: Any, message: str) -> None:
    """A file whose arrays were changed (a negative count or variance, an asymmetric covariance, a fractional
    'signed', an undeclared layer) loaded silently; it is refused, naming the path."""
    from safetensors.numpy import save_file

    path, tensors, meta = _saved_small_stats(tmp_path, 2)
    damage(tensors)
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ValueError, match=message):
        ActivationStats.load(path)


@pytest.mark.parametrize(("field", "value"), [("layers", "abc"), ("dim", "4"), ("groups", ["a", "a"])])
def test_load_names_the_file_for_bad_declared_metadata(tmp_path: Path, field: str, value: Any) -> None:
    """Metadata whose declared layers, dimension or groups are bad is refused naming the file (before, the
    constructor's message named neither the file nor what to do)."""
    import json

    from safetensors.numpy import save_file

    path, tensors, meta = _saved_small_stats(tmp_path, 4)
    key = next(k for k, v in meta.items() if field in v)
    record = json.loads(meta[key])
    record[field] = value
    meta[key] = json.dumps(record)
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ValueError, match=r"s\.safetensors"):
        ActivationStats.load(path)

"""Steering hooks on tiny random transformers: exact application, bit-identical removal, generation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

transformers = pytest.importorskip("transformers")

from steerfair import AffineMap  # noqa: E402
from steerfair.llm.bundle import SteeringBundle  # noqa: E402
from steerfair.llm.hooks import LinearProbe, attach, interpolate, steer  # noqa: E402
from steerfair.llm.layers import find_layer_list, resolve_layers  # noqa: E402

D, V = 32, 50


def tiny(kind: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if kind == "gpt2":
        cfg = transformers.GPT2Config(n_layer=3, n_embd=D, n_head=2, vocab_size=V, n_positions=64)
        model = transformers.GPT2LMHeadModel(cfg)
    elif kind == "llama":
        cfg = transformers.LlamaConfig(
            hidden_size=D,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=2,
            num_key_value_heads=2,
            vocab_size=V,
            max_position_embeddings=64,
        )
        model = transformers.LlamaForCausalLM(cfg)
    elif kind == "neox":
        cfg = transformers.GPTNeoXConfig(
            hidden_size=D,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=2,
            vocab_size=V,
            max_position_embeddings=64,
        )
        model = transformers.GPTNeoXForCausalLM(cfg)
    elif kind == "bert":
        cfg = transformers.BertConfig(
            hidden_size=D,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=2,
            vocab_size=V,
            max_position_embeddings=64,
        )
        model = transformers.BertModel(cfg)
    else:
        raise ValueError(kind)
    return model.eval()


def random_map(seed: int, low_rank: int | None = None) -> AffineMap:
    rng = np.random.default_rng(seed)
    if low_rank is not None:
        return AffineMap.low_rank(
            rng.normal(size=(D, low_rank)) * 0.3, rng.normal(size=(D, low_rank)) * 0.3, rng.normal(size=D)
        )
    return AffineMap(np.eye(D) + 0.3 * rng.normal(size=(D, D)), rng.normal(size=D))


def ids(seed: int, b: int = 2, t: int = 7) -> torch.Tensor:
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


def logits(model: torch.nn.Module, x: torch.Tensor, **kw) -> torch.Tensor:
    with torch.no_grad():
        out = model(input_ids=x, **kw)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def capture(model: torch.nn.Module, layer: int, x: torch.Tensor) -> torch.Tensor:
    """The output hidden state of block ``layer`` (hook registered last, so it sees steered outputs)."""
    _, blocks = find_layer_list(model)
    box = {}

    def hook(m, a, out):
        box["h"] = (out if isinstance(out, torch.Tensor) else out[0]).detach().clone()

    h = blocks[layer].register_forward_hook(hook)
    try:
        logits(model, x)
    finally:
        h.remove()
    return box["h"]


def n_hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("kind", ["gpt2", "llama", "neox", "bert"])
def test_layer_discovery_and_exact_application(kind: str) -> None:
    model = tiny(kind)
    path, blocks = find_layer_list(model)
    assert len(blocks) == 3, path
    x = ids(0)
    before = capture(model, 1, x)
    T = random_map(1)
    with steer(model, {1: T}):
        after = capture(model, 1, x)
    torch.testing.assert_close(after, T(before), rtol=1e-5, atol=1e-5)
    # negative index and module-name forms select the same block
    assert resolve_layers(model, -2).keys() == resolve_layers(model, f"{path}.1").keys() == {1}


@given(seed=st.integers(0, 1000), kind=st.sampled_from(["gpt2", "llama"]), low=st.sampled_from([None, 2]))
@settings(max_examples=8, deadline=None)
def test_removal_restores_bit_identical_outputs(seed: int, kind: str, low: int | None) -> None:
    model = tiny(kind, seed % 3)
    x = ids(seed)
    ref = logits(model, x)
    handle = attach(model, random_map(seed, low), layers=[0, -1])
    assert not torch.equal(logits(model, x), ref)
    handle.remove()
    assert torch.equal(logits(model, x), ref)
    assert n_hooks(model) == 0
    # the identity map changes nothing, bit for bit
    with steer(model, AffineMap.identity(D), layers="all"):
        assert torch.equal(logits(model, x), ref)


def test_hooks_are_removed_on_exceptions_and_failed_attach() -> None:
    model = tiny("llama")
    with pytest.raises(RuntimeError, match="boom"):
        with steer(model, random_map(0), layers=1):
            raise RuntimeError("boom")
    assert n_hooks(model) == 0
    with pytest.raises(ValueError, match="out of range"):
        attach(model, random_map(0), layers=7)
    with pytest.raises(ValueError, match="hidden size"):
        attach(model, AffineMap(np.eye(D + 1)), layers=0)
    with pytest.raises(ValueError, match="no steering map"):
        attach(model, {"a": random_map(0), "b": random_map(1)}, layers=0, groups=["a", "zzz"])
    with pytest.raises(ValueError, match="unknown positions"):
        attach(model, random_map(0), layers=0, positions="middle")
    with pytest.raises(ValueError, match="unknown layer name"):
        attach(model, random_map(0), layers="model.layers.9")
    with pytest.raises(ValueError, match="not an nn.ModuleList"):
        attach(model, random_map(0), layers=0, layer_path="model.embed_tokens")
    assert n_hooks(model) == 0


def test_last_position_under_left_and_right_padding() -> None:
    model = tiny("gpt2")
    T = random_map(3)
    x = ids(4, b=1, t=5)
    pad = torch.zeros(1, 2, dtype=torch.long)
    for side in ("left", "right"):
        xx = torch.cat([pad, x], 1) if side == "left" else torch.cat([x, pad], 1)
        mask = (
            torch.cat([torch.zeros(1, 2), torch.ones(1, 5)], 1)
            if side == "left"
            else torch.cat([torch.ones(1, 5), torch.zeros(1, 2)], 1)
        )
        mask = mask.long()
        _, blocks = find_layer_list(model)
        box = {}
        hk = blocks[0].register_forward_hook(
            lambda m, a, o, box=box: box.__setitem__("h", o[0] if isinstance(o, tuple) else o)
        )
        with torch.no_grad():
            model(input_ids=xx, attention_mask=mask)
            plain = box["h"].clone()
            hk.remove()
            with steer(model, {0: T}, positions="last"):
                hk = blocks[0].register_forward_hook(
                    lambda m, a, o, box=box: box.__setitem__("h", o[0] if isinstance(o, tuple) else o)
                )
                model(input_ids=xx, attention_mask=mask)
                hk.remove()
        steered = box["h"]
        last = 6 if side == "left" else 4
        changed = (steered != plain).any(-1)[0]
        assert changed.tolist() == [j == last for j in range(7)], side
        torch.testing.assert_close(steered[0, last], T(plain[0, last]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize("positions", ["tokens", "last"])
def test_a_direct_call_of_the_inner_model_sees_the_padding(kind: str, positions: str) -> None:
    """Hooks attached to a causal LM read the attention mask in its own pre-hook; calling the module that holds the
    blocks directly (``model.model(...)``, ``model.transformer(...)``) skipped it, and "tokens" moved the padding,
    "last" the last pad column. The steered states must be those of a call of the whole model."""
    model = tiny(kind)
    x = ids(5, b=2, t=6)
    mask = torch.ones_like(x)
    mask[1, 2:] = 0  # right padding in the second row
    path = find_layer_list(model)[0]
    inner = model.get_submodule(path.rsplit(".", 1)[0])
    with torch.no_grad():
        plain = model(input_ids=x, attention_mask=mask, output_hidden_states=True).hidden_states[2]
        with steer(model, {1: random_map(2)}, positions=positions):
            whole = model(input_ids=x, attention_mask=mask, output_hidden_states=True).hidden_states[2]
            direct = inner(input_ids=x, attention_mask=mask, output_hidden_states=True).hidden_states[2]
    assert torch.equal(whole, direct)
    moved = (whole != plain).any(-1)
    assert moved[0].any() and not moved[1, 2:].any()  # steering acted, and never on the second row's padding


@pytest.mark.parametrize("positions", ["tokens", "last"])
def test_an_attention_mask_passed_positionally_is_read(positions: str) -> None:
    """``model(ids, mask)``: the mask was read from keywords only, so "tokens" steered the pad positions (real-token
    logits 0.55 off) and "last" refused the call as unmasked. Positional and keyword calls steer alike."""
    model = tiny("llama")
    x = ids(5, b=2, t=6)
    mask = torch.ones_like(x)
    mask[1, :3] = 0  # left padding in the second row
    with torch.no_grad(), steer(model, {0: random_map(2)}, positions=positions):
        by_name = model(input_ids=x, attention_mask=mask).logits
        by_place = model(x, mask).logits
    real = mask.bool()
    assert torch.equal(by_name[real], by_place[real])
    with torch.no_grad():
        plain = model(input_ids=x, attention_mask=mask).logits
    assert not torch.equal(plain[real], by_place[real])  # steering acted


def test_call_arguments_name_positional_arguments_whatever_the_signature() -> None:
    from steerfair.llm.call_context import call_arguments

    class Wrapped(torch.nn.Module):  # an accelerate-style wrapper: forward(*args, **kwargs)
        def forward(self, *args: object, **kwargs: object) -> None:
            return None

    class Plain(torch.nn.Module):
        def forward(self, input_ids: object = None, attention_mask: object = None, **kwargs: object) -> None:
            return None

    assert call_arguments(Plain(), (1, 2), {"cache": 5}) == {"input_ids": 1, "attention_mask": 2, "cache": 5}
    assert call_arguments(Wrapped(), (1,), {"attention_mask": 3}) == {"attention_mask": 3, "input_ids": 1}
    assert call_arguments(Plain(), (), {"input_ids": 1}) == {"input_ids": 1}


@pytest.mark.parametrize("side", ["left", "right"])
def test_tokens_positions_steer_every_real_token_but_the_first(side: str) -> None:
    """``positions="tokens"`` moves exactly the states of ``tokens_mask`` (the rows of ``pooling="tokens"``): the same
    output as the equivalent boolean mask, every real token but each row's first changed, pads and firsts not."""
    from steerfair.llm.pooling import tokens_mask

    model = tiny("gpt2")
    T = random_map(6)
    x = ids(7, b=2, t=5)
    pad = torch.zeros(2, 2, dtype=torch.long)
    xx = torch.cat([pad, x], 1) if side == "left" else torch.cat([x, pad], 1)
    mask = torch.ones_like(xx)  # row 0 padded by two on its side; row 1 reads the pad ids as real tokens
    mask[0, :2] = 0 if side == "left" else 1
    mask[0, 5:] = 1 if side == "left" else 0
    _, blocks = find_layer_list(model)
    seen: list[torch.Tensor] = []
    with torch.no_grad():
        hk = blocks[0].register_forward_hook(lambda m, a, o: seen.append(o[0] if isinstance(o, tuple) else o))
        try:
            model(input_ids=xx, attention_mask=mask)
            with steer(model, {0: T}, positions="tokens"):
                model(input_ids=xx, attention_mask=mask)
            with steer(model, {0: T}, positions=tokens_mask(mask)):
                model(input_ids=xx, attention_mask=mask)
        finally:
            hk.remove()
    plain, steered, by_mask = seen
    assert torch.equal(steered, by_mask)
    want = tokens_mask(mask)
    assert want.sum() == int(mask.sum()) - 2  # one first token per row
    assert torch.equal((steered != plain).any(-1), want)


def _generate(model, x, mask=None, **kw):
    with torch.no_grad():
        return model.generate(
            input_ids=x,
            attention_mask=mask if mask is not None else torch.ones_like(x),
            max_new_tokens=6,
            do_sample=False,
            pad_token_id=0,
            **kw,
        )


@pytest.mark.parametrize("positions", ["all", "tokens", "prompt", "generated", "last"])
def test_generation_batched_equals_unbatched_and_cache_is_respected(positions: str) -> None:
    model = tiny("llama", 1)
    T = random_map(5, low_rank=3)
    a, b = ids(10, b=1, t=6), ids(11, b=1, t=4)
    with steer(model, {1: T}, positions=positions):
        solo_a = _generate(model, a)[0, 6:]
        solo_b = _generate(model, b)[0, 4:]
        batch = torch.cat([a, torch.cat([torch.zeros(1, 2, dtype=torch.long), b], 1)], 0)
        mask = torch.ones_like(batch)
        mask[1, :2] = 0
        out = _generate(model, batch, mask)
    assert torch.equal(out[0, 6:], solo_a) and torch.equal(out[1, 6:], solo_b)
    plain = _generate(model, a)[0, 6:]
    if positions == "all":
        with steer(model, {1: T}, positions=positions):
            nocache = _generate(model, a, use_cache=False)[0, 6:]
        assert torch.equal(nocache, solo_a)
    assert n_hooks(model) == 0 and plain.shape == solo_a.shape


def test_generated_positions_leave_the_prompt_alone() -> None:
    model = tiny("gpt2")
    x = ids(2, b=1, t=5)
    ref = logits(model, x)
    with steer(model, {0: random_map(0)}, positions="generated"):
        assert torch.equal(logits(model, x), ref)  # a fresh forward is all prompt
    with steer(model, {0: random_map(0)}, positions="prompt"):
        assert not torch.equal(logits(model, x), ref)


@given(seed=st.integers(0, 1000))
@settings(max_examples=5, deadline=None)
def test_group_maps_hard_soft_and_probe(seed: int) -> None:
    model = tiny("gpt2")
    maps = {"f": random_map(seed), "m": random_map(seed + 1)}
    x = ids(seed, b=3)
    plain = capture(model, 2, x)
    with steer(model, {2: maps}, groups=["f", "m", "f"]) as h:
        hard = capture(model, 2, x)
        h.set_groups(group_proba=[[1, 0], [0, 1], [1, 0]])
        onehot = capture(model, 2, x)
        h.set_groups(group_proba=[[0.25, 0.75]] * 3)
        soft = capture(model, 2, x)
    for r, g in enumerate(["f", "m", "f"]):
        torch.testing.assert_close(hard[r], maps[g](plain[r]), rtol=1e-5, atol=1e-5)
    assert torch.equal(hard, onehot)
    torch.testing.assert_close(soft, 0.25 * maps["f"](plain) + 0.75 * maps["m"](plain), rtol=1e-5, atol=1e-5)
    # a probe gives per-token weights: a probe certain of "m" reproduces the "m" map
    W = np.zeros((D, 2))
    probe = LinearProbe(W, np.array([-50.0, 50.0]), ("f", "m"))
    with steer(model, {2: maps}, probe=probe):
        torch.testing.assert_close(capture(model, 2, x), maps["m"](plain), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="groups=, group_proba= or a probe"):
        with steer(model, {2: maps}):
            logits(model, x)
    with pytest.raises(ValueError, match="rows but the batch"):
        with steer(model, {2: maps}, groups=["f"]):
            logits(model, x)
    # the probe's groups are matched to the maps by name, whatever order either lists them in
    with steer(model, {2: {"m": maps["m"], "f": maps["f"]}}, probe=probe):
        torch.testing.assert_close(capture(model, 2, x), maps["m"](plain), rtol=1e-5, atol=1e-5)
    for other in (
        LinearProbe(W, np.array([-50.0, 50.0]), ("x", "y")),
        LinearProbe(np.zeros((D, 3)), np.zeros(3), "fmx"),
    ):
        with pytest.raises(ValueError, match="the probe's groups"):
            attach(model, {2: maps}, probe=other)
    assert torch.equal(capture(model, 2, x), plain)  # nothing left attached


def test_positions_must_be_a_name_or_a_boolean_mask() -> None:
    """A list, tuple or int was taken for "generated" (the prompt left alone, silently); a numpy mask failed inside
    the forward. Now: names and boolean masks (torch or numpy, the same result), anything else a clear error."""
    model = tiny("gpt2")
    T, x = random_map(0), ids(0, b=2)
    mask = np.zeros((2, x.shape[1]), dtype=bool)
    mask[:, 1:3] = True
    with steer(model, {2: T}, positions=torch.from_numpy(mask)):
        by_tensor = capture(model, 2, x)
    with steer(model, {2: T}, positions=mask):
        assert torch.equal(capture(model, 2, x), by_tensor)
    for bad in (["tokens"], ("all",), 0, [[True] * x.shape[1]] * 2):
        with pytest.raises(ValueError, match="positions must be"):
            attach(model, {2: T}, positions=bad)


def test_maps_of_another_width_are_refused_where_the_config_names_no_hidden_size() -> None:
    """A model without a ``hidden_size`` in its config (here a plain module) is checked at the first forward: a
    64-dimensional map on 32-dimensional states mixed pairs of tokens before."""

    class Stack(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList([torch.nn.Linear(D, D) for _ in range(2)])

        def forward(self, h: torch.Tensor) -> torch.Tensor:
            for block in self.layers:
                h = block(h)
            return h

    model, h = Stack().eval(), torch.randn(2, 4, D)
    for width in (16, 64):
        with pytest.raises(ValueError, match=f"maps are {width}-dimensional but its hidden states are {D}"):
            with steer(model, {0: AffineMap(np.eye(width), np.ones(width))}, positions="all"):
                model(h)


def test_half_precision_model() -> None:
    model = tiny("llama").to(torch.bfloat16)
    x = ids(0)
    ref = logits(model, x)
    with steer(model, random_map(0, low_rank=2), layers=[0, 2]):
        out = logits(model, x)
    # logits keep the model's dtype (transformers 4.x upcasts Llama logits to float32 either way)
    assert out.dtype == ref.dtype and torch.isfinite(out.float()).all() and not torch.equal(out, ref)
    assert torch.equal(logits(model, x), ref)


def test_probe_lda_and_bundle_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(300, D)) + 1.5, rng.normal(size=(300, D)) - 1.5])
    g = np.array(["a"] * 300 + ["b"] * 300)
    probe = LinearProbe.fit(X, g)
    assert np.mean(probe.predict(X) == g) > 0.99
    np.testing.assert_allclose(probe.proba(X).sum(1), 1.0)
    bundle = SteeringBundle(
        {0: {"a": random_map(1), "b": random_map(2, low_rank=2)}, 2: {"a": random_map(3), "b": random_map(4)}},
        ("a", "b"),
        {0: probe},
        None,
        {"model": "tiny", "criterion": "equal_opportunity"},
    )
    bundle.save(tmp_path / "b.safetensors")
    back = SteeringBundle.load(tmp_path / "b.safetensors")
    assert back.layers == [0, 2] and back.groups == ("a", "b") and back.metadata["model"] == "tiny"
    for layer in bundle.maps:
        for grp in ("a", "b"):
            assert back.maps[layer][grp] == bundle.maps[layer][grp]
    np.testing.assert_array_equal(back.probes[0].W, probe.W)
    model = tiny("gpt2")
    x = ids(0, b=2)
    with steer(model, back, groups=["a", "b"]):
        one = logits(model, x)
    with steer(model, bundle, groups=["a", "b"]):
        two = logits(model, x)
    assert torch.equal(one, two)


@given(seed=st.integers(0, 100), strength=st.floats(0.0, 2.0), low=st.sampled_from([None, 3]))
@settings(max_examples=10, deadline=None)
def test_strength_interpolates_between_identity_and_the_map(seed: int, strength: float, low: int | None) -> None:
    from steerfair.llm.hooks import interpolate

    T = random_map(seed, low)
    x = np.random.default_rng(seed).normal(size=(5, D))
    np.testing.assert_allclose(interpolate(T, strength)(x), x + strength * (T(x) - x), atol=1e-10)
    assert interpolate(T, strength).is_low_rank == T.is_low_rank
    model = tiny("gpt2")
    xx = ids(seed)
    ref = logits(model, xx)
    with steer(model, {0: T}, strength=0.0):
        torch.testing.assert_close(logits(model, xx), ref, rtol=1e-5, atol=1e-5)


def test_hard_probe_applies_the_most_probable_groups_map() -> None:
    model = tiny("gpt2")
    maps = {"f": random_map(7), "m": random_map(8)}
    x = ids(3, b=2)
    plain = capture(model, 1, x)
    rng = np.random.default_rng(0)
    probe = LinearProbe(rng.normal(size=(D, 2)), np.zeros(2), ("f", "m"))
    winner = probe.proba(plain).argmax(-1)  # per token
    with steer(model, {1: maps}, probe=probe, probe_mode="hard"):
        hard = capture(model, 1, x)
    want = torch.where((winner == 0)[..., None], maps["f"](plain), maps["m"](plain))
    torch.testing.assert_close(hard, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="probe_mode"):
        attach(model, {1: maps}, probe=probe, probe_mode="median")
    assert n_hooks(model) == 0


def test_bad_layers_and_empty_batches_get_clear_errors() -> None:
    """``layers=1.0`` (or ``None`` for capture; "'float' object is not iterable") and an empty batch (IndexError)
    now name the argument."""
    from steerfair.llm import capture_blocks

    model = tiny("gpt2")
    with pytest.raises(ValueError, match="layers must be an index"):
        attach(model, {1: random_map(0)}, layers=1.0)  # type: ignore[arg-type]
    for bad in (1.0, None):
        with pytest.raises(ValueError, match="layers must be an index"):
            with capture_blocks(model, None, bad):  # type: ignore[arg-type]
                pass
    from tokenizers import Tokenizer, models, pre_tokenizers

    raw = Tokenizer(models.WordLevel({"[PAD]": 0, "[UNK]": 1, "a": 2}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]")
    with capture_blocks(model, tok, [1]) as cap, pytest.raises(ValueError, match="texts is empty"):
        cap.run([])


@pytest.mark.parametrize("positions", ["prompt", "generated"])
def test_uncached_generation_warns_that_prompt_positions_cover_every_step(positions: str) -> None:
    """``generate(use_cache=False)`` runs every step as a fresh forward: "generated" steered nothing silently."""
    model = tiny("gpt2")
    x = ids(3, b=2, t=5)
    with steer(model, {1: random_map(1)}, positions=positions):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            cached = _generate(model, x)  # the default, cached: no warning
            logits(model, x)
            logits(model, x)  # repeated fresh forwards of one length: no warning
        with pytest.warns(UserWarning, match="without a KV cache") as record:
            uncached = _generate(model, x, use_cache=False)
    assert len(record) == 1 and record[0].filename == __file__  # once, pointing at this file's call
    plain = _generate(model, x, use_cache=False)
    if positions == "generated":  # what the warning says: nothing was steered
        assert torch.equal(uncached, plain) and not torch.equal(cached, plain)
    else:
        assert not torch.equal(uncached, plain)


def _selected(handle, run) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    """The positions masks the handle's blocks chose during ``run()``."""
    seen: list[torch.Tensor] = []
    original = handle._selection
    handle._selection = lambda h: (seen.append(original(h)), seen[-1])[1]
    run()
    return seen


def test_an_encoder_decoder_steers_decoder_positions_read_from_the_decoder_inputs() -> None:
    """The blocks found in an encoder-decoder model are the decoder's: "tokens" and "last" read the decoder's ids
    and mask, never the encoder's (a padded source row chose the wrong decoder positions)."""
    torch.manual_seed(0)
    cfg = transformers.BartConfig(d_model=D, encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_layers=2,
                                  decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
                                  vocab_size=V)  # fmt: skip
    model = transformers.BartForConditionalGeneration(cfg).eval()
    assert find_layer_list(model)[0].endswith("decoder.layers")
    source, source_mask = ids(0, 2, 6), torch.ones(2, 6, dtype=torch.long)
    source_mask[1, 3:] = 0
    target = ids(1, 2, 5)
    target_mask = torch.ones(2, 5, dtype=torch.long)
    target_mask[0, 4] = 0  # a right-padded decoder row: its last real token is at 3
    for kw, last in (({}, [4, 4]), ({"decoder_attention_mask": target_mask}, [3, 4])):
        for positions in ("tokens", "last"):
            handle = attach(model, random_map(0), layers=0, positions=positions)
            try:
                with torch.no_grad():
                    sel = _selected(handle, lambda kw=kw: model(input_ids=source, attention_mask=source_mask,
                                                          decoder_input_ids=target, **kw))[0]  # fmt: skip
            finally:
                handle.remove()
            if positions == "last":
                assert sel.int().argmax(dim=1).tolist() == last and int(sel.sum()) == 2
            else:
                want = torch.ones(2, 5, dtype=torch.bool)
                want[:, 0] = False
                if kw:
                    want &= target_mask.bool()
                assert torch.equal(sel, want)


def test_masks_the_hooks_cannot_read_are_refused_and_a_failed_call_leaves_no_context() -> None:
    model = tiny("llama")
    x = ids(2, 2, 5)
    four_d = torch.ones(2, 1, 5, 5)
    for positions in ("tokens", "last"):
        with steer(model, random_map(0), layers=1, positions=positions):
            with pytest.raises(ValueError, match="2-D"):
                logits(model, x, attention_mask=four_d)
    with steer(model, random_map(0), layers=1, positions=torch.ones(3, 5, dtype=torch.bool)):
        with pytest.raises(ValueError, match="positions mask has 3 rows but the batch has 2"):
            logits(model, x)
    with steer(model, {"a": random_map(0), "b": random_map(1)}, layers=1, groups=["a", "b"]) as handle:
        with pytest.raises(ValueError, match="groups were given for 2 rows"):
            logits(model, x[:1], attention_mask=torch.ones(1, 5, dtype=torch.long))
        assert handle._ctx == {}  # the failed call's mask is gone: a direct call of the inner model reads its own
        with torch.no_grad():
            model.model(input_ids=x, attention_mask=torch.ones(2, 5, dtype=torch.long))
    assert n_hooks(model) == 0


def test_numpy_indices_and_numbers_are_taken_and_mismatched_probes_refused() -> None:
    model = tiny("gpt2")
    x = ids(3)
    T = random_map(0)
    with steer(model, {1: T}, layers=[1]):
        want = logits(model, x)
    for layers in (np.int64(1), [np.int64(1)]):
        with steer(model, {1: T}, layers=layers):
            assert torch.equal(logits(model, x), want)
    half = interpolate(T, 0.5)
    with steer(model, {1: half}, layers=1):
        want_half = logits(model, x)
    for strength in (np.float32(0.5), torch.tensor(0.5), 0.5):
        with steer(model, {1: T}, layers=1, strength=strength):
            assert torch.allclose(logits(model, x), want_half, atol=1e-5)
    with pytest.raises(ValueError, match="strength must be a number"):
        attach(model, T, layers=1, strength="half")
    rng = np.random.default_rng(0)
    narrow = LinearProbe(rng.normal(size=(D // 2, 2)), np.zeros(2), ("a", "b"))
    with pytest.raises(ValueError, match="reads 16 columns but the layer's maps act on 32"):
        attach(model, {"a": T, "b": random_map(1)}, layers=1, probe=narrow)
    with pytest.raises(ValueError, match=r"no map for layer\(s\) \[1\]: maps are given for layers \[0\]"):
        attach(model, {0: {"a": T, "b": random_map(1)}}, layers=[1])
    assert n_hooks(model) == 0


def test_strength_zero_is_the_identity_in_float64_too() -> None:
    """Per-group maps at strength 0 leave a float64 model's outputs bit for bit (the mixture was taken in float32:
    7.8e-9 off), and a float64 steered state is its map's image to float64 precision."""
    model = tiny("gpt2").double()
    x = ids(4)
    maps = {1: {"a": random_map(1), "b": random_map(2)}}
    ref = logits(model, x)
    with steer(model, maps, groups=["a", "b"], strength=0.0):
        assert torch.equal(logits(model, x), ref)
    plain = capture(model, 1, x)
    with steer(model, maps, groups=["a", "a"]):
        steered = capture(model, 1, x)
    want = torch.from_numpy(maps[1]["a"](plain.numpy().reshape(-1, plain.shape[-1])).reshape(plain.shape))
    assert torch.allclose(steered, want, rtol=0, atol=1e-12)


def test_uncached_generation_warns_for_the_last_position_too() -> None:
    """With ``positions="last"`` a cache keeps every generated token steered; without one each step recomputes the
    earlier tokens unsteered and the greedy output differs, which now warns like "prompt" / "generated"."""
    model = tiny("gpt2")
    x = ids(3, b=1, t=5)
    with steer(model, {1: random_map(1)}, positions="last"):
        cached = _generate(model, x)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            uncached = _generate(model, x, use_cache=False)
    assert any("without a KV cache" in str(w.message) and "newest token" in str(w.message) for w in record)
    assert uncached.shape == cached.shape

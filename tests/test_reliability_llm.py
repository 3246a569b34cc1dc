"""Reliability findings of issue 17 in ``steerfair.llm``: one test per finding, named after it."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from steerfair import AffineMap  # noqa: E402
from steerfair.llm import SteeringBundle, steer  # noqa: E402
from steerfair.llm.hooks import attach  # noqa: E402
from steerfair.llm.stats import ActivationStats  # noqa: E402


def _llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=100,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    return LlamaForCausalLM(cfg).eval()


def _generate(model: LlamaForCausalLM, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model.generate(
            x,
            attention_mask=torch.ones_like(x),
            max_new_tokens=6,
            do_sample=False,
            pad_token_id=0,
            output_scores=True,
            return_dict_in_generate=True,
        )
    return out


# ------------------------------------------------------------------------------------------ finding 1
def test_finding_1_position_restricted_steering_under_cached_generate() -> None:
    model = _llama()
    x = torch.tensor([[1, 2, 3, 4]])
    T = AffineMap(1.5 * np.eye(16), np.ones(16))
    plain = _generate(model, x)
    with steer(model, T, layers=[1], positions="generated"):
        gen = _generate(model, x)
    with steer(model, T, layers=[1], positions="prompt"):
        prompt = _generate(model, x)
    with steer(model, T, layers=[1], positions="all"):
        every = _generate(model, x)
    # "generated" steered something, and the prompt's logits (the first generated token's scores) are unchanged
    assert not torch.equal(plain.sequences, gen.sequences)
    torch.testing.assert_close(gen.scores[0], plain.scores[0], rtol=0, atol=0)
    # "prompt" changes the first step's logits; later steps differ from steering every position
    assert not torch.equal(prompt.scores[0], plain.scores[0])
    torch.testing.assert_close(prompt.scores[0], every.scores[0])
    assert not all(torch.equal(a, b) for a, b in zip(prompt.scores[1:], every.scores[1:], strict=True))
    # a boolean mask over absolute positions: the prompt and the first generated token equals "prompt" then one
    # generated step; a mask of the prompt only equals "prompt"
    mask = torch.zeros(1, 10, dtype=torch.bool)
    mask[:, :4] = True
    with steer(model, T, layers=[1], positions=mask):
        masked = _generate(model, x)
    assert torch.equal(masked.sequences, prompt.sequences)
    for a, b in zip(masked.scores, prompt.scores, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    gen_mask = torch.zeros(1, 10, dtype=torch.bool)
    gen_mask[:, 4:] = True
    with steer(model, T, layers=[1], positions=gen_mask):
        masked_gen = _generate(model, x)
    assert torch.equal(masked_gen.sequences, gen.sequences)


# ------------------------------------------------------------------------------------------ finding 2
def _bundle(groups: tuple = ("a", "b"), metadata: dict | None = None, shift: float = 0.0) -> SteeringBundle:
    d = 4
    maps = {0: {g: AffineMap(np.eye(d) * (1.0 + j), np.full(d, j + shift)) for j, g in enumerate(groups)}}
    return SteeringBundle(maps, tuple(groups), {}, None, metadata or {})


def test_finding_2_failed_save_keeps_the_old_bundle_and_sidecar_is_tied_to_tensors(tmp_path) -> None:
    path = tmp_path / "b.safetensors"
    old = _bundle()
    old.save(path)
    with pytest.raises(ValueError, match="metadata"):
        _bundle(metadata={("not", "a", "str"): 1}, shift=5.0).save(path)
    back = SteeringBundle.load(path)  # the old bundle is intact
    np.testing.assert_array_equal(back.maps[0]["b"].b, old.maps[0]["b"].b)
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # reordering the groups in the sidecar would silently swap the maps: refused
    side = json.loads((tmp_path / "b.safetensors.json").read_text())
    side["groups"] = side["groups"][::-1]
    (tmp_path / "b.safetensors.json").write_text(json.dumps(side))
    with pytest.raises(ValueError, match="groups"):
        SteeringBundle.load(path)
    # tensors of another save next to this sidecar: refused
    old.save(path)
    other = tmp_path / "c.safetensors"
    _bundle(shift=1.0).save(other)
    (tmp_path / "b.safetensors").write_bytes(other.read_bytes())
    with pytest.raises(ValueError, match="SHA-256"):
        SteeringBundle.load(path)


# ------------------------------------------------------------------------------------------ finding 5
def test_finding_5_zero_group_proba_unmasked_last_and_half_overflow() -> None:
    model = _llama()
    T = AffineMap(np.eye(16), np.zeros(16))
    maps = {1: {"a": T, "b": T}}
    with pytest.raises(ValueError, match="group_proba"):
        attach(model, maps, group_proba=[[0.0, 0.0], [0.5, 0.5]])
    # positions="last" without the attention mask on a batch holding the pad token: refused
    model.config.pad_token_id = 0
    x = torch.tensor([[0, 0, 3, 4], [1, 2, 3, 4]])
    with steer(model, T, layers=[1], positions="last"), pytest.raises(ValueError, match="attention_mask"):
        model(input_ids=x)
    with steer(model, T, layers=[1], positions="last"), warnings.catch_warnings():
        warnings.simplefilter("error")
        model(input_ids=x, attention_mask=(x != 0).long())  # with the mask: fine
    model.config.pad_token_id = None
    with steer(model, T, layers=[1], positions="last"), pytest.warns(UserWarning, match="attention_mask"):
        model(input_ids=x)
    # float16 overflow past 65504: a clear error naming the layer and dtype, not inf
    half = _llama().half()
    big = AffineMap(1e9 * np.eye(16), np.zeros(16))
    with steer(half, big, layers=[1]), pytest.raises(ValueError, match=r"layer 1.*float16"):
        half(input_ids=torch.tensor([[1, 2, 3]]))


# ------------------------------------------------------------------------------------------ finding 8
def test_finding_8_loaders_give_clear_errors_and_tuple_labels_round_trip(tmp_path) -> None:
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="nope"):
        SteeringBundle.load(missing)
    with pytest.raises(FileNotFoundError, match="nope"):
        ActivationStats.load(missing)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00not json at all")
    with pytest.raises(ValueError, match="garbage"):
        ActivationStats.load(garbage)
    _bundle().save(tmp_path / "g.safetensors")
    (tmp_path / "g.safetensors").write_bytes(garbage.read_bytes())
    with pytest.raises(ValueError, match="g.safetensors"):
        SteeringBundle.load(tmp_path / "g.safetensors")
    _bundle().save(tmp_path / "h.safetensors")
    (tmp_path / "h.safetensors.json").write_text("{ broken")
    with pytest.raises(ValueError, match="h.safetensors"):
        SteeringBundle.load(tmp_path / "h.safetensors")
    with pytest.raises(ValueError, match="cannot read"):
        SteeringBundle.load(tmp_path)  # a directory
    # tuple group labels round-trip, in bundles and statistics
    groups = (("f", 1), ("m", 2))
    _bundle(groups).save(tmp_path / "t.safetensors")
    back = SteeringBundle.load(tmp_path / "t.safetensors")
    assert back.groups == groups
    assert list(back.maps[0]) == list(groups)
    stats = ActivationStats([0], list(groups), [0, 1], 3)
    stats.save(tmp_path / "s.safetensors")
    assert ActivationStats.load(tmp_path / "s.safetensors").groups == groups

"""Integration on the real offline models: MiniLM (BERT encoder) and SmolLM2-135M (Llama decoder, GGUF).

Marked ``slow`` (about a minute together on 2 cores; SmolLM2 is dequantised once and cached); they run in CI.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steerfair import AffineMap
from steerfair.llm import collect, find_layer_list, load_model, steer

pytestmark = pytest.mark.slow


def _load(name: str):  # type: ignore[no-untyped-def]
    try:
        return load_model(name)
    except ImportError as exc:
        pytest.skip(str(exc))


def test_minilm_statistics_equal_hidden_states_and_hooks_restore() -> None:
    model, tok = _load("minilm")
    path, blocks = find_layer_list(model)
    assert path == "encoder.layer" and len(blocks) == 6
    texts = ["The nurse checked the chart.", "He fixed the engine quickly today.", "She writes code.", "A pilot."]
    groups, labels = ["f", "m", "f", "m"], [0, 0, 1, 1]
    stats = collect(model, tok, texts, groups, labels, layers=[-1], pooling="mean", batch_size=3, progress=False)
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state.double()
    m = enc["attention_mask"].double()[..., None]
    pooled = (h * m).sum(1) / m.sum(1)
    for i, (g, y) in enumerate(zip(groups, labels, strict=True)):
        torch.testing.assert_close(stats.mean(5, g, y), pooled[i], rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        ref = model(**enc).last_hidden_state
        rng = np.random.default_rng(0)
        T = AffineMap.low_rank(rng.normal(size=(384, 4)) * 0.1, rng.normal(size=(384, 4)) * 0.1)
        with steer(model, T, layers=[2, -1]):
            assert not torch.equal(model(**enc).last_hidden_state, ref)
        assert torch.equal(model(**enc).last_hidden_state, ref)


def test_smollm2_generation_steering_batched_equals_unbatched() -> None:
    model, tok = _load("smollm2")
    path, blocks = find_layer_list(model)
    assert path == "model.layers" and len(blocks) == 30
    prompts = ["The nurse said that", "My brother works as a"]
    kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=tok.eos_token_id)
    rng = np.random.default_rng(1)
    maps = {
        "f": AffineMap.low_rank(rng.normal(size=(576, 8)) * 0.05, rng.normal(size=(576, 8)) * 0.05),
        "m": AffineMap.low_rank(rng.normal(size=(576, 8)) * 0.05, rng.normal(size=(576, 8)) * 0.05),
    }
    with torch.no_grad():
        plain = model.generate(**tok(prompts, return_tensors="pt", padding=True), **kw)
        with steer(model, {15: maps}, groups=["f", "m"]):
            batch = model.generate(**tok(prompts, return_tensors="pt", padding=True), **kw)
        solo = []
        for p, g in zip(prompts, ["f", "m"], strict=True):
            with steer(model, {15: maps}, groups=[g]):
                solo.append(model.generate(**tok(p, return_tensors="pt"), **kw)[0, -8:])
        again = model.generate(**tok(prompts, return_tensors="pt", padding=True), **kw)
    assert torch.equal(again, plain)  # hooks removed: bit-identical generation
    for i in range(2):
        assert torch.equal(batch[i, -8:], solo[i])


@pytest.mark.parametrize("alias", ["minilm", "smollm2"])
def test_alias_depths_are_the_loaded_models_block_counts(alias: str) -> None:
    """``model_depth`` answers the aliases without loading them; the answer must be the loaded model's depth."""
    from steerfair.llm.models import model_depth

    model, tok = _load(alias)
    assert model_depth(alias) == model_depth(alias.upper()) == len(find_layer_list(model)[1])
    from steerfair.llm.models import ALIAS_HIDDEN_SIZES

    assert ALIAS_HIDDEN_SIZES[alias] == model.config.hidden_size
    # a causal LM's tokenizer pads on the left, so that batched generate continues every prompt
    assert tok.padding_side == ("left" if alias == "smollm2" else "right")


def test_model_depth_reads_a_local_config_and_names_unreadable_models(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from transformers import GPT2Config

    from steerfair.llm.models import model_depth

    GPT2Config(n_layer=4, n_embd=16, n_head=2).save_pretrained(tmp_path / "tiny")
    assert model_depth(str(tmp_path / "tiny")) == 4
    with pytest.raises(ValueError, match="no model folder at"):
        model_depth(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is neither an alias"):
        model_depth(str(tmp_path / "empty"))

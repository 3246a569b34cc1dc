"""Hidden states that the model itself returns (``output_hidden_states=True``) reflect the steering.

transformers 5.x records hidden states with forward hooks of its own (installed lazily, on the first call that asks
for them); 4.x collects them in the model's layer loop. Either way the recorded output of a steered block must be
its steered output, whether the recorders were installed before or after the steering hooks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from steerfair import AffineMap  # noqa: E402
from steerfair.llm.hooks import steer  # noqa: E402
from steerfair.llm.layers import find_layer_list  # noqa: E402

D, V, LAYER = 16, 40, 1


def tiny(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "gpt2":
        cfg = transformers.GPT2Config(n_layer=3, n_embd=D, n_head=2, vocab_size=V, n_positions=32)
        return transformers.GPT2LMHeadModel(cfg).eval()
    cfg = transformers.LlamaConfig(
        hidden_size=D,
        intermediate_size=32,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=V,
        max_position_embeddings=32,
    )
    return transformers.LlamaForCausalLM(cfg).eval()


def block_output(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What block ``LAYER`` returns, read by a hook registered last (after every other hook has run)."""
    _, blocks = find_layer_list(model)
    box: dict[str, torch.Tensor] = {}

    def hook(module: torch.nn.Module, args: object, out: object) -> None:
        box["h"] = (out if isinstance(out, torch.Tensor) else out[0]).detach().clone()  # type: ignore[index]

    handle = blocks[LAYER].register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(input_ids=x)
    finally:
        handle.remove()
    return box["h"]


def recorded(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's own record of block ``LAYER``'s output (entry 0 is the embedding output)."""
    with torch.no_grad():
        out = model(input_ids=x, output_hidden_states=True)
    return out.hidden_states[LAYER + 1]


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize("recorders_first", [True, False])
def test_output_hidden_states_show_the_steered_block_output(kind: str, recorders_first: bool) -> None:
    model = tiny(kind)
    x = torch.randint(0, V, (2, 5), generator=torch.Generator().manual_seed(1))
    rng = np.random.default_rng(2)
    T = AffineMap(np.eye(D) + 0.5 * rng.normal(size=(D, D)), rng.normal(size=D))
    plain = recorded(model, x) if recorders_first else block_output(model, x)  # recorders_first: installs them now
    with steer(model, {LAYER: T}):
        steered_out = block_output(model, x)
        seen = recorded(model, x)
    torch.testing.assert_close(seen, steered_out, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(steered_out, T(plain), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(seen, plain, atol=1e-3)
    # after the context the record is the plain output again
    torch.testing.assert_close(recorded(model, x), plain, rtol=0, atol=0)


def test_nested_contexts_on_one_block_compose_in_attach_order() -> None:
    model = tiny("llama")
    x = torch.randint(0, V, (1, 4), generator=torch.Generator().manual_seed(3))
    plain = block_output(model, x)
    rng = np.random.default_rng(4)
    outer = AffineMap(np.eye(D) + 0.3 * rng.normal(size=(D, D)), rng.normal(size=D))
    inner = AffineMap(np.eye(D) + 0.3 * rng.normal(size=(D, D)), rng.normal(size=D))
    with steer(model, {LAYER: outer}):
        with steer(model, {LAYER: inner}):
            both = recorded(model, x)
        only_outer = recorded(model, x)
    torch.testing.assert_close(both, inner(outer(plain)), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(only_outer, outer(plain), rtol=1e-4, atol=1e-4)
    _, blocks = find_layer_list(model)
    assert not blocks[LAYER]._forward_hooks or all(  # no steering hook left behind (recorders may stay)
        "steer" not in getattr(h, "__qualname__", "").lower() for h in blocks[LAYER]._forward_hooks.values()
    )

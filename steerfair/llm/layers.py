"""Find the transformer blocks of a Hugging Face model, by architecture or by an explicit module path.

The blocks are the modules whose output is the residual-stream hidden state after that layer. Known
paths are tried in order (GPT-2 / GPT-J ``transformer.h``; Llama, Mistral, Qwen, Gemma, Phi
``model.layers``; GPT-NeoX ``gpt_neox.layers``; OPT ``model.decoder.layers``; BERT-style encoders
``encoder.layer`` / ``bert.encoder.layer`` / ``roberta.encoder.layer``; Falcon / BLOOM
``transformer.h``), then the longest ``nn.ModuleList`` in the model. ``layer_path`` overrides it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import nn

__all__ = ["KNOWN_LAYER_PATHS", "find_layer_list", "resolve_layers"]

KNOWN_LAYER_PATHS: tuple[str, ...] = (
    "model.layers",
    "model.model.layers",
    "model.language_model.layers",
    "transformer.h",
    "gpt_neox.layers",
    "model.decoder.layers",
    "decoder.layers",
    "layers",
    "h",
    "encoder.layer",
    "bert.encoder.layer",
    "roberta.encoder.layer",
    "model.encoder.layer",
)


def _get(model: nn.Module, path: str) -> nn.Module | None:
    mod: nn.Module | None = model
    for part in path.split("."):
        if mod is None or not hasattr(mod, part):
            return None
        mod = getattr(mod, part)
    return mod if isinstance(mod, nn.Module) else None


def find_layer_list(model: nn.Module, layer_path: str | None = None) -> tuple[str, nn.ModuleList]:
    """Return ``(path, blocks)``: the model's list of transformer blocks.

    Args:
        model: a ``transformers`` model (or any ``nn.Module``).
        layer_path: dotted path of the ``nn.ModuleList`` holding the blocks (e.g. ``"model.layers"``);
            ``None`` tries the known architectures, then the longest ``nn.ModuleList``.

    Raises:
        ValueError: if the path does not exist or is not an ``nn.ModuleList``, or nothing is found.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if layer_path is not None:
        mod = _get(model, layer_path)
        if not isinstance(mod, nn.ModuleList):
            raise ValueError(
                f"layer_path {layer_path!r} is not an nn.ModuleList of the model "
                f"(got {type(mod).__name__ if mod is not None else 'nothing'})"
            )
        return layer_path, mod
    for path in KNOWN_LAYER_PATHS:
        mod = _get(model, path)
        if isinstance(mod, nn.ModuleList) and len(mod) > 0:
            return path, mod
    lists = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    if not lists:
        raise ValueError(f"no transformer blocks found in {type(model).__name__}; pass layer_path='...'")
    name, mod = max(lists, key=lambda t: len(t[1]))
    return name, mod


def resolve_layers(
    model: nn.Module, layers: int | str | Sequence[int | str], layer_path: str | None = None
) -> dict[int, nn.Module]:
    """Map the requested layers to ``{index: block}`` (indices normalised to ``0..L-1``).

    ``layers`` may hold indices (negative ones count from the end), ``"all"``, or module names
    (e.g. ``"model.layers.3"``) that must be blocks of the layer list.

    Raises:
        ValueError: for an index out of range, an unknown name, an empty selection or duplicates.
    """
    path, blocks = find_layer_list(model, layer_path)
    n = len(blocks)
    if isinstance(layers, np.integer):
        layers = int(layers)
    if isinstance(layers, str) and layers == "all":
        return dict(enumerate(blocks))
    if isinstance(layers, (int, str)):
        items = [layers]
    elif isinstance(layers, Sequence) or (hasattr(layers, "__iter__") and not isinstance(layers, (bytes, dict))):
        items = list(layers)
    else:
        raise ValueError(f"layers must be an index, a module name, a list of them or 'all'; got {layers!r}")
    if not items:
        raise ValueError("layers is empty; pass an index, a list of indices, or 'all'")
    out: dict[int, nn.Module] = {}
    for item in items:
        if isinstance(item, (bool, np.bool_)):
            raise ValueError(f"layer {item!r} is not an index or a module name")
        if isinstance(item, np.integer):
            item = int(item)
        if isinstance(item, int):
            if not -n <= item < n:
                raise ValueError(f"layer index {item} out of range for {n} layers at {path!r} (use -{n}..{n - 1})")
            idx = item % n
        elif isinstance(item, str):
            prefix = path + "."
            tail = item[len(prefix) :] if item.startswith(prefix) else None
            if tail is None or not tail.isdigit() or int(tail) >= n:
                raise ValueError(f"unknown layer name {item!r}; the blocks are {path}.0 .. {path}.{n - 1}")
            idx = int(tail)
        else:
            raise ValueError(f"layer {item!r} is not an index or a module name")
        if idx in out:
            raise ValueError(f"layer {item!r} is listed twice")
        out[idx] = blocks[idx]
    return out

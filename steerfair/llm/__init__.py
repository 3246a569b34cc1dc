"""Steering for Hugging Face ``transformers``: streamed activation statistics, per-group maps, hooks.

Typical use::

    from steerfair import llm

    stats = llm.collect(model, tokenizer, texts, groups, labels, layers=[6], pooling="tokens")  # token states
    bundle = llm.fit_bundle(stats)                      # per-group maps onto the ideal + group probes
    # llm.fit_bundle(stats, target="shared", random_state=0): garblings onto one common law per class
    with llm.steer(model, bundle, groups=batch_groups):  # or probe=bundle.probes when groups are unknown
        out = model.generate(**inputs)

Modules: :mod:`.layers` (block discovery), :mod:`.pooling` (pooling under the attention mask), :mod:`.capture`
(the one activation-capture context, ``capture_blocks``), :mod:`.stats` (``ActivationStats``: one
:class:`~steerfair.statistics.CellStatistics` per layer, mergeable, ``torch.distributed``; ``collect``),
:mod:`.encode` (sentence encodings with a safetensors cache), :mod:`.hooks` (``steer`` / ``attach``, positions,
group mixtures, ``LinearProbe``), :mod:`.block_steering` (the one hook per block that runs first, so the model's own
``output_hidden_states`` show the steering), :mod:`.bundle` (``SteeringBundle``, ``fit_bundle`` over
:class:`~steerfair.steering.SteeringTransform`, safetensors + JSON), :mod:`.models` (offline MiniLM / SmolLM2
loaders).
"""

from .bundle import SteeringBundle, fit_bundle, layer_model
from .capture import BlockCapture, capture_blocks
from .collection import collect
from .encode import encode, encode_cached
from .hooks import SteeringHandle, attach, steer
from .layers import find_layer_list, resolve_layers
from .models import load_model
from .pooling import POOLINGS, pool_hidden
from .probe import LinearProbe
from .stats import ActivationStats

__all__ = [
    "POOLINGS",
    "ActivationStats",
    "BlockCapture",
    "LinearProbe",
    "SteeringBundle",
    "SteeringHandle",
    "attach",
    "capture_blocks",
    "collect",
    "encode",
    "encode_cached",
    "find_layer_list",
    "fit_bundle",
    "layer_model",
    "load_model",
    "pool_hidden",
    "resolve_layers",
    "steer",
]

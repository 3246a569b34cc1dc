"""Files the library writes and reads: atomic writes, JSON-safe labels, readable loader errors.

Every file steerfair writes (steering bundles, activation statistics, results of the commands and recipes) goes
through :func:`atomic_write` / :func:`atomic_write_file`: a temporary file in the destination's folder, ``fsync``,
``os.replace``, then an ``fsync`` of the folder, so an interrupted write never leaves a half-written file and never
damages an earlier one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write",
    "atomic_write_file",
    "decode_label",
    "encode_label",
    "read_bytes",
    "safetensors_metadata",
    "sha256",
]

_TUPLE_TAG = "__tuple__"


def encode_label(v: Any) -> Any:
    """A group / class label in a JSON-safe form that :func:`decode_label` turns back into the same value.

    ``str``, ``int``, finite ``float``, ``bool`` and ``None`` are stored as they are (numpy scalars as their Python
    value); tuples as ``{"__tuple__": [...]}`` (JSON has no tuples, and a list would not be hashable on reading).

    Raises:
        ValueError: for any other value (name it with a str, int, float, bool or a tuple of those).
    """
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            v = v.item()
        except (ValueError, TypeError):
            pass
    if isinstance(v, tuple):
        return {_TUPLE_TAG: [encode_label(x) for x in v]}
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float) and v == v and v not in (float("inf"), float("-inf")):
        return v
    raise ValueError(
        f"cannot save the label {v!r} ({type(v).__name__}): labels must be str, int, finite float, bool, None "
        "or tuples of those"
    )


def decode_label(v: Any) -> Any:
    """The label :func:`encode_label` stored (lists, as older files wrote tuples, become tuples)."""
    if isinstance(v, dict) and set(v) == {_TUPLE_TAG} and isinstance(v[_TUPLE_TAG], list):
        return tuple(decode_label(x) for x in v[_TUPLE_TAG])
    if isinstance(v, list):
        return tuple(decode_label(x) for x in v)
    if isinstance(v, dict):
        raise ValueError(f"not a stored label: {v!r}")
    return v


def sha256(data: bytes) -> str:
    """The hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _file_mode(path: str) -> int:
    """The permission bits ``path`` has, or a new file gets under the process umask (``0o666 & ~umask``)."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def _temporary(path: str, suffix: str = ".tmp") -> Iterator[tuple[int, str]]:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix, dir=folder)
    try:
        os.chmod(tmp, _file_mode(path))  # mkstemp's 0600 would make every replaced file private
        yield fd, tmp
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(files: dict[str, bytes]) -> None:
    """Write every ``{path: data}`` to a temporary file in its own directory, fsync them all, then rename each.

    Nothing is renamed until every file is written and synced, so a failure while writing leaves the old files
    untouched; the renames come last, in order (readers detect a crash between them with a checksum).
    """
    staged: list[tuple[str, str]] = []
    try:
        for path, data in files.items():
            with _temporary(path) as (fd, tmp):
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                staged.append((tmp, path))
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    for folder in {os.path.dirname(os.path.abspath(p)) for p in files}:
        _fsync_dir(folder)


def atomic_write_file(path: str | Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` atomically with a writer: ``write`` fills a temporary file in the same folder (keeping
    ``path``'s suffix, so e.g. matplotlib picks the format), which is fsynced and renamed onto ``path``.

    Args:
        path: The destination.
        write: Writes the content to the path it is given.
    """
    path = Path(path)
    with _temporary(str(path), suffix=f".tmp{path.suffix}") as (fd, tmp):
        os.close(fd)
        write(Path(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    _fsync_dir(str(path.parent))


def read_bytes(path: str, what: str, advice: str) -> bytes:
    """The bytes of ``path``; a missing file or an unreadable one raises an error that names it and says what to do.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: it cannot be read (a directory, a device, no permission, ...).
    """
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path!r} does not exist; {advice}") from None
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path!r} ({exc.strerror or exc}); {advice}") from None


def safetensors_metadata(data: bytes, where: str) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file's header (read without the backend).

    Raises:
        ValueError: the bytes are not a safetensors file.
    """
    try:
        n = int.from_bytes(data[:8], "little")
        if len(data) < 8 or n <= 0 or 8 + n > len(data):
            raise ValueError("truncated header")
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where} is not a valid safetensors file ({exc})") from None
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}

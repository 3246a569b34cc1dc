"""Command-line arguments of the recipes and commands: checked types and a parse that reports every bad argument as a
usage error (exit code 2) before any work.

The ``type=`` callables below turn a bad value into argparse's own usage error, naming the option; checks that need
several arguments or the file system (the output folder, an input file) go into the ``check`` of
:func:`parse_checked`, which reports their ``ValueError`` / ``TypeError`` the same way.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "distinct",
    "existing_file",
    "fraction",
    "nonnegative_int",
    "parse_checked",
    "positive_float",
    "positive_int",
]

T = TypeVar("T")


def positive_int(text: str) -> int:
    """An integer of at least 1 (counts: seeds to run, repeats, dimensions, rows)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer of at least 0 (random seeds, sizes where 0 means "all")."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer; got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number above 0, or ``inf`` (a privacy level, a budget's scale)."""
    value = _float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0 (inf allowed); got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number in ``(0, 1]`` (a share of the rows)."""
    value = _float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number in (0, 1]; got {text!r}")
    return value


def existing_file(text: str) -> Path:
    """The path of an existing regular file (an input the run reads)."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no file at {text!r}" + (" (it is a folder)" if path.is_dir() else ""))
    return path


def distinct(values: Sequence[T] | None, option: str) -> None:
    """Raise ``ValueError`` when ``values`` (one option's list) names a value twice: the run would repeat the same
    work, or silently keep one of the two."""
    if values is None:
        return
    seen: list[Any] = []
    for value in values:
        if value in seen:
            raise ValueError(f"{option} lists {value!r} twice; name each value once")
        seen.append(value)


def parse_checked(
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
    check: Callable[[argparse.Namespace], Any] | None = None,
) -> argparse.Namespace:
    """Parse ``argv`` and run ``check(args)`` (the checks that need several arguments, the output folder or an
    input file), before any work; a ``ValueError`` or ``TypeError`` from ``check`` exits as a usage error (code 2)
    with its message, like argparse's own."""
    args = parser.parse_args(None if argv is None else list(argv))
    if check is not None:
        try:
            check(args)
        except (ValueError, TypeError) as exc:
            parser.error(str(exc))
    return args


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer; got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}") from None
    if math.isnan(value):
        raise argparse.ArgumentTypeError(f"must be a number; got {text!r}")
    return value

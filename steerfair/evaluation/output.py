"""Writing an experiment's results: ``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` in one folder.

Every command checks its output folder with :func:`check_output` *before* any work (the folder can be created and
written to, and holds no earlier results unless ``overwrite``), and writes every file atomically
(:func:`steerfair.files.atomic_write`: temporary files in the same folder, all ``fsync``-ed before the first
``os.replace``), so an interrupted run never leaves a results file that parses as complete, nor damages an earlier
one. The JSON is strict (:func:`to_json`: ``NaN`` / ``inf`` become ``null``) and records the run
(:func:`run_record`: configuration, library version, UTC time).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write, atomic_write_file

__all__ = [
    "atomic_write_file",
    "check_output",
    "check_output_file",
    "jsonable",
    "parse_task_seeds",
    "run_record",
    "run_task_seeds",
    "to_json",
    "write_results",
]


def check_output(out: str | Path, names: Iterable[str], *, overwrite: bool = False) -> Path:
    """Check, before any work, that results can be written to ``out``; create the folder.

    Args:
        out: The output folder (created if missing).
        names: The file names the run will write there.
        overwrite: Allow replacing existing result files.

    Returns:
        Path: ``out``.

    Raises:
        ValueError: ``out`` is not a folder, cannot be created or written to, or holds one of ``names`` and
            ``overwrite`` is false.
    """
    if isinstance(out, str) and not out.strip():
        raise ValueError("--out is empty; pass an output folder (e.g. --out results/run1)")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {str(out)!r} exists and is not a folder; pass another --out")
    if any(p.exists() and not p.is_dir() for p in out.parents):
        raise ValueError(f"output folder {str(out)!r} lies under a file, not a folder; pass another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"output folder {str(out)!r} is not writable ({exc}); pass another --out") from None
    existing = sorted(n for n in names if (out / n).exists())
    if existing and not overwrite:
        raise ValueError(
            f"output folder {str(out)!r} already holds results ({', '.join(existing)}); pass --overwrite "
            "to replace them, or choose another --out"
        )
    return out


def check_output_file(path: str | Path, *, overwrite: bool = False) -> Path:
    """:func:`check_output` for a run that writes one file at ``path`` (its folder created): before any work.

    Raises:
        ValueError: ``path`` is a folder, its folder cannot be created or written to, or it exists and
            ``overwrite`` is false.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"output file {str(path)!r} is a folder; pass a file name as --out")
    check_output(path.parent, [path.name], overwrite=overwrite)
    return path


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy values as Python ones and non-finite floats as ``None`` (strict JSON)."""
    if isinstance(obj, Mapping):
        return {str(k) if not isinstance(k, (str, int, float, bool)) and k is not None else k: jsonable(v)
                for k, v in obj.items()}  # fmt: skip
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def to_json(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON of ``obj`` (see :func:`jsonable`; never the non-standard ``NaN`` / ``Infinity``)."""
    return json.dumps(jsonable(obj), indent=indent, allow_nan=False)


def run_record(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What identifies a run: its full configuration, the library version and the UTC time."""
    from .. import __version__

    return {
        "config": dict(config or {}),
        "steerfair_version": __version__,
        "utc_time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def result_names(stem: str) -> tuple[str, str, str]:
    """The files :func:`write_results` writes for ``stem``."""
    return f"{stem}.json", f"{stem}.md", f"{stem}.png"


def write_results(
    out: str | Path,
    stem: str,
    results: dict[str, Any],
    markdown: Callable[[dict[str, Any]], str],
    plot: Callable[[dict[str, Any], Path], None],
    *,
    overwrite: bool = False,
    config: Mapping[str, Any] | None = None,
    extra: Mapping[str, bytes] | None = None,
) -> None:
    """Create ``out`` and write the results as JSON, their ``markdown`` table and their ``plot`` there.

    Call :func:`check_output` with the same ``out``, ``result_names(stem)`` and ``overwrite`` before the work.

    Args:
        out: The folder (created if missing).
        stem: The file name without extension: ``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` are written.
        results: JSON-serialisable results.
        markdown: Renders the results as a markdown table.
        plot: Draws the results into the given path.
        overwrite: Replace existing result files (otherwise a ``ValueError``).
        config: The run's configuration, recorded in the JSON under ``"run"`` with the version and UTC time.
        extra: more files of the same results (name -> bytes), written in the same atomic step.

    Raises:
        ValueError: see :func:`check_output`.
    """
    names = result_names(stem)
    out = check_output(out, names, overwrite=overwrite)
    record = {**results, "run": run_record(config)}
    text = to_json(record)
    table = markdown(results) + "\n"
    image = _render(out, names[2], lambda p: plot(results, p))
    # all three are written and synced before any is renamed (a failure or kill while writing leaves every earlier
    # file as it was); the JSON is renamed last: a results JSON on disk means the table and plot beside it are complete
    files = {str(out / name): data for name, data in (extra or {}).items()}
    files.update({str(out / names[1]): table.encode(), str(out / names[2]): image, str(out / names[0]): text.encode()})
    atomic_write(files)


def _render(folder: Path, name: str, draw: Callable[[Path], None]) -> bytes:
    """The bytes that ``draw`` writes to a file named like ``name`` (a temporary one in ``folder``, then removed)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=f".draw{Path(name).suffix}", dir=folder)
    os.close(fd)
    try:
        draw(Path(tmp))
        return Path(tmp).read_bytes()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def parse_task_seeds(
    argv: Sequence[str] | None,
    description: str,
    tasks: Sequence[str],
    default_out: str,
    names: Sequence[str],
    default_seeds: Sequence[int] = (0, 1, 2),
) -> Any:
    """The ``--out``, ``--tasks``, ``--seeds``, ``--overwrite`` command line of a recipe that runs every task and
    seed, parsed and checked before any work (:func:`~steerfair.evaluation.arguments.parse_checked`): seeds
    non-negative, no task or seed named twice, the output folder usable for ``names`` (a usage error otherwise).

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    import argparse

    from .arguments import distinct, nonnegative_int, parse_checked

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--tasks", nargs="+", default=list(tasks), choices=list(tasks))
    parser.add_argument("--seeds", type=nonnegative_int, nargs="+", default=list(default_seeds))
    parser.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")

    def check(args: argparse.Namespace) -> None:
        distinct(args.seeds, "--seeds")
        distinct(args.tasks, "--tasks")
        check_output(Path(args.out), names, overwrite=args.overwrite)

    return parse_checked(parser, argv, check)


def run_task_seeds(
    argv: list[str] | None,
    *,
    description: str,
    script: str,
    tasks: Sequence[str],
    default_out: str,
    stem: str,
    run_seed: Callable[[str, int], dict[str, Any]],
    markdown: Callable[[dict[str, list[dict[str, Any]]]], str],
    default_seeds: Sequence[int] = (0, 1, 2),
) -> None:
    """The command line of a recipe that runs ``run_seed(task, seed)`` for every task and seed: ``--out``,
    ``--tasks``, ``--seeds``, ``--overwrite``; the output folder is checked before any work, then ``<stem>.json``
    (the command, the run record, the seconds and every run) and ``<stem>.md`` (``markdown`` of the runs) are
    written atomically and the table printed.

    Args:
        argv: the arguments (``None``: ``sys.argv[1:]``).
        description: the command's help text.
        script: the recipe's path, recorded with the arguments as ``"command"``.
        tasks: the tasks that may be chosen (all by default).
        default_out: the default ``--out`` folder.
        stem: the result files' name without extension.
        run_seed: one task and seed's results (JSON-serialisable).
        markdown: the table of all runs, ``{task: [per-seed results]}``.
        default_seeds: the default ``--seeds``.
    """
    import sys
    import time

    names = [f"{stem}.json", f"{stem}.md"]
    args = parse_task_seeds(argv, description, tasks, default_out, names, default_seeds)
    out = Path(args.out)
    t0 = time.perf_counter()
    runs = {task: [run_seed(task, seed) for seed in args.seeds] for task in args.tasks}
    report = {
        "command": " ".join([f"python {script}", *(sys.argv[1:] if argv is None else argv)]),
        "run": run_record(vars(args)),
        "seconds": time.perf_counter() - t0,
        "runs": runs,
    }
    table = markdown(runs)
    atomic_write({str(out / names[1]): table.encode(), str(out / names[0]): to_json(report).encode()})
    print(table + f"wrote {out}/{stem}.{{json,md}} in {report['seconds']:.0f} s")

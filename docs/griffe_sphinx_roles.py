"""Griffe extension: turn the Sphinx roles of steerfair's docstrings into checked mkdocstrings cross-references.

The docstrings write references the Sphinx way (``:class:`~steerfair.maps.AffineMap```, ``:func:`.nearest_ideal```,
``:mod:`steerfair.privacy```). After the package is loaded, every role is resolved the way Sphinx resolves it
(absolute path, then relative to the object's module and its parents, then under ``steerfair``):

* a target that the API reference renders becomes an autorefs link ``[text][path]`` (checked by the strict build);
* a target that exists but is not rendered (a private helper module, a third-party object) becomes inline code;
* a target that resolves to nothing is logged as a warning, which fails ``mkdocs build --strict``.
"""

from __future__ import annotations

import builtins
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(mod|class|func|meth|attr|data|obj|exc|const|term|ref):`(~?)([^`<]+?)(?:\s*<([^>]+)>)?`")
# modules whose pages render their public names (docs/api/*.md)
RENDERED_MODULES = [
    "steerfair", "steerfair.ideal", "steerfair.maps", "steerfair.families", "steerfair.llm", "steerfair.privacy",
    "steerfair.datasets", "steerfair.metrics", "steerfair.bios", "steerfair.membership", "steerfair.statistics",
    "steerfair.covariance", "steerfair.steering", "steerfair.model", "steerfair.tabular", "steerfair.representations",
    "steerfair.baselines", "steerfair.evaluation",
]
EXTERNAL = ("numpy", "np.", "torch", "scipy", "sklearn", "pandas", "transformers", "cvxpy", "safetensors", "typing",
            "concept_erasure", "ot.", "datasets.", "matplotlib", "collections", "pathlib", "json", "warnings",
            "importlib", "os.", "re.", "functools", "contextlib", "dataclasses", *dir(builtins))
# names that ``steerfair`` loads lazily (module ``__getattr__``), which static analysis cannot see
LAZY = {"steerfair.FairSteerer": "steerfair.tabular.FairSteerer", "FairSteerer": "steerfair.tabular.FairSteerer"}
SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Params|Other Parameters|Keyword Args|Keyword Arguments):\s*$")
GROUPED = re.compile(r"^(\s*)(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)+)(\s*\([^:]*\))?:(.*)$")


def split_grouped_parameters(text: str) -> str:
    """Write ``a, b (type): text`` items of argument sections as one item per name (Google style)."""
    lines = text.split("\n")
    out: list[str] = []
    section_indent: int | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        header = SECTION.match(line)
        if header:
            section_indent = len(header.group(1))
            out.append(line)
            i += 1
            continue
        if section_indent is not None and line.strip() and indent <= section_indent:
            section_indent = None
        grouped = GROUPED.match(line) if section_indent is not None else None
        if grouped:
            cont = []
            j = i + 1
            while j < len(lines) and (not lines[j].strip() and j + 1 < len(lines) and
                                      len(lines[j + 1]) - len(lines[j + 1].lstrip()) > indent
                                      or lines[j].strip() and len(lines[j]) - len(lines[j].lstrip()) > indent):
                cont.append(lines[j])
                j += 1
            lead, names, kind, rest = grouped.groups()
            for name in (n.strip() for n in names.split(",")):
                out.append(f"{lead}{name}{kind or ''}:{rest}")
                out.extend(cont)
            i = j
            continue
        out.append(line)
        i += 1
    return "\n".join(out)
logger = griffe.get_logger("griffe_sphinx_roles")


def _public_names(mod: Any) -> list[str]:
    names = getattr(mod, "exports", None)
    if names is None:
        return [n for n, m in mod.members.items() if not n.startswith("_") and not m.is_alias]
    return [n if isinstance(n, str) else n.name for n in names]


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != "steerfair":
            return
        self.collection = loader.modules_collection
        self.rendered = self._rendered_paths()
        self._walk(pkg)

    @staticmethod
    def _comment_docstring(attr: Any) -> str:
        """The ``#:`` comment lines right above a module attribute (Sphinx's attribute docstrings)."""
        try:
            lines = attr.parent.lines
        except Exception:
            return ""
        i, doc = (attr.lineno or 1) - 2, []
        while i >= 0 and lines[i].lstrip().startswith("#:"):
            doc.insert(0, lines[i].lstrip()[2:].strip())
            i -= 1
        return " ".join(doc)

    def _get(self, path: str) -> Any:
        try:
            return self.collection[path]
        except Exception:
            return None

    def _rendered_paths(self) -> set[str]:
        paths: set[str] = set()
        modules = list(RENDERED_MODULES)
        ev = self._get("steerfair.evaluation")
        if ev is not None:
            modules += [m.path for m in ev.modules.values() if not m.name.startswith("_")]
        for mpath in modules:
            mod = self._get(mpath)
            if mod is None:
                continue
            paths.add(mpath)
            for name in _public_names(mod):
                obj = self._get(f"{mpath}.{name}")
                if obj is None or (not obj.is_alias and obj.is_module and obj.path not in modules):
                    continue  # e.g. ``llm.encode``: griffe sees the submodule, the page renders the function
                for p in {f"{mpath}.{name}", self._canonical(obj)}:
                    paths.add(p)
                    target = self._get(p)
                    try:
                        is_class = target is not None and target.is_class
                    except Exception:
                        is_class = False
                    if is_class:
                        for mname in target.members:
                            if not mname.startswith("_") or mname == "__init__":
                                paths.add(f"{p}.{mname}")
        return paths

    @staticmethod
    def _canonical(obj: Any) -> str:
        try:
            return obj.final_target.path if obj.is_alias else obj.path
        except Exception:
            return obj.path

    def _resolve(self, obj: Any, target: str) -> str | None:
        target = target.strip().rstrip("()")
        scopes = []
        here = obj if obj.is_module else obj.parent
        while here is not None:
            scopes.append(here.path)
            here = here.parent
        if target.startswith("."):
            bare = target.lstrip(".")
            candidates = [f"{s}.{bare}" for s in scopes]
        else:
            candidates = [target] + [f"{s}.{target}" for s in scopes] + [f"steerfair.{target}"]
        if obj.is_class:
            candidates.insert(0, f"{obj.path}.{target.lstrip('.')}")
        elif not obj.is_module:
            candidates.insert(0, f"{obj.parent.path}.{target.lstrip('.')}")
        head = target.lstrip(".").split(".")[0]
        for lazy, real in LAZY.items():
            if target == lazy or target.startswith(lazy + "."):
                candidates.insert(0, real + target[len(lazy):])
            elif head == lazy:
                candidates.append(real + target.lstrip(".")[len(lazy):])
        for cand in candidates:
            found = self._get(cand)
            if found is not None:
                return cand
        return None

    def _rewrite(self, obj: Any, match: re.Match[str]) -> str:
        role, tilde, text, explicit = match.groups()
        if role in ("term", "ref"):
            return f"*{text.strip()}*"
        target = (explicit or text).strip()
        shown = target.lstrip("~.").rsplit(".", 1)[-1] if (tilde or target.startswith(".")) else target
        if explicit:
            shown = text.strip()
        if role in ("func", "meth") and not shown.endswith(")"):
            shown += "()"
        path = self._resolve(obj, target)
        if path is None:
            if not target.lstrip("~").startswith(EXTERNAL) and target not in dir(builtins):
                logger.warning("%s: unresolved reference %s in the docstring of %s", obj.relative_filepath,
                               match.group(0), obj.path)
            return f"`{shown}`"
        found = self._get(path)
        try:
            if role == "mod" and found is not None and not found.is_module:
                return f"`{shown}`"  # a module shadowed by a function of the same name (llm.encode)
        except Exception:
            return f"`{shown}`"
        canonical = self._canonical(found) if found is not None else path
        for p in (path, canonical):
            if p in self.rendered:
                return f"[`{shown}`][{p}]"
        return f"`{shown}`"

    def _walk(self, obj: Any) -> None:
        if obj.is_alias:
            return
        if obj.is_attribute and obj.docstring is None and obj.parent is not None and obj.parent.is_module:
            comment = self._comment_docstring(obj)
            if comment:
                obj.docstring = griffe.Docstring(comment, lineno=obj.lineno, parent=obj)
        if obj.docstring is not None and ":" in obj.docstring.value:
            value = ROLE.sub(lambda m: self._rewrite(obj, m), obj.docstring.value)
            obj.docstring.value = split_grouped_parameters(value)
        for member in list(obj.members.values()):
            if not member.is_alias:
                self._walk(member)

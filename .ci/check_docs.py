"""Check the API reference: every public name has a docstring and appears in the built site.

Usage: ``python .ci/check_docs.py SITE_DIR`` after ``mkdocs build --strict -d SITE_DIR`` (``.ci/docs`` runs both).

1. Every name in the ``__all__`` of each public module (and each public method or property of a public class) has a
   docstring; griffe reads it statically, so a type alias documented by the string after it counts.
2. Every such name is in the site's ``objects.inv`` (under the module that exports it, or its defining path).
3. Every relative link of the markdown pages points at a file that exists (links outside ``docs/`` are not site
   pages, so mkdocs only reports them at info level).
"""

from __future__ import annotations

import importlib
import re
import sys
import zlib
from pathlib import Path

import griffe

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's steerfair, whatever is installed
MODULES = ["steerfair"] + [f"steerfair.{m}" for m in (
    "ideal", "maps", "families", "llm", "privacy", "datasets", "metrics", "bios", "membership", "statistics",
    "covariance", "files", "steering", "model", "tabular", "representations", "baselines", "shared_target", "shared_target_estimation", "strength_choice", "shared_positive", "derived_columns", "copula", "categorical_garbling", "dichotomy", "shared_score", "table_columns", "blas_pools", "datasets.prompts",
)]
LAZY = {
    "steerfair.FairSteerer": "steerfair.tabular.FairSteerer",
    "steerfair.SharedScore": "steerfair.shared_score.SharedScore",
}


def inventory(site: Path) -> set[str]:
    raw = (site / "objects.inv").read_bytes()
    body = zlib.decompress(raw.split(b"\n", 4)[4]).decode()
    return {line.split(" ", 1)[0] for line in body.splitlines() if line}


def runtime_path(obj: object, fallback: str) -> str:
    mod, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{mod}.{qual}" if isinstance(mod, str) and isinstance(qual, str) else fallback


def main(site: Path) -> int:
    errors: list[str] = []
    # the docs' griffe extension: ``#:`` comments document module attributes, Sphinx roles become cross-references
    extensions = griffe.load_extensions(f"{ROOT / 'docs' / 'griffe_sphinx_roles.py'}:SphinxRoles")
    pkg = griffe.load("steerfair", search_paths=[str(ROOT)], extensions=extensions, resolve_aliases=True,
                      resolve_external=False)
    inv = inventory(site)

    def griffe_object(path: str):
        path = LAZY.get(path, path)
        try:
            obj = pkg.modules_collection[path]
        except KeyError:
            # ``steerfair.llm.encode``: griffe sees the submodule that the function of the same name shadows
            head, name = path.rsplit(".", 1)
            obj = pkg.modules_collection[f"{path}.{name}"] if "." in head else None
        return obj.final_target if obj is not None and obj.is_alias else obj

    checked = 0
    modules = list(MODULES)
    for sub in sorted(pkg["evaluation"].modules):
        if not sub.startswith("_"):
            modules.append(f"steerfair.evaluation.{sub}")
    for mname in modules:
        mod = importlib.import_module(mname)
        names = list(getattr(mod, "__all__", []))
        if not (mod.__doc__ or "").strip():
            errors.append(f"{mname}: module has no docstring")
        for name in names:
            path = f"{mname}.{name}"
            value = getattr(mod, name)
            if isinstance(value, type(sys)):
                continue  # a re-exported module (steerfair.privacy) has its own page
            obj = griffe_object(path)
            if obj is None or not (obj.docstring and obj.docstring.value.strip()):
                errors.append(f"{path}: no docstring")
            targets = {path, LAZY.get(path, path), runtime_path(value, path)}
            if obj is not None:
                targets.add(obj.path)
            if not targets & inv:
                errors.append(f"{path}: not in the rendered API reference")
            checked += 1
            if obj is not None and obj.is_class:
                for member in obj.members.values():
                    if member.name.startswith("_") or member.is_alias or member.is_attribute:
                        continue
                    if not (member.docstring and member.docstring.value.strip()):
                        errors.append(f"{member.path}: no docstring")
                    checked += 1

    for page in sorted((ROOT / "docs").rglob("*.md")):
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"^[a-z]+:|^#", target):
                continue
            if not (page.parent / target.split("#", 1)[0]).exists():
                errors.append(f"{page.relative_to(ROOT)}: broken link {target}")

    for error in errors:
        print(error)
    print(f"checked {checked} public names in {len(modules)} modules: {len(errors)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "site")))

"""Every third-party module the code and the tests import is declared in requirements.txt.

A module that arrives only because another package happens to pull it in works on the developer's
machine and breaks on a stranger's; the check reads imports with `ast` (nothing is imported) and
maps each top-level module to its distribution with importlib.metadata."""
from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# folders that hold no project source: caches, stores, virtualenvs
SKIP_DIRS = {"data", "venv", "node_modules", "__pycache__"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(requirements: Path) -> set[str]:
    """Distribution names requirements.txt lists (extras, bounds and markers dropped)."""
    names = set()
    for line in requirements.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(_norm(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0]))
    return names


def _local_modules(root: Path) -> set[str]:
    packages = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return packages | {p.stem for p in root.glob("*.py")} | {"conftest"}


def source_files(root: Path) -> list[Path]:
    return sorted(f for f in root.rglob("*.py")
                  if not any(part.startswith(".") or part in SKIP_DIRS for part in f.relative_to(root).parts[:-1]))


def third_party_imports(root: Path) -> dict[str, list[str]]:
    """Top-level module -> the files (relative) that import it, for every non-stdlib, non-local import."""
    local = _local_modules(root)
    found: dict[str, list[str]] = {}
    for f in source_files(root):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"), filename=str(f))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, []).append(str(f.relative_to(root)))
    return found


def undeclared(root: Path, requirements: Path) -> list[str]:
    """One line per imported module that no declared distribution provides, naming a file."""
    names = declared(requirements)
    owners = md.packages_distributions()
    problems = []
    for module, files in sorted(third_party_imports(root).items()):
        dists = [_norm(d) for d in owners.get(module, [])]
        if not dists:
            problems.append(f"{module} (imported in {files[0]}): no installed distribution provides it")
        elif not any(d in names for d in dists):
            problems.append(f"{module} (imported in {files[0]}): provided by {dists[0]}, "
                            f"which {requirements.name} does not declare")
    return problems


def test_every_import_is_declared():
    problems = undeclared(REPO, REPO / "requirements.txt")
    assert not problems, "undeclared imports:\n" + "\n".join(problems)


def test_every_requirement_has_a_lower_bound():
    for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert ">=" in line or "==" in line, f"expected a lower bound on {line!r}"


def test_a_deleted_requirement_is_named_with_a_file_that_imports_it(tmp_path):
    lines = (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
    for dist, module, where in (("networkx", "networkx", "attack/"), ("hypothesis", "hypothesis", "tests/")):
        trimmed = tmp_path / "requirements.txt"
        trimmed.write_text("\n".join(l for l in lines if _norm(re.split(r"[<>=\[ ]", l)[0]) != dist) + "\n")
        problems = undeclared(REPO, trimmed)
        assert len(problems) == 1, problems
        assert problems[0].startswith(f"{module} (imported in {where}") and dist in problems[0]

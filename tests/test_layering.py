"""One door to the store: attack/ and review/ (and app.py) hold no SQL and never touch SQLite,
and the import layering is app -> review -> attack -> store (nothing below imports above)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("store", "attack", "review", "app")          # lowest first
SQL = re.compile(r"\b(SELECT\s|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX|"
                 r"TRIGGER|VIEW)|DROP\s+(TABLE|INDEX)|PRAGMA\s|BEGIN\s+IMMEDIATE|ROLLBACK|json_extract\()")
DB_MODULES = {"sqlite3", "sqlite_utils"}
DB_ATTRIBUTES = {"conn", "db", "execute", "executemany", "executescript"}


def layer_files(layer: str) -> list[Path]:
    return [REPO / "app.py"] if layer == "app" else sorted((REPO / layer).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, tree: ast.AST) -> set[str]:
    """Absolute names of every module a file imports (relative imports resolved)."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def strings(tree: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def violations(path: Path, source: str, layer: str) -> list[str]:
    """What a file of `layer` does that its layer may not."""
    tree = ast.parse(source)
    found = []
    imports = imported_modules(path, tree)
    above = LAYERS[LAYERS.index(layer) + 1:]
    for mod in sorted(imports):
        top = mod.split(".")[0]
        if top in above:
            found.append(f"imports {mod} (a layer above {layer})")
        if layer != "store" and top in DB_MODULES:
            found.append(f"imports {mod} (SQLite belongs to store/)")
    if layer != "store":
        for s in strings(tree):
            if SQL.search(s):
                found.append(f"holds SQL {s.strip()[:60]!r}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in DB_ATTRIBUTES:
                found.append(f"line {node.lineno}: uses .{node.attr} (ask the store for records by name)")
    return [f"{path.relative_to(REPO)}: {v}" for v in found]


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_holds_no_sql_and_imports_only_below(layer):
    files = layer_files(layer)
    assert files, f"expected source files for layer {layer}"
    problems = [v for f in files for v in violations(f, f.read_text(encoding="utf-8"), layer)]
    assert problems == []


@pytest.mark.parametrize("source, layer, expected", [
    ("import sqlite3\n", "attack", "SQLite belongs to store/"),
    ("x = store.conn\n", "review", "uses .conn"),
    ("q = 'SELECT id FROM runs WHERE x = ?'\n", "attack", "holds SQL"),
    ("q = f'UPDATE runs SET status = {s}'\n", "review", "holds SQL"),
    ("import review.views\n", "attack", "a layer above attack"),
    ("from attack import labels\n", "store", "a layer above store"),
    ("from ...review import views\n", "attack", "a layer above attack"),  # attack/sub/ -> top level
])
def test_the_scan_catches_each_kind_of_violation(source, layer, expected):
    path = REPO / ("app.py" if layer == "app" else f"{layer}/sub/probe.py")
    assert any(expected in v for v in violations(path, source, layer))


def test_the_scan_passes_clean_code():
    assert violations(REPO / "attack/probe.py", "from store import Store\nx = store.candidate_ids()\n", "attack") == []

"""No import circles between the project's modules, and the shape the architecture promises
(docs/architecture.md): a short attack/ top level, no module over 500 lines.

Every import counts: at the top of a file, inside a function, or under TYPE_CHECKING, because
each one is a dependency a reader has to hold in their head. An edge goes to the module named
(`from store import records` -> store.records when that is a module, else store's __init__);
importing a.b.c does not count as importing its parent packages.
"""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("store", "attack", "review")
MAX_LINES = 500
MAX_ATTACK_TOP_LEVEL = 12


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path = REPO) -> dict[str, Path]:
    files = [p for pkg in PACKAGES for p in (root / pkg).rglob("*.py")] + [root / "app.py"]
    return {module_name(p, root): p for p in files if p.exists()}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules a file imports, relative imports resolved."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            for a in node.names:
                out.add(f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod)
    return {m for m in out if m in modules and m != name}


def import_graph(root: Path = REPO) -> nx.DiGraph:
    modules = project_modules(root)
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        graph.add_edges_from((name, dep) for dep in imports_of(name, path, modules))
    return graph


def circles(graph: nx.DiGraph) -> list[list[str]]:
    return [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]


def test_the_project_imports_form_no_circle():
    graph = import_graph()
    assert graph.number_of_edges() > 100, "expected the scan to see the project's imports"
    assert circles(graph) == []


def test_a_planted_circle_is_found(tmp_path):
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "app.py").write_text("import review\n")
    (tmp_path / "attack" / "a.py").write_text("from attack.b import x\n")
    (tmp_path / "attack" / "b.py").write_text("def f():\n    from . import c\n")
    (tmp_path / "attack" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                                "    from attack.a import y\n")
    assert circles(import_graph(tmp_path)) == [["attack.a", "attack.b", "attack.c"]]
    (tmp_path / "attack" / "c.py").write_text("import store\n")
    assert circles(import_graph(tmp_path)) == []


def test_attack_keeps_a_short_top_level():
    top = sorted(p.name for p in (REPO / "attack").glob("*.py"))
    assert len(top) <= MAX_ATTACK_TOP_LEVEL, top


def test_no_module_outside_tests_is_over_500_lines():
    long = {str(p.relative_to(REPO)): n for p in project_modules().values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}

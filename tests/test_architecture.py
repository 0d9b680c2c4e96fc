"""The library's shape, read from its source (the AST; nothing is imported): dependencies run
one way between the modules of ``interface4d`` (no import cycle, function-level imports
included) and no module grows past 600 lines. ARCHITECTURE.md draws the map."""

from __future__ import annotations

import ast
from pathlib import Path

from support.workflow import ROOT

PACKAGE = ROOT / "src" / "interface4d"
MAX_LINES = 600


def modules() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PACKAGE.glob("*.py")) if p.stem != "__main__"}


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The ``interface4d`` modules that ``path`` imports anywhere (module level or inside a
    function): ``import interface4d.x``, ``from interface4d.x import ...``,
    ``from interface4d import x`` and relative imports."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "interface4d" and len(parts) > 1:
                    out.add(parts[1])
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            parts = mod.split(".") if mod else []
            if node.level == 0 and (not parts or parts[0] != "interface4d"):
                continue
            sub = parts[1:] if node.level == 0 else parts
            if sub:
                out.add(sub[0])
            else:  # from interface4d import x / from . import x
                out |= {a.name for a in node.names}
    return (out & known) - {path.stem}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imported_modules(path, known) for name, path in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    (tmp_path / "a.py").write_text("import interface4d.b\n")
    (tmp_path / "b.py").write_text("def f():\n    from interface4d import c\n")
    (tmp_path / "c.py").write_text("def g():\n    from .a import x\n")
    (tmp_path / "d.py").write_text("from interface4d.a import y\n")
    known = {"a", "b", "c", "d"}
    g = {p.stem: imported_modules(p, known) for p in tmp_path.glob("*.py")}
    assert g == {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [["a", "b", "c"]]


def test_no_import_cycle_among_the_library_modules():
    found = cycles(graph())
    assert not found, f"import cycles among interface4d modules: {found}"


def test_no_module_over_600_lines():
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_lower_layers_import_no_stage():
    """physics imports nothing of the package; config only physics; grid only those two."""
    g = graph()
    assert g["physics"] == set()
    assert g["config"] <= {"physics"}, g["config"]
    assert g["grid"] <= {"physics", "config"}, g["grid"]

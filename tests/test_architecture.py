"""The library's shape, read from its source (the AST; nothing is imported): dependencies run
one way between the modules of ``interface4d`` and of its subpackages (no import cycle,
function-level imports included) and no module grows past 600 lines. ARCHITECTURE.md draws the
map."""

from __future__ import annotations

import ast
from pathlib import Path

from support.workflow import ROOT

PACKAGE = ROOT / "src" / "interface4d"
MAX_LINES = 600
ROOT_NAME = "__init__"  # the package's own __init__.py

Parts = tuple[str, ...]


def _name(parts: Parts) -> str:
    return ".".join(parts) or ROOT_NAME


def _parts(name: str) -> Parts:
    return () if name == ROOT_NAME else tuple(name.split("."))


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Every module under ``root`` (subpackages included) by dotted name relative to it:
    ``figures.evaluation``; a subpackage's ``__init__.py`` by the package's name (``figures``),
    ``root``'s own as ``__init__``."""
    out: dict[str, Path] = {}
    for p in sorted(root.rglob("*.py")):
        parts = p.relative_to(root).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[_name(parts)] = p
    return out


def _longest_known(parts: Parts, known: set[str]) -> Parts:
    """The longest prefix of ``parts`` that names a known module (``()``: the package)."""
    for n in range(len(parts), 0, -1):
        if _name(parts[:n]) in known:
            return parts[:n]
    return ()


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``interface4d`` modules that module ``name`` (source ``path``) imports anywhere
    (module level or inside a function): ``import interface4d.x.y``,
    ``from interface4d.x import ...``, ``from interface4d import x`` and relative imports,
    each resolved to the most specific module it names (``from interface4d.figures import
    evaluation``: ``figures.evaluation``). Importing a submodule first runs its packages'
    ``__init__``, so those count too, except the packages ``name`` itself lies in (they ran
    before it)."""
    me = _parts(name)
    package = me if path.name == "__init__.py" else me[:-1]
    targets: set[Parts] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = tuple(alias.name.split("."))
                if parts[0] == "interface4d":
                    targets.add(_longest_known(parts[1:], known))
        elif isinstance(node, ast.ImportFrom):
            parts = tuple(node.module.split(".")) if node.module else ()
            if node.level == 0:
                if not parts or parts[0] != "interface4d":
                    continue
                base = parts[1:]
            else:  # from . import x / from ..a import y: relative to name's package
                up = node.level - 1
                base = (package[: len(package) - up] if up else package) + parts
            for alias in node.names:  # from <base> import x: x may be a submodule
                if _name(base + (alias.name,)) in known:
                    targets.add(base + (alias.name,))
                else:
                    targets.add(_longest_known(base, known))
    ancestors = {me[:i] for i in range(len(me) + 1)}
    out = {t[:i] for t in targets for i in range(1, len(t) + 1)} - ancestors
    return {_name(t) for t in out} & known


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    mods = modules(root)
    known = set(mods)
    return {name: imported_modules(name, path, known) for name, path in mods.items()}


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
    g = graph(tmp_path)
    assert g == {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(g) == [["a", "b", "c"]]


def test_the_graph_resolves_imports_of_and_inside_a_subpackage(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (tmp_path / "__init__.py").write_text("import os\n")
    (tmp_path / "a.py").write_text("from interface4d.pkg import x\nfrom interface4d import v\n")
    (tmp_path / "b.py").write_text("from interface4d.pkg.y import f\n")
    (tmp_path / "c.py").write_text("import interface4d.pkg.x as m\n")
    (tmp_path / "d.py").write_text("def h():\n    from interface4d import pkg\n")
    (pkg / "__init__.py").write_text('"""A package."""\n')
    (pkg / "x.py").write_text("from . import y\nfrom .. import d\n")
    (pkg / "y.py").write_text("def f():\n    from ..b import z\n    from .x import w\n")
    (pkg / "z.py").write_text("from interface4d.pkg import f\nimport interface4d\n")
    g = graph(tmp_path)
    assert g == {
        "__init__": set(),
        "a": {"pkg", "pkg.x"},
        "b": {"pkg", "pkg.y"},
        "c": {"pkg", "pkg.x"},
        "d": {"pkg"},
        "pkg": set(),
        "pkg.x": {"pkg.y", "d"},
        "pkg.y": {"b", "pkg.x"},
        "pkg.z": set(),
    }
    assert cycles(g) == [["b", "pkg.x", "pkg.y"]]


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

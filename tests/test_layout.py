"""The layout holds: no import cycle between packages, none between modules of shared/, read from the code.

Why a test: a cycle creeps back with one convenient import, and then every package in it has to be
understood at once. Imports inside functions count too (they are dependencies all the same)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOPS = ("gateway", "shared", "admin_app")


def _modules() -> dict[str, Path]:
    found = {}
    for top in TOPS:
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules that module ``name`` imports (a package's submodule when named from it)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            target = (".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
                      if node.level else node.module)
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in known else target)
    return {m for m in out if m in known and m != name}


def _graph(group) -> dict[str, set[str]]:
    known = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        for target in _imports(name, path, known):
            a, b = group(name), group(target)
            if a and b and a != b:
                graph.setdefault(a, set()).add(b)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def _package(module: str) -> str | None:
    """gateway.mpesa.callbacks -> gateway.mpesa; the wiring modules at a top's root stand for themselves."""
    return ".".join(module.split(".")[:2])


def test_no_cycle_between_packages():
    assert _cycles(_graph(_package)) == []


def test_no_cycle_between_modules_of_shared():
    def module(name):
        return name if name.startswith("shared.") else None

    assert _cycles(_graph(module)) == []


def test_the_walk_sees_a_cycle():
    """The check can fail: a made-up graph with a loop is reported."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_walk_reads_relative_imports():
    known = _modules()
    imports = _imports("gateway.app", known["gateway.app"], known)
    assert "gateway.ingest.tasks" in imports and "shared.db" in imports


def test_wiring_only_at_the_gateway_root():
    """Loose modules at gateway/'s root are wiring: the factory, the command line, the server."""
    loose = sorted(p.stem for p in (ROOT / "gateway").glob("*.py"))
    assert loose == ["__init__", "app", "cli", "server"]

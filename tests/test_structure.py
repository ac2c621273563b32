"""The package's shape: no import loops, no private names shared between modules, small modules.

Imports inside functions count too: a lazy import hides a dependency from the reader, not from the
design. A package's ``__init__`` re-exporting its modules is not an edge (it is how a folder shows its
public names)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "autocomp"
MAX_LINES = 400
LONGER = {}  # module -> why it may be longer (docs/design-notes.md says the same); none today


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import statement of a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.append((sub, None) if sub in mods else (base, a.name))
    return found


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    private = []
    for name, path in mods.items():
        for target, imported in _imports(name, path, mods):
            if target == name or target not in mods or mods[target].name == "__init__.py":
                continue
            edges[name].add(target)
            if imported and imported.startswith("_") and not imported.startswith("__"):
                private.append(f"{name} imports {target}.{imported}")
    return edges, private


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
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

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_loops():
    edges, _ = _graph()
    assert _cycles(edges) == []


def test_the_check_finds_a_loop():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_a_private_name_from_another():
    _, private = _graph()
    assert private == []


def test_modules_stay_small():
    long = {name: n for name, path in _modules().items()
            if (n := path.read_text().count("\n")) > MAX_LINES and name not in LONGER}
    assert long == {}


def test_stages_do_not_reach_back():
    """The pipeline's order: a stage imports the stages before it, never one after it (device profiles,
    errors, paths and plans sit below everything)."""
    order = ["tasks", "compress", "lower", "build", "measure", "candidate", "study", "artifacts", "reports", "cli"]
    rank = {stage: i for i, stage in enumerate(order)}
    edges, _ = _graph()

    def stage(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 and parts[1] in rank else None

    backwards = [f"{a} -> {b}" for a, targets in edges.items() for b in targets
                 if stage(a) and stage(b) and rank[stage(b)] > rank[stage(a)]]
    assert backwards == []

"""tfnlp's modules import each other in one direction: no cycles, and no layer reaches back up.

Imports inside functions count as much as module-level ones: a deferred import still ties the
two modules together.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tfnlp"

# Layers that must not import the ones named (data flows config → … → cli).
FORBIDDEN = {
    "tfnlp.config": ("tfnlp.data", "tfnlp.preprocessing", "tfnlp.models", "tfnlp.tasks",
                     "tfnlp.training", "tfnlp.export", "tfnlp.compression", "tfnlp.cli"),
    "tfnlp.data": ("tfnlp.models", "tfnlp.tasks", "tfnlp.training", "tfnlp.export",
                   "tfnlp.compression", "tfnlp.cli"),
    "tfnlp.preprocessing": ("tfnlp.models", "tfnlp.tasks", "tfnlp.training", "tfnlp.export",
                            "tfnlp.compression", "tfnlp.cli"),
    "tfnlp.models": ("tfnlp.tasks", "tfnlp.training", "tfnlp.export", "tfnlp.compression",
                     "tfnlp.cli"),
    "tfnlp.export": ("tfnlp.tasks", "tfnlp.training", "tfnlp.compression", "tfnlp.cli"),
    "tfnlp.tasks": ("tfnlp.training.run", "tfnlp.training.trained", "tfnlp.compression",
                    "tfnlp.bench", "tfnlp.cli"),
    "tfnlp.training": ("tfnlp.compression", "tfnlp.bench", "tfnlp.cli"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The tfnlp modules `path` imports anywhere in its code (resolved to existing modules)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    graph = {module_name(p): imports_of(p, modules) for p in paths}
    # A package's __init__ re-exporting its submodules is not a dependency of those submodules
    # on the package: drop edges between a package and its own children.
    return {m: {t for t in targets if not t.startswith(m + ".") and not m.startswith(t + ".")}
            for m, targets in graph.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module):
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[module] = 2
        path.pop()
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    assert len(graph) > 50  # the walk really saw the package
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_do_not_import_upwards(layer):
    graph = import_graph()
    offending = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items() if module == layer or module.startswith(layer + ".")
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in FORBIDDEN[layer])
    )
    assert not offending, offending

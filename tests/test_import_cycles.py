"""The package's parts import each other without cycles, and the model folder imports nothing of the package.

Why: a cycle between two parts means neither can be read, tested or changed alone, and at import time it is one
reordered line away from a half-initialised module. The check is static (``ast``), so it sees every import the code
can make, the ones inside functions included (they are how cycles hide: eval/qc.py once built its models through
``barcodemae.training``, which runs the evaluation).

Nodes of the graph. Each subpackage (``barcodemae.data``, ``barcodemae.training``, ``barcodemae.eval``, ...) is one
node, and so is ``modeling_barcodemae``: a subpackage is a part with one job, and its modules may use each other
freely. Each top-level module (``barcodemae/cli.py``, ``barcodemae/inference.py``, ...) is a node of its own, and
``barcodemae/__init__.py`` another: they are small modules with one job each, not one layer, so lumping them
together would report loops that no chain of imports makes (``barcodemae.eval`` uses ``barcodemae.inference``
while ``barcodemae.identify`` uses ``barcodemae.eval.postprocess``, and neither module imports the other).

What is not seen: names imported by string (:mod:`barcodemae.lazy_names`, the lazy ``__getattr__`` of
``barcodemae/__init__.py`` and of the ``qc``, ``masking`` and ``training`` packages); those only load classes of a
deeper layer (``barcodemae.auto_classes``, ``barcodemae.errors``) or of their own subpackage.
"""

from __future__ import annotations

import ast
import configparser
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO_ROOT

MODEL_FOLDER = "modeling_barcodemae"


def package_folders() -> dict[str, Path]:
    """Every package of setup.cfg and the folder it lives in (``package_dir`` applied: ``barcodemae.eval`` is
    ``eval/``)."""
    setup = configparser.ConfigParser()
    setup.read(REPO_ROOT / "setup.cfg")
    options = setup["options"]
    packages = options["packages"].split()
    mapped = {
        name.strip(): folder.strip()
        for name, folder in (line.split("=") for line in options.get("package_dir", "").splitlines() if line.strip())
    }
    return {package: REPO_ROOT / mapped.get(package, package.replace(".", "/")) for package in packages}


def module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of every package (a package's own is its __init__)."""
    modules = {}
    for package, folder in package_folders().items():
        for path in sorted(folder.glob("*.py")):
            modules[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return modules


@dataclass(frozen=True)
class Import:
    """One import statement's target within the package: who imports what, where."""

    importer: str
    target: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO_ROOT)}:{self.line} imports {self.target}"


def own_module(name: str, modules: dict[str, Path]) -> str | None:
    """The package module that importing the dotted ``name`` loads (its longest known prefix), or ``None`` for a
    name from outside (torch, the standard library...)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Import]:
    """Every import of ``module`` that reaches the package: module-level, inside functions, under
    ``TYPE_CHECKING`` alike; relative imports resolved against the package ``module`` belongs to."""
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from a import b``: b is a submodule of a, or a name defined in a
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in {own_module(name, modules) for name in names} - {None}:
            found.append(Import(module, target, path, node.lineno))
    return sorted(found, key=lambda edge: (edge.line, edge.target))


def part_of(module: str) -> str:
    """The graph node of ``module``: its subpackage (``barcodemae.training.loop`` -> ``barcodemae.training``),
    ``modeling_barcodemae``, or a top-level module itself (``barcodemae.cli``; see the module docstring)."""
    parts = module.split(".")
    return parts[0] if parts[0] != "barcodemae" else ".".join(parts[:2])


def part_graph() -> dict[str, dict[str, list[Import]]]:
    """node -> node it imports -> the import statements that make the edge (imports within a node left out)."""
    modules = module_files()
    graph: dict[str, dict[str, list[Import]]] = defaultdict(lambda: defaultdict(list))
    for module, path in modules.items():
        for edge in imports_of(module, path, modules):
            source, target = part_of(edge.importer), part_of(edge.target)
            if source != target:
                graph[source][target].append(edge)
    return graph


def strongly_connected(graph: dict[str, dict[str, list[Import]]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan): each holds at least one cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, {}):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted({*graph, *(t for targets in graph.values() for t in targets)}):
        if node not in index:
            visit(node)
    return components


def shortest_cycle(graph: dict[str, dict[str, list[Import]]], component: list[str]) -> list[str]:
    """A shortest cycle through the component's first node, as ``[a, b, ..., a]`` (breadth-first search)."""
    start = component[0]
    members = set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph.get(node, {})):
                if successor == start:
                    return [*paths[node], start]
                if successor in members and successor not in paths:
                    paths[successor] = [*paths[node], successor]
                    following.append(successor)
        frontier = following
    raise AssertionError(f"no cycle through {start} in its component {component}")


def describe_component(graph: dict[str, dict[str, list[Import]]], component: list[str]) -> str:
    """One cycle of the component, then every import between its parts: what has to change to break them all."""
    lines = [f"{' -> '.join(shortest_cycle(graph, component))}  (parts in cycles: {', '.join(component)})"]
    for source in component:
        for target in sorted(set(graph[source]) & set(component)):
            lines += [f"    {source} -> {target}: {edge}" for edge in graph[source][target]]
    return "\n".join(lines)


def test_the_package_parts_import_each_other_without_cycles():
    graph = part_graph()
    cycles = [describe_component(graph, component) for component in strongly_connected(graph)]
    assert not cycles, "import cycles between the package's parts:\n" + "\n".join(cycles)


def test_the_walk_sees_function_level_and_relative_imports():
    """The graph is only as good as the import resolution: a relative import inside a package ``__init__`` and a
    function-level import must both be edges."""
    graph = part_graph()
    assert graph["barcodemae.cli"]["barcodemae.training"], "cli.main's function-level import of the training loop"
    assert graph["barcodemae.tokenization"][MODEL_FOLDER], "tokenization/__init__.py registers with the model config"
    assert "barcodemae.eval" in graph["barcodemae.training"], "training runs the evaluation at the end"


def test_the_model_folder_imports_nothing_of_the_package():
    """``modeling_barcodemae/`` is what ``save_pretrained`` copies into model folders (``auto_map``): it must load
    with torch and transformers alone, where ``barcodemae`` is not installed."""
    modules = module_files()
    outside = [
        str(edge)
        for module, path in modules.items()
        if part_of(module) == MODEL_FOLDER
        for edge in imports_of(module, path, modules)
        if part_of(edge.target) != MODEL_FOLDER
    ]
    assert not outside, "modeling_barcodemae imports the package:\n" + "\n".join(outside)

"""The one-way import rule of docs/architecture.md, checked on the source: no import cycle inside varsep, and
every module imports only its own layer or the layers below it (function-level imports included)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "varsep"

# Layers from the bottom up (docs/architecture.md). A module may import modules of its own layer and below.
LAYERS = [
    ("core", ["varsep", "varsep.errors", "varsep.registry", "varsep.spec", "varsep.precision", "varsep.storage",
              "varsep.allocator", "varsep.runs", "varsep.guards"]),
    ("config", ["varsep.config"]),
    ("nets", ["varsep.nets"]),
    ("model", ["varsep.model", "varsep.baselines"]),
    ("forecaster", ["varsep.forecaster"]),
    ("data", ["varsep.data"]),
    ("datagen", ["varsep.datagen"]),
    ("train", ["varsep.train"]),
    ("eval", ["varsep.eval"]),
    ("app", ["varsep.predict", "varsep.demo"]),
    ("cli", ["varsep.cli", "varsep.__main__"]),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> int:
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module == prefix or (prefix != "varsep" and module.startswith(prefix + "."))
            if inside and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    if best is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS and docs/architecture.md")
    return best[0]


def imports_of(path: Path) -> set[str]:
    """varsep modules imported anywhere in the file (function bodies too), except under TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("varsep"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("varsep"):
            for alias in node.names:  # ``from varsep.eval import metrics`` imports the submodule
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


GRAPH = {name: {m for m in imports_of(path) if m in MODULES and m != name} for name, path in MODULES.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the strongly connected components with more than one module (import cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_the_modules_the_layers_name():
    assert {"varsep.spec", "varsep.config.schema", "varsep.nets.mlp", "varsep.model.separable", "varsep.data.base",
            "varsep.train.runner", "varsep.eval.evaluation", "varsep.cli"} <= set(MODULES)


def test_no_import_cycle_inside_varsep():
    assert strongly_connected(GRAPH) == []


def test_imports_point_down_the_layers():
    upward = sorted(f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
                    for a, targets in GRAPH.items() for b in targets if layer_of(b) > layer_of(a))
    assert upward == []


@pytest.mark.parametrize("lower", ["varsep.nets", "varsep.model", "varsep.config", "varsep.spec"])
def test_networks_and_model_never_import_data(lower):
    offenders = sorted(a for a, targets in GRAPH.items() if a == lower or a.startswith(lower + ".")
                       for b in targets if b.startswith(("varsep.data", "varsep.train", "varsep.eval")))
    assert offenders == []


def test_the_checker_sees_a_cycle_and_an_upward_import():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert layer_of("varsep.nets.mlp") < layer_of("varsep.data.waveeq")


def test_importing_the_model_loads_no_data_library():
    code = ("import sys, varsep.model, varsep.config; "
            "print(','.join(m for m in ('xarray', 'h5py', 'PIL', 'lightning', 'varsep.data') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""

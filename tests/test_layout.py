"""The package's layout holds: no import circles, and torch only under emorec/training/.

The import graph is read from the source (module-level ``import`` / ``from ... import`` statements of
``src/emorec/**/*.py``, class bodies included), leaving out what runs later or never: imports inside functions
(lazy on purpose) and under ``if TYPE_CHECKING:``. A second test imports every runtime module in a fresh
interpreter in which ``import torch`` fails, so a torch import that slips in through another module shows too.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = SRC / "emorec"
TRAINING = "emorec.training"
# Third-party packages only some extras install: a runtime module that needs one is imported where it is there.
OPTIONAL = {"emorec.desktop": "PySide6", "emorec.web": "flask"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_level_imports(tree: ast.Module, functions: bool = False) -> list[tuple[ast.Import | ast.ImportFrom, int]]:
    """The import statements that run when the module is imported: the module's body and the blocks in it
    (if/else, try, with, class bodies), not functions (unless ``functions``: then the lazy ones too), and not
    ``if TYPE_CHECKING:`` (its ``else`` does run)."""
    found = []

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.append((node, node.lineno))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if functions:
                    visit(node.body)
            elif isinstance(node, ast.If):
                if not is_type_checking(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.ClassDef):
                visit(node.body)
            elif isinstance(node, (ast.Try, getattr(ast, "TryStar", ast.Try))):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, (ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While)):
                visit(node.body)
                visit(getattr(node, "orelse", []))

    visit(tree.body)
    return found


def imported_names(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The full names a statement imports: ``import a.b`` gives a.b; ``from a import b`` gives a.b where that
    is a module, else a (relative imports resolved against ``module``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]


def import_graph(functions: bool = False) -> dict[str, dict[str, int]]:
    """For each module of the package, the modules of the package it imports at module level (with
    ``functions``, inside functions too), with the line."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        edges = graph.setdefault(name, {})
        for node, line in module_level_imports(tree, functions):
            for target in imported_names(name, node):
                if target in MODULES and target != name:
                    edges.setdefault(target, line)
    return graph


def third_party_imports(path: Path) -> set[str]:
    """The top-level names of what a module imports at module level (``torch`` for ``import torch.nn``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names = set()
    for node, _ in module_level_imports(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif not node.level and node.module:
            names.add(node.module.partition(".")[0])
    return names


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module (no module imports itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    members = set(component)
    return "; ".join(f"{a} imports {b} (line {line})" for a in component
                     for b, line in sorted(graph[a].items()) if b in members)


def test_the_graph_sees_module_level_imports_only():
    """The reader itself: a function's import and a TYPE_CHECKING import are no edges, a module-level one is."""
    graph = import_graph()
    assert "emorec.calibration" in graph["emorec.engine"]  # module level
    assert "emorec.stream" not in graph["emorec.engine"]  # in a function, and under TYPE_CHECKING
    assert "emorec.engine" not in graph["emorec.calibration"]  # under TYPE_CHECKING
    assert "emorec.training.checkpoint" in graph["emorec.training.train"]
    assert cycles({"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}) == [["a", "b", "c"]]


def test_no_import_circles():
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import circles: " + " | ".join(describe(component, graph) for component in found)


def test_runtime_never_imports_training_or_torch_at_module_level():
    """torch (and the training package) only under emorec/training/; the runtime reaches into emorec.training
    only inside a function, where a user asked for a checkpoint or the FER2013 data set."""
    heavy = {"torch", "torchvision", "onnxscript"}
    graph = import_graph()
    offenders = []
    for name, path in MODULES.items():
        if name == TRAINING or name.startswith(TRAINING + "."):
            continue
        torch_like = third_party_imports(path) & heavy
        if torch_like:
            offenders.append(f"{name} imports {', '.join(sorted(torch_like))}")
        training = [t for t in graph[name] if t == TRAINING or t.startswith(TRAINING + ".")]
        if training:
            offenders.append(f"{name} imports {', '.join(training)}")
    assert not offenders, "; ".join(offenders)


def test_scoring_never_reaches_into_the_training_loop():
    """evaluate, photo_eval and scorecard score ONNX models without torch; even inside their functions they use
    only the checkpoint helpers (for a .pt file) and the data set loader, never the training loop."""
    graph = import_graph(functions=True)
    allowed = {TRAINING, f"{TRAINING}.checkpoint", f"{TRAINING}.data"}
    for name in ("emorec.evaluate", "emorec.photo_eval", "emorec.scorecard"):
        training = {t for t in graph[name] if t.startswith(TRAINING)}
        assert training <= allowed, f"{name} imports {', '.join(sorted(training - allowed))}"
    assert f"{TRAINING}.checkpoint" in graph["emorec.evaluate"]  # the reader sees function-level imports


def test_training_is_the_only_torch_user():
    """The other direction: the modules that do import torch all live in emorec/training/ (a guard for the test
    above, which would pass on a package that imports nothing)."""
    users = sorted(name for name, path in MODULES.items() if "torch" in third_party_imports(path))
    assert users and all(name.startswith(TRAINING + ".") for name in users), users
    assert "emorec.training.train" in users and "emorec.training.checkpoint" in users


def test_every_runtime_module_imports_without_torch():
    """In a fresh interpreter where ``import torch`` fails, every module outside emorec/training/ imports (those
    of the desktop and web apps where their extra is installed), and neither torch nor emorec.training gets
    loaded on the way; the data set loader imports too (it is numpy only)."""
    runtime = [name for name in MODULES if not (name == TRAINING or name.startswith(TRAINING + "."))]
    runtime = [name for name in runtime
               if not any((name == prefix or name.startswith(prefix + "."))
                          and importlib.util.find_spec(extra) is None for prefix, extra in OPTIONAL.items())]
    script = """
import importlib, importlib.abc, json, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is blocked: the runtime must not import it", name=name)
        return None

sys.meta_path.insert(0, NoTorch())
modules = json.loads(sys.argv[1])
failed = {}
for name in modules:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "emorec.training")))
import emorec.training.data
print(json.dumps({"failed": failed, "loaded": loaded}))
"""
    env = {**os.environ, "PYTHONPATH": str(SRC), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", script, json.dumps(runtime)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "emorec.engine" in runtime and "emorec.cli" in runtime
    assert result["failed"] == {}
    assert result["loaded"] == []

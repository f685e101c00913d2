"""The package layout keeps its promises: small modules, one module per base name, no import
cycle among the imports a module runs when it loads, and packages in layers: each imports only
the layers below it, counting every import (module level, TYPE_CHECKING, inside functions)."""

from __future__ import annotations

import ast
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tunewise"
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def load_time_imports(path: Path, known: set[str]) -> set[str]:
    """The tunewise modules a module imports at load time (not under TYPE_CHECKING, not inside
    functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for child in [node, *(ast.walk(node) if isinstance(node, ast.If | ast.Try) else [])]:
            if isinstance(child, ast.Import):
                imported |= {alias.name for alias in child.names}
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                imported.add(child.module)
                imported |= {f"{child.module}.{alias.name}" for alias in child.names}
    return {name for name in imported if name in known}


def test_no_module_is_over_400_lines() -> None:
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long


def test_no_two_modules_share_a_base_name() -> None:
    names = Counter(
        path.stem for path in modules().values() if path.stem not in {"__init__", "__main__"}
    )
    assert not [name for name, count in names.items() if count > 1]


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_no_import_cycle() -> None:
    found = modules()
    graph = {name: load_time_imports(path, set(found)) - {name} for name, path in found.items()}
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert not find_cycles(graph), find_cycles(graph)[:3]


# The layers, lowest first (docs/development.md, "Layers"). A node is a subpackage of tunewise
# or a top-level module ("tunewise" is the package's own __init__); a node imports only nodes in
# layers below its own.
LAYERS: list[set[str]] = [
    {"errors", "home"},
    {"core"},
    {"task", "options"},
    {"models"},
    {"retrieval", "finetune"},
    {"evaluation"},
    {"inference"},
    {"strategies", "checks"},
    {"measuring"},
    {"deciding"},
    {"run_context"},
    {"run"},
    {"planning"},
    {"schemas"},
    {"report"},
    {"records"},
    {"view", "fine_tuning_server"},
    {"cli"},
    {"tunewise", "__main__"},
]


def node_of(module: str) -> str:
    """tunewise.PACKAGE.rest -> PACKAGE; tunewise.MODULE -> MODULE; tunewise -> tunewise."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def every_import(path: Path) -> list[tuple[str, int]]:
    """Each tunewise module a file imports and the line: at module level, under TYPE_CHECKING
    and inside functions alike."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        found += [(n, node.lineno) for n in names if n == "tunewise" or n.startswith("tunewise.")]
    return found


def package_imports() -> dict[tuple[str, str], list[str]]:
    """(importing node, imported node) -> where: "file:line" for each import between two nodes."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, path in modules().items():
        for target, line in every_import(path):
            if node_of(target) != node_of(name):
                where = f"{path.relative_to(PACKAGE).as_posix()}:{line}"
                edges[node_of(name), node_of(target)].append(where)
    return edges


def test_the_package_graph_is_acyclic_counting_every_import() -> None:
    edges = package_imports()
    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
        graph.setdefault(target, set())
    cycles = find_cycles(graph)
    named = [
        "; ".join(f"{a} -> {b} at {edges[a, b][0]}" for a, b in pairwise(cycle)) for cycle in cycles
    ]
    assert not cycles, f"package import cycles: {named[:3]}"


def test_each_package_imports_only_the_layers_below_it() -> None:
    layer = {node: i for i, nodes in enumerate(LAYERS) for node in nodes}
    undeclared = sorted({node_of(name) for name in modules()} - set(layer))
    assert not undeclared, f"not in LAYERS (test_layout.py and docs/development.md): {undeclared}"
    upward = [
        f"{where}: {source} imports {target}, which is not in a layer below it"
        for (source, target), places in sorted(package_imports().items())
        if layer[target] >= layer[source]
        for where in places
    ]
    assert not upward, upward


# Strings that equal a built-in strategy's name but name something else: the teacher's
# prompting mode (`teacher_prompt: zero-shot | few-shot`) and the hybrid adapter's training
# recipe label, part of its cache key. A family's name ("hybrid") is not checked at all.
NOT_STRATEGY_REFERENCES = {
    ("core/specs.py", "zero-shot"),
    ("core/specs.py", "few-shot"),
    ("strategies/lora/teacher.py", "zero-shot"),
    ("strategies/lora/teacher.py", "few-shot"),
    ("report/distill.py", "few-shot"),
    ("strategies/hybrid/rag_trained.py", "rag"),
}


def built_in_homes() -> dict[str, str]:
    """Each built-in strategy's name -> its folder, from tunewise's own entry points."""
    from importlib import metadata

    from tunewise.core.catalog import ENTRY_POINTS, STEP_OF_FAMILY

    homes: dict[str, str] = {}
    for entry in metadata.entry_points(group=ENTRY_POINTS):
        module = entry.value.partition(":")[0]
        if module.startswith("tunewise."):
            loaded = entry.load()
            folder = module.removeprefix("tunewise.").replace(".", "/") + "/"
            for record in loaded if isinstance(loaded, list) else [loaded]:
                if record.name not in STEP_OF_FAMILY:
                    homes[record.name] = folder
    return homes


def test_no_built_in_strategy_is_named_outside_its_folder_and_the_registry() -> None:
    homes = built_in_homes()
    assert {"zero-shot", "few-shot", "rag", "lora"} <= set(homes)
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            value = getattr(node, "value", None) if isinstance(node, ast.Constant) else None
            if value not in homes or id(node) in docstrings:
                continue
            if where.startswith(homes[value]) or where == "core/catalog.py":
                continue
            if (where, value) not in NOT_STRATEGY_REFERENCES:
                found.append(f"{where}:{node.lineno}: {value!r}")
    assert not found, found


def docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = node.body[0]
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)):
        return 0
    if not isinstance(first.value.value, str):
        return 0
    return (first.end_lineno or first.lineno) - first.lineno + 1


def function_length(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the `def` to the function's last line, less a leading docstring; for a Typer
    command (its signature lists the options) only the body after the signature and docstring."""
    end = node.end_lineno or node.lineno
    decorators = " ".join(ast.unparse(d) for d in node.decorator_list)
    if "typer." in ast.unparse(node.args) or ".command(" in decorators:
        rest = node.body[1:] if docstring_lines(node) else node.body
        return end - rest[0].lineno + 1 if rest else 0
    return end - node.lineno + 1 - docstring_lines(node)


def test_no_function_is_over_60_lines() -> None:
    long = [
        f"{path.relative_to(PACKAGE).as_posix()}:{node.lineno} {node.name} ({n} lines)"
        for path in sorted(PACKAGE.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (n := function_length(node)) > 60
    ]
    assert not long, long

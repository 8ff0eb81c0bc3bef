"""The import structure of our packages, read from their source (no module is imported).

Three rules, each a test that fails on the first new break:

1. **Layers.** ``simecg`` < ``pretraining`` < ``baselines`` < ``benchmark``, and inside
   ``benchmark`` its folders by stage (:data:`STAGES`): a module imports only from its own layer
   or a lower one, counting function-local and type-checking imports, and a lower layer never
   looks up a registry entry by a literal name (a name it would own by knowing a higher layer).
2. **No circle** among our modules, counting function-local imports (a circle hidden inside a
   function is still a circle).
3. **A function-local import of our own modules keeps start-up fast**: the imported module (with
   what it imports at module level) brings in a heavy third-party package (:data:`HEAVY`) that the
   importing module does not already load. Any other one is hoisted to module level, or, if that
   is impossible for another reason, listed in :data:`LOCAL_ALLOWED` with the reason.

``python tests/test_layering.py`` prints the function-local imports of the packages by kind.
"""

from __future__ import annotations

import ast
import collections
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("simecg", "pretraining", "baselines", "benchmark")  # lowest first
# benchmark's folders by stage, lowest first; a module imports from its own stage or those before it
STAGES = (
    ("benchmark", "benchmark.registries", "benchmark.catalog"),
    ("benchmark.data",),
    ("benchmark.corpora",),
    ("benchmark.suites",),
    ("benchmark.tracking",),
    ("benchmark.results",),
    ("benchmark.run",),
    ("benchmark.commands", "benchmark.perf"),
    ("benchmark.cli",),
)
# Third-party packages slow to import (measured with `python -X importtime -c "import X"` on the
# reference machine, load ~1; a light command such as `simecg-bench list` loads none of them).
HEAVY = {
    "torch": "~1.5 s", "torchvision": "with torch", "timm": "torch and more", "mlflow": "~1.5 s",
    "optuna": "~0.3 s, sqlalchemy", "sqlalchemy": "~0.3 s", "psycopg": "~0.1 s, a driver",
    "matplotlib": "~0.4 s, pyplot 0.8 s", "sklearn": "~1 s", "scipy": "~0.2 s, scipy.signal ~1 s",
    "xgboost": "~1.5 s", "pandas": "~0.5 s", "wfdb": "~0.7 s, pandas and scipy", "neurokit2": "~3 s",
    "numba": "~0.8 s", "joblib": "~0.3 s", "selenium": "a browser driver",
    "numpy": "~0.1 s: the CLI answers --help and parses arguments without it",
}
# What every `simecg-bench` invocation loads (`--help` takes ~0.2 s): the CLI module and every command
# module, which declare the arguments (benchmark.cli.COMMAND_MODULES). They import the code a command runs
# inside that command, so parsing loads only what the chosen command needs (the CLI is thin: STYLE.md).
CLI_START = ("benchmark.cli", "benchmark.commands")
# (importing module, imported module): function-local imports of our modules kept for another reason.
LOCAL_ALLOWED: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    """One import statement's edge: ``source`` imports ``target`` (a module of ours or a third-party top name)."""

    source: str
    target: str
    line: int
    local: bool  # inside a function
    typing_only: bool  # under ``if TYPE_CHECKING:``

    @property
    def ours(self) -> bool:
        return self.target.split(".")[0] in PACKAGES


@cache
def modules() -> dict[str, Path]:
    """Every module of our packages, by dotted name (a package by its own name)."""
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _target(name: str) -> str:
    """Our module that ``name`` (a module or an object in one) executes, or its third-party top name."""
    if name.split(".")[0] not in PACKAGES:
        return name.split(".")[0]
    while name not in modules() and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


@cache
def imports_of(module: str) -> tuple[Import, ...]:
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[Import] = []

    def visit(node: ast.AST, local: bool, typing_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                out.extend(Import(module, _target(a.name), child.lineno, local, typing_only) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    target = _target(full) if full in modules() else _target(base)
                    out.append(Import(module, target, child.lineno, local, typing_only))
            else:
                visit(child, local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)),
                      typing_only or (isinstance(child, ast.If) and _is_type_checking(child)))

    visit(ast.parse(path.read_text()), False, False)
    return tuple(out)


def all_imports() -> Iterator[Import]:
    for module in modules():
        yield from imports_of(module)


def layer(module: str) -> tuple[int, int]:
    """(package rank, stage rank inside benchmark) of a module of ours."""
    top = module.split(".")[0]
    rank = PACKAGES.index(top)
    if top != "benchmark":
        return rank, 0
    for stage, prefixes in enumerate(STAGES):
        if any(module == p or module.startswith(f"{p}.") for p in prefixes if p != "benchmark"):
            return rank, stage
    if module == "benchmark":
        return rank, 0
    raise AssertionError(f"{module} is in no stage of benchmark: add its folder to STAGES")


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@cache
def loaded_at_import(module: str) -> frozenset[str]:
    """Every module of ours and third-party top name that importing ``module`` executes."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current not in modules():
            continue
        todo.extend(p for p in _parents(current) if p in modules())
        todo.extend(i.target for i in imports_of(current) if not i.local and not i.typing_only)
    return frozenset(seen)


def cli_start() -> frozenset[str]:
    """What loads before any command runs: the CLI and the command modules, with their imports."""
    starting = [m for m in modules() if any(m == p or m.startswith(f"{p}.") for p in CLI_START)]
    return frozenset().union(*(loaded_at_import(m) for m in starting))


def heavy(module: str) -> set[str]:
    return {name for name in loaded_at_import(module) if name in HEAVY}


def cycles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), over every executed import."""
    graph: dict[str, set[str]] = collections.defaultdict(set)
    for edge in all_imports():
        if edge.ours and not edge.typing_only and edge.target != edge.source:
            graph[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(modules()):
        if node not in index:
            connect(node)
    return groups


def unjustified_local_imports() -> list[str]:
    problems = []
    for edge in all_imports():
        if not edge.local or not edge.ours or (edge.source, edge.target) in LOCAL_ALLOWED:
            continue
        at_start = cli_start()
        if edge.source in at_start and edge.target not in at_start:
            continue  # keeps the CLI's start-up to what the chosen command needs
        if edge.target == edge.source or not (heavy(edge.target) - heavy(edge.source)):
            problems.append(f"{modules()[edge.source].relative_to(ROOT)}:{edge.line} imports {edge.target} inside "
                            "a function, but it loads no heavy package the module does not already load: "
                            "import it at module level")
    return problems


# ----------------------------------------------------------------------------------------------- tests
def test_no_module_imports_from_a_higher_layer_or_stage() -> None:
    upward = [f"{modules()[e.source].relative_to(ROOT)}:{e.line} ({e.source}) imports {e.target}"
              for e in all_imports() if e.ours and layer(e.target) > layer(e.source)]
    assert not upward, "imports against the layers " + " < ".join(PACKAGES) + ":\n" + "\n".join(upward)


REGISTRIES = {"CORPORA", "SIMULATORS", "BASELINES", "GENERATORS", "DATASETS", "TASKS", "SUITES", "BENCHES"}


def literal_lookups(tree: ast.AST) -> list[tuple[int, str, str]]:
    """``(line, registry, name)`` of each ``REGISTRY.get(...)`` whose name is a string literal, or a
    variable its function only ever binds to string literals (``name = "ptbxl"``)."""
    found = []
    for scope in [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))]:
        literals: dict[str, set[object]] = collections.defaultdict(set)
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign):
                pairs = [(target, node.value) for target in node.targets]
                if isinstance(node.value, ast.Tuple):
                    pairs = [(t, v) for target in node.targets if isinstance(target, ast.Tuple)
                             for t, v in zip(target.elts, node.value.elts, strict=False)] or pairs
                for target, value in pairs:
                    if isinstance(target, ast.Name):
                        literals[target.id].add(value.value if isinstance(value, ast.Constant) else None)
        for node in ast.walk(scope):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in REGISTRIES and node.args):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant):
                found.append((node.lineno, node.func.value.id, str(arg.value)))
            elif isinstance(arg, ast.Name) and literals.get(arg.id) and None not in literals[arg.id]:
                found.append((node.lineno, node.func.value.id, "|".join(sorted(map(str, literals[arg.id])))))
    return sorted(set(found))


def test_no_lower_layer_looks_up_a_registry_entry_by_a_literal_name() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}: {registry}.get({name!r})"
             for module, path in modules().items() if module.split(".")[0] != "benchmark"
             for line, registry, name in literal_lookups(ast.parse(path.read_text()))]
    assert not found, "a lower layer names an entry of a registry: let the caller pass it in\n" + "\n".join(found)


def test_there_is_no_import_circle() -> None:
    assert cycles() == []


def test_function_local_imports_of_our_modules_keep_start_up_fast() -> None:
    assert unjustified_local_imports() == []
    assert not [pair for pair in LOCAL_ALLOWED if not any(
        (e.source, e.target) == pair and e.local for e in all_imports())], "LOCAL_ALLOWED lists a gone import"


# the checks themselves: each rule fails on the break it is for (a fake tree of modules)
@pytest.fixture
def fake_tree(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    def build(files: dict[str, str]) -> None:
        for name, text in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        for package in PACKAGES:
            (tmp_path / package).mkdir(exist_ok=True)
            (tmp_path / package / "__init__.py").touch()
        monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
        for function in (modules, imports_of, loaded_at_import):
            function.cache_clear()

    yield build
    for function in (modules, imports_of, loaded_at_import):
        function.cache_clear()


def test_the_checks_catch_a_circle_hidden_in_a_function(fake_tree) -> None:
    fake_tree({"benchmark/run/a.py": "from benchmark.run import b\n",
               "benchmark/run/__init__.py": "",
               "benchmark/run/b.py": "def f():\n    from benchmark.run import a\n"})
    assert cycles() == [["benchmark.run.a", "benchmark.run.b"]]
    assert len(unjustified_local_imports()) == 1  # and the local import hides nothing heavy


def test_the_checks_catch_an_upward_import(fake_tree) -> None:
    fake_tree({"pretraining/x.py": "def f():\n    from benchmark.data import y\n",
               "benchmark/data/__init__.py": "", "benchmark/data/y.py": ""})
    with pytest.raises(AssertionError, match="pretraining.x"):
        test_no_module_imports_from_a_higher_layer_or_stage()


def test_a_lookup_by_a_name_bound_to_a_literal_counts_as_literal() -> None:
    tree = ast.parse("def f(records):\n    name, x = 'ptbxl', 1\n    CORPORA.get(name)\n    BASELINES.get(records)\n")
    assert literal_lookups(tree) == [(3, "CORPORA", "ptbxl")]


def test_a_local_import_that_keeps_a_heavy_package_out_is_allowed(fake_tree) -> None:
    fake_tree({"benchmark/results/__init__.py": "",
               "benchmark/results/plots.py": "import matplotlib\n",
               "benchmark/results/table.py": "def f():\n    from benchmark.results import plots\n"})
    assert unjustified_local_imports() == []


def local_import_reasons() -> collections.Counter[str]:
    """Function-local import statements of the packages, counted by why each is local."""
    reasons: collections.Counter[str] = collections.Counter()
    seen: set[tuple[str, int]] = set()
    for edge in all_imports():
        if not edge.local or (edge.source, edge.line) in seen:
            continue
        seen.add((edge.source, edge.line))
        if not edge.ours:
            reasons[f"third-party {edge.target}" if edge.target in HEAVY else "standard library or light"] += 1
        elif edge.source in cli_start() and edge.target not in cli_start():
            reasons["ours, kept out of the CLI's start-up"] += 1
        else:
            reasons["ours, keeps out " + ", ".join(sorted(heavy(edge.target) - heavy(edge.source)))] += 1
    return reasons


if __name__ == "__main__":
    counts = local_import_reasons()
    print(f"function-local import statements: {sum(counts.values())}")
    for reason, n in counts.most_common():
        print(f"{n:4d}  {reason}")

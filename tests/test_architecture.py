"""The package's shape (docs/ARCHITECTURE.md): its layers import only downwards (import-linter's contracts in
pyproject.toml), no module reaches itself through its imports, imports sit at the top of modules, strategies are
named only in sccl/cl/strategies/, and ARCHITECTURE.md's map is the code's."""

import ast
import importlib.util
import os
import re
from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

from sccl.cl import strategies


ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sccl"
#: third-party packages a module may import inside a function: optional extras (pyproject's
#: optional-dependencies, or not on every platform), imported only where they are used
OPTIONAL = {"numba", "lauscher", "soundfile", "espeakng_loader", "submitit", "fcntl"}
#: configuration tables that name strategies as data (which methods a plan tunes, a sweep's default strategies),
#: and a basis mode that shares joint training's name: (file, top-level name)
NAMING_TABLES = {("sccl/cli/tune_plan.py", "PLANS"), ("sccl/cli/cl_sweep.py", "GRID_DEFAULTS"),
                 ("sccl/learn/subspace.py", "BASIS_MODES")}

pytestmark = pytest.mark.fast


def modules(root: Path = ROOT) -> list[tuple[str, Path]]:
    out = []
    for path in sorted((root / "sccl").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        out.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), and modules importing themselves."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycles_are_found():
    """The cycle finder itself, on a made-up graph: a -> b -> c -> a is one cycle, d -> d another, e none."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "e"}, "d": {"d"}, "e": set()}
    assert sorted(cycles(graph)) == [["a", "b", "c"], ["d"]]


def test_the_layer_contracts_hold(tmp_path):
    """Each layer imports only from the layers below it (lint-imports reads pyproject.toml's contracts)."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        status = lint_imports(no_cache=True, no_logo=True)
    finally:
        os.chdir(cwd)
    assert status == 0, "an import breaks a layer contract: run lint-imports in the repository root"


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph("sccl")
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert cycles(edges) == []


def test_every_layer_is_a_subpackage_and_the_package_root_holds_no_module():
    top = sorted(p.name for p in PACKAGE.iterdir() if p.suffix == ".py")
    assert top == ["__init__.py"], f"modules outside a layer: {top}"
    layers = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert layers == ["audio", "cl", "cli", "core", "data", "jobs", "learn", "net", "replay", "report"]


def test_imports_sit_at_the_top_of_modules():
    """No import inside a function (or class), but of an optional extra."""
    inside = []
    for name, path in modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import):
                    targets = [a.name for a in sub.names]
                elif isinstance(sub, ast.ImportFrom):
                    targets = [sub.module or ""]
                else:
                    continue
                inside += [f"{path.relative_to(ROOT)}:{sub.lineno} {t}" for t in targets
                           if t.split(".")[0] not in OPTIONAL]
    assert inside == []


def _names(text: str) -> set[str]:
    return set(re.split(r"[,+]", text))


def strategies_named(root: Path) -> list[str]:
    """Where a module outside sccl/cl/strategies/ names a strategy (or a report variant) in a string, but for the
    configuration tables of :data:`NAMING_TABLES`."""
    known = set(strategies.REGISTRY) | set(strategies.ENTRY_POINTS) | set(strategies.VARIANTS)
    found = []
    for _, path in modules(root):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("sccl/cl/strategies/"):
            continue
        for top in ast.parse(path.read_text()).body:
            targets = [t.id for t in getattr(top, "targets", [getattr(top, "target", None)]) if isinstance(t, ast.Name)]
            if any((rel, t) in NAMING_TABLES for t in targets):
                continue
            for node in ast.walk(top):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    named = _names(node.value)
                    if named & known and named <= known | {""}:
                        found.append(f"{rel}:{node.lineno} {node.value!r}")
    return found


def test_no_strategy_is_named_outside_the_strategies():
    """What a strategy is, is said in its own file: no other module tests for a strategy's name (or one of its
    report variants'); the engine, the report and the sweeps ask the strategy."""
    assert strategies_named(ROOT) == []


def test_a_planted_strategy_name_is_found(tmp_path):
    """The check finds a name in a comparison (it cannot pass by reading nothing), and not in a table it allows."""
    (tmp_path / "sccl" / "report").mkdir(parents=True)
    (tmp_path / "sccl" / "report" / "leak.py").write_text('def is_naive(row):\n    return row["strategy"] == "naive"\n')
    (tmp_path / "sccl" / "cli").mkdir()
    (tmp_path / "sccl" / "cli" / "tune_plan.py").write_text('PLANS = {"quick": ["ewc", "latent_replay+ewc"]}\n')
    assert strategies_named(tmp_path) == ["sccl/report/leak.py:2 'naive'"]


def _layout_map():
    spec = importlib.util.spec_from_file_location("layout_map", ROOT / "tools" / "layout_map.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_architecture_map_is_the_codes():
    """docs/ARCHITECTURE.md's layer diagram and module map equal what tools/layout_map.py makes of the code now:
    every module is in it, with its docstring's first sentence, in the contract's layers."""
    layout = _layout_map()
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    assert layout.replace_block(text, layout.render()) == text, "run python tools/layout_map.py"
    for name, path in modules():  # (what render makes of every module: its row)
        if path.name != "__init__.py":
            assert f"| `{path.relative_to(PACKAGE).as_posix().split('/', 1)[1]}` |" in text, name


def test_the_layer_diagram_follows_the_contract():
    layout = _layout_map()
    assert layout.layers()[0] == ["sccl.cli"] and layout.layers()[-1] == ["sccl.core"]
    named = {p for layer in layout.layers() for p in layer}
    assert named == {f"sccl.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}


def test_every_module_path_the_docs_name_exists():
    """A path such as `sccl/cl/engine.py` in README.md or docs/*.md names a file that is there."""
    missing = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        prose = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)  # (examples may name files to write)
        for path in re.findall(r"(?<![\w./-])(sccl/[\w/]+\.(?:py|json))", prose):
            if not (ROOT / path).is_file():
                missing.append(f"{doc.name}: {path}")
    assert missing == []

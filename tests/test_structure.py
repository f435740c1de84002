"""The package's shape: no import cycles (module-level or function-local), no function over 60 lines,
one table of runtimes."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "nin_export"
MAX_LINES = 60


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """Every nin_export module -> the nin_export modules it imports anywhere (functions included)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, is_pkg, node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                while t and t not in mods:  # nin_export.x.y where y is a name in module x
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
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
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_import_graph_sees_function_local_imports():
    g = import_graph()
    assert "nin_export.runners.torch_runner" in g["nin_export.runtimes"]  # imported inside a factory
    assert "nin_export.core.errors" in g["nin_export"]


def test_no_import_cycles():
    # A package's __init__ importing its own submodules is how packages work, not a cycle: compare the
    # graph without the edges from a submodule back to the package that contains it.
    g = import_graph()
    g = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in g.items()}
    assert _cycles(g) == []


# The floors of the package, lowest first: a module imports only from its own floor or below.
FLOORS = [
    ["nin_export", "nin_export.core"],
    ["nin_export.models"],
    ["nin_export.runners"],
    ["nin_export.export"],
    ["nin_export.quantize"],
    ["nin_export.trt"],
    ["nin_export.runtimes", "nin_export.evaluate", "nin_export.train"],
    ["nin_export.artifacts"],
    ["nin_export.bench"],
    ["nin_export.pipeline", "nin_export.doctor"],
    ["nin_export.cli"],
]


def _floor(module: str) -> int:
    """The floor of the longest FLOORS entry that is ``module`` or a package above it."""
    hits = [(len(p), i) for i, f in enumerate(FLOORS) for p in f if module == p or module.startswith(p + ".")]
    assert hits, f"{module} stands on no floor: add it to FLOORS"
    return max(hits)[1]


def test_no_arrow_back_up():
    g = import_graph()
    up = sorted(f"{m} -> {t}" for m, ts in g.items() for t in ts if _floor(t) > _floor(m))
    assert up == []


def test_no_function_over_60_lines():
    long = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_LINES:
                    long.append(f"{path.relative_to(PKG.parent)}:{node.lineno} {node.name} ({n} lines)")
    assert long == []


def test_one_table_of_runtimes(cli_run):
    """bench, eval and the pipeline know runtimes only through the table: no runtime name is spelled out
    there, and the CLI's help lists the table's rows."""
    from nin_export.runtimes import RUNTIMES, get_runtime

    for names in ([r.name for r in RUNTIMES], [r.alias for r in RUNTIMES]):
        assert len(set(names)) == len(names)
    for mod in ("bench/run.py", "evaluate.py", "pipeline.py", "bench/worker.py"):
        text = (PKG / mod).read_text()
        for r in RUNTIMES:
            assert f'"{r.name}"' not in text and f'"{r.alias}"' not in text, (mod, r.name)
    for r in RUNTIMES:
        assert get_runtime(r.alias) is r and r.precisions and r.device in ("cpu", "cuda", "auto")
        assert r.unavailable() is None or isinstance(r.unavailable(), str)
    for cmd in ("bench", "eval"):
        out = " ".join(cli_run(cmd, "--help")[1].split())
        assert all(f"{r.alias} ({r.description})" in out for r in RUNTIMES), out


def test_runtimes_in_the_results_schema():
    import json

    from nin_export.runtimes import RUNTIMES

    schema = json.loads((PKG / "schemas" / "bench-result.schema.json").read_text())
    assert set(schema["properties"]["rows"]["items"]["properties"]["backend"]["enum"]) == {r.name for r in RUNTIMES}


@pytest.mark.parametrize("rel", ["quantize/ptq.py", "core/envinfo.py"])
def test_docstrings_name_only_files_of_the_project(rel):
    text = (PKG / rel).read_text()
    assert "DESIGN.md" not in text and "STYLE.md" not in text


def test_cli_start_up_imports_no_torch():
    """Every command, --help included, starts without torch: defaults come from nin_export.defaults."""
    import subprocess
    import sys

    code = "import sys, nin_export.cli; print(sorted({'torch', 'onnxruntime', 'onnxsim', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_one_table_of_precisions():
    """Every precision has its row, every converter the table names exists, the schema knows every precision,
    and the CLI's precision flags are the table's."""
    import json

    from nin_export.core.enums import Precision
    from nin_export.core.precision import PRECISIONS
    from nin_export.quantize.ptq import CONVERTERS

    assert list(PRECISIONS) == list(Precision)
    assert {i.converter for i in PRECISIONS.values()} - {None} == set(CONVERTERS)
    assert len({i.marker for i in PRECISIONS.values()}) == len(PRECISIONS) == len({i.flag for i in PRECISIONS.values()})
    schema = json.loads((PKG / "schemas" / "bench-result.schema.json").read_text())
    assert set(schema["properties"]["rows"]["items"]["properties"]["precision"]["enum"]) == {p.value for p in Precision}
    from nin_export.cli.trt import PRECISION

    assert set(PRECISION.names) == {i.flag.lstrip("-") for i in PRECISIONS.values()}

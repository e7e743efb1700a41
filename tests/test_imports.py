"""Imports at the top, TensorFlow out of the processes that must not load it (issue 20 item 4).

Each check runs in a fresh interpreter, so that sys.modules holds only what the import under test
loaded. Function-level imports remain only where they keep TensorFlow (or Playwright, sympy)
out of such a process, each with a `# reason` comment on its line (see the README's layout)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "optimus"

# The modules that import TensorFlow at the top: every other module must import without it.
TENSORFLOW_MODULES = {
    "optimus.bench.train", "optimus.continual.fisher", "optimus.continual.step", "optimus.nets.gln",
    "optimus.nets.layers", "optimus.nets.networks", "optimus.primes.trial_division",
    "optimus.training.callbacks", "optimus.training.gan", "optimus.training.loop",
    "optimus.training.online_batch",
}
# What the Streamlit pages import at the top (optimus/app/pages/*.py), beside optimus.app.common.
PAGE_LIBRARIES = ["optimus.app.common", "optimus.evaluation.report", "optimus.sampling.anysize",
                  "optimus.sampling.sieve", "optimus.nets.forward", "optimus.app.charts",
                  "optimus.experiments.background", "optimus.store.runs"]
# Issue 20 item 4 is done everywhere else; these are being edited in another change (remove them
# from here as they get their reasons or lose their function-level imports).
REPORT = "import sys; print('LOADED', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> list[str]:
    # Pages are Streamlit scripts (they run, and stop, on import): AppTest covers them.
    return sorted(_module_name(p) for p in PACKAGE.rglob("*.py")
                  if p.name != "__main__.py" and "pages" not in p.parts)


def _python(code: str, *args: str, cwd=REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def _loaded(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 0, result.stderr[-2000:]
    line = [x for x in result.stdout.splitlines() if x.startswith("LOADED ")][-1]
    return ast.literal_eval(line.removeprefix("LOADED "))


def _page_imports() -> set[str]:
    """The optimus modules the pages (optimus/app/pages/*.py) import at the top."""
    modules, found = set(_modules()), set()
    for page in (PACKAGE / "app" / "pages").glob("*.py"):
        for node in ast.parse(page.read_text()).body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("optimus"):
                found.update(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                             else node.module for a in node.names)
    return found


def test_page_libraries_do_not_load_tensorflow():
    """The Streamlit server imports these for its pages; none may bring TensorFlow into it (one
    process for all: imports only add to sys.modules, so none of them loads it alone either)."""
    libraries = sorted(set(PAGE_LIBRARIES) | _page_imports())
    assert "optimus.evaluation.report" in libraries and "optimus.app.common" in libraries
    assert _loaded(_python(f"import {', '.join(libraries)}; {REPORT}")) == []


def test_modules_outside_the_tensorflow_list_do_not_load_it():
    modules = [m for m in _modules() if m not in TENSORFLOW_MODULES]
    assert _loaded(_python(f"import {', '.join(modules)}; {REPORT}")) == []


@pytest.mark.slow
def test_every_module_imports_alone():
    """`import optimus.<module>` in a fresh process, for every module: an import cycle fails
    here for whichever module enters it first. Outside TENSORFLOW_MODULES none loads TensorFlow."""

    def check(module):
        return module, _python(f"import {module}; {REPORT}")

    with ThreadPoolExecutor(2) as pool:
        for module, result in pool.map(check, _modules()):
            loaded = _loaded(result)  # fails on an import error, a cycle's included
            if module not in TENSORFLOW_MODULES:
                assert loaded == [], module


def test_module_level_imports_form_no_cycle():
    """The graph of top-level imports between optimus modules is acyclic (a function-level import
    can no longer hide a cycle: there are only the few, commented ones left)."""
    modules = set(_modules())
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        edges = graph.setdefault(name, set())
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("optimus"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    edges.add(sub if sub in modules else node.module)
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert state.get(nxt) != 1, " -> ".join([*stack, node, nxt])
            if nxt not in state:
                visit(nxt, [*stack, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


@pytest.mark.parametrize("args", [["density", "--lo", "1", "--hi", "1000", "--bins", "2"],
                                  ["sample", "--model-dir", "models/default", "-n", "3"]],
                         ids=["density", "sample"])
def test_cli_commands_without_tensorflow(args):
    """The CLI imports optimus.bench at the top: its sections must keep TensorFlow out, so that
    `density` and `sample` run on NumPy alone."""
    code = ("import runpy, sys\nsys.argv = ['optimus', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('optimus', run_name='__main__')\n"
            f"except SystemExit as stop:\n    assert not stop.code, stop.code\n{REPORT}")
    assert _loaded(_python(code, *args)) == []


def test_function_level_imports_say_why():
    """Every import left inside a function carries a one-line `# reason` comment."""
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        for fn in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if not isinstance(node, (ast.Import, ast.ImportFrom)):
                        continue
                    if "#" not in "\n".join(lines[node.lineno - 1:node.end_lineno]):
                        missing.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert missing == []

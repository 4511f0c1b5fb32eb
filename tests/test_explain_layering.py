"""explain/ reads bottom-up: each module imports only modules below it, at module level.

Import cycles hidden behind imports inside functions came back more than once; these tests
make a new one fail at once.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import glassgrad.explain

EXPLAIN = Path(glassgrad.explain.__file__).parent
# Bottom-up: a module may import only the modules before it.
ORDER = [
    "fmt", "records", "checks", "doc", "render_text", "render_markdown", "render_html",
    "render_latex", "export", "picture", "rendering", "trace", "net_trace", "expr",
]

# In a fresh interpreter: put an empty ``glassgrad.explain`` package in place (so that its
# __init__, which imports everything, does not run), import one module, and print which
# modules of the package that loaded.
_PROBE = """
import importlib, importlib.util, json, sys, types
import glassgrad
assert "glassgrad.explain" not in sys.modules, "import glassgrad loads explain eagerly"
spec = importlib.util.find_spec("glassgrad.explain")
pkg = types.ModuleType("glassgrad.explain")
pkg.__path__ = list(spec.submodule_search_locations)
sys.modules["glassgrad.explain"] = pkg
importlib.import_module("glassgrad.explain." + sys.argv[1])
print(json.dumps(sorted(m.rsplit(".", 1)[1] for m in sys.modules
                        if m.startswith("glassgrad.explain."))))
"""


def test_order_lists_every_module() -> None:
    files = {p.stem for p in EXPLAIN.glob("*.py")} - {"__init__"}
    assert set(ORDER) == files, "place a new module of explain/ in ORDER (bottom-up)"


@pytest.mark.parametrize("name", ORDER)
def test_module_imports_alone_and_only_modules_below_it(name: str) -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE, name], capture_output=True,
                          text=True, timeout=120, env=_env())
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    below = set(ORDER[: ORDER.index(name) + 1])
    assert name in loaded
    assert loaded <= below, f"{name} imports modules above it: {sorted(loaded - below)}"


def _env() -> dict:
    import os

    # The interpreter must import this checkout's glassgrad, as the test process does.
    src = str(Path(glassgrad.__file__).parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def _function_level_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, module) of each glassgrad import inside a function or class body."""
    nested = {id(node) for scope in ast.walk(tree)
              if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
              for node in ast.walk(scope)}
    found = []
    for node in ast.walk(tree):
        if id(node) not in nested:
            continue
        if isinstance(node, ast.ImportFrom) and (
                node.level > 0 or (node.module or "").startswith("glassgrad")):
            found.append((node.lineno, "." * node.level + (node.module or "")))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names
                      if a.name.startswith("glassgrad")]
    return found


@pytest.mark.parametrize("path", sorted(EXPLAIN.glob("*.py")), ids=lambda p: p.name)
def test_no_function_level_import_of_glassgrad(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert _function_level_imports(tree) == []


@pytest.mark.parametrize("source, expected", [
    ("def f():\n    from .trace import replay\n", [(2, ".trace")]),
    ("class C:\n    def m(self):\n        import glassgrad.nn\n", [(3, "glassgrad.nn")]),
    ("def f():\n    from ..nn import Linear\n", [(2, "..nn")]),
    ("def f():\n    import rich\n", []),  # optional third-party packages load on use
    ("from .records import Check\n", []),
])
def test_the_import_finder_sees_what_it_should(source: str, expected: list) -> None:
    assert _function_level_imports(ast.parse(source)) == expected

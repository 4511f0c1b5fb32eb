"""Without an optional package, only the tests that need it skip, saying what to install.

The suite is run in a subprocess whose imports of every optional package fail (a meta path
finder loaded as a pytest plugin), as on a machine with the core alone: the test files still
import, the tests that do not need a package pass, and each skip names the package and its
extra. The main environment has every package, so nothing else would catch a new
module-level ``import torch``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Imports of these fail in the subprocess (graphviz is the Python package; rich as well,
# though glassgrad only looks for it, so that a test using it still could not slip through).
BLOCKED = ("torch", "safetensors", "tqdm", "matplotlib", "graphviz", "sklearn", "rich",
           "mpi4py", "starlette", "httpx")
EXTRA = {"torch==2.13.0": "test", "safetensors": "train", "tqdm": "train",
         "matplotlib": "plot", "graphviz": "plot", "scikit-learn": "digits", "rich": "pretty",
         "mpi4py": "distributed", "starlette": "playground", "httpx": "test"}
# Files that need one package in every test skip whole, each naming what to install.
WHOLE_FILE = {"tests/test_ops_torch.py": "torch==2.13.0",  # the oracle's tables, at import
              "tests/test_torch_semantics.py": "torch==2.13.0",  # every test compares with it
              "tests/test_distributed_mpi.py": "mpi4py",  # every test launches mpiexec
              "tests/test_playground_browser.py": "starlette",  # a server in every test
              "tests/test_playground_server.py": "starlette"}
BLOCKER = f"""
import importlib.abc
import sys

BLOCKED = {BLOCKED!r}


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""
_REASON = re.compile(r'needs (\S+), which is not installed: pip install "glassgrad\[(\w+)\]"')


def run_blocked(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "block_optional.py").write_text(BLOCKER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT / "src")]))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "block_optional", "-p", "no:cacheprovider",
         "-q", "-rs", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def check_reason(reason: str) -> str:
    """The package a skip reason names, after checking it names that package's extra
    ("dot" for Graphviz's program, which no pip package brings)."""
    if reason.startswith("Graphviz's dot program is not installed"):
        return "dot"
    m = _REASON.search(reason)
    assert m and EXTRA.get(m[1]) == m[2], f"skip reason without package and extra: {reason!r}"
    return m[1]


def test_every_test_file_imports_without_the_optional_packages(tmp_path):
    done = run_blocked(tmp_path, "--collect-only")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    module_skips = re.findall(r"^SKIPPED \[\d+\] (\S+?):\d+: (.*)$", done.stdout, re.MULTILINE)
    assert {f for f, _ in module_skips} <= set(WHOLE_FILE), done.stdout[-3000:]
    assert "tests/test_ops_torch.py" in {f for f, _ in module_skips}
    for f, reason in module_skips:
        assert check_reason(reason) == WHOLE_FILE[f], (f, reason)


def test_only_the_tests_that_need_a_missing_package_skip(tmp_path):
    doc = tmp_path / "doc_needs_torch.py"  # a docstring example that needs torch
    doc.write_text('def f():\n    """\n    >>> import torch\n    >>> 1 + 1\n    2\n    """\n')
    files = ["test_nn_module.py", "test_optim_schedulers.py", "test_serialization.py",
             "test_diagnose_plots.py", "test_fit.py", "test_explain_cli.py"]
    done = run_blocked(tmp_path, *(f"tests/{f}" for f in files), str(doc),
                       f"--junitxml={tmp_path / 'report.xml'}")
    assert done.returncode == 0, done.stdout[-3000:]
    outcome: dict[str, str] = {}
    for case in ET.parse(tmp_path / "report.xml").iter("testcase"):
        skipped = case.find("skipped")
        name = f"{case.get('classname')}.{case.get('name')}"
        outcome[name] = "passed" if skipped is None else check_reason(skipped.get("message") or "")

    def of(name: str) -> str:
        [key] = [k for k in outcome if k.endswith(name)]
        return outcome[key]

    assert of("test_nn_module.test_parameters_are_found_by_walking_attributes_in_definition_"
              "order") == "passed"
    assert of("test_state_dict_matches_torch_sequential_keys_and_shapes") == "torch==2.13.0"
    assert of("test_scheduler_errors") == "passed"  # it builds torch optimizers only if asked
    assert of("test_clip_grad_value_matches_torch") == "torch==2.13.0"
    assert of("test_round_trip_is_exact_and_keeps_order") == "safetensors"
    assert of("test_conclusions_come_from_the_numbers") == "passed"
    assert of("test_save_all_writes_every_plot") == "matplotlib"
    assert of("test_cli_diagnose_bad_input") == "safetensors"  # after its first asserts
    assert of("test_terminal_gets_a_tqdm_bar_not_lines") == "tqdm"
    # needs_dot: the Python package as well as the program
    assert of("test_output_png") == ("graphviz" if shutil.which("dot") else "dot")
    assert of("doc_needs_torch.f") == "torch==2.13.0"
    assert list(outcome.values()).count("passed") > 60

"""Shared test settings and the op-table cases used by several test files.

The cases are generated from the table itself (``gg.OPS``): an op's ``kind`` chooses the
shapes ("elementwise": scalars, vectors, matrices, broadcasting pairs; "reduction": every
``axis`` x ``keepdims``; "custom": the op's own ``cases``) and its ``domain`` where values
are drawn. A test asks for them by argument name (pytest runs with ``--import-mode=importlib``,
so test files cannot import each other): ``op_case`` -> (name, shapes, attrs) over every op,
``composite_case`` -> (name, shapes, kwargs) over ``COMPOSITES``; the fixture ``cases`` gives
the tables and the samplers.
"""

from __future__ import annotations

import importlib
import re
import types
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import glassgrad as gg
from glassgrad.ops import Op

# CI must be reproducible: the same examples on every run, and no per-example deadline
# (the 2-core CI machine is shared, so timing-based failures would be noise).
settings.register_profile(
    "glassgrad", derandomize=True, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("glassgrad")

@pytest.fixture
def c_step_cache(tmp_path_factory, monkeypatch):
    """For the C back end's tests: compiled steps go to a cache folder of this test session
    (not the user's), and a fallback to the NumPy replay is an error."""
    from glassgrad.compiler.native_program import JitFallbackWarning  # noqa: PLC0415

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", JitFallbackWarning)
        yield


# Same shapes, then broadcasting combinations (one per row), for 1, 2 and 3 inputs.
ELEMENTWISE_SHAPES: dict[int, list[tuple[tuple[int, ...], ...]]] = {
    1: [((),), ((4,),), ((3, 4),), ((2, 3, 4),)],
    2: [((), ()), ((4,), (4,)), ((3, 4), (3, 4)), ((3, 1), (1, 4)), ((4,), (2, 3, 4)),
        ((), (2, 3)), ((2, 3), ()), ((2, 1, 4), (3, 1))],
    3: [((), (), ()), ((4,), (4,), (4,)), ((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), ()),
        ((4,), (2, 3, 4), (3, 1)), ((), (2, 3), (2, 3)), ((2, 3), (3,), (1, 1))],
}
# (shape, axis): every axis form (None, each int, negative ints, tuples) on a 3-d input,
# fewer on smaller ones; each is run with keepdims True and False.
REDUCTION_AXES: list[tuple[tuple[int, ...], Any]] = (
    [((), None), ((5,), None), ((5,), 0), ((5,), -1)]
    + [((3, 4), a) for a in (None, 0, 1, -1, -2, (0, 1))]
    + [((2, 3, 4), a) for a in (None, 0, 1, 2, -1, -2, -3, (0, 1), (0, 2), (1, 2), (-1, 0),
                                (0, 1, 2))]
    # A short last axis over many rows: the rows-in-SIMD-lanes path of logsumexp.
    + [((70, 3), -1), ((2, 40, 3), -1)]
)


def arity(op: Op) -> int | None:
    """Number of inputs (None for a variadic op)."""
    return None if op.rules is None else len(op.rules)


def op_cases(op: Op) -> list[tuple[tuple[tuple[int, ...], ...], dict[str, Any]]]:
    """(input shapes, attributes) pairs for ``op``, chosen by its kind."""
    if op.kind == "elementwise":
        return [(shapes, {}) for shapes in ELEMENTWISE_SHAPES[arity(op)]]
    if op.kind == "reduction":
        return [((shape,), {"axis": axis, "keepdims": keep})
                for shape, axis in REDUCTION_AXES for keep in (False, True)]
    return [(tuple(shapes), dict(attrs)) for shapes, attrs in op.cases]


def sample(op: Op, shapes: tuple, rng: np.random.Generator, dtype: Any = np.float64) -> list:
    """Inputs for ``op``: a Tensor drawn uniformly in ``op.domain`` for each differentiable
    input; class labels 0..C-1 (C: the first input's last dimension) for ``op.class_inputs``;
    a boolean mask for another input without a rule (the condition of ``where``)."""
    lo, hi = op.domain
    inputs: list[Any] = []
    for i, shape in enumerate(shapes):
        if i in op.class_inputs:
            inputs.append(rng.integers(0, shapes[0][-1], shape))
        elif op.rules is not None and op.rules[i] is None:
            inputs.append(rng.random(shape) > 0.5)
        else:
            data = np.asarray(rng.uniform(lo, hi, shape), dtype=dtype)
            inputs.append(gg.tensor(data, requires_grad=True))
    return inputs


def sample_composite(shapes: tuple, rng: np.random.Generator, dtype: Any = np.float64) -> list:
    # |x| >= 0.2 so that leaky_relu's kink is never within a finite-difference step.
    return [gg.tensor(np.asarray(rng.uniform(0.2, 2.0, s) * rng.choice([-1, 1], s), dtype),
                      requires_grad=True) for s in shapes]


_REDUCE_3D = [dict(axis=a, keepdims=k) for a in (None, 0, -1, (0, 2)) for k in (False, True)]

# Composites (no backward code of their own): name -> (function on glassgrad tensors,
# [(input shapes, keyword arguments), ...]).
COMPOSITES: dict[str, tuple[Any, list[tuple[tuple, dict]]]] = {
    "mean": (gg.mean, [(((2, 3, 4),), kw) for kw in _REDUCE_3D] + [(((),), {})]),
    "var": (gg.var, [(((2, 3, 4),), kw) for kw in _REDUCE_3D]
            + [(((3, 4),), dict(axis=0, correction=0)), (((5,),), dict(correction=0))]),
    "std": (gg.std, [(((2, 3, 4),), kw) for kw in _REDUCE_3D]
            + [(((3, 4),), dict(axis=1, correction=0))]),
    "softmax": (gg.softmax, [(((5,),), {}), (((3, 4),), dict(axis=0)),
                             (((2, 3, 4),), dict(axis=1)), (((2, 3, 4),), dict(axis=-1))]),
    "leaky_relu": (gg.leaky_relu, [(((3, 4),), {}), (((5,),), dict(negative_slope=0.2))]),
    "stack": (lambda *xs, axis=0: gg.stack(list(xs), axis=axis),
              [(((2, 3),) * 3, dict(axis=0)), (((2, 3),) * 2, dict(axis=1)),
               (((4,),) * 3, dict(axis=-1))]),
    "expand_dims": (gg.expand_dims, [(((3, 4),), dict(axis=a)) for a in (0, 1, -1)]),
    "squeeze": (gg.squeeze, [(((1, 3, 1),), kw) for kw in ({}, dict(axis=0), dict(axis=(0, 2)))]),
    "swapaxes": (lambda x, axis1, axis2: gg.swapaxes(x, axis1, axis2),
                 [(((2, 3, 4),), dict(axis1=0, axis2=2)), (((2, 3, 4),), dict(axis1=-1, axis2=0))]),
    "linear_no_bias": (lambda x, weight: gg.linear(x, weight),
                       [(((4, 3), (5, 3)), {}), (((3,), (2, 3)), {}), (((2, 4, 3), (5, 3)), {})]),
    "square": (gg.square, [(((3, 4),), {})]),
    "flatten": (gg.flatten, [(((2, 3, 4),), {})]),
}


def _case_id(name: str, shapes: tuple, attrs: dict) -> str:
    a = ",".join(f"{k}={'array' if isinstance(v, np.ndarray) else repr(v)}"
                 for k, v in attrs.items())
    return f"{name}-{'&'.join(str(s) for s in shapes)}{'-' + a if a else ''}"


def _params(table: list[tuple[str, tuple, dict]]) -> list[Any]:
    return [pytest.param(c, id=_case_id(*c)) for c in table]


OP_CASES = [(name, shapes, attrs) for name, op in gg.OPS.items()
            for shapes, attrs in op_cases(op)]
COMPOSITE_CASES = [(name, shapes, kw) for name, (_, cs) in COMPOSITES.items()
                   for shapes, kw in cs]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "op_case" in metafunc.fixturenames:
        metafunc.parametrize("op_case", _params(OP_CASES))
    if "composite_case" in metafunc.fixturenames:
        metafunc.parametrize("composite_case", _params(COMPOSITE_CASES))


@pytest.fixture(scope="session")
def cases() -> types.SimpleNamespace:
    """The case tables and samplers, for tests that need more than one case at a time."""
    return types.SimpleNamespace(
        ELEMENTWISE_SHAPES=ELEMENTWISE_SHAPES, OP_CASES=OP_CASES, COMPOSITES=COMPOSITES,
        arity=arity, op_cases=op_cases, sample=sample, sample_composite=sample_composite,
    )


# --------------------------------------------------------------------------- Graphviz
# Rendering a graph picture needs Graphviz's `dot` program, a system package pip cannot
# install. CI installs it (.ci/run); elsewhere the tests marked needs_dot say why they skip.
def pytest_configure(config):
    config.addinivalue_line("markers", "needs_dot: needs Graphviz's dot program on PATH")


def pytest_collection_modifyitems(config, items):
    import shutil

    # This hook sees every collected item, the doctests of src/glassgrad and README.md too.
    _skip_doctests_of_missing_packages(items)
    # Rendering also needs the graphviz Python package (extra "plot"), which drives `dot`.
    if not shutil.which("dot"):
        reason = "Graphviz's dot program is not installed: apt-get install graphviz (CI does)"
    elif not _installed("graphviz"):
        reason = missing_reason("graphviz")
    else:
        return
    for item in items:
        if "needs_dot" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


# --------------------------------------------------------------------------- golden files
# Golden files hold text with numbers in it. The last bits of a float differ between CPUs
# (OpenBLAS picks another kernel, AVX-512 sums in another order): 1.4112000000000002 on one
# machine is 1.4111999999999996 on the next. So a golden file is compared in two parts:
# the text with every number taken out must match exactly (whitespace runs folded, since a
# number one character wider shifts a column), and the numbers must match numerically: an
# integer exactly, any other number to within one unit in the last digit the golden file
# printed it with, or GOLDEN_RTOL relative. JSON is
# parsed and compared value by value. Regenerate with GLASSGRAD_REGEN_GOLDEN=1 and review.
GOLDEN_DIR = __import__("pathlib").Path(__file__).parent / "golden"
GOLDEN_RTOL = 1e-9
_NUMBER = __import__("re").compile(
    r"(?<![\w.])[-−]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])"
)


def _printed_ulp(token: str) -> float:
    """One unit in the last printed digit of ``token`` ("0.4087" -> 1e-4, "2.5e-05" -> 1e-6)."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def _as_float(token: str) -> float:
    return float(token.replace("−", "-"))


def _is_integer(token: str) -> bool:
    return not any(c in token for c in ".eE")


def _numbers_close(actual: str, expected: str) -> bool:
    a, e = _as_float(actual), _as_float(expected)
    if a == e:
        return True
    if _is_integer(actual) and _is_integer(expected):  # indices, counts, sizes: exact
        return False
    # One unit in the golden file's last printed digit (a rounding flip), or a relative
    # difference in the last bits (a number printed in full, like repr's 17 digits).
    return abs(a - e) <= _printed_ulp(expected) * 1.000001 or abs(a - e) <= GOLDEN_RTOL * abs(e)


def assert_text_close(actual: str, expected: str, what: str = "text") -> None:
    """Assert two texts are equal but for float rounding in their numbers (see above)."""
    a_lines, e_lines = actual.splitlines(), expected.splitlines()
    assert len(a_lines) == len(e_lines), (
        f"{what}: {len(a_lines)} lines, expected {len(e_lines)}\n--- actual\n{actual}")
    for n, (a, e) in enumerate(zip(a_lines, e_lines), 1):
        a_nums, e_nums = _NUMBER.findall(a), _NUMBER.findall(e)
        a_rest = " ".join(_NUMBER.sub("#", a).split())
        e_rest = " ".join(_NUMBER.sub("#", e).split())
        ok = a_rest == e_rest and len(a_nums) == len(e_nums) and all(
            _numbers_close(x, y) for x, y in zip(a_nums, e_nums))
        assert ok, f"{what}, line {n} differs:\n  actual:   {a!r}\n  expected: {e!r}"


def assert_json_close(actual: Any, expected: Any, where: str = "$") -> None:
    """Assert two parsed JSON values are equal, floats to GOLDEN_RTOL (strings as text)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), (
            f"{where}: keys {sorted(actual) if isinstance(actual, dict) else actual!r}, "
            f"expected {sorted(expected)}")
        for k in expected:
            assert_json_close(actual[k], expected[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (
            f"{where}: {actual!r}, expected a list of {len(expected)}")
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_json_close(a, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert isinstance(actual, int | float) and not isinstance(actual, bool) and (
            actual == expected or abs(actual - expected) <= GOLDEN_RTOL * abs(expected)
        ), f"{where}: {actual!r}, expected {expected!r}"
    elif isinstance(expected, str):
        assert isinstance(actual, str), f"{where}: {actual!r}, expected a string"
        assert_text_close(actual, expected, where)
    else:
        assert actual == expected, f"{where}: {actual!r}, expected {expected!r}"


@pytest.fixture
def golden():
    """``golden(relative_path, text)``: compare ``text`` with ``tests/golden/<relative_path>``
    (numbers numerically, see above); with GLASSGRAD_REGEN_GOLDEN=1, rewrite the file."""
    import json
    import os

    def check(name: str, text: str) -> None:
        path = GOLDEN_DIR / name
        if os.environ.get("GLASSGRAD_REGEN_GOLDEN") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        assert path.exists(), f"missing {path}; create it with GLASSGRAD_REGEN_GOLDEN=1"
        expected = path.read_text(encoding="utf-8")
        if name.endswith(".json"):
            assert_json_close(json.loads(text), json.loads(expected))
        else:
            assert_text_close(text, expected, name)

    return check


@pytest.fixture
def text_close():
    """``text_close(actual, expected)``: the golden files' comparison, for other texts."""
    return assert_text_close


@pytest.fixture
def json_close():
    """``json_close(actual, expected)``: the golden files' comparison of parsed JSON."""
    return assert_json_close


# --------------------------------------------------------------------------- optional packages
# The core needs NumPy only; each optional package comes with an extra of pyproject.toml.
# A test that needs one asks for it by fixture (``def test_x(torch):``, or
# ``@pytest.mark.usefixtures("sklearn")`` when it only needs it installed), so that without
# the package only that test skips, saying what to install; the rest of its file still runs.
# import name -> (pip name, the extra that brings it)
OPTIONAL: dict[str, tuple[str, str]] = {
    "torch": ("torch==2.13.0", "test"),  # the oracle of the gradient tests, not a dependency
    "safetensors": ("safetensors", "train"),
    "tqdm": ("tqdm", "train"),
    "matplotlib": ("matplotlib", "plot"),
    "graphviz": ("graphviz", "plot"),
    "sklearn": ("scikit-learn", "digits"),
    "rich": ("rich", "pretty"),
    "mpi4py": ("mpi4py", "distributed"),
    "starlette": ("starlette", "playground"),
    "httpx": ("httpx", "test"),
    "numba": ("numba", "jit"),
    "scipy": ("scipy", "jit"),
}


def missing_reason(module: str) -> str:
    """The skip reason for a test that needs ``module``: the package and how to install it."""
    pip_name, extra = OPTIONAL[module.partition(".")[0]]
    return f"needs {pip_name}, which is not installed: pip install \"glassgrad[{extra}]\""


def _installed(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def import_optional(module: str) -> types.ModuleType:
    """``module`` imported, or the calling test skipped with ``missing_reason(module)``."""
    return pytest.importorskip(module, reason=missing_reason(module))


@pytest.fixture(scope="session")
def optional():
    """``optional("safetensors")``: for a test that needs a package only past its first
    asserts; it imports the package or skips the test from there on."""
    return import_optional


@pytest.fixture
def nb(optional):
    """``gg.compile``'s numba back end module (skips the test without numba), with its
    fallback warnings made errors: a test that means a numba replay gets one."""
    optional("numba")
    from glassgrad.compiler import numba_backend

    with warnings.catch_warnings():
        warnings.simplefilter("error", numba_backend.JitFallbackWarning)
        yield numba_backend


@pytest.fixture(scope="session")
def torch() -> types.ModuleType:
    return import_optional("torch")


@pytest.fixture(scope="session")
def safetensors() -> types.ModuleType:
    return import_optional("safetensors")


@pytest.fixture(scope="session")
def safetensors_torch(torch, safetensors) -> types.ModuleType:
    return import_optional("safetensors.torch")


@pytest.fixture(scope="session")
def tqdm() -> types.ModuleType:
    return import_optional("tqdm")


@pytest.fixture(scope="session")
def matplotlib() -> types.ModuleType:
    return import_optional("matplotlib")


@pytest.fixture(scope="session")
def sklearn() -> types.ModuleType:
    return import_optional("sklearn")


@pytest.fixture(scope="session")
def rich() -> types.ModuleType:
    return import_optional("rich")


# A docstring example (src/glassgrad, README.md) that needs an optional package says so by
# importing it (``>>> import matplotlib``): without the package, that doctest skips.
_IMPORT = re.compile(r"^\s*(?:import|from)\s+(\w+)", re.MULTILINE)


def _skip_doctests_of_missing_packages(items: list[pytest.Item]) -> None:
    for item in items:
        examples = getattr(getattr(item, "dtest", None), "examples", ())
        needed = {m for ex in examples for m in _IMPORT.findall(ex.source) if m in OPTIONAL}
        for module in sorted(needed):
            if not _installed(module):
                item.add_marker(pytest.mark.skip(reason=missing_reason(module)))
                break


@pytest.fixture
def built_extension():
    """``glassgrad._backward``, the C extension, set up (even where ``GLASSGRAD_NATIVE=0``
    keeps the library from using it). Where it was not built the test is skipped, and fails
    where ``GLASSGRAD_REQUIRE_NATIVE`` is set (CI, which builds it)."""
    import os

    from glassgrad import autograd
    from glassgrad.tensor import Tensor

    try:
        from glassgrad import _backward
    except ImportError:
        if os.environ.get("GLASSGRAD_REQUIRE_NATIVE"):
            pytest.fail("glassgrad._backward is not built")
        pytest.skip("glassgrad._backward is not built (pip install compiles it; needs a C "
                    "compiler)")
    _backward.setup(Tensor, autograd.__dict__)
    return _backward

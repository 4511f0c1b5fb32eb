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

import types
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
            + [(((3, 4),), dict(axis=0, ddof=1)), (((5,),), dict(ddof=1))]),
    "std": (gg.std, [(((2, 3, 4),), kw) for kw in _REDUCE_3D]
            + [(((3, 4),), dict(axis=1, ddof=1))]),
    "softmax": (gg.softmax, [(((5,),), {}), (((3, 4),), dict(axis=0)),
                             (((2, 3, 4),), dict(axis=1)), (((2, 3, 4),), dict(axis=-1))]),
    "leaky_relu": (gg.leaky_relu, [(((3, 4),), {}), (((5,),), dict(negative_slope=0.2))]),
    "stack": (lambda *xs, axis=0: gg.stack(list(xs), axis=axis),
              [(((2, 3),) * 3, dict(axis=0)), (((2, 3),) * 2, dict(axis=1)),
               (((4,),) * 3, dict(axis=-1))]),
    "expand_dims": (gg.expand_dims, [(((3, 4),), dict(axis=a)) for a in (0, 1, -1)]),
    "squeeze": (gg.squeeze, [(((1, 3, 1),), kw) for kw in ({}, dict(axis=0), dict(axis=(0, 2)))]),
    "swapaxes": (gg.swapaxes, [(((2, 3, 4),), dict(axis1=0, axis2=2)),
                               (((2, 3, 4),), dict(axis1=-1, axis2=0))]),
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

    if shutil.which("dot"):
        return
    skip = pytest.mark.skip(reason="Graphviz's dot program is not installed: "
                                   "apt-get install graphviz (CI installs it)")
    for item in items:
        if "needs_dot" in item.keywords:
            item.add_marker(skip)

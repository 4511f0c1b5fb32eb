"""Every op of the table, checked against float64 central finite differences.

The cases come from the table itself (see conftest.py: ``op_case`` sweeps every op over the
shapes its ``kind`` calls for, with values drawn in its ``domain``), so adding one entry to
the table tests it here, against PyTorch and for dtypes. Hypothesis adds random broadcasting
shapes and random axes on top of the fixed sweep.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import glassgrad as gg

ELEMENTWISE = [n for n, op in gg.OPS.items() if op.kind == "elementwise"]
REDUCTIONS = [n for n, op in gg.OPS.items() if op.kind == "reduction"]


# ----------------------------------------------------------------------------- completeness
def _torch_oracle_names() -> set[str]:
    """Keys of ``TORCH_OPS`` in test_ops_torch.py, read from its source so that this check
    runs (and fails) even where torch is not installed."""
    tree = ast.parse(Path(__file__).with_name("test_ops_torch.py").read_text("utf-8"))
    for node in ast.walk(tree):
        if (isinstance(node, ast.AnnAssign | ast.Assign) and isinstance(node.value, ast.Dict)
                and "TORCH_OPS" in ast.unparse(node)):
            return {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
    raise AssertionError("test_ops_torch.py defines no TORCH_OPS dict")


@pytest.mark.parametrize("name", list(gg.OPS))
def test_op_entry_is_complete(name: str, cases) -> None:
    """An entry needs a formula (printed by the explainer), a test domain, shapes for its
    kind and a PyTorch oracle, or it is not tested like the others."""
    op = gg.OPS[name]
    assert op.name == name
    assert isinstance(op.formula, str) and len(op.formula.strip()) > 3, "missing formula"
    assert op.domain is not None, f"{name}: missing test domain"
    lo, hi = op.domain
    assert lo < hi, f"{name}: empty domain {op.domain}"
    assert op.kind in ("elementwise", "reduction", "custom"), f"{name}: unknown kind"
    if op.kind == "custom":
        assert op.cases, f"{name}: a custom op needs test cases"
    if op.kind == "elementwise":
        n = cases.arity(op)
        assert n in cases.ELEMENTWISE_SHAPES, f"{name}: no shapes for {n} inputs"
    for shapes, _ in cases.op_cases(op):
        if op.rules is not None:
            assert len(shapes) == len(op.rules), f"{name}: a case has the wrong input count"
    assert name in _torch_oracle_names(), f"{name}: no PyTorch oracle in test_ops_torch.py"
    # What the library's consumers read from the entry (see ARCHITECTURE.md, "How to add an op").
    live = [0] if op.variadic else [i for i, r in enumerate(op.rules) if r is not None]
    for i in live:
        assert op.derivative(i).strip() and op.derivative_latex(i).strip(), (
            f"{name}: input {i} has no derivative or LaTeX for explain")
    assert op.reads is not None, f"{name}: no reads= (what the rules read, for the engine)"
    if op.rules is not None:
        assert all(r is None or op.reads[i] is not None for i, r in enumerate(op.rules)), (
            f"{name}: reads= leaves a rule undeclared")
    assert op.local_kind in ("elementwise", "matrix", "structural"), f"{name}: local_kind"
    assert (op.local_kind == "matrix") == (op.local_matrix is not None), (
        f"{name}: a matrix local derivative needs local_matrix, and only it")
    if op.activation_range is not None:
        assert op.layer_formula, f"{name}: an activation needs its layer_formula"
    assert not op.method or op.public, f"{name}: a Tensor method must also be public"


def test_every_op_is_generated(cases) -> None:
    assert {name for name, _, _ in cases.OP_CASES} == set(gg.OPS)
    assert len(cases.OP_CASES) > 150  # the sweep really is a sweep


# ----------------------------------------------------------------------------- gradcheck
def test_op_backward_matches_finite_differences(op_case: tuple, cases) -> None:
    name, shapes, attrs = op_case
    op = gg.OPS[name]
    inputs = cases.sample(op, shapes, np.random.default_rng(7))
    out = op(*inputs, **attrs)
    assert out.op == name and out.requires_grad
    assert gg.gradcheck(lambda *xs: op(*xs, **attrs), inputs)


@pytest.mark.parametrize("name", ELEMENTWISE)
@settings(max_examples=8)
@given(data=st.data())
def test_elementwise_random_broadcasts(name: str, cases, data: st.DataObject) -> None:
    op = gg.OPS[name]
    shapes = data.draw(hnp.mutually_broadcastable_shapes(
        num_shapes=cases.arity(op), min_dims=0, max_dims=3, max_side=3)).input_shapes
    seed = data.draw(st.integers(0, 2**31 - 1))
    inputs = cases.sample(op, shapes, np.random.default_rng(seed))
    out = op(*inputs)
    assert out.shape == np.broadcast_shapes(*shapes)
    assert gg.gradcheck(lambda *xs: op(*xs), inputs)


@st.composite
def _shape_and_axis(draw: st.DrawFn) -> tuple[tuple[int, ...], Any]:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4))
    n = len(shape)
    if n == 0:
        return shape, None
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return shape, None
    if kind == "int":
        return shape, draw(st.integers(-n, n - 1))
    axes = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    signs = draw(st.lists(st.booleans(), min_size=len(axes), max_size=len(axes)))
    return shape, tuple(a - n if s else a for a, s in zip(axes, signs))


@pytest.mark.parametrize("name", REDUCTIONS)
@settings(max_examples=10)
@given(case=_shape_and_axis(), keepdims=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_reduction_random_axes(name: str, cases, case: tuple, keepdims: bool, seed: int):
    op = gg.OPS[name]
    shape, axis = case
    inputs = cases.sample(op, (shape,), np.random.default_rng(seed))
    out = op(*inputs, axis=axis, keepdims=keepdims)
    assert out.shape == np.sum(np.ones(shape), axis=axis, keepdims=keepdims).shape
    assert gg.gradcheck(lambda x: op(x, axis=axis, keepdims=keepdims), inputs)


# The public spellings of each reduction: PyTorch's (dim=, keepdim=; max and min with dims
# are amax and amin), NumPy's aliases (axis=, keepdims=) and the method, positionally.
PUBLIC = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin", "logsumexp": "logsumexp"}


def test_every_reduction_has_a_public_spelling() -> None:
    assert set(PUBLIC) == set(REDUCTIONS)


@pytest.mark.parametrize("name", REDUCTIONS)
@settings(max_examples=10)
@given(case=_shape_and_axis(), keepdims=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_reduction_spellings_are_the_op(name: str, cases, case: tuple, keepdims: bool,
                                        seed: int) -> None:
    op, fn = gg.OPS[name], PUBLIC[name]
    shape, axis = case
    (x,) = cases.sample(op, (shape,), np.random.default_rng(seed))
    want = op(x, axis=axis, keepdims=keepdims)
    for got in (getattr(gg, fn)(x, dim=axis, keepdim=keepdims),
                getattr(gg, fn)(x, axis=axis, keepdims=keepdims),
                getattr(x, fn)(axis, keepdims)):
        assert got.op == name and got.shape == want.shape
        np.testing.assert_array_equal(got.numpy(), want.numpy())


# ----------------------------------------------------------------------------- composites
def test_composite_backward_matches_finite_differences(composite_case: tuple, cases) -> None:
    name, shapes, kw = composite_case
    fn = cases.COMPOSITES[name][0]
    inputs = cases.sample_composite(shapes, np.random.default_rng(3))
    out = fn(*inputs, **kw)
    assert out.op in gg.OPS  # a composite is made of primitives: no backward code of its own
    assert gg.gradcheck(lambda *xs: fn(*xs, **kw), inputs)


# ----------------------------------------------------------------------------- kinks, by hand
# Random samples never land on a kink, so the rule there is pinned down by hand (as PyTorch).
@pytest.mark.parametrize(("fn", "expected"), [
    (lambda x: x.max(), [[0, 0.5, 0.5, 0], [0, 0, 0, 0]]),
    (lambda x: x.min(), [[0, 0, 0, 0], [1 / 3, 1 / 3, 0, 1 / 3]]),
    (lambda x: x.amax(axis=1, keepdims=True), [[0, 0.5, 0.5, 0], [0, 0, 1, 0]]),
    (lambda x: x.abs(), [[1, 1, 1, 1], [-1, -1, 1, -1]]),
    (lambda x: gg.maximum(x, 3.0), [[0, 0.5, 0.5, 0], [0, 0, 0, 0]]),
    (lambda x: x.clip(-1.0, 2.0), [[1, 0, 0, 1], [1, 1, 1, 1]]),
], ids=["max-ties", "min-ties", "max-axis", "abs", "maximum-tie", "clip-edges"])
def test_gradient_at_ties_and_edges(fn, expected) -> None:
    x = gg.tensor(np.array([[1.0, 3.0, 3.0, 2.0], [-1.0, -1.0, 0.5, -1.0]]), requires_grad=True)
    fn(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), expected)


def test_relu_and_abs_at_zero_give_zero() -> None:
    x = gg.tensor([0.0, 0.0], requires_grad=True)
    (x.relu() + x.abs()).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])

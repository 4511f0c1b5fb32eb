"""The facts an op-table entry carries for the rest of the library, and that they are right.

- ``reads`` (which values a backward rule reads) against the rule's bytecode: the library
  answers from the declaration; the bytecode scan lives here, as the check.
- ``derivatives``/``latex``, ``local_kind``/``local_matrix``, ``infix``, ``layer_formula``:
  the same as what explain computes today, so its code can read the entries instead.
- ``activation_range``, ``kinks``, ``nan_causes``, ``compile_refusal``, ``error_hint``: the
  numbers and messages of their consumers (diagnose, anomaly mode, compile, op errors).
- The public surface (functional, Tensor methods, NumPy dispatch, ``__all__``) from the table.
"""

from __future__ import annotations

import dis
import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import functional as F
from glassgrad import methods, rule_reads
from glassgrad.autograd import hook
from glassgrad.diagnose.model_gradcheck import _KinkCounter
from glassgrad.ops import OPS, Op

_METADATA = frozenset({"shape", "ndim", "dtype", "size"})


# ----------------------------------------------------------------------------- reads
def scanned_reads(fn: Callable[..., Any]) -> frozenset[str] | None:
    """The parameter names a function's bytecode loads for their value: a load followed by
    ``.shape``/``.ndim``/``.dtype``/``.size`` does not count, a name handed to a helper
    does. None where bytecode cannot settle it (``*args``, a name an inner function
    captures)."""
    code = fn.__code__
    if code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS) or code.co_cellvars:
        return None
    instructions = list(dis.get_instructions(code))
    loaded: set[str] = set()
    for k, ins in enumerate(instructions):
        after = instructions[k + 1] if k + 1 < len(instructions) else None
        if ins.opname.startswith("LOAD_FAST") or ins.opname in ("LOAD_DEREF", "LOAD_CLOSURE"):
            names = ins.argval if isinstance(ins.argval, tuple) else (ins.argval,)
            if (len(names) == 1 and after is not None and after.opname == "LOAD_ATTR"
                    and after.argval in _METADATA):
                continue  # metadata only: no in-place write changes it
            if len(names) == 1 and _identity_only(instructions, k):
                continue  # id(x): a lookup key, which no in-place write changes either
            loaded.update(names)
    return frozenset(loaded)


def _identity_only(instructions: list[dis.Instruction], k: int) -> bool:
    """Whether the load at ``k`` is the one argument of a call of the builtin ``id``."""
    before = instructions[k - 1] if k else None
    after = instructions[k + 1] if k + 1 < len(instructions) else None
    return (before is not None and before.opname == "LOAD_GLOBAL" and before.argval == "id"
            and after is not None and after.opname in ("PRECALL", "CALL") and after.arg == 1)


def reads_problems(op: Op) -> list[str]:
    """What is wrong with ``op``'s ``reads`` against its rules' bytecode (empty: nothing)."""
    if op.reads is None:
        return [f"{op.name}: no reads= declaration"]
    problems = []
    for i, (rule, names) in enumerate(zip(op.rules, op.reads)):
        if rule is None:
            continue
        params = list(inspect.signature(rule).parameters)[: 2 + len(op.rules)]
        declared = {"grad", *(names or ())}
        if not declared <= set(params):
            problems.append(f"{op.name} rule {i}: declares {sorted(declared - set(params))}, "
                            f"which are not among its parameters {params}")
        scan = scanned_reads(rule)
        scan = set(params) if scan is None else scan & set(params)
        if scan - declared:
            problems.append(f"{op.name} rule {i}: reads {sorted(scan - declared)} by value "
                            f"but does not declare it")
        elif declared - scan:
            problems.append(f"{op.name} rule {i}: declares {sorted(declared - scan)}, which "
                            f"its bytecode does not read")
    return problems


FIXED_ARITY = [name for name, op in OPS.items() if not op.variadic]


@pytest.mark.parametrize("name", FIXED_ARITY)
def test_every_declaration_matches_the_rules_bytecode(name: str) -> None:
    assert reads_problems(OPS[name]) == []


def test_the_variadic_op_declares_only_grad() -> None:
    # concatenate's rule takes *xs, which bytecode cannot settle; it reads only their shapes.
    assert OPS["concatenate"].reads == ((),)
    src = inspect.getsource(OPS["concatenate"].backward)
    assert "x.shape" in src and "out.ndim" in src


def _read_x(grad, out, x):  # noqa: ANN001, ANN202
    return grad * x


def _via_helper(grad, out, x):  # noqa: ANN001, ANN202
    return _read_x(grad, out, x)


@pytest.mark.parametrize("rule, reads, problem", [
    (_read_x, ((),), "reads ['x'] by value but does not declare it"),
    (_via_helper, (("x",),), "reads ['out'] by value"),  # a helper may read what it is given
    (lambda grad, out, x: grad * x.shape[0], (("x",),), "declares ['x'], which its bytecode"),
    (lambda grad, out, x: grad, (("y",),), "not among its parameters"),
    (lambda grad, out, x: grad * out, ((),), "reads ['out']"),
])
def test_a_wrong_declaration_is_caught(rule: Callable, reads: tuple, problem: str) -> None:
    op = Op("probe", "∂probe", np.negative, rule)
    object.__setattr__(op, "reads", reads)  # (not through __init__: nothing is registered)
    assert any(problem in p for p in reads_problems(op)), reads_problems(op)


@pytest.mark.parametrize("name, i, positions", [
    ("mul", 0, {0, 3}),  # grad, b
    ("mul", 1, {0, 2}),  # grad, a
    ("div", 1, {0, 1, 3}),  # grad, out, b
    ("add", 0, {0}),
    ("tanh", 0, {0, 1}),
    ("relu", 0, {0, 1}),
    ("matmul", 0, {0, 3}),  # a only for a.ndim
    ("linear", 2, {0}),
    ("where", 1, {0, 2}),  # grad, cond
    ("mean", 0, {0}),  # x and out only for their sizes
])
def test_read_positions_answers_from_the_declaration(name: str, i: int, positions: set) -> None:
    op = OPS[name]
    n = 2 + len(op.rules)
    assert rule_reads.read_positions(op.rules[i], n, values_only=True) == positions


def test_read_positions_cannot_tell_without_a_declaration_or_values_only() -> None:
    undeclared = lambda grad, out, x: grad * x  # noqa: E731
    assert rule_reads.read_positions(undeclared, 3, values_only=True) is None
    assert rule_reads.read_positions(OPS["mul"].rules[0], 4) is None  # metadata not declared


def test_a_shared_rule_declared_two_ways_is_refused() -> None:
    rule = lambda grad, out, x: grad * x  # noqa: E731
    Op("probe_a", "∂probe", np.negative, rule, reads=("x",))
    with pytest.raises(ValueError, match="declared as reading"):
        Op("probe_b", "∂probe", np.negative, rule, reads=())
    assert rule_reads.read_positions(rule, 3, values_only=True) == {0, 2}  # unchanged


@pytest.mark.parametrize("reads", [((), ()), (("x",), ("x",), ())])
def test_reads_with_the_wrong_number_of_rules_is_refused(reads: tuple) -> None:
    with pytest.raises(ValueError, match="probe: reads declares .* rules, the op has 1"):
        Op("probe", "∂probe", np.negative, lambda grad, out, x: -grad, reads=reads)


def test_the_engine_refuses_a_write_to_a_declared_read_only() -> None:
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    x = gg.tensor([3.0, 4.0], requires_grad=True)
    (w + x).sum().backward()  # warm: nothing written
    harmless = (w + x).sum()  # add reads neither input
    harmful = (w * x).sum()  # mul's rule for x reads w
    with gg.no_grad():
        w -= 1.0
    harmless.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])
    with pytest.raises(gg.GraphError, match="input 0 of 'mul'"):
        harmful.backward()


# ----------------------------------------------------------------------------- explain's fields
def _live(op: Op) -> list[int]:
    return [0] if op.variadic else [i for i, r in enumerate(op.rules) if r is not None]


@pytest.mark.parametrize("name", list(OPS))
def test_derivatives_are_what_explain_shows_today(name: str) -> None:
    op = OPS[name]
    for i in range(len(op.rules) if op.rules else 2):
        assert op.derivative(i) == _split_formula(op, i)


def _split_formula(op: Op, position: int) -> str:
    # The formula splitting explain's trace did before it read op.derivative, kept as the
    # oracle: parts separated by ",  ", each maybe prefixed by "y = ...:  ".
    parts = [p.strip() for p in op.formula.split(",  ")]
    live = [i for i, r in enumerate(op.rules or ()) if r is not None]
    if len(parts) > 1 and len(parts) == len(live) and position in live:
        part = parts[live.index(position)]
        return part.split(":  ", 1)[1] if ":  " in part else part
    return op.formula


@pytest.mark.parametrize("name", list(OPS))
def test_the_printed_formula_is_the_parts_joined(name: str) -> None:
    op = OPS[name]
    parts = [op.derivative(i) for i in _live(op)]
    if len(parts) > 1:
        assert op.formula.endswith(",  ".join(parts))
    else:
        assert parts == [op.formula]


@pytest.mark.parametrize("name", list(OPS))
def test_latex_is_plain_ascii_with_balanced_braces(name: str) -> None:
    op = OPS[name]
    for i in _live(op):
        tex = op.derivative_latex(i)
        assert tex.isascii() and tex.strip(), f"{name} input {i}: {tex!r}"
        depth = 0
        for c in tex.replace(r"\{", "").replace(r"\}", ""):
            depth += (c == "{") - (c == "}")
            assert depth >= 0, tex
        assert depth == 0, tex


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "neg", "exp"])
def test_latex_of_arithmetic_is_what_the_latex_renderer_writes_today(name: str) -> None:
    # So the golden .tex traces stay as they are when render_latex reads op.latex. (For the
    # other ops the entry's LaTeX is hand-written where the Unicode conversion goes wrong,
    # e.g. "\sqrtx" and "e^x_j".)
    from glassgrad.explain.render_latex import tex

    op = OPS[name]
    for i in _live(op):
        assert op.derivative_latex(i) == tex(op.derivative(i))


def test_latex_of_a_non_differentiable_input_falls_back_to_all_parts() -> None:
    assert OPS["where"].derivative(0) == OPS["where"].formula
    assert OPS["where"].derivative_latex(0) == ",\\quad ".join(OPS["where"].latex[1:])


def _node(name: str, cases: Any) -> gg.Tensor:
    op = OPS[name]
    shapes, attrs = cases.op_cases(op)[0]
    return op(*cases.sample(op, shapes, np.random.default_rng(0)), **attrs)


@pytest.mark.parametrize("name", list(OPS))
def test_local_kind_and_matrix_are_what_explain_shows_today(name: str, cases: Any) -> None:
    from glassgrad.explain.trace import _local

    op, node = OPS[name], _node(name, cases)
    g = np.ones_like(node._data)
    vals = [p._data for p in node._parents]
    for i in _live(op):
        local, kind = _local(op, i, g, node)
        assert kind == op.local_kind
        if kind == "matrix":
            np.testing.assert_array_equal(op.local_matrix(i, *vals), local)


def test_infix_symbols_are_the_traces() -> None:
    infix = {"add": "+", "sub": "−", "mul": "·", "div": "/", "pow": "^", "matmul": "@"}
    assert {name: op.infix for name, op in OPS.items() if op.infix} == infix


def test_layer_formulas_are_the_layer_traces() -> None:
    from glassgrad.explain.records import ACTIVATION_FORMULAS

    today = {  # what the layer-level trace wrote before it read op.layer_formula
        "sigmoid": "σ(z) = 1/(1 + e⁻ᶻ),  σ′(z) = σ(z)(1 − σ(z))",
        "tanh": "f(z) = tanh z,  f′(z) = 1 − tanh² z",
        "relu": "f(z) = max(z, 0),  f′(z) = 1 if z > 0 else 0",
    }
    activations = {name: op for name, op in OPS.items() if op.activation_range}
    assert set(activations) == set(today)
    for name, op in activations.items():
        assert op.layer_formula == ACTIVATION_FORMULAS[name] == today[name]


# ----------------------------------------------------------------------------- diagnose's fields
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu"])
def test_activation_range_is_the_tight_range_of_the_output(name: str) -> None:
    op = OPS[name]
    lo, hi = op.activation_range
    out = op.forward(np.linspace(-40.0, 40.0, 801))
    assert lo <= out.min() and out.max() <= hi
    assert out.min() - lo < 1e-12  # reached (or approached) at the bottom
    assert hi == math.inf or hi - out.max() < 1e-12


@pytest.mark.parametrize("name, inputs, expected", [
    ("relu", ([0.0, 1.0, -2e-7],), 2),  # within 10·eps = 1e-5 of 0
    ("abs", ([0.0, -1.0],), 1),
    ("maximum", ([1.0, 2.0], [1.0, 0.0]), 1),
    ("minimum", ([1.0, 2.0, 3.0], [1.0 + 1e-6, 0.0, 3.0]), 2),
    ("tanh", ([0.0],), 0),  # smooth: no kink
    ("add", ([0.0], [0.0]), 0),
])
def test_kinks_are_counted_where_the_derivative_jumps(name: str, inputs: tuple, expected: int
                                                      ) -> None:
    counter = _KinkCounter(eps=1e-6)
    with hook(counter):
        OPS[name](*(gg.tensor(np.array(x), requires_grad=True) for x in inputs))
    assert counter.count == expected


def test_the_ops_with_kinks() -> None:
    assert {n for n, op in OPS.items() if op.kinks} == {"relu", "abs", "maximum", "minimum"}


# ----------------------------------------------------------------------------- anomaly's field
def _x(values: list[float]) -> gg.Tensor:
    return gg.tensor(np.array(values, np.float32), requires_grad=True)


# The expected words are checked on the message's first line only: the lines after it quote
# the source line that made the node, which here holds the expected words too.
@pytest.mark.parametrize("run, op, cause", [
    (lambda: _x([0.0, 1.0]).log(), "log", "log of 0 gives −inf"),
    (lambda: _x([100.0]).exp(), "exp", "exp overflows above 88.7 in float32"),
    (lambda: _x([1.0]) / _x([0.0]), "div", "division by zero"),
    (lambda: _x([-1.0]).sqrt(), "sqrt", "square root of a negative number"),
    (lambda: _x([-8.0]) ** _x([0.5]), "pow", "negative base"),
    (lambda: _x([3e38]) + _x([3e38]), "add", "Inf − Inf"),
    (lambda: _x([-3e38]) - _x([3e38]), "sub", "Inf − Inf"),
    (lambda: _x([1e30]) * _x([1e30]), "mul", "overflowed or became undefined"),
])
def test_nan_causes_name_the_forward_trap(run: Callable, op: str, cause: str) -> None:
    with gg.detect_anomaly(), pytest.raises(gg.AnomalyError) as info:
        run()
    first = str(info.value).splitlines()[0]
    assert first.startswith(f"forward: '{op}' produced") and cause in first, first


@pytest.mark.parametrize("make, op, cause", [
    (lambda x: x.log(), "log", "the derivative of log at 0 is 1/0"),
    (lambda x: x.sqrt(), "sqrt", "the derivative of sqrt at 0 is 1/(2·0) = ∞."),
    (lambda x: gg.tensor(2.0) / x, "div", "the derivative of a/b is ∞ where b = 0"),
    (lambda x: x ** gg.tensor(0.5), "pow", "the derivative of x^p at x = 0"),
    (lambda x: x * gg.tensor(np.inf), "mul", "infinite or undefined at these inputs"),
])
def test_nan_causes_name_the_backward_trap(make: Callable, op: str, cause: str) -> None:
    x = gg.tensor(np.zeros(2, np.float32), requires_grad=True)
    with np.errstate(all="ignore"):  # the forward pass outside: only backward is watched
        y = make(x).sum()
    with gg.detect_anomaly(), pytest.raises(gg.AnomalyError) as info:
        y.backward()
    first = str(info.value).splitlines()[0]
    assert first.startswith(f"backward: the gradient that '{op}' sends") and cause in first


# ----------------------------------------------------------------------------- compile, errors
@pytest.mark.parametrize("index, refused", [
    (np.array([True, False, True]), True),
    ((slice(None), np.array([True, False])), True),
    (np.array([0, 2]), False),
    (1, False),
    ((slice(1, 3), None), False),
])
def test_compile_refusal_of_getitem(index: Any, refused: bool) -> None:
    reason = OPS["getitem"].compile_refusal(index=index)
    assert (reason is not None) == refused
    if refused:
        assert "boolean mask" in reason and "gg.where(mask, x, 0)" in reason


def test_only_getitem_can_refuse_compile() -> None:
    assert {n for n, op in OPS.items() if op.compile_refusal} == {"getitem"}


@pytest.mark.parametrize("run, message", [
    (lambda: gg.ones(2, 3) @ gg.ones(2, 3), r"matmul: .*\(2, 3\), \(2, 3\).* last dimension "
                                            r"of a \(3\) must equal the second-to-last .*\(2\)"),
    (lambda: gg.ones(3) @ gg.ones(2), r"matmul: .*the first dimension of b \(2\)"),
    (lambda: gg.linear(gg.ones(4, 3), gg.ones(5, 2), gg.ones(5)),
     r"linear: .*x's last dimension \(3\) must equal in_features \(2\)"),
    (lambda: gg.ones(2, 3) + gg.ones(4), r"add: .*Shapes broadcast when"),
])
def test_error_hints_name_the_shapes(run: Callable, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run()


# ----------------------------------------------------------------------------- public surface
PUBLIC = [name for name, op in OPS.items() if op.public]


def test_the_public_ops() -> None:
    # (ops_nn's entries are nn.functional's, not gg's: see glassgrad/nn/functional_conv.py;
    # gather's public function is shape.gather, which checks the index first)
    nn_ops = {"conv2d", "conv2d_input", "conv2d_weight", "max_pool2d", "embedding"}
    assert set(OPS) - set(PUBLIC) == {"index_add", "mse_loss", "cross_entropy", "gather",
                                      *nn_ops}
    assert set(PUBLIC) <= set(gg.__all__)
    assert len(gg.__all__) == len(set(gg.__all__))
    assert not {"mse_loss", "cross_entropy"} & set(dir(gg))
    assert gg.index_add is not OPS["index_add"]  # (gg's is PyTorch's: shape.index_add)


@pytest.mark.parametrize("name", PUBLIC)
def test_a_public_op_is_gg_function_and_records_its_op(name: str, cases: Any) -> None:
    op = OPS[name]
    assert getattr(gg, name) is getattr(F, name)
    node = _node(name, cases)  # (through the Op; now the same through gg.<name>)
    if op.kind != "custom" and not op.variadic:
        inputs = [gg.Tensor(p._data, requires_grad=True) for p in node._parents]
        out = getattr(gg, name)(*inputs)
        assert out.op == name
        np.testing.assert_array_equal(out.numpy(), node.numpy())


@pytest.mark.parametrize("name", [n for n in PUBLIC if OPS[n].method])
def test_a_method_op_is_a_tensor_method(name: str) -> None:
    method = getattr(gg.Tensor, name)  # (sum, mean: a shortcut around it, methods.py)
    assert getattr(method, "__wrapped__", method) is getattr(F, name)


def test_generated_functions_read_like_hand_written_ones() -> None:
    assert list(inspect.signature(gg.add).parameters) == ["a", "b"]
    assert list(inspect.signature(gg.exp).parameters) == ["x"]
    assert gg.exp.__name__ == "exp" and gg.exp.__module__ == "glassgrad.functional"
    assert gg.tanh.__doc__ == f"tanh: {OPS['tanh'].formula}"
    assert gg.sum.__doc__.startswith("Sum over")  # hand-written ones are kept


def test_numpy_ufuncs_dispatch_to_the_op_they_compute() -> None:
    x = gg.tensor([0.5, 1.5], requires_grad=True)
    for name, op in OPS.items():
        if op.public and isinstance(op.forward, np.ufunc):
            assert methods._UFUNCS[op.forward] is getattr(F, name)
    assert np.exp(x).op == "exp" and np.maximum(x, 1.0).op == "maximum"
    assert (x @ np.ones(2)).op == "matmul"


def test_every_infix_symbol_has_a_latex_form():
    # render_latex writes a node as "a <symbol> b" from Op.infix: a new symbol needs its
    # LaTeX spelling (or the power form) there, not the raw character in the export.
    from glassgrad.explain.render_latex import _LATEX_INFIX

    missing = {op.name: op.infix for op in OPS.values()
               if op.infix and op.infix != "^" and op.infix not in _LATEX_INFIX}
    assert not missing, missing


def test_latex_export_quotes_each_derivative_as_the_table_writes_it():
    from glassgrad.explain.render_latex import render_latex

    w = gg.tensor(np.ones((2, 2)), requires_grad=True)
    y = gg.tensor([1.0, 2.0], requires_grad=True)
    with gg.explain.trace() as tr:
        ((w @ y).exp().sum() * y).sum().backward()
    text = render_latex(tr)
    for name, i in (("matmul", 0), ("matmul", 1), ("exp", 0), ("mul", 0)):
        assert OPS[name].derivative_latex(i) in text, (name, i)

"""explain.expr: the safe expression language of `glassgrad explain expr` (ast, never eval)."""

import re

import pytest

from glassgrad.explain import ExprError, explain_expr
from glassgrad.explain.expr import parse, parse_values, variables


def test_seed_example_through_the_expression_language():
    tr = explain_expr("(x + y) * z", "x=-2,y=5,z=-4")
    assert tr.node("t1").value == 3 and tr.node("f").value == -12
    assert [tr.grad(v).item() for v in "xyz"] == [-4.0, -4.0, 3.0]
    named = explain_expr("q = x + y; f = q * z", {"x": -2, "y": 5, "z": -4})
    assert named.node("q").value == 3 and named.root.name == "f"
    assert named.node("f").expr == "q · z"


def test_functions_numbers_and_unary_minus():
    tr = explain_expr("relu(-x) + maximum(x, 2) ** 2 - -3", "x=1.5")
    assert tr.root.value == 0 + 4 + 3
    assert tr.grad("x") == 0  # relu(−1.5) passes nothing; maximum picks the constant 2
    assert "-3" in [n.name for n in tr.nodes]  # "-3" is the number −3, folded, not neg(3)
    assert [n.expr for n in tr.nodes if n.op == "neg"] == ["−x"]
    tr = explain_expr("exp(log(x)) * sin(x) / cos(x)", "x=0.7")
    assert tr.checks[0].ok is True


@pytest.mark.parametrize("source, message", [
    ("(x + y", "cannot parse the expression '(x + y'"),
    ("x +* y", "cannot parse"),
    ("", "empty"),
    ("x.real", "not allowed"),
    ("x[0]", "not allowed"),
    ("__import__('os')", "unknown function"),
    ("open(x)", "unknown function"),
    ("tanh(x=1)", "by position only"),
    ("'a' * x", "not a number"),
    ("True * x", "not a number"),
    ("x // y", "operator"),
    ("x @ y", "operator"),
    ("~x", "only unary minus"),
    ("lambda: x", "not allowed"),
    ("import os", "not an expression"),
    ("x + y; x * y", "only the last part"),
    ("a, b = x, y", "only 'name = expression'"),
])
def test_anything_but_arithmetic_is_refused(source, message):
    with pytest.raises(ExprError, match=re.escape(message)):
        explain_expr(source, "x=1,y=2")


def test_unknown_variable_says_which_and_how_to_fix():
    with pytest.raises(ExprError) as e:
        explain_expr("(x + w) * z", "x=1,z=2")
    msg = str(e.value)
    assert "unknown variable w" in msg and "add w=... to --values" in msg


def test_assigning_to_an_input_and_constant_expressions_are_errors():
    with pytest.raises(ExprError, match="'x' is an input"):
        explain_expr("x = 2 * x; x", "x=1")
    with pytest.raises(ExprError, match="does not depend on any variable"):
        explain_expr("2 * 3", "")
    with pytest.raises(ExprError, match="is a function"):
        explain_expr("tanh + x", "x=1,tanh=2")


@pytest.mark.parametrize("text, message", [
    ("x", "write name=number"), ("x=abc", "not a number"), ("1x=2", "write name=number"),
])
def test_bad_values(text, message):
    with pytest.raises(ExprError, match=message):
        parse_values(text)


def test_variables_in_order_excluding_functions_and_assigned_names():
    assert variables(parse("q = tanh(x) + y; f = q * z * x")) == ["x", "y", "z"]
    assert parse_values(" x=-2, y = 5 ,z=4e-1") == {"x": -2.0, "y": 5.0, "z": 0.4}

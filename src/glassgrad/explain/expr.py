"""A safe expression language for ``glassgrad explain expr``: parsed with ``ast``, never eval'd.

Allowed: variable names, numbers, ``+ - * / **``, unary ``-``/``+``, parentheses, calls of
whitelisted glassgrad functions (``tanh(x)``, ``maximum(a, b)``) and assignments that name
intermediate values, separated by ``;`` or newlines: ``q = x + y; f = q * z``. Anything else
(attributes, subscripts, keywords, strings, lambdas, ...) is refused with a message saying
what is allowed. Every node becomes a glassgrad op on float64 tensors, traced.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .. import functional as F
from ..tensor import Tensor, tensor
from .trace import Trace

FUNCTIONS: dict[str, Callable[..., Tensor]] = {
    "exp": F.exp, "log": F.log, "sqrt": F.sqrt, "abs": F.abs, "sin": F.sin, "cos": F.cos,
    "tanh": F.tanh, "sigmoid": F.sigmoid, "relu": F.relu, "leaky_relu": F.leaky_relu,
    "square": F.square, "maximum": F.maximum, "minimum": F.minimum,
}
_BINARY = {ast.Add: F.add, ast.Sub: F.sub, ast.Mult: F.mul, ast.Div: F.div, ast.Pow: F.pow}
# A trace is read by a person: far below these, it is already too long to follow. The depth
# limit also keeps the evaluator's recursion (one Python frame per level) well clear of
# Python's recursion limit; the size limit bounds the parser's memory and time.
MAX_CHARS = 10_000
MAX_DEPTH = 200


class ExprError(ValueError):
    """The expression or its values are not usable; the message says what and how to fix."""


def parse(source: str) -> ast.Module:
    """Parse ``source`` and check that it uses only the allowed constructs."""
    if not source.strip():
        raise ExprError("the expression is empty. Example: '(x + y) * z'")
    if len(source) > MAX_CHARS:
        raise ExprError(f"the expression has {len(source):,} characters; the limit is "
                        f"{MAX_CHARS:,}, since a trace is for reading. Fix: trace a smaller "
                        f"expression, or name its parts ('q = ...; f = q * z')")
    try:
        tree = ast.parse(source.strip(), mode="exec")
    except (RecursionError, MemoryError):
        raise _too_deep(source) from None
    except SyntaxError as e:
        col = f" at column {e.offset}" if e.offset else ""
        raise ExprError(f"cannot parse the expression {_short(source)}: {e.msg}{col}. "
                        f"Write it as in Python, e.g. '(x + y) * z' or 'tanh(w * x + b)'."
                        ) from None
    if not tree.body:
        raise ExprError("the expression is empty. Example: '(x + y) * z'")
    if _depth(tree) > MAX_DEPTH:
        raise _too_deep(source)
    for k, stmt in enumerate(tree.body):
        if isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
                raise ExprError(f"only 'name = expression' assignments are allowed, got "
                                f"{ast.unparse(stmt)!r}")
            _check(stmt.value, source)
        elif isinstance(stmt, ast.Expr):
            if k != len(tree.body) - 1:
                raise ExprError(f"only the last part may be a bare expression; name the "
                                f"others ('q = {ast.unparse(stmt)}')")
            _check(stmt.value, source)
        else:
            raise ExprError(f"not an expression: {ast.unparse(stmt)!r}. Allowed: names, "
                            f"numbers, + - * / **, parentheses and {_fn_list()}")
    return tree


def _depth(tree: ast.AST) -> int:
    """How deeply the tree nests (counted without recursion, which a deep tree would break)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((child, d + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _too_deep(source: str) -> ExprError:
    return ExprError(f"the expression {_short(source)} nests more than {MAX_DEPTH} levels "
                     f"deep (each operator is a level, so a + b + c + ... nests one level per +). "
                     f"Fix: name parts with assignments ('q = x + y; f = q * z'), each of "
                     f"which starts again at level 1")


def _short(source: str) -> str:
    return repr(source) if len(source) <= 60 else repr(source[:57] + "...")


def _fn_list() -> str:
    return "the functions " + ", ".join(sorted(FUNCTIONS))


def _check(node: ast.AST, source: str) -> None:
    for n in ast.walk(node):
        if isinstance(n, ast.BinOp):
            if type(n.op) not in _BINARY:
                raise ExprError(f"operator {ast.unparse(n)!r} is not allowed; use + - * / **")
        elif isinstance(n, ast.UnaryOp):
            if not isinstance(n.op, ast.USub | ast.UAdd):
                raise ExprError(f"{ast.unparse(n)!r}: only unary minus and plus are allowed")
        elif isinstance(n, ast.Call):
            if not isinstance(n.func, ast.Name) or n.func.id not in FUNCTIONS:
                raise ExprError(f"unknown function in {ast.unparse(n)!r}; allowed are "
                                f"{_fn_list()}")
            if n.keywords:
                raise ExprError(f"{ast.unparse(n)!r}: give arguments by position only")
        elif isinstance(n, ast.Constant):
            if isinstance(n.value, bool) or not isinstance(n.value, int | float):
                raise ExprError(f"{n.value!r} is not a number; only numbers, names and "
                                f"operators may appear in {_short(source)}")
            _check_finite(n.value)
        elif not isinstance(n, ast.Name | ast.Load | ast.operator | ast.unaryop | ast.expr_context):
            raise ExprError(f"{ast.unparse(n)!r} is not allowed in an expression. Allowed: "
                            f"names, numbers, + - * / **, parentheses and {_fn_list()}")


def _check_finite(v: float) -> None:
    """A literal must be a finite float64: the trace computes in float64."""
    try:
        finite = np.isfinite(float(v))
    except OverflowError:  # an int beyond float64's range, e.g. 400 digits
        finite = False
    if not finite:
        text = str(v) if len(str(v)) <= 20 else f"{str(v)[:12]}... ({len(str(v))} digits)"
        raise ExprError(f"the number {text} is beyond float64's range (about ±1.8e308), in "
                        f"which the trace computes. Fix: use a smaller number")


def variables(tree: ast.Module) -> list[str]:
    """The free variables (names used before being assigned), in order of appearance."""
    assigned: set[str] = set()
    free: list[str] = []
    for stmt in tree.body:
        value = stmt.value  # type: ignore[attr-defined]
        funcs = {id(n.func) for n in ast.walk(value) if isinstance(n, ast.Call)}
        names = sorted((n for n in ast.walk(value) if isinstance(n, ast.Name)),
                       key=lambda n: (n.lineno, n.col_offset))  # source order
        for n in names:
            if id(n) not in funcs and n.id not in assigned and n.id not in free:
                free.append(n.id)
        if isinstance(stmt, ast.Assign):
            assigned.add(stmt.targets[0].id)  # type: ignore[attr-defined]
    return free


def parse_values(text: str) -> dict[str, float]:
    """``"x=-2,y=5,z=-4"`` -> ``{"x": -2.0, "y": 5.0, "z": -4.0}``."""
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, val = part.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise ExprError(f"cannot read {part!r} in --values: write name=number, "
                            f"separated by commas, e.g. x=-2,y=5,z=-4")
        try:
            values[name] = float(val)
        except ValueError:
            raise ExprError(f"the value of {name} is {val.strip()!r}, not a number "
                            f"(in --values {text!r})") from None
    return values


def evaluate(tree: ast.Module, values: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
    """Run the parsed expression on float64 leaves; returns the result and the leaves."""
    free = variables(tree)
    missing = [v for v in free if v not in values]
    if missing:
        known = ", ".join(values) or "none"
        raise ExprError(
            f"unknown variable{'s' if len(missing) > 1 else ''} {', '.join(missing)}: the "
            f"expression uses {', '.join(free)} but values were given for {known}. Fix: add "
            f"{', '.join(m + '=...' for m in missing)} to --values."
        )
    for name in free:
        if name in FUNCTIONS:
            raise ExprError(f"{name!r} is a function; call it, e.g. {name}(x)")
    leaves: dict[str, Tensor] = {}
    for name in free:
        t = tensor(np.asarray(values[name], dtype=np.float64), requires_grad=True)
        t.name = name
        leaves[name] = t
    env: dict[str, Tensor] = dict(leaves)
    result: Tensor | None = None
    for stmt in tree.body:
        result = _eval(stmt.value, env)  # type: ignore[attr-defined]
        if isinstance(stmt, ast.Assign):
            target = stmt.targets[0].id  # type: ignore[attr-defined]
            if target in leaves:
                raise ExprError(f"{target!r} is an input (it has a value); assign to a new "
                                f"name instead")
            if result.op is not None and result.name is None:
                result.name = target
            env[target] = result
    assert result is not None
    return result, leaves


def _eval(node: ast.AST, env: dict[str, Tensor]) -> Tensor:
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.Constant):
        return _const(node.value)
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.operand, ast.Constant):  # "-2" is the number −2, not neg(2)
            v = node.operand.value
            return _const(-v if isinstance(node.op, ast.USub) else v)
        x = _eval(node.operand, env)
        return F.neg(x) if isinstance(node.op, ast.USub) else x
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_eval(node.left, env), _eval(node.right, env))
    if isinstance(node, ast.Call):
        fn = FUNCTIONS[node.func.id]  # type: ignore[attr-defined]
        args = [_eval(a, env) for a in node.args]
        try:
            return fn(*args)
        except TypeError as e:
            raise ExprError(f"{ast.unparse(node)!r}: {e}") from None
    raise ExprError(f"{ast.unparse(node)!r} is not allowed")  # _check keeps us from here


def _const(v: float) -> Tensor:
    t = tensor(np.asarray(v, dtype=np.float64))
    t.name = f"{v:g}"
    return t


def explain_expr(source: str, values: Mapping[str, Any] | str, check: bool = True) -> Trace:
    """Trace the forward and backward pass of an expression, e.g. the seeds' example.

    >>> tr = explain_expr("q = x + y; f = q * z", "x=-2,y=5,z=-4")
    >>> [tr.node(n).value.item() for n in "qf"], [tr.grad(v).item() for v in "xyz"]
    ([3.0, -12.0], [-4.0, -4.0, 3.0])
    """
    if isinstance(values, str):
        values = parse_values(values)
    tree = parse(source)
    with Trace(check=check) as tr:
        out, _ = evaluate(tree, values)
        if out.op is None and out.requires_grad:  # the result is an input, e.g. "x"
            raise ExprError(f"{_short(source)} is the variable {out.name} itself: no "
                            f"operation to trace (∂{out.name}/∂{out.name} = 1). Fix: give an "
                            f"expression with an operation, e.g. 'tanh({out.name})'")
        if out.op is None:
            raise ExprError(f"{_short(source)} does not depend on any variable, so there is "
                            f"no gradient to show")
        if out.name is None:
            out.name = "f"
        if out.numel() != 1:
            raise ExprError(f"the expression's value has shape {out.shape}; give scalar values")
        out.backward()
    tr.title = f"Op-level trace of {source.strip()}"
    return tr

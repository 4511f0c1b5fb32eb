"""Op-level trace: every node of the forward pass and every step of the backward pass.

``with trace() as tr: ...; loss.backward()`` attaches one observer to the engine's hook
(``glassgrad.autograd.hook``); nothing in the engine or the ops knows about it, and with no
trace open the engine pays nothing. The observer records

- on the forward pass, each op's node: its inputs, its output value (a copy), the op's
  derivative formula from the op table;
- on the backward pass, for each node and each parent it sends a gradient to, one *chain*
  step: upstream gradient ∂L/∂out, the local derivative ∂out/∂parent (formula and number),
  and their product, the gradient that flows into the parent; when a parent has received a
  gradient before, an *accumulate* step shows the running sum (a node used twice).

The numbers are the engine's own: the product shown is exactly what the engine sent.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

import numpy as np

from ..autograd import hook
from ..ops import OPS, Op
from ..tensor import Tensor
from .checks import gradcheck_trace
from .fmt import num
from .records import Check, Node, Step
from .rendering import Rendered


def _local(op: Op, i: int, g: np.ndarray, node: Tensor) -> tuple[Any, str]:
    """The local derivative ∂out/∂input_i as numbers, and how it combines with upstream
    (``op.local_kind``: "elementwise", "matrix" or "structural")."""
    vals = [p._data for p in node._parents]
    if op.local_kind == "matrix":  # ∂(A@B)/∂A is "multiply by Bᵀ": show that factor
        return op.local_matrix(i, *vals), "matrix"
    if op.local_kind == "elementwise":  # the rule on a gradient of ones gives it exactly
        with np.errstate(all="ignore"):
            local = op.rules[i](np.ones_like(g), node._data, *vals, **(node._attrs or {}))
        return np.array(local, dtype=g.dtype if g.dtype.kind == "f" else None), "elementwise"
    return None, "structural"  # reshape, transpose, getitem, ...: values move, not scale


def _data(x: Any) -> np.ndarray:
    return np.array(x._data if isinstance(x, Tensor) else x)  # a copy: later steps may mutate


class Trace(Rendered):
    """The record of one traced computation (forward nodes, backward steps, checks).

    Use it as a context manager (``with trace() as tr``); render it with ``str(tr)``,
    ``tr.to_markdown()``, ``tr.to_html()`` (also shown in Jupyter), ``tr.to_latex()``,
    ``tr.to_json()`` or ``tr.to_dot()``.
    """

    kind = "ops"

    def __init__(self, names: Any = None, check: bool = True) -> None:
        self.nodes: list[Node] = []
        self.steps: list[Step] = []
        self.checks: list[Check] = []
        self.title = "Op-level trace"
        self._check = check
        self._by_id: dict[int, int] = {}  # id(tensor) -> index into nodes
        self._src: dict[int, np.ndarray] = {}  # node id -> the leaf's array when recorded
        self._tensors: list[Tensor] = []  # held while tracing, so no id() is reused
        self._given = _names_from(names)
        self._totals: dict[int, np.ndarray] = {}  # node id -> gradient so far, this pass
        self._pass = 0
        self._stack: contextlib.ExitStack | None = None
        self._locals: dict[int, str] = {}  # id(tensor) -> the caller's variable name

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> Trace:
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(hook(self))
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stack is not None
        self._stack.close()
        self._locals = _names_in_frame(sys._getframe(1))
        self._finish(run_checks=exc[0] is None)

    # ------------------------------------------------------------------ the hook
    def _register(self, t: Tensor, op: Op | None = None, inputs: list[int] | None = None) -> int:
        key = id(t)
        idx = self._by_id.get(key)
        if idx is not None and op is None:
            node = self.nodes[idx]
            # A leaf whose values changed since (an optimizer step) is a new value: record it.
            if node.kind == "op" or (t._data is self._src.get(node.id)
                                     and np.array_equal(t._data, node.value)):
                return node.id
        kind = "op" if op is not None else ("input" if t._requires_grad else "constant")
        node = Node(
            id=len(self.nodes) + 1, name="", kind=kind, op=op.name if op else None,
            inputs=inputs or [], value=_data(t), formula=op.formula if op else None,
            attrs=t._attrs, in_graph=op is not None and t._op is not None,
            forward=op.forward if op is not None else None,
        )
        self.nodes.append(node)
        self._by_id[key] = len(self.nodes) - 1
        self._src[node.id] = t._data
        self._tensors.append(t)
        return node.id

    def on_forward(self, op: Op, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        ids = [self._register(t) for t in inputs]
        self._register(out, op, ids)

    def on_backward(self, node: Tensor, grad: Any, sent: list) -> None:
        g = _data(grad)
        nid = self._register(node)
        op = node._op
        if nid not in self._totals:  # nothing flowed here yet: a backward pass starts
            self._end_pass()
            self._pass += 1
            self._add(Step(0, "seed", nid, product=g))
        self.nodes[nid - 1].grad = g
        for i, pg in enumerate(sent):
            if pg is None:
                continue
            parent = node._parents[i]
            pid = self._register(parent)
            local, local_kind = _local(op, i, g, node)
            pg = _data(pg)
            note = ""
            if local_kind == "elementwise" and np.shape(local) != pg.shape:
                note = f"summed over broadcast dimensions to shape {pg.shape}"
            self._add(Step(
                0, "chain", nid, pid, i, upstream=g, formula=op.derivative(i),
                formula_latex=op.derivative_latex(i) or None,
                local=local, local_kind=local_kind, product=pg, note=note,
            ))
            prev = self._totals.get(pid)
            if prev is None:
                self._totals[pid] = pg
            else:
                total = prev + pg
                self._totals[pid] = total
                self._add(Step(0, "accumulate", pid, pid, previous=prev, added=pg,
                               product=total, note="used more than once: gradients add up"))

    def _add(self, step: Step) -> None:
        step.id = len(self.steps) + 1
        step.pass_index = self._pass
        self.steps.append(step)

    def _end_pass(self) -> None:
        for nid, total in self._totals.items():
            self.nodes[nid - 1].grad = total
        self._totals = {}

    # ------------------------------------------------------------------ after the block
    def _finish(self, run_checks: bool) -> None:
        self._end_pass()
        # The user's names first (names=, tensor.name, the with-block's variables); automatic
        # names (t1, x1) skip every name the user gave, so "x2" never means the user's w1.
        users = [self._given.get(id(t)) or t.name or self._locals.get(id(t))
                 for t in self._tensors]
        taken = {n for n in users if n} | set(self._locals.values())
        counters: dict[str, int] = {}
        for node, name in zip(self.nodes, users):
            node.name = name or _auto_name(node, counters, taken)
        for node in self.nodes:
            node.expr = _describe(node, self.nodes)
        self._tensors = []  # let the graph go
        self._by_id = {}
        self._src = {}
        if run_checks and self._check and self.steps:
            self.checks.append(gradcheck_trace(self.nodes, self.steps))

    # ------------------------------------------------------------------ queries
    def node(self, name: str) -> Node:
        """The last node called ``name`` (KeyError listing the names if there is none)."""
        for n in reversed(self.nodes):
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r} in this trace; names: "
                       f"{', '.join(n.name for n in self.nodes)}")

    def grad(self, name: str) -> np.ndarray | None:
        """The gradient that reached the node called ``name`` (None if none did)."""
        return self.node(name).grad

    @property
    def root(self) -> Node | None:
        """The node the last backward pass started from."""
        seeds = [s for s in self.steps if s.kind == "seed"]
        return self.nodes[seeds[-1].node - 1] if seeds else None

    def __repr__(self) -> str:
        return f"<Trace: {len(self.nodes)} nodes, {len(self.steps)} backward steps>"


def trace(names: Any = None, check: bool = True) -> Trace:
    """Record every forward node and backward step of the code in a ``with`` block.

    ``names``: labels for tensors, as a dict ``{"x": x}`` or a module (its parameters get
    their PyTorch names, "0.weight"); otherwise a tensor's ``.name``, else the name of the
    variable holding it in the code around the ``with`` block (``w1``, ``model.0.weight``),
    else a short automatic one (``t1``, ``x1``) that is never one of those names.
    ``check``: afterwards, compare the traced gradients with central finite differences (a
    replay of the recorded graph in float64).

    >>> import glassgrad as gg
    >>> x = gg.tensor(3.0, requires_grad=True); x.name = "x"
    >>> with gg.explain.trace() as tr:
    ...     (x * x).backward()
    >>> tr.grad("x").item()
    6.0
    """
    return Trace(names=names, check=check)


def _names_from(names: Any) -> dict[int, str]:
    if names is None:
        return {}
    if hasattr(names, "named_parameters"):
        return {id(p): n for n, p in names.named_parameters()}
    return {id(t): str(n) for n, t in dict(names).items()}


_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _names_in_frame(frame: Any) -> dict[int, str]:
    """id(tensor) -> name, from the variables of the code that ran the ``with trace()``
    block, local then global: a Tensor variable gives its name, a Module variable ``model``
    its parameters' ``model.0.weight``. Nothing when that code is glassgrad's own (its
    locals mean nothing to the reader)."""
    if frame is None or os.path.abspath(frame.f_code.co_filename).startswith(_PKG_DIR):
        return {}
    out: dict[int, str] = {}
    scopes = [frame.f_locals] + ([frame.f_globals] if frame.f_globals is not frame.f_locals
                                 else [])
    for var, value in [item for scope in scopes for item in list(scope.items())]:
        if var.startswith("_"):
            continue
        if isinstance(value, Tensor):
            out.setdefault(id(value), var)
        elif hasattr(value, "named_parameters") and callable(value.named_parameters):
            for pname, p in value.named_parameters():
                out.setdefault(id(p), f"{var}.{pname}")
    return out


def _auto_name(node: Node, counters: dict[str, int], taken: set[str]) -> str:
    if node.kind == "constant" and node.value.ndim == 0:
        return num(node.value)
    prefix = {"op": "t", "input": "x", "constant": "c"}[node.kind]
    while True:
        counters[prefix] = counters.get(prefix, 0) + 1
        name = f"{prefix}{counters[prefix]}"
        if name not in taken:
            return name


def _describe(node: Node, nodes: list[Node]) -> str:
    if node.op is None:
        return "input" if node.kind == "input" else "constant"
    names = [nodes[i - 1].name for i in node.inputs]
    names = [f"({n})" if " " in n else n for n in names]
    infix = OPS[node.op].infix if node.op in OPS else ""
    if infix and len(names) == 2:  # "x + y" reads better than "add(x, y)"
        return f"{names[0]} {infix} {names[1]}"
    if node.op == "neg":
        return f"−{names[0]}"
    extra = ""
    if node.attrs:
        shown = {k: v for k, v in node.attrs.items()
                 if v is not None and k != "keepdims" and not isinstance(v, np.ndarray)}
        extra = "".join(f", {k}={v}" for k, v in shown.items())
    return f"{node.op}({', '.join(names)}{extra})"

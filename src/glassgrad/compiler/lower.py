"""Lowering: a recording as lines, one per forward op, then the engine's backward walk.

The backward lines follow ``run_backward`` exactly: the same walk
(``autograd.topological_order``), a rule called only for an input that needs a gradient,
and each edge's un-broadcasting and cast done by the engine's own ``autograd.to_input``,
whose steps become the line's ``sum_to`` and ``cast``; decided once, for these shapes. No
line computes anything but an op table function.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .. import autograd
from ..ops import Op
from ..tensor import Tensor
from . import kernels
from .errors import CompileError
from .ir import Line, args_read
from .record import Node, Recording


class Foldable(NamedTuple):
    """A parameter's gradient line that an optimizer's update may fold into: its index, and
    the op's folded variant of the rule (c ← α·rule + β·c) with its name."""

    index: int
    fn: Callable[..., Any]
    name: str


class Returns(NamedTuple):
    """What the step returns: the loss, the gradients (``copied``: returned as a copy, the
    array being also something else), the extra outputs (None: the loss alone)."""

    loss: str
    grads: list[str]
    copied: list[bool]
    aux: list[str] | None

    def names(self) -> list[str]:
        return [self.loss, *self.grads, *(self.aux or ())]


@dataclass
class Lowered:
    """A recording as lines, with the names of its values and where its gradients go."""

    rec: Recording
    lines: list[Line] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)  # id(Tensor) -> its name
    arg_arrays: dict[int, str] = field(default_factory=dict)  # id(argument's array) -> name
    consts: list[Tensor] = field(default_factory=list)  # leaves neither argument nor parameter
    keep: list[Any] = field(default_factory=list)  # objects whose ids are keys: kept alive
    grads: dict[int, str] = field(default_factory=dict)  # id(tensor) -> its gradient's name
    sent: dict[int, Any] = field(default_factory=dict)  # id(tensor) -> that gradient, recorded
    foldable: dict[int, Foldable] = field(default_factory=dict)  # id(parameter) -> its line
    leaves: list[Tensor] = field(default_factory=list)  # parameters receiving gradients
    arg_leaves: list[int] = field(default_factory=list)  # arguments receiving gradients
    seed: np.ndarray | None = None  # dL/dL = 1, where the walk starts
    returns: Returns | None = None

    def external(self) -> list[np.ndarray]:
        """The arrays the step reads but does not own: never written over."""
        rec = self.rec
        return [self.seed, *(t._data for t in (*rec.targs, *rec.params, *self.consts))]


def lower(rec: Recording) -> Lowered:
    """The recording as lines: forward, backward, and what the step returns."""
    low = Lowered(rec)
    for i, t in enumerate(rec.targs):
        low.names[id(t)] = f"a{i}"
        low.arg_arrays[id(t._data)] = f"a{i}"
    for k, p in enumerate(rec.params):
        low.names[id(p)] = f"p{k}"
        low.keep.append(p)
    _forward(low)
    _backward(low)
    _returns(low)
    return low


def _forward(low: Lowered) -> None:
    """One line per op: ``v3 = linear(v2, p2, p3)  # (4, 1) linear``."""
    low.lines.append(Line(kind="comment", comment="forward"))
    for j, (op, inputs, out) in enumerate(low.rec.nodes):
        reason = op.compile_refusal and op.compile_refusal(**(out._attrs or {}))
        if reason:  # an op the recording cannot replay with these attrs (the op says why)
            raise CompileError(reason)
        args = [_input_name(low, t, kind) for t, kind in zip(inputs, low.rec.kinds[j])]
        v = f"v{j}"
        low.names[id(out)] = v
        low.keep.append(out)
        low.lines.append(Line(
            v, op.forward, op.name, args, out._attrs, f"{out.shape} {op.name}",
            values=[out._data], into=kernels.forward_into(op) if len(args) == 1 else None,
            into_name=op.name + "_into"))


def _input_name(low: Lowered, t: Tensor, kind: tuple) -> str:
    """The name of an op's input: known already, or by where it comes from (``classify``);
    a constant gets a name of its own, ``c0``, ..."""
    name = low.names.get(id(t))
    if name is None:
        where, k = kind
        if where == "const":
            name = f"c{len(low.consts)}"
            low.consts.append(t)
        else:
            name = {"arg": "a", "value": "v", "param": "p"}[where] + str(k)
        low.names[id(t)] = name
        low.keep.append(t)
    return name


def _backward(low: Lowered) -> None:
    """The backward walk's lines, from the seed dL/dL = 1, in the engine's order (so that
    gradients accumulate in the same order, to the same bits)."""
    loss = low.rec.loss
    low.lines.append(Line(kind="comment", comment="backward"))
    seed = np.ones(loss.shape, dtype=loss.dtype)
    g = "g_" + low.names[id(loss)]
    low.grads[id(loss)], low.sent[id(loss)], low.seed = g, seed, seed
    low.lines.append(Line(g, args=["seed"], comment="dL/dL = 1", kind="copy", values=[seed]))
    by_out = {id(n.out): n for n in low.rec.nodes}
    for node in autograd.topological_order((loss,)):
        if node._op is not None and id(node) in low.grads:
            _node_lines(low, by_out[id(node)])


def _node_lines(low: Lowered, node: Node) -> None:
    """The lines of one node: its rules, for the inputs that need a gradient."""
    op, inputs, out = node
    gval = low.sent[id(out)]
    args = [low.grads[id(out)], low.names[id(out)], *(low.names[id(t)] for t in inputs)]
    vals = [t._data for t in inputs]
    attrs = out._attrs or {}
    if op.rules is None:  # variadic: one call gives every input's gradient
        all_name = f"all_{low.names[id(out)]}"
        all_vals = op.backward(gval, out._data, *vals, **attrs)
        low.lines.append(Line(all_name, op.backward, op.name + "_grads", args, out._attrs,
                              values=_arrays(*all_vals)))
        for i, t in enumerate(inputs):
            if t._requires_grad and all_vals[i] is not None:
                _edge(low, t, Line(args=[all_name], kind="copy", item=i), all_vals[i], None)
        return
    rule_names = _rule_names(op)
    for i, t in enumerate(inputs):
        rule = op.rules[i]
        if not t._requires_grad or rule is None:
            continue
        pg = rule(gval, out._data, *vals, **attrs)
        if pg is None:
            continue
        line = Line(fn=rule, name=rule_names[i], args=list(args), attrs=out._attrs,
                    into=kernels.grad_into(op, i),
                    into_name=rule_names[i] + "_into", reads=args_read(rule, len(args)))
        _edge(low, t, line, pg, kernels.grad_fold(op, i))


def _edge(low: Lowered, t: Tensor, line: Line, pg: Any, fold: Callable | None) -> None:
    """Add ``line``, which computes the gradient ``pg`` for ``t``, with the walk's work on
    that edge (``to_input``'s steps), stored into ``t``'s gradient or added to it."""
    steps: list[tuple[str, Any]] = []
    pg = autograd.to_input(pg, t._data, steps)
    for what, v in steps:
        if what == "sum_to":
            line.sum_to = v
        else:
            line.cast = v
    line.target = "g_" + low.names[id(t)]
    plain = line.sum_to is None and line.cast is None and id(t) not in low.grads
    if not plain:
        line.into = None  # only a plain `target = rule(...)` may write over grad
    if id(t) in low.grads:
        low.foldable.pop(id(t), None)  # a sum of gradients: no one product to fold into
        line.accumulate = True
        low.sent[id(t)] = low.sent[id(t)] + pg
    else:
        if (fold is not None and plain and line.kind == "call"
                and any(t is p for p in low.rec.params)):
            low.foldable[id(t)] = Foldable(len(low.lines), fold, line.name + "_fold")
        low.grads[id(t)] = line.target
        low.sent[id(t)] = pg
    line.values = _arrays(low.sent[id(t)])
    low.lines.append(line)


def _returns(low: Lowered) -> None:
    """The leaves that receive gradients (parameters, then arguments that require grad),
    and the names the step returns. A gradient array that is also something else (the
    seed, a value, another leaf's gradient) is returned as a copy, as the engine stores
    it."""
    rec = low.rec
    low.leaves = [t for t in rec.params if id(t) in low.grads]
    low.arg_leaves = [i for i, t in enumerate(rec.targs)
                      if t._requires_grad and id(t) in low.grads]
    others = {id(low.seed)} | {id(t._data) for t in (*low.keep, *rec.targs)}
    grads, copied = [], []
    for t in [*low.leaves, *(rec.targs[i] for i in low.arg_leaves)]:
        arr = low.sent[id(t)]
        grads.append(low.grads[id(t)])
        copied.append(id(arr) in others)
        others.add(id(arr))
    aux = None if rec.aux is None else [_aux_name(low, a) for a in rec.aux]
    low.returns = Returns(low.names[id(rec.loss)], grads, copied, aux)


def _aux_name(low: Lowered, t: Tensor) -> str:
    """The step's name for an extra output; it must be a value the ops made, or an
    argument or parameter."""
    name = low.names.get(id(t))
    if name is None or name.startswith("c"):
        raise CompileError(
            f"the compiled function returned an extra output of shape {t.shape} that was not "
            f"computed from its arguments and parameters by glassgrad ops, so a replay could "
            f"not recompute it. Fix: return only tensors computed inside the function."
        )
    return name


def _arrays(*values: Any) -> list[np.ndarray]:
    return [v for v in values if isinstance(v, np.ndarray)]


def _rule_names(op: Op) -> list[str]:
    """Readable names for the op's rules: ``linear_grad_weight`` (from the rule's signature)."""
    names = []
    for i, rule in enumerate(op.rules or ()):
        try:
            params = [p.name for p in inspect.signature(rule).parameters.values()
                      if p.kind is p.POSITIONAL_OR_KEYWORD]
            arg = params[2 + i]
        except (TypeError, ValueError, IndexError):
            arg = str(i)
        names.append(f"{op.name}_grad_{arg}")
    return names

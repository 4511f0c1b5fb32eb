"""Recording a step: run the loss function under an engine observer, and check that one
recording can stand for every call (the replay check: a second run on other values)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .. import autograd
from ..ops import Op
from ..tensor import Tensor, tensor
from .errors import CompileError
from .guards import Guards


class Node(NamedTuple):
    """One op as it ran: the op, its input tensors, its result."""

    op: Op
    inputs: tuple[Tensor, ...]
    out: Tensor


class Read(NamedTuple):
    """A value the function read in Python and a guard keeps: the tensor, the argument it
    is (None: a captured tensor), the value read, and how (``".item()"``, ...)."""

    tensor: Tensor
    arg: int | None
    value: Any
    how: str


@dataclass
class Recording:
    """What one run of the loss function did, checked replayable.

    ``nodes`` are the ops the loss (and the extra outputs ``aux``) depend on, in order;
    ``params`` the tensors needing gradients that the ops use but did not make and that are
    not arguments; ``kinds`` where each op's inputs come from (``classify``); ``reads`` the
    values read in Python, for guards."""

    loss_fn: Callable[..., Tensor]
    targs: tuple[Tensor, ...]
    loss: Tensor
    aux: tuple[Tensor, ...] | None
    nodes: list[Node]
    params: list[Tensor]
    kinds: list[list[tuple]]
    reads: list[Read]


def record(loss_fn: Callable[..., Tensor], targs: tuple[Tensor, ...]) -> Recording:
    """Run ``loss_fn(*targs)`` under the recorder, run it again on other values, and
    return the recording; ``CompileError`` for what a replay could not do faithfully."""
    for i, t in enumerate(targs):
        if t._op is not None and t._requires_grad:
            raise CompileError(
                f"argument {i} (shape {t.shape}) was computed by '{t._op.name}' outside the "
                f"compiled function, so its gradient could not flow further back. Fix: pass "
                f"t.detach(), or move that computation into the loss function."
            )
    scan = Guards(len(targs))
    scan.captured(loss_fn, "the loss function")  # which tensors are captured, for _Recorder
    loss, aux, nodes, reads = _run_recorded(loss_fn, targs, scan.tensors)
    params = [t for t in _leaves_needing_grad(nodes) if not any(t is a for a in targs)]
    for t in params:
        if t._op is not None:
            raise CompileError(
                f"the loss depends on a tensor (shape {t.shape}) computed by "
                f"'{t._op.name}' before the compiled function was called, so the "
                f"recording would stop the gradient there. Fix: compute it inside "
                f"the loss function, or pass it in detached (t.detach())."
            )
    rec = Recording(loss_fn, targs, loss, aux, nodes, params,
                    classify(nodes, targs, params), reads)
    _check_replayable(rec, scan.tensors)
    return rec


class _Recorder:
    """Engine observer: notes every op run while the loss function is recorded, and every
    value read in Python (``.item()``, ``float()``, ``if t:``, ...), which it refuses or,
    for an argument or a captured tensor of one element, keeps for a guard."""

    def __init__(self, targs: tuple[Tensor, ...], captured: dict[int, Tensor]) -> None:
        self.nodes: list[Node] = []
        self.made: set[int] = set()  # results and their arrays (a detached one shares it)
        self.args = {id(t): i for i, t in enumerate(targs)}
        self.args.update((id(t._data), i) for i, t in enumerate(targs))
        self.captured = captured
        self.reads: list[Read] = []

    def on_forward(self, op: Op, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        self.nodes.append(Node(op, inputs, out))
        self.made.update((id(out), id(out._data)))

    on_constant = on_forward  # a comparison, say: no gradient, but replayed all the same

    def on_python_value(self, t: Tensor, how: str) -> None:
        arg = self.args.get(id(t), self.args.get(id(t._data)))
        one = how != ".numpy()" and t._data.size == 1
        if id(t) in self.made or id(t._data) in self.made:
            what = "a tensor computed in the step"
        elif t._requires_grad:
            what = "a tensor that requires grad (a parameter: it changes with every update)"
        elif one and (arg is not None or id(t) in self.captured):
            self.reads.append(Read(t, arg, t._data.tolist(), how))  # guarded: a new value
            return  # records again
        elif arg is not None:
            what = f"argument {arg}, whose values change from call to call"
        else:
            what = "a tensor made outside glassgrad's ops (or reached through another object)"
        raise CompileError(
            f"the loss function reads a tensor's value in Python with {how} while recording "
            f"({what}, shape {t.shape}): a replay cannot follow a Python branch on it, and "
            f"would reuse this one value on every call. Fix: compute it with glassgrad ops on "
            f"tensors (gg.where(cond, a, b) for an if, x > 0, x.clip(...)), pass a Python "
            f"number as an argument instead, or run this step eagerly (no gg.compile). "
            f"Reading the returned loss after the step (step(X, y).item()) is fine."
        )

    def on_inplace(self, t: Tensor, what: str) -> None:
        raise CompileError(
            f"{what} wrote in place into a tensor of the graph (shape {t.shape}) while the "
            f"step was being recorded: the replay computes each value once into its own "
            f"array and cannot follow a write over one that ops have already used. Fix: use "
            f"the out-of-place form in the loss function (h = h + 1 for h.add_(1), "
            f"nn.ReLU() for nn.ReLU(inplace=True)), or run this step eagerly (no gg.compile)."
        )

    def on_random(self, what: str) -> None:
        raise CompileError(
            f"{what} drew random numbers while the step was being recorded: a replay would "
            f"reuse the same draw on every call. Fix: compile with the model in eval() mode "
            f"(model.eval()), or run steps that use {what} eagerly (without gg.compile)."
        )


def as_tensor(a: Any) -> Tensor:
    """An argument of a compiled step as a Tensor (an array is wrapped, not copied)."""
    if isinstance(a, Tensor):
        return a
    if isinstance(a, np.ndarray):
        return Tensor._wrap(a)  # no copy: the recording sees the caller's array
    return tensor(a)


def split(result: Any) -> tuple[Tensor, tuple[Tensor, ...] | None]:
    """The loss, and the extra outputs (None when the function returns the loss alone)."""
    if not isinstance(result, tuple | list):
        return _check_loss(result), None
    if not result:
        _check_loss(None)
    for i, a in enumerate(result[1:], 1):
        if not isinstance(a, Tensor):
            raise CompileError(
                f"the compiled function returned a tuple whose item {i} is a "
                f"{type(a).__name__}; after the loss it may return only tensors (say the "
                f"model's output, for metrics). Fix: return (loss, output) with tensors."
            )
    return _check_loss(result[0]), tuple(result[1:])


def _check_loss(loss: Any) -> Tensor:
    if not isinstance(loss, Tensor) or loss._data.size != 1:
        what = (f"a tensor of shape {loss.shape}" if isinstance(loss, Tensor)
                else type(loss).__name__)
        raise CompileError(
            f"the compiled loss function returned {what}; it must return the scalar loss "
            f"(one element) to differentiate. Fix: reduce it, e.g. return loss.mean()."
        )
    if not loss._requires_grad:
        raise CompileError(
            "the compiled loss function returned a loss that does not depend on any tensor "
            "with requires_grad=True, so there is nothing to differentiate. Fix: compute it "
            "from the model's parameters (and outside gg.no_grad())."
        )
    return loss


def _run_recorded(loss_fn: Callable[..., Tensor], targs: tuple[Tensor, ...],
                  captured: dict[int, Tensor]
                  ) -> tuple[Tensor, tuple[Tensor, ...] | None, list[Node], list[Read]]:
    """Run ``loss_fn`` under the recorder: the loss, the ops it depends on, in order (a
    metric computed on the side is not replayed), and the values it read in Python."""
    rec = _Recorder(targs, captured)
    with autograd.hook(rec):
        loss, aux = split(loss_fn(*targs))
    needed = {id(loss), id(loss._data)}  # tensors, and arrays (a wrapper shares its array)
    for a in aux or ():
        needed.update((id(a), id(a._data)))
    kept = []
    for node in reversed(rec.nodes):
        out = node.out
        if id(out) in needed or id(out._data) in needed:
            kept.append(node)
            for t in node.inputs:
                needed.update((id(t), id(t._data)))
    return loss, aux, kept[::-1], rec.reads


def _leaves_needing_grad(nodes: list[Node]) -> list[Tensor]:
    """Tensors needing gradients that the ops use but did not make (parameters, ...)."""
    made = {id(n.out) for n in nodes}
    seen: dict[int, Tensor] = {}
    for node in nodes:
        for t in node.inputs:
            if t._requires_grad and id(t) not in made and id(t) not in seen:
                seen[id(t)] = t
    return list(seen.values())


def classify(nodes: list[Node], targs: tuple[Tensor, ...], params: list[Tensor]
             ) -> list[list[tuple]]:
    """For each op, where each input comes from: ("arg", i), ("value", j) (an earlier op's
    result), ("param", k) or ("const", tensor). A tensor wrapping the very array of an
    argument, a result or a parameter (``x.detach()``, ``as_constant``) is that array."""
    where: dict[int, tuple] = {}
    arrays: dict[int, tuple] = {}
    for i, t in enumerate(targs):
        where[id(t)] = arrays[id(t._data)] = ("arg", i)
    for k, p in enumerate(params):
        where[id(p)] = arrays.setdefault(id(p._data), ("param", k))
    out_kinds = []
    for j, node in enumerate(nodes):
        out_kinds.append([where.get(id(t)) or arrays.get(id(t._data)) or ("const", t)
                          for t in node.inputs])
        where[id(node.out)] = arrays[id(node.out._data)] = ("value", j)
    return out_kinds


def _perturbed(a: np.ndarray) -> np.ndarray:
    """Other values in the same range (rows rolled, floats mirrored within [min, max])."""
    b = np.roll(a, 1, axis=0) if a.ndim and a.shape[0] > 1 else a.copy()
    if a.dtype.kind == "f" and a.size and np.isfinite(a).all():
        b = np.asarray(a.min() + a.max() - b, dtype=a.dtype)
    return b


_FIX = ("Fix: compute it with glassgrad ops on tensors (x > 0, x.astype(...), gg.where) "
        "instead of NumPy on .data / .numpy(), or run this step eagerly (no gg.compile).")


def _check_replayable(rec: Recording, captured: dict[int, Tensor]) -> None:
    """Record the loss function a second time on other values (arguments and parameters),
    and refuse if the ops differ or an input of an op is a new array with other values:
    then something was computed from the data outside the ops (with NumPy on ``.data``, or
    an ``if`` on a value), and a replay would freeze it."""
    others = tuple(Tensor._wrap(_perturbed(t._data), t._requires_grad) for t in rec.targs)
    saved = [p._data for p in rec.params]
    try:
        for p in rec.params:
            p._data = _perturbed(p._data)
        _, _, nodes2, _ = _run_recorded(rec.loss_fn, others, captured)
        kinds2 = classify(nodes2, others, rec.params)
    finally:
        for p, d in zip(rec.params, saved):
            p._data = d
    _same_ops(rec.nodes, nodes2)
    args1 = {id(t._data): i for i, t in enumerate(rec.targs)}
    args2 = {id(t._data): i for i, t in enumerate(others)}
    for (op, _, out), (_, _, out2), ks1, ks2 in zip(rec.nodes, nodes2, rec.kinds, kinds2):
        if not _same(out._attrs, out2._attrs, args1, args2):
            raise CompileError(
                f"the attributes of '{op.name}' (output {out.shape}) depend on the data, so a "
                f"recording would freeze them. {_FIX}"
            )
        for pos, (k1, k2) in enumerate(zip(ks1, ks2)):
            if not _same_input(k1, k2):
                raise CompileError(
                    f"input {pos} of '{op.name}' (shape {out.shape}) was computed from the "
                    f"data outside glassgrad's ops, so a recording would freeze its values. "
                    f"{_FIX}"
                )


def _same_ops(nodes: list[Node], nodes2: list[Node]) -> None:
    """Refuse if the second run ran other ops (or ops of other shapes) than the first."""
    ops1 = [(n.op.name, n.out.shape) for n in nodes]
    ops2 = [(n.op.name, n.out.shape) for n in nodes2]
    if ops1 == ops2:
        return
    k = next((i for i, (a, b) in enumerate(zip(ops1, ops2)) if a != b),
             min(len(ops1), len(ops2)))
    raise CompileError(
        f"the loss function ran other ops for other data (op {k}: "
        f"{ops1[k] if k < len(ops1) else 'none'} vs {ops2[k] if k < len(ops2) else 'none'}): "
        f"a Python decision depends on the values, so one recording cannot stand for every "
        f"call. {_FIX}"
    )


def _same_input(k1: tuple, k2: tuple) -> bool:
    """Whether an op's input came from the same place in both runs; a constant counts as
    the same when it holds the same values (made afresh by each run, say)."""
    if k1[0] == "const" and k2[0] == "const":
        c1, c2 = k1[1], k2[1]
        return c1 is c2 or (c1._data.dtype == c2._data.dtype
                            and np.array_equal(c1._data, c2._data, equal_nan=True))
    return k1 == k2


def _same(a: Any, b: Any, args1: dict[int, int], args2: dict[int, int]) -> bool:
    """Whether two recordings' attributes agree; an argument's own array (an index passed
    in) is replayed from the argument, so it agrees with the same argument's array."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], args1, args2) for k in a)
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_same(x, y, args1, args2) for x, y in zip(a, b))
    if id(a) in args1 or id(b) in args2:
        return args1.get(id(a), -1) == args2.get(id(b), -2)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return a == b

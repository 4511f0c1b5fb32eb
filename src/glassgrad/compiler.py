"""``compile``: record one training step's forward and backward pass, replay it as plain NumPy.

An eager step pays Python bookkeeping on every op: a Tensor per result, a node per op, a
walk of the graph, checks of shapes and dtypes. For a small network that bookkeeping costs
more than the arithmetic. ``compile(loss_fn)`` runs ``loss_fn`` under an engine observer,
notes every op it ran, and writes the whole step (forward ops, then the backward
rules of ``ops.py`` in reverse order, with the engine's un-broadcasting and accumulation
decided once, for these shapes) as one straight-line Python function. Calling the result
replays that function: NumPy calls and nothing else. Its source is readable
(``step.source``): it is the "backprop by hand in NumPy" a textbook would write, generated.

A recording holds only while what it read is unchanged, so, as ``torch.compile`` does, each
one carries guards (``compiler_guards``), checked before every replay: the arguments' shapes,
dtypes and requires_grad, the parameters' identity and requires_grad, modules' train/eval
mode and forward hooks, the numbers, tensors and functions the loss function captures. A
failed guard records again; at most ``Compiled.cache_size`` recordings are kept (least
recently used dropped). What no guard can make right is refused with ``CompileError``: a
value read in Python during recording (``.item()``, ``float()``, ``if t:``) from a tensor
the step computed, a parameter, or an argument of several elements; random draws (Dropout
in training mode). The function is also recorded twice, the second time on other values,
and refused if the two disagree where a replay would freeze a value (NumPy on ``.data``;
one more sample, not a proof). An integer array or number passed as an index is replayed as
an input. While an observer is attached (``explain.trace``, ``diagnose.Monitor``,
``detect_anomaly``) calls run eagerly, so those tools see every op.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from . import autograd, blas, compiler_inplace
from .autograd import STATE, unbroadcast
from .compiler_guards import Guards
from .ops import Op
from .tensor import Tensor, tensor


class CompileError(RuntimeError):
    """``loss_fn`` does something a recorded step cannot replay faithfully."""


def compile(loss_fn: Callable[..., Tensor], optimizer: Any = None) -> Compiled:  # noqa: A001
    """Make ``loss_fn`` a compiled training step: ``step(*args)`` does what
    ``loss = loss_fn(*args); loss.backward()`` does, and returns the loss (detached).

    ``loss_fn`` may also return ``(loss, *extra)``, extra tensors such as the model's output
    for metrics; the step then returns ``(loss, *extra)``, all detached.

    Gradients accumulate into ``.grad`` of every tensor with ``requires_grad=True`` that the
    loss depends on (the model's parameters, and arguments that require grad), exactly as
    ``backward()`` would; the optimizer is used as usual afterwards. The first call with new
    shapes runs ``loss_fn`` twice (the second time on other values, as a check) and records;
    later calls replay the recording without running ``loss_fn`` while its guards hold (the
    same parameters and modes, captured numbers, ...: see the module docstring), and record
    again when one does not.

    With ``optimizer``, the step is a whole training step, ``optimizer.zero_grad();
    loss_fn(*args).backward(); optimizer.step()``, and where the optimizer's update of a
    parameter is linear in its gradient (``Optimizer.fold``: SGD, also with weight decay or
    momentum) the update is folded into the matrix product that makes the gradient: for a
    linear layer W ← W − lr·Gᵀ@x is one BLAS call (``blas.gemm``), so that gradient is never
    stored and the update makes no pass of its own over W (in a network with a parameter of
    at least ``blas.BLAS_MIN`` elements: below that a fold gains nothing). The gradients are
    used up: after the step ``.grad`` of the optimizer's parameters is None (compile without
    ``optimizer`` to inspect or clip them).

    >>> import glassgrad as gg
    >>> model = gg.nn.MLP([2, 3, 1], activation="tanh", seed=0)
    >>> opt = gg.optim.SGD(model.parameters(), lr=0.1)
    >>> step = gg.compile(lambda X, y: gg.nn.functional.mse_loss(model(X), y))
    >>> X, y = gg.data.xor()
    >>> y = y.reshape(-1, 1)
    >>> for _ in range(3):
    ...     opt.zero_grad()
    ...     loss = step(X, y)
    ...     opt.step()
    >>> print(step.source.splitlines()[0])
    def step(a0, a1):
    """
    if not callable(loss_fn):
        raise TypeError(
            f"compile(): expected a function that returns a scalar loss, got "
            f"{type(loss_fn).__name__}. Fix: gg.compile(lambda X, y: loss(model(X), y))."
        )
    if optimizer is not None and not (isinstance(getattr(optimizer, "param_groups", None), list)
                                      and callable(getattr(optimizer, "step", None))):
        raise TypeError(
            f"compile(): optimizer must be a glassgrad optimizer (gg.optim.SGD, ...), got "
            f"{type(optimizer).__name__}. Fix: gg.compile(loss_fn, optimizer=opt), or leave "
            f"optimizer out and call opt.step() after each step."
        )
    return Compiled(loss_fn, optimizer)


class Compiled:
    """A loss function with its recorded steps, one per argument signature (shapes, dtypes,
    requires_grad), at most ``cache_size`` of them: a new signature beyond that drops the
    least recently used recording. Each recording is replayed only while its guards hold
    (``compiler_guards``); otherwise the call records again, and ``why_recorded`` says why."""

    cache_size: int = 8

    def __init__(self, loss_fn: Callable[..., Tensor], optimizer: Any = None) -> None:
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self._programs: OrderedDict[tuple, _Program] = OrderedDict()  # oldest use first
        self._last: _Program | None = None
        self.why_recorded = ""  # why the latest recording was made

    def __call__(self, *args: Any) -> Tensor | tuple[Tensor, ...]:
        prog = self._last
        if prog is not None and not STATE.hooks and STATE.grad_enabled and prog.guard(args):
            return prog.run(args)  # the common case: the previous call's recording holds
        targs = tuple([a if type(a) is Tensor else _as_tensor(a) for a in args])
        if STATE.hooks or not STATE.grad_enabled:
            return self._eager(targs)
        key = tuple([(t._data.shape, t._data.dtype, t._requires_grad) for t in targs])
        prog = self._programs.get(key)
        if prog is not None and prog.guard(targs):
            self._programs.move_to_end(key)
            self._last = prog
            return prog.run(targs)
        why = ("no recording for these argument shapes and dtypes" if prog is None
               else f"no longer true: {prog.changed(targs)}")
        prog = _record(self.loss_fn, targs, self.optimizer)
        self._programs[key] = prog  # (replaces a stale recording of the same signature)
        self._programs.move_to_end(key)
        while len(self._programs) > self.cache_size:
            self._programs.popitem(last=False)
        self._last = prog
        self.why_recorded = why
        return prog.first_result

    def _eager(self, targs: tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
        if not STATE.grad_enabled:
            raise autograd.GraphError(
                "a compiled step computes gradients, but gradients are off here (inside "
                "gg.no_grad()). Fix: call it outside no_grad, or call the uncompiled loss "
                "function to evaluate the loss without gradients."
            )
        opt = self.optimizer
        if opt is not None:
            opt.zero_grad()
        loss, aux = _split(self.loss_fn(*targs))
        loss.backward()
        if opt is not None:
            opt.step()
            opt.zero_grad()
        return loss.detach() if aux is None else (loss.detach(), *[a.detach() for a in aux])

    def reset(self) -> None:
        """Forget every recording: the next call records again. Not needed after a change
        the guards see (a module's train/eval mode, a parameter replaced, a captured number);
        needed after changing something they do not follow (a value in a dict or a plain
        object that the loss function reads)."""
        self._programs.clear()
        self._last = None

    @property
    def source(self) -> str:
        """The Python source of the most recently used recording."""
        if self._last is None:
            raise CompileError("nothing recorded yet: call the compiled step once first")
        return self._last.source

    def __repr__(self) -> str:
        name = getattr(self.loss_fn, "__qualname__", repr(self.loss_fn))
        return f"<compiled {name}: {len(self._programs)} recording(s)>"


# --------------------------------------------------------------------------- recording
class _Recorder:
    """Engine observer: notes every op run while the loss function is recorded, and every
    value read in Python (``.item()``, ``float()``, ``if t:``, ...), which it refuses or,
    for an argument or a captured tensor of one element, keeps for a guard."""

    def __init__(self, targs: tuple[Tensor, ...], captured: dict[int, Tensor]) -> None:
        self.nodes: list[tuple[Op, tuple[Tensor, ...], Tensor]] = []
        self.made: set[int] = set()  # results and their arrays (a detached one shares it)
        self.args = {id(t): i for i, t in enumerate(targs)}
        self.args.update((id(t._data), i) for i, t in enumerate(targs))
        self.captured = captured
        self.reads: list[tuple[Tensor, int | None, Any, str]] = []  # (t, arg, value, how)

    def on_forward(self, op: Op, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        self.nodes.append((op, inputs, out))
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
            self.reads.append((t, arg, t._data.tolist(), how))  # guarded: a new value records
            return
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

    def on_random(self, what: str) -> None:
        raise CompileError(
            f"{what} drew random numbers while the step was being recorded: a replay would "
            f"reuse the same draw on every call. Fix: compile with the model in eval() mode "
            f"(model.eval()), or run steps that use {what} eagerly (without gg.compile)."
        )


def _as_tensor(a: Any) -> Tensor:
    if isinstance(a, Tensor):
        return a
    if isinstance(a, np.ndarray):
        return Tensor._wrap(a)  # no copy: the recording sees the caller's array
    return tensor(a)


def _split(result: Any) -> tuple[Tensor, tuple[Tensor, ...] | None]:
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


def _literal(v: Any) -> bool:
    """Whether ``repr(v)`` is a faithful Python literal for an op attribute."""
    if v is None or isinstance(v, bool | int | float | str):
        return isinstance(v, bool | int | str) or v is None or np.isfinite(v)
    if isinstance(v, tuple):
        return all(_literal(x) for x in v)
    return False


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


class _Writer:
    """Names values and emits the lines of one program."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}  # id(Tensor) -> variable name
        self.env: dict[str, Any] = {"unbroadcast": unbroadcast}
        self.lines: list[str] = []
        self.meta: list[compiler_inplace.Line | None] = []  # per line, for the in-place plan
        self.arrays: dict[str, list[np.ndarray]] = {}  # temporary name -> arrays it held
        self.consts: list[Tensor] = []  # leaves that are neither arguments nor parameters
        self.params: list[Tensor] = []  # leaves needing gradients, not passed as arguments
        self.keep: list[Any] = []  # objects whose ids are names' keys: kept alive
        self.arg_arrays: dict[int, str] = {}  # id(argument's array) -> its name, a0, ...

    def bind(self, name: str, obj: Any) -> str:
        if name in self.env and self.env[name] is not obj:
            k = 2
            while f"{name}_{k}" in self.env and self.env[f"{name}_{k}"] is not obj:
                k += 1
            name = f"{name}_{k}"
        self.env[name] = obj
        return name

    def emit(self, line: str, meta: compiler_inplace.Line | None = None,
             target: str = "", value: Any = None) -> None:
        self.lines.append(line)
        self.meta.append(meta)
        if target:
            values = value if isinstance(value, tuple | list) else (value,)
            self.arrays.setdefault(target, []).extend(
                v for v in values if isinstance(v, np.ndarray))

    def leaf(self, t: Tensor) -> str:
        """Name a constant: a tensor that is neither an argument, a parameter nor a result."""
        name = f"c{len(self.consts)}"
        self.consts.append(t)
        self.names[id(t)] = name
        self.keep.append(t)
        return name

    def attrs(self, attrs: dict | None) -> str:
        if not attrs:
            return ""
        return "".join(f", {k}={self.attr(v)}" for k, v in attrs.items())

    def attr(self, v: Any) -> str:
        """An op attribute as source: an argument's array by the argument's name (an index
        passed in is read on every call, not frozen), a literal as itself, else a constant."""
        if isinstance(v, np.ndarray) and id(v) in self.arg_arrays:
            return self.arg_arrays[id(v)]
        if isinstance(v, tuple) and self.has_arg(v):
            return "(" + "".join(f"{self.attr(x)}, " for x in v) + ")"
        if _literal(v):
            return repr(v)
        return self.bind(str(v) if isinstance(v, np.dtype) else f"attr{len(self.env)}", v)

    def has_arg(self, v: Any) -> bool:
        if isinstance(v, tuple):
            return any(self.has_arg(x) for x in v)
        return isinstance(v, np.ndarray) and id(v) in self.arg_arrays


def _run_recorded(loss_fn: Callable[..., Tensor], targs: tuple[Tensor, ...],
                  captured: dict[int, Tensor]):
    """Run ``loss_fn`` under the recorder: the loss, the ops it depends on, in order (a
    metric computed on the side is not replayed), and the values it read in Python."""
    rec = _Recorder(targs, captured)
    with autograd.hook(rec):
        loss, aux = _split(loss_fn(*targs))
    needed = {id(loss), id(loss._data)}  # tensors, and arrays (a wrapper shares its array)
    for a in aux or ():
        needed.update((id(a), id(a._data)))
    kept = []
    for node in reversed(rec.nodes):
        out = node[2]
        if id(out) in needed or id(out._data) in needed:
            kept.append(node)
            for t in node[1]:
                needed.update((id(t), id(t._data)))
    return loss, aux, kept[::-1], rec.reads


def _leaves_needing_grad(nodes: list) -> list[Tensor]:
    """Tensors needing gradients that the ops use but did not make (parameters, ...)."""
    made = {id(n[2]) for n in nodes}
    seen: dict[int, Tensor] = {}
    for _, inputs, _ in nodes:
        for t in inputs:
            if t._requires_grad and id(t) not in made and id(t) not in seen:
                seen[id(t)] = t
    return list(seen.values())


def _classify(nodes: list, targs: tuple[Tensor, ...], params: list[Tensor]) -> list[list]:
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
    for j, (_, inputs, out) in enumerate(nodes):
        kinds = []
        for t in inputs:
            kind = where.get(id(t)) or arrays.get(id(t._data)) or ("const", t)
            kinds.append(kind)
        out_kinds.append(kinds)
        where[id(out)] = arrays[id(out._data)] = ("value", j)
    return out_kinds


def _perturbed(a: np.ndarray) -> np.ndarray:
    """Other values in the same range (rows rolled, floats mirrored within [min, max])."""
    b = np.roll(a, 1, axis=0) if a.ndim and a.shape[0] > 1 else a.copy()
    if a.dtype.kind == "f" and a.size and np.isfinite(a).all():
        b = np.asarray(a.min() + a.max() - b, dtype=a.dtype)
    return b


def _check_replayable(loss_fn: Callable[..., Tensor], targs: tuple[Tensor, ...],
                      nodes: list, kinds: list[list], params: list[Tensor],
                      captured: dict[int, Tensor]) -> None:
    """Record ``loss_fn`` a second time on other values (arguments and parameters), and
    refuse if the ops differ or an input of an op is a new array with other values: then
    something was computed from the data outside the ops (with NumPy on ``.data``, or an
    ``if`` on a value), and a replay would freeze it."""
    others = tuple(Tensor._wrap(_perturbed(t._data), t._requires_grad) for t in targs)
    saved = [p._data for p in params]
    try:
        for p in params:
            p._data = _perturbed(p._data)
        _, _, nodes2, _ = _run_recorded(loss_fn, others, captured)
        kinds2 = _classify(nodes2, others, params)
    finally:
        for p, d in zip(params, saved):
            p._data = d
    fix = ("Fix: compute it with glassgrad ops on tensors (x > 0, x.astype(...), gg.where) "
           "instead of NumPy on .data / .numpy(), or run this step eagerly (no gg.compile).")
    ops1 = [(n[0].name, n[2].shape) for n in nodes]
    ops2 = [(n[0].name, n[2].shape) for n in nodes2]
    if ops1 != ops2:
        k = next((i for i, (a, b) in enumerate(zip(ops1, ops2)) if a != b),
                 min(len(ops1), len(ops2)))
        raise CompileError(
            f"the loss function ran other ops for other data (op {k}: "
            f"{ops1[k] if k < len(ops1) else 'none'} vs {ops2[k] if k < len(ops2) else 'none'}): "
            f"a Python decision depends on the values, so one recording cannot stand for every "
            f"call. {fix}"
        )
    args1 = {id(t._data): i for i, t in enumerate(targs)}
    args2 = {id(t._data): i for i, t in enumerate(others)}
    for (op, _, out), (_, _, out2), ks1, ks2 in zip(nodes, nodes2, kinds, kinds2):
        if not _same(out._attrs, out2._attrs, args1, args2):
            raise CompileError(
                f"the attributes of '{op.name}' (output {out.shape}) depend on the data, so a "
                f"recording would freeze them. {fix}"
            )
        for pos, (k1, k2) in enumerate(zip(ks1, ks2)):
            if k1[0] == "const" and k2[0] == "const":
                c1, c2 = k1[1], k2[1]
                if c1 is c2 or (c1._data.dtype == c2._data.dtype and
                                np.array_equal(c1._data, c2._data, equal_nan=True)):
                    continue
            elif k1 == k2:
                continue
            raise CompileError(
                f"input {pos} of '{op.name}' (shape {out.shape}) was computed from the data "
                f"outside glassgrad's ops, so a recording would freeze its values. {fix}"
            )


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


def _record(loss_fn: Callable[..., Tensor], targs: tuple[Tensor, ...],
            optimizer: Any = None) -> _Program:
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
    kinds = _classify(nodes, targs, params)
    _check_replayable(loss_fn, targs, nodes, kinds, params, scan.tensors)

    w = _Writer()
    w.params = params
    for i, t in enumerate(targs):
        w.names[id(t)] = f"a{i}"
        w.arg_arrays[id(t._data)] = f"a{i}"
    for k, p in enumerate(params):
        w.names[id(p)] = f"p{k}"
        w.keep.append(p)

    # ---- forward: one line per op
    w.emit("# forward")
    nodes_named: list[str] = []
    for op, inputs, out in nodes:
        if op.name == "getitem" and _has_bool_index(out._attrs):
            raise CompileError(
                "indexing with a boolean mask gives a result whose shape depends on the "
                "values, which a recording cannot replay. Fix: use gg.where(mask, x, 0) "
                "instead of x[mask], or run this step eagerly."
            )
        args = []
        for t, kind in zip(inputs, kinds[len(nodes_named)]):
            name = w.names.get(id(t))
            if name is None:
                where, k = kind
                name = {"arg": "a", "value": "v", "param": "p"}.get(where, "") + str(k) \
                    if where != "const" else w.leaf(t)
                w.names[id(t)] = name
                w.keep.append(t)
            args.append(name)
        v = f"v{len(nodes_named)}"
        nodes_named.append(v)
        w.names[id(out)] = v
        w.keep.append(out)
        fn = w.bind(op.name, op.forward)
        w.emit(f"{v} = {fn}({', '.join(args)}{w.attrs(out._attrs)})  # {out.shape} {op.name}",
               compiler_inplace.forward_line(v, fn, args, op, op.name + "_into"), v, out._data)

    # ---- backward: the engine's walk, decided once for these shapes
    w.emit("# backward")
    grads: dict[int, str] = {id(loss): "g_" + w.names[id(loss)]}
    seed = np.ones(loss.shape, dtype=loss.dtype)
    w.emit(f"{grads[id(loss)]} = {w.bind('seed', seed)}  # dL/dL = 1")
    sim: dict[int, Any] = {id(loss): seed}  # the gradients themselves, to learn their shapes
    # A parameter whose gradient is one plain rule line with a folded variant: (line index,
    # the variant, its name, the rule's arguments), for an optimizer to fold its update into.
    foldable: dict[int, tuple[int, Callable, str, str]] = {}
    param_ids = {id(p) for p in params}
    by_out = {id(n[2]): n for n in nodes}
    # The engine's own order of the walk, so gradients accumulate in the same order.
    for node in autograd.topological_order((loss,)):
        if node._op is None or id(node) not in grads:
            continue
        op, inputs, out = by_out[id(node)]
        g, gval = grads[id(out)], sim[id(out)]
        vals = [t._data for t in inputs]
        names = [w.names[id(t)] for t in inputs]
        call_args = f"{g}, {w.names[id(out)]}, {', '.join(names)}{w.attrs(out._attrs)}"
        attrs = out._attrs or {}
        if op.rules is None:  # variadic: one call gives every input's gradient
            all_name = f"all_{w.names[id(out)]}"
            all_vals = op.backward(gval, out._data, *vals, **attrs)
            w.emit(f"{all_name} = {w.bind(op.name + '_grads', op.backward)}({call_args})",
                   None, all_name, tuple(all_vals))
        rule_names = _rule_names(op) if op.rules is not None else []
        for i, t in enumerate(inputs):
            if not t._requires_grad:
                continue
            target = "g_" + w.names[id(t)]
            meta = None
            if op.rules is None:
                expr, pg = f"{all_name}[{i}]", all_vals[i]
            else:
                rule = op.rules[i]
                if rule is None:
                    continue
                pg = rule(gval, out._data, *vals, **attrs)
                fn = w.bind(rule_names[i], rule)
                expr = f"{fn}({call_args})"
                into = op.grads_into[i] if i < len(op.grads_into) else None
                meta = compiler_inplace.rule_line(target, fn, [g, w.names[id(out)], *names],
                                                  rule, into, rule_names[i] + "_into")
            if pg is None:
                continue
            pdata = t._data
            if pg.shape != pdata.shape:
                pg = unbroadcast(pg, pdata.shape)
                expr = f"unbroadcast({expr}, {pdata.shape!r})"
            if pg.dtype != pdata.dtype:
                pg = pg.astype(pdata.dtype)
                expr = f"({expr}).astype({w.bind(str(pdata.dtype), pdata.dtype)})"
            if meta is not None and (expr.startswith(("unbroadcast", "(")) or id(t) in grads):
                meta.into = None  # only a plain `target = rule(...)` may write over grad
            if id(t) in grads:
                foldable.pop(id(t), None)  # a sum of gradients: no one product to fold into
                sim[id(t)] = sim[id(t)] + pg
                w.emit(f"{target} = {target} + {expr}", meta, target, sim[id(t)])
            else:
                fold = op.grads_fold[i] if i < len(op.grads_fold) else None
                if fold is not None and id(t) in param_ids and expr == f"{fn}({call_args})":
                    foldable[id(t)] = (len(w.lines), fold,
                                       w.bind(rule_names[i] + "_fold", fold), call_args)
                grads[id(t)] = target
                sim[id(t)] = pg
                w.emit(f"{target} = {expr}", meta, target, pg)

    # ---- the leaves that receive gradients: parameters, then arguments that require grad
    leaves = [t for t in w.params if id(t) in grads]
    arg_leaves = [i for i, t in enumerate(targs) if t._requires_grad and id(t) in grads]
    receivers = [*leaves, *(targs[i] for i in arg_leaves)]
    # A gradient array that is also something else (the seed, a value, another leaf's
    # gradient) is copied before it is stored, as the engine does.
    others = {id(seed)} | {id(t._data) for t in (*w.keep, *targs)}
    outs = []
    for t in receivers:
        name, arr = grads[id(t)], sim[id(t)]
        if id(arr) in others:
            name += ".copy()"
        others.add(id(arr))
        outs.append(name)
    aux_ret = "" if aux is None else f", ({''.join(_aux_name(w, a) + ', ' for a in aux)})"
    external = [seed, *(t._data for t in (*targs, *w.params, *w.consts))]
    source, fn = _assemble(w, len(targs), w.lines, w.meta, _ret(w, loss, outs, aux_ret),
                           external)

    # The first call's result: replay on these very inputs and check it against the eager
    # engine once, so a recording that would differ is caught here, not in a training run.
    result = fn(*(t._data for t in targs))
    pgrads = result[1]
    ref = autograd.grad(loss, [*leaves, *(targs[i] for i in arg_leaves)], allow_unused=True)
    for t, mine, theirs in zip([*leaves, *(targs[i] for i in arg_leaves)], pgrads, ref):
        scale = _scale(theirs._data) if theirs is not None else 0
        if theirs is None or not np.allclose(mine, theirs._data, rtol=1e-5, atol=1e-6 * scale,
                                             equal_nan=True):
            raise CompileError(
                f"internal error: the recorded step's gradient for a tensor of shape "
                f"{t.shape} differs from the engine's. Please report it; run the step "
                f"eagerly (without gg.compile) meanwhile."
            )
    del ref, theirs  # the engine's gradients: not needed again, and as large as the model
    prog = _Program(fn, source, w.params, leaves, arg_leaves, aux is not None, optimizer)
    if callable(getattr(optimizer, "fold", None)):  # (a duck-typed optimizer: no folds)
        _fold_updates(prog, w, targs, loss, foldable, outs, aux_ret, external, result)
    prog.guard, prog.changed = _guards(loss_fn, targs, w, reads)
    prog.first_result = prog.finish(targs, result)
    return prog


def _scale(a: np.ndarray) -> float:
    """The largest finite magnitude in ``a`` (at least 1): the scale of a tolerance that a
    NaN or Inf gradient (bad data, not a wrong program) must not turn into NaN."""
    a = np.abs(a)
    return float(np.max(a, where=np.isfinite(a), initial=1.0))


def _ret(w: _Writer, loss: Tensor, outs: list[str], aux_ret: str) -> str:
    """The program's return line: the loss, the gradients ``outs``, the extra outputs."""
    return (f"    return {w.names[id(loss)]}, ({', '.join(outs)}{',' if len(outs) == 1 else ''})"
            f"{aux_ret}")


def _assemble(w: _Writer, nargs: int, lines: list[str], meta: list, ret: str,
              external: list[np.ndarray], extra_arg: str = "") -> tuple[str, Callable]:
    """The program's source, with in-place lines and ``del``s added, and its function."""
    head = [f"def step({', '.join([*(f'a{i}' for i in range(nargs)), *extra_arg.split()])}):"]
    for k, t in enumerate(w.params):
        head.append(f"    {w.names[id(t)]} = {w.bind('P', w.params)}[{k}]._data"
                    f"  # parameter {t.shape}")
    for k, t in enumerate(w.consts):
        head.append(f"    {w.names[id(t)]} = {w.bind('C', w.consts)}[{k}]._data"
                    f"  # constant {t.shape}")
    lines = compiler_inplace.plan(lines, meta, w.arrays, external, _TEMPORARY.findall(ret),
                                  w.bind)
    body = ["    " + line for line in _free_after_last_use(lines, ret)]
    source = "\n".join([*head, *body, ret]) + "\n"
    ns = dict(w.env)
    exec(_compile_source(source), ns)  # noqa: S102  (our own source, built from the op table)
    return source, ns["step"]


def _fold_updates(prog: _Program, w: _Writer, targs: tuple[Tensor, ...], loss: Tensor,
                  foldable: dict[int, tuple[int, Callable, str, str]], outs: list[str],
                  aux_ret: str, external: list[np.ndarray], result: tuple) -> None:
    """Give ``prog`` a second program in which each parameter the optimizer holds, whose
    gradient is one product with a folded variant and whose array nothing reads afterwards,
    receives its update in that product: ``fold(c, α, β, ...)`` computes c ← α·∂L/∂p + β·c
    with the (c, α, β) that ``optimizer.fold(p)`` gives on each call."""
    held = {id(p) for g in prog.optimizer.param_groups for p in g["params"]}
    lines, meta = list(w.lines), list(w.meta)
    folded: list[Tensor] = []
    for p in prog.leaves:
        if id(p) not in held or id(p) not in foldable:
            continue
        i, fold, fold_name, call_args = foldable[id(p)]
        name = w.names[id(p)]
        if not compiler_inplace.unread_after(i, name, p._data, lines, meta, w.arrays,
                                             f"{outs} {aux_ret}"):
            continue  # a later line reads the weights: they must not change before it
        lines[i] = (f"{fold_name}(*U[{len(folded)}], {call_args})  # the optimizer's update "
                    f"of {name} in ∂L/∂{name}'s product")
        meta[i] = compiler_inplace.fold_line(fold_name, meta[i].args, fold)
        folded.append(p)
    if not any(p._data.size >= blas.BLAS_MIN for p in folded):
        return  # a small network: a fold gains nothing without BLAS, and costs a few calls
    kept = [k for k, p in enumerate(prog.leaves) if not any(p is f for f in folded)]
    n_params = len(prog.leaves)
    outs_fused = [outs[k] for k in kept] + outs[n_params:]
    source, fn = _assemble(w, len(targs), lines, meta, _ret(w, loss, outs_fused, aux_ret),
                           external, "U")
    # Check the folded program once, on these inputs, against the checked gradients:
    # targets are copies (the parameters must not move here), α and β arbitrary.
    copies = [p._data.copy() for p in folded]
    fused = fn(*(t._data for t in targs), [(c, -0.3, 0.7) for c in copies])
    grads = dict(zip(map(id, prog.leaves), result[1]))
    for p, c in zip(folded, copies):
        want = -0.3 * grads[id(p)] + 0.7 * p._data
        scale = _scale(want)
        if not np.allclose(c, want, rtol=1e-4, atol=1e-5 * scale, equal_nan=True):
            raise CompileError(
                f"internal error: the folded update of a parameter of shape {p.shape} differs "
                f"from the gradient's. Please report it; compile without optimizer= meanwhile."
            )
    if not all(np.array_equal(a, b, equal_nan=True)
               for a, b in zip(fused[1], [result[1][k] for k in kept])):
        raise CompileError("internal error: the folded program's other gradients differ. "
                           "Please report it; compile without optimizer= meanwhile.")
    prog.fused, prog.fused_source, prog.folded = fn, source, folded
    prog.fused_leaves = [prog.leaves[k] for k in kept]
    prog.unfolded_held = any(id(p) in held for p in prog.fused_leaves)


def _aux_name(w: _Writer, t: Tensor) -> str:
    """The program's name for an extra output; it must be a value the ops made, or an
    argument or parameter."""
    name = w.names.get(id(t))
    if name is None or name.startswith("c"):
        raise CompileError(
            f"the compiled function returned an extra output of shape {t.shape} that was not "
            f"computed from its arguments and parameters by glassgrad ops, so a replay could "
            f"not recompute it. Fix: return only tensors computed inside the function."
        )
    return name


_TEMPORARY = compiler_inplace.TEMPORARY


def _free_after_last_use(lines: list[str], ret: str) -> list[str]:
    """Add ``del`` after the last line that reads a value or gradient, as the eager engine
    drops each one once used: a large network then needs memory for a few layers' arrays,
    not for every array of the step at once."""
    code = [line.split("  #")[0] for line in lines]  # (comments name shapes, not values)
    last: dict[str, int] = {}
    for i, line in enumerate(code):
        for name in _TEMPORARY.findall(line):
            last[name] = i
    keep = set(_TEMPORARY.findall(ret))
    frees: dict[int, list[str]] = {}
    for name, i in last.items():
        if name not in keep:
            frees.setdefault(i, []).append(name)
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        if i in frees:
            out.append(f"del {', '.join(sorted(frees[i]))}")
    return out


def _guards(loss_fn: Callable[..., Tensor], targs: tuple[Tensor, ...], w: _Writer,
            reads: list[tuple[Tensor, int | None, Any, str]]) -> tuple[Callable, Callable]:
    """The checks a call must pass to replay this recording (``compiler_guards``): the
    arguments, the tensors the program reads, what the loss function captures (looked at
    after recording, as the recording left it) and the values it read in Python."""
    g = Guards(len(targs))
    g.arguments(targs)
    g.captured(loss_fn, "the loss function")
    g.program_tensors(w.params, w.consts)
    for t, arg, value, how in reads:
        g.value_read(t, arg, value, how)
    return g.build()


def _compile_source(source: str) -> Any:
    import builtins

    return builtins.compile(source, "<glassgrad.compile>", "exec")


def _has_bool_index(attrs: dict | None) -> bool:
    index = (attrs or {}).get("index")
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, np.ndarray) and p.dtype == np.bool_ for p in parts)


class _Program:
    """One recording: the generated function and where its gradients go; with an optimizer,
    also the function with the optimizer's updates folded in (``fused``), when it has one."""

    def __init__(self, fn: Callable, source: str, params: list[Tensor], leaves: list[Tensor],
                 arg_leaves: list[int], has_aux: bool, optimizer: Any = None) -> None:
        self.fn = fn
        self.has_aux = has_aux
        self.source = self.plain_source = source
        self.params = params
        self.leaves = leaves
        self.arg_leaves = arg_leaves
        self.optimizer = optimizer
        self.fused: Callable | None = None
        self.fused_source = ""
        self.folded: list[Tensor] = []  # parameters updated inside ``fused``
        self.fused_leaves: list[Tensor] = []  # the others, whose gradients it returns
        self.unfolded_held = False  # whether the optimizer holds any of those
        self.first_result: Tensor | tuple[Tensor, ...]
        self.guard: Callable[[tuple], bool]  # whether a call may replay this recording
        self.changed: Callable[[tuple], str | None]  # the first guard a call fails

    def run(self, targs: tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
        opt = self.optimizer
        if opt is None:
            return self.deliver(targs, self.fn(*[t._data for t in targs]), self.leaves)
        if self.fused is not None:
            folds = [opt.fold(p) for p in self.folded]
            if all(f is not None for f in folds):
                opt.zero_grad()
                result = self.fused(*[t._data for t in targs], [f[:3] for f in folds])
                loss = self.deliver(targs, result, self.fused_leaves)
                for f in folds:
                    if f[3] is not None:
                        f[3]()
                autograd.mark_modified(*self.folded)  # updated in place, inside the products
                if self.unfolded_held:  # parameters the optimizer holds but could not fold
                    opt.step()  # (their .grad is set, the folded ones' None)
                    opt.zero_grad()
                self.source = self.fused_source
                return loss
        self.source = self.plain_source
        return self.finish(targs, self.fn(*[t._data for t in targs]))

    def finish(self, targs: tuple[Tensor, ...], result: tuple) -> Tensor | tuple[Tensor, ...]:
        """Deliver the plain program's ``result``; with an optimizer, as one training step:
        gradients from zero, ``step()``, and the gradients forgotten."""
        opt = self.optimizer
        if opt is None:
            return self.deliver(targs, result, self.leaves)
        opt.zero_grad()
        loss = self.deliver(targs, result, self.leaves)
        opt.step()
        opt.zero_grad()
        return loss

    def deliver(self, targs: tuple[Tensor, ...], result: tuple, leaves: list[Tensor]
                ) -> Tensor | tuple[Tensor, ...]:
        """Accumulate the gradients into ``.grad`` of ``leaves`` (and of the arguments that
        require grad) as ``backward()`` does, and return the loss (with the extra outputs, if
        any). The program copies a gradient that the recording saw shared (one array sent to
        two leaves, the seed); store_grads copies views, so no ``.grad`` shares memory with
        anything."""
        receivers = leaves if not self.arg_leaves else [
            *leaves, *(targs[i] for i in self.arg_leaves)]
        autograd.store_grads(zip(receivers, result[1]), shared_copied=True)
        value = result[0]
        loss = Tensor._wrap(value if type(value) is np.ndarray else np.asarray(value))
        if not self.has_aux:
            return loss
        return (loss, *[Tensor._wrap(np.asarray(a)) for a in result[2]])

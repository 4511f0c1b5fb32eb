"""The engine: builds the graph as ops run, and walks it backward.

Everything generic lives here, once: recording a node, the backward walk (latest-made
node first, from a heap: see ``run_backward``), accumulating gradients of a node used
several times, summing away broadcast dimensions, casting a gradient back to its input's
dtype, freeing the graph, and the hooks that `explain`, `diagnose` and `detect_anomaly`
attach to. The rules in ``ops.py`` are bare math.

A node is simply a Tensor with ``_op`` set: its parents are ``_parents`` and the op's
keyword attributes are ``_attrs``. After a backward pass without ``retain_graph`` the
node's ``_parents`` become ``None`` (the intermediate values can be freed), which is how
a second backward pass knows to raise.

This file is the definition. For speed, ``record`` and the usual case of ``run_backward``
also exist in C (``_backward.c``, compiled by ``pip install`` where a C compiler is found),
as line-for-line copies that call back here for everything rare; ``NATIVE_WALK`` says
whether they run, ``GLASSGRAD_NATIVE=0`` turns them off, and
``tests/test_native_backward.py`` holds the two to the same results.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
import os
import threading
import warnings
import weakref
from collections.abc import Iterable, Iterator, Sequence
from heapq import heapify, heappop, heappush
from typing import TYPE_CHECKING, Any

import numpy as np

from .rule_reads import read_positions
from .tensor import Tensor

_wrap = Tensor._wrap  # a plain function: the global lookup is all record pays to reach it
_new = object.__new__  # (Tensor defines no __new__: object's is what Tensor.__new__ finds)
_ndarray = np.ndarray  # a global: np.ndarray is a module attribute read on top (~200 instructions)

if TYPE_CHECKING:
    from .ops import Op


class _ThreadState(threading.local):
    """The engine's switches for one thread, as in PyTorch: grad mode and observers are per
    thread, so an evaluation thread inside ``no_grad`` does not stop another thread's
    training from recording its graph. Class attributes are each new thread's defaults."""

    grad_enabled: bool = True
    # Objects with ``on_forward(op, inputs, out)`` and/or ``on_backward(node, grad,
    # input_grads)``; empty when nothing watches (the usual case).
    hooks: tuple[Any, ...] = ()


STATE = _ThreadState()

# How many threads have switches other than the defaults (grad mode off, or an observer).
# While none has, ``record`` skips reading the thread-local switches (a thread-local
# attribute costs about 60 ns per read, a global 10): the common case stays fast and every
# thread still sees its own mode.
_threads_changed = 0
_threads_changed_lock = threading.Lock()


def _set_switches(grad_enabled: bool, hooks: tuple[Any, ...]) -> None:
    """Set this thread's grad mode and observers, keeping ``_threads_changed`` exact."""
    global _threads_changed
    st = STATE
    was_default = st.grad_enabled and not st.hooks
    st.grad_enabled = grad_enabled
    st.hooks = hooks
    now_default = grad_enabled and not hooks
    if was_default != now_default:
        with _threads_changed_lock:
            _threads_changed += -1 if now_default else 1


# --------------------------------------------------------------------------- grad mode
class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) in which ops record no graph, in this thread.

    >>> import glassgrad as gg
    >>> w = gg.tensor([1.0, 2.0], requires_grad=True)
    >>> with gg.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """

    def __enter__(self) -> no_grad:
        self.__dict__.setdefault("_prev", []).append(STATE.grad_enabled)
        _set_switches(False, STATE.hooks)
        return self

    def __exit__(self, *exc: object) -> None:
        _set_switches(self._prev.pop(), STATE.hooks)

    def _recreate_cm(self) -> no_grad:  # as a decorator: a fresh instance per call (threads)
        return type(self)()


class enable_grad(contextlib.ContextDecorator):
    """Context manager that turns graph recording back on (inside ``no_grad``), in this
    thread."""

    def __enter__(self) -> enable_grad:
        self.__dict__.setdefault("_prev", []).append(STATE.grad_enabled)
        _set_switches(True, STATE.hooks)
        return self

    def __exit__(self, *exc: object) -> None:
        _set_switches(self._prev.pop(), STATE.hooks)

    def _recreate_cm(self) -> enable_grad:  # as a decorator: a fresh instance per call (threads)
        return type(self)()


def is_grad_enabled() -> bool:
    """Whether ops record a graph in this thread (False inside ``no_grad``)."""
    return STATE.grad_enabled


# --------------------------------------------------------------------------- hooks
@contextlib.contextmanager
def hook(observer: Any) -> Iterator[Any]:
    """Attach an observer to the engine for the duration of a ``with`` block.

    The observer may define ``on_forward(op, inputs, out)``, called after every op, and
    ``on_backward(node, grad, input_grads)``, called after every backward rule with the
    gradient arriving at ``node`` and the gradients it sends to each parent (already
    un-broadcast; ``None`` for a parent that needs none). With no observer attached the
    engine pays one falsy check per op.
    """
    attach(observer)
    try:
        yield observer
    finally:
        detach(observer)


def attach(observer: Any) -> None:
    """Attach ``observer`` to this thread's ops until ``detach(observer)`` (``hook()`` for a
    ``with`` block). Observers are per thread: ops that other threads run are not seen."""
    _set_switches(STATE.grad_enabled, (*STATE.hooks, observer))


def detach(observer: Any) -> None:
    """Remove ``observer`` from this thread's hooks (nothing happens if it is not attached)."""
    if any(h is observer for h in STATE.hooks):
        _set_switches(STATE.grad_enabled, tuple(h for h in STATE.hooks if h is not observer))


def record_constant(op: Op, inputs: tuple[Tensor, ...], out: Any) -> Tensor:
    """Wrap the result of a computation without a gradient (a comparison, argmax): never a
    graph node, but observers with ``on_constant(op, inputs, out)`` are told (``compile``
    replays it instead of freezing the values it gave)."""
    result = Tensor._wrap(out if type(out) is np.ndarray else np.asarray(out))
    for h in STATE.hooks:
        f = getattr(h, "on_constant", None)
        if f is not None:
            f(op, inputs, result)
    return result


def note_random(what: str) -> None:
    """Tell the observers that ``what`` drew random numbers outside the op table.

    Called by layers such as Dropout, only while an observer is attached: ``compile``
    refuses to freeze a random draw into a replayed program.
    """
    for h in STATE.hooks:
        f = getattr(h, "on_random", None)
        if f is not None:
            f(what)


def note_python_value(t: Tensor, how: str) -> None:
    """Tell the observers that the value of ``t`` left the graph as a Python value (``how``:
    ``".item()"``, ``"float()"``, ``"bool()"``, ``".numpy()"``, ...).

    Called by those Tensor methods, only while an observer is attached: ``compile`` refuses
    to freeze a value a Python ``if`` may have branched on, or guards on it.
    """
    for h in STATE.hooks:
        f = getattr(h, "on_python_value", None)
        if f is not None:
            f(t, how)


# --------------------------------------------------------------------------- errors
class GraphError(RuntimeError):
    """Raised for misuse of the graph: backward twice, backward from nothing, ..."""


# --------------------------------------------------------------------------- forward
def record(op: Op, inputs: tuple[Tensor, ...], out: np.ndarray, attrs: dict | None) -> Tensor:
    """Wrap a forward result in a Tensor and, if any input needs a gradient, link it in."""
    if type(out) is not _ndarray:  # NumPy returns scalars for 0-d results
        out = np.asarray(out)
    # Tensor._wrap's slot setup, written out: a call costs about 500 instructions, a tenth
    # of a small op (tests/test_eager_fastpaths.py checks both set the same slots).
    result = _new(Tensor)
    result._data = out
    result._g = None
    result._grad = None
    result._requires_grad = False
    result._op = None
    result._parents = ()
    result._attrs = attrs  # kept on every result, so observers (compile) see them too
    result._retain = False
    result.name = None
    if _threads_changed:  # some thread is in no_grad or watched: read this thread's switches
        return _record_switched(op, inputs, result)
    for t in inputs:
        if t._requires_grad:
            result._requires_grad = True
            result._op = op
            result._parents = inputs
            result._stamp = _tick()  # its place in the walk; in-place writes later invalidate it
            break
    return result


def _record_switched(op: Op, inputs: tuple[Tensor, ...], result: Tensor) -> Tensor:
    """``record``'s second half under this thread's own grad mode and observers."""
    st = STATE
    if st.grad_enabled:
        for t in inputs:
            if t._requires_grad:
                result._requires_grad = True
                result._op = op
                result._parents = inputs
                result._stamp = _tick()
                break
    for h in st.hooks:
        f = getattr(h, "on_forward", None)
        if f is not None:
            f(op, inputs, result)
    return result


# --------------------------------------------------------------------------- in-place writes
# One clock orders both the graph and in-place writes. Every node takes the next tick when it
# is made (``_stamp``): its inputs exist before it, so they have smaller stamps, and walking
# nodes latest-made first visits each node after every node that uses it (``run_backward``).
# PyTorch's version counter, as the same clock: every in-place write made through glassgrad
# (``w -= ...`` in no_grad, ``.data = ...``, optimizer steps, ``load_state_dict``, ...) takes
# a tick too, kept in ``_writes`` (the last write); a tensor stores it when written (``_ver``),
# and so does the memory it wrote (``_written``, keyed by the array that owns the memory, so
# views and ``detach()``-ed copies that share it are covered too). A write after a node was
# made has a larger tick than its stamp, so backward checks a node only when the last write
# is newer than it: one integer comparison per node. Writes straight into a NumPy array
# (``t.numpy()[0] = 5``, ``t.data[...] = 5``) bypass glassgrad and cannot be seen.
_tick = itertools.count(1).__next__  # (C code: atomic under the GIL, so threads never share
#                                       a tick, and record pays one call)
_writes = 0
_written: dict[int, list] = {}  # id(memory owner) -> [clock of last write, weakref to it]
# ``inplace_graph.route`` once an in-place op has been recorded in a graph (None until then):
# the slow path of backward follows the edges of nodes made before it to the old values.
_rebased: Any = None


def _owner(a: np.ndarray) -> np.ndarray:
    """The array that owns ``a``'s memory (views lead back to it)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def mark_modified(*tensors: Tensor, memory: bool = True) -> None:
    """Record that ``tensors`` were changed in place, so a graph that used their old values
    refuses to go backward. ``memory=False``: the tensor got a new array (``.data = ...``),
    its old memory is untouched."""
    global _writes
    clock = _writes = _tick()
    written = _written
    for t in tensors:
        t._ver = clock
        if memory:
            owner = t._data
            if owner.base is not None:  # (rare: a view) the array that owns the memory
                owner = _owner(owner)
            entry = written.get(id(owner))
            if entry is not None:
                entry[0] = clock
            else:
                key = id(owner)
                written[key] = [clock, weakref.ref(owner, lambda _, k=key: written.pop(k, None))]


def mark_modified_memo(tensors: Sequence[Tensor], memo: list[Any]) -> None:
    """``mark_modified(*tensors)`` for tensors written again and again (an optimizer's
    parameters, every step). ``memo`` is a list the caller keeps (empty at first): for each
    position it remembers the tensor, its array and that memory's ``_written`` entry, so
    while a tensor keeps its array a write skips the owner walk and the dict lookup. The
    entry lives as long as the memory's owner, which the remembered array keeps alive; a
    tensor given a new array (``.data = ...``) or another tensor at that position is looked
    up again, so every write is recorded exactly as ``mark_modified`` records it."""
    global _writes
    clock = _writes = _tick()
    if len(memo) != len(tensors):
        memo[:] = [None] * len(tensors)
    for i, t in enumerate(tensors):
        t._ver = clock
        m = memo[i]
        data = t._data
        if m is None or m[0] is not t or m[1] is not data:
            m = memo[i] = (t, data, _entry(data, clock))
        m[2][0] = clock


def _entry(data: np.ndarray, clock: int) -> list:
    """The ``_written`` entry of the memory ``data`` belongs to, made if it has none."""
    owner = _owner(data)
    key = id(owner)
    entry = _written.get(key)
    if entry is None:
        entry = _written[key] = [clock, weakref.ref(owner, lambda _, k=key: _written.pop(k, None))]
    return entry


def version(t: Tensor) -> int:
    """The clock of the last in-place write to ``t`` or its memory seen by glassgrad (0: none);
    PyTorch's ``t._version`` counts the same writes, from 0 per tensor."""
    entry = _written.get(id(_owner(t._data)))
    return max(getattr(t, "_ver", 0), entry[0] if entry is not None else 0)


# --------------------------------------------------------------------------- backward
def unbroadcast(grad: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``grad`` over the dimensions that broadcasting added or stretched to reach it.

    Works on arrays and, for higher-order gradients, on Tensors (both have ``sum``/``reshape``).
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra < 0:  # a rule returned fewer dims (e.g. a scalar); broadcast up
        return np.broadcast_to(grad, shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1
    )
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if extra:
        grad = grad.reshape(shape)
    return grad


def parents_as_used(node: Tensor) -> tuple[Tensor, ...]:
    """``node``'s inputs as it used them: after an in-place op was recorded, an input
    rebased since is its state when ``node`` was made (``inplace_graph``), else ``_parents``
    itself (empty for a leaf or a freed graph)."""
    if _rebased is None or not node._parents:
        return node._parents or ()
    from .inplace_graph import as_used  # noqa: PLC0415 (it imports this module)

    return as_used(node)


def topological_order(roots: Sequence[Tensor]) -> list[Tensor]:
    """Nodes reachable from ``roots`` that need gradients, each before the nodes it uses.

    The order of ``run_backward``'s walk: graph nodes latest-made first (by ``_stamp``; a
    node's inputs are made before it), then the leaves. ``gg.compile``'s backward lowering
    walks this order, so a compiled step accumulates gradients in the engine's order, to the
    same bits. Iterative (a stack, no recursion), so a graph of a million chained nodes is
    fine; raises if a node's graph was freed by an earlier backward pass.
    """
    nodes: list[Tensor] = []
    leaves: list[Tensor] = []
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if t._op is None:
            leaves.append(t)
            continue
        if t._parents is None:
            raise _freed_error(t)
        nodes.append(t)
        stack.extend(p for p in parents_as_used(t) if p._requires_grad and id(p) not in seen)
    nodes.sort(key=_stamp_of, reverse=True)
    return nodes + leaves


_stamp_of = operator.attrgetter("_stamp")


def to_input(grad: Any, like: Any, steps: list[tuple[str, Any]] | None = None) -> Any:
    """The gradient ``grad`` that a rule returned, as the input whose array is ``like``
    receives it: the dimensions broadcasting added summed away, cast to the input's dtype.

    The one definition of this per-edge work: ``run_backward`` calls it for an edge whose
    shape or dtype differs, ``gg.compile``'s lowering for every edge. With ``steps``, what
    was done is appended to it, for the lowering to write as source: ``("sum_to", shape)``,
    then ``("cast", dtype)``.
    """
    if grad.shape != like.shape:
        grad = unbroadcast(grad, like.shape)
        if steps is not None:
            steps.append(("sum_to", like.shape))
    if grad.dtype is not like.dtype and grad.dtype != like.dtype:
        grad = grad.astype(like.dtype)
        if steps is not None:
            steps.append(("cast", like.dtype))
    return grad


def _check_unmodified(node: Tensor, parents: tuple[Tensor, ...]) -> None:
    """Raise if a value that ``node``'s backward rules will read was written in place after
    ``node`` was made (PyTorch's "modified by an inplace operation"): the rules would compute
    the derivative at the new value, a wrong number without an error."""
    stamp = node._stamp
    for k in sorted(values_read(node, parents)):
        t = node if k < 0 else parents[k]
        if version(t) > stamp:
            raise _modified_error(node, k, t)


def values_read(node: Tensor, parents: tuple[Tensor, ...]) -> set[int]:
    """Which values ``node``'s backward rules will read (-1 its result, k its k-th input),
    for the inputs that need a gradient; every position where the op's reads are unknown."""
    op = node._op
    needed: set[int] = set()
    for i, p in enumerate(parents):
        if not p._requires_grad:
            continue
        rule = op.backward if op.rules is None else op.rules[i]
        if rule is None:
            continue
        reads = (read_positions(rule, 2 + len(parents), values_only=True)
                 if op.rules is not None else None)
        if reads is None:  # cannot tell: everything it could read
            needed.update(range(-1, len(parents)))
        else:
            needed.update(k - 2 for k in reads if k >= 1)
    return needed


def _modified_error(node: Tensor, k: int, t: Tensor) -> GraphError:
    name = f"'{t.name}' " if t.name else ""
    what = (f"the result of '{node._op.name}'" if k < 0
            else f"input {k} of '{node._op.name}'")
    return GraphError(
        f"backward(): one of the values needed to compute the gradients was modified in "
        f"place: the tensor {name}of shape {t.shape} ({what}) was written after "
        f"'{node._op.name}' used it, so its derivative would be computed at the new values, "
        f"not the ones the forward pass used. In-place writes are '-='/'+=' inside no_grad, "
        f"'.data = ...', optimizer steps and load_state_dict. Fix: make the change after "
        f"backward() (call opt.step() after loss.backward()), or run the forward pass again "
        f"after it."
    )


def _freed_error(node: Tensor) -> GraphError:
    return GraphError(
        f"backward through the graph a second time: the graph behind this "
        f"'{node._op.name}' result (shape {node.shape}) was freed by the first backward pass "
        f"to save memory. Fix: pass retain_graph=True to the first backward() (or grad()) "
        f"call if you need to go backward through the same graph again, or recompute the "
        f"forward pass."
    )


def run_backward(
    roots: Sequence[Tensor],
    seeds: Sequence[Any],
    *,
    retain_graph: bool = False,
    create_graph: bool = False,
    capture: Sequence[Tensor] | None = None,
) -> list[Any] | None:
    """Propagate ``seeds`` (one gradient per root) backward through the graph.

    With ``capture`` None, gradients accumulate into ``.grad`` of leaves (and of nodes that
    called ``retain_grad()``). With ``capture``, no ``.grad`` is touched and the gradients of
    the captured tensors are returned, in order (``None`` for one not reached). With
    ``create_graph`` the rules run on Tensors, so the gradients are themselves differentiable
    (grad of grad, Hessian-vector products).

    Nothing is changed until every rule has run: an error on the way (a freed graph, an
    anomaly) leaves every ``.grad`` and the graph as they were.
    """
    # The walk: graph nodes latest-made first, from a heap keyed by -stamp. A node's users
    # were all made after it, so by the time it is popped every gradient it will receive has
    # arrived (topological_order gives the same order, for compile). The gradient flowing into
    # each node accumulates in its ``_g`` slot (no dict lookups on the hot path); a node is
    # pushed when its first gradient arrives (``_g`` was None), so ``_g`` doubles as "seen".
    # While a single node waits it is held in ``nxt``, not in the heap: it is then the
    # latest-made waiting node, the one the heap would give next, so the order (and every
    # bit) is the heap's, and a chain (one consumer per node, most small steps) pays no heap
    # push or pop. Invariant: ``nxt`` is None or the heap is empty.
    if (_native_walk is not None and capture is None and not create_graph and len(roots) == 1
            and not _threads_changed and roots[0]._op is not None and roots[0]._g is None):
        # The usual call (one computed root, no observer, no create_graph, no capture): the
        # same walk, line for line, in C (_backward.c), which calls back here for the rare
        # paths. Everything below is its definition and runs every other case.
        _native_walk(roots[0], seeds[0], retain_graph, seeds)
        return None
    if create_graph:  # the gradients are Tensors that become .grad as they are: none shared
        seeds = [_unshared(s) for s in seeds]
    heap: list[tuple[int, Tensor]] = []
    leaves: list[Tensor] = []  # leaves reached, in order; their gradients are complete at the end
    nxt: Tensor | None = None
    if len(roots) == 1 and roots[0]._op is not None and roots[0]._g is None:
        nxt = roots[0]  # the usual call, one computed root: it waits alone (no heap, no loop)
        nxt._g = seeds[0]
    else:
        for r, s in zip(roots, seeds):
            if r._g is not None:
                r._g = r._g + s
                continue
            r._g = s
            if r._op is None:
                leaves.append(r)
            else:
                heap.append((-r._stamp, r))
        if len(heap) > 1:
            heapify(heap)
        elif heap:
            nxt = heap.pop()[1]
    walked: list[Tensor] = []  # nodes whose rules ran: freed at the end
    last_write = _writes
    captured = {id(t): i for i, t in enumerate(capture)} if capture is not None else None
    done: list[tuple[Tensor, Any]] = []  # (tensor, its complete gradient) to store or return
    if _threads_changed:  # (else: this thread has the defaults, grad on and no observer)
        hooks, prev_mode = STATE.hooks, STATE.grad_enabled
    else:
        hooks, prev_mode = (), True
    # Rules on Tensors record a graph only if asked. Without create_graph the rules see plain
    # arrays and record nothing, so grad mode needs switching only for observers' own ops.
    switch = prev_mode != create_graph and (create_graph or bool(hooks))
    if switch:
        _set_switches(create_graph, hooks)
    try:
        while True:
            if nxt is not None:
                node = nxt
                nxt = None
            elif heap:
                node = heappop(heap)[1]
            else:
                break
            g = node._g
            node._g = None
            parents = node._parents
            if parents is None:
                raise _freed_error(node)
            walked.append(node)
            if captured is not None:
                if id(node) in captured:
                    done.append((node, g))
            elif node._retain:
                done.append((node, g))
            if node._stamp < last_write:  # something was written in place since node was made
                if _rebased is not None:  # an in-place op was recorded: route old edges
                    parents = _rebased(node, walked)
                _check_unmodified(node, parents)
            op = node._op
            attrs = node._attrs
            # The rules' arguments (grad, out, *inputs), one tuple per node, spelled out for
            # the usual arities: map, enumerate and star-calls that build a tuple per call
            # cost several times more (about 6% of a small step: measured).
            n = len(parents)
            if create_graph:
                args = (g, node, *parents)
            elif n == 2:
                args = (g, node._data, parents[0]._data, parents[1]._data)
            elif n == 1:
                args = (g, node._data, parents[0]._data)
            elif n == 3:
                args = (g, node._data, parents[0]._data, parents[1]._data, parents[2]._data)
            else:
                args = (g, node._data, *map(_data_of, parents))
            rules = op.rules
            if rules is None:  # a variadic op (concatenate): one rule gives all gradients
                all_grads = op.backward(*args, **(attrs or {}))
            sent = [None] * n if hooks else None
            i = -1
            for p in parents:
                i += 1
                if not p._requires_grad:
                    continue
                if rules is None:
                    pg = all_grads[i]
                else:
                    rule = rules[i]
                    if rule is None:
                        continue
                    pg = rule(*args, **attrs) if attrs else rule(*args)
                if pg is None:
                    continue
                pdata = p._data
                # to_input does this edge's work; its conditions are tested here first so that
                # the common edge (same shape, same dtype) pays no call (a call per edge costs
                # about 1% of a small step: measured). tests/test_compile_edges.py checks the
                # two stay one definition, over the whole op table.
                if pg.shape != pdata.shape or pg.dtype is not pdata.dtype:
                    pg = to_input(pg, pdata)
                if sent is not None:
                    sent[i] = pg
                prev = p._g
                if prev is not None:
                    p._g = prev + pg
                    continue
                p._g = pg
                if p._op is None:
                    leaves.append(p)
                elif nxt is None and not heap:
                    nxt = p
                else:  # a second node waits: both go to the heap, which orders them
                    if nxt is not None:
                        heappush(heap, (-nxt._stamp, nxt))
                        nxt = None
                    heappush(heap, (-p._stamp, p))
            if hooks:
                for h in hooks:
                    f = getattr(h, "on_backward", None)
                    if f is not None:
                        f(node, g, sent)
        for leaf in leaves:
            if captured is None or id(leaf) in captured:
                done.append((leaf, leaf._g))
            leaf._g = None
    except BaseException:
        for _, node in heap:  # those still waiting hold a partial gradient
            node._g = None
        if nxt is not None:
            nxt._g = None
        for leaf in leaves:
            leaf._g = None
        raise
    finally:
        if switch:
            _set_switches(prev_mode, STATE.hooks)
    if captured is not None:
        results: list[Any] = [None] * len(captured)
        for node, g in done:
            results[captured[id(node)]] = g if create_graph else Tensor._wrap(_writable(g))
    else:
        if create_graph:
            for node, g in done:
                node._grad = g if node._grad is None else node._grad + g
        else:
            store_grads(done, seeds)
    if not retain_graph:
        for node in walked:
            node._parents = None
            node._attrs = None
    return results if captured is not None else None


_data_of = operator.attrgetter("_data")


def _writable(g: Any) -> np.ndarray:
    """``g`` as an array the caller may own and write: a copy if it is read-only (the shared
    seed, a view of it, a broadcast)."""
    g = np.asarray(g)
    return g if g.flags.writeable else g.copy()


def _unshared(seed: Any) -> Any:
    """A create_graph seed (a Tensor) that is not the shared read-only seed array."""
    if seed._data.flags.writeable:
        return seed
    return Tensor._wrap(seed._data.copy())


def store_grads(done: Iterable[tuple[Tensor, Any]], seeds: Sequence[Any] = (),
                shared_copied: bool = False) -> None:
    """Accumulate each (tensor, gradient array) pair into the tensor's ``.grad``.

    A gradient array may be a view or be handed out twice (``a + a`` sends the same array to
    both sides; a seed is the user's own array): those are copied, so no two ``.grad`` (and
    no user array) ever share memory. ``shared_copied``: the caller already copied arrays
    handed out twice (``compile`` knows which from its recording); views are still copied.
    """
    # (one seed, every backward() call: a set display costs half of set(map(id, seeds)))
    handed_out = {id(seeds[0])} if len(seeds) == 1 else set(map(id, seeds))
    check_shared = not shared_copied
    for node, g in done:
        if type(g) is not _ndarray:  # a rule on 0-d arrays returns a NumPy scalar
            g = np.asarray(g)
        elif g.base is not None:
            g = g.copy()
        elif check_shared:
            key = id(g)
            if key in handed_out:
                g = g.copy()
                key = id(g)
            handed_out.add(key)
        if node._grad is None:  # (the slot: the .grad setter's checks are for users)
            node._grad = _wrap(g)
        else:
            node.grad._data = np.asarray(node.grad._data + g)  # (0-d + 0-d: a scalar)


# The implied seed dL/dL = 1 of a single-element root, one read-only array per (dtype,
# shape), made once: making it cost about 1 µs per backward. Read-only, so an observer that
# writes into the gradient it is shown fails loudly instead of changing every later seed;
# ``store_grads`` and ``run_backward`` copy it before it could become anyone's ``.grad``.
_SEEDS: dict[tuple[np.dtype, tuple[int, ...]], np.ndarray] = {}


def _one(dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    seed = _SEEDS.get((dtype, shape))
    if seed is None:
        seed = np.ones(shape, dtype)
        seed.flags.writeable = False
        _SEEDS[(dtype, shape)] = seed
    return seed


def seed_for(t: Tensor, grad: Any) -> Any:
    """The gradient to start backward from ``t``, checked against its shape and dtype.

    Without ``grad`` (a single-element ``t``): a shared read-only array of ones."""
    if grad is None:
        data = t._data
        if data.size != 1:
            raise GraphError(
                f"backward() on a tensor of shape {t.shape} needs an explicit gradient: "
                f"only a single-element output has the implied gradient 1. Fix: reduce it "
                f"first (y.sum().backward() or y.mean().backward()), or pass the gradient "
                f"of shape {t.shape}: y.backward(grad)."
            )
        return _one(data.dtype, data.shape)
    g = grad._data if isinstance(grad, Tensor) else np.asarray(grad, dtype=t.dtype)
    if g.shape != t.shape:
        raise ValueError(
            f"backward(): the gradient has shape {g.shape} but the tensor has shape "
            f"{t.shape}; they must match. Fix: pass a gradient of shape {t.shape}."
        )
    if g.dtype != t.dtype:
        g = g.astype(t.dtype)
    return g


def check_root(t: Tensor, what: str = "backward()") -> None:
    if not t._requires_grad:
        raise GraphError(
            f"{what} on a tensor that does not require grad: it (shape {t.shape}) was not "
            f"computed from any tensor with requires_grad=True, so there is no graph to walk. "
            f"Fix: create the inputs you want gradients for with requires_grad=True "
            f"(gg.tensor(x, requires_grad=True)), and check that the computation is not "
            f"inside gg.no_grad()."
        )
    if t._op is not None and t._parents is None:
        raise _freed_error(t)


def grad(
    outputs: Tensor | Sequence[Tensor],
    inputs: Tensor | Sequence[Tensor],
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    only_inputs: bool = True,
    allow_unused: bool | None = None,
    is_grads_batched: bool = False,
    materialize_grads: bool = False,
) -> tuple[Tensor | None, ...]:
    """Gradients of ``outputs`` with respect to ``inputs``, without touching any ``.grad``.

    As ``torch.autograd.grad`` (same parameters): returns a tuple with one gradient per
    input. With ``create_graph=True`` the returned gradients are differentiable again. An
    input the outputs do not depend on is an error, or None with ``allow_unused=True``, or
    zeros with ``materialize_grads=True``. ``only_inputs`` is ignored (deprecated in
    PyTorch); ``is_grads_batched=True`` is not supported.

    >>> import glassgrad as gg
    >>> x = gg.tensor(3.0, requires_grad=True)
    >>> (dx,) = gg.grad(x ** 3, x, create_graph=True)
    >>> dx.item(), gg.grad(dx, x)[0].item()  # 3x^2 and 6x
    (27.0, 18.0)
    """
    if is_grads_batched:
        raise NotImplementedError(
            "grad(): is_grads_batched=True (vmap over grad_outputs) is not supported. Fix: "
            "call grad() once per row of grad_outputs, with retain_graph=True.")
    if materialize_grads and allow_unused is False:
        raise ValueError("grad(): materialize_grads=True gives zeros for unused inputs, so "
                         "allow_unused=False contradicts it. Fix: leave allow_unused out.")
    allow_unused = bool(allow_unused) or materialize_grads
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, Tensor | np.ndarray):
        gos: list[Any] = [grad_outputs] * len(outs) if len(outs) == 1 else [None] * len(outs)
        if grad_outputs is not None and len(outs) != 1:
            raise ValueError("grad(): give one grad_output per output, as a list")
    else:
        gos = list(grad_outputs)
    if len(gos) != len(outs):
        raise ValueError(
            f"grad(): {len(outs)} outputs but {len(gos)} grad_outputs; give one per output"
        )
    for t in ins:
        if not isinstance(t, Tensor) or not t._requires_grad:
            raise GraphError(
                "grad(): every input must be a Tensor with requires_grad=True; "
                f"got {type(t).__name__}"
                + (f" of shape {t.shape} with requires_grad=False" if isinstance(t, Tensor) else "")
            )
    for o in outs:
        check_root(o, "grad()")
    seeds = [seed_for(o, g) for o, g in zip(outs, gos)]
    if create_graph:
        seeds = [Tensor._wrap(s) for s in seeds]
    keep = create_graph if retain_graph is None else retain_graph
    res = run_backward(outs, seeds, retain_graph=keep, create_graph=create_graph, capture=ins)
    assert res is not None
    if not allow_unused:
        for i, (t, r) in enumerate(zip(ins, res)):
            if r is None:
                raise GraphError(
                    f"grad(): input {i} (shape {t.shape}) was not used to compute the outputs, "
                    f"so it has no gradient. Fix: pass allow_unused=True to get None for it."
                )
    if materialize_grads:
        res = [Tensor._wrap(np.zeros_like(t._data)) if r is None else r
               for t, r in zip(ins, res)]
    return tuple(res)


def backward(
    tensors: Tensor | Sequence[Tensor],
    grad_tensors: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    grad_variables: Any = None,
    inputs: Tensor | Sequence[Tensor] | None = None,
) -> None:
    """``torch.autograd.backward``: accumulate the gradients of ``tensors`` (seeded with
    ``grad_tensors``, one per tensor; None for a one-element tensor) into ``.grad`` of the
    leaves, or only of ``inputs`` when given. ``retain_graph`` defaults to
    ``create_graph``; ``grad_variables`` is PyTorch's deprecated name for ``grad_tensors``.
    ``t.backward(g)`` is ``backward(t, g)``."""
    if grad_variables is not None:
        if grad_tensors is not None:
            raise TypeError("backward(): got both grad_tensors and grad_variables (its old "
                            "name). Fix: pass only grad_tensors.")
        grad_tensors = grad_variables
    roots, seeds = _roots_and_seeds(tensors, grad_tensors)
    if create_graph:
        seeds = [Tensor._wrap(s) for s in seeds]
    keep = create_graph if retain_graph is None else retain_graph
    if inputs is None:
        run_backward(roots, seeds, retain_graph=keep, create_graph=create_graph)
        return
    ins = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    for i, t in enumerate(ins):
        if not isinstance(t, Tensor) or not t._requires_grad:
            raise GraphError(f"backward(): inputs[{i}] must be a Tensor that requires grad "
                             f"(only those have a .grad to accumulate into); got "
                             f"{type(t).__name__}. Fix: pass the tensors you want .grad for.")
    res = run_backward(roots, seeds, retain_graph=keep, create_graph=create_graph, capture=ins)
    assert res is not None
    reached = [(t, g) for t, g in zip(ins, res) if g is not None]
    if create_graph:
        for t, g in reached:
            t._grad = g if t._grad is None else t._grad + g
    else:
        store_grads([(t, g._data) for t, g in reached], seeds)


def _roots_and_seeds(tensors: Any, grad_tensors: Any) -> tuple[list[Tensor], list[Any]]:
    """The roots of a backward pass and their checked seed gradients."""
    if isinstance(tensors, Tensor):
        roots, given = [tensors], [grad_tensors]
    else:
        roots = list(tensors)
        if grad_tensors is None:
            given = [None] * len(roots)
        elif isinstance(grad_tensors, Tensor | np.ndarray):
            given = [grad_tensors]
        else:
            given = list(grad_tensors)
        if len(given) != len(roots):
            raise ValueError(f"backward(): {len(roots)} tensors but {len(given)} "
                             f"grad_tensors. Fix: give one gradient (or None) per tensor.")
    for r in roots:
        check_root(r)
    return roots, [seed_for(r, g) for r, g in zip(roots, given)]


def _load_native() -> Any:
    """The module ``_backward`` (C copies of ``record`` and of ``run_backward``'s usual case)
    where the extension was built (``pip install`` compiles it; see setup.py) and
    ``GLASSGRAD_NATIVE=0`` is not set; else None, and the Python definitions above run."""
    if os.environ.get("GLASSGRAD_NATIVE", "").strip() == "0":
        return None
    try:
        from . import _backward  # noqa: PLC0415
    except ImportError:
        return None
    missing = [f for f in _NATIVE_FUNCTIONS if not hasattr(_backward, f)]
    digest = _source_digest()
    stale = (f"it has no {', '.join(missing)}" if missing else
             "it was built from other sources than the C files beside it"
             if digest is not None and getattr(_backward, "SOURCE_DIGEST", "") != digest
             else None)
    if stale:  # an extension built from older sources (a failed rebuild left it there)
        warnings.warn(
            f"glassgrad._backward ({_backward.__file__}) is out of date: {stale}. glassgrad "
            f"runs its Python definitions instead (same results, slower). Fix: rebuild it "
            f"(pip install -e . in the checkout, with a C compiler, and read its errors), or "
            f"delete that file.", RuntimeWarning, stacklevel=2)
        return None
    _backward.setup(Tensor, globals())
    return _backward


def _source_digest() -> str | None:
    """setup.py's digest of the extension's C sources, from the files beside this module
    (an in-place or editable install); None where they are not there (a wheel)."""
    import hashlib  # noqa: PLC0415  (once, at import)
    from pathlib import Path  # noqa: PLC0415

    here = Path(__file__).resolve().parent
    try:
        data = b"".join((here / f).read_bytes() for f in _C_FILES)
    except OSError:
        return None
    return hashlib.sha256(data).hexdigest()[:16]


_C_FILES = ("_backward.c", "_optim.c", "_rules.c", "_steps.c", "_native.h")  # (setup.py's C_FILES)


# What the library calls in the extension: all of them, or it is not used.
_NATIVE_FUNCTIONS = ("setup", "walk", "record", "store_fresh", "sgd_step", "adam_step",
                     "rmsprop_step", "activation_grad", "set_activation_rules", "bias_relu",
                     "max_tiles_grad", "im2col", "call_step", "column_sums",
                     "set_linear_rules", "set_pass_rule")


_native = _load_native()
_native_walk = None if _native is None else _native.walk
NATIVE_WALK = _native is not None  # whether record and the usual backward pass run in C
record_python = record  # the definition, whichever runs (tests compare the two)
if _native is not None:
    record = _native.record  # noqa: F811  (the same function, in C; modules import this one)


def __getattr__(name: str) -> Any:
    # ``autograd.Function``: its module imports this one, so it loads on first use.
    if name in ("Function", "FunctionCtx"):
        from . import autograd_function

        return getattr(autograd_function, name)
    raise AttributeError(f"module 'glassgrad.autograd' has no attribute {name!r}")



def zero_grad(params: Iterable[Tensor], set_to_none: bool = True) -> None:
    """Forget the gradients of ``params``: ``.grad`` becomes None, or (``set_to_none=False``)
    zeros where there was a gradient. ``Module.zero_grad`` and ``Optimizer.zero_grad`` both
    mean this."""
    for p in params:
        if set_to_none or p._grad is None:
            p._grad = None
        else:
            p.grad._data = np.zeros_like(p._data)

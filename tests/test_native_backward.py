"""The backward walk in C (``_backward.c``) against its definition, ``run_backward`` in Python.

Every test builds the same graph twice from the same values and walks it once in C and once
in Python (``autograd._native_walk`` set to None), then compares: gradients bit for bit,
errors type and message, and what is left behind (``.grad``, the graph, references). The C
walk is loaded here even when ``GLASSGRAD_NATIVE=0`` switched it off for the library (CI
runs the whole suite once that way, so the Python walk stays tested as the default too).
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import glassgrad as gg
from glassgrad import autograd
from glassgrad.tensor import Tensor

try:
    from glassgrad import _backward
except ImportError:  # not built here (no C compiler at install time)
    _backward = None
else:  # (autograd did this at import, unless GLASSGRAD_NATIVE=0 kept it from loading it)
    _backward.setup(Tensor, autograd.__dict__)

needs_native = pytest.mark.skipif(
    _backward is None and not os.environ.get("GLASSGRAD_REQUIRE_NATIVE"),
    reason="glassgrad._backward was not built (pip install compiles it; needs a C compiler)")


def test_native_walk_is_built_where_required() -> None:
    """CI sets GLASSGRAD_REQUIRE_NATIVE=1: there the extension must have been built, and the
    library must use it unless GLASSGRAD_NATIVE=0 asks otherwise."""
    if not os.environ.get("GLASSGRAD_REQUIRE_NATIVE"):
        pytest.skip("GLASSGRAD_REQUIRE_NATIVE is not set (only CI requires the C walk)")
    assert _backward is not None, "pip install did not build glassgrad._backward"
    off = os.environ.get("GLASSGRAD_NATIVE", "").strip() == "0"
    assert autograd.NATIVE_WALK is not off


@pytest.fixture
def native(built_extension: Any) -> Callable[..., Any]:
    """``run(build)``: build() makes a graph and returns (loss, tensors); walk it in Python and
    in C, each on a fresh build; return both runs' results per tensor."""
    saved = autograd._native_walk

    def run(build: Callable[[], tuple[Tensor, list[Tensor]]], **backward: Any) -> list[Any]:
        results, slots = [], []
        for walk in (None, _backward.walk):
            autograd._native_walk = walk
            try:
                loss, tensors = build()
                loss.backward(**backward)
                grads = [t.grad for t in tensors if t.grad is not None]
                _no_memory_shared(grads, backward.get("gradient"))
                results.append([None if t.grad is None else t.grad.numpy().copy()
                                for t in tensors])
                slots.append([_slots(g) for g in grads])  # (.grad as Tensor._wrap makes it)
            finally:
                autograd._native_walk = saved
        assert slots[0] == slots[1]
        return results

    yield run
    autograd._native_walk = saved


def _no_memory_shared(grads: list[Tensor], seed: Any) -> None:
    """No two .grad share memory, and none shares the caller's seed (store_grads' rule)."""
    arrays = [g._data for g in grads]
    for i, a in enumerate(arrays):
        if seed is not None:
            assert not np.shares_memory(a, np.asarray(getattr(seed, "_data", seed)))
        for b in arrays[:i]:
            assert not np.shares_memory(a, b)


def _same_bits(python: list[Any], c: list[Any]) -> None:
    assert len(python) == len(c)
    for i, (p, q) in enumerate(zip(python, c)):
        if p is None or q is None:
            assert p is None and q is None, f"tensor {i}: a gradient in one walk only"
            continue
        assert p.dtype == q.dtype and p.shape == q.shape, f"tensor {i}"
        assert p.tobytes() == q.tobytes(), f"tensor {i}: {p} vs {q}"


@needs_native
def test_every_op_of_the_table(native: Any, cases: Any) -> None:
    """Every op's rules, over the table's own sweep of shapes (broadcast edges, reductions,
    variadic ops, class inputs), give the same gradients in both walks."""
    for name, shapes, attrs in cases.OP_CASES:
        op = gg.OPS[name]

        def build(op: Any = op, shapes: tuple = shapes, attrs: dict = attrs) -> Any:
            inputs = cases.sample(op, shapes, np.random.default_rng(7))
            out = op(*inputs, **attrs)
            weights = np.random.default_rng(3).standard_normal(out.shape)
            return (out * gg.tensor(weights)).sum(), [x for x in inputs
                                                     if isinstance(x, Tensor)]

        python, c = native(build)
        assert any(g is not None for g in c), name
        _same_bits(python, c)


def _mlp() -> tuple[Tensor, list[Tensor]]:
    """A two-layer net with cross-entropy: a chain, a bias broadcast, a float32 graph."""
    gg.manual_seed(0)
    model = gg.nn.Sequential(gg.nn.Linear(5, 7), gg.nn.Tanh(), gg.nn.Linear(7, 3))
    x = gg.tensor(np.random.default_rng(1).standard_normal((6, 5)).astype(np.float32))
    y = np.array([0, 1, 2, 1, 0, 2])
    return gg.nn.functional.cross_entropy(model(x), y), list(model.parameters())


def _diamond() -> tuple[Tensor, list[Tensor]]:
    """x reaches the loss by four paths of different lengths: the heap orders the walk, and
    x's gradient accumulates four times (in the walk's order, so the bits depend on it)."""
    x = gg.tensor(np.linspace(-1, 1, 5), requires_grad=True)
    a = x.tanh()
    b = (x * 3).exp()
    c = a * b + x.sin()
    d = (c + a).sum() + (b * x).mean()
    return d, [x]


def _reused_and_mixed() -> tuple[Tensor, list[Tensor]]:
    """``a + a`` (one array sent to both inputs), a float32 leaf meeting a float64 one (the
    edges cast), a 0-d leaf broadcast against a matrix (the edge sums it), a leaf that needs
    no gradient beside ones that do."""
    a = gg.tensor(np.arange(6.0).reshape(2, 3).astype(np.float32), requires_grad=True)
    s = gg.tensor(np.float64(0.5), requires_grad=True)
    k = gg.tensor(np.ones((2, 3)))
    out = ((a + a) * s + k).pow(2).sum()
    return out, [a, s, k]


@needs_native
@pytest.mark.parametrize("build", [_mlp, _diamond, _reused_and_mixed])
def test_graphs(native: Any, build: Callable[[], Any]) -> None:
    _same_bits(*native(build))


@needs_native
def test_retain_graph_and_retain_grad(native: Any) -> None:
    """Two passes through a kept graph accumulate; an intermediate with retain_grad() gets
    its .grad; the graph is freed after the second pass in both walks."""
    def build() -> Any:
        x = gg.tensor([0.5, -1.0, 2.0], requires_grad=True)
        h = x.exp()
        h.retain_grad()
        loss = (h * x).sum()
        loss.backward(retain_graph=True)
        return loss, [x, h]

    python, c = native(build)
    _same_bits(python, c)
    assert python[1] is not None


@needs_native
def test_errors_are_the_same_and_leave_nothing_behind(native: Any) -> None:
    messages = []
    saved = autograd._native_walk
    for walk in (None, _backward.walk):
        autograd._native_walk = walk
        try:
            # a second backward through a freed graph
            x = gg.tensor([1.0, 2.0], requires_grad=True)
            loss = (x * x).sum()
            loss.backward()
            with pytest.raises(autograd.GraphError) as freed:
                loss.backward()
            # a value the rules need, written in place after the forward pass
            w = gg.tensor([1.0, 2.0], requires_grad=True)
            loss = (w * w).sum()
            with gg.no_grad():
                w -= 1
            with pytest.raises(autograd.GraphError) as modified:
                loss.backward()
            assert w.grad is None and loss._parents is not None  # nothing stored or freed

            # a rule that raises half-way: no .grad, no partial gradient left in any slot
            class Boom(gg.autograd.Function):
                @staticmethod
                def forward(ctx: Any, t: Any) -> Any:
                    return t * 2

                @staticmethod
                def backward(ctx: Any, g: Any) -> Any:
                    raise ValueError("boom")

            a = gg.tensor([1.0, 2.0], requires_grad=True)
            mid = a * 3
            loss = (Boom.apply(mid) + mid).sum()
            with pytest.raises(ValueError, match="boom"):
                loss.backward()
            assert a.grad is None and a._g is None and mid._g is None
            assert loss._parents is not None
            messages.append((str(freed.value), str(modified.value)))
        finally:
            autograd._native_walk = saved
    assert messages[0] == messages[1]


@needs_native
def test_in_place_op_recorded_in_the_graph(native: Any) -> None:
    """An in-place op inside the graph: the walk takes the route to the old values
    (``_rebased``) through autograd.py, from C as from Python."""
    def build() -> Any:
        x = gg.tensor([0.5, 1.5, -2.0], requires_grad=True)
        y = x * 2
        y.mul_(3)
        z = y.sin()  # (sin's rule reads its input, not its result: z may be written)
        z.add_(x)
        return (z * y).sum(), [x]

    _same_bits(*native(build))


@needs_native
def test_a_long_chain(native: Any) -> None:
    """200,000 nodes: no recursion, and the same result."""
    def build() -> Any:
        x = gg.tensor([1.0], requires_grad=True)
        y = x
        for _ in range(200_000):
            y = y * 1.0000001
        return y.sum(), [x]

    _same_bits(*native(build))


@needs_native
def test_no_reference_is_leaked_or_lost(native: Any) -> None:
    """After many walks in C, the parameters, the seed and the graph hold exactly the
    references they held before (a C refcount error would show as a count that drifts, or
    as a graph that never dies)."""
    autograd._native_walk = _backward.walk  # (the fixture puts the library's own back)
    w = gg.tensor(np.ones((3, 3)), requires_grad=True)
    x = gg.tensor(np.ones((4, 3)))

    def one_step() -> weakref.ref:
        h = (x @ w).tanh()  # (recorded by the C record too, where it is built)
        loss = (h * h).sum() + h.mean()
        loss.backward()
        return weakref.ref(h)

    one_step()
    gc.collect()
    seed = autograd._SEEDS[(w._data.dtype, ())]
    ops = [gg.OPS[n] for n in ("matmul", "tanh", "mul", "sum", "mean", "add")]

    def counts() -> list[int]:
        return [sys.getrefcount(o) for o in (w, w._data, x._data, seed, Tensor, *ops)]

    before = counts()
    dead = [one_step() for _ in range(200)]
    gc.collect()
    assert all(r() is None for r in dead)  # each step's graph was freed
    assert counts() == before
    assert w.grad is not None and np.all(np.isfinite(w.grad.numpy()))


@needs_native
def test_which_calls_take_the_c_walk() -> None:
    """The C walk runs the usual call only: observers, create_graph, grad() and a thread in
    no_grad elsewhere take autograd.py's walk (which they need: hooks, Tensors, capture)."""
    calls = []

    def counting(*args: Any) -> Any:
        calls.append(1)
        return _backward.walk(*args)

    saved = autograd._native_walk
    autograd._native_walk = counting
    try:
        def loss() -> tuple[Tensor, Tensor]:
            x = gg.tensor([1.0, 2.0], requires_grad=True)
            return (x.exp() * x).sum(), x

        y, x = loss()
        y.backward()
        assert len(calls) == 1
        y, x = loss()
        gg.grad(y, x)
        y, x = loss()
        y.backward(create_graph=True)
        y, x = loss()
        with gg.explain.trace():
            y.backward()
        stop, ready = threading.Event(), threading.Event()

        def elsewhere() -> None:
            with gg.no_grad():
                ready.set()
                stop.wait(10)

        t = threading.Thread(target=elsewhere)
        t.start()
        ready.wait(10)
        try:
            y, x = loss()
            y.backward()
        finally:
            stop.set()
            t.join()
        assert len(calls) == 1
        y, x = loss()
        y.backward()
        assert len(calls) == 2
    finally:
        autograd._native_walk = saved


def test_glassgrad_native_0_switches_it_off() -> None:
    code = "from glassgrad import autograd; print(autograd.NATIVE_WALK)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "GLASSGRAD_NATIVE": "0"}, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- record
_UNSET = object()


def _slots(t: Tensor) -> dict[str, Any]:
    """Every slot that is set; arrays as (dtype, shape, bytes), the op and inputs by identity."""
    found = {}
    for s in Tensor.__slots__:
        v = getattr(t, s, _UNSET)
        if s == "__weakref__" or v is _UNSET:
            continue
        if isinstance(v, np.ndarray):
            v = (type(v), v.dtype, v.shape, v.tobytes())
        elif s == "_stamp":
            v = "a stamp"  # (each record takes the next tick: equal only in kind)
        found[s] = v
    return found


@needs_native
def test_record_sets_what_the_python_record_sets() -> None:
    """The C record against autograd.record_python: the same slots with the same values, for
    results that need a gradient and results that do not, an array and a NumPy scalar (which
    becomes a 0-d array), attributes, and a non-tuple input sequence."""
    op = gg.OPS["add"]
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    k = gg.tensor([3.0, 4.0])
    for inputs, out, attrs in [((x, k), np.array([4.0, 6.0]), None),
                               ((k, k), np.array([6.0, 8.0]), None),
                               ((x,), np.float32(2.5), {"axis": None, "keepdims": False}),
                               ((k,), np.float64(7.0), {}),
                               ([x, k], np.array([4.0, 6.0]), None)]:
        python = autograd.record_python(op, inputs, out, attrs)
        c = _backward.record(op, inputs, out, attrs)
        assert type(c) is Tensor
        assert _slots(c) == _slots(python)
        assert c._parents is python._parents and c._attrs is python._attrs
        if isinstance(out, np.ndarray):
            assert c._data is out  # not copied
        if python._requires_grad:
            assert c._stamp > python._stamp  # the next tick: made later


@needs_native
def test_record_under_switched_threads_and_observers() -> None:
    """With a thread in no_grad elsewhere, or an observer here, the C record hands over to
    _record_switched: this thread still records, an observer sees every op."""
    op = gg.OPS["mul"]
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    seen = []

    class Observer:
        def on_forward(self, op: Any, inputs: Any, out: Any) -> None:
            seen.append((op.name, out))

    with autograd.hook(Observer()):
        out = _backward.record(op, (x, x), np.array([1.0, 4.0]), None)
    assert seen == [("mul", out)] and out._requires_grad and out._op is op
    with gg.no_grad():
        off = _backward.record(op, (x, x), np.array([1.0, 4.0]), None)
    assert not off._requires_grad and off._op is None and off._parents == ()


def test_the_library_records_with_the_c_record_where_built() -> None:
    from glassgrad import methods, ops
    from glassgrad.nn import layers

    if autograd.NATIVE_WALK:
        assert autograd.record is _backward.record
    else:
        assert autograd.record is autograd.record_python
    assert ops.record is methods.record is layers.record is autograd.record


@needs_native
def test_a_graph_with_a_foreign_object_raises_instead_of_reading_it(native: Any) -> None:
    """The C walk reads Tensor slots at fixed offsets: an input that is not a Tensor (only
    misuse of record() can put one there) is refused with a TypeError, never read."""
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y._parents = (x, object())  # (misuse, on purpose)
    saved = autograd._native_walk
    autograd._native_walk = _backward.walk
    try:
        with pytest.raises(TypeError, match="found a object in the graph where a Tensor belongs"):
            y.sum().backward()
    finally:
        autograd._native_walk = saved
    assert x.grad is None
    with pytest.raises(TypeError, match="where a Tensor belongs"):
        _backward.walk(object(), None, False, (None,))


@needs_native
@settings(max_examples=60, deadline=None,  # (native restores what it changes, every call)
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_graphs(native: Any, data: st.DataObject) -> None:
    """Random DAGs (each new node uses one or two earlier ones, so nodes get several users,
    and the heap decides the order), with broadcasting operands, 0-d leaves and reductions:
    the walks agree bit for bit."""
    n_leaves = data.draw(st.integers(1, 4))
    shapes = [data.draw(st.sampled_from([(), (3,), (2, 3), (1, 3), (2, 1)]))
              for _ in range(n_leaves)]
    steps = data.draw(st.lists(st.tuples(st.sampled_from(["add", "mul", "sub", "tanh", "exp",
                                                            "sum0", "mean"]),
                                         st.integers(0, 10**6), st.integers(0, 10**6)),
                               min_size=1, max_size=12))
    seed = data.draw(st.integers(0, 2**31 - 1))

    def build() -> Any:
        rng = np.random.default_rng(seed)
        leaves = [gg.tensor(rng.uniform(-1, 1, s), requires_grad=True) for s in shapes]
        nodes: list[Tensor] = list(leaves)
        for kind, i, j in steps:
            a, b = nodes[i % len(nodes)], nodes[j % len(nodes)]
            if kind in ("add", "mul", "sub"):
                try:
                    new = {"add": a + b, "mul": a * b, "sub": a - b}[kind]
                except ValueError:  # shapes that do not broadcast: use a alone
                    new = a * 0.5
            elif kind == "tanh":
                new = a.tanh()
            elif kind == "exp":
                new = (a * 0.1).exp()
            elif kind == "sum0":
                new = a.sum(0) if a.ndim else a * 2
            else:
                new = a.mean()
            nodes.append(new)
        loss = sum((t.sum() for t in nodes[n_leaves:]), start=nodes[0].sum() * 0)
        return loss, leaves

    _same_bits(*native(build))


@needs_native
def test_store_grads_runs_in_c_only_in_its_usual_case(monkeypatch: Any) -> None:
    """The C walk stores the gradients of leaves without a .grad itself, copying an array
    handed to two leaves, the caller's seed and a view (as store_grads does: no two .grad
    and no user array share memory); a leaf that has a .grad already goes to
    autograd.store_grads, and so does everything when store_grads was replaced."""
    monkeypatch.setattr(autograd, "_native_walk", _backward.walk)
    code = autograd.store_grads.__code__
    calls: list[int] = []

    def python_store_calls(run: Callable[[], Any]) -> int:
        calls.clear()

        def profile(frame: Any, event: str, arg: Any) -> None:
            if event == "call" and frame.f_code is code:
                calls.append(1)

        sys.setprofile(profile)
        try:
            run()
        finally:
            sys.setprofile(None)
        return len(calls)

    w = gg.tensor(np.ones((3, 2), np.float32), requires_grad=True)
    b = gg.tensor(np.ones(3, np.float32), requires_grad=True)
    x = gg.tensor(np.ones((4, 2), np.float32))
    assert python_store_calls(lambda: gg.nn.functional.linear(x, w, b).sum().backward()) == 0
    assert w.grad is not None and b.grad is not None
    assert python_store_calls(lambda: gg.nn.functional.linear(x, w, b).sum().backward()) == 1
    np.testing.assert_array_equal(b.grad.numpy(), np.full(3, 8.0, np.float32))  # accumulated
    u, v = (gg.tensor(np.ones(3, np.float32), requires_grad=True) for _ in range(2))
    seed = np.arange(3, dtype=np.float32)
    assert python_store_calls(lambda: (u + v).backward(seed)) == 0  # the seed, to both
    for leaf in (u, v):
        np.testing.assert_array_equal(leaf.grad.numpy(), seed)
        assert not np.shares_memory(leaf.grad.numpy(), seed)
    assert not np.shares_memory(u.grad.numpy(), v.grad.numpy())
    u.grad = v.grad = None
    assert python_store_calls(lambda: (u + v).sum().backward()) == 0  # one array, to both
    assert not np.shares_memory(u.grad.numpy(), v.grad.numpy())
    u.grad = None
    assert python_store_calls(lambda: (u + 2.0).backward(seed)) == 0  # the seed, to one leaf
    assert not np.shares_memory(u.grad.numpy(), seed)
    m = gg.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    assert python_store_calls(lambda: (m.T * 2.0).sum().backward()) == 0  # a view's gradient
    assert m.grad.numpy().flags.c_contiguous and m.grad.numpy().flags.owndata
    np.testing.assert_array_equal(m.grad.numpy(), np.full((2, 3), 2.0, np.float32))

    stored: list[Any] = []
    real = autograd.store_grads
    monkeypatch.setattr(autograd, "store_grads",
                        lambda done, seeds=(), shared_copied=False: stored.append(
                            real(done, seeds, shared_copied)))
    w.grad = b.grad = None
    gg.nn.functional.linear(x, w, b).sum().backward()
    assert stored == [None] and w.grad is not None


@needs_native
def test_store_fresh_is_store_grads_usual_case(monkeypatch: Any) -> None:
    """store_fresh (a compiled step's delivery): arrays into .grad slots that are None, as
    store_grads(shared_copied=True) stores them (the arrays themselves; a view, or an array
    given twice, copied); anything else is False with nothing changed, for store_grads."""
    def leaves(n: int = 2) -> list[Tensor]:
        return [gg.tensor(np.zeros(3, np.float32), requires_grad=True) for _ in range(n)]

    ts = leaves()
    gs = (np.arange(3, dtype=np.float32), np.ones(3, np.float32))
    assert _backward.store_fresh(ts, gs) is True
    assert all(t.grad._data is g for t, g in zip(ts, gs))
    again = (np.ones(3, np.float32), np.ones(3, np.float32))
    assert _backward.store_fresh(ts, again) is False  # .grad set: store_grads accumulates
    assert all(t.grad._data is g for t, g in zip(ts, gs))
    base = np.arange(3, dtype=np.float32)
    views = leaves()
    assert _backward.store_fresh(views, (base[::-1], base[1:])) is True  # views: copied
    np.testing.assert_array_equal(views[0].grad.numpy(), [2, 1, 0])
    np.testing.assert_array_equal(views[1].grad.numpy(), [1, 2])
    assert not any(np.shares_memory(t.grad.numpy(), base) for t in views)
    twice = leaves()
    assert _backward.store_fresh(twice, (base, base)) is True  # the second one copied
    assert twice[0].grad._data is base and twice[1].grad._data is not base
    np.testing.assert_array_equal(twice[1].grad.numpy(), base)
    assert not np.shares_memory(twice[1].grad.numpy(), base)
    declined = {
        "one tensor twice": ([ts[0]] * 2, gs),
        "a NumPy scalar": (leaves(1), (np.float32(1),)),
        "another count": (leaves(), gs[:1]),
        "no Tensor": ([object(), object()], gs),
    }
    for name, (tensors, grads) in declined.items():
        before = [getattr(t, "_grad", None) for t in tensors]
        assert _backward.store_fresh(tensors, grads) is False, name
        assert [getattr(t, "_grad", None) for t in tensors] == before, name
    t, g = leaves(1)[0], np.ones(3, np.float32)
    count = sys.getrefcount(g)
    assert _backward.store_fresh([t], (g,)) is True  # (no reference kept or lost on the way)
    assert sys.getrefcount(g) == count + 1  # (held by t.grad)
    t.grad = None
    assert sys.getrefcount(g) == count
    monkeypatch.setattr(autograd, "store_grads", lambda *a, **k: None)  # replaced: honoured
    fresh = leaves()
    assert _backward.store_fresh(fresh, gs) is False and fresh[0].grad is None
    with pytest.raises(TypeError, match="store_fresh"):
        _backward.store_fresh(ts)
    with pytest.raises(TypeError, match="store_fresh"):
        _backward.store_fresh(iter(ts), gs)


def test_a_compiled_step_delivers_as_backward_does() -> None:
    """Through store_fresh or store_grads: the compiled step's .grad values equal backward's,
    and accumulate into a .grad already there as backward's do."""
    rng = np.random.default_rng(9)
    w = gg.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    x = gg.tensor(rng.standard_normal((4, 2)))
    step = gg.compile(lambda x: gg.tanh(x @ w.T).sum())
    step(x)
    first = w.grad.numpy().copy()
    w.grad = None
    gg.tanh(x @ w.T).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), first)
    step(x)  # accumulates, as a second backward would
    np.testing.assert_allclose(w.grad.numpy(), 2 * first, rtol=1e-12)


def test_an_out_of_date_extension_is_not_used(monkeypatch: Any) -> None:
    """An extension built from older sources (a failed rebuild can leave one behind) lacks
    functions the library calls: it is not loaded, with a warning that says how to fix it."""
    import types  # noqa: PLC0415

    monkeypatch.delenv("GLASSGRAD_NATIVE", raising=False)
    old = types.ModuleType("glassgrad._backward")
    old.__file__ = "/somewhere/_backward.so"
    old.walk = old.record = old.setup = lambda *a: None
    monkeypatch.setitem(sys.modules, "glassgrad._backward", old)
    import glassgrad  # noqa: PLC0415

    monkeypatch.setattr(glassgrad, "_backward", old, raising=False)
    with pytest.warns(RuntimeWarning, match=r"out of date: it has no store_fresh, .*rebuild"):
        assert autograd._load_native() is None


def test_an_extension_built_from_other_sources_is_not_used(monkeypatch: Any) -> None:
    """setup.py writes the digest of the C sources into the module; where those sources are
    beside the package (an editable or in-place install), a module whose digest differs (a
    rebuild that failed after the C was changed) is left unused, with a warning."""
    if _backward is not None and autograd._source_digest() is not None:
        assert autograd._source_digest() == _backward.SOURCE_DIGEST  # built from these files
    monkeypatch.delenv("GLASSGRAD_NATIVE", raising=False)
    monkeypatch.setattr(autograd, "_source_digest", lambda: "0123456789abcdef")
    if _backward is None:
        pytest.skip("glassgrad._backward is not built")
    with pytest.warns(RuntimeWarning, match="built from other sources than the C files"):
        assert autograd._load_native() is None
    monkeypatch.setattr(autograd, "_source_digest", lambda: None)  # no sources: not checked
    assert autograd._load_native() is _backward

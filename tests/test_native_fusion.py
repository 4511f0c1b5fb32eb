"""Passes over a layer's arrays the C code saves (``_rules.c``), each checked against the
passes it replaces, and against writing over memory anyone else can see:

- ``bias_relu``: nn.Sequential adds a large Linear's bias in the pass of the ReLU after it;
- the backward walk runs relu's, tanh's and sigmoid's rules itself, written over the
  incoming gradient when nothing but the walk holds it (``dead_gradient`` in _backward.c);
- ``column_sums``: a linear layer's bias gradient (np.add.reduce over the rows) in one pass,
  and no pass at all when a relu, tanh or sigmoid right above the layer summed its result's
  columns in its own pass (the C walk hands them over);
- ``max_tiles_grad``: max_pool2d's rule over windows that tile the input, in one pass.
"""

from __future__ import annotations

import sys
import tracemalloc

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import autograd, ops, ops_nn
from glassgrad.compiler import kernels

SPECIAL = [0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45, 3e38, -3e38]


def _specials(rng, shape, dtype):
    n = int(np.prod(shape))
    v = np.where(rng.random(n) < 0.3, rng.choice(SPECIAL, n), rng.standard_normal(n))
    with np.errstate(over="ignore", under="ignore"):
        return v.astype(dtype).reshape(shape)


# ---------------------------------------------------------------------------- bias_relu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (64, 300), (0, 4), (3, 0)])
def test_bias_relu_is_numpys_add_then_maximum(built_extension, dtype, shape) -> None:
    rng = np.random.default_rng(shape[0] * 31 + shape[1])
    z, b = _specials(rng, shape, dtype), _specials(rng, shape[1:], dtype)
    want = z.copy()
    with np.errstate(invalid="ignore", over="ignore"):
        np.add(want, b, out=want)
        np.maximum(want, ops._zero(want), out=want)  # (relu's forward, ops.py)
    assert built_extension.bias_relu(z, b) is z
    np.testing.assert_array_equal(z, want)  # (NaN where NumPy has NaN; 0 where it has 0)
    assert not np.signbit(z[z == 0]).any()  # NumPy's maximum(-0, 0) is +0 here too


def _declined():
    z = np.ones((4, 3), np.float32)
    b = np.ones(3, np.float32)
    ro = z.copy()
    ro.flags.writeable = False
    shared = np.ones((4, 3), np.float32)
    return {
        "integers": (z.astype(np.int32), b.astype(np.int32)),
        "mixed dtypes": (z, b.astype(np.float64)),
        "float16": (z.astype(np.float16), b.astype(np.float16)),
        "a 1-D z": (np.ones(3, np.float32), b),
        "a 3-D z": (np.ones((2, 4, 3), np.float32), b),
        "a bias of another length": (z, np.ones(4, np.float32)),
        "a 2-D bias": (z, b[None]),
        "a transposed z": (np.ones((3, 4), np.float32).T, np.ones(3, np.float32)),
        "a strided bias": (z, np.ones(6, np.float32)[::2]),
        "a read-only z": (ro, b),
        "a bias inside z": (shared, shared[1]),
        "byte-swapped": (z.astype(">f4"), b.astype(">f4")),
        "a Tensor": (gg.tensor(z), b),
        "a list": ([[1.0, 2.0, 3.0]], b),
    }


@pytest.mark.parametrize("case", list(_declined()))
def test_bias_relu_declines_anything_else_and_writes_nothing(built_extension, case) -> None:
    z, b = _declined()[case]
    before = np.array(z, copy=True) if not isinstance(z, gg.Tensor) else z.numpy().copy()
    assert built_extension.bias_relu(z, b) is NotImplemented
    after = np.asarray(z) if not isinstance(z, gg.Tensor) else z.numpy()
    assert np.array_equal(after, before)
    with pytest.raises(TypeError, match="bias_relu"):
        built_extension.bias_relu(z)


def _mlp(dtype=np.float32, widths=(20, 300, 300, 3), act=gg.nn.ReLU, seed=0):
    mods = []
    for k, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        mods.append(gg.nn.Linear(a, b, seed=seed + k, dtype=dtype))
        if k < len(widths) - 2:
            mods.append(act())
    return gg.nn.Sequential(*mods)


def _step(model, x, y):
    for p in model.parameters():
        p.grad = None
    out = model(x)
    gg.nn.functional.cross_entropy(out, y).backward()
    return out.numpy().copy(), [p.grad.numpy().copy() for p in model.parameters()]


def _data(rows=64, dtype=np.float32):
    rng = np.random.default_rng(5)
    return gg.tensor(rng.standard_normal((rows, 20)).astype(dtype)), rng.integers(0, 3, rows)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sequential_fuses_bias_and_relu_with_the_same_bits_and_graph(built_extension,
                                                                     monkeypatch, dtype) -> None:
    """64 rows × 300 features: both hidden layers go through bias_relu (the graph still has a
    linear node and a relu node); the values and gradients are those of the passes apart."""
    x, y = _data(dtype=dtype)
    model = _mlp(dtype)
    calls = []
    real = built_extension.bias_relu  # (also where GLASSGRAD_NATIVE=0 leaves it unused)
    monkeypatch.setattr(kernels, "_bias_relu", lambda z, b: calls.append(z.shape) or real(z, b))
    fused = _step(model, x, y)
    assert calls == [(64, 300), (64, 300)]
    out = model(x)
    relu2 = out._parents[0]
    assert out._op is ops.linear and relu2._op is ops.relu
    assert relu2._parents[0]._op is ops.linear and relu2._parents[0]._parents[0]._op is ops.relu
    monkeypatch.setattr(kernels, "_bias_relu", None)  # Linear.forward, then the relu
    apart = _step(model, x, y)
    np.testing.assert_array_equal(fused[0], apart[0])
    for a, b in zip(fused[1], apart[1]):
        assert a.tobytes() == b.tobytes()
    # and the forward is NumPy's, written out
    h = x.numpy()
    for lin in (model[0], model[2]):
        h = h @ lin.weight.numpy().T
        h += lin.bias.numpy()
        np.maximum(h, 0, out=h)
    h = h @ model[4].weight.numpy().T + model[4].bias.numpy()
    np.testing.assert_array_equal(fused[0], h)


def test_what_sequential_does_not_fuse(built_extension, monkeypatch) -> None:
    """A small layer, a ReLU with a hook or in place, a Tanh after the layer, a layer last,
    and no_grad: the product alone never changes a value (the same numbers as Linear.forward
    and the activation, one after the other)."""
    calls = []
    real = built_extension.bias_relu  # (also where GLASSGRAD_NATIVE=0 leaves it unused)
    monkeypatch.setattr(kernels, "_bias_relu", lambda z, b: calls.append(z.shape) or real(z, b))
    x, _ = _data()
    lin = gg.nn.Linear(20, 300, seed=1)

    def apart(act):
        return act(gg.nn.functional.linear(x, lin.weight, lin.bias)).numpy()

    relu = gg.nn.ReLU()
    relu.register_forward_hook(lambda m, i, o: None)
    cases = {
        "a small layer": (gg.nn.Sequential(gg.nn.Linear(20, 3, seed=1), gg.nn.ReLU()), None),
        "a ReLU with a hook": (gg.nn.Sequential(lin, relu), gg.relu),
        "an in-place ReLU": (gg.nn.Sequential(lin, gg.nn.ReLU(inplace=True)), gg.relu),
        "a Tanh": (gg.nn.Sequential(lin, gg.nn.Tanh()), gg.tanh),
        "the last layer": (gg.nn.Sequential(lin), lambda t: t),
    }
    for name, (model, act) in cases.items():
        got = model(x).numpy()
        if act is not None:
            np.testing.assert_array_equal(got, apart(act), err_msg=name)
    assert calls == []
    with gg.no_grad():
        out = gg.nn.Sequential(lin, gg.nn.ReLU())(x)
    assert calls == [] and out._op is None
    np.testing.assert_array_equal(out.numpy(), apart(gg.relu))


def test_a_wrong_width_still_names_the_layer(built_extension) -> None:
    model = _mlp()
    with pytest.raises(ValueError, match=r"Sequential layer \(0\).*in_features = 20"):
        model(gg.tensor(np.ones((64, 21), np.float32)))


# ----------------------------------------------------------- the walk over dead gradients
RULES = (ops.relu.rules[0], ops.tanh.rules[0], ops.sigmoid.rules[0])


@pytest.fixture
def c_walk(built_extension, monkeypatch):
    """The C walk with the activations' rules registered, also where GLASSGRAD_NATIVE=0
    keeps the library from using it (then put back as it was)."""
    monkeypatch.setattr(autograd, "_native_walk", built_extension.walk)
    built_extension.set_activation_rules(*RULES)
    yield built_extension
    built_extension.set_activation_rules(*(RULES if autograd._native else (None,) * 3))


def _python_walk(monkeypatch):
    monkeypatch.setattr(autograd, "_native_walk", None)
    monkeypatch.setattr(ops, "_one_pass", None)


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
def test_the_walks_rules_are_the_op_tables_bits(c_walk, monkeypatch, act) -> None:
    rng = np.random.default_rng(3)
    x0 = rng.standard_normal((50, 40))
    w0 = rng.standard_normal((40, 30))

    def grads():
        x, w = gg.tensor(x0, requires_grad=True), gg.tensor(w0, requires_grad=True)
        h = getattr(gg, act)(x @ w)
        (getattr(gg, act)(h @ w.T) * 1.5).sum().backward()
        return x.grad.numpy().tobytes(), w.grad.numpy().tobytes()

    in_c = grads()
    _python_walk(monkeypatch)
    assert grads() == in_c


def test_a_retained_gradient_is_not_written_over(c_walk) -> None:
    rng = np.random.default_rng(4)
    z = gg.tensor(rng.standard_normal((8, 5)), requires_grad=True)
    w = rng.standard_normal((5, 3))
    h = gg.relu(z)
    h.retain_grad()
    (h @ gg.tensor(w)).sum().backward()
    incoming = np.ones((8, 3)) @ w.T
    np.testing.assert_array_equal(h.grad.numpy(), incoming)  # not masked by relu's rule
    np.testing.assert_array_equal(z.grad.numpy(), incoming * (z.numpy() > 0))


def test_the_callers_gradient_is_not_written_over(c_walk) -> None:
    z = gg.tensor([[-1.0, 2.0], [3.0, -4.0]], requires_grad=True)
    g = np.array([[5.0, 6.0], [7.0, 8.0]])
    keep = g.copy()
    gg.tanh(z).backward(g)
    np.testing.assert_array_equal(g, keep)
    np.testing.assert_allclose(z.grad.numpy(), keep * (1 - np.tanh(z.numpy()) ** 2))


def test_one_gradient_sent_to_two_activations(c_walk) -> None:
    """add's rules hand the same array to both inputs: the first activation to run must not
    write over what the second still reads."""
    rng = np.random.default_rng(6)
    a0, b0, c0 = (rng.standard_normal((6, 4)) for _ in range(3))
    a, b = gg.tensor(a0, requires_grad=True), gg.tensor(b0, requires_grad=True)
    ((gg.relu(a) + gg.sigmoid(b)) * gg.tensor(c0)).sum().backward()
    s = 1 / (1 + np.exp(-b0))
    np.testing.assert_array_equal(a.grad.numpy(), c0 * (a0 > 0))
    np.testing.assert_allclose(b.grad.numpy(), c0 * s * (1 - s), rtol=1e-12)


def test_a_gradient_that_is_a_view_is_not_written_over(c_walk) -> None:
    rng = np.random.default_rng(7)
    z0, c0 = rng.standard_normal((4, 6)), rng.standard_normal((6, 4))
    z = gg.tensor(z0, requires_grad=True)
    (gg.relu(z).T * gg.tensor(c0)).sum().backward()  # relu gets the transpose's view
    np.testing.assert_array_equal(z.grad.numpy(), c0.T * (z0 > 0))


def test_a_replaced_rule_is_called(c_walk) -> None:
    """The walk runs its own C only for the op table's rule itself."""
    seen = []
    rule = ops.relu.rules[0]
    object.__setattr__(ops.relu, "rules", (lambda g, o, x: seen.append(1) or rule(g, o, x),))
    try:
        z = gg.tensor([1.0, -1.0], requires_grad=True)
        gg.relu(z).sum().backward()
    finally:
        object.__setattr__(ops.relu, "rules", (rule,))
    assert seen == [1]
    np.testing.assert_array_equal(z.grad.numpy(), [1.0, 0.0])


def test_writing_over_the_dead_gradient_saves_an_array(c_walk) -> None:
    """The peak memory of a backward pass through relu on an 8 MB array (the arrays before it
    are small): one array when the walk writes relu's rule over the gradient matmul's rule
    made (nothing else holds it), two when the rule makes a new one."""
    rng = np.random.default_rng(8)
    x0, w0 = rng.standard_normal((1000, 1000)), rng.standard_normal((1000, 1))

    def peak() -> int:
        x = gg.tensor(x0, requires_grad=True)
        loss = (gg.relu(x) @ gg.tensor(w0)).sum()
        tracemalloc.start()
        loss.backward()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        np.testing.assert_array_equal(x.grad.numpy(), np.ones((1000, 1)) @ w0.T * (x0 > 0))
        return peak

    over = peak()
    c_walk.set_activation_rules(None, None, None)  # the rules called, each a new array
    apart = peak()
    assert over < 9_000_000 < 15_000_000 < apart, (over, apart)


def test_the_walk_hands_a_passing_gradient_on_without_calling_its_rule(built_extension,
                                                                         monkeypatch) -> None:
    """add's rules and sub's for a return the gradient they are given (ops._passes_through):
    the C walk hands it on without the call, with broadcasting summed as before; unregistered,
    the rule is called again, with the same gradients."""
    monkeypatch.setattr(autograd, "_native_walk", built_extension.walk)
    code = ops._passes_through.__code__

    def rule_calls() -> tuple[int, np.ndarray, np.ndarray]:
        a = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
        b = gg.tensor([[4.0], [-5.0]], requires_grad=True)
        calls = []
        sys.setprofile(lambda frame, event, arg: calls.append(1) if event == "call"
                       and frame.f_code is code else None)
        try:
            ((a + b) * (a - b)).sum().backward()  # Σ over 2 × 3 of a² − b²
        finally:
            sys.setprofile(None)
        return len(calls), a.grad.numpy(), b.grad.numpy()

    try:
        for registered, calls in ((ops._passes_through, 0), (None, 3)):
            built_extension.set_pass_rule(registered)
            n, ga, gb = rule_calls()
            assert n == calls
            np.testing.assert_array_equal(ga, [4.0, 8.0, 12.0])  # 2 rows of 2a
            np.testing.assert_array_equal(gb, [[-24.0], [30.0]])  # 3 columns of −2b
    finally:
        built_extension.set_pass_rule(ops._passes_through if autograd._native else None)


# ------------------------------------------------------------- a linear layer's bias sums
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (1024, 65), (0, 4), (3, 0)])
def test_column_sums_are_numpys_add_reduce(built_extension, dtype, shape) -> None:
    g = _specials(np.random.default_rng(len(shape) + shape[0]), shape, dtype)
    g[:, :1] = -0.0  # a column of −0 sums to +0 in NumPy (it starts from +0)
    with np.errstate(all="ignore"):
        want = np.add.reduce(g, 0)
        got = built_extension.column_sums(g)
    assert got.dtype == want.dtype and got.shape == want.shape
    # Every bit but a NaN's sign: adding two NaNs, x86 keeps one operand's, and which one is
    # the compiler's choice of operand order (addition commutes), in NumPy's build and ours.
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert got[~nan].tobytes() == want[~nan].tobytes()


@pytest.mark.parametrize("case", [
    lambda: np.ones(4), lambda: np.ones((2, 3, 4)), lambda: np.ones((4, 6))[:, ::2],
    lambda: np.ones((4, 3), np.int64), lambda: np.ones((4, 3), np.float16),
    lambda: np.ones((4, 3)).astype(">f8"), lambda: [[1.0, 2.0]],
])
def test_column_sums_decline_anything_else(built_extension, case) -> None:
    assert built_extension.column_sums(case()) is NotImplemented


@pytest.fixture
def bias_sums_walk(c_walk):
    """The C walk with ops.linear's bias rule registered (also where GLASSGRAD_NATIVE=0),
    and a count of the bias rule's own column sums."""
    c_walk.set_linear_rules(ops.linear, ops.linear.rules[2])
    yield c_walk
    if not autograd._native:
        c_walk.set_linear_rules(None, None)


def _count_column_sums(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = ops._column_sums
    monkeypatch.setattr(ops, "_column_sums", lambda g: calls.append(1) or real(g))
    return calls


def _mlp_grads(act: str, dtype, x_shape=(70, 6), seed=11, **kw) -> list[bytes]:
    gg.manual_seed(seed)
    layers = [gg.nn.Linear(6, 9), getattr(gg.nn, act)(), gg.nn.Linear(9, 8),
              getattr(gg.nn, act)(), gg.nn.Linear(8, 3)]
    model = gg.nn.Sequential(*layers).to(dtype)
    if kw.get("frozen_bias"):
        layers[2].bias.requires_grad_(False)
    x = gg.tensor(np.random.default_rng(seed).standard_normal(x_shape).astype(dtype))
    y = model(x)
    (y * y).sum().backward()
    return [p.grad.numpy().tobytes() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("act", ["ReLU", "Tanh", "Sigmoid"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_activation_above_a_layer_sums_its_bias_gradient(bias_sums_walk, monkeypatch, act,
                                                             dtype) -> None:
    """Only the top layer (no activation above it) runs the bias rule's own pass; every
    gradient has the bits of the Python walk, which runs the rule for all three."""
    calls = _count_column_sums(monkeypatch)
    in_c = _mlp_grads(act, dtype)
    assert len(calls) == 1
    _python_walk(monkeypatch)
    calls.clear()
    assert _mlp_grads(act, dtype) == in_c
    assert len(calls) == 3


@pytest.mark.parametrize("how", ["frozen bias", "rows of a 3-D input", "replaced rule"])
def test_where_the_bias_rule_runs_itself(bias_sums_walk, monkeypatch, how) -> None:
    calls = _count_column_sums(monkeypatch)
    kw = {"frozen_bias": True} if how == "frozen bias" else {}
    shape = (5, 14, 6) if how == "rows of a 3-D input" else (70, 6)
    if how == "replaced rule":
        bias_sums_walk.set_linear_rules(ops.linear, lambda *a: None)
    in_c = _mlp_grads("ReLU", np.float64, shape, **kw)
    # (a frozen bias has no rule to run; the top layer's always runs)
    assert len(calls) == {"frozen bias": 1, "rows of a 3-D input": 3, "replaced rule": 3}[how]
    _python_walk(monkeypatch)
    assert _mlp_grads("ReLU", np.float64, shape, **kw) == in_c


def test_a_second_path_into_the_layer_gets_the_sum_of_both(bias_sums_walk, monkeypatch) -> None:
    """The layer's result feeds the relu and another op: its gradient is a new array (the
    sum of both paths), so the relu's sums are not its bias gradient."""
    rng = np.random.default_rng(12)
    x0, w0, b0 = rng.standard_normal((80, 5)), rng.standard_normal((4, 5)), rng.standard_normal(4)

    def grads():
        w, b = gg.tensor(w0, requires_grad=True), gg.tensor(b0, requires_grad=True)
        z = gg.nn.functional.linear(gg.tensor(x0), w, b)
        z.retain_grad()
        (gg.relu(z).sum() + (z * 3.0).sum()).backward()
        return b.grad.numpy(), z.grad.numpy()

    b_grad, z_grad = grads()
    np.testing.assert_array_equal(z_grad, (x0 @ w0.T + b0 > 0) + 3.0)  # relu's 0 or 1, + 3
    np.testing.assert_array_equal(b_grad, np.add.reduce(z_grad, 0))
    _python_walk(monkeypatch)
    assert grads()[0].tobytes() == b_grad.tobytes()


# ------------------------------------------------------------- max_pool2d's tiling rule
def _pool_case(rng, shape, kernel, dtype):
    x = _specials(rng, shape, dtype)
    k = rng.random(shape) < 0.3  # ties: copies of a neighbour inside the window
    x[k] = np.roll(x, 1, axis=-1)[k]
    (kh, kw), (h, w) = kernel, shape[2:]
    oh, ow = h // kh, w // kw
    out = ops_nn._max_tiles(x, kernel, (oh, ow))
    grad = _specials(rng, (*shape[:2], oh, ow), dtype)
    return x, out, grad, (oh, ow)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "kernel"), [
    ((2, 3, 8, 8), (2, 2)), ((1, 2, 7, 9), (2, 2)), ((2, 1, 9, 7), (3, 3)),
    ((1, 2, 6, 8), (2, 4)), ((1, 1, 4, 4), (1, 1)), ((3, 2, 5, 5), (5, 5)), ((0, 2, 4, 4), (2, 2)),
])
def test_max_tiles_grad_is_numpys_masked_passes(built_extension, monkeypatch, dtype, shape,
                                                kernel) -> None:
    """The same bits as the NumPy passes: first maximum of each window (ties, ±0), NaN and
    ±∞ gradients (NaN times a 0 mask stays NaN), −0 made +0, uncovered rows and columns."""
    rng = np.random.default_rng(sum(shape) * 7 + kernel[0])
    x, out, grad, out_hw = _pool_case(rng, shape, kernel, dtype)
    dx = np.full(x.shape, 7.0, dtype)
    assert built_extension.max_tiles_grad(dx, grad, out, x, *kernel) is dx
    monkeypatch.setattr(ops_nn, "_max_tiles_grad_c", None)
    want = np.full(x.shape, 7.0, dtype)
    with np.errstate(invalid="ignore"):
        ops_nn._max_tiles_grad_into(want, grad, out, x, kernel, out_hw)
    assert dx.tobytes() == want.tobytes()


def test_max_tiles_grad_declines_anything_else(built_extension) -> None:
    rng = np.random.default_rng(0)
    x, out, grad, _ = _pool_case(rng, (2, 2, 4, 4), (2, 2), np.float32)
    c = built_extension.max_tiles_grad
    dx = np.zeros(x.shape, np.float32)
    cases = {
        "mixed dtypes": (dx, grad.astype(np.float64), out, x),
        "float16": tuple(np.ones(a.shape, np.float16) for a in (dx, grad, out, x)),
        "a strided dx": (np.zeros((2, 2, 4, 8), np.float32)[..., ::2], grad, out, x),
        "x of another shape": (dx, grad, out, x[:, :1]),
        "a read-only dx": (np.broadcast_to(dx, dx.shape), grad, out, x),
        "dx is x": (x, grad, out, x),
        "windows beyond x": (dx, np.zeros((2, 2, 3, 3), np.float32),
                             np.zeros((2, 2, 3, 3), np.float32), x),
        "another batch": (dx, grad[:1], out[:1], x),
        "3-D": (dx[0], grad[0], out[0], x[0]),
    }
    for name, args in cases.items():
        before = [np.array(a, copy=True) for a in args]
        assert c(*args, 2, 2) is NotImplemented, name
        assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(args, before)), name
    assert c(dx, grad, out, x, 0, 2) is NotImplemented
    with pytest.raises(TypeError, match="max_tiles_grad"):
        c(dx, grad, out, x, 2)


def test_max_tiles_grad_reads_strided_arrays(built_extension, monkeypatch) -> None:
    """A convolution's rule hands back a transposed view: grad, out and x may be strided
    (and may share memory with each other); dx is written C-ordered."""
    rng = np.random.default_rng(11)
    x, out, grad, out_hw = _pool_case(rng, (3, 2, 6, 8), (2, 2), np.float64)
    xs = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    gs = np.ascontiguousarray(grad.transpose(3, 2, 1, 0)).transpose(3, 2, 1, 0)
    assert not xs.flags.c_contiguous and not gs.flags.c_contiguous
    g_rows = np.ascontiguousarray(grad.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    dx = np.empty(x.shape)  # (strided rows: the general loop)
    assert built_extension.max_tiles_grad(dx, gs, out[..., ::-1][..., ::-1], xs, 2, 2) is dx
    dx_rows = np.empty(x.shape)  # (only the outer axes strided: the 2 × 2 loop)
    assert built_extension.max_tiles_grad(dx_rows, g_rows, out, xs, 2, 2) is dx_rows
    monkeypatch.setattr(ops_nn, "_max_tiles_grad_c", None)
    want = np.empty(x.shape)
    with np.errstate(invalid="ignore"):
        ops_nn._max_tiles_grad_into(want, grad, out, x, (2, 2), out_hw)
    assert dx.tobytes() == want.tobytes() and dx_rows.tobytes() == want.tobytes()
    inside = np.zeros((3, 2, 6, 8))  # dx's memory also read through a view: declined
    assert built_extension.max_tiles_grad(inside, gs, out, inside[:, :, :3, :4], 2, 2) \
        is NotImplemented


def test_max_pool_backward_is_the_same_with_and_without_c(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    x0 = rng.standard_normal((4, 3, 10, 10)).astype(np.float32)

    def grads():
        x = gg.tensor(x0, requires_grad=True)
        (gg.nn.functional.max_pool2d(x, 2) * 1.5).sum().backward()
        return x.grad.numpy().tobytes()

    with_c = grads()
    monkeypatch.setattr(ops_nn, "_max_tiles_grad_c", None)
    assert grads() == with_c


# ------------------------------------------------------------------- conv2d's im2col
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("shape", "kernel", "stride", "dilation"), [
    ((2, 3, 9, 8), (3, 3), (1, 1), (1, 1)), ((1, 2, 11, 10), (3, 2), (2, 3), (1, 1)),
    ((2, 1, 12, 12), (3, 3), (1, 2), (2, 1)), ((1, 1, 5, 5), (5, 5), (1, 1), (1, 1)),
    ((0, 2, 6, 6), (2, 2), (1, 1), (1, 1)),
])
def test_im2col_is_numpys_copy(built_extension, dtype, shape, kernel, stride,
                               dilation) -> None:
    rng = np.random.default_rng(sum(shape))
    xp = _specials(rng, shape, dtype)
    (kh, kw), (h, w) = kernel, shape[2:]
    out_hw = ((h - dilation[0] * (kh - 1) - 1) // stride[0] + 1,
              (w - dilation[1] * (kw - 1) - 1) // stride[1] + 1)
    win = ops_nn._windows(xp, kernel, stride, dilation, out_hw)
    want = np.empty((*shape[:2], *kernel, *out_hw), dtype)
    np.copyto(want, win.transpose(0, 1, 4, 5, 2, 3))
    cols = np.full(want.shape, 3.0, dtype)
    assert built_extension.im2col(cols, win) is cols
    assert cols.tobytes() == want.tobytes()
    sub = np.full((1, *want.shape[1:]), 3.0, dtype)  # a chunk of the batch: win[s:e]
    if shape[0]:
        assert built_extension.im2col(sub, win[-1:]) is sub
        assert sub.tobytes() == want[-1:].tobytes()


def test_im2col_declines_anything_else(built_extension) -> None:
    xp = np.arange(2 * 3 * 6 * 6, dtype=np.float32).reshape(2, 3, 6, 6)
    win = ops_nn._windows(xp, (3, 3), (1, 1), (1, 1), (4, 4))
    cols = np.zeros((2, 3, 3, 3, 4, 4), np.float32)
    big = np.zeros(2 * 3 * 9 * 16 + 2 * 3 * 36, np.float32)
    cases = {
        "mixed dtypes": (cols.astype(np.float64), win),
        "integers": (cols.astype(np.int32), ops_nn._windows(xp.astype(np.int32), (3, 3),
                                                             (1, 1), (1, 1), (4, 4))),
        "other shapes": (cols[:, :, :2], win),
        "a transposed cols": (np.zeros((4, 4, 3, 3, 3, 2), np.float32).T, win),
        "a read-only cols": (np.broadcast_to(cols, cols.shape), win),
        "5-D": (cols[0], win[0]),
        "cols over the input": (big[:cols.size].reshape(cols.shape), ops_nn._windows(
            big[cols.size - 36:cols.size - 36 + xp.size].reshape(xp.shape), (3, 3), (1, 1),
            (1, 1), (4, 4))),
    }
    for name, (c, w) in cases.items():
        before = np.array(c, copy=True)
        assert built_extension.im2col(c, w) is NotImplemented, name
        assert np.array_equal(c, before), name
    with pytest.raises(TypeError, match="im2col"):
        built_extension.im2col(cols)

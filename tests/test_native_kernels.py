"""The activations' backward rules in one C pass (``activation_grad`` in ``_backward.c``)
against their NumPy expressions in the op table: the same bits, every special value, and
NotImplemented (the NumPy expression then runs) for whatever the C loop does not handle."""

from __future__ import annotations

import os

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import autograd, ops
from glassgrad.compiler import kernels
from glassgrad.tensor import Tensor

try:
    from glassgrad import _backward
except ImportError:  # not built here (no C compiler at install time)
    _backward = None
else:
    _backward.setup(Tensor, autograd.__dict__)


@pytest.fixture
def one_pass(built_extension):
    return built_extension.activation_grad


# kind -> the op-table rule's NumPy expression, exactly as ops.py writes it
NUMPY = {
    0: lambda g, o: g * (o > 0),
    1: lambda g, o: g * (ops._one(o) - o * o),
    2: lambda g, o: g * o * (1 - o),
}
SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, np.nan, np.inf, -np.inf, 1e-45, -1e-45, 1e-310, 3.4e38,
           -2.5, 0.999, 1e-8]


def _arrays(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    pool = np.array(SPECIAL, dtype=np.float64)
    g = np.where(rng.random(n) < 0.3, rng.choice(pool, n), rng.standard_normal(n) * 3)
    o = np.where(rng.random(n) < 0.3, rng.choice(pool, n), rng.standard_normal(n))
    with np.errstate(over="ignore", under="ignore"):
        return g.astype(dtype).reshape(shape), o.astype(dtype).reshape(shape)


@pytest.mark.parametrize("kind", [0, 1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1,), (7,), (4, 3), (2, 33, 17), (0, 5), (1024, 65)])
def test_the_bits_of_numpys_expression(one_pass, kind, dtype, shape) -> None:
    g, o = _arrays(dtype, shape, seed=kind * 100 + len(shape))
    with np.errstate(all="ignore"):
        want = NUMPY[kind](g, o)
    got = one_pass(kind, g, o)
    assert type(got) is np.ndarray and got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()  # nan, ±0, inf and subnormals alike
    g_in = g.copy()
    assert one_pass(kind, g_in, o, g_in) is g_in  # in place, over the gradient
    assert g_in.tobytes() == want.tobytes()
    same = g.copy()
    with np.errstate(all="ignore"):
        want_same = NUMPY[kind](same, same)
    assert one_pass(kind, same, same, same) is same  # out is grad's own memory: element-wise
    assert same.tobytes() == want_same.tobytes()


def _not_handled():
    f = np.ones((4, 3), np.float32)
    return {
        "a Tensor (create_graph)": (gg.tensor(f), f, None),
        "mixed dtypes": (f, f.astype(np.float64), None),
        "float16": (f.astype(np.float16), f.astype(np.float16), None),
        "integers": (f.astype(np.int32), f.astype(np.int32), None),
        "other shapes (broadcasting)": (f, f[:1], None),
        "a transposed gradient": (np.ones((3, 4), np.float32).T, f, None),
        "a byte-swapped array": (f.astype(">f4"), f.astype(">f4"), None),
        "a NumPy scalar": (np.float32(1), np.float32(1), None),
        # (NumPy 1.x computes 1 − out for a 0-d out in float64: its own expression decides)
        "0-d arrays": (np.array(0.5, np.float32), np.array(0.3, np.float32), None),
        "into another array": (f, f, f.copy()),
        "into a read-only gradient": (np.ones((4, 3), np.float32).copy(), f, "read-only"),
        "into a gradient that out overlaps": (None, None, "overlap"),
    }


@pytest.mark.parametrize("case", list(_not_handled()))
def test_anything_else_is_not_implemented_and_changes_nothing(one_pass, case) -> None:
    g, o, into = _not_handled()[case]
    if isinstance(into, str) and into == "read-only":
        g.setflags(write=False)
        into = g
    elif isinstance(into, str):  # "overlap"
        base = np.arange(10, dtype=np.float32)
        g, o, into = base[:6], base[2:8], base[:6]
    before = None if isinstance(g, Tensor) else np.array(g, copy=True)
    for kind in (0, 1, 2):
        assert one_pass(kind, g, o, into) is NotImplemented
        assert one_pass(kind, g, o) is NotImplemented or into is not None
    if before is not None:
        assert np.array_equal(np.asarray(g), before)


def test_an_unpickled_dtype_is_the_same_dtype(one_pass) -> None:
    import pickle

    g = np.ones(3, np.float32)
    o = np.ones(3, np.float32).view(pickle.loads(pickle.dumps(np.dtype(np.float32))))
    assert o.dtype is not g.dtype
    assert one_pass(0, g, o).tobytes() == g.tobytes()


def test_bad_arguments_raise(one_pass) -> None:
    f = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="kind"):
        one_pass(3, f, f)
    with pytest.raises(TypeError, match="activation_grad"):
        one_pass(0, f)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_through_the_op_is_the_same_with_and_without_c(name, dtype,
                                                                monkeypatch) -> None:
    """Each op's rule through the engine (and compile's in-place variant of it where there
    is one) gives the same bits with the C pass and with NumPy's expression."""
    x0, _ = _arrays(dtype, (64, 9), seed=7)
    x0 = np.clip(np.nan_to_num(x0, nan=0.5), -3.0, 3.0)  # (a finite loss)
    w = np.linspace(-1, 1, 9).astype(dtype)
    results = []
    walk = autograd._native_walk
    for c in (ops._one_pass, None):
        monkeypatch.setattr(ops, "_one_pass", c)
        monkeypatch.setattr(kernels, "_one_pass", c)
        # (the C walk runs the op table's rule's C itself: NumPy's expression needs Python's)
        monkeypatch.setattr(autograd, "_native_walk", walk if c is not None else None)
        x = gg.tensor(x0, requires_grad=True)
        (getattr(gg, name)(x) * gg.tensor(w)).sum().backward()
        into = kernels.GRADS_INTO.get(name)
        extra = None
        if into is not None:
            out = getattr(gg, name)(gg.tensor(x0)).numpy()
            grad = np.broadcast_to(w, x0.shape).copy()
            extra = into[0](grad, out, x0).copy()
        results.append((x.grad.numpy().copy(), extra))
    assert results[0][0].tobytes() == results[1][0].tobytes()
    if results[0][1] is not None:
        assert results[0][1].tobytes() == results[1][1].tobytes()


def test_second_derivatives_still_go_through_numpys_expression() -> None:
    """create_graph hands the rule Tensors: the C pass declines and the graph is recorded."""
    x = gg.tensor([0.3, -0.7, 1.2], requires_grad=True)
    (g,) = gg.autograd.grad(gg.tanh(x).sum(), [x], create_graph=True)
    g.sum().backward()
    t = np.tanh(np.array([0.3, -0.7, 1.2], np.float32))
    np.testing.assert_allclose(x.grad.numpy(), -2 * t * (1 - t * t), rtol=1e-6)


def test_native_off_means_numpy_only() -> None:
    if os.environ.get("GLASSGRAD_NATIVE", "").strip() == "0":
        assert ops._one_pass is None and kernels._one_pass is None
    elif _backward is not None:
        assert ops._one_pass is _backward.activation_grad

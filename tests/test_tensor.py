"""Tensor creation and dtype rules: float32 stays float32 through every op and its gradient,
float64 end to end, NumPy dtypes kept, integers never require grad, mixed precision as in
PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import glassgrad as gg


# ----------------------------------------------------------------------------- creation
@pytest.mark.parametrize(("data", "dtype"), [
    (1.5, np.float32), ([1.0, 2.0], np.float32), ([[1, 2]], np.int64), (3, np.int64),
    (True, np.bool_), (np.zeros(2), np.float64), (np.zeros(2, np.float16), np.float16),
    (np.arange(3, dtype=np.int32), np.int32), (np.float64(2.0), np.float64),
    (np.float32(2.0), np.float32),
])
def test_default_dtypes(data, dtype) -> None:
    assert gg.tensor(data).dtype == dtype


def test_explicit_dtype_wins() -> None:
    t = gg.tensor([1, 2], dtype=gg.float64)
    assert t.dtype == np.float64
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0])


def test_tensor_copies_and_from_numpy_shares() -> None:
    a = np.array([1.0, 2.0])
    t, s = gg.tensor(a), gg.from_numpy(a)
    a[0] = 9.0
    assert t.numpy()[0] == 1.0 and s.numpy()[0] == 9.0


def test_properties_and_conversions() -> None:
    t = gg.tensor(np.arange(6.0).reshape(2, 3))
    assert (t.shape, t.ndim, t.numel(), t.T.shape) == ((2, 3), 2, 6, (3, 2))
    assert np.asarray(t) is t.numpy()
    assert gg.tensor([[2.5]]).item() == 2.5
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        t.item()
    d = t.detach()
    assert d.numpy() is t.numpy() and not d.requires_grad


def test_data_is_assignable_and_used_by_the_next_forward() -> None:
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    w.data = np.array([3.0, -1.0], dtype=np.float32)
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [6.0, -2.0])
    with pytest.raises(TypeError, match="floating-point"):
        w.data = np.array([1, 2])


def test_ragged_data_has_a_clear_error() -> None:
    with pytest.raises(ValueError, match="same length"):
        gg.tensor([[1.0, 2.0], [3.0]])


# ----------------------------------------------------------------------------- integers
@pytest.mark.parametrize("data", [[1, 2, 3], np.arange(3, dtype=np.int32), [True, False]])
def test_integer_and_bool_tensors_cannot_require_grad(data) -> None:
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        gg.tensor(data, requires_grad=True)
    t = gg.tensor(data)
    with pytest.raises(TypeError, match=r"Fix: .*dtype=gg.float32"):
        t.requires_grad = True
    assert not t.requires_grad


# ----------------------------------------------------------------------------- float32
def _check_float32(out: gg.Tensor, inputs: list, out_dtype=np.float32) -> None:
    assert isinstance(out.numpy(), np.ndarray) and out.dtype == out_dtype
    out.backward(np.ones(out.shape, dtype=out.dtype))
    checked = 0
    for x in inputs:
        if isinstance(x, gg.Tensor) and x.requires_grad:
            assert x.grad.dtype == np.float32 and x.grad.shape == x.shape
            checked += 1
    assert checked


def test_float32_stays_float32_through_every_op(op_case: tuple, cases) -> None:
    name, shapes, attrs = op_case
    op = gg.OPS[name]
    inputs = cases.sample(op, shapes, np.random.default_rng(2), dtype=np.float32)
    out_dtype = np.dtype(attrs.get("dtype", np.float32))  # cast chooses its output dtype
    _check_float32(op(*inputs, **attrs), inputs, out_dtype)


def test_float32_stays_float32_through_every_composite(composite_case: tuple, cases) -> None:
    name, shapes, kw = composite_case
    inputs = cases.sample_composite(shapes, np.random.default_rng(2), dtype=np.float32)
    _check_float32(cases.COMPOSITES[name][0](*inputs, **kw), inputs)


@pytest.mark.parametrize("expr", [
    lambda x: x * 2.5, lambda x: 2.5 * x, lambda x: x + 1, lambda x: 1.0 - x,
    lambda x: x / 3.0, lambda x: 3.0 / x, lambda x: x ** 2.0, lambda x: 2.0 ** x,
    lambda x: x * np.float64(0.5), lambda x: gg.maximum(x, 0.0), lambda x: gg.where(x > 0, x, 0.0),
    lambda x: x.clip(0.5, 1.5), lambda x: np.exp(x), lambda x: x.mean(), lambda x: x.var(),
], ids=["mul", "rmul", "add-int", "rsub", "div", "rdiv", "pow", "rpow", "np-scalar", "maximum",
        "where", "clip", "np.exp", "mean", "var"])
def test_python_scalars_do_not_upcast_float32(expr) -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    out = expr(x)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32


def test_explicit_float64_gradient_seed_is_cast_to_float32() -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).backward(np.array([1.0, 1.0]))  # float64 seed
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


# ----------------------------------------------------------------------------- float64
def test_float64_end_to_end() -> None:
    rng = np.random.default_rng(0)
    x = gg.tensor(rng.standard_normal((4, 3)))
    w1 = gg.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    b1 = gg.tensor(np.zeros(5), requires_grad=True)
    w2 = gg.tensor(rng.standard_normal((1, 5)), requires_grad=True)
    loss = (gg.linear(gg.linear(x, w1, b1).tanh(), w2) ** 2).mean()
    loss.backward()
    assert loss.dtype == np.float64
    for p in (w1, b1, w2):
        assert p.grad.dtype == np.float64
    # float64 precision really is kept: a 1e-12 nudge is visible in the loss.
    w1.data = w1.data + 1e-12
    nudged = (gg.linear(gg.linear(x, w1, b1).tanh(), w2) ** 2).mean()
    assert nudged.item() != loss.item()


# ----------------------------------------------------------------------------- mixed
def test_float32_param_with_float64_input_gives_float64_result_float32_grad() -> None:
    w = gg.tensor([1.0, 2.0], requires_grad=True)  # float32
    x = gg.tensor(np.array([0.1, 0.2]))  # float64
    y = (w * x).sum()
    assert y.dtype == np.float64
    y.backward()
    assert w.grad.dtype == np.float32
    np.testing.assert_allclose(w.grad.numpy(), [0.1, 0.2], rtol=1e-7)


def test_cast_gradient_comes_back_in_the_input_dtype() -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = x.astype(gg.float64)
    assert y.dtype == np.float64 and y.op == "cast"
    assert x.astype(gg.float32) is x  # a no-op cast records nothing
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


def test_gradients_of_0d_tensors_are_arrays() -> None:
    # NumPy turns 0-d results into scalars (np.float32), which have no in-place operations:
    # .grad's array must still be an ndarray (optimizers update it in place).
    x = gg.tensor(2.0, requires_grad=True)
    (x * x).backward()
    assert type(x.grad.numpy()) is np.ndarray and x.grad.item() == 4.0
    (x * 3).backward()  # accumulation
    assert type(x.grad.numpy()) is np.ndarray and x.grad.item() == 7.0
    (g,) = gg.grad(x.exp(), x)
    assert type(g.numpy()) is np.ndarray and g.item() == pytest.approx(np.exp(2.0))

"""The eager engine's shortcuts give what the general path gives: values, dtypes, graphs,
gradients and error messages.

Each shortcut (a binary operator on two tensors, the inlined Tensor construction in
``record``, ...) is checked against the general path it skips (``ops.apply``, ``Tensor._wrap``)
on the cases where the two could part: broadcasting, dtype promotion, non-contiguous inputs,
Parameters, grad mode off, observers attached, and bad inputs.
"""

from __future__ import annotations

import operator

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import autograd, ops
from glassgrad.ops import apply
from glassgrad.tensor import Tensor

_OPERATORS = [
    (operator.add, ops.add), (operator.sub, ops.sub), (operator.mul, ops.mul),
    (operator.truediv, ops.div), (operator.pow, ops.pow),
]


def _pair(shape_a, shape_b, dtype_a=np.float32, dtype_b=np.float32, grad=True):
    rng = np.random.default_rng(0)
    a = gg.tensor(rng.uniform(0.5, 2, shape_a).astype(dtype_a), requires_grad=grad)
    b = gg.tensor(rng.uniform(0.5, 2, shape_b).astype(dtype_b), requires_grad=grad)
    return a, b


def _grads(out, *leaves):
    for t in leaves:
        t.grad = None
    out.sum().backward()
    return [None if t.grad is None else t.grad.numpy().copy() for t in leaves]


@pytest.mark.parametrize("py_op, op", _OPERATORS, ids=lambda x: getattr(x, "name", ""))
@pytest.mark.parametrize("shapes", [((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (4,)),
                                    ((), ())])
@pytest.mark.parametrize("dtypes", [(np.float32, np.float32), (np.float32, np.float64),
                                    (np.float64, np.float32), (np.float64, np.float64)])
def test_operator_matches_apply(py_op, op, shapes, dtypes) -> None:
    a, b = _pair(*shapes, *dtypes)
    fast, general = py_op(a, b), apply(op, a, b)
    assert fast.dtype == general.dtype
    assert fast.shape == general.shape
    np.testing.assert_array_equal(fast.numpy(), general.numpy())
    assert fast.op == general.op == op.name  # (mixed dtypes: the op after the cast nodes)
    for g_fast, g_general in zip(_grads(fast, a, b), _grads(general, a, b)):
        assert g_fast.dtype == g_general.dtype
        np.testing.assert_array_equal(g_fast, g_general)


def test_matmul_matches_apply() -> None:
    a, b = _pair((4, 3), (3, 2))
    fast, general = a @ b, apply(ops.matmul, a, b)
    np.testing.assert_array_equal(fast.numpy(), general.numpy())
    assert _grads(fast, a, b)[1].tolist() == _grads(general, a, b)[1].tolist()


def test_operator_on_non_contiguous_and_parameter_inputs() -> None:
    w = gg.nn.Parameter(np.arange(6, dtype=np.float32).reshape(2, 3))
    x = gg.tensor(np.arange(6, dtype=np.float32).reshape(3, 2)).T  # a transposed view
    y = w * x
    assert y.op == "mul" and y.requires_grad
    np.testing.assert_array_equal(y.numpy(), w.numpy() * x.numpy())
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), x.numpy())


@pytest.mark.parametrize("py_op, op", _OPERATORS, ids=lambda x: getattr(x, "name", ""))
def test_integer_and_bool_promotion_matches_apply(py_op, op) -> None:
    i = gg.tensor([1, 2, 3])
    f = gg.tensor([0.5, 1.5, 2.5])
    m = gg.tensor([True, False, True])
    for x, y in ((i, f), (f, i), (m, f), (i, m)):
        if op in (ops.pow, ops.div) and y is m:  # (x / False: a division by zero)
            continue
        fast, general = py_op(x, y), apply(op, x, y)
        assert fast.dtype == general.dtype, (x.dtype, y.dtype)
        np.testing.assert_array_equal(fast.numpy(), general.numpy())


@pytest.mark.parametrize("py_op, op", [*_OPERATORS, (operator.matmul, ops.matmul)],
                         ids=lambda x: getattr(x, "name", ""))
@pytest.mark.parametrize("shapes", [((2,), (3,)), ((2, 3), (4, 3))])
def test_operator_errors_match_apply(py_op, op, shapes) -> None:
    a, b = _pair(*shapes)
    with pytest.raises(ValueError) as general:
        apply(op, a, b)
    with pytest.raises(ValueError) as fast:
        py_op(a, b)
    assert str(fast.value) == str(general.value)
    assert f"{op.name}: cannot apply to inputs of shapes {shapes[0]}, {shapes[1]}" in str(
        fast.value)


def test_operator_in_no_grad_records_nothing() -> None:
    a, b = _pair((3,), (3,))
    with gg.no_grad():
        y = a + b
    assert not y.requires_grad and y.op is None and y.parents == ()
    np.testing.assert_array_equal(y.numpy(), a.numpy() + b.numpy())


def test_operator_without_grad_inputs_is_a_leaf() -> None:
    a, b = _pair((3,), (3,), grad=False)
    y = a * b
    assert not y.requires_grad and y.op is None


def test_operator_tells_observers() -> None:
    seen = []

    class Watch:
        def on_forward(self, op, inputs, out):
            seen.append((op.name, inputs, out))

    a, b = _pair((3,), (3,))
    with autograd.hook(Watch()):
        y = a - b
    assert seen == [("sub", (a, b), y)]


def test_record_sets_every_slot_that_wrap_sets() -> None:
    """``record`` builds its Tensor without ``Tensor._wrap`` (a call less per op): the two
    must leave the same slots set, to the same values for a leaf."""
    a, b = _pair((3,), (3,), grad=False)
    made = a + b  # record, on inputs that need no gradient: a leaf
    wrapped = Tensor._wrap(made.numpy())
    for slot in Tensor.__slots__:
        if slot == "__weakref__":
            continue
        assert hasattr(made, slot) == hasattr(wrapped, slot), slot
        if hasattr(wrapped, slot) and slot != "_data":
            assert getattr(made, slot) == getattr(wrapped, slot), slot


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("lr", [0.1, 0.3, 1e-3, 7.77])
def test_plain_sgd_step_is_w_minus_lr_times_grad_to_the_bit(dtype, lr) -> None:
    """SGD's plain update multiplies by lr as a 0-d array of the gradient's dtype: the same
    bits as NumPy 2's ``w - lr * g`` with lr a Python float (which NumPy 2 makes the array's
    dtype; NumPy 1.x computes a 0-d float32 array with it in float64), for every float
    dtype, as PyTorch's update in the parameter's dtype."""
    rng = np.random.default_rng(1)
    shapes = [(3, 2), (3,), (1, 3), ()]
    ws = [rng.standard_normal(s).astype(dtype) for s in shapes]
    gs = [rng.standard_normal(s).astype(dtype) for s in shapes]
    params = [gg.nn.Parameter(w.copy()) for w in ws]
    for p, g in zip(params, gs):
        p.grad = gg.tensor(g)
    params[2].grad = None  # skipped, not updated
    gg.optim.SGD(params, lr=lr).step()
    for i, (p, w, g) in enumerate(zip(params, ws, gs)):
        want = w if i == 2 else w - dtype(lr) * g
        assert p.dtype == dtype
        np.testing.assert_array_equal(p.numpy(), want)


def _bad_roots():
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    freed = (x * 2).sum()
    freed.backward()
    return {
        "no grad": (gg.tensor([1.0]), None),
        "not scalar": (x * 3, None),
        "freed": (freed, None),
        "wrong seed shape": ((x * 3), np.ones(3, np.float32)),
    }


@pytest.mark.parametrize("case", list(_bad_roots()))
def test_backward_errors_match_the_general_path(case) -> None:
    root, seed = _bad_roots()[case]
    with pytest.raises(Exception) as general:
        autograd.backward(root, seed)
    root, seed = _bad_roots()[case]
    with pytest.raises(Exception) as fast:
        root.backward(seed)
    assert type(fast.value) is type(general.value)
    assert str(fast.value) == str(general.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
def test_implied_seed_matches_an_explicit_one(dtype, shape) -> None:
    x = gg.tensor(np.full(shape, 3.0, dtype), requires_grad=True)
    (x * x).backward()
    implied = x.grad.numpy().copy()
    x.grad = None
    (x * x).backward(np.ones(shape, dtype))
    np.testing.assert_array_equal(implied, x.grad.numpy())
    assert implied.dtype == dtype and implied.shape == shape and implied.flags.writeable
    np.testing.assert_array_equal(implied, np.full(shape, 6.0, dtype))


def test_stored_gradients_share_no_memory() -> None:
    a, b = _pair((4,), (4,))
    (a + b).sum().backward()  # add sends one array to both sides
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())
    a.grad.numpy()[0] = 100.0
    np.testing.assert_array_equal(b.grad.numpy(), np.ones(4, np.float32))
    (a + b).sum().backward()  # accumulates into the existing .grad
    np.testing.assert_array_equal(b.grad.numpy(), np.full(4, 2.0, np.float32))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_dtype", [np.float32, np.float64])
def test_linear_layer_matches_functional_linear(bias, x_dtype) -> None:
    layer = gg.nn.Linear(3, 2, bias=bias, seed=0)
    x = gg.tensor(np.arange(12, dtype=x_dtype).reshape(4, 3) / 10)
    y = layer(x)
    want = gg.nn.functional.linear(x.astype(np.float32), layer.weight, layer.bias)
    assert y.op == want.op and y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), want.numpy())
    y.sum().backward()
    np.testing.assert_array_equal(layer.weight.grad.numpy(), x.numpy().sum(0).astype(
        np.float32)[None, :].repeat(2, 0))


def test_linear_layer_errors_and_hooks() -> None:
    layer = gg.nn.Linear(3, 2, seed=0)
    with pytest.raises(ValueError, match=r"in_features = 3, got shape \(4, 2\)"):
        layer(gg.ones(4, 2))
    seen = []
    layer.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    layer(gg.ones(5, 3))
    assert seen == [(5, 2)]

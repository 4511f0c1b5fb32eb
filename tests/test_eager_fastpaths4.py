"""The fourth round of eager shortcuts, inside the op table's NumPy work, gives the bits the
general expressions give, over float16/32/64, 0-d and broadcasting shapes, special values
and non-contiguous inputs.

Shortcuts checked: tanh's rule subtracting from a cached 0-d one of the dtype (against the
Python 1); mse_loss's rule multiplying the 0-d incoming gradient by the scale as a NumPy
scalar (against the 0-d array times the Python number) and its forward dividing the scalar
total by the Python count (against the count as a NumPy scalar); linear's weight and bias
rules skipping ``_rows`` for a 2-D gradient and sum's rule skipping ``_expand_like`` for a
whole sum (against the rules as they were).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import ops

DTYPES = [np.float16, np.float32, np.float64]
SHAPES = [(), (1,), (5,), (4, 3), (2, 3, 4)]
SPECIAL = [0.0, -0.0, 1.0, -1.0, 1e-7, -3e-5, 0.3333, 2.5, 6e4, np.inf, -np.inf, np.nan]


def _values(shape: tuple[int, ...], dtype: Any, seed: int) -> np.ndarray:
    """Random values with the special ones mixed in (as many as fit)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-3, 3, shape).astype(dtype)
    flat = a.reshape(-1)
    k = min(flat.size, len(SPECIAL))
    flat[:k] = np.array(SPECIAL[:k]).astype(dtype)
    rng.shuffle(flat)
    return a


def _strided(a: np.ndarray) -> np.ndarray:
    """The same values as a non-contiguous view (every other element of a bigger array)."""
    if a.ndim == 0:
        return a
    big = np.empty(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    view = big[..., ::2]
    assert not view.flags.c_contiguous or view.size <= 1
    return view


def _num(v: float, dtype: Any) -> Any:
    """The Python number v in a general expression next to an array of dtype: as it is with
    NumPy 2, which makes it that dtype (NEP 50); with NumPy 1.x, which would compute a 0-d
    array or NumPy scalar with it in float64, made that dtype here, as the rules do."""
    return v if ops._WEAK_PYTHON_NUMBERS else np.dtype(dtype).type(v)


def _same_bits(fast: Any, general: Any) -> None:
    fast, general = np.asarray(fast), np.asarray(general)
    assert fast.dtype == general.dtype and fast.shape == general.shape
    # Byte views compare the bits: a NaN equals itself and -0.0 differs from 0.0.
    assert fast.tobytes() == general.tobytes(), (fast, general)


# --------------------------------------------------------------------------- tanh's rule
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("strided", [False, True])
def test_tanh_rule_same_bits_as_python_one(dtype: Any, shape: tuple[int, ...],
                                           strided: bool) -> None:
    out = np.tanh(_values(shape, dtype, 1))
    grad = _values(shape, dtype, 2)
    if strided:
        out, grad = _strided(out), _strided(grad)
    with np.errstate(all="ignore"):  # (inf·0 in both: the bits are compared)
        _same_bits(ops.tanh.rules[0](grad, out, out), grad * (_num(1, dtype) - out * out))


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_rule_broadcast_grad_same_bits(dtype: Any) -> None:
    out = np.tanh(_values((4, 3), dtype, 3))
    for grad in (_values((3,), dtype, 4), _values((), dtype, 5), _values((1, 3), dtype, 6)):
        with np.errstate(all="ignore"):
            _same_bits(ops.tanh.rules[0](grad, out, out), grad * (_num(1, dtype) - out * out))


def test_tanh_cached_one_is_shared_read_only_and_never_returned() -> None:
    out = np.tanh(np.linspace(-2, 2, 6, dtype=np.float32))
    one = ops._one(out)
    assert one.shape == () and one.dtype == np.float32 and one == 1
    assert ops._one(out.copy()) is one  # made once per dtype
    with pytest.raises(ValueError, match="read-only"):
        one[()] = 2
    g = ops.tanh.rules[0](np.ones_like(out), out, out)
    assert not np.shares_memory(g, one) and g.flags.writeable
    assert ops._one(gg.tensor([0.5])) == 1  # a Tensor (create_graph) takes the Python 1


def test_tanh_second_derivative_unchanged() -> None:
    """create_graph runs the rule on Tensors (the general path): d²tanh/dx² = −2·t·(1 − t²)."""
    x = gg.tensor(np.array([-1.5, 0.2, 0.9]), requires_grad=True)
    (g,) = gg.autograd.grad(gg.tanh(x).sum(), [x], create_graph=True)
    (h,) = gg.autograd.grad(g.sum(), [x])
    t = np.tanh(x.numpy())
    np.testing.assert_allclose(h.numpy(), -2 * t * (1 - t * t), rtol=1e-12)


# --------------------------------------------------------------------------- mse's rule
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (1,), (3,), (7,), (4, 1), (3, 5), (2, 3, 4)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("strided", [False, True])
def test_mse_rule_same_bits_as_array_times_python_scale(
    dtype: Any, shape: tuple[int, ...], reduction: str, strided: bool
) -> None:
    x, y = _values(shape, dtype, 7), _values(shape, dtype, 8)
    if strided:
        x, y = _strided(x), _strided(y)
    scale = 2 / x.size if reduction == "mean" else 2
    with np.errstate(all="ignore"):  # (float16 squares of 6e4 overflow)
        out = ops._mse_forward(x, y, reduction)
    for g in SPECIAL + [0.77, -1.3e-3]:
        grad = np.array(g, dtype)
        with np.errstate(all="ignore"):  # (inf·0, float16 overflow: in both, bits compared)
            general = (grad * _num(scale, dtype)) * (x - y)
            _same_bits(ops._mse_grad(grad, out, x, y, reduction), general)
            # and the target's rule, the same product negated
            _same_bits(ops.mse_loss.rules[1](grad, out, x, y, reduction), -general)


def test_mse_rule_still_warns_on_overflow() -> None:
    """A float16 gradient that overflows in the scale product warns as before (NumPy's
    scalar arithmetic says "scalar multiply" where the ufunc said "multiply")."""
    x, y = np.array([1.0, 2.0], np.float16), np.zeros(2, np.float16)
    with pytest.warns(RuntimeWarning, match="overflow encountered"):
        g = ops._mse_grad(np.array(6e4, np.float16), None, x, y, "sum")
    assert np.isinf(g).all()


@pytest.mark.parametrize("n", range(1, 40))
@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_rule_scale_rounds_as_the_ufunc_does(n: int, dtype: Any) -> None:
    """2/n is rounded to the gradient's dtype first, then one product: every n whose 2/n is
    inexact (3, 7, 11, ...) would show a double-rounded or wider product."""
    x = _values((n,), dtype, n)
    y = np.zeros(n, dtype)
    rng = np.random.default_rng(n)
    for g in rng.uniform(0.1, 3.0, 25):
        grad = np.array(g, dtype)
        _same_bits(ops._mse_grad(grad, None, x, y), (grad * _num(2 / n, dtype)) * (x - y))


def test_mse_rule_mixed_dtypes_promote_as_before() -> None:
    """A float32 gradient against float64 differences: the scalar product stays float32 and
    meets the float64 array as before."""
    x = _values((4, 1), np.float64, 9)
    y = _values((4, 1), np.float64, 10)
    grad = np.array(0.3, np.float32)
    _same_bits(ops._mse_grad(grad, None, x, y), (grad * _num(0.5, np.float32)) * (x - y))


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse_loss_gradient_through_the_engine(dtype: Any) -> None:
    """End to end: the input's .grad is the general expression's bits, seed 1."""
    x = gg.tensor(_values((4, 1), dtype, 11), requires_grad=True)
    y = gg.tensor(_values((4, 1), dtype, 12))
    gg.nn.functional.mse_loss(x, y).backward()
    one = np.ones((), dtype)
    _same_bits(x.grad.numpy(), (one * _num(0.5, dtype)) * (x.numpy() - y.numpy()))


# --------------------------------------------------------------------------- mse's forward
def _mse_forward_general(x: np.ndarray, y: np.ndarray, reduction: str) -> Any:
    """The forward as it was: the count made a NumPy scalar of the total's dtype first."""
    d = x - y
    total = np.add.reduce(d * d, axis=None)
    return total / total.dtype.type(d.size) if reduction == "mean" else total


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (1,), (3,), (7,), (4, 1), (3, 5), (2, 3, 4)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("strided", [False, True])
def test_mse_forward_same_bits(dtype: Any, shape: tuple[int, ...], reduction: str,
                               strided: bool) -> None:
    for seed in range(5):
        x, y = _values(shape, dtype, 20 + seed), _values(shape, dtype, 40 + seed)
        if strided:
            x, y = _strided(x), _strided(y)
        with np.errstate(all="ignore"):  # (float16 squares of 6e4 overflow in both)
            _same_bits(ops._mse_forward(x, y, reduction), _mse_forward_general(x, y, reduction))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [3, 7, 2049, 2051, 65519, 65520, 70001])
def test_mse_forward_count_rounds_as_before(dtype: Any, n: int) -> None:
    """Counts that float16 cannot hold exactly (beyond 2048) or at all (beyond 65519: inf,
    so the mean is 0) are rounded as before."""
    x = np.linspace(-1, 1, n).astype(dtype)
    y = np.zeros(n, dtype)
    with np.errstate(all="ignore"):
        _same_bits(ops._mse_forward(x, y), _mse_forward_general(x, y, "mean"))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [3, 7, 2049, 70001])
def test_mse_forward_without_weak_python_numbers_keeps_the_dtype(monkeypatch, dtype: Any,
                                                                 n: int) -> None:
    """NumPy 1.x computes a float32 scalar over a Python int in float64 (no NEP 50): there
    the forward divides by the count made a scalar of the total's dtype, with NumPy 2's
    bits (before, its float64 result sent the op's dtype promotion into endless recursion:
    mse_loss on float32 raised RecursionError)."""
    assert (int(np.__version__.split(".")[0]) >= 2) == ops._WEAK_PYTHON_NUMBERS
    monkeypatch.setattr(ops, "_WEAK_PYTHON_NUMBERS", False)
    x = np.linspace(-1, 1, n).astype(dtype)
    y = np.zeros(n, dtype)
    with np.errstate(all="ignore"):
        _same_bits(ops._mse_forward(x, y), _mse_forward_general(x, y, "mean"))


@pytest.mark.parametrize("dtype, n", [(np.float32, 2**24 + 1), (np.float32, 2**25 + 3),
                                      (np.float64, 2**53 + 1), (np.float16, 10**6)])
def test_scalar_divided_by_python_count_rounds_the_count_to_its_dtype(dtype: Any,
                                                                      n: int) -> None:
    """What _mse_forward relies on for counts too large to test with real arrays: a NumPy
    scalar divided by a Python int gives the bits of dividing by the count made a scalar of
    the same dtype (the count rounded once). NumPy 2 only (NEP 50): with NumPy 1.x the
    quotient is float64, and _mse_forward makes the count a scalar itself."""
    if not ops._WEAK_PYTHON_NUMBERS:
        total = dtype(3.0)
        assert ops._mse_forward(np.full(3, total), np.zeros(3, dtype)).dtype == dtype
        return
    for v in (0.5, 3.0, 1e4, 6e4):
        total = dtype(v)
        with np.errstate(all="ignore"):
            _same_bits(total / n, total / dtype(n))


# --------------------------------------------------------------------------- linear, sum
LINEAR_SHAPES = [((3,), (2, 3)), ((4, 3), (5, 3)), ((2, 4, 3), (5, 3)), ((70, 3), (5, 3)),
                 ((2, 40, 3), (5, 3)), ((1, 7), (1, 7)), ((5, 1), (4, 1))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape, w_shape", LINEAR_SHAPES)
@pytest.mark.parametrize("strided", [False, True])
def test_linear_weight_and_bias_rules_same_bits(dtype: Any, x_shape: tuple[int, ...],
                                                w_shape: tuple[int, ...], strided: bool) -> None:
    x, w = _values(x_shape, dtype, 50), _values(w_shape, dtype, 51)
    b = _values(w_shape[:1], dtype, 52)
    with np.errstate(all="ignore"):
        out = ops._linear_forward(x, w, b)
        grad = _values(out.shape, dtype, 53)
        if strided:
            x, grad = _strided(x), _strided(grad)
        _, rule_w, rule_b = ops.linear.rules
        rows_g, rows_x = ops._rows(grad), ops._rows(x)
        _same_bits(rule_w(grad, out, x, w, b), rows_g.T @ rows_x)
        _same_bits(rule_b(grad, out, x, w, b), np.add.reduce(rows_g, axis=0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis, keepdims", [
    ((), None, False), ((4,), None, False), ((4,), None, True), ((3, 4), None, False),
    ((3, 4), 0, False), ((3, 4), 1, True), ((2, 3, 4), (0, 2), False), ((2, 3, 4), -1, True),
])
def test_sum_rule_same_bits(dtype: Any, shape: tuple[int, ...], axis: Any,
                            keepdims: bool) -> None:
    x = _values(shape, dtype, 60)
    with np.errstate(all="ignore"):  # (inf − inf in the sum: the rule reads only shapes)
        out = np.add.reduce(x, axis=axis, keepdims=keepdims)
    grad = _values(np.shape(out), dtype, 61)
    fast = ops.sum.rules[0](grad, out, x, axis=axis, keepdims=keepdims)
    general = np.broadcast_to(ops._expand_like(grad, shape, axis, keepdims), shape)
    _same_bits(fast, general)
    assert fast.flags.writeable and not np.shares_memory(fast, grad)

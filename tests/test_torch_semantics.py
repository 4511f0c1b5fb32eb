"""Where glassgrad and PyTorch spell a call the same way, they compute the same thing.

Issue 12, section 1: transpose/permute/T/mT/t, var/std with Bessel's correction, max/min
with a dim returning (values, indices), dim=/keepdim= (and NumPy's axis=/keepdims= where
PyTorch takes them) on every reduction and dimension-taking function, PyTorch's dtype
promotion, and the checks on ``t.grad = ...``. Each is compared with torch: values, dtypes
and gradients (a random vector-Jacobian product), in float64.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

import glassgrad as gg

torch = pytest.importorskip(
    "torch", reason='needs torch==2.13.0, which is not installed: pip install "glassgrad[test]"')

SHAPES = [(5,), (3, 4), (2, 3, 4)]


def _pair(shape: tuple[int, ...], seed: int = 0) -> tuple[gg.Tensor, Any]:
    data = np.random.default_rng(seed).standard_normal(shape)
    return gg.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)


def _same(out: Any, tout: Any) -> None:
    assert out.shape == tuple(tout.shape)
    assert out.dtype == np.dtype(str(tout.dtype).removeprefix("torch."))
    tol = 1e-10 if out.dtype == np.float64 else 1e-6  # (float32: the last bit may differ)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=tol, atol=tol / 100)


def _check(gg_fn: Any, torch_fn: Any, shape: tuple[int, ...], seed: int = 0) -> None:
    """Same values, dtype and vector-Jacobian product on one random input."""
    x, tx = _pair(shape, seed)
    out, tout = gg_fn(x), torch_fn(tx)
    _same(out, tout)
    v = np.random.default_rng(seed + 1).standard_normal(out.shape)
    out.backward(v)
    tout.backward(torch.from_numpy(v))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-12)


def _dims_of(shape: tuple[int, ...]) -> list[Any]:
    n = len(shape)
    return [d for d in (0, n - 1, -1, -n, (0, n - 1) if n > 1 else None) if d is not None]


# (shape, dim): every form of dim (first, last, negative, a tuple) on 1-, 2- and 3-d inputs
SHAPE_DIMS = [(shape, dim) for shape in SHAPES for dim in _dims_of(shape)]
SHAPE_ONE_DIM = [(shape, dim) for shape in SHAPES for dim in (0, -1, len(shape) - 1)]


# --------------------------------------------------------------------------- transpose & co
@pytest.mark.parametrize(("shape", "d0", "d1"), [
    ((3, 4), 0, 1), ((3, 4), 1, 0), ((3, 4), -1, -2), ((2, 3, 4), 0, 2), ((2, 3, 4), -1, 1),
    ((5,), 0, 0), ((2, 3, 4), 1, 1),
])
def test_transpose_swaps_two_dims(shape: tuple, d0: int, d1: int) -> None:
    _check(lambda x: x.transpose(d0, d1), lambda t: t.transpose(d0, d1), shape)
    _check(lambda x: gg.transpose(x, d0, d1), lambda t: torch.transpose(t, d0, d1), shape)
    _check(lambda x: x.swapaxes(d0, d1), lambda t: t.swapaxes(d0, d1), shape)
    _check(lambda x: x.swapdims(d0, d1), lambda t: t.swapdims(d0, d1), shape)


def test_transpose_of_a_matrix_changes_its_shape() -> None:
    # The old NumPy meaning gave (3, 4) back: transpose(0, 1) was the identity permutation.
    assert gg.ones(3, 4).transpose(0, 1).shape == (4, 3)


@pytest.mark.parametrize(("shape", "dims"), [
    ((3, 4), (1, 0)), ((2, 3, 4), (2, 0, 1)), ((2, 3, 4), (-1, 0, 1)), ((2, 3, 4), (0, 1, 2)),
    ((5,), (0,)),
])
def test_permute(shape: tuple, dims: tuple) -> None:
    _check(lambda x: x.permute(*dims), lambda t: t.permute(*dims), shape)
    _check(lambda x: x.permute(dims), lambda t: t.permute(dims), shape)
    _check(lambda x: gg.permute(x, dims), lambda t: torch.permute(t, dims), shape)


@pytest.mark.parametrize("dims", [(0,), (0, 0, 1), (0, 1, 3), (1, 2)])
def test_permute_refuses_what_is_not_a_permutation(dims: tuple) -> None:
    x = gg.ones(2, 3, 4)
    with pytest.raises(ValueError, match=r"not a permutation .* shape \(2, 3, 4\)"):
        x.permute(*dims)


@pytest.mark.parametrize("shape", [(3, 4), (5,), ()])
def test_t_and_T_on_up_to_two_dims(shape: tuple) -> None:
    _check(lambda x: x.t(), lambda t: t.t(), shape)
    _check(lambda x: gg.t(x), lambda t: torch.t(t), shape)


def test_T_is_silent_on_a_matrix_and_warns_otherwise_like_torch() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check(lambda x: x.T, lambda t: t.T, (3, 4))
    x, tx = _pair((2, 3, 4))
    with pytest.warns(UserWarning, match=r"x\.T on a tensor of 3 dimensions .* x\.mT"):
        out = x.T
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (torch's own deprecation warning)
        _same(out, tx.T)


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4), (2, 1, 3, 4)])
def test_mT_swaps_the_last_two_dims(shape: tuple) -> None:
    _check(lambda x: x.mT, lambda t: t.mT, shape)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: gg.ones(2, 3, 4).t(), r"t\(\) expects a tensor with <= 2 dimensions.*\(2, 3, 4\)"),
    (lambda: gg.ones(3).mT, r"mT is only supported on matrices.*1-D tensor of shape \(3,\)"),
])
def test_t_and_mT_refuse_like_torch(call: Any, message: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        call()


def test_transpose_needs_two_dims_as_in_torch() -> None:
    with pytest.raises(TypeError):
        gg.ones(3, 4).transpose()
    with pytest.raises(IndexError, match=r"range of \[-2, 1\], but got 2"):
        gg.ones(3, 4).transpose(0, 2)


def test_numpy_functions_keep_numpy_meaning() -> None:
    x = gg.tensor(np.arange(24.0).reshape(2, 3, 4))
    np.testing.assert_array_equal(np.transpose(x).numpy(), np.transpose(x.numpy()))
    np.testing.assert_array_equal(np.transpose(x, (1, 2, 0)).numpy(),
                                  np.transpose(x.numpy(), (1, 2, 0)))
    np.testing.assert_allclose(np.var(x, axis=1).numpy(), np.var(x.numpy(), axis=1))
    np.testing.assert_allclose(np.std(x, ddof=1).numpy(), np.std(x.numpy(), ddof=1))
    np.testing.assert_array_equal(np.max(x, axis=0).numpy(), np.max(x.numpy(), axis=0))


# --------------------------------------------------------------------------- var and std
VAR_KWARGS = [{}, {"correction": 0}, {"correction": 2}, {"unbiased": False},
              {"unbiased": True}]


@pytest.mark.parametrize("name", ["var", "std"])
@pytest.mark.parametrize(("shape", "dim"), [*SHAPE_DIMS, ((3, 4), None)])
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("kw", VAR_KWARGS, ids=lambda kw: ",".join(map(str, kw.items())))
def test_var_std_match_torch(name: str, shape: tuple, dim: Any, keepdim: bool, kw: dict):
    n = np.prod(shape) // np.prod(np.empty(shape).sum(axis=dim, keepdims=True).shape)
    if n <= kw.get("correction", int(kw.get("unbiased", True))):
        return  # n ≤ correction: inf or NaN (with a warning) in both
    _check(lambda x: getattr(x, name)(dim, keepdim=keepdim, **kw),
           lambda t: getattr(t, name)(dim, keepdim=keepdim, **kw), shape)


def test_var_divides_by_n_minus_one_by_default() -> None:
    x = gg.tensor([1.0, 2.0, 3.0, 4.0])
    assert x.var().item() == pytest.approx(5 / 3)  # NumPy's default would give 1.25
    assert x.var(unbiased=False).item() == pytest.approx(1.25)
    assert x.std(0, False).item() == pytest.approx(1.25 ** 0.5)  # (dim, unbiased) positional
    assert x.var(False).item() == pytest.approx(1.25)  # PyTorch's var(unbiased) overload
    assert gg.var(x, axis=0, correction=0).item() == pytest.approx(1.25)


def test_var_refuses_both_correction_and_unbiased() -> None:
    with pytest.raises(TypeError, match="both unbiased=True and correction=0"):
        gg.ones(3).var(unbiased=True, correction=0)
    with pytest.raises(TypeError):
        gg.ones(3).var(ddof=1)  # NumPy's ddof: PyTorch does not take it, nor do we


# --------------------------------------------------------------------------- max and min
@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize(("shape", "dim"), SHAPE_ONE_DIM)
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_min_along_a_dim_match_torch(name: str, shape: tuple, dim: int, keepdim: bool):
    x, tx = _pair(shape, 3)
    got, want = getattr(x, name)(dim, keepdim), getattr(tx, name)(dim, keepdim)
    assert type(got).__name__ == name and got._fields == ("values", "indices")
    _same(got.values, want.values)
    _same(got.indices, want.indices)
    values, indices = getattr(gg, name)(x, dim=dim, keepdim=keepdim)  # unpacks as a tuple
    _same(values, want.values)
    _same(indices, want.indices)
    v = np.random.default_rng(4).standard_normal(got.values.shape)
    got.values.backward(v)
    want.values.backward(torch.from_numpy(v))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


@pytest.mark.parametrize("name", ["max", "min"])
def test_gradient_of_max_with_dim_goes_to_the_picked_index_at_ties(name: str) -> None:
    data = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    x, tx = gg.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    getattr(x, name)(1).values.sum().backward()
    getattr(tx, name)(1).values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())
    assert x.grad.numpy()[1].tolist() == [1.0, 0.0, 0.0]  # not shared: the first index


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_without_dim_and_elementwise(name: str) -> None:
    _check(lambda x: getattr(x, name)(), lambda t: getattr(t, name)(), (3, 4))
    a, ta = _pair((3, 4), 1)
    b, tb = _pair((3, 4), 2)
    _same(getattr(gg, name)(a, b), getattr(torch, name)(ta, tb))
    _same(getattr(a, name)(b), getattr(ta, name)(tb))
    _same(getattr(gg, name)(a, other=b), getattr(torch, name)(ta, other=tb))


def test_max_refuses_a_tuple_of_dims_and_points_to_amax() -> None:
    with pytest.raises(TypeError, match=r"amax\(x, dim=\(0, 1\)\)"):
        gg.ones(2, 3).max((0, 1))


# --------------------------------------------------------------------------- dim= and keepdim=
REDUCTIONS = ["sum", "mean", "logsumexp", "amax", "amin", "norm"]


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize(("shape", "dim"), SHAPE_DIMS)
@pytest.mark.parametrize("keepdim", [False, True])
def test_reductions_take_dim_and_keepdim(name: str, shape: tuple, dim: Any, keepdim: bool):
    _check(lambda x: getattr(x, name)(dim=dim, keepdim=keepdim),
           lambda t: getattr(t, name)(dim=dim, keepdim=keepdim), shape)
    args = (2, dim, keepdim) if name == "norm" else (dim, keepdim)  # norm(input, p, dim)
    _check(lambda x: getattr(gg, name)(x, *args), lambda t: getattr(torch, name)(t, *args),
           shape)


@pytest.mark.parametrize("name", ["sum", "mean", "logsumexp", "amax", "var", "std"])
def test_numpy_spellings_are_aliases_where_torch_takes_them(name: str) -> None:
    _check(lambda x: getattr(x, name)(axis=1, keepdims=True),
           lambda t: getattr(t, name)(axis=1, keepdims=True), (3, 4))
    with pytest.raises(TypeError, match="both dim=0 and axis=1"):
        getattr(gg.ones(3, 4), name)(dim=0, axis=1)


@pytest.mark.parametrize("p", [2, "fro", 1, 3, 0.5, float("inf"), float("-inf")])
@pytest.mark.parametrize("dim", [None, 0, -1, (0, 1)])
def test_norm_matches_torch(p: Any, dim: Any) -> None:
    if p == 0.5 or dim == (0, 1) and p != "fro":  # (|x|^0.5 has no gradient at 0)
        p = 2 if p == 0.5 else p
    _check(lambda x: x.norm(p, dim), lambda t: t.norm(p, dim), (3, 4))


def test_norm_gradient_is_zero_at_zero_like_torch() -> None:
    x, tx = gg.zeros(3, 2, requires_grad=True), torch.zeros(3, 2, requires_grad=True)
    x.norm(dim=1).sum().backward()
    tx.norm(dim=1).sum().backward()
    assert not np.isnan(x.grad.numpy()).any()
    np.testing.assert_array_equal(x.grad.numpy(), tx.grad.numpy())


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("name", ["argmax", "argmin", "all", "any"])
def test_index_and_logic_reductions(shape: tuple, keepdim: bool, name: str) -> None:
    x, tx = _pair(shape, 5)
    if name in ("all", "any"):
        x, tx = x > 0, tx > 0
    for dim in (0, -1):
        _same(getattr(x, name)(dim, keepdim), getattr(tx, name)(dim, keepdim))
        _same(getattr(gg, name)(x, dim=dim, keepdim=keepdim),
              getattr(torch, name)(tx, dim=dim, keepdim=keepdim))
    _same(getattr(x, name)(), getattr(tx, name)())


@pytest.mark.parametrize(("shape", "dim"), SHAPE_ONE_DIM)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "cumsum"])
def test_functions_along_one_dim(shape: tuple, dim: int, name: str) -> None:
    _check(lambda x: getattr(x, name)(dim), lambda t: getattr(t, name)(dim), shape)
    _check(lambda x: getattr(gg, name)(x, dim=dim), lambda t: getattr(torch, name)(t, dim=dim),
           shape)


def test_cumsum_needs_a_dim_and_keeps_integers_int64() -> None:
    with pytest.raises(TypeError, match="missing the dim"):
        gg.ones(3).cumsum()
    _same(gg.tensor([1, 2, 3], dtype=np.int32).cumsum(0),
          torch.tensor([1, 2, 3], dtype=torch.int32).cumsum(0))
    _check(lambda x: x.cumsum(0), lambda t: t.cumsum(0), ())


@pytest.mark.parametrize("name", ["cat", "concat", "concatenate", "stack"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_joining_tensors_along_dim(name: str, dim: int) -> None:
    a, ta = _pair((2, 3), 6)
    b, tb = _pair((2, 3), 7)
    out, tout = getattr(gg, name)([a, b], dim=dim), getattr(torch, name)([ta, tb], dim=dim)
    _same(out, tout)
    _same(getattr(gg, name)([a, b], axis=dim), getattr(torch, name)([ta, tb], axis=dim))
    v = np.random.default_rng(0).standard_normal(out.shape)
    out.backward(v)
    tout.backward(torch.from_numpy(v))
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy())
    np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy())


@pytest.mark.parametrize(("shape", "start", "end"), [
    ((2, 3, 4), 0, -1), ((2, 3, 4), 1, -1), ((2, 3, 4), 0, 1), ((2, 3, 4), -2, -1),
    ((2, 3, 4), 1, 1), ((5,), 0, 0), ((), 0, -1), ((2, 0, 3), 1, 2),
])
def test_flatten(shape: tuple, start: int, end: int) -> None:
    _check(lambda x: x.flatten(start, end), lambda t: t.flatten(start, end), shape)
    _check(lambda x: gg.flatten(x, start_dim=start, end_dim=end),
           lambda t: torch.flatten(t, start_dim=start, end_dim=end), shape)


@pytest.mark.parametrize("dim", [None, 0, 1, 2, -1, (0, 2), (0, 1)])
def test_squeeze(dim: Any) -> None:
    # dim 1 has size 3: named but kept, as in PyTorch (NumPy would raise)
    args = () if dim is None else (dim,)
    _check(lambda x: x.squeeze(*args), lambda t: t.squeeze(*args), (1, 3, 1))
    _check(lambda x: gg.squeeze(x, *args), lambda t: torch.squeeze(t, *args), (1, 3, 1))


@pytest.mark.parametrize("dim", [0, 1, 2, -1, -3])
def test_unsqueeze(dim: int) -> None:
    _check(lambda x: x.unsqueeze(dim), lambda t: t.unsqueeze(dim), (3, 4))
    _check(lambda x: gg.unsqueeze(x, dim=dim), lambda t: torch.unsqueeze(t, dim=dim), (3, 4))
    with pytest.raises(IndexError, match=r"range of \[-3, 2\], but got 3"):
        gg.ones(3, 4).unsqueeze(3)


# --------------------------------------------------------------------------- dtype promotion
def _tensors(lib: Any) -> dict[str, Any]:
    t = lib.tensor
    return {
        "i": t([1, 2, 3]), "i32": t(np.array([1, 2, 3], dtype=np.int32)),
        "f": t([1.0, 2.0, 3.0]), "d": t(np.array([1.0, 2.0, 3.0])),
        "h": t(np.array([1.0, 2.0, 3.0], dtype=np.float16)), "b": t([True, False, True]),
        "i0": t(2), "d0": t(np.float64(2.0)), "u8": t(np.array([1, 2, 3], dtype=np.uint8)),
        "i8": t(np.array([1, 2, 3], dtype=np.int8)),
    }


PROMOTIONS = [
    "i / 2", "i / i", "1 / i", "f ** i", "i ** 2", "i ** 2.0", "2.0 ** i", "i + 1.5",
    "f + 1.5", "i + i", "i + True", "b + b", "b + 1", "b + 1.5", "b * f", "i * f", "f + d",
    "i32 + i", "i32 + 2", "i32 + 2.5", "h + 2.5", "h + f", "h + i", "d + 1.5", "f + d0",
    "i + d0", "i0 * f", "d0 * f", "u8 + i8", "i.sum()", "b.sum()", "i32.sum()", "i.exp()",
    "i.sqrt()", "b.cumsum(0)", "gg_or_torch.where(b, i, f)", "gg_or_torch.maximum(i, f)",
    "f.max()", "i.max()", "gg_or_torch.cat([i, f])",
]


@pytest.mark.parametrize("expr", PROMOTIONS)
def test_result_dtypes_follow_torch(expr: str) -> None:
    got = eval(expr, {"gg_or_torch": gg}, _tensors(gg))  # noqa: S307
    want = eval(expr, {"gg_or_torch": torch}, _tensors(torch))  # noqa: S307
    _same(got, want)


def test_float32_stays_float32_through_a_training_step_with_int_data() -> None:
    w = gg.tensor([0.5, -1.0], requires_grad=True)
    counts = gg.tensor([3, 4])  # int64 data
    loss = ((w * counts / 2) ** 2).mean()
    assert loss.dtype == np.float32
    loss.backward()
    assert w.grad.dtype == np.float32


# --------------------------------------------------------------------------- .grad checks
@pytest.mark.parametrize(("value", "error", "message"), [
    (0, TypeError, r"Tensor or None but got grad of type int .* shape \(2, 3\)"),
    (np.zeros((2, 3), np.float32), TypeError, "got grad of type ndarray"),
    ([[0.0] * 3] * 2, TypeError, "got grad of type list"),
    (gg.zeros(3), RuntimeError, r"gradient of shape \(3,\) to a tensor of shape \(2, 3\)"),
    (gg.zeros(2, 3, dtype=np.float64), RuntimeError, "dtype float64 to a tensor with dtype "
                                                      "float32"),
])
def test_assigning_a_wrong_grad_is_refused(value: Any, error: type, message: str) -> None:
    w = gg.ones(2, 3, requires_grad=True)
    old = gg.full((2, 3), 7.0)
    w.grad = old
    with pytest.raises(error, match=message):
        w.grad = value
    assert w.grad is old  # nothing changed


def test_assigning_a_right_grad_works_and_backward_accumulates_into_it() -> None:
    w = gg.ones(3, requires_grad=True)
    w.grad = gg.full((3,), 2.0)
    (w * 5).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [7.0, 7.0, 7.0])
    w.grad = None
    assert w.grad is None


@pytest.mark.parametrize("op", ["div", "exp", "sqrt"])
def test_integers_become_the_default_float_dtype_as_torch(torch, op):
    def run(lib):
        x = lib.tensor([1, 2, 4])
        return {"div": lambda: x / 2, "exp": lambda: lib.exp(x),
                "sqrt": lambda: lib.sqrt(x)}[op]()

    try:
        for lib in (gg, torch):
            lib.set_default_dtype(lib.float64)
        assert str(run(gg).dtype) == str(run(torch).dtype).removeprefix("torch.") == "float64"
    finally:
        for lib in (gg, torch):
            lib.set_default_dtype(lib.float32)
    assert run(gg).dtype == np.float32

"""The op table against PyTorch as an oracle: forward values and gradients, in float64.

Same cases as the finite-difference tests (``op_case``, ``composite_case`` from
conftest.py). The mapping below translates each op's NumPy-style attributes (``axis``,
``keepdims``, NumPy indices) into the matching torch call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import glassgrad as gg

# Every test here compares with torch, and the tables below are built from it at import:
# the whole file skips without it (the same reason as conftest.missing_reason("torch")).
torch = pytest.importorskip(
    "torch", reason='needs torch==2.13.0, which is not installed: pip install "glassgrad[test]"')


def _dims(x: Any, axis: Any) -> Any:
    """NumPy's axis=None (all axes) as an explicit torch dim tuple."""
    return tuple(range(x.ndim)) if axis is None else axis


def _flat_index(shape: tuple[int, ...], index: Any) -> Any:
    """The positions NumPy's ``a[index]`` reads, as flat indices: an oracle for any NumPy
    index (torch has no negative-step slices and treats some index tuples differently)."""
    return torch.from_numpy(np.array(np.arange(int(np.prod(shape))).reshape(shape)[index]))


def _getitem(x: Any, index: Any = None) -> Any:
    return x.reshape(-1)[_flat_index(tuple(x.shape), index)]


def _index_add(base: Any, values: Any, index: Any = None) -> Any:
    idx = _flat_index(tuple(base.shape), index)
    values = values.expand(idx.shape)
    return base.reshape(-1).index_add(0, idx.reshape(-1), values.reshape(-1)).reshape(base.shape)


_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}

# op name -> the same computation on torch tensors, with the op's attributes as keywords.
TORCH_OPS: dict[str, Any] = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": torch.div,
    "neg": torch.neg,
    "pow": torch.pow,
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
    "sin": torch.sin,
    "cos": torch.cos,
    "tanh": torch.tanh,
    "erf": torch.erf,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
    "where": torch.where,
    "clip": lambda x, lo=None, hi=None: torch.clamp(x, min=lo, max=hi),
    "cast": lambda x, dtype=None: x.to(_DTYPES[np.dtype(dtype)]),
    "matmul": torch.matmul,
    "linear": torch.nn.functional.linear,
    "sum": lambda x, axis=None, keepdims=False: torch.sum(x, _dims(x, axis), keepdims),
    "mean": lambda x, axis=None, keepdims=False: torch.mean(x, _dims(x, axis), keepdims),
    "max": lambda x, axis=None, keepdims=False: torch.amax(x, _dims(x, axis), keepdims),
    "min": lambda x, axis=None, keepdims=False: torch.amin(x, _dims(x, axis), keepdims),
    "logsumexp": lambda x, axis=None, keepdims=False: (
        torch.logsumexp(x, _dims(x, axis), keepdims)),
    "log_softmax": lambda x, axis=-1: torch.log_softmax(x, dim=axis),
    "reshape": lambda x, shape=(): x.reshape(shape),
    "permute": lambda x, dims=(): x.permute(dims),
    "cumsum": lambda x, axis=0: torch.cumsum(x, dim=axis),
    "broadcast_to": lambda x, shape=(): torch.broadcast_to(x, shape),
    "getitem": _getitem,
    "index_add": _index_add,
    "gather": lambda x, dim=0, index=None: torch.gather(x, dim, torch.from_numpy(index)),
    "concatenate": lambda *xs, axis=0: torch.cat(xs, dim=axis),
    "mse_loss": lambda input, target, reduction="mean": (
        torch.nn.functional.mse_loss(input, target, reduction=reduction)),
    # torch wants the classes on dim 1; glassgrad (like a Linear layer's output) on the last.
    "cross_entropy": lambda logits, target, reduction="mean": (
        torch.nn.functional.cross_entropy(logits.movedim(-1, 1), target, reduction=reduction)),
    # ops_nn.py: conv2d and the two products of its backward, max_pool2d, embedding
    "conv2d": lambda x, w, b, stride=1, padding=0, dilation=1, groups=1: (
        torch.nn.functional.conv2d(x, w, b, stride, padding, dilation, groups)),
    "conv2d_input": lambda g, w, size=(), stride=1, padding=0, dilation=1, groups=1: (
        torch.nn.grad.conv2d_input((g.shape[0], w.shape[1] * groups, *size), w, g, stride,
                                   padding, dilation, groups)),
    "conv2d_weight": lambda x, g, size=(), stride=1, padding=0, dilation=1, groups=1: (
        torch.nn.grad.conv2d_weight(x, (g.shape[1], x.shape[1] // groups, *size), g, stride,
                                    padding, dilation, groups)),
    "max_pool2d": lambda x, kernel_size=(2, 2), stride=(2, 2), padding=0, dilation=1,
    ceil_mode=False: torch.nn.functional.max_pool2d(x, kernel_size, stride, padding, dilation,
                                                    ceil_mode),
    "embedding": lambda weight, indices, padding_idx=None: (
        torch.nn.functional.embedding(indices, weight, padding_idx)),
}

TORCH_COMPOSITES: dict[str, Any] = {
    "mean": lambda x, axis=None, keepdims=False: torch.mean(x, _dims(x, axis), keepdims),
    "var": lambda x, axis=None, keepdims=False, correction=1: (
        torch.var(x, _dims(x, axis), correction=correction, keepdim=keepdims)),
    "std": lambda x, axis=None, keepdims=False, correction=1: (
        torch.std(x, _dims(x, axis), correction=correction, keepdim=keepdims)),
    "softmax": lambda x, axis=-1: torch.softmax(x, dim=axis),
    "leaky_relu": lambda x, negative_slope=0.01: (
        torch.nn.functional.leaky_relu(x, negative_slope)),
    "stack": lambda *xs, axis=0: torch.stack(xs, dim=axis),
    "expand_dims": lambda x, axis: x.unsqueeze(axis),
    "squeeze": lambda x, axis=None: x.squeeze() if axis is None else x.squeeze(axis),
    "swapaxes": lambda x, axis1, axis2: x.transpose(axis1, axis2),
    "linear_no_bias": torch.nn.functional.linear,
    "square": torch.square,
    "flatten": torch.flatten,
}


def _to_torch(x: Any) -> Any:
    if isinstance(x, gg.Tensor):
        return torch.from_numpy(x.numpy().copy()).requires_grad_(x.requires_grad)
    return torch.from_numpy(np.asarray(x).copy())


def _compare(gg_fn: Any, torch_fn: Any, inputs: list, kw: dict) -> None:
    """Same forward values, and the same vector-Jacobian product for a random v."""
    tin = [_to_torch(x) for x in inputs]
    out = gg_fn(*inputs, **kw)
    tout = torch_fn(*tin, **kw)
    assert out.shape == tuple(tout.shape)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    v = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(v)
    tout.backward(torch.from_numpy(v))
    checked = 0
    for i, (x, t) in enumerate(zip(inputs, tin)):
        if isinstance(x, gg.Tensor) and x.requires_grad:
            assert x.grad is not None and x.grad.dtype == x.dtype
            np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=f"gradient of input {i}")
            checked += 1
    assert checked


def test_every_op_and_composite_has_an_oracle(cases) -> None:
    assert set(TORCH_OPS) == set(gg.OPS)
    assert set(TORCH_COMPOSITES) == set(cases.COMPOSITES)


# A reduction's public method with PyTorch's spelling (max and min with dims: amax, amin).
_PUBLIC = {"sum": "sum", "mean": "mean", "max": "amax", "min": "amin", "logsumexp": "logsumexp"}


def test_op_matches_torch(op_case: tuple, cases) -> None:
    name, shapes, attrs = op_case
    op = gg.OPS[name]
    inputs = cases.sample(op, shapes, np.random.default_rng(5))
    _compare(op, TORCH_OPS[name], inputs, attrs)
    if op.kind == "reduction":  # the same case spelled x.sum(dim=..., keepdim=...)
        inputs = cases.sample(op, shapes, np.random.default_rng(5))
        _compare(lambda x, axis, keepdims: getattr(x, _PUBLIC[name])(dim=axis, keepdim=keepdims),
                 TORCH_OPS[name], inputs, attrs)


def test_composite_matches_torch(composite_case: tuple, cases) -> None:
    name, shapes, kw = composite_case
    inputs = cases.sample_composite(shapes, np.random.default_rng(6))
    _compare(cases.COMPOSITES[name][0], TORCH_COMPOSITES[name], inputs, kw)


_TIES = np.array([[1.0, 3.0, 3.0, 2.0], [-1.0, -1.0, 0.5, -1.0]])


@pytest.mark.parametrize(("gg_fn", "torch_fn", "expected"), [
    (lambda x: x.max(), torch.amax, [[0, 0.5, 0.5, 0], [0, 0, 0, 0]]),
    (lambda x: x.min(), torch.amin, [[0, 0, 0, 0], [1 / 3, 1 / 3, 0, 1 / 3]]),
    (lambda x: x.amax(axis=1), lambda x: torch.amax(x, 1), [[0, 0.5, 0.5, 0], [0, 0, 1, 0]]),
], ids=["max", "min", "max-axis1"])
def test_extreme_ties_share_the_gradient_like_torch(gg_fn: Any, torch_fn: Any, expected):
    x = gg.tensor(_TIES, requires_grad=True)
    t = torch.tensor(_TIES, requires_grad=True)
    gg_fn(x).sum().backward()
    torch_fn(t).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), expected)
    np.testing.assert_allclose(t.grad.numpy(), expected)


def test_maximum_minimum_ties_split_like_torch() -> None:
    a_np, b_np = np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 0.0])
    for gg_fn, torch_fn in ((gg.maximum, torch.maximum), (gg.minimum, torch.minimum)):
        a, b = gg.tensor(a_np, requires_grad=True), gg.tensor(b_np, requires_grad=True)
        ta, tb = (torch.tensor(v, requires_grad=True) for v in (a_np, b_np))
        gg_fn(a, b).sum().backward()
        torch_fn(ta, tb).sum().backward()
        np.testing.assert_array_equal(a.grad.numpy(), ta.grad.numpy())
        np.testing.assert_array_equal(b.grad.numpy(), tb.grad.numpy())
        assert a.grad.numpy()[0] == 0.5  # the tie at index 0 is split equally

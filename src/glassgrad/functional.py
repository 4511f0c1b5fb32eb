"""The public tensor functions: the op table's primitives plus composites built from them.

Composites have no backward code: their gradient is the chain rule through the primitives
they are made of. Every function here is also a ``Tensor`` method (``x.softmax(axis=-1)``)
and, for the math ones, reachable through NumPy (``np.exp(x)`` returns a Tensor).
"""

from __future__ import annotations

import builtins
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import ops
from .ops import apply
from .reductions import (  # noqa: F401  (with dim= and keepdim=, as PyTorch's)
    _cast,
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    cumsum,
    logsumexp,
    max,
    mean,
    min,
    norm,
    normalize_dim,
    numpy_names,
    std,
    sum,
    var,
)
from .tensor import Tensor, as_constant

Axis = int | Sequence[int] | None

# --------------------------------------------------------------------------- primitives
# The op table's public ops (``public=True``): those whose inputs are plain tensors get
# their one-line function made here from the entry (``_one_line``, end of the module); the
# others, which check or convert arguments first, are written out below.
PRIMITIVES: tuple[str, ...] = tuple(name for name, op in ops.OPS.items() if op.public)


def _one_line(op: ops.Op) -> Any:
    """``name(x)``, ``name(a, b)`` (or ``name(*inputs)``): ``apply(op, ...)``, documented by
    the op's formula. Named parameters for one and two inputs, as a hand-written function."""
    arity = None if op.rules is None else len(op.rules)
    if arity == 1:
        def fn(x: Any) -> Tensor:
            return apply(op, x)
    elif arity == 2:
        def fn(a: Any, b: Any) -> Tensor:
            return apply(op, a, b)
    else:
        def fn(*inputs: Any) -> Tensor:
            return apply(op, *inputs)
    fn.__name__ = fn.__qualname__ = op.name
    fn.__doc__ = f"{op.name}: {op.formula}"
    return fn


def linear(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """x @ weightᵀ + bias, PyTorch's layout: weight is (out_features, in_features)."""
    if bias is None:
        xs, ws = np.shape(x._data if isinstance(x, Tensor) else x), np.shape(
            weight._data if isinstance(weight, Tensor) else weight)
        if len(ws) != 2 or not xs or xs[-1] != ws[-1]:
            raise ValueError(
                f"linear: cannot apply to input of shape {xs} with weight of shape {ws}: "
                f"linear computes x @ weightᵀ with weight (out_features, in_features), so x's "
                f"last dimension must equal in_features. Fix: make the layer's in_features "
                f"match the data's last dimension."
            )
        return apply(ops.matmul, x, t(weight))
    return apply(ops.linear, x, weight, bias)


def log_softmax(input: Any, dim: int = -1, dtype: Any = None, *,  # noqa: A002
                axis: int | None = None) -> Tensor:
    """x − logsumexp(x) along ``dim`` (the last if not given): log-probabilities from logits,
    stable."""
    dim, _ = numpy_names("log_softmax", None if axis is not None else dim, False, axis, None)
    return apply(ops.log_softmax, _cast(input, dtype), axis=dim)


def where(condition: Any, x: Any, y: Any) -> Tensor:
    """``x`` where ``condition`` holds, else ``y`` (broadcast); no gradient to ``condition``."""
    if isinstance(condition, Tensor):
        condition = condition._data
    return apply(ops.where, np.asarray(condition, dtype=bool), x, y)


def clip(x: Any, lo: float | None = None, hi: float | None = None) -> Tensor:
    """Limit values to [lo, hi]; the gradient is 1 inside, 0 where clipped."""
    if lo is None and hi is None:
        raise ValueError("clip: give lo, hi or both; with neither there is nothing to clip")
    return apply(ops.clip, x, lo=lo, hi=hi)


def clamp(input: Any, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002, F811
    """PyTorch's ``clamp``: ``clip`` with PyTorch's argument names (``x.clamp(min=0)``)."""
    if min is None and max is None:
        raise RuntimeError("clamp: at least one of 'min' or 'max' must not be None (as in "
                           "PyTorch). Fix: give min=, max= or both.")
    return clip(input, min, max)


def _shape_arg(shape: tuple) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], list | tuple):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def reshape(x: Any, *shape: Any) -> Tensor:
    """Same values in a new shape (one dimension may be -1)."""
    return apply(ops.reshape, x, shape=_shape_arg(shape))


def permute(input: Any, *dims: Any) -> Tensor:  # noqa: A002
    """The dimensions in the order ``dims`` (a permutation), as ``torch.permute``; NumPy's
    ``transpose(axes)``."""
    x = as_constant(input, ())
    order, n = _shape_arg(dims), x.ndim
    if len(order) != n or not builtins.all(-n <= d < n for d in order) or len(
            {d % n for d in order}) != n:
        raise ValueError(
            f"permute: dims {order} are not a permutation of the {n} dimensions of a tensor "
            f"of shape {x.shape}. Fix: name each dimension once, e.g. "
            f"permute({', '.join(map(str, reversed(range(n))))}) to reverse them.")
    return apply(ops.permute, x, dims=tuple(d % n for d in order))


def transpose(input: Any, dim0: int, dim1: int) -> Tensor:  # noqa: A002
    """``dim0`` and ``dim1`` swapped, as ``torch.transpose`` (for NumPy's permutation
    ``transpose(axes)``, use ``permute``)."""
    x = as_constant(input, ())
    a, b = (normalize_dim("transpose", d, x.ndim) for d in (dim0, dim1))
    order = list(range(x.ndim))
    order[a], order[b] = order[b], order[a]
    return apply(ops.permute, x, dims=tuple(order)) if x.ndim else x


swapaxes = swapdims = transpose  # PyTorch's aliases


def t(input: Any) -> Tensor:  # noqa: A002
    """A matrix transposed (a 0-d or 1-d tensor as it is), as ``torch.t``."""
    x = as_constant(input, ())
    if x.ndim > 2:
        raise RuntimeError(
            f"t() expects a tensor with <= 2 dimensions, but this one has shape {x.shape}. "
            f"Fix: x.transpose(dim0, dim1) to swap two dimensions, or x.mT for the last two.")
    return transpose(x, 0, 1) if x.ndim == 2 else x


def matrix_transpose(input: Any) -> Tensor:  # noqa: A002
    """``x.mT``: the last two dimensions swapped (a batch of matrices, each transposed)."""
    x = as_constant(input, ())
    if x.ndim < 2:
        raise RuntimeError(
            f"tensor.mT is only supported on matrices or batches of matrices, got a "
            f"{x.ndim}-D tensor of shape {x.shape}. Fix: x.unsqueeze(0).mT for a row vector.")
    return transpose(x, -2, -1)


def reversed_dims(input: Any) -> Tensor:  # noqa: A002
    """``x.T``: the dimensions reversed. As PyTorch 2.13, a warning for other than 2-D (it
    will become an error there), pointing to ``mT`` and ``permute``."""
    x = as_constant(input, ())
    if x.ndim != 2:
        warnings.warn(
            f"x.T on a tensor of {x.ndim} dimensions (shape {x.shape}) is deprecated in "
            f"PyTorch and will become an error: use x.mT to transpose batches of matrices or "
            f"x.permute(*reversed(range(x.ndim))) to reverse the dimensions.",
            UserWarning, stacklevel=3)
    return apply(ops.permute, x, dims=tuple(reversed(range(x.ndim)))) if x.ndim > 1 else x


def broadcast_to(x: Any, shape: Sequence[int]) -> Tensor:
    return apply(ops.broadcast_to, x, shape=tuple(shape))


def cat(tensors: Sequence[Any], dim: int = 0, *, axis: int | None = None) -> Tensor:
    """Join tensors along an existing dimension, as ``torch.cat``."""
    dim, _ = numpy_names("cat", None if axis is not None else dim, False, axis, None)
    if len(tensors) == 0:
        raise ValueError("cat: needs at least one tensor, got an empty sequence")
    return apply(ops.concatenate, *tensors, axis=dim)


concatenate = concat = cat  # PyTorch's (and NumPy's) other names


def cast(x: Any, dtype: Any) -> Tensor:
    """The values as ``dtype``; the gradient is cast back."""
    return apply(ops.cast, x, dtype=np.dtype(dtype))


def _index(index: Any) -> Any:
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, list):
        return np.asarray(index)
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    return index


def getitem(x: Any, index: Any) -> Tensor:
    """``x[index]`` with ints, slices, None, Ellipsis, integer arrays or boolean masks."""
    return apply(ops.getitem, x, index=_index(index))


# --------------------------------------------------------------------------- composites
def softmax(input: Any, dim: int = -1, dtype: Any = None, *,  # noqa: A002
            axis: int | None = None) -> Tensor:
    """exp(x) / Σ exp(x) along ``dim`` (the last if not given). Composite:
    exp(log_softmax(x))."""
    return apply(ops.exp, log_softmax(input, dim, dtype, axis=axis))


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Tensor:
    """x if x > 0 else slope·x. Composite: where(x > 0, x, slope·x)."""
    x = as_constant(x, ())
    return where(x > 0, x, x * negative_slope)


def square(x: Any) -> Tensor:
    return x * x


def unsqueeze(input: Any, dim: int | None = None, *,  # noqa: A002
              axis: int | None = None) -> Tensor:
    """A new dimension of size 1 inserted at ``dim`` (-1: at the end), as
    ``torch.unsqueeze``."""
    dim, _ = numpy_names("unsqueeze", dim, False, axis, None)
    x = as_constant(input, ())
    d = normalize_dim("unsqueeze", dim, x.ndim + 1)
    return reshape(x, x.shape[:d] + (1,) + x.shape[d:])


def expand_dims(x: Any, axis: int) -> Tensor:
    """NumPy's name for ``unsqueeze``."""
    return unsqueeze(x, axis)


def squeeze(input: Any, dim: Axis = None, *, axis: Axis = None) -> Tensor:  # noqa: A002
    """The dimensions of size 1 removed: all of them, or those of ``dim`` (an int or a
    tuple) that have size 1, as ``torch.squeeze`` (a named dim of another size stays)."""
    dim, _ = numpy_names("squeeze", dim, False, axis, None)
    x = as_constant(input, ())
    if dim is None:
        keep = [n for n in x.shape if n != 1]
    else:
        named = {normalize_dim("squeeze", d, x.ndim)
                 for d in ((dim,) if isinstance(dim, int) else dim)}
        keep = [n for i, n in enumerate(x.shape) if n != 1 or i not in named]
    return reshape(x, tuple(keep))


def flatten(input: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:  # noqa: A002
    """Dimensions ``start_dim`` to ``end_dim`` merged into one, as ``torch.flatten`` (all of
    them by default; a 0-d tensor becomes 1-d)."""
    x = as_constant(input, ())
    if x.ndim == 0:
        return reshape(x, (1,))
    a, b = (normalize_dim("flatten", d, x.ndim) for d in (start_dim, end_dim))
    if a > b:
        raise ValueError(f"flatten: start_dim ({start_dim}) comes after end_dim ({end_dim}) "
                         f"for a tensor of shape {x.shape}. Fix: start_dim <= end_dim.")
    return reshape(x, x.shape[:a] + (math.prod(x.shape[a:b + 1]),) + x.shape[b + 1:])


def stack(tensors: Sequence[Any], dim: int = 0, *, axis: int | None = None) -> Tensor:
    """Join tensors along a new dimension, as ``torch.stack``. Composite: unsqueeze each,
    then cat."""
    dim, _ = numpy_names("stack", None if axis is not None else dim, False, axis, None)
    if len(tensors) == 0:
        raise ValueError("stack: needs at least one tensor, got an empty sequence")
    shapes = {np.shape(t) for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
    return cat([unsqueeze(t, dim) for t in tensors], dim)


# --------------------------------------------------------------------------- no gradient
def _const(x: Any) -> np.ndarray:
    return x._data if isinstance(x, Tensor) else np.asarray(x)


def sign(x: Any) -> Tensor:
    return Tensor._wrap(np.sign(_const(x)))


for _name in PRIMITIVES:  # (after the hand-written ones, which take precedence)
    if _name not in globals():
        globals()[_name] = _one_line(ops.OPS[_name])

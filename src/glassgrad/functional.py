"""The public tensor functions: the op table's primitives plus composites built from them.

Composites have no backward code: their gradient is the chain rule through the primitives
they are made of. Every function here is also a ``Tensor`` method (``x.softmax(axis=-1)``)
and, for the math ones, reachable through NumPy (``np.exp(x)`` returns a Tensor).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import ops
from .ops import apply
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
        return apply(ops.matmul, x, transpose(weight))
    return apply(ops.linear, x, weight, bias)


def _axis(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis


def sum(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (all axes if None). ∂/∂xⱼ = 1."""
    return apply(ops.sum, x, axis=_axis(axis), keepdims=keepdims)


def max(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Largest value over ``axis``; the gradient goes to the maximum (shared among ties)."""
    return apply(ops.max, x, axis=_axis(axis), keepdims=keepdims)


def min(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Smallest value over ``axis``; the gradient goes to the minimum (shared among ties)."""
    return apply(ops.min, x, axis=_axis(axis), keepdims=keepdims)


def logsumexp(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """log Σ exp(x) over ``axis``, computed without overflow."""
    return apply(ops.logsumexp, x, axis=_axis(axis), keepdims=keepdims)


def log_softmax(x: Any, axis: int = -1) -> Tensor:
    """x − logsumexp(x) along ``axis``: log-probabilities from logits, stable."""
    return apply(ops.log_softmax, x, axis=axis)


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


def clamp(input: Any, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
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


def transpose(x: Any, *axes: Any) -> Tensor:
    """Permute axes as NumPy does (reversed when none are given). For PyTorch's
    ``transpose(dim0, dim1)``, which swaps two axes, use ``swapaxes``."""
    return apply(ops.transpose, x, axes=_shape_arg(axes) if axes and axes[0] is not None else None)


def broadcast_to(x: Any, shape: Sequence[int]) -> Tensor:
    return apply(ops.broadcast_to, x, shape=tuple(shape))


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    if len(tensors) == 0:
        raise ValueError("concatenate: needs at least one tensor, got an empty sequence")
    return apply(ops.concatenate, *tensors, axis=axis)


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
def _count(x: Any, axis: Axis) -> int:
    shape = x.shape if isinstance(x, Tensor) else np.shape(x)
    if axis is None:
        return math.prod(shape)
    axes = (axis,) if isinstance(axis, int) else axis
    return math.prod(shape[a] for a in axes)


def mean(x: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Σx / n over ``axis``."""
    return apply(ops.mean, x, axis=_axis(axis), keepdims=keepdims)


def var(x: Any, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    """Variance Σ(x − mean)² / (n − ddof); ``ddof=0`` as NumPy (PyTorch's default is 1)."""
    axis = _axis(axis)
    d = x - mean(x, axis, keepdims=True)
    return sum(d * d, axis, keepdims) / (_count(x, axis) - ddof)


def std(x: Any, axis: Axis = None, keepdims: bool = False, ddof: int = 0) -> Tensor:
    return apply(ops.sqrt, var(x, axis, keepdims, ddof))


def softmax(x: Any, axis: int = -1) -> Tensor:
    """exp(x) / Σ exp(x) along ``axis``. Composite: exp(log_softmax(x))."""
    return apply(ops.exp, log_softmax(x, axis))


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Tensor:
    """x if x > 0 else slope·x. Composite: where(x > 0, x, slope·x)."""
    x = as_constant(x, ())
    return where(x > 0, x, x * negative_slope)


def square(x: Any) -> Tensor:
    return x * x


def expand_dims(x: Any, axis: int) -> Tensor:
    return reshape(x, np.expand_dims(np.empty(np.shape(x), dtype=np.bool_), axis).shape)


def squeeze(x: Any, axis: Axis = None) -> Tensor:
    return reshape(x, np.squeeze(np.empty(np.shape(x), dtype=np.bool_), _axis(axis)).shape)


def flatten(x: Any) -> Tensor:
    return reshape(x, (-1,))


def swapaxes(x: Any, axis1: int, axis2: int) -> Tensor:
    axes = list(range(np.ndim(x)))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(x, tuple(axes))


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along a new axis. Composite: expand_dims each, then concatenate."""
    if len(tensors) == 0:
        raise ValueError("stack: needs at least one tensor, got an empty sequence")
    shapes = {np.shape(t) for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
    return concatenate([expand_dims(t, axis) for t in tensors], axis=axis)


# --------------------------------------------------------------------------- no gradient
def _const(x: Any) -> np.ndarray:
    return x._data if isinstance(x, Tensor) else np.asarray(x)


def argmax(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    return Tensor._wrap(np.argmax(_const(x), axis=axis, keepdims=keepdims))


def argmin(x: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    return Tensor._wrap(np.argmin(_const(x), axis=axis, keepdims=keepdims))


def sign(x: Any) -> Tensor:
    return Tensor._wrap(np.sign(_const(x)))


for _name in PRIMITIVES:  # (after the hand-written ones, which take precedence)
    if _name not in globals():
        globals()[_name] = _one_line(ops.OPS[_name])

"""Reductions with PyTorch's signatures: ``dim=`` and ``keepdim=`` (NumPy's ``axis=`` and
``keepdims=`` accepted as aliases, as PyTorch accepts them), ``var``/``std`` with Bessel's
correction, ``max(dim)``/``min(dim)`` returning ``(values, indices)``.

Each is a primitive of the op table (``sum``, ``mean``, ``max``, ``min``, ``logsumexp``,
``cumsum``) or a composite of primitives (``var``, ``std``, ``norm``, ``max(dim)``), so none
has backward code here. The op table's attributes keep NumPy's names (``axis``,
``keepdims``); only the public signatures follow PyTorch.
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import ops
from .autograd import STATE, note_python_value
from .ops import apply
from .return_types import max as MaxResult
from .return_types import min as MinResult
from .tensor import Tensor, as_constant

Dim = int | Sequence[int] | None


def dims(dim: Any) -> Any:
    """A dim argument as the op table takes it: a list becomes a tuple, ``()`` means all."""
    if isinstance(dim, list | tuple):
        return tuple(dim) if len(dim) else None
    return dim


def numpy_names(name: str, dim: Any, keepdim: bool, axis: Any, keepdims: Any
                ) -> tuple[Any, bool]:
    """``dim`` and ``keepdim`` after NumPy's aliases ``axis`` and ``keepdims``."""
    if axis is not None:
        if dim is not None:
            raise TypeError(
                f"{name}(): got both dim={dim!r} and axis={axis!r}, which name the same "
                f"argument (axis is NumPy's spelling, accepted as PyTorch does). Fix: pass one.")
        dim = axis
    return dim, keepdim if keepdims is None else bool(keepdims)


def _cast(x: Any, dtype: Any) -> Any:
    return x if dtype is None else apply(ops.cast, x, dtype=np.dtype(dtype))


def sum(input: Any, dim: Dim = None, keepdim: bool = False, *,  # noqa: A001, A002
        dtype: Any = None, axis: Dim = None, keepdims: bool | None = None) -> Tensor:
    """Sum over ``dim`` (every dimension if None); ``dtype`` casts first. ∂/∂xⱼ = 1."""
    if dim is None and dtype is None and axis is None and keepdims is None:  # (the hot case)
        return apply(ops.sum, input, axis=None, keepdims=keepdim)
    dim, keepdim = numpy_names("sum", dim, keepdim, axis, keepdims)
    return apply(ops.sum, _cast(input, dtype), axis=dims(dim), keepdims=keepdim)


def mean(input: Any, dim: Dim = None, keepdim: bool = False, *,  # noqa: A002
         dtype: Any = None, axis: Dim = None, keepdims: bool | None = None) -> Tensor:
    """Σx / n over ``dim`` (every dimension if None). An integer or bool tensor is refused,
    as PyTorch refuses it (give ``dtype=`` or convert it first)."""
    try:  # (free unless it raises: the check below runs only after a failure)
        if dim is None and dtype is None and axis is None and keepdims is None:  # (hot case)
            return apply(ops.mean, input, axis=None, keepdims=keepdim)
        dim, keepdim = numpy_names("mean", dim, keepdim, axis, keepdims)
        return apply(ops.mean, _cast(input, dtype), axis=dims(dim), keepdims=keepdim)
    except TypeError:
        _check_mean_dtype(input if dtype is None else _cast(input, dtype))
        raise


def _check_mean_dtype(x: Any) -> None:
    kind = np.asarray(x._data if isinstance(x, Tensor) else x).dtype
    if kind.kind not in "fc":
        raise RuntimeError(
            f"mean(): could not infer output dtype. Input dtype must be either a floating "
            f"point or complex dtype. Got: {kind} (PyTorch refuses it too: the mean of "
            f"integers is not an integer). Fix: x.float().mean(), or x.mean(dtype=gg.float32).")


def logsumexp(input: Any, dim: Dim = None, keepdim: bool = False, *,  # noqa: A002
              axis: Dim = None, keepdims: bool | None = None) -> Tensor:
    """log Σ exp(x) over ``dim`` (every dimension if None), computed without overflow."""
    dim, keepdim = numpy_names("logsumexp", dim, keepdim, axis, keepdims)
    return apply(ops.logsumexp, input, axis=dims(dim), keepdims=keepdim)


def amax(input: Any, dim: Dim = (), keepdim: bool = False, *,  # noqa: A002
         axis: Dim = None, keepdims: bool | None = None) -> Tensor:
    """Largest value over ``dim`` (every dimension if empty); the gradient is shared equally
    among ties, as ``torch.amax``."""
    dim, keepdim = numpy_names("amax", dim if dim != () or axis is None else None, keepdim,
                               axis, keepdims)
    return apply(ops.max, input, axis=dims(dim), keepdims=keepdim)


def amin(input: Any, dim: Dim = (), keepdim: bool = False, *,  # noqa: A002
         axis: Dim = None, keepdims: bool | None = None) -> Tensor:
    """Smallest value over ``dim`` (every dimension if empty); ties share the gradient."""
    dim, keepdim = numpy_names("amin", dim if dim != () or axis is None else None, keepdim,
                               axis, keepdims)
    return apply(ops.min, input, axis=dims(dim), keepdims=keepdim)


def max(input: Any, dim: Any = None, keepdim: bool = False, *,  # noqa: A001, A002
        other: Any = None, axis: int | None = None, keepdims: bool | None = None) -> Any:
    """As ``torch.max``: ``max(x)`` the largest value (ties share the gradient);
    ``max(x, dim)`` the named tuple ``(values, indices)`` along ``dim`` (the gradient goes to
    the index picked, the first of ties); ``max(x, other)`` the elementwise maximum."""
    if other is not None or isinstance(dim, Tensor | np.ndarray):
        return apply(ops.maximum, input, dim if other is None else other)
    dim, keepdim = numpy_names("max", dim, keepdim, axis, keepdims)
    if dim is None:
        return apply(ops.max, input, axis=None, keepdims=False)
    return _along(input, dim, keepdim, "max")


def min(input: Any, dim: Any = None, keepdim: bool = False, *,  # noqa: A001, A002
        other: Any = None, axis: int | None = None, keepdims: bool | None = None) -> Any:
    """As ``torch.min``: ``min(x)``, ``min(x, dim)`` → ``(values, indices)``, or
    ``min(x, other)`` elementwise (see ``max``)."""
    if other is not None or isinstance(dim, Tensor | np.ndarray):
        return apply(ops.minimum, input, dim if other is None else other)
    dim, keepdim = numpy_names("min", dim, keepdim, axis, keepdims)
    if dim is None:
        return apply(ops.min, input, axis=None, keepdims=False)
    return _along(input, dim, keepdim, "min")


def _along(input: Any, dim: Any, keepdim: bool, name: str) -> Any:
    """(values, indices) of the extreme along one dim: the values are ``x[indices]`` (a
    getitem, so the gradient goes to the index picked, as PyTorch's)."""
    x = as_constant(input, ())
    if not isinstance(dim, int | np.integer) or isinstance(dim, bool):
        raise TypeError(
            f"{name}(): dim must be one int, got {dim!r}. For several dims use "
            f"a{name}(x, dim={dim!r}) (values only, as torch.a{name}).")
    d = normalize_dim(name, dim, x.ndim)
    data = x._data
    if STATE.hooks:  # the indices are read from the values: compile must not freeze them
        note_python_value(x, f"{name}(dim)'s indices")
    pick = np.argmax if name == "max" else np.argmin
    idx = pick(data, axis=d, keepdims=True) if data.ndim else np.zeros((), np.int64)
    index = tuple(idx if k == d else np.arange(n).reshape([-1 if j == k else 1
                                                           for j in range(data.ndim)])
                  for k, n in enumerate(data.shape))
    values = apply(ops.getitem, x, index=index)
    if not keepdim and data.ndim:
        shape = data.shape[:d] + data.shape[d + 1:]
        values, idx = apply(ops.reshape, values, shape=shape), idx.reshape(shape)
    result = MaxResult if name == "max" else MinResult
    return result(values, Tensor._wrap(idx.astype(np.int64, copy=False)))


def normalize_dim(name: str, dim: int, ndim: int) -> int:
    """``dim`` in 0..ndim-1 (a 0-d tensor takes 0 and -1), or PyTorch's IndexError."""
    size = builtins.max(ndim, 1)
    if not -size <= dim < size:
        raise IndexError(
            f"{name}(): dimension out of range (expected to be in range of [{-size}, "
            f"{size - 1}], but got {dim}) for a tensor with {ndim} dimensions. Fix: pass a "
            f"dim between {-size} and {size - 1}.")
    return dim % size


def _count(x: Tensor, dim: Any) -> int:
    if dim is None:
        return x._data.size
    return math.prod(x.shape[a] for a in ((dim,) if isinstance(dim, int) else dim))


def var(input: Any, dim: Any = None, unbiased: bool | None = None,  # noqa: A002
        keepdim: bool = False, *, correction: float | None = None, axis: Dim = None,
        keepdims: bool | None = None) -> Tensor:
    """Variance Σ(x − mean)² / (n − correction) over ``dim``, as ``torch.var``: Bessel's
    correction (``correction=1``, i.e. ``unbiased=True``) by default; ``correction=0`` or
    ``unbiased=False`` divides by n. ``x.var(False)`` is ``unbiased=False``, as in PyTorch."""
    if isinstance(dim, bool):  # PyTorch's var(unbiased) overload
        dim, unbiased = None, dim
    dim, keepdim = numpy_names("var", dims(dim), keepdim, axis, keepdims)
    if unbiased is not None and correction is not None:
        raise TypeError(f"var(): got both unbiased={unbiased} and correction={correction}, "
                        f"which say the same thing. Fix: pass one (correction=0 is "
                        f"unbiased=False).")
    c = (1 if unbiased is None else int(unbiased)) if correction is None else correction
    x = as_constant(input, ())
    d = x - mean(x, dim, keepdim=True)
    # n ≤ correction gives inf or NaN, as PyTorch (which also warns).
    return sum(d * d, dim, keepdim) / builtins.max(_count(x, dims(dim)) - c, 0)


def std(input: Any, dim: Any = None, unbiased: bool | None = None,  # noqa: A002
        keepdim: bool = False, *, correction: float | None = None, axis: Dim = None,
        keepdims: bool | None = None) -> Tensor:
    """√var(x) with ``var``'s arguments (Bessel's correction by default, as ``torch.std``)."""
    return apply(ops.sqrt, var(input, dim, unbiased, keepdim, correction=correction,
                               axis=axis, keepdims=keepdims))


def norm(input: Any, p: float | str = "fro", dim: Dim = None,  # noqa: A002
         keepdim: bool = False, dtype: Any = None) -> Tensor:
    """The p-norm (Σ|x|ᵖ)^(1/p) over ``dim`` (every dimension if None), as ``Tensor.norm``:
    ``p`` 2 or "fro" (the default), 1, any other number, inf (max |x|) or -inf (min |x|).
    Composite; the gradient at an all-zero slice is 0, as PyTorch's."""
    x, dim = _cast(as_constant(input, ()), dtype), dims(dim)
    if p in ("fro", 2):
        return _root(sum(x * x, dim, keepdim), 2)
    if isinstance(p, str) or not isinstance(p, int | float):
        raise ValueError(f"norm(): p={p!r} is not supported; glassgrad computes vector norms "
                         f"(p a number, inf, -inf or 'fro'). Fix: pass one of those.")
    if p in (math.inf, -math.inf):
        return (amax if p > 0 else amin)(apply(ops.abs, x), dim if dim is not None else (),
                                          keepdim)
    if p == 0:
        return sum(Tensor._wrap((x._data != 0).astype(x.dtype)), dim, keepdim)
    if p == 1:
        return sum(apply(ops.abs, x), dim, keepdim)
    return _root(sum(apply(ops.abs, x) ** p, dim, keepdim), p)


def _root(s: Tensor, p: float) -> Tensor:
    # s^(1/p) with a 0 gradient where s = 0 (its derivative there is ∞): the where-trap is
    # avoided by taking the root of 1 in that branch, never of 0.
    zero = s._data == 0
    if not zero.any():
        return apply(ops.sqrt, s) if p == 2 else s ** (1 / p)
    safe = apply(ops.where, zero, 1, s)
    root = apply(ops.sqrt, safe) if p == 2 else safe ** (1 / p)
    return apply(ops.where, zero, 0, root)


def cumsum(input: Any, dim: int | None = None, *, dtype: Any = None,  # noqa: A002
           axis: int | None = None) -> Tensor:
    """Running sums along ``dim`` (required, as in PyTorch): yₖ = Σ_{i≤k} xᵢ."""
    dim, _ = numpy_names("cumsum", dim, False, axis, None)
    if dim is None:
        raise TypeError("cumsum(): missing the dim to sum along (PyTorch requires it). "
                        "Fix: x.cumsum(dim=0), or x.flatten().cumsum(0) for every element.")
    return apply(ops.cumsum, _cast(input, dtype), axis=int(dim))


def argmax(input: Any, dim: int | None = None, keepdim: bool = False, *,  # noqa: A002
           axis: int | None = None, keepdims: bool | None = None) -> Tensor:
    """Index of the largest value along ``dim`` (of the flattened tensor if None); no
    gradient."""
    dim, keepdim = numpy_names("argmax", dim, keepdim, axis, keepdims)
    return Tensor._wrap(np.asarray(np.argmax(_const(input), axis=dim, keepdims=keepdim)))


def argmin(input: Any, dim: int | None = None, keepdim: bool = False, *,  # noqa: A002
           axis: int | None = None, keepdims: bool | None = None) -> Tensor:
    """Index of the smallest value along ``dim`` (of the flattened tensor if None)."""
    dim, keepdim = numpy_names("argmin", dim, keepdim, axis, keepdims)
    return Tensor._wrap(np.asarray(np.argmin(_const(input), axis=dim, keepdims=keepdim)))


def all(input: Any, dim: Dim = None, keepdim: bool = False, *,  # noqa: A001, A002
        axis: Dim = None, keepdims: bool | None = None) -> Tensor:
    """True where every value along ``dim`` (every dimension if None) is non-zero."""
    dim, keepdim = numpy_names("all", dims(dim), keepdim, axis, keepdims)
    return Tensor._wrap(np.asarray(_const(input).all(axis=dims(dim), keepdims=keepdim)))


def any(input: Any, dim: Dim = None, keepdim: bool = False, *,  # noqa: A001, A002
        axis: Dim = None, keepdims: bool | None = None) -> Tensor:
    """True where some value along ``dim`` (every dimension if None) is non-zero."""
    dim, keepdim = numpy_names("any", dims(dim), keepdim, axis, keepdims)
    return Tensor._wrap(np.asarray(_const(input).any(axis=dims(dim), keepdims=keepdim)))


def _const(x: Any) -> np.ndarray:
    return x._data if isinstance(x, Tensor) else np.asarray(x)

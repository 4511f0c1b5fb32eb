"""Attach the math to ``Tensor``: operators, methods, and NumPy interoperability.

Each method is the function of the same name in ``functional.py`` (itself one op-table entry
or a composite), so there is one definition per op. NumPy's ufuncs and functions
(``np.exp(t)``, ``np.where(c, t, 0)``) dispatch here too: the supported ones stay
differentiable and return Tensors; any other NumPy function sees plain arrays and returns
an array (no gradient flows through it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import functional as F
from . import inplace, ops, promotion
from .autograd import STATE, record, record_constant
from .ops import Op, apply
from .tensor import Tensor, as_constant


# --------------------------------------------------------------------------- operators
# The hottest code in the library: binary operators on two tensors take a shortcut (_fast);
# the reflected ones (``2 * x``: the other operand is not a Tensor) go straight to apply.
def _fast(op: Op, name: str) -> Any:
    """``self <op> other``: ``apply(op, self, other)``, with a shortcut for the usual case.

    When ``other`` is a Tensor (a Parameter too) and NumPy's result has both inputs' dtype,
    this is apply's work without its generic argument handling (one frame less: about a
    tenth of a small op). Everything else takes apply itself, which owns the conversions,
    the promotion and the error messages: a number or array operand, mixed dtypes (after
    promotion.wanted, as apply asks), and a forward that raises (apply runs it again and
    raises its message)."""
    forward = op.forward

    def method(self: Tensor, other: Any) -> Tensor:
        if not isinstance(other, Tensor):
            return apply(op, self, other)
        a, b = self._data, other._data
        try:
            out = forward(a, b)
        except Exception:
            return apply(op, self, other)
        dt = out.dtype
        if (dt is not a.dtype or dt is not b.dtype) and promotion.wanted(
                op, (a, b), out) is not None:
            return apply(op, self, other)
        return record(op, (self, other), out, None)

    method.__name__ = method.__qualname__ = name
    return method


__add__ = _fast(ops.add, "__add__")
__sub__ = _fast(ops.sub, "__sub__")
__mul__ = _fast(ops.mul, "__mul__")
__truediv__ = _fast(ops.div, "__truediv__")
__pow__ = _fast(ops.pow, "__pow__")
__matmul__ = _fast(ops.matmul, "__matmul__")


def _reduce_all(op: Op, general: Any) -> Any:
    """``self.sum()`` / ``self.mean()`` (``general``, the reduction of reductions.py) with a
    shortcut for the usual call, every dimension and no dtype: apply's work without its
    frames (the attribute path costs about a quarter of ``(a + b).sum()``). When the forward
    raises or NumPy's result dtype differs from the input's (integers, promotion), the
    general function runs instead and gives its result or its error."""
    forward = op.forward

    def method(self: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None,
               axis: Any = None, keepdims: bool | None = None) -> Tensor:
        if dim is None and dtype is None and axis is None and keepdims is None:
            x = self._data
            try:  # (positional: the forward's keywords from a dict cost a tenth of the call)
                out = forward(x, None, keepdim)
            except Exception:
                out = None  # the general path raises its own message
            if out is not None and out.dtype is x.dtype:  # (apply records the same attributes)
                return record(op, (self,), out, {"axis": None, "keepdims": keepdim})
        return general(self, dim, keepdim, dtype=dtype, axis=axis, keepdims=keepdims)

    method.__name__ = method.__qualname__ = op.name
    method.__doc__ = general.__doc__
    method.__wrapped__ = general  # (the one definition: tests/test_op_fields.py checks it)
    return method


def __radd__(self: Tensor, other: Any) -> Tensor:
    return apply(ops.add, other, self)


def __rsub__(self: Tensor, other: Any) -> Tensor:
    return apply(ops.sub, other, self)


def __rmul__(self: Tensor, other: Any) -> Tensor:
    return apply(ops.mul, other, self)


def __rtruediv__(self: Tensor, other: Any) -> Tensor:
    return apply(ops.div, other, self)


def __rpow__(self: Tensor, other: Any) -> Tensor:
    return apply(ops.pow, other, self)


def __rmatmul__(self: Tensor, other: Any) -> Tensor:
    return apply(ops.matmul, other, self)


def __neg__(self: Tensor) -> Tensor:
    return apply(ops.neg, self)


def __pos__(self: Tensor) -> Tensor:
    return self


def __getitem__(self: Tensor, index: Any) -> Tensor:
    return F.getitem(self, index)


def __iter__(self: Tensor) -> Any:
    return (self[i] for i in range(len(self)))


def _comparison(np_fn: Any) -> Any:
    """Comparisons and logic give bool tensors, outside the graph (they have no gradient)."""
    op = Op(np_fn.__name__, "no gradient: the result is a bool", np_fn, ())

    def method(self: Tensor, other: Any) -> Tensor:
        b = other._data if isinstance(other, Tensor) else other
        out = np.asarray(np_fn(self._data, b))
        if STATE.hooks:  # (tell observers: compile replays the comparison)
            return record_constant(op, (self, as_constant(other, (self,))), out)
        return Tensor._wrap(out)

    method.__name__ = np_fn.__name__
    return method


_OPERATORS = {
    "__add__": __add__, "__radd__": __radd__, "__sub__": __sub__, "__rsub__": __rsub__,
    "__mul__": __mul__, "__rmul__": __rmul__, "__truediv__": __truediv__,
    "__rtruediv__": __rtruediv__, "__pow__": __pow__, "__rpow__": __rpow__,
    "__matmul__": __matmul__, "__rmatmul__": __rmatmul__, "__neg__": __neg__,
    "__pos__": __pos__, "__getitem__": __getitem__, "__iter__": __iter__,
    "__lt__": _comparison(np.less), "__le__": _comparison(np.less_equal),
    "__gt__": _comparison(np.greater), "__ge__": _comparison(np.greater_equal),
    "__eq__": _comparison(np.equal), "__ne__": _comparison(np.not_equal),
    "__and__": _comparison(np.logical_and), "__or__": _comparison(np.logical_or),
    "__xor__": _comparison(np.logical_xor),
    "__invert__": lambda self: Tensor._wrap(np.asarray(~self._data)),
}

# --------------------------------------------------------------------------- methods
# The op table's entries with ``method=True``, and the composites that read as methods.
_METHODS = (
    *(name for name, op in ops.OPS.items() if op.method),
    *"leaky_relu var std softmax swapaxes expand_dims squeeze flatten square argmax argmin "
     "sign transpose swapdims t unsqueeze cumsum norm amax amin all any".split(),
)


def astype(self: Tensor, dtype: Any) -> Tensor:
    """The values as ``dtype`` (differentiable; a no-op if the dtype already matches)."""
    return self if np.dtype(dtype) == self._data.dtype else F.cast(self, dtype)


def where(self: Tensor, condition: Any, other: Any) -> Tensor:
    """PyTorch's ``x.where(condition, other)``: x where condition holds, else other."""
    return F.where(condition, self, other)


_EXTRA = {
    "sum": _reduce_all(ops.sum, F.sum),
    "mean": _reduce_all(ops.mean, F.mean),
    "astype": astype,
    "float": lambda self: astype(self, np.float32),
    "double": lambda self: astype(self, np.float64),
    "where": where,
    "T": property(F.reversed_dims, doc="The dimensions reversed (PyTorch warns unless 2-D)."),
    "mT": property(F.matrix_transpose, doc="The last two dimensions swapped."),
}

# --------------------------------------------------------------------------- NumPy protocol
# A public op whose forward is a NumPy ufunc (np.exp for exp) answers that ufunc.
_UFUNCS = {
    **{op.forward: getattr(F, name) for name, op in ops.OPS.items()
       if op.public and isinstance(op.forward, np.ufunc)},
    np.square: F.square, np.sign: F.sign,
    np.less: _OPERATORS["__lt__"], np.less_equal: _OPERATORS["__le__"],
    np.greater: _OPERATORS["__gt__"], np.greater_equal: _OPERATORS["__ge__"],
    np.equal: _OPERATORS["__eq__"], np.not_equal: _OPERATORS["__ne__"],
}

# NumPy's functions called on a Tensor keep NumPy's meaning (np.transpose permutes, np.var
# divides by n, np.max gives values only), whatever the same-named PyTorch method does.
def _np_var(fn: Any) -> Any:
    return lambda a, axis=None, dtype=None, out=None, ddof=0, keepdims=False: fn(
        F.cast(a, dtype) if dtype is not None else a, axis, keepdim=keepdims, correction=ddof)


_FUNCTIONS = {
    np.where: F.where, np.broadcast_to: F.broadcast_to,
    np.sum: lambda a, axis=None, dtype=None, out=None, keepdims=False: F.sum(
        a, axis, keepdims, dtype=dtype),
    np.mean: lambda a, axis=None, dtype=None, out=None, keepdims=False: F.mean(
        a, axis, keepdims, dtype=dtype),
    np.max: lambda a, axis=None, out=None, keepdims=False: F.amax(a, axis, keepdims),
    np.min: lambda a, axis=None, out=None, keepdims=False: F.amin(a, axis, keepdims),
    np.reshape: F.reshape, np.concatenate: F.cat, np.stack: F.stack, np.clip: F.clip,
    np.transpose: lambda a, axes=None: F.permute(
        a, *(reversed(range(np.ndim(a))) if axes is None else axes)),
    np.swapaxes: lambda a, axis1, axis2: F.transpose(a, axis1, axis2),
    np.expand_dims: F.expand_dims, np.squeeze: F.squeeze, np.var: _np_var(F.var),
    np.std: _np_var(F.std), np.matmul: F.matmul,
    np.shape: lambda x: x.shape, np.ndim: lambda x: x.ndim,
    np.size: lambda x, axis=None: x.numel() if axis is None else x.shape[axis],
}
_FUNCTIONS[np.amax], _FUNCTIONS[np.amin] = _FUNCTIONS[np.max], _FUNCTIONS[np.min]


def _plain(x: Any) -> Any:
    if isinstance(x, Tensor):
        return x._data
    if isinstance(x, list | tuple):
        return type(x)(_plain(y) for y in x)
    return x


_REDUCTIONS = {np.add: F.sum, np.maximum: F.amax, np.minimum: F.amin}


def __array_ufunc__(self: Tensor, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
    fn = _UFUNCS.get(ufunc)
    if fn is not None and method == "__call__" and not kwargs:
        return fn(*inputs)
    # np.add.reduce(t, axis=..., keepdims=...), as the op table's rules write a sum.
    if method == "reduce" and ufunc in _REDUCTIONS and set(kwargs) <= {"axis", "keepdims"}:
        return _REDUCTIONS[ufunc](inputs[0], kwargs.get("axis", 0), kwargs.get("keepdims", False))
    # Anything else runs on the plain arrays: a NumPy result, outside the graph.
    return getattr(ufunc, method)(*_plain(inputs), **{k: _plain(v) for k, v in kwargs.items()})


def __array_function__(self: Tensor, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
    fn = _FUNCTIONS.get(func)
    if fn is not None:
        return fn(*args, **kwargs)
    return func(*_plain(args), **{k: _plain(v) for k, v in kwargs.items()})


# --------------------------------------------------------------------------- in-place
# PyTorch's in-place methods (zero_, add_, clamp_, t[i] = v, ...: inplace.py), abs(t), clamp.
def _augmented(name: str, symbol: str, method: Any) -> Any:
    """``x += v`` (``-=``, ``*=``, ``/=``) as PyTorch: written into x's memory by the
    in-place ``method`` (``add_``, ...), so every reference to x sees it, and recorded in the
    graph where PyTorch records it (``loss += l``, ``h *= 2`` on a computed tensor, a plain
    tensor receiving a value that requires grad: see inplace.py); on a parameter outside
    ``no_grad`` it is refused."""

    def fn(self: Tensor, other: Any) -> Any:
        if self._requires_grad and self._op is None and STATE.grad_enabled \
                and not getattr(self, "_alias", False):
            raise RuntimeError(
                f"'w {symbol}= ...' on a leaf tensor that requires grad (shape {self.shape}) "
                f"is an in-place operation autograd cannot differentiate through (PyTorch "
                f"refuses it too). Fix: update it inside `with gg.no_grad():` (as in "
                f"PyTorch), or use an optimizer (gg.optim.SGD)."
            )
        return method(self, other)

    fn.__name__ = name
    return fn


_INPLACE = {
    **inplace.METHODS, "__abs__": F.abs, "clamp": F.clamp,
    **{f"__i{name}__": _augmented(f"__i{name}__", symbol, getattr(inplace, method))
       for name, symbol, method in (("add", "+", "add_"), ("sub", "-", "sub_"),
                                    ("mul", "*", "mul_"), ("truediv", "/", "div_"))},
}


def attach() -> None:
    for name, fn in (*_OPERATORS.items(), *_INPLACE.items()):
        setattr(Tensor, name, fn)
    for name in _METHODS:  # a function set on a class is a method: x.exp() is F.exp(x)
        setattr(Tensor, name, getattr(F, name))
    for name, fn in _EXTRA.items():
        setattr(Tensor, name, fn)
    Tensor.__array_ufunc__ = __array_ufunc__
    Tensor.__array_function__ = __array_function__


attach()


# --------------------------------------------------------------------------- PyTorch API
# PyTorch's shape methods (shape.py: view, expand, repeat, chunk, split, gather, ...) and
# its dtype conversions. size(), numel(), dim(), device, to(), cpu() and type() are
# Tensor's own (tensor.py).
def _bind_torch_api() -> None:
    from . import rounding, shape, sorting

    for module in (shape, rounding, sorting):
        for name in module.METHODS:
            setattr(Tensor, name, getattr(module, name))
    Tensor.__floordiv__ = rounding.floor_divide
    Tensor.__rfloordiv__ = lambda self, other: rounding.floor_divide(other, self)
    Tensor.__mod__ = rounding.remainder
    Tensor.__rmod__ = lambda self, other: rounding.remainder(other, self)
    for name, dtype in (("long", np.int64), ("int", np.int32), ("short", np.int16),
                        ("bool", np.bool_), ("half", np.float16), ("byte", np.uint8)):
        setattr(Tensor, name, _conversion(name, dtype))


def _conversion(name: str, dtype: Any) -> Any:
    def method(self: Tensor) -> Tensor:
        return self.to(dtype)

    method.__name__ = name
    method.__doc__ = f"``self.to({np.dtype(dtype).name})``."
    return method


_bind_torch_api()

"""In-place Tensor methods, PyTorch's trailing-underscore set: ``zero_``, ``fill_``,
``normal_``, ``uniform_``, ``add_``, ``sub_``, ``mul_``, ``div_``, ``pow_``, ``clamp_``,
``copy_``, the unary ones (``neg_``, ``exp_``, ...) and ``t[index] = value``.

Each writes into the tensor's own array and returns the tensor. The rules are PyTorch's:

- On a tensor that requires grad, outside ``no_grad``, the write is refused. For a leaf this
  is PyTorch's own error; for a computed tensor PyTorch would record the write in the graph,
  which glassgrad cannot yet do correctly (a node is the Tensor object itself, so the ops
  that used the old value would route their gradients through the new one): the message
  gives the out-of-place spelling, which computes the same gradients.
- Every write advances the version counter (``autograd.mark_modified``), so a backward pass
  that needs the old values raises instead of computing a wrong gradient.
- A tensor from ``.data`` has its own counter, as in PyTorch: writes through it change the
  values of the tensor it came from but are not seen by that tensor's version check.
- The result must fit the tensor: same shape after broadcasting and a dtype it can be cast
  to without loss of kind (PyTorch: ``int_tensor.add_(0.5)`` is refused). A refused write
  changes nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .autograd import STATE, mark_modified
from .creation import rng as random_generator
from .ops import _sigmoid
from .tensor import Tensor


def _check_writable(t: Tensor, what: str, *operands: Any) -> None:
    """Refuse a write that the graph cannot take (see the module docstring)."""
    if not STATE.grad_enabled:
        return
    if not t._requires_grad:
        for x in operands:
            if isinstance(x, Tensor) and x._requires_grad:
                raise RuntimeError(
                    f"{what}: the value written (shape {x.shape}) requires grad, but "
                    f"glassgrad does not record in-place ops in the graph (PyTorch does), so "
                    f"no gradient would reach it. Fix: use the out-of-place form (y = x + v "
                    f"for x.add_(v); gg.where(mask, v, x) for x[mask] = v), or write a "
                    f"detached copy (v.detach()) if no gradient should flow."
                )
        return
    if t._op is None:
        raise RuntimeError(
            f"{what}: a leaf tensor that requires grad (shape {t.shape}) is being used in an "
            f"in-place operation: autograd could not compute its gradient afterwards. Fix: "
            f"do the update inside `with gg.no_grad():` (as an optimizer step does), or "
            f"write through .data (w.data.{what.split('(')[0]}(...)), which is not tracked."
        )
    raise RuntimeError(
        f"{what}: in-place write to a tensor computed by '{t._op.name}' (shape {t.shape}) "
        f"that requires grad: glassgrad does not record in-place ops in the graph (PyTorch "
        f"does). Fix: use the out-of-place form, which gives the same values and gradients "
        f"(y = y + 1 for y.add_(1), y = y.clamp(min=0) for y.clamp_(min=0)), or do the "
        f"write inside `with gg.no_grad():` if no gradient should flow through it."
    )


def _written(t: Tensor) -> Tensor:
    # A .data alias has its own counter (PyTorch): only the alias is marked, not the memory,
    # so the tensor it came from keeps its version.
    mark_modified(t, memory=not getattr(t, "_alias", False))
    return t


def _array(x: Any) -> Any:
    """An operand as NumPy takes it: Python scalars stay Python scalars, so a float32
    tensor computes in float32 (NumPy 2's weak scalars), as PyTorch does."""
    return x._data if isinstance(x, Tensor) else x


def _ufunc_into(t: Tensor, ufunc: np.ufunc, what: str, *operands: Any) -> Tensor:
    """``t = ufunc(t, *operands)`` written into ``t``'s array, checked before any write."""
    _check_writable(t, what, *operands)
    arr = t._data
    args = [_array(x) for x in operands]
    given = [a for a in args if a is not None]  # (clamp_'s missing bound)
    shapes = [np.shape(a) for a in given]
    try:
        full = np.broadcast_shapes(arr.shape, *shapes)
    except ValueError:
        full = None
    if full != arr.shape:
        raise ValueError(
            f"{what}: the result would have shape {full or 'none (not broadcastable)'}, but "
            f"an in-place op writes into the tensor, of shape {arr.shape}; operand shapes: "
            f"{', '.join(map(str, shapes))}. Fix: give an operand that broadcasts to "
            f"{arr.shape}, or use the out-of-place op (x = x.{what.split('(')[0][:-1]}(...))."
        )
    result_type = np.result_type(arr, *given)
    if not np.can_cast(result_type, arr.dtype, casting="same_kind"):
        raise _cast_error(what, result_type, arr)
    try:  # NumPy checks the output cast (int / int is float) before it writes anything
        ufunc(arr, *args, out=arr, casting="same_kind")
    except TypeError as e:
        raise _cast_error(what, "float" if ufunc is np.true_divide else "another kind",
                          arr) from e
    return _written(t)


def _cast_error(what: str, result_type: Any, arr: np.ndarray) -> TypeError:
    return TypeError(
        f"{what}: the result has dtype {result_type}, which cannot be written into this "
        f"tensor of dtype {arr.dtype} (shape {arr.shape}) (PyTorch refuses it too). Fix: "
        f"convert the tensor first (x = x.float()), or use the out-of-place op."
    )


# --------------------------------------------------------------------------- arithmetic
def add_(self: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
    """``self += alpha * other`` in place; returns ``self``."""
    if alpha != 1:
        other = _array(other) * alpha
    return _ufunc_into(self, np.add, "add_()", other)


def sub_(self: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
    """``self -= alpha * other`` in place; returns ``self``."""
    if alpha != 1:
        other = _array(other) * alpha
    return _ufunc_into(self, np.subtract, "sub_()", other)


def mul_(self: Tensor, other: Any) -> Tensor:
    """``self *= other`` in place; returns ``self``."""
    return _ufunc_into(self, np.multiply, "mul_()", other)


_ROUNDING = {None: None, "trunc": np.trunc, "floor": np.floor}


def div_(self: Tensor, other: Any, *, rounding_mode: str | None = None) -> Tensor:
    """``self /= other`` in place (``rounding_mode`` "trunc" or "floor" rounds the
    quotient, as PyTorch); returns ``self``."""
    if rounding_mode not in _ROUNDING:
        raise ValueError(f"div_(): rounding_mode must be None, 'trunc' or 'floor', got "
                         f"{rounding_mode!r}")
    if rounding_mode is None:
        return _ufunc_into(self, np.true_divide, "div_()", other)
    # PyTorch's rounded division keeps an integer tensor integer; NumPy's floor_divide
    # rounds toward -inf, so "trunc" is computed as a quotient then truncated.
    quotient = np.true_divide(self._data, _array(other))
    rounded = _ROUNDING[rounding_mode](quotient)
    return copy_(self, Tensor._wrap(np.asarray(rounded)), what="div_()")


def pow_(self: Tensor, exponent: Any) -> Tensor:
    """``self **= exponent`` in place; returns ``self``."""
    return _ufunc_into(self, np.power, "pow_()", exponent)


def clamp_(self: Tensor, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
    """Limit the values to [min, max] in place (either bound may be None, not both)."""
    if min is None and max is None:
        raise RuntimeError("clamp_(): at least one of 'min' or 'max' must not be None "
                           "(as in PyTorch). Fix: give min=, max= or both.")
    return _ufunc_into(self, _clip, "clamp_()", min, max)


def _clip(x: np.ndarray, lo: Any, hi: Any, out: np.ndarray, casting: str) -> None:
    # (one call for both bounds: a bad second bound must not leave the first one written)
    np.clip(x, lo, hi, out=out, casting=casting)


# --------------------------------------------------------------------------- unary
def _unary(ufunc: Any, name: str) -> Any:
    def method(self: Tensor) -> Tensor:
        return _ufunc_into(self, ufunc, f"{name}()")

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"The values replaced by their {name[:-1]}, in place; returns ``self``."
    return method


def _sigmoid_out(x: np.ndarray, out: np.ndarray, casting: str) -> None:
    out[...] = _sigmoid(x)


UNARY = {name: _unary(fn, name) for name, fn in {
    "neg_": np.negative, "exp_": np.exp, "log_": np.log, "sqrt_": np.sqrt, "abs_": np.abs,
    "sin_": np.sin, "cos_": np.cos, "tanh_": np.tanh, "sigmoid_": _sigmoid_out,
}.items()}


# --------------------------------------------------------------------------- filling
def zero_(self: Tensor) -> Tensor:
    """Set every value to 0 in place; returns ``self``."""
    return fill_(self, 0)


def fill_(self: Tensor, value: Any) -> Tensor:
    """Set every value to ``value`` (a number or a 0-d tensor) in place; returns ``self``."""
    _check_writable(self, "fill_()", value)
    if isinstance(value, Tensor):
        if value.ndim:
            raise RuntimeError(f"fill_(): the value must be a number or a 0-d tensor, got a "
                               f"tensor of shape {value.shape}. Fix: use copy_() to copy a "
                               f"tensor's values.")
        value = value._data
    self._data[...] = value
    return _written(self)


def copy_(self: Tensor, src: Any, non_blocking: bool = False, *, what: str = "copy_()"
          ) -> Tensor:
    """Copy ``src``'s values into ``self`` (broadcast to ``self``'s shape and converted to
    its dtype, as PyTorch: float into int truncates); returns ``self``."""
    _check_writable(self, what, src)
    arr = _array(src)
    try:
        fits = np.broadcast_shapes(np.shape(arr), self.shape) == self.shape
    except ValueError:
        fits = False
    if not fits:
        raise RuntimeError(f"{what}: the source has shape {np.shape(arr)}, which does not "
                           f"broadcast to the tensor's shape {self.shape}. Fix: reshape the "
                           f"source, or assign a new tensor instead.")
    np.copyto(self._data, arr, casting="unsafe")
    return _written(self)


def normal_(self: Tensor, mean: float = 0.0, std: float = 1.0, *, generator: Any = None
            ) -> Tensor:
    """Fill with samples from N(mean, std²) in place. ``generator``: an int seed or a NumPy
    Generator; None draws from the global generator that ``manual_seed`` seeds (the numbers
    differ from PyTorch's; the distribution is the same)."""
    rng = random_generator(generator, "normal_()")
    if std < 0:
        raise RuntimeError(f"normal_(): std must be >= 0, got {std}")
    return copy_(self, rng.normal(mean, std, self.shape), what="normal_()")


def uniform_(self: Tensor, from_: float = 0.0, to: float = 1.0, *, generator: Any = None
             ) -> Tensor:
    """Fill with samples from the uniform distribution on [from_, to) in place
    (PyTorch's ``uniform_(from=0, to=1)``)."""
    rng = random_generator(generator, "uniform_()")
    if from_ > to:
        raise RuntimeError(f"uniform_(): expects from <= to, got from={from_}, to={to}")
    return copy_(self, rng.uniform(from_, to, self.shape), what="uniform_()")


def setitem(self: Tensor, index: Any, value: Any) -> None:
    """``t[index] = value``: write into the selected elements (PyTorch's ``index_put_``)."""
    _check_writable(self, "t[index] = value", value)
    if isinstance(index, Tensor):
        index = index._data
    elif isinstance(index, tuple):
        index = tuple(i._data if isinstance(i, Tensor) else i for i in index)
    try:
        self._data[index] = _array(value)
    except (ValueError, IndexError, TypeError) as e:  # (NumPy checks before it writes)
        raise type(e)(f"t[index] = value: cannot write a value of shape {np.shape(_array(value))} "
                      f"into tensor of shape {self.shape} at index {index!r}: {e}. Fix: give a "
                      f"value that broadcasts to the selected elements.") from None
    _written(self)


METHODS = {
    "add_": add_, "sub_": sub_, "mul_": mul_, "div_": div_, "pow_": pow_, "clamp_": clamp_,
    "zero_": zero_, "fill_": fill_, "copy_": copy_, "normal_": normal_, "uniform_": uniform_,
    "__setitem__": setitem, **UNARY,
}

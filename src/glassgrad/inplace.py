"""In-place Tensor methods, PyTorch's trailing-underscore set: ``zero_``, ``fill_``,
``normal_``, ``uniform_``, ``add_``, ``sub_``, ``mul_``, ``div_``, ``pow_``, ``clamp_``,
``copy_``, ``masked_fill_``, the unary ones (``neg_``, ``exp_``, ``relu_``, ...) and
``t[index] = value``.

Each writes into the tensor's own array and returns the tensor. The rules are PyTorch's:

- On a leaf that requires grad, outside ``no_grad``, the write is refused (PyTorch's own
  error), and so is a write into a view of one. On a computed tensor that requires grad, or
  when the value written requires grad (``x[0] = w``), the op is recorded in the graph, as
  PyTorch records it (``inplace_graph.rebase``): the values are written into the memory and
  the tensor becomes the op's node; ops that used it before keep their edge to the old
  value. Inside ``no_grad`` a write is never recorded.
- Every write advances the version counter (``autograd.mark_modified``), so a backward pass
  that needs the old values raises instead of computing a wrong gradient.
- A tensor from ``.data`` has its own counter, as in PyTorch: writes through it change the
  values of the tensor it came from but are not seen by that tensor's version check.
- The result must fit the tensor: same shape after broadcasting and a dtype it can be cast
  to without loss of kind (PyTorch: ``int_tensor.add_(0.5)`` is refused). A refused write
  changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import functional as F
from .autograd import STATE, mark_modified, no_grad
from .creation import rng as random_generator
from .inplace_graph import check_view, rebase
from .ops import _sigmoid
from .tensor import Tensor, as_constant


def _recording(t: Tensor, what: str, *operands: Any) -> bool:
    """Whether the write goes into the graph (``inplace_graph.rebase``), as PyTorch records
    it: on a computed tensor that requires grad, or when the value written requires grad.
    Raises for the writes PyTorch refuses (a leaf that requires grad, a view of one)."""
    if not STATE.grad_enabled:
        return False
    if t._requires_grad:
        if t._op is None:
            raise RuntimeError(
                f"{what}: a leaf tensor that requires grad (shape {t.shape}) is being used in "
                f"an in-place operation: autograd could not compute its gradient afterwards. "
                f"Fix: do the update inside `with gg.no_grad():` (as an optimizer step does), "
                f"or write through .data (w.data.{what.split('(')[0]}(...)), which is not "
                f"tracked.")
    elif t._data.dtype.kind != "f" or not any(
            isinstance(x, Tensor) and x._requires_grad for x in operands):
        return False  # (an integer tensor cannot require grad: a float value is refused)
    check_view(t, what)
    return True


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
def _scaled(other: Any, alpha: Any) -> Any:
    return other if alpha == 1 else (other * alpha if isinstance(other, Tensor)
                                     else _array(other) * alpha)


def add_(self: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
    """``self += alpha * other`` in place; returns ``self``."""
    other = _scaled(other, alpha)
    if _recording(self, "add_()", other):
        return rebase(self, lambda old: old + other, "add_()")
    return _ufunc_into(self, np.add, "add_()", other)


def sub_(self: Tensor, other: Any, *, alpha: Any = 1) -> Tensor:
    """``self -= alpha * other`` in place; returns ``self``."""
    other = _scaled(other, alpha)
    if _recording(self, "sub_()", other):
        return rebase(self, lambda old: old - other, "sub_()")
    return _ufunc_into(self, np.subtract, "sub_()", other)


def mul_(self: Tensor, other: Any) -> Tensor:
    """``self *= other`` in place; returns ``self``."""
    if _recording(self, "mul_()", other):
        return rebase(self, lambda old: old * other, "mul_()")
    return _ufunc_into(self, np.multiply, "mul_()", other)


_ROUNDING = {None: None, "trunc": np.trunc, "floor": np.floor}


def div_(self: Tensor, other: Any, *, rounding_mode: str | None = None) -> Tensor:
    """``self /= other`` in place (``rounding_mode`` "trunc" or "floor" rounds the
    quotient, as PyTorch: no gradient flows through a rounded quotient); returns ``self``."""
    if rounding_mode not in _ROUNDING:
        raise ValueError(f"div_(): rounding_mode must be None, 'trunc' or 'floor', got "
                         f"{rounding_mode!r}")
    if rounding_mode is None:
        if _recording(self, "div_()", other):
            return rebase(self, lambda old: old / other, "div_()")
        return _ufunc_into(self, np.true_divide, "div_()", other)
    # PyTorch's rounded division keeps an integer tensor integer; NumPy's floor_divide
    # rounds toward -inf, so "trunc" is computed as a quotient then truncated.
    quotient = np.true_divide(self._data, _array(other))
    rounded = Tensor._wrap(np.asarray(_ROUNDING[rounding_mode](quotient)))
    return copy_(self, rounded, what="div_()")


def pow_(self: Tensor, exponent: Any) -> Tensor:
    """``self **= exponent`` in place; returns ``self``."""
    if _recording(self, "pow_()", exponent):
        return rebase(self, lambda old: old ** exponent, "pow_()")
    return _ufunc_into(self, np.power, "pow_()", exponent)


def clamp_(self: Tensor, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
    """Limit the values to [min, max] in place (either bound may be None, not both)."""
    if min is None and max is None:
        raise RuntimeError("clamp_(): at least one of 'min' or 'max' must not be None "
                           "(as in PyTorch). Fix: give min=, max= or both.")
    if _recording(self, "clamp_()"):
        if any(isinstance(b, Tensor) and b._requires_grad for b in (min, max)):
            raise RuntimeError(
                "clamp_(): a bound that requires grad is not supported in glassgrad (no "
                "gradient would reach it). Fix: use gg.maximum(x, lo) / gg.minimum(x, hi).")
        lo, hi = _array(min), _array(max)
        return rebase(self, lambda old: F.clip(old, lo, hi), "clamp_()")
    return _ufunc_into(self, _clip, "clamp_()", min, max)


def _clip(x: np.ndarray, lo: Any, hi: Any, out: np.ndarray, casting: str) -> None:
    # (one call for both bounds: a bad second bound must not leave the first one written)
    np.clip(x, lo, hi, out=out, casting=casting)


# --------------------------------------------------------------------------- unary
def _unary(ufunc: Any, name: str, op: Any) -> Any:
    def method(self: Tensor) -> Tensor:
        if _recording(self, f"{name}()"):
            return rebase(self, op, f"{name}()")
        return _ufunc_into(self, ufunc, f"{name}()")

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"The values replaced by their {name[:-1]}, in place; returns ``self``."
    return method


def _sigmoid_out(x: np.ndarray, out: np.ndarray, casting: str) -> None:
    out[...] = _sigmoid(x)


def _relu_out(x: np.ndarray, out: np.ndarray, casting: str) -> None:
    np.maximum(x, 0, out=out, casting=casting)


UNARY = {name: _unary(fn, name, op) for name, (fn, op) in {
    "neg_": (np.negative, F.neg), "exp_": (np.exp, F.exp), "log_": (np.log, F.log),
    "sqrt_": (np.sqrt, F.sqrt), "abs_": (np.abs, F.abs), "sin_": (np.sin, F.sin),
    "cos_": (np.cos, F.cos), "tanh_": (np.tanh, F.tanh),
    "sigmoid_": (_sigmoid_out, F.sigmoid), "relu_": (_relu_out, F.relu),
}.items()}


# --------------------------------------------------------------------------- filling
def zero_(self: Tensor) -> Tensor:
    """Set every value to 0 in place; returns ``self``."""
    return fill_(self, 0)


def _everywhere(shape: tuple[int, ...]) -> np.ndarray:
    return np.ones(shape, dtype=bool)


def fill_(self: Tensor, value: Any) -> Tensor:
    """Set every value to ``value`` (a number or a 0-d tensor) in place; returns ``self``."""
    if isinstance(value, Tensor) and value.ndim:
        raise RuntimeError(f"fill_(): the value must be a number or a 0-d tensor, got a "
                           f"tensor of shape {value.shape}. Fix: use copy_() to copy a "
                           f"tensor's values.")
    if _recording(self, "fill_()", value):  # (0 to the old values, the sum to the value)
        return rebase(self, lambda old: F.where(_everywhere(old.shape), value, old), "fill_()")
    self._data[...] = _array(value)
    return _written(self)


def copy_(self: Tensor, src: Any, non_blocking: bool = False, *, what: str = "copy_()"
          ) -> Tensor:
    """Copy ``src``'s values into ``self`` (broadcast to ``self``'s shape and converted to
    its dtype, as PyTorch: float into int truncates); returns ``self``."""
    arr = _array(src)
    try:
        fits = np.broadcast_shapes(np.shape(arr), self.shape) == self.shape
    except ValueError:
        fits = False
    if not fits:
        raise RuntimeError(f"{what}: the source has shape {np.shape(arr)}, which does not "
                           f"broadcast to the tensor's shape {self.shape}. Fix: reshape the "
                           f"source, or assign a new tensor instead.")
    if _recording(self, what, src):  # (the gradient goes to src, none to the old values)
        return rebase(self, lambda old: F.where(_everywhere(old.shape), src, old), what)
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
    if isinstance(index, Tensor):
        index = index._data
    elif isinstance(index, tuple):
        index = tuple(i._data if isinstance(i, Tensor) else i for i in index)
    try:
        new = self._data.copy()  # (NumPy checks before it writes; a copy keeps self intact)
        new[index] = _array(value)
    except (ValueError, IndexError, TypeError) as e:
        raise type(e)(f"t[index] = value: cannot write a value of shape {np.shape(_array(value))} "
                      f"into tensor of shape {self.shape} at index {index!r}: {e}. Fix: give a "
                      f"value that broadcasts to the selected elements.") from None
    if _recording(self, "t[index] = value", value):
        rebase(self, lambda old: _put(old, index, value), "t[index] = value",
               values=lambda old: new)
        return
    self._data[index] = _array(value)
    _written(self)


def _put(old: Tensor, index: Any, value: Any) -> Tensor:
    """``old`` with ``value`` at ``index``, as a graph: where(selected, placed, old), the
    value placed by index_add (its gradient: the output's gradient at ``index``, PyTorch's
    index_put rule, every repeat of an index included)."""
    from . import ops

    selected = np.zeros(old.shape, dtype=bool)
    selected[index] = True
    v = as_constant(value, (old,))
    if v._data.dtype != old._data.dtype:
        v = F.cast(v, old._data.dtype) if v._requires_grad else \
            Tensor._wrap(v._data.astype(old._data.dtype))
    placed = ops.apply(ops.index_add, Tensor._wrap(np.zeros_like(old._data)), v, index=index)
    return F.where(selected, placed, old)


def masked_fill_(self: Tensor, mask: Any, value: Any) -> Tensor:
    """Set the values where the bool ``mask`` is True to ``value`` in place (PyTorch's
    ``masked_fill_``: the mask broadcasts to ``self``); returns ``self``."""
    from .shape import masked_fill

    if _recording(self, "masked_fill_()", value):
        return rebase(self, lambda old: masked_fill(old, mask, value), "masked_fill_()")
    with no_grad():
        filled = masked_fill(self.detach(), mask, value)
    return copy_(self, filled, what="masked_fill_()")


def update_(self: Tensor, fn: Callable[[Tensor], Tensor], what: str) -> Tensor:
    """``self ← fn(self)`` in place, for an op with no in-place method of its own (``nn``'s
    ``inplace=True`` activations): recorded in the graph where PyTorch records it, else the
    values written. Returns ``self``."""
    if _recording(self, what):
        return rebase(self, fn, what)
    with no_grad():
        result = fn(self.detach())
    return copy_(self, result, what=what)


METHODS = {
    "add_": add_, "sub_": sub_, "mul_": mul_, "div_": div_, "pow_": pow_, "clamp_": clamp_,
    "zero_": zero_, "fill_": fill_, "copy_": copy_, "normal_": normal_, "uniform_": uniform_,
    "__setitem__": setitem, "masked_fill_": masked_fill_, **UNARY,
}

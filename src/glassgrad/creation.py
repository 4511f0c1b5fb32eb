"""Creation functions with PyTorch's signatures: ``zeros``, ``arange``, ``linspace``,
``rand``, ``randint``, ``manual_seed``, ...

Each takes PyTorch's keywords: ``dtype=`` (floats default to ``get_default_dtype()``,
float32), ``device=`` (only the CPU: any other is refused by ``dtypes.check_device``),
``requires_grad=``, and for random ones ``generator=``. ``out=`` is refused: glassgrad never
writes into an existing tensor's memory behind the graph's back.

Randomness: with no ``generator`` (an int seed or a ``numpy.random.Generator``; glassgrad's
older keyword ``seed=`` is the same), random functions draw from one global NumPy Generator,
which ``manual_seed(s)`` reseeds. ``nn`` layers' initial weights, ``nn.init``, dropout and
the DataLoader's shuffling draw from it too, so ``manual_seed`` makes a program reproducible
run to run. The numbers differ from PyTorch's for the same seed (different generators).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .dtypes import as_dtype, check_device, default_float
from .tensor import Tensor, _check_grad_dtype, _to_array
from .tensor import tensor as _tensor

Seed = int | np.random.Generator | None

_GLOBAL = np.random.default_rng()  # reseeded in place by manual_seed (layers keep a reference)


# --------------------------------------------------------------------------- randomness
def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator that every random function, initializer, dropout layer
    and shuffling DataLoader uses when given no ``generator``/``seed``; returns it. After
    ``manual_seed(s)`` the draws equal those of ``generator=s``."""
    if not isinstance(seed, int | float | np.number):  # (PyTorch takes int(seed) too)
        raise TypeError(f"manual_seed: the seed must be an int, got {type(seed).__name__} "
                        f"{seed!r}. Fix: pass e.g. gg.manual_seed(0).")
    # PyTorch takes seeds in [-2⁶³, 2⁶⁴); NumPy's are non-negative: wrap into [0, 2⁶⁴).
    _GLOBAL.bit_generator.state = np.random.PCG64(int(seed) % 2**64).state
    return _GLOBAL


def rng(generator: Seed = None, who: str = "random") -> np.random.Generator:
    """The generator to draw from: ``generator`` itself, a new one seeded with an int, or
    (None) the global one that ``manual_seed`` seeds."""
    if generator is None:
        return _GLOBAL
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, int | np.integer) and not isinstance(generator, bool):
        return np.random.default_rng(generator)
    raise TypeError(f"{who}: generator must be an int seed or a numpy.random.Generator, got "
                    f"{type(generator).__name__}. Fix: pass e.g. generator=0.")


def _generator(generator: Seed, seed: Seed, who: str) -> np.random.Generator:
    if generator is not None and seed is not None:
        raise TypeError(f"{who}: pass generator= or seed=, not both (they are the same thing "
                        f"under two names).")
    return rng(seed if generator is None else generator, who)


# --------------------------------------------------------------------------- helpers
def _size(size: tuple, who: str, keyword: Any = None) -> tuple[int, ...]:
    """``*size`` as PyTorch takes it: ints, or one sequence of ints (a list, tuple, Size),
    or the keyword ``size=`` (``keyword``) instead."""
    if keyword is not None:
        if size:
            raise TypeError(f"{who}: give the size positionally or as size=, not both.")
        size = (keyword,)
    if len(size) == 1 and isinstance(size[0], Sequence | np.ndarray | Tensor):
        size = tuple(size[0])
    for s in size:
        if not isinstance(s, int | np.integer) or isinstance(s, bool):
            raise TypeError(
                f"{who}: the size must be ints (or one list/tuple of ints), got {size!r}, "
                f"which holds a {type(s).__name__}. Fix: e.g. {who}(2, 3) or {who}((2, 3))."
            )
    if any(s < 0 for s in size):
        raise RuntimeError(f"{who}: trying to create a tensor with a negative dimension: "
                           f"size {list(size)}. Fix: every dimension must be >= 0.")
    return tuple(int(s) for s in size)


def _dtype(dtype: Any, who: str, default: Any = None) -> np.dtype:
    if dtype is None:
        return default_float() if default is None else np.dtype(default)
    return as_dtype(dtype, who)


def _finish(arr: np.ndarray, who: str, device: Any, requires_grad: bool, out: Any) -> Tensor:
    """The common end of every creation function: check ``device``/``out``, wrap ``arr``."""
    check_device(device, who)
    if out is not None:
        raise TypeError(f"{who}: out= is not supported (glassgrad does not write results into "
                        f"an existing tensor). Fix: assign the result, x = {who}(...).")
    if requires_grad:
        _check_grad_dtype(arr.dtype, arr.shape)
    t = Tensor._wrap(arr)
    t._requires_grad = bool(requires_grad)
    return t


def _like(input: Any) -> np.ndarray:
    return input._data if isinstance(input, Tensor) else np.asarray(input)


# --------------------------------------------------------------------------- from data
def tensor(data: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False,
           pin_memory: bool = False) -> Tensor:
    """A new leaf tensor holding a copy of ``data``: Python floats become the default dtype
    (float32), ints int64, bools bool; NumPy arrays and tensors keep theirs."""
    check_device(device, "tensor")
    return _tensor(data, None if dtype is None else as_dtype(dtype, "tensor"), requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """``data`` as a tensor without copying where it can: a tensor of the right dtype is
    returned as it is, a NumPy array of the right dtype is shared (as ``from_numpy``)."""
    check_device(device, "as_tensor")
    dt = None if dtype is None else as_dtype(dtype, "as_tensor")
    if isinstance(data, Tensor):
        return data if dt is None or dt == data.dtype else data.to(dt)
    return Tensor._wrap(_to_array(data, dt, copy=False))


def is_tensor(obj: Any) -> bool:
    """Whether ``obj`` is a glassgrad Tensor (an ``nn.Parameter`` is one)."""
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> int:
    """The number of elements of ``input``."""
    return int(_like(input).size)


# --------------------------------------------------------------------------- filled
def zeros(*shape: Any, size: Any = None,
          out: Any = None, dtype: Any = None, layout: Any = None,
          device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros of shape ``size`` (ints or one sequence)."""
    arr = np.zeros(_size(shape, "zeros", size), _dtype(dtype, "zeros"))
    return _finish(arr, "zeros", device, requires_grad, out)


def ones(*shape: Any, size: Any = None,
         out: Any = None, dtype: Any = None, layout: Any = None,
         device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones of shape ``size``."""
    arr = np.ones(_size(shape, "ones", size), _dtype(dtype, "ones"))
    return _finish(arr, "ones", device, requires_grad, out)


def empty(*shape: Any, size: Any = None,
          out: Any = None, dtype: Any = None, layout: Any = None,
          device: Any = None, requires_grad: bool = False, pin_memory: bool = False,
          memory_format: Any = None) -> Tensor:
    """An uninitialized tensor of shape ``size`` (its values are whatever the memory held)."""
    arr = np.empty(_size(shape, "empty", size), _dtype(dtype, "empty"))
    return _finish(arr, "empty", device, requires_grad, out)


def full(size: Sequence[int], fill_value: Any, *, out: Any = None, dtype: Any = None,
         layout: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of shape ``size`` filled with ``fill_value``; its dtype, unless given, follows
    the value as in PyTorch (bool, int64, or the default float dtype)."""
    if dtype is None:
        dtype = _to_array(fill_value).dtype if not isinstance(fill_value, Tensor) else None
    arr = np.full(_size((size,), "full"), fill_value, _dtype(dtype, "full"))
    return _finish(arr, "full", device, requires_grad, out)


def _like_array(fn: Any, input: Any, dtype: Any, who: str) -> np.ndarray:
    like = _like(input)
    return fn(like.shape, like.dtype if dtype is None else as_dtype(dtype, who))


def zeros_like(input: Any, *, dtype: Any = None, layout: Any = None, device: Any = None,
               requires_grad: bool = False, memory_format: Any = None) -> Tensor:
    """Zeros with ``input``'s shape and (unless given) dtype."""
    arr = _like_array(np.zeros, input, dtype, "zeros_like")
    return _finish(arr, "zeros_like", device, requires_grad, None)


def ones_like(input: Any, *, dtype: Any = None, layout: Any = None, device: Any = None,
              requires_grad: bool = False, memory_format: Any = None) -> Tensor:
    """Ones with ``input``'s shape and (unless given) dtype."""
    arr = _like_array(np.ones, input, dtype, "ones_like")
    return _finish(arr, "ones_like", device, requires_grad, None)


def empty_like(input: Any, *, dtype: Any = None, layout: Any = None, device: Any = None,
               requires_grad: bool = False, memory_format: Any = None) -> Tensor:
    """An uninitialized tensor with ``input``'s shape and (unless given) dtype."""
    arr = _like_array(np.empty, input, dtype, "empty_like")
    return _finish(arr, "empty_like", device, requires_grad, None)


def full_like(input: Any, fill_value: Any, *, dtype: Any = None, layout: Any = None,
              device: Any = None, requires_grad: bool = False,
              memory_format: Any = None) -> Tensor:
    """``fill_value`` with ``input``'s shape and (unless given) dtype."""
    arr = _like_array(np.empty, input, dtype, "full_like")
    arr[...] = fill_value
    return _finish(arr, "full_like", device, requires_grad, None)


def eye(n: int, m: int | None = None, *, out: Any = None, dtype: Any = None,
        layout: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """The n×m identity matrix (n×n when ``m`` is None)."""
    rows, cols = _size((n, n if m is None else m), "eye")
    return _finish(np.eye(rows, cols, dtype=_dtype(dtype, "eye")), "eye", device,
                   requires_grad, out)


# --------------------------------------------------------------------------- ranges
def arange(start: Any = 0, end: Any = None, step: Any = 1, *, out: Any = None,
           dtype: Any = None, layout: Any = None, device: Any = None,
           requires_grad: bool = False) -> Tensor:
    """Values from ``start`` up to (not including) ``end`` by ``step``; ``arange(n)`` is
    0..n-1. All-integer arguments give int64, any float the default float dtype."""
    if end is None:
        start, end = 0, start
    bounds = [_like(v).item() if isinstance(v, Tensor) else v for v in (start, end, step)]
    if step == 0:
        raise RuntimeError("arange: step must be nonzero. Fix: pass a positive or negative step.")
    if (bounds[1] - bounds[0]) * bounds[2] < 0:
        raise RuntimeError(
            f"arange: upper bound and larger bound inconsistent with step sign: start "
            f"{bounds[0]}, end {bounds[1]}, step {bounds[2]}. Fix: make the step's sign match "
            f"the direction from start to end."
        )
    ints = all(isinstance(v, int | np.integer) for v in bounds)
    dt = _dtype(dtype, "arange", np.int64 if ints else None)
    # Computed in float64 (as PyTorch's double accumulation), then cast.
    arr = np.arange(*bounds, dtype=np.int64 if ints else np.float64).astype(dt)
    return _finish(arr, "arange", device, requires_grad, out)


def linspace(start: Any, end: Any, steps: int, *, out: Any = None, dtype: Any = None,
             layout: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end``, both included."""
    if not isinstance(steps, int | np.integer) or isinstance(steps, bool) or steps < 0:
        raise RuntimeError(f"linspace: steps must be a non-negative int, got {steps!r}. "
                           f"Fix: e.g. linspace(0, 1, steps=5).")
    arr = np.linspace(float(start), float(end), int(steps)).astype(_dtype(dtype, "linspace"))
    return _finish(arr, "linspace", device, requires_grad, out)


# --------------------------------------------------------------------------- random
def rand(*shape: Any, size: Any = None,
         generator: Seed = None, out: Any = None, dtype: Any = None,
         layout: Any = None, device: Any = None, requires_grad: bool = False,
         pin_memory: bool = False, seed: Seed = None) -> Tensor:
    """Uniform samples from [0, 1) of shape ``size``."""
    g = _generator(generator, seed, "rand")
    arr = g.random(_size(shape, "rand", size)).astype(_dtype(dtype, "rand"))
    return _finish(arr, "rand", device, requires_grad, out)


def randn(*shape: Any, size: Any = None,
          generator: Seed = None, out: Any = None, dtype: Any = None,
          layout: Any = None, device: Any = None, requires_grad: bool = False,
          pin_memory: bool = False, seed: Seed = None) -> Tensor:
    """Standard-normal samples of shape ``size``; ``generator``/``seed`` (an int or a
    Generator) reproduces them."""
    g = _generator(generator, seed, "randn")
    arr = g.standard_normal(_size(shape, "randn", size)).astype(_dtype(dtype, "randn"))
    return _finish(arr, "randn", device, requires_grad, out)


def rand_like(input: Any, *, generator: Seed = None, dtype: Any = None, layout: Any = None,
              device: Any = None, requires_grad: bool = False,
              memory_format: Any = None) -> Tensor:
    """``rand`` with ``input``'s shape and (unless given) dtype."""
    like = _like(input)
    return rand(like.shape, generator=generator, dtype=like.dtype if dtype is None else dtype,
                device=device, requires_grad=requires_grad)


def randn_like(input: Any, *, generator: Seed = None, dtype: Any = None, layout: Any = None,
               device: Any = None, requires_grad: bool = False,
               memory_format: Any = None) -> Tensor:
    """``randn`` with ``input``'s shape and (unless given) dtype."""
    like = _like(input)
    return randn(like.shape, generator=generator, dtype=like.dtype if dtype is None else dtype,
                 device=device, requires_grad=requires_grad)


def randint(*args: Any, size: Any = None, low: int | None = None, high: int | None = None,
            generator: Seed = None, out: Any = None, dtype: Any = None, layout: Any = None,
            device: Any = None, requires_grad: bool = False, seed: Seed = None) -> Tensor:
    """Integers drawn uniformly from [low, high) of shape ``size``, as PyTorch's
    ``randint(high, size)`` / ``randint(low, high, size)``; int64 unless ``dtype``."""
    given = [*args]
    if size is None and given and isinstance(given[-1], Sequence | Tensor):
        size = given.pop()
    if high is None and given:
        high = given.pop()
    if low is None:
        low = given.pop() if given else 0
    if given or high is None or size is None:
        raise TypeError(
            f"randint: expected randint(high, size) or randint(low, high, size), got "
            f"arguments {args!r} (size={size!r}). Fix: e.g. randint(0, 10, (3,))."
        )
    if high <= low:
        raise RuntimeError(f"randint: random_ expects 'from' to be less than 'to', but got "
                           f"from={low} >= to={high}. Fix: pass low < high.")
    shape = _size((size,), "randint")
    arr = _generator(generator, seed, "randint").integers(low, high, shape)
    arr = arr.astype(_dtype(dtype, "randint", np.int64))
    return _finish(arr, "randint", device, requires_grad, out)


def randperm(n: int, *, generator: Seed = None, out: Any = None, dtype: Any = None,
             layout: Any = None, device: Any = None, requires_grad: bool = False,
             pin_memory: bool = False, seed: Seed = None) -> Tensor:
    """A random permutation of 0..n-1 (int64 unless ``dtype``)."""
    (n,) = _size((n,), "randperm")
    arr = _generator(generator, seed, "randperm").permutation(n)
    arr = arr.astype(_dtype(dtype, "randperm", np.int64))
    return _finish(arr, "randperm", device, requires_grad, out)


def normal(mean: Any = 0.0, std: Any = 1.0, size: Any = None, *, generator: Seed = None,
           out: Any = None, dtype: Any = None, layout: Any = None, device: Any = None,
           pin_memory: bool = False, requires_grad: bool = False, seed: Seed = None) -> Tensor:
    """Normal samples with mean ``mean`` and standard deviation ``std``: floats (then
    ``size`` is the shape) or tensors (broadcast; the result has their shape and dtype).
    No gradient flows to ``mean`` or ``std``, as in PyTorch."""
    tensors = [v for v in (mean, std) if isinstance(v, Tensor)]
    m, s = _like(mean), _like(std)
    if (s < 0).any():
        raise RuntimeError(f"normal: std must be >= 0, got {std!r}. Fix: pass a non-negative "
                           f"standard deviation.")
    if tensors:
        if size is not None:
            raise TypeError("normal: size= is for float mean and std; with a tensor mean or "
                            "std the result has their (broadcast) shape.")
        shape, default = np.broadcast_shapes(m.shape, s.shape), tensors[0].dtype
    elif size is None:
        raise TypeError("normal: with float mean and std, give the size, e.g. "
                        "normal(0.0, 1.0, size=(2, 3)).")
    else:
        shape, default = _size((size,), "normal"), None
    draws = _generator(generator, seed, "normal").standard_normal(shape)
    arr = (m + s * draws).astype(_dtype(dtype, "normal", default))
    return _finish(arr, "normal", device, requires_grad, out)

"""PyTorch's shape and indexing methods: ``view``, ``expand``, ``repeat``, ``chunk``,
``split``, ``gather``, ``scatter``, ``scatter_add``, ``index_add`` (and their in-place
forms), ``masked_fill``, ``index_select``, ``narrow``, ``flip``, ...

All but ``gather`` are composites of the op table's primitives (reshape, broadcast_to,
getitem, index_add, where), so they have no backward code of their own: ``expand``'s
gradient is broadcast_to's (summed over the expanded dimensions), ``split``'s pieces are
getitem slices. ``gather`` is a primitive (``ops.gather``). Bad arguments are refused before
anything runs, with PyTorch's rule and the shapes involved in the message.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import functional as F
from . import ops
from .autograd import is_grad_enabled, record
from .inplace import update_
from .ops import apply
from .tensor import Tensor, _convert, _dim, as_constant


def _ints(sizes: tuple, who: str) -> tuple[int, ...]:
    """``*sizes`` as PyTorch takes them: ints, or one sequence of ints."""
    if len(sizes) == 1 and isinstance(sizes[0], Sequence | np.ndarray):
        sizes = tuple(sizes[0])
    for s in sizes:
        if not isinstance(s, int | np.integer) or isinstance(s, bool):
            raise TypeError(f"{who}: sizes must be ints, got {sizes!r}. Fix: e.g. "
                            f"x.{who}(2, -1) or x.{who}((2, -1)).")
    return tuple(int(s) for s in sizes)


def _infer(shape: tuple[int, ...], n: int, who: str, like: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` with its one -1 filled in so that it holds ``n`` elements."""
    known = math.prod(s for s in shape if s != -1)
    bad = shape.count(-1) > 1 or any(s < -1 for s in shape)
    if not bad and -1 in shape:
        bad = known == 0 or n % known != 0
        shape = tuple(n // known if s == -1 else s for s in shape) if not bad else shape
    if bad or math.prod(shape) != n:
        raise RuntimeError(
            f"{who}: shape {list(shape)} is invalid for input of size {n} (shape "
            f"{list(like)}): the new shape must hold the same number of elements, with at most "
            f"one -1 (inferred). Fix: make the sizes multiply to {n}."
        )
    return shape


# --------------------------------------------------------------------------- views
def view(x: Tensor, *shape: Any) -> Tensor:
    """The same values in a new shape, sharing memory (one size may be -1). As in PyTorch,
    a tensor whose memory layout cannot be viewed so (a transpose, say) is refused: use
    ``reshape``, which copies when it must."""
    if len(shape) == 1 and not isinstance(shape[0], int | np.integer | Sequence):
        raise TypeError(f"view: expected sizes, got {shape[0]!r}. Fix: x.view(2, -1); "
                        f"to convert the dtype, use x.to(dtype).")
    new = _infer(_ints(shape, "view"), x._data.size, "view", x._data.shape)
    probe = x._data.view()
    try:
        probe.shape = new  # NumPy refuses exactly when a copy would be needed
    except AttributeError:
        raise RuntimeError(
            f"view: view size {list(new)} is not compatible with the input's size "
            f"{list(x._data.shape)} and strides {list(x._data.strides)} (at least one "
            f"dimension spans across two contiguous subspaces, e.g. after a transpose). "
            f"Fix: use .reshape(...) instead, or .contiguous().view(...)."
        ) from None
    return apply(ops.reshape, x, shape=new)


def view_as(x: Tensor, other: Tensor) -> Tensor:
    """``x.view(other.shape)``."""
    return view(x, tuple(other.shape))


def reshape_as(x: Tensor, other: Tensor) -> Tensor:
    """``x.reshape(other.shape)``."""
    return F.reshape(x, tuple(other.shape))


def contiguous(x: Tensor, memory_format: Any = None) -> Tensor:
    """``x`` itself if its memory is laid out row by row, else a copy that is."""
    if x._data.flags.c_contiguous:
        return x
    if not x._requires_grad:
        return Tensor._wrap(np.ascontiguousarray(x._data))
    if x._data.ndim < 2:  # (a 1-D copy, such as mul's result, is always contiguous)
        return _convert(x, x._data.dtype, copy=True)
    # Flattening a non-contiguous array copies it in row order; the reshape back is a view.
    return F.reshape(F.reshape(x, (-1,)), x._data.shape)


def expand(x: Tensor, *sizes: Any) -> Tensor:
    """``x`` seen at a larger shape without copying: a dimension of size 1 may grow, -1
    keeps a size, new dimensions go in front. The gradient is summed over the expanded
    dimensions (broadcast_to's)."""
    want, have = _ints(sizes, "expand"), x._data.shape
    lead = len(want) - len(have)
    shape = []
    for i, w in enumerate(want):
        h = have[i - lead] if i >= lead else None
        if w == -1 and h is not None:
            w = h
        if w < 0 or (h is not None and h != w and h != 1):
            raise RuntimeError(
                f"expand: the expanded size of the tensor ({w}) must match the existing size "
                f"({h}) at non-singleton dimension {i}. Target sizes: {list(want)}. Tensor "
                f"sizes: {list(have)}. Fix: only dimensions of size 1 can grow (-1 keeps one)."
                if lead >= 0 else
                f"expand: the number of sizes provided ({len(want)}) must be greater or equal "
                f"to the number of dimensions in the tensor ({len(have)}). Target sizes: "
                f"{list(want)}. Tensor sizes: {list(have)}."
            )
        shape.append(w)
    if lead < 0:
        raise RuntimeError(
            f"expand: the number of sizes provided ({len(want)}) must be greater or equal to "
            f"the number of dimensions in the tensor ({len(have)}). Target sizes: "
            f"{list(want)}. Tensor sizes: {list(have)}."
        )
    return F.broadcast_to(x, tuple(shape))


def expand_as(x: Tensor, other: Tensor) -> Tensor:
    """``x.expand(other.shape)``."""
    return expand(x, tuple(other.shape))


def repeat(x: Tensor, *sizes: Any) -> Tensor:
    """``x`` tiled ``sizes[i]`` times along each dimension (NumPy's ``tile``); extra sizes
    add leading dimensions. Composite: x as (1, s₀, 1, s₁, …), broadcast to
    (r₀, s₀, r₁, s₁, …), reshaped to (r₀s₀, r₁s₁, …), so the gradient sums the copies."""
    reps, have = _ints(sizes, "repeat"), x._data.shape
    if len(reps) < len(have) or any(r < 0 for r in reps):
        raise RuntimeError(
            f"repeat: number of dimensions of repeat dims ({len(reps)}: {list(reps)}) can not "
            f"be smaller than the number of dimensions of the tensor ({len(have)}: shape "
            f"{list(have)}), and every count must be >= 0. Fix: give one count per dimension."
        )
    full = (1,) * (len(reps) - len(have)) + have
    spread = tuple(d for s in full for d in (1, s))
    tiled = tuple(d for r, s in zip(reps, full) for d in (r, s))
    out = F.broadcast_to(F.reshape(x, spread), tiled)
    return F.reshape(out, tuple(r * s for r, s in zip(reps, full)))


# --------------------------------------------------------------------------- pieces
def _along(dim: int, ndim: int, index: Any) -> tuple:
    """An index that applies ``index`` along dimension ``dim``: (:, :, index)."""
    return (slice(None),) * dim + (index,)


def split(x: Tensor, split_size_or_sections: int | Sequence[int], dim: int = 0
          ) -> tuple[Tensor, ...]:
    """Pieces along ``dim``: of ``split_size`` each (the last may be smaller), or of the
    listed sizes, which must add up to the dimension's size. Each piece is a view (getitem)."""
    d = _dim(dim, x._data.ndim, "split")
    n = x._data.shape[d]
    s = split_size_or_sections
    if isinstance(s, int | np.integer) and not isinstance(s, bool):
        if s <= 0 and n > 0:
            raise RuntimeError(f"split: split_size must be a positive int, got {s} (dimension "
                               f"{d} of shape {list(x._data.shape)} has size {n}).")
        sizes = [min(s, n - a) for a in range(0, n, s)] if n else [0]
    else:
        sizes = list(_ints((s,), "split"))
        if sum(sizes) != n or any(k < 0 for k in sizes):
            raise RuntimeError(
                f"split: split_with_sizes expects split_sizes to sum exactly to {n} (input "
                f"tensor's size at dimension {d}, shape {list(x._data.shape)}), but got "
                f"split_sizes={sizes}. Fix: make the sizes add up to {n}."
            )
    ends = np.cumsum(sizes).tolist()
    return tuple(F.getitem(x, _along(d, x._data.ndim, slice(e - k, e)))
                 for k, e in zip(sizes, ends))


def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """``chunks`` pieces of equal size along ``dim`` (the last may be smaller; fewer pieces
    when the size does not allow that many), as PyTorch."""
    if not isinstance(chunks, int | np.integer) or isinstance(chunks, bool) or chunks <= 0:
        raise RuntimeError(f"chunk: chunks must be a positive int, got {chunks!r}.")
    n = x._data.shape[_dim(dim, x._data.ndim, "chunk")]
    return split(x, max(-(-n // chunks), 1), dim)


def unbind(x: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    """The slices along ``dim``, that dimension removed: ``x.unbind(0)`` is ``tuple(x)``."""
    d = _dim(dim, x._data.ndim, "unbind")
    return tuple(F.getitem(x, _along(d, x._data.ndim, i)) for i in range(x._data.shape[d]))


def narrow(x: Tensor, dim: int, start: int, length: int) -> Tensor:
    """The slice ``start:start+length`` along ``dim`` (a view)."""
    d = _dim(dim, x._data.ndim, "narrow")
    n = x._data.shape[d]
    start = start + n if start < 0 else start
    if not (0 <= start <= n and length >= 0 and start + length <= n):
        raise IndexError(f"narrow: start ({start}) + length ({length}) exceeds dimension "
                         f"size ({n}) of dimension {d} (shape {list(x._data.shape)}).")
    return F.getitem(x, _along(d, x._data.ndim, slice(start, start + length)))


def flip(x: Tensor, dims: int | Sequence[int]) -> Tensor:
    """The values in reverse order along each dimension in ``dims``."""
    dims = (dims,) if isinstance(dims, int | np.integer) else tuple(dims)
    index = [slice(None)] * x._data.ndim
    for d in dims:
        index[_dim(d, x._data.ndim, "flip")] = slice(None, None, -1)
    return F.getitem(x, tuple(index))


# --------------------------------------------------------------------------- by index
def _index_array(index: Any, who: str, ndim: int | None = None) -> np.ndarray:
    arr = index._data if isinstance(index, Tensor) else np.asarray(index)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{who}: expected an integer (int64) index, got dtype {arr.dtype} "
                        f"(shape {arr.shape}). Fix: index.long() or index.to(gg.int64).")
    if ndim is not None and arr.ndim != ndim:
        raise RuntimeError(f"{who}: index tensor must have the same number of dimensions as "
                           f"the input tensor: index shape {list(arr.shape)}, input has "
                           f"{ndim} dimensions.")
    return arr


def _check_range(arr: np.ndarray, size: int, d: int, who: str, shape: tuple) -> None:
    if arr.size and (arr.min() < -size or arr.max() >= size):
        bad = int(arr.max() if arr.max() >= size else arr.min())
        raise IndexError(f"{who}: index {bad} is out of bounds for dimension {d} with size "
                         f"{size} (input shape {list(shape)}). Fix: keep indices in "
                         f"[0, {size - 1}].")


def gather(x: Tensor, dim: int, index: Any) -> Tensor:
    """``out[i][j] = x[i][index[i][j]]`` for dim=1 (any rank, as PyTorch): values picked
    along ``dim`` by an int64 index of the input's rank. The gradient is scatter-added back
    (``ops.gather``)."""
    d = _dim(dim, x._data.ndim, "gather")
    idx = _index_array(index, "gather", max(x._data.ndim, 1))
    for k, (i, n) in enumerate(zip(idx.shape, x._data.shape)):
        if k != d and i > n:
            raise RuntimeError(f"gather: size of index {list(idx.shape)} does not match input "
                               f"{list(x._data.shape)} at dimension {k}: it may be smaller "
                               f"than the input's except at dim {d}, never larger.")
    _check_range(idx, x._data.shape[d] if x._data.ndim else 1, d, "gather", x._data.shape)
    return apply(ops.gather, x, dim=d, index=idx)


def _scatter_index(x: Tensor, dim: int, index: Any, src: Any, who: str
                   ) -> tuple[int, np.ndarray]:
    """``dim`` as an index and the checked int64 ``index`` of a scatter (PyTorch's rules:
    the index has the input's rank, and is no larger than ``src`` in any dimension nor than
    the input outside ``dim``)."""
    d = _dim(dim, x._data.ndim, who)
    idx = _index_array(index, who, max(x._data.ndim, 1))
    src_shape = np.shape(src._data) if isinstance(src, Tensor) else None
    for k, i in enumerate(idx.shape):
        if (k != d and i > x._data.shape[k]) or (src_shape is not None and i > src_shape[k]):
            raise RuntimeError(
                f"{who}: expected index {list(idx.shape)} to be smaller than self "
                f"{list(x._data.shape)} apart from dimension {d} and to be smaller size than "
                f"src {list(src_shape or ())} (PyTorch's rule). Fix: slice the index or "
                f"give a larger src.")
    _check_range(idx, x._data.shape[d] if x._data.ndim else 1, d, who, x._data.shape)
    return d, idx


def _src_region(src: Tensor, idx: np.ndarray) -> Tensor:
    """The part of ``src`` a scatter reads: the index's own extent from the start."""
    if src._data.shape == idx.shape:
        return src
    return F.getitem(src, tuple(slice(0, n) for n in idx.shape))


def scatter_add(x: Tensor, dim: int, index: Any, src: Any) -> Tensor:
    """``x`` with ``src[i][j]`` added at ``[i][index[i][j]]`` (dim=1), repeats summed.
    Composite: index_add, whose gradients are G for ``x`` and G gathered for ``src``."""
    src = as_constant(src, (x,))
    d, idx = _scatter_index(x, dim, index, src, "scatter_add")
    return apply(ops.index_add, x, _src_region(src, idx), index=ops._gather_grid(idx, d))


_SCATTER_REDUCE = {"add": np.add, "multiply": np.multiply}


def scatter(x: Tensor, dim: int, index: Any, src: Any = None, *, value: Any = None,
            reduce: str | None = None) -> Tensor:
    """``x`` with ``src[i][j]`` written at ``[i][index[i][j]]`` (dim=1; a number ``src`` or
    ``value=`` writes that number), as PyTorch: where an index repeats, the last write wins.
    The gradient is G for ``x`` except at the written places (0 there), and G gathered at
    ``index`` for ``src``. ``reduce="add"``/``"multiply"`` combine instead of overwriting
    (no gradient: as in PyTorch, backward through the result raises)."""
    if (src is None) == (value is None):
        raise TypeError("scatter(): give the values to write as src (a tensor or a number) or "
                        "as value= (a number), not both and not neither.")
    src = value if src is None else src
    if isinstance(src, Tensor) and src._data.dtype != x._data.dtype:
        raise RuntimeError(f"scatter(): expected self.dtype to be equal to src.dtype, got "
                           f"{x._data.dtype} and {src._data.dtype}. Fix: convert src first "
                           f"(src.to(x.dtype)).")
    d, idx = _scatter_index(x, dim, index, src, "scatter")
    grid = ops._gather_grid(idx, d)
    region = _src_region(src, idx) if isinstance(src, Tensor) else as_constant(src, (x,))
    out = x._data.copy()
    if reduce is None:
        out[grid] = region._data  # (NumPy assigns in order: the last repeat wins)
        return _scatter_node(x, grid, region, out)
    if reduce not in _SCATTER_REDUCE:
        raise RuntimeError(f"scatter(): reduce argument must be either 'add' or 'multiply', "
                           f"got {reduce!r}.")
    if isinstance(src, Tensor):
        warnings.warn("The reduce argument of torch.scatter with Tensor src is deprecated and "
                      "will be removed in a future PyTorch release. Use torch.scatter_reduce "
                      "instead for more reduction options.", UserWarning, stacklevel=2)
    _SCATTER_REDUCE[reduce].at(out, grid, np.broadcast_to(region._data, idx.shape))
    return record(_SCATTER_REDUCE_OP, (x, region), out, None)


def _no_derivative(grad: Any, out: Any, x: Any, src: Any) -> Any:
    raise RuntimeError(
        "derivative for aten::scatter is not implemented: scatter with reduce= has no "
        "gradient (in PyTorch neither). Fix: reduce='add' is scatter_add, which has one; or "
        "compute the result from tensors that do not require grad (.detach()).")


# Not in the table (no derivative to list): a node, as PyTorch's, that refuses backward.
_SCATTER_REDUCE_OP = ops.Op("scatter_reduce", "no derivative (PyTorch has none either)",
                            lambda x, src: x, (_no_derivative, _no_derivative), domain=None,
                            kind="custom")


def _scatter_node(x: Tensor, grid: tuple, region: Tensor, out: np.ndarray) -> Tensor:
    """The overwriting scatter as a graph: where(written, placed, x), with ``placed`` an
    index_add of ``region`` into zeros (its rule gathers G for ``region``, once per repeat,
    PyTorch's rule). The where node takes ``out`` (last write wins) as its value: index_add
    would sum the repeats, and neither op's rules read a result."""
    written = np.zeros(x._data.shape, dtype=bool)
    written[grid] = True
    if not (x._requires_grad or region._requires_grad) or not is_grad_enabled():
        return Tensor._wrap(out)
    placed = apply(ops.index_add, Tensor._wrap(np.zeros_like(x._data)), region, index=grid)
    return record(ops.where, (Tensor._wrap(written), placed, x), out, None)


def index_add(x: Tensor, dim: int, index: Any, source: Any, *, alpha: Any = 1) -> Tensor:
    """``x`` with ``alpha * source[i]`` added at position ``index[i]`` along ``dim``
    (repeats summed), as PyTorch; the gradients are G for ``x`` and alpha·G at ``index``
    (index_select) for ``source``."""
    d = _dim(dim, x._data.ndim, "index_add")
    idx = _index_array(index, "index_add").reshape(-1)
    source = as_constant(source, (x,))
    want = x._data.shape[:d] + (len(idx),) + x._data.shape[d + 1:]
    if source._data.shape != want and not (x._data.ndim == 0 and source._data.size == 1):
        raise RuntimeError(
            f"index_add(): source has shape {list(source._data.shape)}, but for an input of "
            f"shape {list(x._data.shape)} and {len(idx)} indices along dim {d} it must be "
            f"{list(want)} (the input's shape with dim {d} the number of indices).")
    _check_range(idx, x._data.shape[d] if x._data.ndim else 1, d, "index_add", x._data.shape)
    if alpha != 1:
        source = source * alpha
    return apply(ops.index_add, x, source, index=_along(d, x._data.ndim, idx))


def scatter_(x: Tensor, dim: int, index: Any, src: Any = None, *, value: Any = None,
             reduce: str | None = None) -> Tensor:
    """``scatter`` written into ``x`` (recorded in the graph where PyTorch records it)."""
    return update_(x, lambda old: scatter(old, dim, index, src, value=value, reduce=reduce),
                   "scatter_()")


def scatter_add_(x: Tensor, dim: int, index: Any, src: Any) -> Tensor:
    """``scatter_add`` written into ``x``."""
    return update_(x, lambda old: scatter_add(old, dim, index, src), "scatter_add_()")


def index_add_(x: Tensor, dim: int, index: Any, source: Any, *, alpha: Any = 1) -> Tensor:
    """``index_add`` written into ``x``."""
    return update_(x, lambda old: index_add(old, dim, index, source, alpha=alpha),
                   "index_add_()")


def index_select(x: Tensor, dim: int, index: Any) -> Tensor:
    """The entries at positions ``index`` (a 1-D int tensor) along ``dim``."""
    d = _dim(dim, x._data.ndim, "index_select")
    idx = _index_array(index, "index_select")
    if idx.ndim > 1:
        raise RuntimeError(f"index_select: index must be 1-D (or a scalar), got shape "
                           f"{list(idx.shape)}.")
    _check_range(idx, x._data.shape[d], d, "index_select", x._data.shape)
    return F.getitem(x, _along(d, x._data.ndim, idx.reshape(-1)))


def masked_fill(x: Tensor, mask: Any, value: Any) -> Tensor:
    """``x`` with ``value`` where the bool ``mask`` is True (the two broadcast together).
    Composite: where(mask, value, x), so no gradient flows to the filled places."""
    m = mask._data if isinstance(mask, Tensor) else np.asarray(mask)
    if m.dtype != np.bool_:
        raise RuntimeError(f"masked_fill: only supports boolean masks, but got mask with "
                           f"dtype {m.dtype}. Fix: pass a comparison such as x > 0, or "
                           f"mask.bool().")
    try:
        np.broadcast_shapes(m.shape, x._data.shape)
    except ValueError:
        raise RuntimeError(f"masked_fill: the mask of shape {list(m.shape)} does not "
                           f"broadcast with the tensor's shape {list(x._data.shape)}: aligned "
                           f"from the right, each pair of sizes must be equal or 1.") from None
    if isinstance(value, Tensor) and value._data.ndim:
        raise RuntimeError(f"masked_fill: only supports a 0-dimensional value tensor, got "
                           f"one with shape {list(value._data.shape)}.")
    return F.where(m, as_constant(value, (x,)), x)


# The methods methods.py binds to Tensor, and the functions gg exports.
METHODS = ("view", "view_as", "reshape_as", "contiguous", "expand", "expand_as", "repeat",
           "split", "chunk", "unbind", "narrow", "flip", "gather", "scatter", "scatter_",
           "scatter_add", "scatter_add_", "index_add", "index_add_", "index_select",
           "masked_fill")
FUNCTIONS = ("split", "chunk", "unbind", "narrow", "flip", "gather", "scatter", "scatter_add",
             "index_add", "index_select", "masked_fill")

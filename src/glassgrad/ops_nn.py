"""The op table's entries for convolutional networks: conv2d (and the two products of its
backward), max_pool2d and embedding.

Each is a ``defop`` entry exactly like those of ``ops.py``: forward, one rule per input right
below it, the formula, test cases. They are primitives for speed: a convolution is BLAS
products on the input's sliding windows (im2col; the array code is in ``conv_kernels.py``),
where a composite of getitem/matmul would make one node per kernel position.

The backward of conv2d is two linear maps, which are ops of their own so that a gradient of
a gradient works (``create_graph=True``) with no extra code, as in PyTorch:

- ``conv2d_input(g, w)``, the transposed convolution: the gradient for the input;
- ``conv2d_weight(x, g)``: the gradient for the weight.

The three are closed under differentiation: each one's rules call only the three.

Attributes are normalized by ``nn/functional_conv.py``: ``stride``, ``padding``,
``dilation`` and ``kernel_size`` as ``(height, width)`` pairs of ints, ``groups`` an int.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import conv_kernels, scratch
from .autograd import STATE, _native
from .ops import case, defop, index_add

Pair = tuple[int, int]
_ONE, _ZERO = (1, 1), (0, 0)


# =========================================================================== sliding windows
def out_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool = False) -> int:
    """Number of window positions along one axis (PyTorch's formula; with ``ceil_mode`` a last
    partial window counts if it starts inside the input or its left padding)."""
    span = size + 2 * p - d * (k - 1) - 1
    n = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (n - 1) * s >= size + p:
        n -= 1
    return n


def _padded(x: np.ndarray, padding: Pair, fill: float, extra: Pair = _ZERO) -> np.ndarray:
    """x with ``padding`` rows/columns of ``fill`` around its last two axes (and ``extra``
    more at the bottom/right, for ceil_mode). np.pad is a slow Python wrapper."""
    (ph, pw), (eh, ew) = padding, extra
    if not (ph or pw or eh or ew):
        return x
    h, w = x.shape[-2:]
    out = np.full((*x.shape[:-2], h + 2 * ph + eh, w + 2 * pw + ew), fill, dtype=x.dtype)
    out[..., ph:ph + h, pw:pw + w] = x
    return out


def _windows(xp: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, out_hw: Pair
             ) -> np.ndarray:
    """A read-only view (N, C, OH, OW, kh, kw) of the windows of a padded (N, C, H, W)."""
    n, c, s0, s1, s2, s3 = *xp.shape[:2], *xp.strides
    return as_strided(
        xp, (n, c, *out_hw, *kernel),
        (s0, s1, s2 * stride[0], s3 * stride[1], s2 * dilation[0], s3 * dilation[1]),
        writeable=False,
    )


def _tap(a: np.ndarray, i: int, j: int, out_hw: Pair, stride: Pair, dilation: Pair
         ) -> np.ndarray:
    """The view of a padded (..., H, W) that kernel position (i, j) reads for every output:
    shape (..., OH, OW)."""
    (oh, ow), (sh, sw), (dh, dw) = out_hw, stride, dilation
    return a[..., i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]


def _conv_out_hw(x_hw: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair,
                 dilation: Pair) -> Pair:
    return (out_size(x_hw[0], kernel[0], stride[0], padding[0], dilation[0]),
            out_size(x_hw[1], kernel[1], stride[1], padding[1], dilation[1]))


# The array code (im2col, the products, col2im) is in ``conv_kernels.py``, run over the batch
# in chunks; outputs are (N, O, OH, OW) and columns (N, C, kh, kw, OH, OW).
def _conv_windows(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair
                  ) -> np.ndarray:
    """The windows (N, C, OH, OW, kh, kw) of x padded with zeros, a view."""
    out_hw = _conv_out_hw(x.shape[2:], kernel, stride, padding, dilation)
    return _windows(_padded(x, padding, 0), kernel, stride, dilation, out_hw)


def _to_rows(g: np.ndarray, groups: int) -> np.ndarray:
    """An (N, O, OH, OW) output-shaped array as (groups, O/groups, N·OH·OW)."""
    n, o, oh, ow = g.shape
    return g.transpose(1, 0, 2, 3).reshape(groups, o // groups, n * oh * ow)


# The weight's gradient reads the input's columns, which the forward has just made: while
# grad mode is on, the forward keeps its columns under its own result array (by identity,
# dropped with that array), and the weight's rule, which receives that array as ``out``,
# takes them once instead of copying the windows again (measured: a LeNet step 5% faster).
# Keyed by the result, not the input: an input array may be changed between two calls (as
# finite differences do), a result belongs to one forward call. The columns are kh·kw times
# the input's size, so at most COLUMNS_LIMIT bytes are kept (oldest dropped first): outputs
# held without a backward (predictions collected with grad mode on) cost no more than that.
_COLUMNS: dict[int, tuple[Any, np.ndarray]] = {}
COLUMNS_LIMIT = 64 * 2**20


def _keep_columns(out: np.ndarray, cols: np.ndarray) -> None:
    """Keep ``cols`` (at most COLUMNS_LIMIT bytes) for the weight's gradient of ``out``."""
    kept = sum(entry[1].nbytes for entry in _COLUMNS.values())
    while _COLUMNS and kept + cols.nbytes > COLUMNS_LIMIT:
        kept -= _COLUMNS.pop(next(iter(_COLUMNS)))[1].nbytes
    i = id(out)
    _COLUMNS[i] = (weakref.ref(out, lambda _, i=i: _COLUMNS.pop(i, None)), cols)


def _kept_columns(key: int) -> np.ndarray | None:
    """The columns kept for the result whose ``id`` is ``key`` (the caller holds that result,
    so no other live array has its id; a dead entry's weak reference answers None)."""
    entry = _COLUMNS.pop(key, None)
    return entry[1] if entry is not None and entry[0]() is not None else None


# =========================================================================== conv2d
def _conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: Pair = _ONE,
            padding: Pair = _ZERO, dilation: Pair = _ONE, groups: int = 1) -> np.ndarray:
    win = _conv_windows(x, weight.shape[2:], stride, padding, dilation)
    # keep the columns for the weight's gradient when one may be asked for, within the limit
    keep = STATE.grad_enabled and win.size * win.itemsize <= COLUMNS_LIMIT
    out, cols = conv_kernels.forward(win, weight, bias, groups, keep)
    if cols is not None:
        _keep_columns(out, cols)
    return out


def _conv2d_input(grad: np.ndarray, weight: np.ndarray, size: Pair = _ZERO,
                  stride: Pair = _ONE, padding: Pair = _ZERO, dilation: Pair = _ONE,
                  groups: int = 1) -> np.ndarray:
    """The transposed convolution: every output's gradient spread back over its window."""
    if tuple(stride) == _ONE:
        return conv_kernels.input_runs(grad, weight, size, padding, dilation, groups)
    n, (o, cg, kh, kw), out_hw = grad.shape[0], weight.shape, grad.shape[2:]
    w = weight.reshape(groups, o // groups, -1).transpose(0, 2, 1)
    dcols = (w @ _to_rows(grad, groups)).reshape(groups * cg, kh, kw, n, *out_hw)  # 1 product
    (ph, pw), (h, w) = padding, size
    dxp = np.zeros((groups * cg, n, h + 2 * ph, w + 2 * pw), dtype=dcols.dtype)
    for i in range(kh):  # col2im: one strided add per kernel position
        for j in range(kw):
            _tap(dxp, i, j, out_hw, stride, dilation)[...] += dcols[:, i, j]
    return dxp.transpose(1, 0, 2, 3)[..., ph:ph + h, pw:pw + w]


def _conv2d_weight(x: np.ndarray, grad: np.ndarray, size: Pair = _ONE, stride: Pair = _ONE,
                   padding: Pair = _ZERO, dilation: Pair = _ONE, groups: int = 1
                   ) -> np.ndarray:
    """Σ over every output position of its gradient times its input window."""
    win = _conv_windows(x, size, stride, padding, dilation)
    return conv_kernels.weight_product(grad, groups, win=win)


def _no_bias(w: Any) -> np.ndarray:
    return np.zeros(w.shape[0], dtype=w.dtype)


# The rules: each gradient is one of the three ops, on arrays or (create_graph) Tensors.
def _conv_grad_x(grad: Any, out: Any, x: Any, weight: Any, bias: Any, stride: Pair = _ONE,
                 padding: Pair = _ZERO, dilation: Pair = _ONE, groups: int = 1) -> Any:
    return conv2d_input(grad, weight, size=tuple(x.shape[2:]), stride=stride,
                        padding=padding, dilation=dilation, groups=groups)


def _conv_grad_w(grad: Any, out: Any, x: Any, weight: Any, bias: Any, stride: Pair = _ONE,
                 padding: Pair = _ZERO, dilation: Pair = _ONE, groups: int = 1) -> Any:
    cols = _kept_columns(id(out)) if type(grad) is np.ndarray else None
    if cols is not None:  # the forward's own columns: conv2d_weight without its im2col
        dw = conv_kernels.weight_product(grad, groups, cols=cols)
        scratch.give(cols)  # (only _COLUMNS held them, and it has let go)
        return dw
    return conv2d_weight(x, grad, size=tuple(weight.shape[2:]), stride=stride,
                         padding=padding, dilation=dilation, groups=groups)


def _conv_grad_b(grad: Any, out: Any, x: Any, weight: Any, bias: Any, stride: Pair = _ONE,
                 padding: Pair = _ZERO, dilation: Pair = _ONE, groups: int = 1) -> Any:
    return np.add.reduce(grad, axis=(0, 2, 3))


_CONV_CASES = (
    case((2, 3, 5, 5), (4, 3, 3, 3), (4,)),
    case((1, 2, 6, 7), (3, 2, 2, 3), (3,), stride=(2, 1), padding=(1, 2)),
    case((2, 4, 7, 6), (6, 2, 3, 2), (6,), dilation=(2, 1), groups=2, padding=(1, 0)),
    case((1, 3, 8, 8), (3, 1, 3, 3), (3,), stride=(2, 2), padding=(1, 1), groups=3),
    case((2, 1, 6, 6), (2, 1, 3, 3), (2,), stride=(2, 3), dilation=(1, 2)),  # rows left over
)

conv2d = defop(
    "conv2d",
    ("∂/∂x = conv2d_input(G, w)", "∂/∂w = conv2d_weight(x, G)", "∂/∂b = Σ_{n,h,w} G"),
    _conv2d,
    (_conv_grad_x, _conv_grad_w, _conv_grad_b),
    definition="y[n,o] = b[o] + Σ_c w[o,c] ⋆ x[n,c]",
    latex=(r"\partial/\partial x = \mathrm{conv2d\_input}(G, w)",
           r"\partial/\partial w = \mathrm{conv2d\_weight}(x, G)",
           r"\partial/\partial b = \sum_{n,h,w} G"),
    # (the weight's rule looks the forward's columns up by ``id(out)``, which no in-place
    # write changes: ``conv → ReLU(inplace=True)`` goes backward, as in PyTorch)
    reads=(("weight",), ("x",), ()),
    kind="custom",
    cases=_CONV_CASES,
    why="speed: BLAS products over the input's windows (im2col) instead of a node per "
        "kernel position",
)


def _convt_grad_g(grad: Any, out: Any, g: Any, weight: Any, size: Pair = _ZERO,
                  stride: Pair = _ONE, padding: Pair = _ZERO, dilation: Pair = _ONE,
                  groups: int = 1) -> Any:
    return conv2d(grad, weight, _no_bias(weight), stride=stride, padding=padding,
                  dilation=dilation, groups=groups)


def _convt_grad_w(grad: Any, out: Any, g: Any, weight: Any, size: Pair = _ZERO,
                  stride: Pair = _ONE, padding: Pair = _ZERO, dilation: Pair = _ONE,
                  groups: int = 1) -> Any:
    return conv2d_weight(grad, g, size=tuple(weight.shape[2:]), stride=stride,
                         padding=padding, dilation=dilation, groups=groups)


conv2d_input = defop(
    "conv2d_input",
    ("∂/∂G = conv2d(H, w)", "∂/∂w = conv2d_weight(H, G)"),
    _conv2d_input,
    (_convt_grad_g, _convt_grad_w),
    definition="the transposed convolution, ∂conv2d/∂x applied to G",
    latex=(r"\partial/\partial G = \mathrm{conv2d}(H, w)",
           r"\partial/\partial w = \mathrm{conv2d\_weight}(H, G)"),
    reads=(("weight",), ("g",)),  # (the weight's rule reads only weight.shape)
    kind="custom",
    cases=tuple(case((x[0], w[0], *_conv_out_hw(x[2:], w[2:], a.get("stride", _ONE),
                                                 a.get("padding", _ZERO),
                                                 a.get("dilation", _ONE))),
                     w, size=x[2:], **a) for (x, w, _), a in _CONV_CASES),
    why="the backward of conv2d for its input; an op so that conv2d has a second derivative",
)


def _convw_grad_x(grad: Any, out: Any, x: Any, g: Any, size: Pair = _ONE,
                  stride: Pair = _ONE, padding: Pair = _ZERO, dilation: Pair = _ONE,
                  groups: int = 1) -> Any:
    return conv2d_input(g, grad, size=tuple(x.shape[2:]), stride=stride, padding=padding,
                        dilation=dilation, groups=groups)


def _convw_grad_g(grad: Any, out: Any, x: Any, g: Any, size: Pair = _ONE,
                  stride: Pair = _ONE, padding: Pair = _ZERO, dilation: Pair = _ONE,
                  groups: int = 1) -> Any:
    return conv2d(x, grad, _no_bias(grad), stride=stride, padding=padding,
                  dilation=dilation, groups=groups)


conv2d_weight = defop(
    "conv2d_weight",
    ("∂/∂x = conv2d_input(G, V)", "∂/∂G = conv2d(x, V)"),
    _conv2d_weight,
    (_convw_grad_x, _convw_grad_g),
    definition="Σ over output positions of G times the input window, ∂conv2d/∂w applied to G",
    latex=(r"\partial/\partial x = \mathrm{conv2d\_input}(G, V)",
           r"\partial/\partial G = \mathrm{conv2d}(x, V)"),
    reads=(("g",), ("x",)),  # (the input's rule reads only x.shape)
    kind="custom",
    cases=tuple(case(x, (x[0], w[0], *_conv_out_hw(x[2:], w[2:], a.get("stride", _ONE),
                                                    a.get("padding", _ZERO),
                                                    a.get("dilation", _ONE))),
                     size=w[2:], **a) for (x, w, _), a in _CONV_CASES),
    why="the backward of conv2d for its weight; an op so that conv2d has a second derivative",
)


# =========================================================================== max_pool2d
def _pool_padded(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair,
                 dilation: Pair, ceil_mode: bool) -> tuple[np.ndarray, Pair]:
    """x padded with −∞ (never a window's maximum), and the output's (OH, OW)."""
    out_hw = tuple(out_size(x.shape[2 + i], kernel_size[i], stride[i], padding[i],
                            dilation[i], ceil_mode) for i in range(2))
    # ceil_mode: the last window may reach past the padding; −∞ there too
    extra = tuple(max(0, (out_hw[i] - 1) * stride[i] + dilation[i] * (kernel_size[i] - 1)
                      + 1 - x.shape[2 + i] - 2 * padding[i]) for i in range(2))
    return _padded(x, padding, -np.inf, extra), out_hw


def _pool_windows(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair,
                  dilation: Pair, ceil_mode: bool) -> np.ndarray:
    """(N, C, OH, OW, kh, kw) windows of x padded with −∞."""
    xp, out_hw = _pool_padded(x, kernel_size, stride, padding, dilation, ceil_mode)
    return _windows(xp, kernel_size, stride, dilation, out_hw)


def _max_pool2d(x: np.ndarray, kernel_size: Pair = (2, 2), stride: Pair = (2, 2),
                padding: Pair = _ZERO, dilation: Pair = _ONE, ceil_mode: bool = False
                ) -> np.ndarray:
    out_hw = _tiled(x, kernel_size, stride, padding, dilation, ceil_mode)
    if out_hw is not None:
        return _max_tiles(x, kernel_size, out_hw)
    win = _pool_windows(x, kernel_size, stride, padding, dilation, ceil_mode)
    # one np.maximum per kernel position over the whole output: faster than a reduction
    # over the two short window axes of a strided view
    out = win[..., 0, 0].copy()
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            if i or j:
                np.maximum(out, win[..., i, j], out=out)
    return out


# Fast path: windows that tile the input (kernel == stride, no padding or dilation, no partial
# window), LeNet's and most tutorials' pooling. No padded copy, and the windows never overlap.
def _tiled(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair,
           ceil_mode: bool) -> Pair | None:
    """(OH, OW) if the windows tile x (rows or columns left over at the end are skipped, as
    in the general path), else None."""
    if tuple(kernel_size) != tuple(stride) or any(padding) or tuple(dilation) != _ONE:
        return None
    (kh, kw), (h, w) = kernel_size, x.shape[2:]
    if ceil_mode and (h % kh or w % kw):  # a last partial window
        return None
    return h // kh, w // kw


def _tile_tap(a: np.ndarray, i: int, j: int, kernel_size: Pair, out_hw: Pair) -> np.ndarray:
    """The view (N, C, OH, OW) of element (i, j) of every window."""
    (kh, kw), (oh, ow) = kernel_size, out_hw
    return a[..., i:oh * kh:kh, j:ow * kw:kw]


# max_pool2d's rule over tiling windows in one C pass where the extension is built
# (_rules.c); it declines (NotImplemented) all but contiguous float arrays of one dtype
_max_tiles_grad_c = None if _native is None else _native.max_tiles_grad


def _max_tiles(x: np.ndarray, kernel_size: Pair, out_hw: Pair) -> np.ndarray:
    """Each window's maximum."""
    out = np.empty((*x.shape[:2], *out_hw), dtype=x.dtype)
    _max_tiles_into(out, x, kernel_size)
    return out


def _max_tiles_into(out: np.ndarray, x: np.ndarray, kernel_size: Pair) -> None:
    """Along the rows first, then across them (fewer passes than one per kernel position).
    Each np.maximum keeps its first argument at a tie, so the value kept, down to the sign of
    a zero, is the window's first maximum, as in the general path."""
    (kh, kw), (oh, ow) = kernel_size, out.shape[2:]
    rows = x[..., :oh * kh, 0:ow * kw:kw].copy()  # (N, C, OH·kh, OW)
    for j in range(1, kw):
        np.maximum(rows, x[..., :oh * kh, j:ow * kw:kw], out=rows)
    out[...] = rows[..., 0::kh, :]
    for i in range(1, kh):
        np.maximum(out, rows[..., i::kh, :], out=out)


def _max_tiles_grad(grad: np.ndarray, out: np.ndarray, x: np.ndarray, kernel_size: Pair,
                    out_hw: Pair) -> np.ndarray:
    """The rule for tiling windows: each element of a window is written once (no scatter, no
    add), its gradient where it is the window's first maximum, else 0."""
    dx = np.empty(x.shape, dtype=grad.dtype)
    _max_tiles_grad_into(dx, grad, out, x, kernel_size, out_hw)
    return dx


def _max_tiles_grad_into(dx: np.ndarray, grad: np.ndarray, out: np.ndarray, x: np.ndarray,
                         kernel_size: Pair, out_hw: Pair) -> None:
    (kh, kw), (oh, ow) = kernel_size, out_hw
    if _max_tiles_grad_c is not None and grad.shape[2:] == (oh, ow) \
            and _max_tiles_grad_c(dx, grad, out, x, kh, kw) is not NotImplemented:
        return  # (one C pass, these bits: _rules.c)
    dx[..., oh * kh:, :] = 0  # rows and columns no window covers
    dx[..., :, ow * kw:] = 0
    free = np.ones(out.shape, dtype=bool)  # outputs whose first maximum is not yet found
    hit = np.empty(out.shape, dtype=bool)
    for i in range(kh):
        for j in range(kw):
            np.equal(_tile_tap(x, i, j, kernel_size, out_hw), out, out=hit)
            hit &= free
            free ^= hit  # (hit ⊂ free)
            np.multiply(grad, hit, out=_tile_tap(dx, i, j, kernel_size, out_hw))
    dx += 0  # a negative gradient times False is −0.0; the general path (and PyTorch) has 0


def _argmax_index(x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair,
                  dilation: Pair, ceil_mode: bool) -> tuple[np.ndarray, ...]:
    """For each output, the position in x of its window's first maximum (PyTorch's choice
    at ties), as an index tuple (n, c, row, column) for index_add."""
    win = _pool_windows(x, kernel_size, stride, padding, dilation, ceil_mode)
    best = win[..., 0, 0].copy()
    di = np.zeros(best.shape, dtype=np.intp)
    dj = np.zeros(best.shape, dtype=np.intp)
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            if i or j:
                v = win[..., i, j]
                # strictly: the first maximum keeps the gradient; a NaN always takes it
                # (the window's maximum is NaN, and PyTorch picks its last NaN)
                better = (v > best) | np.isnan(v)
                np.copyto(best, v, where=better)
                di[better], dj[better] = i, j
    n, c, oh, ow = best.shape
    rows = np.arange(oh)[:, None] * stride[0] - padding[0] + di * dilation[0]
    cols = np.arange(ow) * stride[1] - padding[1] + dj * dilation[1]
    return (np.arange(n)[:, None, None, None], np.arange(c)[:, None, None], rows, cols)


def _max_pool_scatter(grad: np.ndarray, out: np.ndarray, x: np.ndarray, kernel_size: Pair,
                      stride: Pair, padding: Pair, dilation: Pair, ceil_mode: bool
                      ) -> np.ndarray:
    """The rule on arrays: one masked pass per kernel position, each output's gradient to
    the first position equal to its maximum (measured on 64×6×28×28: 0.6 ms, against 12 ms
    for the index arrays and np.add.at of the general path)."""
    xp, out_hw = _pool_padded(x, kernel_size, stride, padding, dilation, ceil_mode)
    dxp = np.zeros(xp.shape, dtype=grad.dtype)
    free = np.ones(out.shape, dtype=bool)  # outputs whose maximum is not yet found
    hit = np.empty(out.shape, dtype=bool)
    for i in range(kernel_size[0]):
        for j in range(kernel_size[1]):
            np.equal(_tap(xp, i, j, out_hw, stride, dilation), out, out=hit)
            hit &= free
            free &= ~hit
            # (windows may overlap, so add; within one position the outputs never collide)
            _tap(dxp, i, j, out_hw, stride, dilation)[...] += grad * hit
    (ph, pw), (h, w) = padding, x.shape[2:]
    return dxp[..., ph:ph + h, pw:pw + w]


def _nan_windows_grad(dx: np.ndarray, grad: np.ndarray, out: np.ndarray, x: np.ndarray,
                      kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair,
                      ceil_mode: bool) -> None:
    """Add the gradient of each window whose maximum is NaN at its last NaN, as PyTorch does
    (the masks above find no element equal to NaN). Only runs when some maximum is NaN."""
    nan = np.isnan(out)
    index = np.broadcast_arrays(*_argmax_index(x, kernel_size, stride, padding, dilation,
                                               ceil_mode))
    np.add.at(dx, tuple(i[nan] for i in index), grad[nan])


def _max_pool_grad(grad: Any, out: Any, x: Any, kernel_size: Pair = (2, 2),
                   stride: Pair = (2, 2), padding: Pair = _ZERO, dilation: Pair = _ONE,
                   ceil_mode: bool = False) -> Any:
    if type(grad) is np.ndarray:
        out_hw = _tiled(x, kernel_size, stride, padding, dilation, ceil_mode)
        if out_hw is not None:
            dx = _max_tiles_grad(grad, out, x, kernel_size, out_hw)
        else:
            dx = _max_pool_scatter(grad, out, x, kernel_size, stride, padding, dilation,
                                   ceil_mode)
        if out.dtype.kind == "f" and np.isnan(np.add.reduce(out, axis=None)):
            _nan_windows_grad(dx, grad, out, x, kernel_size, stride, padding, dilation,
                              ceil_mode)
        return dx
    # Tensors (create_graph): a scatter by index_add, itself differentiable
    index = _argmax_index(np.asarray(x), kernel_size, stride, padding, dilation, ceil_mode)
    return index_add(np.zeros(x.shape, dtype=x.dtype), grad, index=index)


max_pool2d = defop(
    "max_pool2d",
    "y = max over each window of x:  ∂y/∂x = 1 at the window's (first) maximum, else 0",
    _max_pool2d,
    _max_pool_grad,
    latex=r"\partial y/\partial x = 1 \text{ at the window's (first) maximum, else } 0",
    reads=("out", "x"),
    kind="custom",
    cases=(
        case((2, 3, 4, 6)),
        case((1, 2, 7, 5), kernel_size=(3, 2), stride=(2, 1), padding=(1, 1)),
        case((2, 1, 6, 6), kernel_size=(2, 2), stride=(1, 1)),  # windows overlap
        case((1, 2, 7, 7), kernel_size=(2, 3), stride=(2, 2), dilation=(2, 1)),
        case((1, 1, 5, 5), kernel_size=(2, 2), stride=(2, 2), ceil_mode=True),
    ),
    why="speed: one np.maximum per kernel position, and the gradient is one scatter",
)


# =========================================================================== embedding
def _embedding(weight: np.ndarray, indices: np.ndarray, padding_idx: int | None = None
               ) -> np.ndarray:
    return weight.take(indices, axis=0)


def _embedding_grad(grad: Any, out: Any, weight: Any, indices: Any,
                    padding_idx: int | None = None) -> Any:
    idx = np.asarray(indices)
    if padding_idx is not None:  # the padding row takes no gradient (PyTorch)
        grad = grad * (idx != padding_idx)[..., None].astype(weight.dtype)
    return index_add(np.zeros(weight.shape, dtype=weight.dtype), grad, index=idx)


embedding = defop(
    "embedding",
    ("y = W[i]:  ∂y/∂W adds G to row i (summed where i repeats; none for padding_idx)",
     None),
    _embedding,
    (_embedding_grad, None),
    latex=(r"\partial y/\partial W: G \text{ added to row } i", None),
    reads=(("indices",), None),  # (the weight's rule reads only its shape and dtype)
    kind="custom",
    # (padding_idx is PyTorch's convention, not a derivative, so finite differences cannot
    # check it: tests/test_conv_layers.py compares it with PyTorch)
    cases=(case((5, 3), (4,)), case((6, 4), (2, 3)), case((6, 4), (3, 5))),
    class_inputs=(1,),
    why="padding_idx: its row takes no gradient, which getitem cannot say",
)

"""The NumPy kernels of conv2d and of its two backward products, run over the batch in chunks.

``ops_nn.py`` holds the op table's entries (formulas, rules, cases); this file holds the array
code they call:

- ``forward``: each sample's windows copied into columns ``(C·kh·kw, OH·OW)`` (im2col), one
  product with the weight per sample (per group), the bias added in place;
- ``weight_product``: ``Σₙ Gₙ colsₙᵀ``, one product per sample, from the forward's kept
  columns (or the input's windows copied again);
- ``input_runs``: the transposed convolution at stride 1 (one product, then one contiguous
  add per kernel position).

Why chunks of the batch. A whole batch's columns are megabytes (LeNet's first convolution:
5 MB), written out and read back; a chunk's columns (about ``CHUNK_BYTES``, a core's L2
cache) are read back while still in the cache. Measured on a LeNet step against the
earlier whole-batch kernels, in one process alternating the two: 0.95× their time with
chunks of 2 MB, 1.01× with a single chunk holding the whole batch.

Everything here runs on the calling thread; only the products use BLAS's threads. Splitting
the passes over the batch across a pool of Python threads was measured and removed: handing
work to another thread and waiting for it took 110 µs on the 2-core virtual machines this
library is tested on, more than most passes take, and a LeNet step ran 8.5% slower with the
pool than without.

Layouts: columns are ``(N, C, kh, kw, OH, OW)``, so each sample's are ``(C·kh·kw, OH·OW)``
and every copy runs along OW, contiguous on both sides; outputs are ``(N, O, OH, OW)``,
C-contiguous. The chunks are chosen from the sizes alone, so results are the same from run
to run; the output and the input's gradient are also the same whatever the chunk size (each
sample's product has the same shapes), the weight's gradient to float rounding (it adds one
partial sum per chunk, in chunk order).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import scratch
from .autograd import _native

_im2col = None if _native is None else _native.im2col

Pair = tuple[int, int]
CHUNK_BYTES = 2**21  # a chunk's columns, about the size of a core's L2 cache


def chunk_size(n: int, sample_bytes: int) -> int:
    """Samples per chunk: about CHUNK_BYTES of columns, from the sizes alone. Several chunks
    come in multiples of four, so that they are of even sizes for the usual batch sizes
    (LeNet's 64 makes 4 chunks of 16 at its first convolution, the setting measured)."""
    chunks = -(-n * sample_bytes // CHUNK_BYTES)
    if chunks > 1:
        chunks = -(-chunks // 4) * 4
    return max(1, -(-n // max(1, min(chunks, n))))


def over_chunks(fn: Callable[[int, int], None], n: int, per: int) -> None:
    """``fn(start, stop)`` for each chunk of ``per`` samples of ``range(n)``, in order."""
    for start in range(0, n, per):
        fn(start, min(n, start + per))


def im2col_into(cols: np.ndarray, win: np.ndarray) -> None:
    """Copy the windows ``win`` (b, C, OH, OW, kh, kw) into ``cols`` (b, C, kh, kw, OH, OW):
    one C loop of row copies where the extension is built (``_backward.im2col``; NumPy's
    strided copy pays a per-row overhead on rows of OW elements: LeNet's second
    convolution, 484 against 287 µs), else NumPy's copy."""
    if _im2col is None or _im2col(cols, win) is NotImplemented:
        np.copyto(cols, win.transpose(0, 1, 4, 5, 2, 3))


def forward(win: np.ndarray, weight: np.ndarray, bias: np.ndarray, groups: int, keep: bool
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """conv2d of the windows ``win`` (N, C, OH, OW, kh, kw): the output (N, O, OH, OW), and,
    if ``keep``, the whole batch's columns (a scratch array, for ``weight_product``; hand it
    back with ``scratch.give``). Without ``keep`` each chunk's columns are a scratch array
    reused by the next chunk."""
    n, c, oh, ow, kh, kw = win.shape
    o, p = weight.shape[0], oh * ow
    out = np.empty((n, o, oh, ow), dtype=np.result_type(weight, win))
    w = weight.reshape(groups, o // groups, -1)
    b = bias.reshape(o, 1)
    kept = scratch.take((n, c, kh, kw, oh, ow), win.dtype) if keep else None

    def chunk(s: int, e: int) -> None:
        cols = kept[s:e] if kept is not None else scratch.take((e - s, c, kh, kw, oh, ow),
                                                                win.dtype)
        im2col_into(cols, win[s:e])
        rows = out[s:e].reshape(e - s, groups, o // groups, p)
        np.matmul(w, cols.reshape(e - s, groups, -1, p), out=rows)  # a product per sample
        if kept is None:
            scratch.give(cols)
        rows = out[s:e].reshape(e - s, o, p)
        np.add(rows, b, out=rows)

    over_chunks(chunk, n, chunk_size(n, c * kh * kw * p * win.itemsize))
    return out, kept


def weight_product(grad: np.ndarray, groups: int, *, cols: np.ndarray | None = None,
                   win: np.ndarray | None = None) -> np.ndarray:
    """Σ over samples of grad · colsᵀ: the weight's gradient (O, C/groups, kh, kw), from the
    output's gradient ``grad`` (N, O, OH, OW) and either the forward's kept columns ``cols``
    (N, C, kh, kw, OH, OW) or the input's windows ``win`` (N, C, OH, OW, kh, kw), copied
    into columns a chunk at a time. (Keeping the forward's columns made a LeNet step 5%
    faster than copying them again here, measured in one process alternating the two.)"""
    n, o = grad.shape[:2]
    c, kh, kw, oh, ow = cols.shape[1:] if cols is not None else (
        win.shape[1], *win.shape[4:], *win.shape[2:4])
    k, p = c // groups * kh * kw, oh * ow
    dtype = np.result_type(grad, cols if cols is not None else win)
    per = chunk_size(n, c * kh * kw * p * np.dtype(dtype).itemsize)
    partial = np.empty((-(-n // per), groups, k, o // groups), dtype=dtype)

    def chunk(s: int, e: int) -> None:
        if cols is not None:
            part = cols[s:e]
        else:
            part = scratch.take((e - s, c, kh, kw, oh, ow), win.dtype)
            im2col_into(part, win[s:e])
        g = grad[s:e].reshape(e - s, groups, o // groups, p)
        # computed transposed, (k, O/groups) per sample: with the long OH·OW axis contiguous
        # in the first operand (measured on 16 samples of LeNet's two convolutions: 64 and
        # 102 µs, against 57 and 169 µs the other way round)
        prod = scratch.take((e - s, groups, k, o // groups), dtype)
        np.matmul(part.reshape(e - s, groups, k, p), g.transpose(0, 1, 3, 2), out=prod)
        if cols is None:
            scratch.give(part)
        np.add.reduce(prod, axis=0, out=partial[s // per])
        scratch.give(prod)

    over_chunks(chunk, n, per)
    dwt = np.add.reduce(partial, axis=0)  # (groups, k, O/groups), in chunk order
    return dwt.transpose(0, 2, 1).reshape(o, c // groups, kh, kw)


def input_runs(grad: np.ndarray, weight: np.ndarray, size: Pair, padding: Pair,
               dilation: Pair, groups: int) -> np.ndarray:
    """The transposed convolution at stride 1: the input's gradient (N, C, H, W), a view.

    The input's gradient lives in ``flat``, one padded plane (Hp·Wp) per (channel, sample)
    followed by (kw − 1)·dw elements of slack, all planes one after the other. Kernel position
    (i, j) adds its contribution to every plane at once, as one contiguous 1-D add at offset
    i·dh·Wp + j·dw: the output's gradient is widened with zeros to the padded width Wp and to
    the plane's length, so each product row lines up with its plane and its zeros add nothing
    (also where a row reaches past its plane, into the slack or the next plane). Measured on
    LeNet's second convolution: 1.1 ms, against 2.1 for one add per (sample, channel) row."""
    if groups > 1:  # independent convolutions, one per group
        og = weight.shape[0] // groups
        return np.concatenate([
            input_runs(grad[:, g * og:(g + 1) * og], weight[g * og:(g + 1) * og], size,
                       padding, dilation, 1)
            for g in range(groups)], axis=1)
    n, (o, c, kh, kw), (oh, ow) = grad.shape[0], weight.shape, grad.shape[2:]
    (ph, pw), (h, w), (dh, dw) = padding, size, dilation
    hp, wp = h + 2 * ph, w + 2 * pw
    plane = hp * wp
    ps = plane + (kw - 1) * dw
    dtype = np.result_type(grad, weight)
    wide = scratch.take((o, n, ps), dtype)
    wide[..., oh * wp:] = 0
    rows = wide[..., :oh * wp].reshape(o, n, oh, wp)
    rows[..., ow:] = 0
    rows[..., :ow] = grad.transpose(1, 0, 2, 3)
    # the product's rows in (i, j, channel) order: each kernel position's are one block
    wt = weight.transpose(2, 3, 1, 0).reshape(kh * kw * c, o)
    taps = scratch.take((kh * kw, c * n * ps), dtype)
    np.matmul(wt, wide.reshape(o, n * ps), out=taps.reshape(kh * kw * c, n * ps))
    scratch.give(wide)
    size_ = c * n * ps
    flat = np.zeros(size_ + (kh - 1) * dh * wp + (kw - 1) * dw, dtype=dtype)

    for i in range(kh):
        for j in range(kw):
            off = i * dh * wp + j * dw
            flat[off:off + size_] += taps[i * kw + j]
    scratch.give(taps)
    dxp = flat[:size_].reshape(c, n, ps)[..., :plane].reshape(c, n, hp, wp)
    return dxp.transpose(1, 0, 2, 3)[..., ph:ph + h, pw:pw + w]

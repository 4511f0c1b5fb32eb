"""The numba back end's kernels: the op table's forwards and rules as explicit loops, which
``numba_backend.py`` calls from one generated ``@numba.njit`` step. Each computes what the op
table's function computes, to float rounding (sums run in order, not NumPy's pairwise sums;
a small matrix product is three loops, not BLAS). ``tests/test_compile_numba.py`` checks
them through whole steps against the NumPy replay.

Elementwise kernels take C-contiguous arrays of one float dtype (the back end only emits
them for such lines) and return a fresh array: a replay never writes over its inputs. Those
whose name ends in ``_`` write over their first argument instead, an array the step made and
nothing reads afterwards (``fusion_plan.fusions``, on ``passes.in_place``'s proof). A
matrix product has three kernels: ``matmul_loops`` for small shapes (a call into BLAS costs
more than the arithmetic there) and, for large ones, ``matmul_blas``: NumPy's own OpenBLAS,
called by address (``blas.gemm_address``, registered with LLVM under a fixed name, so the
machine code numba caches stays valid in every process), the same library and threads as
every ``@`` in the program. Where that library is not found, ``matmul_dot`` (numba's
``np.dot``, which calls SciPy's BLAS: a second pool of threads, which fights NumPy's when a
program mixes the two). The back end picks one per line from the recorded shapes
(``numba_backend.LOOPS_MAX``) and ``NUMPY_BLAS``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    import numba
except ImportError:  # the module stays importable (doctest collection); the back end refuses
    numba = None

from .. import blas


def njit(fn: Any) -> Any:
    """``fn`` compiled by numba, its machine code cached on disk (``__pycache__``, or numba's
    user cache directory where that is read-only): a new process loads the kernels instead of
    compiling them again, and compiles only the generated step."""
    return fn if numba is None else numba.njit(cache=True)(fn)


# ------------------------------------------------------------------ elementwise, one input
@njit
def tanh(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    o, xf = out.reshape(-1), x.reshape(-1)
    for i in range(o.size):
        o[i] = np.tanh(xf[i])
    return out


@njit
def tanh_grad(grad: np.ndarray, out: np.ndarray) -> np.ndarray:
    r = np.empty_like(out)
    rf, g, o = r.reshape(-1), grad.reshape(-1), out.reshape(-1)
    for i in range(rf.size):
        rf[i] = g[i] * (1 - o[i] * o[i])
    return r


@njit
def relu(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    o, xf = out.reshape(-1), x.reshape(-1)
    for i in range(o.size):
        v = xf[i]
        o[i] = 0 if v < 0 else v  # (a NaN stays NaN, as np.maximum keeps it)
    return out


@njit
def relu_grad(grad: np.ndarray, out: np.ndarray) -> np.ndarray:
    r = np.empty_like(out)
    rf, g, o = r.reshape(-1), grad.reshape(-1), out.reshape(-1)
    for i in range(rf.size):
        rf[i] = g[i] if o[i] > 0 else g[i] * 0  # (g·0: a NaN gradient stays NaN)
    return r


@njit
def relu_(x: np.ndarray) -> np.ndarray:
    """relu written over ``x`` (the step's own array, dead afterwards: ``passes.in_place``)."""
    xf = x.reshape(-1)
    for i in range(xf.size):
        v = xf[i]
        xf[i] = 0 if v < 0 else v
    return x


@njit
def bias_relu_(x: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """relu(x + bias) written over ``x``, a linear layer's product without its bias: the
    bias add and the relu in one pass (the layer's result is read by the relu alone)."""
    n, m = x.shape
    for i in range(n):
        for j in range(m):
            v = x[i, j] + bias[j]
            x[i, j] = 0 if v < 0 else v
    return x


@njit
def relu_grad_sums(grad: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """relu's rule, and the column sums of its result, which the linear layer below takes
    as its bias gradient, for a ``grad`` read again later: ``relu_grad_sums_`` on a copy."""
    return relu_grad_sums_(grad.copy(), out)


@njit
def relu_grad_sums_(grad: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """relu's rule written over ``grad`` (dead afterwards: ``passes.in_place``), and the
    column sums of the result, which the linear layer below takes as its bias gradient: one
    pass instead of two. (Not a kernel with an output argument that may be ``grad``: LLVM
    could not tell whether the two alias, and the loop ran four times slower.)"""
    n, m = grad.shape
    sums = np.zeros(m, grad.dtype)
    for i in range(n):
        for j in range(m):
            g = grad[i, j]
            v = g if out[i, j] > 0 else g * 0
            grad[i, j] = v
            sums[j] += v
    return grad, sums


@njit
def relu_grad_(grad: np.ndarray, out: np.ndarray) -> np.ndarray:
    """relu's rule written over ``grad`` (dead afterwards: ``passes.in_place``)."""
    g, o = grad.reshape(-1), out.reshape(-1)
    for i in range(g.size):
        if not o[i] > 0:
            g[i] = g[i] * 0
    return grad


@njit
def sigmoid(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    o, xf = out.reshape(-1), x.reshape(-1)
    for i in range(o.size):
        o[i] = 0.5 * (1 + np.tanh(0.5 * xf[i]))  # the op table's formula: never overflows
    return out


@njit
def sigmoid_grad(grad: np.ndarray, out: np.ndarray) -> np.ndarray:
    r = np.empty_like(out)
    rf, g, o = r.reshape(-1), grad.reshape(-1), out.reshape(-1)
    for i in range(rf.size):
        rf[i] = g[i] * o[i] * (1 - o[i])
    return r


@njit
def exp(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    o, xf = out.reshape(-1), x.reshape(-1)
    for i in range(o.size):
        o[i] = np.exp(xf[i])
    return out


@njit
def times(grad: np.ndarray, out: np.ndarray) -> np.ndarray:
    """grad·out: exp's rule."""
    r = np.empty_like(out)
    rf, g, o = r.reshape(-1), grad.reshape(-1), out.reshape(-1)
    for i in range(rf.size):
        rf[i] = g[i] * o[i]
    return r


# ------------------------------------------------------------------ products
@njit
def matmul_loops(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for 2-D a (n, k) and b (k, m), of any strides (a transpose is a view)."""
    n, k = a.shape
    m = b.shape[1]
    out = np.empty((n, m), a.dtype)
    for i in range(n):
        for j in range(m):
            s = a[i, 0] * b[0, j]
            for t in range(1, k):
                s += a[i, t] * b[t, j]
            out[i, j] = s
    return out


def _register_numpy_blas() -> bool:
    """Make NumPy's OpenBLAS gemm callable from kernels as ``glassgrad_[sd]gemm64``: whether
    it could (numba installed, NumPy's BLAS located with 64-bit integers)."""
    if numba is None:
        return False
    addresses = blas.gemm_addresses()
    if addresses is None:
        return False
    import llvmlite.binding as llvm  # noqa: PLC0415  (numba's own dependency)

    for letter, address in zip("sd", addresses):
        llvm.add_symbol(f"glassgrad_{letter}gemm64", address)
    return True


NUMPY_BLAS = _register_numpy_blas()

if numba is not None:
    _I = numba.types.int64  # cblas_?gemm(order, transA, transB, m, n, k, alpha, A, lda, B, ldb,
    _P = numba.types.intp  # beta, C, ldc): enums are C ints; the arrays' addresses pass as intp
    _C = numba.types.intc
    _sgemm = numba.types.ExternalFunction("glassgrad_sgemm64", numba.types.void(
        _C, _C, _C, _I, _I, _I, numba.types.float32, _P, _I, _P, _I, numba.types.float32, _P, _I))
    _dgemm = numba.types.ExternalFunction("glassgrad_dgemm64", numba.types.void(
        _C, _C, _C, _I, _I, _I, numba.types.float64, _P, _I, _P, _I, numba.types.float64, _P, _I))


@njit
def _layout(a: np.ndarray) -> tuple[int, int]:
    """(transpose flag, leading dimension) of a 2-D array BLAS reads in place, row-major, as
    ``blas._layout``; (0, 0) when it cannot."""
    rows, cols = a.shape
    s0, s1 = a.strides
    size = a.itemsize
    if s1 == size or cols == 1:
        ld = s0 // size if rows > 1 else cols
        if s0 % size == 0 and ld >= cols:
            return 111, max(ld, 1)
    if s0 == size or rows == 1:
        ld = s1 // size if cols > 1 else rows
        if s1 % size == 0 and ld >= rows:
            return 112, max(ld, 1)
    return 0, 0


@njit
def gemm_into(alpha: float, a: np.ndarray, b: np.ndarray, beta: float, c: np.ndarray) -> None:
    """c ← α·a@b + β·c on NumPy's BLAS (``NUMPY_BLAS`` must be True), for a C-contiguous ``c``
    of the kernel's own and 2-D ``a``, ``b`` of any strides (copied if BLAS cannot read them);
    no dimension is 0 (``LOOPS_MAX`` sends those to the loops)."""
    m, n = c.shape
    k = a.shape[1]
    ta, lda = _layout(a)
    if ta == 0:
        a = np.ascontiguousarray(a)
        ta, lda = 111, k
    tb, ldb = _layout(b)
    if tb == 0:
        b = np.ascontiguousarray(b)
        tb, ldb = 111, n
    if c.itemsize == 4:
        _sgemm(101, ta, tb, m, n, k, alpha, a.ctypes.data, lda, b.ctypes.data, ldb, beta,
               c.ctypes.data, n)
    else:
        _dgemm(101, ta, tb, m, n, k, alpha, a.ctypes.data, lda, b.ctypes.data, ldb, beta,
               c.ctypes.data, n)


@njit
def matmul_blas(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b on NumPy's BLAS (``NUMPY_BLAS``)."""
    out = np.empty((a.shape[0], b.shape[1]), a.dtype)
    gemm_into(1.0, a, b, 0.0, out)
    return out


@njit
def _span(a: np.ndarray) -> tuple[int, int]:
    """The bytes ``a`` may touch: [first, last)."""
    lo = hi = a.ctypes.data
    for n, st in zip(a.shape, a.strides):
        if n == 0:
            return lo, lo
        if st < 0:
            lo += (n - 1) * st
        else:
            hi += (n - 1) * st
    return lo, hi + a.itemsize


@njit
def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    a0, a1 = _span(a)
    b0, b1 = _span(b)
    return a0 < b1 and b0 < a1


@njit
def gemm_update(alpha: float, a: np.ndarray, b: np.ndarray, beta: float, c: np.ndarray
                ) -> None:
    """c ← α·a@b + β·c: an optimizer's update inside its gradient's product (one BLAS call,
    no gradient array, no pass of its own over c). ``c`` is the caller's (a parameter, a
    momentum buffer): where it is not C-contiguous or may share memory with an operand, the
    product is made first and ``axpby`` adds it."""
    if c.flags.c_contiguous and not _overlap(c, a) and not _overlap(c, b):
        gemm_into(alpha, a, b, beta, c)
    else:
        axpby(alpha, matmul_blas(a, b), beta, c)


@njit
def matmul_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b by numba's np.dot (SciPy's BLAS): where NumPy's own is not found."""
    # numba's np.dot takes C- or F-ordered operands; a transpose of either is one of them.
    return np.dot(a, b)


@njit
def add_row(out: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """out += bias on every row, in place (``out`` is the kernel's own, fresh)."""
    n, m = out.shape
    for i in range(n):
        for j in range(m):
            out[i, j] += bias[j]
    return out


@njit
def column_sums(g: np.ndarray) -> np.ndarray:
    n, m = g.shape
    out = np.zeros(m, g.dtype)
    for i in range(n):
        for j in range(m):
            out[j] += g[i, j]
    return out


# ------------------------------------------------------------------ reductions and losses
@njit
def as_0d(value: float, like: np.ndarray) -> np.ndarray:
    """``value`` as a 0-d array of ``like``'s dtype (the engine's scalars are 0-d arrays)."""
    out = np.empty((), like.dtype)
    out[()] = value
    return out


@njit
def total(x: np.ndarray) -> float:
    s = 0.0  # in float64, then rounded once: at least as exact as NumPy's pairwise float32 sum
    for v in x.reshape(-1):
        s += v
    return s


@njit
def filled(value: float, like: np.ndarray) -> np.ndarray:
    """An array shaped like ``like`` holding ``value`` everywhere (the rule of sum/mean)."""
    out = np.empty_like(like)
    out[...] = value
    return out


@njit
def mse(input: np.ndarray, target: np.ndarray, mean: bool) -> np.ndarray:  # noqa: A002
    d_in, d_t = input.reshape(-1), target.reshape(-1)
    s = 0.0
    for i in range(d_in.size):
        d = d_in[i] - d_t[i]
        s += d * d
    return as_0d(s / d_in.size if mean else s, input)


@njit
def mse_grad(grad: np.ndarray, input: np.ndarray, target: np.ndarray, mean: bool, sign: float
             ) -> np.ndarray:  # noqa: A002
    """∂L/∂input (sign 1) or ∂L/∂target (sign −1): sign·(2/n)·grad·(input − target)."""
    scale = sign * grad.item() * (2.0 / input.size if mean else 2.0)
    r = np.empty_like(input)
    rf, d_in, d_t = r.reshape(-1), input.reshape(-1), target.reshape(-1)
    for i in range(rf.size):
        rf[i] = scale * (d_in[i] - d_t[i])
    return r


@njit
def _check_classes(target: np.ndarray, classes: int) -> None:
    for y in target:
        if y < 0 or y >= classes:
            raise IndexError("cross_entropy: a target class is outside 0..C-1, where C is the "
                             "number of logits per row. Fix: labels must be 0..C-1.")


@njit
def _row_logsumexp(z: np.ndarray, i: int) -> float:
    m = z[i, 0]
    for j in range(1, z.shape[1]):
        m = max(m, z[i, j])
    s = 0.0
    for j in range(z.shape[1]):
        s += np.exp(z[i, j] - m)
    return m + np.log(s)


@njit
def cross_entropy(logits: np.ndarray, target: np.ndarray, mean: bool) -> np.ndarray:
    """−Σᵢ log softmax(zᵢ)[yᵢ] (/N), for logits (N, C) and class indices (N,)."""
    _check_classes(target, logits.shape[1])
    s = 0.0
    for i in range(logits.shape[0]):
        s += _row_logsumexp(logits, i) - logits[i, target[i]]
    return as_0d(s / logits.shape[0] if mean else s, logits)


@njit
def cross_entropy_grad(grad: np.ndarray, logits: np.ndarray, target: np.ndarray, mean: bool
                       ) -> np.ndarray:
    """(softmax(zᵢ) − onehot(yᵢ))·grad (/N)."""
    _check_classes(target, logits.shape[1])
    n, c = logits.shape
    scale = grad.item() / n if mean else grad.item()
    r = np.empty_like(logits)
    for i in range(n):  # one exp per logit: e = exp(z − max) kept, softmax = e / Σe
        m = logits[i, 0]
        for j in range(1, c):
            m = max(m, logits[i, j])
        s = 0.0
        for j in range(c):
            e = np.exp(logits[i, j] - m)
            r[i, j] = e
            s += e
        k = scale / s
        for j in range(c):
            r[i, j] *= k
        r[i, target[i]] -= scale
    return r


# ------------------------------------------------------------------ the optimizer's update
@njit
def axpby(alpha: float, g: np.ndarray, beta: float, c: np.ndarray) -> None:
    """c ← α·g + β·c, in place: the folded update (``Optimizer.fold``), in c's dtype. ``c`` is
    the caller's (a parameter, a momentum buffer), so it may have any strides."""
    if c.flags.c_contiguous:
        cf, gf = c.reshape(-1), g.reshape(-1)
        for i in range(cf.size):
            cf[i] = alpha * gf[i] + beta * cf[i]
    else:
        for idx in np.ndindex(c.shape):
            c[idx] = alpha * g[idx] + beta * c[idx]


@njit
def full(shape: tuple, value: float, like: np.ndarray) -> np.ndarray:
    """An array of ``shape`` and ``like``'s dtype holding ``value``: a gradient summed down to
    one element (``sum_to`` a shape of ones)."""
    out = np.empty(shape, like.dtype)
    out[...] = value
    return out

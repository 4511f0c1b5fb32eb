"""``gemm``: C ← α·A@B + β·C in place, the one BLAS call NumPy does not expose.

NumPy's ``matmul`` always writes a fresh product (or overwrites ``out``); BLAS's ``gemm``
can add the product into an existing matrix. An SGD step on a linear layer is exactly that:
W ← W − lr·Gᵀ@x is one ``gemm`` with α = −lr and β = 1, so the weight gradient is never
stored and the update needs no pass of its own over the weights. ``gg.compile(loss_fn,
optimizer=opt)`` uses it that way (see ``Optimizer.fold``).

The call goes to NumPy's own BLAS: the OpenBLAS that NumPy's wheels ship in ``numpy.libs``
(``numpy/.dylibs`` on macOS), found by file name and called through ``ctypes``, so it runs
on the same thread pool as every ``@`` in the program (a second BLAS, such as SciPy's,
would bring a second pool of threads that fight the first: measured 10× slower here).
Where that library is not found (NumPy built against another BLAS, from conda or a
distribution), where a first call on small matrices does not give NumPy's result, or with
``GLASSGRAD_BLAS=numpy`` in the environment, ``gemm`` computes the same thing with NumPy
(a product, a scaling and an addition): slower, never wrong. ``describe()`` says which.
"""

from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Callable

import numpy as np

# Below this many elements of c, NumPy's product plus one pass over c costs less than the
# ctypes call (measured here, k = 128: 10×512 NumPy 27 µs vs 33; 128×128 even; 256×256
# NumPy 126 µs vs 112).
BLAS_MIN = 1 << 14

# CBLAS constants (cblas.h)
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112

# NumPy's wheels: OpenBLAS built with 64-bit integers and symbols renamed "scipy_..64_"
# (NumPy ≥ 2.0), or "..64_" (NumPy 1.2x); a 32-bit-integer build without the suffix.
_SYMBOLS = (("scipy_cblas_{}gemm64_", ctypes.c_int64), ("cblas_{}gemm64_", ctypes.c_int64),
            ("scipy_cblas_{}gemm", ctypes.c_int32))


class _Blas:
    """The located library: one ``ctypes`` function per float dtype, or the reason it is not
    used; ``axpys`` the matching ``axpy`` (y ← α·x + y) where the library has it."""

    def __init__(self) -> None:
        self.fns: dict[np.dtype, Callable[..., None]] = {}
        self.axpys: dict[np.dtype, Callable[..., None]] = {}
        self.where = ""
        self.why_not = ""
        self.integer: type | None = None  # the C integer type of its dimensions

    def load_axpy(self, lib: ctypes.CDLL, pattern: str, integer: type) -> None:
        """The ``axpy`` of the library whose ``gemm`` was chosen (same naming scheme)."""
        for dtype, letter, real in ((np.dtype(np.float32), "s", ctypes.c_float),
                                    (np.dtype(np.float64), "d", ctypes.c_double)):
            fn = getattr(lib, pattern.replace("gemm", "axpy").format(letter), None)
            if fn is None:
                return
            fn.restype = None
            fn.argtypes = [integer, real, ctypes.c_void_p, integer, ctypes.c_void_p, integer]
            self.axpys[dtype] = fn

    def load(self) -> None:
        if os.environ.get("GLASSGRAD_BLAS", "").lower() == "numpy":
            self.why_not = "GLASSGRAD_BLAS=numpy is set"
            return
        paths = _numpy_blas_files()
        if not paths:
            self.why_not = ("NumPy's bundled OpenBLAS was not found (NumPy not installed from "
                            "a PyPI wheel)")
            return
        for path in paths:
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for pattern, integer in _SYMBOLS:
                fns = {}
                for dtype, letter, real in ((np.dtype(np.float32), "s", ctypes.c_float),
                                            (np.dtype(np.float64), "d", ctypes.c_double)):
                    fn = getattr(lib, pattern.format(letter), None)
                    if fn is None:
                        break
                    fn.restype = None
                    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer,
                                   integer, real, ctypes.c_void_p, integer, ctypes.c_void_p,
                                   integer, real, ctypes.c_void_p, integer]
                    fns[dtype] = fn
                if len(fns) == 2:
                    self.fns = fns
                    self.integer = integer
                    self.where = f"{pattern.format('s')} in {os.path.basename(path)}"
                    if _self_test(fns):
                        self.load_axpy(lib, pattern, integer)
                        if not _axpy_self_test(self.axpys):
                            self.axpys = {}
                        return
                    self.fns = {}
                    self.integer = None
                    self.why_not = f"{self.where} did not give NumPy's product in a test"
                    self.where = ""
                    return
        self.why_not = f"no cblas gemm symbol in {', '.join(map(os.path.basename, paths))}"


_BLAS: _Blas | None = None


def _blas() -> _Blas:
    global _BLAS
    if _BLAS is None:
        _BLAS = _Blas()
        _BLAS.load()
    return _BLAS


def _numpy_blas_files() -> list[str]:
    """The OpenBLAS shared libraries shipped inside NumPy's wheel."""
    root = os.path.dirname(os.path.abspath(np.__file__))
    found: list[str] = []
    for folder in (os.path.join(os.path.dirname(root), "numpy.libs"),
                   os.path.join(root, ".dylibs")):
        found += sorted(p for p in glob.glob(os.path.join(folder, "*openblas*"))
                        if p.endswith((".so", ".dylib", ".dll")) or ".so." in p)
    return found


def describe() -> str:
    """Which ``gemm`` runs: NumPy's bundled BLAS (which symbol, which file), or NumPy."""
    b = _blas()
    if b.fns:
        return f"NumPy's own BLAS ({b.where})"
    return f"NumPy fallback (product, then scale and add): {b.why_not}"


def gemm_address(dtype: np.dtype) -> int | None:
    """The address of the located ``cblas_?gemm`` for ``dtype`` (float32 or float64), when it
    takes 64-bit integers (NumPy's wheels), else None: the numba back end's kernels call it
    by address, so a compiled step's products run on NumPy's own BLAS and its threads."""
    b = _blas()
    fn = b.fns.get(np.dtype(dtype))
    if fn is None or b.integer is not ctypes.c_int64:
        return None
    return ctypes.cast(fn, ctypes.c_void_p).value


def gemm_addresses() -> tuple[int, int] | None:
    """(sgemm, dgemm): ``gemm_address`` of float32 and of float64, or None unless both are
    found (what the compiled back ends call their large products through)."""
    both = (gemm_address(np.dtype(np.float32)), gemm_address(np.dtype(np.float64)))
    return None if None in both else both


def _layout(a: np.ndarray) -> tuple[int, int] | None:
    """(transpose flag, leading dimension) of a 2-D array BLAS can read in place, row-major
    (a dimension of length 1 may have any stride: it is never stepped over)."""
    size = a.itemsize
    rows, cols = a.shape
    s0, s1 = a.strides
    if s1 == size or cols == 1:  # rows of contiguous elements
        ld = s0 // size if rows > 1 else cols
        if s0 % size == 0 and ld >= cols:
            return _NO_TRANS, max(ld, 1)
    if s0 == size or rows == 1:  # columns of contiguous elements: the transpose, row-major
        ld = s1 // size if cols > 1 else rows
        if s1 % size == 0 and ld >= rows:
            return _TRANS, max(ld, 1)
    return None


def gemm(alpha: float, a: np.ndarray, b: np.ndarray, beta: float, c: np.ndarray) -> None:
    """c ← alpha·(a @ b) + beta·c, in place, for 2-D float arrays of one dtype.

    With BLAS: one call, no temporary, when ``c`` has at least 16384 elements and is row- or
    column-major, ``a`` and ``b`` are either, and nothing overlaps ``c``. Otherwise NumPy
    computes the same. beta = 0 ignores what ``c`` held (NaN included), as BLAS defines it."""
    fn = _blas().fns.get(c.dtype) if c.ndim == 2 and c.size >= BLAS_MIN else None
    if fn is None or not _call(fn, alpha, a, b, beta, c):
        axpby(alpha, a @ b, beta, c)


def _call(fn: Callable[..., None], alpha: float, a: np.ndarray, b: np.ndarray, beta: float,
          c: np.ndarray) -> bool:
    """Run the BLAS gemm ``fn`` if the arrays allow it (else False, nothing done)."""
    if a.dtype != c.dtype or b.dtype != c.dtype or not c.flags.writeable:
        return False
    if (_layout(c) or (0,))[0] == _TRANS:  # column-major c: cᵀ ← α·bᵀ@aᵀ + β·cᵀ
        a, b, c = b.T, a.T, c.T
    m, n = c.shape
    k = a.shape[1]
    la, lb, lc = _layout(a), _layout(b), _layout(c)
    if not (la and lb and lc and lc[0] == _NO_TRANS and m and n and k
            and a.shape == (m, k) and b.shape == (k, n)
            and not np.may_share_memory(c, a) and not np.may_share_memory(c, b)):
        return False
    fn(_ROW_MAJOR, la[0], lb[0], m, n, k, alpha, a.ctypes.data, la[1], b.ctypes.data, lb[1],
       beta, c.ctypes.data, lc[1])
    return True


def axpby(alpha: float, x: np.ndarray, beta: float, y: np.ndarray) -> None:
    """y ← alpha·x + beta·y, in place (``x`` is not changed). beta = 0 ignores what ``y``
    held, as gemm does."""
    if alpha != 1:
        x = x * alpha
    if beta == 0:
        np.copyto(y, x, casting="same_kind")
        return
    if beta != 1:
        y *= beta
    y += x


def axpy(alpha: float, x: np.ndarray, y: np.ndarray) -> None:
    """y ← alpha·x + y, in place: one pass over y (BLAS's ``axpy``, on NumPy's own BLAS and
    its threads) for contiguous arrays of one dtype with at least 16384 elements; NumPy's
    ``y += alpha * x`` (a temporary and two passes) otherwise. The optimizers' w ← w − lr·g."""
    fn = _blas().axpys.get(y.dtype) if y.size >= BLAS_MIN else None
    if (fn is None or x.dtype != y.dtype or x.shape != y.shape or not y.flags.writeable
            or not (x.flags.c_contiguous and y.flags.c_contiguous)
            or np.may_share_memory(x, y)):
        y += alpha * x
        return
    fn(y.size, alpha, x.ctypes.data, 1, y.ctypes.data, 1)


def _axpy_self_test(fns: dict[np.dtype, Callable[..., None]]) -> bool:
    """Whether the loaded axpy gives NumPy's result (to rounding) for both dtypes."""
    rng = np.random.default_rng(1)
    for dtype, fn in fns.items():
        x, y = rng.standard_normal(37).astype(dtype), rng.standard_normal(37).astype(dtype)
        want = y + dtype.type(-0.25) * x
        fn(y.size, -0.25, x.ctypes.data, 1, y.ctypes.data, 1)
        if not np.allclose(y, want, rtol=1e-6, atol=1e-6):
            return False
    return len(fns) == 2


def _self_test(fns: dict[np.dtype, Callable[..., None]]) -> bool:
    """Whether the loaded gemm gives NumPy's product on small matrices, in every layout."""
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        a = rng.standard_normal((5, 3)).astype(dtype)
        b = rng.standard_normal((3, 4)).astype(dtype)
        for aa, bb in ((a, b), (np.asfortranarray(a), b), (a, np.asfortranarray(b)),
                       (a.T.copy().T, b.T.copy().T)):
            c = rng.standard_normal((5, 4)).astype(dtype)
            want = 0.5 * (aa @ bb) - 2.0 * c
            for cc in (c.copy(), np.asfortranarray(c)):
                if not (_call(fns[np.dtype(dtype)], 0.5, aa, bb, -2.0, cc)
                        and np.allclose(cc, want, rtol=1e-4, atol=1e-5)):
                    return False
    return True


def _reset() -> None:
    """Forget the located library (tests use it after changing GLASSGRAD_BLAS)."""
    global _BLAS
    _BLAS = None

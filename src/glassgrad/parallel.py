"""Split a NumPy pass over the batch across a small persistent pool of threads.

BLAS spreads a matrix product over the machine's cores; everything else a convolutional
network does (im2col's copy, col2im's adds, pooling) is one NumPy pass on one core. NumPy
releases the GIL inside its copies and ufunc loops, so the same pass run on contiguous slices
of the batch from several threads runs on several cores. ``split(fn, n, nbytes)`` calls
``fn(lo, hi)`` on ``threads()`` slices of ``range(n)`` at once, one of them on the calling
thread, and returns when all are done.

How many: the library follows BLAS's thread count (``threads()``: that of the OpenBLAS NumPy
ships, which ``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS`` or threadpoolctl set), so one
setting governs both, and 1 means no pool at all. A split runs only between two products,
while BLAS's threads wait, so the two never compete for the cores. Each slice moves at least
``MIN_BYTES`` bytes (smaller passes run on the calling thread): handing a slice to another
thread costs tens of microseconds.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from .blas import _numpy_blas_files

MIN_BYTES = 2**19

_executor: ThreadPoolExecutor | None = None
_executor_key: tuple[int, int] = (0, 0)  # (process id, workers): a forked child makes its own
_lock = threading.Lock()
_inside = threading.local()  # set in the pool's threads: a split there runs serially
_blas_threads: Callable[[], int] | None = None


def threads() -> int:
    """The number of threads a split uses: BLAS's own count (1 where it cannot be asked)."""
    global _blas_threads
    if _blas_threads is None:
        _blas_threads = _find_blas_threads()
    return max(1, _blas_threads())


def _find_blas_threads() -> Callable[[], int]:
    """openblas_get_num_threads of NumPy's bundled OpenBLAS, or a function giving 1."""
    for path in _numpy_blas_files():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                     "openblas_get_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype, fn.argtypes = ctypes.c_int, []
                return fn
    return lambda: 1


def split(fn: Callable[[int, int], object], n: int, nbytes: int) -> None:
    """Call ``fn(lo, hi)`` on contiguous slices covering ``range(n)``, in parallel: on
    ``threads()`` threads at most, and at most one per ``MIN_BYTES`` bytes the pass moves
    (``nbytes``); a single slice is ``fn(0, n)`` on this thread. Returns when every slice is
    done; re-raises the first error after all have stopped. The slices must write disjoint
    memory."""
    # each slice moves at least MIN_BYTES: on many cores a small pass takes fewer threads
    k = 1 if getattr(_inside, "on", False) else min(threads(), n, nbytes // max(MIN_BYTES, 1))
    if k <= 1:
        fn(0, n)
        return
    bounds = [n * i // k for i in range(k + 1)]
    pool = _pool(k - 1)
    futures = [pool.submit(fn, bounds[i], bounds[i + 1]) for i in range(1, k)]
    try:
        fn(bounds[0], bounds[1])
    finally:
        wait(futures)  # (never return while another thread still writes)
    for f in futures:
        f.result()


def _pool(workers: int) -> ThreadPoolExecutor:
    global _executor, _executor_key
    key = (os.getpid(), workers)
    with _lock:
        if _executor is None or _executor_key != key:
            if _executor is not None and _executor_key[0] == key[0]:
                _executor.shutdown(wait=False)
            _executor = ThreadPoolExecutor(workers, thread_name_prefix="glassgrad",
                                           initializer=_mark_inside)
            _executor_key = key
        return _executor


def _mark_inside() -> None:
    _inside.on = True


def copyto(dst: np.ndarray, src: np.ndarray, axis: int = 0) -> None:
    """``dst[...] = src`` (same shapes), split along ``axis`` (see ``split``)."""
    def part(lo: int, hi: int) -> None:
        index = (slice(None),) * axis + (slice(lo, hi),)
        dst[index] = src[index]

    split(part, dst.shape[axis], dst.nbytes)

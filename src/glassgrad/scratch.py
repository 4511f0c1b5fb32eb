"""Scratch arrays reused from one training step to the next.

A convolution's im2col columns and its backward's column gradient are megabytes that live
for one op and are never handed to the caller. Fresh from ``np.empty`` each step, their pages
go back to the system when freed and fault in again (zeroed by the kernel) on the next
step: measured on a LeNet-5 step, about 3,000 page faults and a quarter of the step's
time. ``take`` hands out an array kept by an earlier ``give``, or a new one; ``give`` keeps
an array for the next ``take`` of the same size and dtype, at most ``LIMIT`` bytes in all.

The one rule: ``give`` only an array that came from ``take`` and that nothing (no result, no
view a caller can hold) still refers to. Small arrays are not worth it (malloc reuses them
already) and are neither kept nor counted.
"""

from __future__ import annotations

import threading

import numpy as np

LIMIT = 64 * 2**20  # bytes kept at most, over all sizes
MIN_BYTES = 2**18  # smaller arrays: np.empty, never kept

_free: dict[tuple[int, np.dtype], list[np.ndarray]] = {}
_kept = 0
_lock = threading.Lock()  # (the engine may run on several threads)


def take(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialized C-contiguous array of ``shape`` and ``dtype``: a kept one if there is
    one of that size, else new. Its values are whatever the last user left."""
    global _kept
    dtype = np.dtype(dtype)
    size = 1
    for n in shape:
        size *= n
    if size * dtype.itemsize >= MIN_BYTES:
        with _lock:
            free = _free.get((size, dtype))
            if free:
                buf = free.pop()
                _kept -= buf.nbytes
                return buf.reshape(shape)
    return np.empty(shape, dtype=dtype)


def give(a: np.ndarray) -> None:
    """Keep ``a`` (an array from ``take``, or a view of all of one) for a later ``take``. The
    caller promises that nothing else refers to it; arrays too small or too many are
    dropped."""
    global _kept
    buf = a if a.base is None else a.base
    if (type(buf) is not np.ndarray or not buf.flags.owndata or buf.nbytes < MIN_BYTES
            or not buf.flags.c_contiguous):
        return
    with _lock:
        if _kept + buf.nbytes > LIMIT:
            return
        _kept += buf.nbytes
        _free.setdefault((buf.size, buf.dtype), []).append(buf)


def clear() -> None:
    """Drop every kept array (their memory goes back to the system)."""
    global _kept
    with _lock:
        _free.clear()
        _kept = 0

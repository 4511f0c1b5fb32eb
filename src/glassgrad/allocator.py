"""Keep the memory of freed arrays for the next training step (glibc's malloc, on Linux).

A training step allocates arrays of the same sizes every time (activations, gradients) and
frees them at its end. glibc's malloc hands memory at the top of its heap back to the system
as soon as more than ``M_TRIM_THRESHOLD`` bytes there are free, so the next step's arrays
fault their pages in again, one page at a time, each zeroed by the kernel. Measured on a
LeNet-5 step (batch 64): 1,540 page faults per step and a third of the step's time
(10.1 ms against 6.8 ms without them).

glibc adapts its thresholds as a program runs: whenever a block it had mapped on its own
(one larger than ``M_MMAP_THRESHOLD``) is freed, that threshold rises to the block's size, up
to 32 MiB on a 64-bit machine, and the trim threshold to twice that. ``tune()``, called once at
import, sets both to those maximums (``M_MMAP_THRESHOLD`` 32 MiB, ``M_TRIM_THRESHOLD``
64 MiB): the state glibc reaches by itself once a program has freed one 32 MiB array, so a
program's memory behaves as glibc's own rules make it behave later anyway. The cost: up to
64 MiB of freed memory stays with the process instead of going back to the system.

Nothing is done with another C library (macOS, Windows, musl), when the environment already
sets these thresholds (glibc's ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``,
``MALLOC_TOP_PAD_``, ``MALLOC_MMAP_MAX_``, or the same in ``GLIBC_TUNABLES``), or with
``GLASSGRAD_MALLOC=default``. ``STATE`` says which happened.
"""

from __future__ import annotations

import ctypes
import os
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)
# glibc's ceiling for its dynamic mmap threshold (DEFAULT_MMAP_THRESHOLD_MAX)
MMAP_THRESHOLD = 4 * 1024 * 1024 * ctypes.sizeof(ctypes.c_long)
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD

STATE = "not tuned yet"
# glibc's own ways to set these thresholds (the user's choice wins)
_GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                    "MALLOC_MMAP_MAX_")
_GLIBC_TUNABLES = ("glibc.malloc.mmap_threshold", "glibc.malloc.trim_threshold",
                   "glibc.malloc.top_pad", "glibc.malloc.mmap_max")


def _left_as_is() -> str | None:
    """Why malloc is left as it is, or None to tune it."""
    if os.environ.get("GLASSGRAD_MALLOC", "") == "default":
        return "left as is (GLASSGRAD_MALLOC=default)"
    tuned = [k for k in _GLIBC_VARIABLES if k in os.environ]
    if any(t in os.environ.get("GLIBC_TUNABLES", "") for t in _GLIBC_TUNABLES):
        tuned.append("GLIBC_TUNABLES")
    if tuned:
        return f"left as is (the environment sets {', '.join(sorted(tuned))})"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "left as is (not glibc)"
    return None


def tune() -> str:
    """Set glibc's mmap and trim thresholds to the maximums its own heuristic reaches (see
    the module's docstring); returns and keeps in ``STATE`` what was done."""
    global STATE
    STATE = _left_as_is() or _set_thresholds()
    return STATE


def _set_thresholds() -> str:
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "left as is (mallopt not found)"
    mallopt.restype, mallopt.argtypes = ctypes.c_int, [ctypes.c_int, ctypes.c_int]
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1 or \
            mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return "left as is (mallopt refused)"
    return (f"glibc malloc: mmap threshold {MMAP_THRESHOLD >> 20} MiB, trim threshold "
            f"{TRIM_THRESHOLD >> 20} MiB")

"""Compiling and loading the C back end's steps (``c_backend.py`` writes their source).

A step's source becomes a shared library with the system's C compiler (``$CC``, else ``cc``,
``gcc`` or ``clang``), once per machine: the library is kept under
``~/.cache/glassgrad/c-steps/`` (or ``$XDG_CACHE_HOME``), named by a digest of the source,
the compiler and its flags, so a new process loads it instead of compiling, and a changed
source or compiler makes another file, never a stale one. A library is written under a
temporary name and renamed into place (two processes compiling the same step both finish
with a whole file); an unwritable cache compiles into a folder of this process's own.

The flags keep NumPy's arithmetic: no fused multiply-add (``-ffp-contract=off``), no fast
math. The code is for this CPU (``-O3 -march=native``: its vector instructions; measured
here, a 784-512-512-10 step at batch 128 took 2.02 ms, against 3.21 ms with ``-O2``'s
baseline code, whose relu passes branch), so the digest also names the CPU (its model and
feature flags): a cache shared between machines never gives one of them code it cannot run.

``step_function`` loads a library and returns the Python function a ``CProgram`` calls: it
makes the arrays the step returns and hands every array to the step through
``_backward.call_step`` (or ``ctypes``, which checks the same, without the extension).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .. import autograd, blas

FLAGS = ("-O3", "-std=gnu11", "-shared", "-fPIC", "-fvisibility=hidden",
         "-ffp-contract=off", "-fno-math-errno")
NATIVE = ("-march=native",)  # this CPU's vector instructions (dropped where refused)
TIMEOUT = 120  # seconds one compile may take

PRELUDE = r"""/* a training step compiled by glassgrad (gg.compile(..., backend="c")) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>
#define GG_EXPORT __attribute__((visibility("default")))
typedef void (*gg_sgemm_t)(int, int, int, int64_t, int64_t, int64_t, float, const float *,
                           int64_t, const float *, int64_t, float, float *, int64_t);
typedef void (*gg_dgemm_t)(int, int, int, int64_t, int64_t, int64_t, double, const double *,
                           int64_t, const double *, int64_t, double, double *, int64_t);
static gg_sgemm_t gg_sgemm;  /* NumPy's OpenBLAS cblas_?gemm, set once when loaded */
static gg_dgemm_t gg_dgemm;
GG_EXPORT void gg_set_blas(void *s, void *d) { gg_sgemm = (gg_sgemm_t)s; gg_dgemm = (gg_dgemm_t)d; }
/* Branch-free choices for the element loops: gg_one_T(c) is 1 where c is true, else 0;
 * gg_pick_T(c, a, b) is a where c, else b. Both are made from c's bits (a mask of all ones or
 * all zeros), so GCC 12 vectorizes a loop that uses them for AVX2 and AVX-512 targets (and
 * for the baseline x86-64 in float32): the same thing written as a conversion of c or as
 * c ? a : b stayed scalar code without AVX-512. */
static inline float gg_one_float(int c) {
    uint32_t b = -(uint32_t)c & 0x3f800000u; float v; memcpy(&v, &b, 4); return v; }
static inline double gg_one_double(int c) {
    uint64_t b = -(uint64_t)c & 0x3ff0000000000000u; double v; memcpy(&v, &b, 8); return v; }
static inline float gg_pick_float(int c, float a, float b) {
    uint32_t m = -(uint32_t)c, x, y; memcpy(&x, &a, 4); memcpy(&y, &b, 4);
    x = (x & m) | (y & ~m); memcpy(&a, &x, 4); return a; }
static inline double gg_pick_double(int c, double a, double b) {
    uint64_t m = -(uint64_t)c, x, y; memcpy(&x, &a, 8); memcpy(&y, &b, 8);
    x = (x & m) | (y & ~m); memcpy(&a, &x, 8); return a; }
"""

WORKSPACE = r"""/* The temporaries' memory, kept between calls; a call while another holds it
 * (two threads) gets its own. */
static char *gg_kept;
static int gg_busy;
static char *gg_workspace_take(void) {
    if (!__atomic_exchange_n(&gg_busy, 1, __ATOMIC_ACQUIRE)) {
        if (!gg_kept) gg_kept = aligned_alloc(64, GG_WORKSPACE);
        if (gg_kept) return gg_kept;
        __atomic_store_n(&gg_busy, 0, __ATOMIC_RELEASE);
        return NULL;
    }
    return aligned_alloc(64, GG_WORKSPACE);
}
/* ws + offset, as a pointer whose origin the compiler forgets (an empty asm): knowing that two
 * arrays lie at constant offsets from one base, GCC 12 ran a relu pass as scalar code (its
 * dependence test gave up); not knowing, it trusts `restrict` and vectorizes (341 against
 * 150 us for a 1024 x 512 pass, measured). */
static inline char *gg_at(char *ws, long long offset) {
    char *p = ws + offset;
    __asm__("" : "+r"(p));
    return p;
}
static void gg_workspace_give(char *ws) {
    if (ws == gg_kept) __atomic_store_n(&gg_busy, 0, __ATOMIC_RELEASE);
    else free(ws);
}
/* The kept workspace freed, unless a call holds it (the step's Python function is gone; a
 * later call, from another function of the same source, allocates it again). */
GG_EXPORT void gg_release(void) {
    if (!__atomic_exchange_n(&gg_busy, 1, __ATOMIC_ACQUIRE)) {
        free(gg_kept);
        gg_kept = NULL;
        __atomic_store_n(&gg_busy, 0, __ATOMIC_RELEASE);
    }
}
GG_EXPORT int gg_holds_workspace(void) { return gg_kept != NULL; }
"""

_LOADED: dict[str, ctypes.CDLL] = {}  # digest -> library (never unloaded: steps point in)
_LOCK = threading.Lock()
_OWN_DIR: list[Path] = []  # this process's folder, where the cache cannot be written


def compiler() -> list[str] | None:
    """The C compiler's command (``$CC`` split as a shell would), or None if none is found."""
    cc = os.environ.get("CC")
    if cc:
        cmd = shlex.split(cc)
        return cmd if cmd and shutil.which(cmd[0]) else None
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return [path]
    return None


def numpy_blas() -> bool:
    """Whether NumPy's OpenBLAS gemm, with 64-bit integers, can be called by address."""
    return blas.gemm_addresses() is not None


def unavailable() -> str:
    """Why the C back end cannot run here ("" when it can)."""
    if sys.platform == "win32":
        return "the C back end runs on Linux and macOS only"
    if compiler() is None:
        return ("no C compiler was found (install gcc or clang, or set CC)")
    return ""


@functools.cache
def _cpu() -> str:
    """This CPU's model and feature flags (Linux), or what the platform module says."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    keep = [ln for ln in text.split("\n\n")[0].splitlines()
            if ln.split(":")[0].strip() in ("vendor_id", "model name", "flags", "Features",
                                            "CPU part")]
    return "\n".join(keep) or platform.machine()


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "glassgrad" / "c-steps"


def library(source: str) -> ctypes.CDLL:
    """``source`` compiled and loaded (from the cache when it is there)."""
    cmd = compiler()
    if cmd is None:
        raise RuntimeError(unavailable())
    digest = hashlib.sha256("\0".join([source, *cmd, *FLAGS, *NATIVE, sys.platform,
                                       _cpu()]).encode()).hexdigest()[:24]
    with _LOCK:
        lib = _LOADED.get(digest)
        if lib is not None:
            return lib
        path = _built(source, cmd, digest)
        lib = ctypes.CDLL(str(path))
        lib.gg_set_blas.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.gg_set_blas.restype = None
        lib.gg_set_blas(*(blas.gemm_addresses() or (None, None)))
        _LOADED[digest] = lib
        return lib


def _built(source: str, cmd: list[str], digest: str) -> Path:
    """The library's path: in the cache when it is there, else compiled now."""
    for folder in (cache_dir(), *_OWN_DIR):
        path = folder / f"step_{digest}.so"
        if path.is_file():
            return path
    try:
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        return _compile(source, cmd, folder, digest)
    except OSError:  # (no such folder can be made or written: read-only, a file in the way)
        pass
    if not _OWN_DIR:
        _OWN_DIR.append(Path(tempfile.mkdtemp(prefix="glassgrad-c-steps-")))
    return _compile(source, cmd, _OWN_DIR[0], digest)


def _compile(source: str, cmd: list[str], folder: Path, digest: str) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".step_{digest}.", suffix=".c", dir=folder)
    out = tmp[:-2] + ".so"
    try:
        with os.fdopen(fd, "w") as f:
            f.write(source)
        done = subprocess.run([*cmd, *FLAGS, *NATIVE, "-o", out, tmp, "-lm"],
                              capture_output=True, text=True, timeout=TIMEOUT, check=False)
        if done.returncode != 0:  # (a compiler without -march=native: its baseline code)
            done = subprocess.run([*cmd, *FLAGS, "-o", out, tmp, "-lm"], capture_output=True,
                                  text=True, timeout=TIMEOUT, check=False)
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["(no message)"])[:3]
            raise RuntimeError(f"the C compiler failed ({' '.join(cmd)}): {' | '.join(first)}")
        path = folder / f"step_{digest}.so"
        os.replace(out, path)
        return path
    finally:
        for p in (tmp, out):
            with contextlib.suppress(OSError):
                os.unlink(p)


def step_function(source: str, *, arrays: list[tuple[str, np.ndarray, bool]], inputs: int,
                  extra: list[str], outs: tuple[int, int | None],
                  declined: type[Exception]) -> Callable[..., Any]:
    """The Python function of a step: ``fn(*inputs, *extra)`` → (loss, gradients, extra
    outputs), as a numba step returns them. ``arrays``: every array the C step takes, in
    order (the first ``inputs`` are the step's inputs, then the optimizer's buffers named in
    ``extra``, then the outputs); ``outs``: how many gradients and extra outputs (None: no
    extra outputs). A call the step declines raises ``declined``."""
    lib = library(source)
    fn = ctypes.cast(lib.gg_step, ctypes.c_void_p).value
    n = len(arrays)
    sizes = ctypes.addressof((ctypes.c_longlong * max(n, 1)).in_dll(lib, "gg_sizes"))
    native = autograd._native
    env: dict[str, Any] = {"call": native.call_step if native is not None else _ctypes_call,
                           "FN": fn, "SIZES": sizes, "empty": np.empty, "declined": declined,
                           "lib": lib}
    names = [a[0] for a in arrays]
    params = [*names[:inputs], *extra]
    out_names = names[len(names) - 1 - outs[0] - (outs[1] or 0):]
    made = []
    for name, like, _ in arrays[len(names) - len(out_names):]:
        env[f"S_{name}"], env[f"D_{name}"] = like.shape, like.dtype
        made.append(f"    {name} = empty(S_{name}, D_{name})")
    scalars = [e for e in extra if e not in names]
    loss, grads = out_names[0], out_names[1:1 + outs[0]]
    ret = f"{loss}, ({''.join(g + ', ' for g in grads)})"
    if outs[1] is not None:
        ret += f", ({''.join(a + ', ' for a in out_names[1 + outs[0]:])})"
    # On a layout it was not written for, the call is made again with the arrays the step
    # only reads made C-contiguous (a transposed input): the written ones must stay the
    # caller's own arrays.
    read = [a for a, _, _ in arrays]
    again = [f"asc({a})" if not w and k < inputs else a for k, (a, _, w) in enumerate(arrays)]
    env["asc"] = np.ascontiguousarray
    scal = f"({''.join(s + ', ' for s in scalars)})"
    text = "\n".join([
        f"def step({', '.join(params)}):", *made,
        f"    rc = call(FN, SIZES, ({''.join(a + ', ' for a in read)}), {scal})",
        "    if rc is NotImplemented:",
        f"        rc = call(FN, SIZES, ({''.join(a + ', ' for a in again)}), {scal})",
        "    if rc != 0:",
        "        raise declined(rc)",
        f"    return {ret}", ""])
    exec(compile(text, "<glassgrad.compile C caller>", "exec"), env)  # noqa: S102
    # A library stays loaded for the process (code may point into it), but its workspace
    # goes when a function that calls it is dropped: a program that records many shapes (a
    # batch size that changes) keeps no workspace for the steps it dropped. (Another
    # function of the same source allocates it again on its next call.)
    lib.gg_release.restype = None
    weakref.finalize(env["step"], lib.gg_release)
    return env["step"]


def _ctypes_call(fn: int, sizes: int, arrays: tuple[Any, ...], scalars: tuple[float, ...]
                 ) -> Any:
    """``_backward.call_step`` without the extension: the same checks, then ``ctypes``."""
    table = (ctypes.c_longlong * max(len(arrays), 1)).from_address(sizes)
    spans = []
    for a, size in zip(arrays, table):
        want, written = (-1 - size, True) if size < 0 else (size, False)
        if not isinstance(a, np.ndarray) or a.nbytes != want or not a.flags.c_contiguous \
                or not a.flags.aligned or (written and not a.flags.writeable) \
                or not a.dtype.isnative:
            return NotImplemented
        lo = a.__array_interface__["data"][0]
        spans.append((lo, lo + a.nbytes, written))
    for i, (lo, hi, written) in enumerate(spans):
        if written and lo < hi and any(j != i and lo2 < hi2 and lo < hi2 and lo2 < hi
                                       for j, (lo2, hi2, _) in enumerate(spans)):
            return NotImplemented
    ptrs = (ctypes.c_void_p * max(len(arrays), 1))(*[s[0] for s in spans])
    vals = (ctypes.c_double * max(len(scalars), 1))(*map(float, scalars))
    step = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(fn)
    return step(ptrs, vals)

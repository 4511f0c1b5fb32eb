"""Would Intel's MKL make glassgrad's products faster? The measurement behind the answer.

    pip install mkl                       # Intel's MKL from PyPI (about 1.1 GB installed)
    python benchmarks/blas_choice.py      # ~1 min on 2 cores
    python benchmarks/blas_choice.py --rounds 7 --batch 128

For each batch size, three contenders run, each in its own process, alternated over rounds
(as in ``fair.py``), all doing the same thing: the eight float32 matrix products of one SGD step
of the 784-512-512-10 MLP (``run.matmul_only_step``'s shapes and layouts).

- "OpenBLAS": NumPy's ``@``, on the OpenBLAS inside NumPy's wheel.
- "MKL": ``cblas_sgemm_64`` from the ``mkl`` package's ``libmkl_rt``, through ``ctypes``.
- "MKL beside OpenBLAS": one process that runs the MKL step, then the OpenBLAS step, in turn
  (what a program gets if only some of its products move to MKL: a layer type glassgrad
  routes, another it does not, or the user's own NumPy code). The time shown is its MKL half.

Both libraries keep their worker threads spinning for a while after each call, so in the
third case each pool's threads take the cores the other needs.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import time
from importlib import metadata
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = [784, 512, 512, 10]
CONTENDERS = ("OpenBLAS", "MKL", "MKL beside OpenBLAS")


def _mkl_sgemm() -> Any:
    dist = metadata.distribution("mkl")
    files = [f for f in dist.files or () if os.path.basename(str(f)).startswith("libmkl_rt.")]
    fn = ctypes.CDLL(str(dist.locate_file(files[0]))).cblas_sgemm_64
    i64, f32, ptr, enum = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p, ctypes.c_int
    fn.restype = None
    fn.argtypes = [enum, enum, enum, i64, i64, i64, f32, ptr, i64, ptr, i64, f32, ptr, i64]
    return fn


def _products(batch: int) -> list[tuple[Any, Any, Any]]:
    """(a, b, out) of the step's products: forward, weight gradients, input gradients."""
    import numpy as np  # noqa: PLC0415

    rng = np.random.default_rng(0)
    acts = [rng.standard_normal((batch, s)).astype(np.float32) for s in SIZES]
    ws = [rng.standard_normal((b, a)).astype(np.float32) for a, b in zip(SIZES, SIZES[1:])]
    work = []
    for i, w in enumerate(ws):
        work.append((acts[i], w.T))  # forward
        work.append((acts[i + 1].T, acts[i]))  # weight gradient
        if i:
            work.append((acts[i + 1], w))  # input gradient (none for the data)
    return [(a, b, np.empty((a.shape[0], b.shape[1]), np.float32)) for a, b in work]


def _worker(contender: str, batch: int, repeat: int) -> float:
    import numpy as np  # noqa: PLC0415

    work = _products(batch)

    def numpy_step() -> None:
        for a, b, out in work:
            np.matmul(a, b, out=out)

    sgemm = _mkl_sgemm()

    def mkl_step() -> None:
        for a, b, out in work:  # row-major C = A @ B, A and B read as stored (maybe transposed)
            ta = 112 if a.flags.f_contiguous and not a.flags.c_contiguous else 111
            tb = 112 if b.flags.f_contiguous and not b.flags.c_contiguous else 111
            lda = a.shape[0] if ta == 112 else a.shape[1]
            ldb = b.shape[0] if tb == 112 else b.shape[1]
            sgemm(101, ta, tb, a.shape[0], b.shape[1], a.shape[1], 1.0, a.ctypes.data, lda,
                  b.ctypes.data, ldb, 0.0, out.ctypes.data, out.shape[1])

    mkl_step()
    for a, b, out in work:  # the same products, to rounding
        assert np.allclose(out, a @ b, rtol=1e-4, atol=1e-3), "MKL call gave a wrong product"
    times = []
    for _ in range(repeat + 10):  # (the first ten: warm-up, MKL starting its threads)
        if contender == "MKL beside OpenBLAS":
            numpy_step()
        t = time.perf_counter()
        (numpy_step if contender == "OpenBLAS" else mkl_step)()
        times.append(time.perf_counter() - t)
    return statistics.median(times[10:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--batch", type=int, nargs="+", default=[128, 1024])
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(_worker(args.worker[0], int(args.worker[1]), args.repeat))
        return
    try:
        _mkl_sgemm()
    except Exception as e:  # noqa: BLE001
        sys.exit(f"blas_choice.py: Intel's MKL is not usable here ({e}). Fix: pip install mkl")
    sys.path.insert(0, HERE)
    from fair import machine  # noqa: PLC0415

    print(", ".join(f"{k}: {v}" for k, v in machine().items()))
    print(f"MKL: the 'mkl' package {metadata.version('mkl')}\n")
    for batch in args.batch:
        got: dict[str, list[float]] = {c: [] for c in CONTENDERS}
        for r in range(args.rounds):
            for c in (CONTENDERS if r % 2 == 0 else CONTENDERS[::-1]):
                done = subprocess.run([sys.executable, __file__, "--worker", c, str(batch),
                                       "--repeat", str(args.repeat)],
                                      capture_output=True, text=True)
                if done.returncode:
                    sys.exit(f"blas_choice.py: the {c!r} worker failed:\n{done.stderr}")
                got[c].append(float(done.stdout))
        print(f"batch {batch}: the step's 8 float32 products, median of {args.rounds} rounds")
        print("| contender | time | vs OpenBLAS (median of rounds) |\n|---|---|---|")
        for c in CONTENDERS:
            ratio = statistics.median(o / t for o, t in zip(got["OpenBLAS"], got[c]))
            print(f"| {c} | {statistics.median(got[c]) * 1e3:.2f} ms | {ratio:.2f}× |")
        print()


if __name__ == "__main__":
    main()

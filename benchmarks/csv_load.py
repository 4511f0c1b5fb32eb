"""How fast ``load_csv`` reads a large numeric CSV, and how much memory it takes.

    python benchmarks/csv_load.py                  # a ~200 MB file in /tmp
    python benchmarks/csv_load.py --mb 20          # a smaller one
    python benchmarks/csv_load.py --src OTHER/src  # another checkout's glassgrad, same file

The file has 20 float features (printed with 6 significant digits) and an integer label;
20,000 random rows are repeated to the size asked (the parser's speed does not depend on
which numbers it reads). The read runs in a fresh process, so its peak RSS
(``resource.getrusage``) is the reader's, not the generator's: "peak RSS" is the process's
peak, "added" is that peak minus the RSS before ``load_csv`` was called (imports done). The
CPU time (``time.process_time``) is the fairer speed on a shared machine.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

READ = r"""
import os, resource, sys, time
import numpy as np
from glassgrad.data import load_csv

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

path = sys.argv[1]
size = os.path.getsize(path) / 2**20
before = rss_mb()
t0, c0 = time.perf_counter(), time.process_time()
X, y = load_csv(path)
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
arrays = (X.nbytes + y.nbytes) / 2**20
print(f"file {size:.0f} MiB, X {X.shape} {X.dtype}, y {y.dtype}: {dt:.2f} s, "
      f"{size / dt:.0f} MiB/s (CPU {cpu:.2f} s: {size / cpu:.0f} MiB/s); "
      f"peak RSS {peak:.0f} MiB (added {peak - before:.0f} MiB = "
      f"{(peak - before) / size:.2f}x the file; the arrays are {arrays:.0f} MiB)")
"""


def generate(path: str, mb: float, seed: int = 0) -> None:
    """A CSV of about ``mb`` MiB: a header, 20 features, a label 0..9."""
    rng = np.random.default_rng(seed)
    rows = np.column_stack([rng.standard_normal((20_000, 20)), rng.integers(0, 10, 20_000)])
    buf = io.StringIO()
    np.savetxt(buf, rows, fmt=["%.6g"] * 20 + ["%d"], delimiter=",")
    block = buf.getvalue().encode()
    header = (",".join(f"x{i}" for i in range(20)) + ",label\n").encode()
    with open(path, "wb") as f:
        f.write(header)
        for _ in range(max(1, round(mb * 2**20 / len(block)))):
            f.write(block)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=float, default=200, help="file size in MiB (default 200)")
    ap.add_argument("--path", default=None, help="where to write the file (default /tmp)")
    ap.add_argument("--src", default=os.path.join(HERE, "..", "src"),
                    help="the glassgrad source to measure (default this checkout's)")
    args = ap.parse_args()
    path = args.path or f"/tmp/glassgrad_csv_{args.mb:g}mb.csv"
    if not os.path.exists(path):
        generate(path, args.mb)
    env = {**os.environ, "PYTHONPATH": os.path.abspath(args.src)}
    subprocess.run([sys.executable, "-c", READ, path], env=env, check=True)


if __name__ == "__main__":
    main()

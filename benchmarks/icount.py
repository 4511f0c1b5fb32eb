"""Instructions per step, counted by valgrind: a repeatable measure on a noisy machine.

    python benchmarks/icount.py xor add            # glassgrad's eager steps, 200 steps each
    python benchmarks/icount.py mlp128 --steps 3 --contender "hand NumPy"

Wall-clock medians on a shared 2-core machine swing by tens of percent; the number of
instructions a step executes does not (to about 0.1%), so it shows whether a change to the
engine helps even when the clock cannot. Each workload runs twice under ``valgrind
--tool=callgrind`` (address randomization off, hash seed 0, one BLAS thread): warm-up only,
then warm-up and ``--steps`` more steps; the difference divided by ``--steps`` is the count per step
(start-up, imports and the first calls cancel). The steps are ``fair.py``'s. Instructions
are not time (a cache miss costs no instruction), so a change worth keeping is also timed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def count(workload: str, contender: str, steps: int) -> int:
    """Total instructions of a process that builds the step, warms it up and runs ``steps``."""
    # (a fixed hash seed: with Python's random one, the count moved by 1-2% between runs of
    # the same code, through dict and set layouts; with it, by 0.04%: measured)
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = ["setarch", "-R", "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
           sys.executable, os.path.abspath(__file__), "--worker", workload, contender,
           str(steps)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    m = re.search(r"Collected : (\d+)", r.stderr)
    if r.returncode != 0 or m is None:
        raise RuntimeError(f"icount: {workload}/{contender} failed under valgrind:\n"
                           + r.stderr[-2000:])
    return int(m.group(1))


def worker(workload: str, contender: str, steps: int) -> None:
    sys.path.insert(0, HERE)
    import fair  # noqa: PLC0415  (the steps)

    step = fair.make_step(workload, contender)
    for _ in range(5):  # first calls (imports, a compiled step's recording) cancel out
        step()
    for _ in range(steps):
        step()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("workloads", nargs="*", default=["add", "xor"])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--contender", default="glassgrad")
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        worker(a.worker[0], a.worker[1], int(a.worker[2]))
        return
    for w in a.workloads:
        per_step = (count(w, a.contender, a.steps) - count(w, a.contender, 0)) / a.steps
        print(f"{w} ({a.contender}): {per_step:,.0f} instructions per step", flush=True)


if __name__ == "__main__":
    main()

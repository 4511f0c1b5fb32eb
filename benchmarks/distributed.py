"""Data-parallel training over MPI: what communication costs, measured, and a model past it.

    python benchmarks/distributed.py                  # everything (about a minute)
    python benchmarks/distributed.py --only overhead  # overhead | scaling | alphabeta

- overhead: 2 ranks, global batch 1024, MLPs of 10³ to 10⁷ parameters: the time of one
  step's compute (forward, backward, update on 512 samples) next to its gradient all-reduce
  (glassgrad's fused buffer, and the bare ``Allreduce`` of as many floats), and the fraction
  of the step spent communicating.
- scaling: 784-512-512-10 at global batch 1024, 1 rank × 2 BLAS threads against 2 ranks × 1
  thread: the same cores doing the same arithmetic.
- alphabeta: all-reduce time against message size between 2 ranks, fitted to α + β·bytes,
  then the ring all-reduce model for 8 to 256 ranks on a stated interconnect (a model, not a
  measurement; see docs/distributed.md).

The script launches itself under ``mpiexec`` (the ``distributed`` extra), with the BLAS
thread count set before NumPy starts. Step times are medians (the all-reduce's α–β: the
fastest call); every rank's time is the slowest rank's (the step waits for it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
SRC = HERE.parents[1] / "src"
GLOBAL_BATCH = 1024
SIZES = (10**3, 10**4, 10**5, 10**6, 10**7)
# A stated interconnect for the model (per-message latency α, per-byte time β): 100 Gb/s
# InfiniBand EDR / RoCE, as on many clusters; 12.5 GB/s at best, taken as 10 GB/s achieved.
CLUSTER = {"name": "100 Gb/s InfiniBand EDR (α = 3 µs, 10 GB/s achieved)",
           "alpha": 3e-6, "beta": 1 / 10e9}


# ----------------------------------------------------------------------------- launching
def launch(worker: str, ranks: int, threads: int) -> list[dict]:
    """Run ``--worker`` on ``ranks`` ranks with ``threads`` BLAS threads each; its JSON lines."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "OPENBLAS_NUM_THREADS": str(threads),
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, str(HERE), "--worker", worker]
    if ranks > 1:
        mpiexec = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}:"
                                               f"{os.environ.get('PATH', '')}")
        if mpiexec is None:
            sys.exit("mpiexec not found: pip install 'glassgrad[distributed]'")
        cmd = [mpiexec, "-n", str(ranks), sys.executable, "-m", "mpi4py", *cmd[1:]]
    out = subprocess.run(["timeout", "-k", "5", "900", *cmd], capture_output=True, text=True,
                         env=env, check=False)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stderr}")
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import run  # the benchmarks' one Markdown table (importing it loads glassgrad)

    run.table(title, header, rows, numbers_right=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}" if seconds < 0.01 else f"{seconds * 1e3:.1f}"


# ----------------------------------------------------------------------------- in the ranks
def slowest_times(fn: Callable[[], object], repeat: int) -> list[float]:
    """The slowest rank's time of each of ``repeat`` calls (all ranks starting together)."""
    from glassgrad import distributed as dist

    times = []
    for _ in range(repeat):
        dist.barrier()
        t0 = time.perf_counter()
        fn()
        times.append(dist.all_reduce(time.perf_counter() - t0, op="max"))
    return times


def slowest_median(fn: Callable[[], object], repeat: int) -> float:
    return statistics.median(slowest_times(fn, repeat))


def mlp_step(sizes: list[int], rows: int) -> tuple[Any, Any, Callable, Callable]:
    """The model, its optimizer, one step's compute and its gradient all-reduce."""
    import numpy as np

    import glassgrad as gg
    from glassgrad import distributed as dist

    rng = np.random.default_rng(0)
    X = rng.normal(size=(GLOBAL_BATCH, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], GLOBAL_BATCH)
    a, b = dist.shard_bounds(GLOBAL_BATCH, dist.rank(), dist.world_size())
    xb, yb = gg.tensor(X[a:b][:rows]), gg.tensor(y[a:b][:rows])
    net = gg.nn.MLP(sizes, activation="relu", seed=0)
    opt = gg.optim.SGD(net.parameters(), lr=1e-3)
    reducer = dist.GradientReducer(list(net.parameters()))

    def compute() -> float:
        opt.zero_grad()
        loss = gg.nn.functional.cross_entropy(net(xb), yb)
        loss.backward()
        return loss.item()

    def reduce() -> None:
        reducer.reduce(len(xb), 1.0)

    return net, opt, compute, reduce


def worker_overhead() -> None:
    from glassgrad import distributed as dist

    for target in SIZES:
        row = overhead_at(max(1, round((target - 10) / (784 + 1 + 10))))
        if dist.is_main():
            print(json.dumps(row), flush=True)


def overhead_at(hidden: int) -> dict:
    """Step compute, fused all-reduce and bare Allreduce times of a 784-hidden-10 MLP."""
    import numpy as np
    from mpi4py import MPI

    from glassgrad import distributed as dist

    net, opt, compute, reduce = mlp_step([784, hidden, 10], GLOBAL_BATCH)
    params = sum(p.numel() for p in net.parameters())
    repeat = 3 if params > 3 * 10**6 else 10
    compute()
    t_compute = slowest_median(lambda: (compute(), opt.step()), repeat)
    t_reduce = slowest_median(reduce, repeat)
    raw = np.ones(params, np.float32)
    comm = dist.comm._group().comm
    t_raw = slowest_median(lambda: comm.Allreduce(MPI.IN_PLACE, raw), repeat)
    return {"params": params, "ranks": dist.world_size(), "compute": t_compute,
            "reduce": t_reduce, "allreduce": t_raw}


def worker_scaling() -> None:
    from glassgrad import distributed as dist

    net, opt, compute, reduce = mlp_step([784, 512, 512, 10], GLOBAL_BATCH)
    for _ in range(3):
        compute(), reduce(), opt.step()
    steps = slowest_times(lambda: (compute(), reduce(), opt.step()), 30)
    t_compute = slowest_median(lambda: (compute(), opt.step()), 30)
    if dist.is_main():
        print(json.dumps({"ranks": dist.world_size(), "step": statistics.median(steps),
                          "fastest": min(steps), "compute": t_compute,
                          "threads": os.environ.get("OPENBLAS_NUM_THREADS")}), flush=True)


def worker_alphabeta() -> None:
    import numpy as np
    from mpi4py import MPI

    from glassgrad import distributed as dist

    comm = dist.comm._group().comm
    for floats in (1, 16, 256, 4096, 65536, 2**20, 10**7):
        buf = np.ones(floats, np.float32)
        repeat = 200 if floats <= 4096 else 30 if floats <= 2**20 else 5
        # the fastest call: on a shared machine, other work only ever adds time
        t = min(slowest_times(lambda b=buf: comm.Allreduce(MPI.IN_PLACE, b), repeat))
        if dist.is_main():
            print(json.dumps({"bytes": 4 * floats, "seconds": t}), flush=True)


# ----------------------------------------------------------------------------- reports
def report_overhead() -> None:
    rows = []
    for r in launch("overhead", 2, 1):
        comm = r["reduce"] / (r["compute"] + r["reduce"])
        rows.append([f"{r['params']:,}", ms(r["compute"]), ms(r["reduce"]), ms(r["allreduce"]),
                     f"{comm:.1%}"])
    table("One step on 2 ranks, global batch 1024 (512 per rank), 784-h-10 ReLU MLP, SGD "
          "(ms; median, slowest rank)",
          ["parameters", "compute", "fused all-reduce", "bare Allreduce", "communicating"], rows)


def report_scaling() -> None:
    one = launch("scaling", 1, 2)[0]
    two = launch("scaling", 2, 1)[0]
    rows = [["1 rank × 2 threads", ms(one["step"]), ms(one["fastest"]), ms(one["compute"]),
             "1.00"],
            ["2 ranks × 1 thread", ms(two["step"]), ms(two["fastest"]), ms(two["compute"]),
             f"{two['step'] / one['step']:.2f}"]]
    table("784-512-512-10 at global batch 1024, SGD (ms per step)",
          ["layout", "median step", "fastest step", "median compute only",
           "median step / 1-rank's"], rows)


def report_alphabeta() -> None:
    points = launch("alphabeta", 2, 1)
    size = [p["bytes"] for p in points]
    t = [p["seconds"] for p in points]
    # 2 ranks: the ring's 2(N-1) latencies and 2(N-1)/N·M bytes make 2α + M·β. α from the
    # smallest message (all latency); β from slopes between large ones, in cache and not.
    alpha = t[0] / 2
    beta_cache = (t[-2] - t[-3]) / (size[-2] - size[-3])
    beta_memory = (t[-1] - t[-2]) / (size[-1] - size[-2])
    rows = [[f"{b:,}", f"{s * 1e6:.1f}", f"{b / s / 1e9:.2f}"] for b, s in zip(size, t)]
    table(f"Allreduce between 2 ranks on this machine (shared memory): α = {alpha * 1e6:.2f} "
          f"µs; β = {beta_cache * 1e9:.2f} ns/byte up to 4 MB (in cache), "
          f"{beta_memory * 1e9:.2f} ns/byte beyond (memory bound)",
          ["bytes", "µs", "GB/s"], rows)


def report_model(seconds_per_param_sample: float) -> None:
    """Ring all-reduce on CLUSTER against compute at this machine's per-core speed."""
    a, b = CLUSTER["alpha"], CLUSTER["beta"]
    rows = []
    for name, params in (("784-512-512-10", 669_706), ("10⁷ parameters", 10**7),
                         ("10⁸ parameters", 10**8)):
        for n in (8, 16, 32, 64, 128, 256):
            t_comm = 2 * (n - 1) * a + 2 * (n - 1) / n * 4 * params * b
            per_sample = seconds_per_param_sample * params
            # communication equals compute when (B / n)·per_sample = t_comm
            b_star = n * t_comm / per_sample
            eff = (GLOBAL_BATCH / n * per_sample) / (GLOBAL_BATCH / n * per_sample + t_comm)
            rows.append([name, str(n), ms(t_comm), f"{b_star:,.0f}", f"{eff:.0%}"])
    table(f"Model (not measured): ring all-reduce on {CLUSTER['name']}, one core per rank "
          f"at {seconds_per_param_sample * 1e9:.2f} ns per parameter·sample",
          ["model", "ranks", "all-reduce ms", "global batch where comm = compute",
           f"efficiency at batch {GLOBAL_BATCH}"], rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", choices=["overhead", "scaling", "alphabeta"])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        sys.path.insert(0, str(SRC))
        globals()[f"worker_{args.worker}"]()
        return
    print(f"# glassgrad data-parallel benchmark ({os.cpu_count()} cores)")
    if args.only in (None, "overhead"):
        report_overhead()
    if args.only in (None, "scaling"):
        report_scaling()
    if args.only in (None, "alphabeta"):
        report_alphabeta()
        one = launch("scaling", 1, 1)[0]  # a step's compute on one core, per param·sample
        report_model(one["compute"] / (669_706 * GLOBAL_BATCH))


if __name__ == "__main__":
    main()

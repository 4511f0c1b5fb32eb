"""A LeNet-5 training step, glassgrad against PyTorch on the CPU.

    python benchmarks/lenet.py                # 5 rounds
    python benchmarks/lenet.py --rounds 9 --number 30
    python benchmarks/lenet.py --threads 1      # both libraries on one thread
    python benchmarks/lenet.py --against ../main # also another checkout's glassgrad (before)
    python benchmarks/lenet.py --compiled        # also gg.compile's NumPy replay and C step

One step: forward of LeNet-5 (conv 1→6 5×5 pad 2, ReLU, max-pool 2, conv 6→16 5×5, ReLU,
max-pool 2, linear 400→120→84→10 with ReLUs) on a batch of 64 28×28 grey images, cross
entropy, backward, SGD update. Each library runs in its own process (so neither one's
threads or allocator disturbs the other), in rounds of alternating order (A B, B A, ...);
each process reports the median of its timed loops, the table the median over rounds and
the median of the per-round ratios. Both libraries use their default thread counts, or
``--threads`` each (set through OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS
before either library loads): on a machine shared with other work, one thread each gives the
steadier comparison. ``--against CHECKOUT`` adds that checkout's glassgrad as a third
contender in every round, and the per-round ratio of this checkout's time to it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

BATCH = 64
LIBRARIES = ("glassgrad", "PyTorch")
# gg.compile(loss_fn, optimizer=opt): the NumPy replay, and the whole step as one C function
COMPILED = ("glassgrad, compiled", "glassgrad, compiled, C")
AGAINST = "glassgrad (against)"


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 1, 28, 28)).astype(np.float32)
    return x, rng.integers(0, 10, BATCH)


def lenet(nn: Any) -> Any:
    """LeNet-5 from ``nn`` (glassgrad.nn or torch.nn): the same layers, the same names."""

    class LeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
            self.classifier = nn.Sequential(
                nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                nn.Linear(84, 10))

        def forward(self, x: Any) -> Any:
            h = self.features(x)
            return self.classifier(h.reshape(h.shape[0], -1))

    return LeNet()


def glassgrad_step(src: str | None = None, backend: str | None = None) -> Callable[[], None]:
    """The step on this checkout's glassgrad, or on the one under ``src``; eager, or
    compiled with the optimizer (``backend`` "numpy" or "c")."""
    sys.path.insert(0, src or os.path.join(os.path.dirname(__file__), "..", "src"))
    import glassgrad as gg  # noqa: PLC0415

    model = lenet(gg.nn)
    opt = gg.optim.SGD(model.parameters(), lr=0.01)
    x, y = _data()
    xs = gg.tensor(x)
    if backend is not None:
        compiled = gg.compile(lambda X, Y: gg.nn.functional.cross_entropy(model(X), Y),
                              optimizer=opt, backend=backend)
        return lambda: compiled(xs, y)

    def step() -> None:
        opt.zero_grad()
        gg.nn.functional.cross_entropy(model(xs), y).backward()
        opt.step()

    return step


def torch_step() -> Callable[[], None]:
    import torch  # noqa: PLC0415

    model = lenet(torch.nn)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = _data()
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xs), ys).backward()
        opt.step()

    return step


def worker(library: str, number: int, repeat: int, src: str | None = None) -> float:
    """Median seconds per step over ``repeat`` timed loops of ``number`` steps."""
    backend = {COMPILED[0]: "numpy", COMPILED[1]: "c"}.get(library)
    step = torch_step() if library == "PyTorch" else glassgrad_step(src, backend)
    for _ in range(max(3, number // 4)):  # warm-up
        step()
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        for _ in range(number):
            step()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def _spawn(library: str, number: int, repeat: int, threads: int | None,
           against: str | None = None) -> float:
    env = dict(os.environ)
    if threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    src = ["--src", os.path.join(os.path.abspath(against), "src")] if against else []
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", library,
                        "--number", str(number), "--repeat", str(repeat), *src],
                       capture_output=True, text=True, timeout=600, check=True, env=env)
    return json.loads(r.stdout.strip().splitlines()[-1])["seconds"]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--number", type=int, default=20, help="steps per timed loop")
    p.add_argument("--repeat", type=int, default=5, help="timed loops per process")
    p.add_argument("--threads", type=int, help="threads per library (default: theirs)")
    p.add_argument("--against", metavar="CHECKOUT",
                   help="also time the glassgrad of this checkout (a before/after)")
    p.add_argument("--compiled", action="store_true",
                   help="also time the step compiled with gg.compile: NumPy replay and C")
    p.add_argument("--worker", choices=(*LIBRARIES, *COMPILED), help=argparse.SUPPRESS)
    p.add_argument("--src", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps({"seconds": worker(a.worker, a.number, a.repeat, a.src)}))
        return
    contenders = (*LIBRARIES, *(COMPILED if a.compiled else ()),
                  *((AGAINST,) if a.against else ()))
    times: dict[str, list[float]] = {lib: [] for lib in contenders}
    for r in range(a.rounds):
        for lib in (contenders if r % 2 == 0 else contenders[::-1]):
            times[lib].append(_spawn("glassgrad" if lib == AGAINST else lib, a.number,
                                     a.repeat, a.threads, a.against if lib == AGAINST else None))
        print(f"round {r + 1}/{a.rounds}: " + ", ".join(
            f"{lib} {times[lib][-1] * 1e3:.2f} ms" for lib in contenders), file=sys.stderr)
    ratios = [g / t for g, t in zip(times["glassgrad"], times["PyTorch"])]
    threads = f"{a.threads} thread(s) each" if a.threads else "default threads"
    print(f"LeNet-5 training step, batch {BATCH} of 28×28, {os.cpu_count()} cores, {threads}; "
          f"{a.rounds} rounds, each library in its own process, medians:")
    for lib in contenders:
        print(f"  {lib:24s} {statistics.median(times[lib]) * 1e3:7.2f} ms per step")
    for lib in COMPILED if a.compiled else ():
        own = [c / g for c, g in zip(times[lib], times["glassgrad"])]
        print(f"  {lib} / glassgrad: {statistics.median(own):.2f}× "
              f"(rounds {min(own):.2f}–{max(own):.2f}×)")
    print(f"  glassgrad / PyTorch: {statistics.median(ratios):.2f}× "
          f"(rounds {min(ratios):.2f}–{max(ratios):.2f}×; goal: within 1.5×)")
    if a.against:
        own = [g / b for g, b in zip(times["glassgrad"], times[AGAINST])]
        print(f"  glassgrad / {a.against}: {statistics.median(own):.2f}× "
              f"(rounds {min(own):.2f}–{max(own):.2f}×)")


if __name__ == "__main__":
    main()

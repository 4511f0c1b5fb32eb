"""Fair speed comparisons: every contender in its own process, alternated over rounds.

    python benchmarks/fair.py                     # every workload, 5 rounds (~5 min on 2 cores)
    python benchmarks/fair.py --rounds 9 --only xor mlp128
    python benchmarks/fair.py --json results.json

Why separate processes: NumPy's OpenBLAS and PyTorch's OpenMP keep their worker threads
spinning for a while after each call, so two libraries timed in one process steal each
other's cores (on 2 cores, PyTorch's 784-512-512-10 step at batch 128 measured 3.5 ms alone
and 5.7-7.3 ms interleaved with NumPy). Why rounds: these machines drift between fast and
slow phases, so each round runs every contender once (in alternating order) and a ratio is
taken within the round, where the phase is shared; the table reports per-contender medians,
the median of the per-round ratios, and their range over the rounds.

Each worker builds its step, warms it up, times ``--repeat`` loops and reports the median
time per call and its peak RSS (VmHWM: the compiled first call, which records, included).
``benchmarks/run.py`` holds the step definitions; this script only decides where and how
often they run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))

NUMBA = "glassgrad, compiled, numba"  # gg.compile(loss, optimizer=opt, backend="numba")
C_STEP = "glassgrad, compiled, C"  # gg.compile(loss, optimizer=opt, backend="c")

# workload -> (what it is, the baseline contender, contenders in order, calls per timed loop)
WORKLOADS: dict[str, tuple[str, str, list[str], int]] = {
    "add": ("(a + b).sum() fwd+bwd, 4-element float32 tensors", "glassgrad",
            ["glassgrad", "minimal tape", "PyTorch"], 4000),
    "xor": ("2-3-1 tanh XOR step (fwd, bwd, SGD)", "glassgrad",
            ["glassgrad", "glassgrad, compiled", C_STEP, NUMBA, "hand NumPy", "PyTorch",
             "JAX jit"],
            1000),
    "mlp128": ("784-512-512-10 ReLU MLP, SGD step, batch 128", "PyTorch",
               ["glassgrad", "glassgrad, compiled", "glassgrad, compiled, SGD folded", C_STEP,
                NUMBA, "hand NumPy", "PyTorch", "NumPy products only", "PyTorch products only"],
               20),
    "xor_adam": ("2-3-1 tanh XOR step with Adam (lr 0.01)", "glassgrad",
                 ["glassgrad", C_STEP, "PyTorch"], 1000),
    "mlp128_adam": ("784-512-512-10 ReLU MLP, Adam step, batch 128", "PyTorch",
                    ["glassgrad", C_STEP, "PyTorch", "NumPy products only"], 20),
    "mlp1024": ("784-512-512-10 ReLU MLP, SGD step, batch 1024", "PyTorch",
                ["glassgrad", "glassgrad, compiled", "glassgrad, compiled, SGD folded", C_STEP,
                 NUMBA, "hand NumPy", "PyTorch", "NumPy products only", "PyTorch products only"],
                4),
}


# =========================================================================== worker side
def _bench_module() -> Any:
    other = os.environ.get("FAIR_GLASSGRAD_SRC")
    if other:  # --against: this worker times another checkout's glassgrad (imported first,
        sys.path.insert(0, other)  # so run.py's own ../src path does not win)
        import glassgrad  # noqa: PLC0415

        where = os.path.dirname(os.path.dirname(os.path.abspath(glassgrad.__file__)))
        if where != os.path.abspath(other):  # (never time this checkout under the other name)
            raise RuntimeError(f"--against: imported glassgrad from {where}, not {other}")
    sys.path.insert(0, HERE)
    import run  # noqa: PLC0415  (the step definitions; it puts ../src on the path)

    return run


def _minimal_tape_step() -> Callable[[], None]:
    """A minimal tape (add and sum only, no checks, no broadcasting): about the floor of any
    autodiff engine written in Python on NumPy."""
    import numpy as np

    class T:
        __slots__ = ("data", "grad", "parents", "back")

        def __init__(self, data: Any, parents: tuple = (), back: Any = None) -> None:
            self.data, self.grad, self.parents, self.back = data, None, parents, back

        def __add__(self, other: T) -> T:
            return T(self.data + other.data, (self, other), lambda g: (g, g))

        def sum(self) -> T:
            return T(np.add.reduce(self.data), (self,), lambda g, x=self.data: (x * 0 + g,))

        def backward(self) -> None:
            order, seen, stack = [], set(), [self]
            while stack:  # (a tree here; a real tape would sort topologically)
                t = stack.pop()
                if id(t) not in seen:
                    seen.add(id(t))
                    order.append(t)
                    stack.extend(t.parents)
            self.grad = np.ones(self.data.shape, self.data.dtype)
            for t in order:
                if t.back is not None:
                    for p, g in zip(t.parents, t.back(t.grad)):
                        p.grad = g if p.grad is None else p.grad + g

    a, b = T(np.ones(4, np.float32)), T(np.ones(4, np.float32))

    def step() -> None:
        a.grad = b.grad = None
        (a + b).sum().backward()

    return step


def _products_only_torch(torch: Any, batch: int) -> Callable[[], None]:
    """PyTorch's matrix products of one MLP step: the floor on PyTorch's BLAS."""
    sizes = [784, 512, 512, 10]
    g = torch.Generator().manual_seed(0)
    Ws = [torch.randn(b, a, generator=g) for a, b in zip(sizes[:-1], sizes[1:])]
    acts = [torch.randn(batch, s, generator=g) for s in sizes]

    def step() -> None:
        for i, W in enumerate(Ws):
            acts[i] @ W.T
            acts[i + 1].T @ acts[i]
            if i:
                acts[i + 1] @ W

    return step


def _jax_xor_step() -> Callable[[], None]:
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    run = _bench_module()
    w1, b1, w2, b2 = (jnp.asarray(a) for a in run.xor_init())
    X, Y = jnp.asarray(run.XOR_X), jnp.asarray(run.XOR_Y)

    def loss(params: tuple) -> Any:
        w1, b1, w2, b2 = params
        return jnp.mean((jnp.tanh(X @ w1.T + b1) @ w2.T + b2 - Y) ** 2)

    @jax.jit
    def update(params: tuple) -> tuple:
        grads = jax.grad(loss)(params)
        return tuple(p - 0.1 * g for p, g in zip(params, grads))

    state = [(w1, b1, w2, b2)]

    def step() -> None:
        state[0] = update(state[0])
        state[0][0].block_until_ready()

    return step


def make_step(workload: str, contender: str) -> Callable[[], None]:
    """The step one worker times (imports only the library it needs)."""
    if contender == "minimal tape":
        return _minimal_tape_step()
    if contender == "JAX jit":
        return _jax_xor_step()
    run = _bench_module()
    torch = None
    if contender.startswith("PyTorch"):
        import torch  # noqa: PLC0415
    if workload == "add":
        return _add_sum_torch(torch) if torch else _add_sum_gg(run)
    mode = "c" if contender == C_STEP else "eager"
    if workload == "xor_adam":  # (PyTorch's default Adam: its foreach implementation)
        return (run.torch_xor_step(torch, adam=True) if torch
                else run.gg_xor_step(mode, adam=True))
    if workload == "mlp128_adam":
        if contender == "NumPy products only":
            return run.matmul_only_step(128)
        return (run.torch_mlp_step(torch, 128, adam=True) if torch
                else run.gg_mlp_step(128, mode, adam=True))
    if workload == "xor":
        return {"glassgrad": lambda: run.gg_xor_step(),
                "glassgrad, compiled": lambda: run.gg_xor_step("folded"),
                NUMBA: lambda: run.gg_xor_step("numba"),
                C_STEP: lambda: run.gg_xor_step("c"),
                "hand NumPy": run.numpy_xor_step,
                "PyTorch": lambda: run.torch_xor_step(torch)}[contender]()
    batch = int(workload.removeprefix("mlp"))
    return {"glassgrad": lambda: run.gg_mlp_step(batch),
            "glassgrad, compiled": lambda: run.gg_mlp_step(batch, "compiled"),
            "glassgrad, compiled, SGD folded": lambda: run.gg_mlp_step(batch, "folded"),
            NUMBA: lambda: run.gg_mlp_step(batch, "numba"),
            C_STEP: lambda: run.gg_mlp_step(batch, "c"),
            "hand NumPy": lambda: run.numpy_mlp_step(batch),
            "PyTorch": lambda: run.torch_mlp_step(torch, batch),
            "NumPy products only": lambda: run.matmul_only_step(batch),
            "PyTorch products only": lambda: _products_only_torch(torch, batch)}[contender]()


def _add_sum_gg(run: Any) -> Callable[[], None]:
    import numpy as np

    gg = run.gg
    a = gg.tensor(np.ones(4, np.float32), requires_grad=True)
    b = gg.tensor(np.ones(4, np.float32), requires_grad=True)

    def step() -> None:
        a.grad = b.grad = None
        (a + b).sum().backward()

    return step


def _add_sum_torch(torch: Any) -> Callable[[], None]:
    """The same work in PyTorch: ``(a + b).sum().backward()`` (benchmarks/run.py's
    ``tiny_add_torch`` is ``(a + b).backward(g)``, with no sum)."""
    a = torch.ones(4, requires_grad=True)
    b = torch.ones(4, requires_grad=True)

    def step() -> None:
        a.grad = b.grad = None
        (a + b).sum().backward()

    return step


def worker(workload: str, contender: str, number: int, repeat: int) -> dict[str, float]:
    step = make_step(workload, contender)
    step()  # the first call (a compiled step records here): counted in the peak RSS
    seconds = _bench_module().median_time(step, number, repeat=repeat)
    return {"seconds": seconds, "peak_rss": _vm_hwm()}


def _vm_hwm() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def matmul_worker(library: str, batch: int) -> dict[str, float]:
    """GFLOP/s of one library's float32 products at the MLP step's shapes."""
    import numpy as np

    sizes = [784, 512, 512, 10]
    rng = np.random.default_rng(0)
    out: dict[str, float] = {}
    for a, b in zip(sizes[:-1], sizes[1:]):
        shapes = {f"{batch}×{a} @ {a}×{b}": ((batch, a), (a, b)),
                  f"{b}×{batch} @ {batch}×{a}": ((b, batch), (batch, a))}
        for label, (sa, sb) in shapes.items():
            x = rng.standard_normal(sa).astype(np.float32)
            y = rng.standard_normal(sb).astype(np.float32)
            if library == "PyTorch":
                import torch  # noqa: PLC0415

                x, y = torch.from_numpy(x), torch.from_numpy(y)
            for _ in range(3):
                x @ y
            n = max(3, int(2e8 / (2 * sa[0] * sa[1] * sb[1])))
            best = []
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(n):
                    x @ y
                best.append((time.perf_counter() - t0) / n)
            out[label] = 2 * sa[0] * sa[1] * sb[1] / statistics.median(best) / 1e9
    return out


# =========================================================================== parent side
AGAINST = " (--against)"  # suffix of the contenders that time the other checkout


def _spawn(args: list[str], src: str | None = None) -> dict:
    env = dict(os.environ, FAIR_GLASSGRAD_SRC=src) if src else None
    r = subprocess.run([sys.executable, os.path.abspath(__file__), *args],
                       capture_output=True, text=True, timeout=600, env=env)
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def machine() -> dict[str, str]:
    """CPU, SIMD, BLAS of each library and threads: what the numbers depend on."""
    cpu = platform.processor() or "?"
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu in ("?", "x86_64", ""):
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = line
                    break
    except OSError:
        pass
    simd = [s for s in ("avx512f", "avx2", "fma", "neon") if f" {s}" in flags]
    info = {"cpu": cpu, "simd": ", ".join(simd) or "?", "cores": str(os.cpu_count()),
            "python": platform.python_version()}
    info["numpy"] = _spawn(["--describe", "numpy"]).get("text", "?")
    info["torch"] = _spawn(["--describe", "torch"]).get("text", "not installed")
    return info


def describe(library: str) -> str:
    if library == "numpy":
        import numpy as np

        try:
            from threadpoolctl import threadpool_info  # noqa: PLC0415

            pools = [f"{p['internal_api']} {p['version']} ({p.get('architecture', '?')}, "
                     f"{p['num_threads']} threads)" for p in threadpool_info()]
        except ImportError:
            cfg = np.show_config(mode="dicts") if np.__version__ >= "1.26" else {}
            blas = cfg.get("Build Dependencies", {}).get("blas", {})
            pools = [f"{blas.get('name', '?')} {blas.get('version', '')}"]
        return f"NumPy {np.__version__}, " + "; ".join(pools)
    import torch  # noqa: PLC0415

    blas = "MKL" if torch.backends.mkl.is_available() else "its bundled BLAS"
    return f"PyTorch {torch.__version__}, {blas}, {torch.get_num_threads()} threads"


def run_rounds(workload: str, rounds: int, repeat: int, against: str | None = None
               ) -> dict[str, Any]:
    title, base, contenders, number = WORKLOADS[workload]
    if against:  # each glassgrad contender also from the other checkout, for before/after
        contenders = [x for c in contenders
                      for x in ([c, c + AGAINST] if c.startswith("glassgrad") else [c])]
    times: dict[str, list[float]] = {c: [] for c in contenders}
    peaks: dict[str, int] = {}
    missing: dict[str, str] = {}
    for r in range(rounds):
        order = contenders if r % 2 == 0 else contenders[::-1]  # A B C, C B A, ...
        for c in order:
            if c in missing:
                continue
            res = _spawn(["--worker", workload, c.removesuffix(AGAINST), str(number),
                          str(repeat)], src=against if c.endswith(AGAINST) else None)
            if "error" in res:
                missing[c] = res["error"]
                continue
            times[c].append(res["seconds"])
            peaks[c] = max(peaks.get(c, 0), res["peak_rss"])
        print(f"  {workload}: round {r + 1}/{rounds} done", file=sys.stderr)
    rows = []
    for c in contenders:
        if c in missing or not times[c]:
            continue
        ratios = ([b / t for b, t in zip(times[base], times[c])] if times.get(base) else [])
        rows.append({"contender": c, "median_s": statistics.median(times[c]),
                     "speed_vs_base": statistics.median(ratios) if ratios else None,
                     "range": (min(ratios), max(ratios)) if ratios else None,
                     "peak_rss": peaks.get(c, 0), "rounds": len(times[c])})
    return {"workload": workload, "title": title, "base": base, "rows": rows,
            "missing": missing}


def _fmt_time(s: float) -> str:
    return f"{s * 1e6:.1f} µs" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def print_table(res: dict[str, Any]) -> None:
    print(f"\n### {res['title']}\n")
    print(f"| contender | median | speed vs {res['base']} (median of rounds) | range over "
          f"rounds | peak RSS |")
    print("|---|---|---|---|---|")
    for r in res["rows"]:
        sp = f"{r['speed_vs_base']:.2f}×" if r["speed_vs_base"] else "n/a"
        rg = f"{r['range'][0]:.2f}–{r['range'][1]:.2f}×" if r["range"] else "n/a"
        print(f"| {r['contender']} | {_fmt_time(r['median_s'])} | {sp} | {rg} | "
              f"{r['peak_rss'] / 2**20:.0f} MiB |")
    for c, why in res["missing"].items():
        print(f"\n({c}: not measured: {why})")


def print_matmul(batch: int, libs: dict[str, dict[str, float]]) -> None:
    print(f"\n### float32 matrix products of the MLP step at batch {batch}, GFLOP/s "
          f"(median of 5 loops, each library alone in its process)\n")
    names = [n for n in libs if "error" not in libs[n]]
    print("| shape | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for shape in libs[names[0]] if names else []:
        print(f"| {shape} | " + " | ".join(f"{libs[n][shape]:.1f}" for n in names) + " |")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeat", type=int, default=7, help="timed loops per worker")
    p.add_argument("--only", nargs="*", choices=[*WORKLOADS, "matmul"])
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--against", metavar="CHECKOUT",
                   help="also time each glassgrad contender with the glassgrad of another "
                        "checkout (e.g. a git worktree of an older commit), for before/after "
                        "tables")
    p.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    p.add_argument("--matmul-worker", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--describe", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        workload, contender, number, repeat = a.worker
        print(json.dumps(worker(workload, contender, int(number), int(repeat))))
        return
    if a.matmul_worker:
        print(json.dumps(matmul_worker(a.matmul_worker[0], int(a.matmul_worker[1]))))
        return
    if a.describe:
        print(json.dumps({"text": describe(a.describe)}))
        return
    if a.against and not os.path.isfile(os.path.join(a.against, "src", "glassgrad",
                                                     "__init__.py")):
        p.error(f"--against {a.against}: no glassgrad checkout there (src/glassgrad is "
                f"missing). Give the checkout's root, e.g. a worktree made by git worktree add.")
    info = machine()
    print("Machine: " + "; ".join(f"{k}: {v}" for k, v in info.items()))
    print(f"Each contender in its own process, {a.rounds} rounds in alternating order, "
          f"{a.repeat} timed loops per process; medians.")
    results: dict[str, Any] = {"machine": info, "workloads": [], "matmul": {}}
    for w in a.only or [*WORKLOADS, "matmul"]:
        if w == "matmul":
            for batch in (128, 1024):
                libs = {lib: _spawn(["--matmul-worker", lib, str(batch)])
                        for lib in ("NumPy", "PyTorch")}
                results["matmul"][batch] = libs
                print_matmul(batch, libs)
            continue
        res = run_rounds(w, a.rounds, a.repeat,
                         os.path.join(os.path.abspath(a.against), "src") if a.against else None)
        results["workloads"].append(res)
        print_table(res)
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

"""glassgrad.distributed across processes: each test launches ``mpiexec -n 2`` or ``-n 4``
(oversubscribed on small machines) under a hard timeout, so a hang fails instead of stalling.

This file is also the program the ranks run: ``python -m mpi4py tests/test_distributed_mpi.py
SCENARIO OUTDIR`` calls ``scenario_SCENARIO``, which writes what each rank saw to OUTDIR, and
the test compares it with the same computation done here in one process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve()
LIMIT = 90  # seconds for one launch; a healthy one takes one or two
MPIEXEC = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}{os.pathsep}"
                                       f"{os.environ.get('PATH', '')}")
STEPS = 20
BATCHES = (37, 3, 64)  # global batch sizes, cycled: uneven shards; 3 < 4 ranks leaves one empty

if __name__ != "__main__":  # under pytest: these tests need MPI
    pytest.importorskip("mpi4py", reason="needs mpi4py, which is not installed: "
                                     'pip install "glassgrad[distributed]"')
    if MPIEXEC is None:
        pytest.skip("mpiexec not found (pip install 'glassgrad[distributed]')",
                    allow_module_level=True)

import glassgrad as gg  # noqa: E402
from glassgrad import distributed as dist  # noqa: E402


# ----------------------------------------------------------------------------- launching
def launch(n: int | None, *args: str, mpmd: list[list[str]] | None = None,
           timeout: int = LIMIT) -> subprocess.CompletedProcess:
    """``mpiexec -n n python -m mpi4py ARGS`` (or the MPMD ``mpmd`` command lines) under
    ``timeout`` (coreutils: it ends mpiexec, which ends its ranks)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    if mpmd is None:
        cmd = [MPIEXEC, "-n", str(n), sys.executable, "-m", "mpi4py", *args]
    else:
        cmd = [MPIEXEC]
        for i, line in enumerate(mpmd):
            cmd += [*([":"] if i else []), "-n", "1", sys.executable, *line]
    return subprocess.run(["timeout", "-k", "5", str(timeout), *cmd], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=timeout + 15)


def run_scenario(name: str, n: int, outdir: Path) -> list[dict]:
    proc = launch(n, str(HERE), name, str(outdir))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [json.loads((outdir / f"rank{r}.json").read_text()) for r in range(n)]


# ----------------------------------------------------------------------------- the problems
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(200, 5)).astype(np.float32), rng.integers(0, 3, 200)


def model() -> gg.nn.Module:
    return gg.nn.MLP([5, 8, 3], activation="tanh", seed=0)


OPTIMIZERS = {
    "sgd_momentum": lambda params: gg.optim.SGD(params, lr=0.1, momentum=0.9),
    "adam": lambda params: gg.optim.Adam(params, lr=0.01),
}


def train_by_hand(kind: str, rank: int, size: int) -> list[list[np.ndarray]]:
    """20 steps on global batches of BATCHES, this rank taking its part; the weights after
    each step. With size 1 it is the plain single-process loop."""
    X, y = data()
    net = model()
    opt = OPTIMIZERS[kind](net.parameters())
    if size > 1:
        dist.broadcast_parameters(net)
        opt = dist.DistributedOptimizer(opt)
    history, lo = [], 0
    for step in range(STEPS):
        hi = lo + BATCHES[step % len(BATCHES)]
        a, b = dist.shard_bounds(hi - lo, rank, size)
        xb, yb = X[lo + a:lo + b], y[lo + a:lo + b]
        opt.zero_grad()
        loss = None
        if len(xb):
            loss = gg.nn.functional.cross_entropy(net(gg.tensor(xb)), gg.tensor(yb))
            loss.backward()
        if size > 1:
            opt.step(count=len(xb), loss=loss)
        else:
            opt.step()
        history.append([p.numpy().copy() for p in net.parameters()])
        lo = hi
    return history


def fit_moons(distributed: bool, compile_step: bool) -> tuple[gg.History, gg.nn.Module]:
    X, y = gg.data.moons(203, seed=0)
    net = gg.nn.MLP([2, 16, 1], activation="tanh", seed=0)
    h = gg.fit(net, X, y, loss="bce_with_logits", lr=0.05, epochs=6, batch_size=37,
               validation_split=0.2, early_stopping=2, verbose=0, seed=0,
               compile=compile_step, distributed=distributed)
    return h, net


def write(outdir: str, **values: object) -> None:
    Path(outdir, f"rank{dist.rank()}.json").write_text(json.dumps(values))


# ----------------------------------------------------------------------------- scenarios
def scenario_equivalence(outdir: str) -> None:
    """By hand (SGD momentum, Adam) and through fit (eager and compiled)."""
    r, n = dist.rank(), dist.world_size()
    out: dict[str, object] = {}
    for kind in OPTIMIZERS:
        steps = train_by_hand(kind, r, n)
        out[kind] = [[w.tolist() for w in ws] for ws in steps]
    for compile_step in (False, True):
        h, net = fit_moons(True, compile_step)
        out[f"fit_compile={compile_step}"] = {"history": h.history,
                                              "digest": dist.parameters_digest(net),
                                              "weights": [p.numpy().tolist()
                                                          for p in net.parameters()]}
    out["in_sync"] = dist.check_in_sync(net) == dist.parameters_digest(net)  # or it raises
    write(outdir, **out)


def scenario_collectives(outdir: str) -> None:
    """all_reduce of rank-dependent values; broadcast_parameters over different weights."""
    r = dist.rank()
    reduced = {op: dist.all_reduce(np.array([r, -r], np.float32), op=op).tolist()
               for op in ("sum", "mean", "max", "min")}
    reduced["tensor"] = dist.all_reduce(gg.tensor([float(r)]), op="sum").numpy().tolist()
    reduced["number"] = dist.all_reduce(r + 1, op="sum")
    net = gg.nn.MLP([3, 4, 2], seed=r)  # different weights on every rank
    own = dist.parameters_digest(net)
    try:
        dist.DistributedOptimizer(gg.optim.SGD(net.parameters(), lr=0.1))
        refused = None
    except dist.RankMismatchError as e:
        refused = str(e)
    dist.broadcast_parameters(net)
    write(outdir, reduced=reduced, own=own, after=dist.parameters_digest(net), refused=refused)


def scenario_errors(outdir: str) -> None:
    """Ranks that disagree, then a NaN loss on rank 1 only: each error on every rank alike."""
    r = dist.rank()
    X, y = gg.data.moons(100, seed=0)
    caught: dict[str, object] = {}
    cases = {
        "model": lambda: ([2, 8 + r, 1], X, y, 0),
        "data_size": lambda: ([2, 8, 1], X[:100 - r], y[:100 - r], 0),
        "seed": lambda: ([2, 8, 1], X, y, r),
    }
    for name, case in cases.items():
        sizes, Xr, yr, seed = case()
        net = gg.nn.MLP(sizes, seed=1)
        before = dist.parameters_digest(net)
        try:
            gg.fit(net, Xr, yr, epochs=1, batch_size=10, verbose=0, seed=seed,
                   distributed=True)
            caught[name] = None
        except dist.RankMismatchError as e:
            caught[name] = {"message": str(e), "unchanged": dist.parameters_digest(net) == before}

    step = [0]

    def loss_nan_on_rank_1_at_step_3(out: gg.Tensor, target: gg.Tensor) -> gg.Tensor:
        loss = gg.nn.functional.binary_cross_entropy_with_logits(out, target)
        return loss * float("nan") if r == 1 and step[0] == 3 else loss

    net = gg.nn.MLP([2, 8, 1], seed=0)
    seen: list[str] = []
    watch = gg.training.LambdaCallback(
        on_batch_start=lambda t, s: step.__setitem__(0, s),
        on_batch_end=lambda t, s, loss: seen.append(dist.parameters_digest(net)))
    try:
        gg.fit(net, X, y, loss=loss_nan_on_rank_1_at_step_3, epochs=2, batch_size=10,
               verbose=0, seed=0, distributed=True, callbacks=[watch])
        caught["nan"] = None
    except gg.training.NonFiniteLossError as e:
        caught["nan"] = {"message": str(e), "step": e.step, "ranks": list(e.ranks),
                         "unchanged_since_step_2": dist.parameters_digest(net) == seen[-1],
                         "steps_done": len(seen)}
    write(outdir, **caught)


def scenario_abort(outdir: str) -> None:
    """Rank 1 raises in the middle of training while rank 0 waits in the all-reduce."""
    def fail(trainer: object, step: int, loss: float) -> None:
        if dist.rank() == 1 and step == 3:
            raise RuntimeError("rank 1 broke on purpose at step 3")

    X, y = gg.data.moons(400, seed=0)
    gg.fit(gg.nn.MLP([2, 8, 1], seed=0), X, y, epochs=200, batch_size=8, verbose=0, seed=0,
           distributed=True, callbacks=[gg.training.LambdaCallback(on_batch_end=fail)])


# ----------------------------------------------------------------------------- the tests
@pytest.fixture(scope="module", params=[2, 4], ids=["2 ranks", "4 ranks"])
def equivalence(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                ) -> tuple[int, list[dict]]:
    n = request.param
    return n, run_scenario("equivalence", n, tmp_path_factory.mktemp(f"eq{n}"))


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_n_ranks_take_the_steps_of_one_rank_on_the_global_batch(equivalence, kind: str) -> None:
    n, ranks = equivalence
    reference = train_by_hand(kind, 0, 1)
    for step, (ours, theirs) in enumerate(zip(ranks[0][kind], reference), start=1):
        for w, w_ref in zip(ours, theirs):
            np.testing.assert_allclose(np.asarray(w, np.float32), w_ref, rtol=2e-5, atol=2e-6,
                                       err_msg=f"{kind}, {n} ranks, step {step}")
    moved = np.abs(np.asarray(ranks[0][kind][-1][0]) - reference[0][0]).max()
    assert moved > 1e-2  # the weights travelled: the comparison above is not of a still model
    for r in range(1, n):  # bitwise the same weights on every rank
        assert ranks[r][kind] == ranks[0][kind]


@pytest.mark.parametrize("compile_step", [False, True])
def test_fit_distributed_matches_fit_and_every_rank_agrees(equivalence, compile_step) -> None:
    n, ranks = equivalence
    key = f"fit_compile={compile_step}"
    h_ref, net_ref = fit_moons(False, compile_step)
    ours = ranks[0][key]
    assert set(ours["history"]) == set(h_ref.history)
    for name, values in h_ref.history.items():
        np.testing.assert_allclose(ours["history"][name], values, rtol=1e-4, atol=1e-5,
                                   err_msg=name)
    for w, p in zip(ours["weights"], net_ref.parameters()):
        np.testing.assert_allclose(np.asarray(w, np.float32), p.numpy(), rtol=1e-4, atol=1e-5)
    assert all(ranks[r][key] == ours for r in range(n))  # digests, history: identical
    assert all(ranks[r]["in_sync"] for r in range(n))


def test_collectives_combine_every_rank_and_broadcast_copies_rank_0(tmp_path) -> None:
    ranks = run_scenario("collectives", 4, tmp_path)
    for saw in ranks:  # ranks 0..3 sent [r, -r]
        assert saw["reduced"] == {"sum": [6, -6], "mean": [1.5, -1.5], "max": [3, 0],
                                  "min": [0, -3], "tensor": [6.0], "number": 10}
        assert saw["after"] == ranks[0]["own"]  # rank 0's weights, bitwise
        assert "call broadcast_parameters(model) first" in saw["refused"]
        assert "rank 1 of 4 differs from rank 0: parameter values (digest" in saw["refused"]
    assert len({saw["own"] for saw in ranks}) == 4  # they did start different


@pytest.fixture(scope="module")
def errors(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return run_scenario("errors", 2, tmp_path_factory.mktemp("errors"))


@pytest.mark.parametrize("case, difference", [
    ("model", r"model entry 0 is \('0.weight', \(9, 2\), 'float32'\) on rank 1 but "
              r"\('0.weight', \(8, 2\), 'float32'\) on rank 0"),
    ("data_size", r"data shapes entry 0 is \(99, 2\) on rank 1 but \(100, 2\) on rank 0"),
    ("seed", r"random generator state \(from seed=\) \(digest [0-9a-f]+… on rank 1"),
])
def test_ranks_that_disagree_are_stopped_before_any_weight_moves(errors, case,
                                                                 difference) -> None:
    for rank_saw in errors:
        err = rank_saw[case]
        assert err is not None, f"{case}: no error"
        assert "rank 1 of 2 differs from rank 0" in err["message"]
        assert re.search(difference, err["message"]), err["message"]
        assert err["unchanged"]


def test_a_nan_on_one_rank_stops_every_rank_at_that_step(errors) -> None:
    for rank_saw in errors:
        nan = rank_saw["nan"]
        assert nan is not None and nan["step"] == 3 and nan["ranks"] == [1]
        assert "on rank 1 of 2" in nan["message"] and "step 3" in nan["message"]
        assert nan["steps_done"] == 2 and nan["unchanged_since_step_2"]


def aborted_with(words: list[str], mpmd: list[list[str]], tries: int = 3) -> str:
    """Launch a job that one rank aborts: every try must end by the abort, not the timeout;
    the rank's message must reach stderr in at least one. (On a loaded machine mpiexec may
    end the job before it has forwarded the aborting rank's last lines; a job that never
    prints them, or hangs, still fails every try.)"""
    for _ in range(tries):
        proc = launch(None, mpmd=mpmd, timeout=60)
        assert proc.returncode not in (0, 124, 137), proc.stderr  # failed, not by timeout
        if all(w in proc.stderr for w in words):
            return proc.stderr
    raise AssertionError(f"{words} never reached stderr in {tries} tries:\n{proc.stderr}")


@pytest.mark.parametrize("runner", [["-m", "mpi4py"], []], ids=["python -m mpi4py", "python"])
def test_an_error_on_one_rank_ends_the_job_with_its_message(tmp_path, runner) -> None:
    err = aborted_with(["rank 1 broke on purpose at step 3"],
                       [[*runner, str(HERE), "abort", str(tmp_path)]] * 2)
    # the error on the first line, before the traceback (whose end mpiexec may cut off)
    assert ("rank 1 of 2 failed (RuntimeError: rank 1 broke on purpose at step 3); ending "
            "every rank") in err


def test_cli_trains_on_two_ranks_and_only_rank_0_prints_and_saves(tmp_path) -> None:
    model_path = tmp_path / "xor.safetensors"
    proc = launch(2, "-m", "glassgrad", "train", "xor", "--distributed", "--save",
                  str(model_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("glassgrad train xor") == 1
    assert "data-parallel over 2 MPI processes" in proc.stdout
    assert proc.stdout.count("saved the model") == 1 and model_path.exists()
    assert re.search(r"train +[0-9.]+ +100\.0% +\(4/4\)", proc.stdout)  # XOR learned


def test_cli_ranks_that_disagree_print_one_error(tmp_path) -> None:
    seeds = [["-m", "glassgrad", "train", "moons", "--distributed", "--seed", s] for s in "01"]
    proc = launch(None, mpmd=seeds)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("glassgrad: error:") == 1
    assert "rank 1 of 2 differs from rank 0: training data" in proc.stderr


def test_cli_error_on_one_rank_ends_every_rank(tmp_path) -> None:
    aborted_with(["error on rank 1 of 2", "missing.csv"],
                 [["-m", "glassgrad", "train", "moons", "--distributed"],
                  ["-m", "glassgrad", "train", str(tmp_path / "missing.csv"), "--distributed"]])


if __name__ == "__main__":
    globals()[f"scenario_{sys.argv[1]}"](sys.argv[2])

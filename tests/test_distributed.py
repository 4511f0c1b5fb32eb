"""glassgrad.distributed in one process: the API without MPI, the sharding arithmetic, and
fit(distributed=True) equal to fit() bit for bit. The multi-process tests are in
test_distributed_mpi.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import distributed as dist
from glassgrad.distributed import comm
from glassgrad.distributed.shard import batch_plan, positions

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(autouse=True)
def one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A group of one without MPI, so this test process never starts MPI itself."""
    monkeypatch.setattr(comm, "_GROUP", comm._Group(None, 0, 1))


def test_a_single_process_is_rank_0_of_1() -> None:
    dist.barrier()
    assert (dist.rank(), dist.world_size(), dist.is_main()) == (0, 1, True)


@pytest.mark.parametrize("value, expected, kind", [
    (np.array([1.5, -2.0], np.float32), np.array([1.5, -2.0], np.float32), np.ndarray),
    (gg.tensor([[1.0, 2.0]]), np.array([[1.0, 2.0]], np.float32), gg.Tensor),
    (3, 3.0, float),  # a mean of integers is a float
    (np.array([True, False]), np.array([1.0, 0.0]), np.ndarray),
])
def test_all_reduce_of_one_process_is_the_value_in_its_kind(value: object, expected: object,
                                                            kind: type) -> None:
    out = dist.all_reduce(value, op="mean")
    assert type(out) is kind and out is not value
    got = out.numpy() if isinstance(out, gg.Tensor) else np.asarray(out)
    np.testing.assert_allclose(got, expected)


@pytest.mark.parametrize("op, value, error", [
    ("avg", np.ones(2), ValueError),
    ("product", np.ones(2), ValueError),
    ("sum", np.array(["a"]), TypeError),
])
def test_all_reduce_refuses_bad_input(op: str, value: np.ndarray, error: type) -> None:
    with pytest.raises(error, match="all_reduce"):
        dist.all_reduce(value, op=op)


@pytest.mark.parametrize("n, size", [(10, 4), (3, 4), (0, 2), (37, 2), (37, 4), (1024, 3)])
def test_shards_are_disjoint_cover_and_differ_by_at_most_one(n: int, size: int) -> None:
    bounds = [dist.shard_bounds(n, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(bounds[r][1] == bounds[r + 1][0] for r in range(size - 1))
    lengths = [b - a for a, b in bounds]
    assert max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True)


@pytest.mark.parametrize("n, batch_size, size", [(100, 37, 4), (10, 3, 4), (9, 32, 2)])
def test_each_epoch_position_belongs_to_one_rank_in_its_own_batch(n: int, batch_size: int,
                                                                    size: int) -> None:
    owners = np.concatenate([positions(n, batch_size, r, size) for r in range(size)])
    assert np.array_equal(np.sort(owners), np.arange(n))
    for r in range(size):
        for lo, hi, a, b in batch_plan(n, batch_size, r, size):
            assert lo <= a <= b <= hi and hi - lo == min(batch_size, n - lo)


def test_sharded_loader_of_one_process_is_the_data_loader() -> None:
    X, y = np.arange(20, dtype=np.float32).reshape(10, 2), np.arange(10)
    ours = [yb.numpy() for _, yb in dist.ShardedLoader(X, y, batch_size=4, shuffle=True, seed=3)]
    theirs = [yb.numpy() for _, yb in gg.data.DataLoader(X, y, batch_size=4, shuffle=True,
                                                         seed=3)]
    assert [a.tolist() for a in ours] == [b.tolist() for b in theirs]


@pytest.mark.parametrize("kwargs, error", [
    ({"batch_size": 0}, ValueError),
    ({"batch_size": 2, "seed": 1.5}, TypeError),
    ({"batch_size": 2, "y": np.arange(3)}, ValueError),
])
def test_sharded_loader_refuses_bad_arguments(kwargs: dict, error: type) -> None:
    with pytest.raises(error, match="ShardedLoader"):
        dist.ShardedLoader(np.zeros((4, 2)), **kwargs)


def _moons_fit(**kw: object) -> tuple[gg.History, str]:
    X, y = gg.data.moons(200, seed=0)
    model = gg.nn.MLP([2, 8, 1], activation="tanh", seed=0)
    h = gg.fit(model, X, y, loss="bce_with_logits", lr=0.05, epochs=4, batch_size=23,
               validation_split=0.25, verbose=0, seed=0, **kw)
    return h, dist.parameters_digest(model)


@pytest.mark.parametrize("compile_step", [False, True])
def test_fit_distributed_in_one_process_equals_fit_bit_for_bit(compile_step: bool) -> None:
    plain, plain_digest = _moons_fit(compile=compile_step)
    ours, our_digest = _moons_fit(compile=compile_step, distributed=True)
    assert our_digest == plain_digest
    assert ours.history == plain.history
    assert ours.params["distributed"] == 1


def _step_with(loss_value: float) -> tuple[gg.nn.Module, dist.DistributedOptimizer, float,
                                            float]:
    model = gg.nn.Linear(3, 1, seed=0)
    opt = dist.DistributedOptimizer(gg.optim.SGD(model.parameters(), lr=0.1))
    before = float(model.weight.numpy().sum())
    loss = (model(gg.ones((2, 3))) * loss_value).sum()
    with np.errstate(invalid="ignore"):  # inf · 0 in the backward of an inf loss
        loss.backward()
    opt.step(count=2, loss=loss)
    return model, opt, before, loss.item()


def test_distributed_optimizer_of_one_process_is_the_optimizer() -> None:
    model, opt, before, loss = _step_with(1.0)
    # d(sum of 2 outputs)/dW = 2 per input, so one SGD step lowers each of 3 weights by 0.2
    assert float(model.weight.numpy().sum()) == pytest.approx(before - 0.6, abs=1e-6)
    assert opt.last_loss == loss and opt.steps == 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_loss_stops_the_step_before_the_update(bad: float) -> None:
    with pytest.raises(dist.NonFiniteGradientStep, match="rank 0 of 1 at step 1") as info:
        _step_with(bad)
    assert info.value.ranks == (0,) and info.value.step == 1


def test_distributed_optimizer_never_folds_so_a_compiled_step_uses_the_mean() -> None:
    model = gg.nn.MLP([64, 256, 4], activation="relu", seed=0)  # large enough to fold
    opt = dist.DistributedOptimizer(gg.optim.SGD(model.parameters(), lr=0.01))
    X, y = gg.data.blobs(64, centers=4, n_features=64, seed=0)
    step = gg.compile(lambda X, y: gg.nn.functional.cross_entropy(model(X), y), optimizer=opt)
    step(X, y)
    step(X, y)
    assert "fold" not in step.source and opt.steps == 2


def test_init_under_a_launcher_without_mpi4py_names_the_extra(monkeypatch) -> None:
    monkeypatch.setattr(comm, "_GROUP", None)
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # as if not installed
    monkeypatch.setenv("PMI_SIZE", "4")
    with pytest.raises(ImportError, match=r"one of 4 .*glassgrad\[distributed\]"):
        dist.init()


def test_init_without_a_launcher_or_mpi4py_is_one_process(monkeypatch) -> None:
    monkeypatch.setattr(comm, "_GROUP", None)
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    for var in comm._LAUNCHER_SIZE:
        monkeypatch.delenv(var, raising=False)
    dist.init()
    dist.init()  # idempotent
    assert dist.world_size() == 1 and comm._GROUP.comm is None


def test_a_script_without_mpiexec_runs_as_one_rank_through_mpi4py() -> None:
    pytest.importorskip("mpi4py", reason="needs mpi4py, which is not installed: "
                                     'pip install "glassgrad[distributed]"')
    code = ("from glassgrad import distributed as d; d.init(); "
            "print(d.rank(), d.world_size(), d.all_reduce(2.5, op='sum'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "1", "2.5"]

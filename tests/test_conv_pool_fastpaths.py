"""The fast paths of the conv and pool ops (ops_nn.py) give the general path's numbers.

- scratch buffers (glassgrad/scratch.py): the convolution's columns are reused from one step
  to the next, and no array a caller receives is ever one of them;
- max-pool windows that tile the input (kernel == stride, no padding or dilation): the same
  values and gradients as the general path, bit for bit, and PyTorch's, ties included;
- passes split over the batch across threads (glassgrad/parallel.py): the same numbers, bit
  for bit, as on one thread; the thread count follows BLAS's.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import ops_nn, parallel, scratch

F = gg.nn.functional


def _conv_step(x: np.ndarray, w: np.ndarray, **kw: Any) -> tuple[np.ndarray, ...]:
    """Output and the three gradients of sum(conv2d(x, w, b)²)."""
    gx, gw = gg.tensor(x, requires_grad=True), gg.tensor(w, requires_grad=True)
    gb = gg.zeros(w.shape[0], dtype=x.dtype, requires_grad=True)
    out = F.conv2d(gx, gw, gb, **kw)
    out.square().sum().backward()
    return out.numpy(), gx.grad.numpy(), gw.grad.numpy(), gb.grad.numpy()


# --------------------------------------------------------------------------- scratch
@pytest.fixture
def kept_scratch() -> Any:
    scratch.clear()
    yield
    scratch.clear()


def test_scratch_hands_back_a_given_array_of_the_same_size(kept_scratch: None) -> None:
    a = scratch.take((300, 400), np.float32)
    scratch.give(a)
    b = scratch.take((400, 300), np.float32)  # same size, another shape
    assert np.shares_memory(a, b)
    assert not np.shares_memory(scratch.take((400, 300), np.float32), b)  # b is out now
    assert not np.shares_memory(scratch.take((300, 400), np.float64), a)  # another dtype


@pytest.mark.parametrize("kind", ["small", "not owning", "over the limit"])
def test_scratch_keeps_nothing_it_should_not(kept_scratch: None, kind: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    big = np.empty(scratch.MIN_BYTES // 4, dtype=np.float32)
    a = {"small": np.empty(10, dtype=np.float32),
         "not owning": np.frombuffer(bytearray(big.nbytes), dtype=np.float32),
         "over the limit": big}[kind]
    monkeypatch.setattr(scratch, "LIMIT", big.nbytes - 1)
    scratch.give(a)
    assert not np.shares_memory(scratch.take(a.shape, a.dtype), a)


def test_conv_steps_reusing_scratch_give_the_same_numbers(kept_scratch: None) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 6, 14, 14)).astype(np.float32)
    w = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
    first = _conv_step(x, w)
    assert scratch._kept > 0  # the columns came back after the weight's gradient
    for again in (_conv_step(x, w), _conv_step(x, w)):
        for a, b in zip(first, again):
            np.testing.assert_array_equal(a, b)


def test_no_result_shares_memory_with_a_kept_buffer(kept_scratch: None) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 6, 14, 14)).astype(np.float32)
    w = rng.standard_normal((16, 6, 5, 5)).astype(np.float32)
    results = [*_conv_step(x, w), *_conv_step(x, w, stride=2, padding=1)]
    with gg.no_grad():  # (the columns go back at once)
        results.append(F.conv2d(gg.tensor(x), gg.tensor(w)).numpy())
    kept = [buf for bufs in scratch._free.values() for buf in bufs]
    assert kept
    for r in results:
        assert not any(np.shares_memory(r, buf) for buf in kept)


# --------------------------------------------------------------------------- tiled max-pool
def _pool_step(x: np.ndarray, v: np.ndarray, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    gx = gg.tensor(x, requires_grad=True)
    out = F.max_pool2d(gx, **kw)
    out.backward(gg.tensor(v[tuple(slice(n) for n in out.shape)]))
    return out.numpy(), gx.grad.numpy()


def _tie_heavy(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """ReLU'd small integers: most windows hold a tie (all zeros, or a repeated value), and
    some zeros are −0.0."""
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.integers(-3, 3, shape), 0).astype(np.float32)
    x[rng.random(shape) < 0.1] = -0.0
    return x


TILED = [  # (shape, kwargs): the fast path, leftover rows/columns included
    ((4, 3, 8, 8), dict(kernel_size=2)),
    ((2, 3, 7, 9), dict(kernel_size=2)),  # a last row and column no window covers
    ((2, 2, 9, 8), dict(kernel_size=3)),
    ((2, 2, 6, 9), dict(kernel_size=(2, 3))),
    ((2, 2, 6, 6), dict(kernel_size=2, ceil_mode=True)),  # ceil_mode, nothing partial
    ((2, 2, 5, 5), dict(kernel_size=1)),
]
GENERAL = [  # the cases that must fall back
    ((2, 2, 7, 7), dict(kernel_size=2, ceil_mode=True)),  # a partial last window
    ((2, 2, 8, 8), dict(kernel_size=2, stride=1)),  # overlapping windows
    ((2, 2, 8, 8), dict(kernel_size=2, padding=1)),
    ((2, 2, 9, 9), dict(kernel_size=2, dilation=2)),
]


@pytest.mark.parametrize(("shape", "kw"), TILED, ids=str)
def test_tiled_max_pool_is_the_general_path_bit_for_bit(
        shape: tuple[int, ...], kw: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ops_nn._tiled(np.empty(shape), **_normalized(kw)) is not None
    x, v = _tie_heavy(shape), np.random.default_rng(1).standard_normal(shape)
    fast = _pool_step(x, v.astype(np.float32), **kw)
    monkeypatch.setattr(ops_nn, "_tiled", lambda *a: None)
    general = _pool_step(x, v.astype(np.float32), **kw)
    for a, b in zip(fast, general):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(np.signbit(a), np.signbit(b))  # −0.0 stays −0.0


@pytest.mark.parametrize(("shape", "kw"), TILED + GENERAL, ids=str)
def test_max_pool_matches_torch_on_ties(torch: Any, shape: tuple[int, ...], kw: dict) -> None:
    x, v = _tie_heavy(shape, seed=2), np.random.default_rng(3).standard_normal(shape)
    out, grad = _pool_step(x, v.astype(np.float32), **kw)
    tx = torch.tensor(x, requires_grad=True)
    tout = torch.nn.functional.max_pool2d(tx, **kw)
    tout.backward(torch.tensor(v.astype(np.float32)[tuple(slice(n) for n in tout.shape)]))
    np.testing.assert_array_equal(out, tout.detach().numpy())
    # (overlapping windows add in another order: rounding; a tie given wrongly is O(1) off)
    np.testing.assert_allclose(grad, tx.grad.numpy(), rtol=1e-6, atol=0)


@pytest.mark.parametrize(("shape", "kw"), GENERAL, ids=str)
def test_max_pool_falls_back_where_windows_do_not_tile(shape: tuple[int, ...], kw: dict
                                                       ) -> None:
    assert ops_nn._tiled(np.empty(shape), **_normalized(kw)) is None


@pytest.mark.parametrize("kw", [
    dict(kernel_size=2, stride=2),  # tiled
    dict(kernel_size=3, stride=1, padding=1),  # overlapping, padded
    dict(kernel_size=(2, 3), stride=(2, 1), ceil_mode=True),
])
@pytest.mark.parametrize("create_graph", [False, True])
def test_a_window_with_nan_sends_its_gradient_to_its_last_nan_as_torch(
        torch: Any, kw: dict, create_graph: bool) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 7, 6)).astype(np.float32)
    x[rng.random(x.shape) < 0.12] = np.nan  # windows with one NaN, and with two or more
    tx = torch.tensor(x, requires_grad=True)
    tout = torch.nn.functional.max_pool2d(tx, **kw)
    g = rng.standard_normal(tout.shape).astype(np.float32)
    tout.backward(torch.tensor(g))
    gx = gg.tensor(x, requires_grad=True)
    out = gg.nn.functional.max_pool2d(gx, **kw)
    out.backward(gg.tensor(g), create_graph=create_graph)
    assert np.isnan(tout.detach().numpy()).any()
    np.testing.assert_array_equal(out.detach().numpy(), tout.detach().numpy())
    np.testing.assert_allclose(gx.grad.detach().numpy(), tx.grad.numpy(), rtol=0, atol=1e-6)


def test_a_window_tie_goes_to_the_first_maximum_in_reading_order() -> None:
    x = np.array([[[[0.0, 5.0, 1.0, 1.0], [5.0, 5.0, 1.0, 1.0]]]], dtype=np.float32)
    _, grad = _pool_step(x, np.full((1, 1, 1, 2), 7.0, dtype=np.float32), kernel_size=2)
    np.testing.assert_array_equal(grad, [[[[0, 7, 7, 0], [0, 0, 0, 0]]]])


def _normalized(kw: dict) -> dict:
    """max_pool2d's keyword arguments as the op receives them."""
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    k = pair(kw["kernel_size"])
    return dict(kernel_size=k, stride=pair(kw.get("stride", k)),
                padding=pair(kw.get("padding", 0)), dilation=pair(kw.get("dilation", 1)),
                ceil_mode=kw.get("ceil_mode", False))


# --------------------------------------------------------------------------- threads
@pytest.fixture
def split_threads(monkeypatch: pytest.MonkeyPatch) -> Any:
    """set(k): every pass, however small, split over k threads."""
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)
    return lambda k: monkeypatch.setattr(parallel, "_blas_threads", lambda: k)


def _lenet_like_step(seed: int) -> list[np.ndarray]:
    """conv (padded) → max-pool → conv → max-pool on an odd batch: output and gradients."""
    rng = np.random.default_rng(seed)
    x = gg.tensor(rng.standard_normal((5, 2, 12, 11)).astype(np.float32), requires_grad=True)
    w1 = gg.tensor(rng.standard_normal((4, 2, 5, 5)).astype(np.float32), requires_grad=True)
    w2 = gg.tensor(rng.standard_normal((3, 4, 3, 3)).astype(np.float32), requires_grad=True)
    h = F.max_pool2d(F.relu(F.conv2d(x, w1, padding=2)), 2)
    out = F.max_pool2d(F.conv2d(h, w2, dilation=(1, 2), padding=(1, 2)), 2)
    out.backward(gg.tensor(rng.standard_normal(out.shape).astype(np.float32)))
    return [out.numpy(), x.grad.numpy(), w1.grad.numpy(), w2.grad.numpy()]


@pytest.mark.parametrize("k", [2, 3, 7])  # (7 > the batch of 5: at most one slice each)
def test_split_over_threads_gives_the_one_thread_numbers(split_threads: Any, k: int) -> None:
    split_threads(1)
    one = _lenet_like_step(0)
    split_threads(k)
    seen: set[int] = set()
    slices: list[tuple[int, int]] = []  # (slices made, slices wanted) per pass
    real = parallel.split

    def spy(fn: Any, n: int, nbytes: int) -> None:
        calls: list[int] = []
        real(lambda lo, hi: (seen.add(threading.get_ident()), calls.append(lo), fn(lo, hi)),
             n, nbytes)
        slices.append((len(calls), min(k, n)))

    with pytest.MonkeyPatch.context() as m:
        m.setattr(parallel, "split", spy)
        many = _lenet_like_step(0)
    assert len(slices) >= 8 and all(made == want for made, want in slices)  # every pass split
    assert len(seen) > 1  # ... and run on more than one thread
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)


def test_split_covers_the_range_once_and_waits_for_every_slice(split_threads: Any) -> None:
    split_threads(3)
    hits = np.zeros(10, dtype=int)

    def part(lo: int, hi: int) -> None:
        hits[lo:hi] += 1

    parallel.split(part, 10, 10**9)
    np.testing.assert_array_equal(hits, 1)


def test_an_error_in_a_slice_is_raised_after_every_slice_has_stopped(split_threads: Any
                                                                    ) -> None:
    split_threads(2)
    done = []

    def part(lo: int, hi: int) -> None:
        if lo > 0:
            raise ValueError(f"slice {lo}:{hi} failed")
        done.append((lo, hi))

    with pytest.raises(ValueError, match="slice 2:4 failed"):
        parallel.split(part, 4, 10**9)
    assert done == [(0, 2)]


def test_a_split_inside_a_pool_thread_runs_there(split_threads: Any) -> None:
    split_threads(2)
    inner: list[tuple[int, int]] = []
    parallel.split(lambda lo, hi: parallel.split(lambda a, b: inner.append((a, b)), 4, 10**9)
                   if lo else None, 2, 10**9)
    assert inner == [(0, 4)]  # (one slice: no thread of the pool waits on the pool)


@pytest.mark.parametrize(("nbytes", "slices"), [(5, 1), (19, 1), (20, 2), (39, 3), (10**6, 4)])
def test_each_slice_moves_at_least_min_bytes(monkeypatch: pytest.MonkeyPatch, nbytes: int,
                                             slices: int) -> None:
    monkeypatch.setattr(parallel, "_blas_threads", lambda: 4)
    monkeypatch.setattr(parallel, "MIN_BYTES", 10)
    calls: list[int] = []
    parallel.split(lambda lo, hi: calls.append(lo), 8, nbytes)
    assert len(calls) == slices


def test_the_thread_count_is_blas_s() -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    parallel._blas_threads = None  # (found again, as on first use)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert parallel.threads() == 1
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        assert parallel.threads() == 2


def test_steps_on_several_threads_at_once_share_the_pool_and_scratch_safely(
        split_threads: Any, kept_scratch: None, monkeypatch: pytest.MonkeyPatch) -> None:
    split_threads(2)
    monkeypatch.setattr(scratch, "MIN_BYTES", 0)  # (every temporary through scratch)
    want = {seed: _lenet_like_step(seed) for seed in range(3)}
    wrong: list[int] = []

    def train(seed: int) -> None:
        for _ in range(5):
            got = _lenet_like_step(seed)
            if not all(np.array_equal(a, b) for a, b in zip(got, want[seed])):
                wrong.append(seed)

    threads = [threading.Thread(target=train, args=(seed,)) for seed in want]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong

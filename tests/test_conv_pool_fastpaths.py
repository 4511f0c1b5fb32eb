"""The fast paths of the conv and pool ops (ops_nn.py) give the general path's numbers.

- scratch buffers (glassgrad/scratch.py): the convolution's columns are reused from one step
  to the next, and no array a caller receives is ever one of them;
- max-pool windows that tile the input (kernel == stride, no padding or dilation): the same
  values and gradients as the general path, bit for bit, and PyTorch's, ties included;
- convolutions run over the batch in chunks (glassgrad/conv_kernels.py): the same numbers,
  bit for bit, whatever the chunk size; steps on several threads at once stay correct.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import conv_kernels, ops_nn, scratch

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


# --------------------------------------------------------------------------- chunks
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


@pytest.mark.parametrize("chunk_bytes", [1, 3000, 9000])  # 1 sample, 2 samples, 4 (of 5)
def test_chunks_of_the_batch_give_the_whole_batch_numbers(monkeypatch: pytest.MonkeyPatch,
                                                          chunk_bytes: int) -> None:
    whole = _lenet_like_step(0)
    monkeypatch.setattr(conv_kernels, "CHUNK_BYTES", chunk_bytes)
    starts: list[int] = []
    real = conv_kernels.over_chunks

    def spy(fn: Any, n: int, per: int) -> None:
        real(lambda s, e: (starts.append(s), fn(s, e)), n, per)

    monkeypatch.setattr(conv_kernels, "over_chunks", spy)
    chunked = _lenet_like_step(0)
    assert len(starts) > 4  # (4 convolution passes: at least one made several chunks)
    out, x_grad, *w_grads = whole
    np.testing.assert_array_equal(chunked[0], out)  # each sample's product is the same
    np.testing.assert_array_equal(chunked[1], x_grad)
    # a weight's gradient sums one partial sum per chunk: the same up to float rounding
    for got, want in zip(chunked[2:], w_grads):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("n", "sample_bytes", "per"), [
    (64, 100, 64),  # all fits in one chunk
    (64, 2**21 // 64 + 1, 16),  # just over one chunk: 4 chunks (a multiple of 4)
    (64, 2**21 // 8, 8),  # 8 chunks' worth: 8 chunks
    (3, 2**22, 1),  # never more chunks than samples
    (0, 2**20, 1),
])
def test_the_chunk_size_follows_the_bytes(n: int, sample_bytes: int, per: int) -> None:
    assert conv_kernels.chunk_size(n, sample_bytes) == per


def test_steps_on_several_threads_at_once_share_scratch_safely(
        kept_scratch: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conv_kernels, "CHUNK_BYTES", 1)
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

"""The fast paths of the conv and pool ops (ops_nn.py) give the general path's numbers.

- scratch buffers (glassgrad/scratch.py): the convolution's columns are reused from one step
  to the next, and no array a caller receives is ever one of them;
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import scratch

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

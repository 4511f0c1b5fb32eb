"""The large-step fast paths (issue #17) give the general path's numbers and never change a
value the user can see.

- cross_entropy keeps the forward's softmax parts for its rule: the gradient is the same,
  to the bit, whether the rule finds them or computes them again.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import ops

F = gg.nn.functional


def _logits(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * 3


# =========================================================================== cross_entropy
# (rows, classes): a short class axis (reduced classes-first), a long one, and the 3-D case
CE_SHAPES = [(256, 10), (3, 40), (70, 3), (2, 40, 3)]


def _ce_grad(z: np.ndarray, y: np.ndarray, reduction: str, twice: bool = False) -> np.ndarray:
    x = gg.tensor(z, requires_grad=True)
    loss = ops.apply(ops.cross_entropy, x, gg.tensor(y), reduction=reduction) if z.ndim > 2 \
        else F.cross_entropy(x, y, reduction=reduction)
    loss.backward(retain_graph=twice)
    if twice:  # the kept parts were used once: the second pass computes them again
        first = x.grad.numpy().copy()
        x.grad = None
        loss.backward()
        np.testing.assert_array_equal(x.grad.numpy(), first)
    return x.grad.numpy()


@pytest.mark.parametrize("shape", CE_SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_kept_softmax_same_bits_as_recomputed(shape: tuple, reduction: str
                                                            ) -> None:
    z = _logits(shape)
    y = np.random.default_rng(1).integers(0, shape[-1], shape[:-1])
    _ce_grad(z, y, reduction, twice=True)


@pytest.mark.parametrize("shape", CE_SHAPES)
def test_cross_entropy_gradient_is_softmax_minus_onehot(shape: tuple) -> None:
    z = _logits(shape, seed=2)
    y = np.random.default_rng(3).integers(0, shape[-1], shape[:-1])
    z64 = z.astype(np.float64)
    p = np.exp(z64 - z64.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    want = (p - np.eye(shape[-1])[y]) / y.size
    np.testing.assert_allclose(_ce_grad(z, y, "mean"), want, rtol=1e-5, atol=1e-7)


def test_cross_entropy_rule_takes_the_forward_parts_once() -> None:
    x = gg.tensor(_logits((128, 10)), requires_grad=True)
    loss = F.cross_entropy(x, np.arange(128) % 10)
    assert id(loss.numpy()) in ops._SOFTMAX  # kept by the forward, under its result
    loss.backward()
    assert id(loss.numpy()) not in ops._SOFTMAX  # handed to the rule, not kept twice


def test_cross_entropy_keeps_nothing_without_grad_or_after_the_loss_dies() -> None:
    z, y = _logits((64, 10)), np.arange(64) % 10
    before = len(ops._SOFTMAX)
    with gg.no_grad():
        F.cross_entropy(gg.tensor(z), y)
    assert len(ops._SOFTMAX) == before
    loss = F.cross_entropy(gg.tensor(z, requires_grad=True), y)  # never goes backward
    assert len(ops._SOFTMAX) == before + 1
    del loss
    gc.collect()
    assert len(ops._SOFTMAX) == before

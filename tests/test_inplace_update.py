"""The manual update a learner writes after backward(): `w -= lr * w.grad` (PyTorch's rules)."""

import numpy as np
import pytest

import glassgrad as gg


def test_update_inside_no_grad_changes_the_same_leaf_in_place():
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    same = w
    (w * w).sum().backward()  # dL/dw = 2w = [2, 4]
    with gg.no_grad():
        w -= 0.1 * w.grad
    assert w is same and w.is_leaf and w.requires_grad and w.dtype == np.float32
    np.testing.assert_allclose(w.numpy(), [0.8, 1.6])


def test_update_in_the_graph_is_refused_with_the_fix():
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="no_grad"):
        w -= 1.0
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0])  # unchanged


def test_other_tensors_follow_pytorch_semantics():
    x = gg.tensor([1.0])
    before = x
    x += 1  # in place, as in PyTorch: every name for the tensor sees the write
    assert x is before and before.item() == 2.0 and x._version > 0
    w = gg.tensor([3.0], requires_grad=True)
    h = w * 2
    h += 1  # a non-leaf inside the graph: h = h + 1, still differentiable
    h.backward(np.ones(1, np.float32))
    assert h.op == "add" and w.grad.item() == 2.0


def test_a_hand_written_gradient_descent_loop_learns():
    """The seeds' rule W := W − α ∂L/∂W written by hand fits y = 3x − 1."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (32, 1)).astype(np.float32)
    y = 3 * X - 1
    w = gg.tensor([[0.0]], requires_grad=True)
    b = gg.tensor([0.0], requires_grad=True)
    for _ in range(300):
        loss = ((X @ w + b - y) ** 2).mean()
        w.grad = b.grad = None
        loss.backward()
        with gg.no_grad():
            w -= 0.3 * w.grad
            b -= 0.3 * b.grad
    np.testing.assert_allclose([w.item(), b.item()], [3.0, -1.0], atol=1e-3)

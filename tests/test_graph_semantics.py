"""Graph semantics, with values computed by hand: reuse, diamonds, no_grad, retained and freed
graphs, non-scalar roots, retain_grad, grad() vs .grad, deep chains, accumulation, atomicity."""

from __future__ import annotations

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.autograd import STATE, hook


def leaf(value, dtype=gg.float64) -> gg.Tensor:
    return gg.tensor(value, dtype=dtype, requires_grad=True)


def test_seed_example_from_the_lecture_notes() -> None:
    # q = x + y, f = q·z at (−2, 5, −4): f = −12, ∂f/∂x = ∂f/∂y = z = −4, ∂f/∂z = q = 3.
    x, y, z = leaf(-2.0), leaf(5.0), leaf(-4.0)
    q = x + y
    f = q * z
    f.backward()
    assert f.item() == -12.0
    assert (x.grad.item(), y.grad.item(), z.grad.item()) == (-4.0, -4.0, 3.0)


def test_node_used_twice_accumulates() -> None:
    a = leaf(3.0)
    (a + a).backward()
    assert a.grad.item() == 2.0
    b = leaf(3.0)
    (b * b).backward()  # d(b²)/db = 2b
    assert b.grad.item() == 6.0


def test_diamond() -> None:
    # x -> u = 2x, v = x², f = u·v = 2x³: df/dx = 6x² = 24 at x = 2.
    x = leaf(2.0)
    u = x * 2
    v = x * x
    f = u * v
    f.backward()
    assert f.item() == 16.0
    assert x.grad.item() == 24.0


def test_diamond_through_an_intermediate_used_twice() -> None:
    # h = x + 1 feeds both branches: f = h·exp(h); df/dx = (1 + h)·e^h at h = 0.5.
    x = leaf(-0.5)
    h = x + 1
    f = h * h.exp()
    f.backward()
    assert x.grad.item() == pytest.approx(1.5 * np.exp(0.5), rel=1e-12)


def test_no_grad_records_nothing() -> None:
    w = leaf([1.0, 2.0])
    with gg.no_grad():
        y = w * 3
        assert not gg.is_grad_enabled()
    assert gg.is_grad_enabled()
    assert not y.requires_grad and y.op is None and y.parents == ()
    np.testing.assert_array_equal(y.numpy(), [3.0, 6.0])
    with gg.no_grad(), gg.enable_grad():
        z = w * 3
    assert z.requires_grad and z.op == "mul"


def test_no_grad_as_decorator_restores_mode_after_an_error() -> None:
    @gg.no_grad()
    def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        boom()
    assert gg.is_grad_enabled()


def test_backward_twice_without_retain_graph_raises() -> None:
    x = leaf(2.0)
    y = (x * x).exp()
    y.backward()
    first = x.grad.item()
    with pytest.raises(gg.GraphError, match="retain_graph=True") as info:
        y.backward()
    assert "second time" in str(info.value)
    assert x.grad.item() == first  # the failed call changed nothing


def test_backward_twice_with_retain_graph_accumulates() -> None:
    x = leaf(2.0)
    y = x * x * x  # dy/dx = 3x² = 12
    y.backward(retain_graph=True)
    assert x.grad.item() == 12.0
    y.backward()
    assert x.grad.item() == 24.0
    with pytest.raises(gg.GraphError):  # the second call did not retain
        y.backward()


def test_non_scalar_root_needs_explicit_grad() -> None:
    x = leaf([1.0, 2.0, 3.0])
    y = x * x
    with pytest.raises(gg.GraphError, match=r"shape \(3,\) needs an explicit gradient"):
        y.backward()
    assert x.grad is None
    y.backward(np.array([1.0, 0.5, -1.0]))  # vector-Jacobian product: v·2x
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, -6.0])


def test_explicit_grad_of_the_wrong_shape_is_refused() -> None:
    x = leaf([1.0, 2.0])
    with pytest.raises(ValueError, match=r"shape \(3,\).*shape \(2,\)"):
        (x * 2).backward(np.ones(3))
    assert x.grad is None


def test_retain_grad_on_non_leaves() -> None:
    x = leaf([1.0, -2.0])
    h = (x * 3).retain_grad()
    m = x * 5  # not retained
    f = (h * h).sum() + m.sum()
    f.backward()
    np.testing.assert_array_equal(h.grad.numpy(), [6.0, -12.0])  # df/dh = 2h
    np.testing.assert_array_equal(x.grad.numpy(), [18.0 + 5.0, -36.0 + 5.0])  # 2h·3 + 5
    assert m.grad is None


def test_grad_function_does_not_touch_dot_grad() -> None:
    x, y = leaf(3.0), leaf(4.0)
    x.grad = gg.tensor(100.0, dtype=gg.float64)
    gx, gy = gg.grad(x * y + y, [x, y])
    assert (gx.item(), gy.item()) == (4.0, 4.0)
    assert x.grad.item() == 100.0 and y.grad is None


def test_grad_of_an_unused_input() -> None:
    x, y = leaf(1.0), leaf(2.0)
    with pytest.raises(gg.GraphError, match="allow_unused=True"):
        gg.grad(x * 2, [x, y], retain_graph=True)
    gx, gy = gg.grad(x * 2, [x, y], allow_unused=True)
    assert gx.item() == 2.0 and gy is None


def test_million_node_chain_backward_is_iterative() -> None:
    # 1,000,001 negations: far past any recursion limit; an odd count gives −1.
    x = leaf(1.0)
    y = x
    for _ in range(1_000_001):
        y = -y
    y.backward()
    assert y.item() == -1.0
    assert x.grad.item() == -1.0


def test_gradients_accumulate_across_calls_and_reset() -> None:
    w = leaf([1.0, 2.0])
    for k in range(1, 4):
        (w * w).sum().backward()  # each call adds 2w
        np.testing.assert_array_equal(w.grad.numpy(), [2.0 * k, 4.0 * k])
    w.grad = None
    (w * 3).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, 3.0])
    w.zero_grad()
    assert w.grad is None


def test_grad_arrays_are_not_shared_between_leaves() -> None:
    # a + b sends the same incoming gradient to both leaves; mutating one .grad (as an
    # optimizer might) must not change the other.
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    v = np.array([1.0, 1.0])
    (a + b).backward(v)
    a.grad.data[0] = 99.0
    assert b.grad.numpy()[0] == 1.0 and v[0] == 1.0


def test_freed_node_midway_leaves_every_grad_unchanged() -> None:
    a = leaf(2.0)
    b = a * 3
    b.backward()  # frees b's graph
    assert a.grad.item() == 3.0
    c = leaf(5.0)
    d = c * 7 + b * c  # b's graph is gone: backward must fail before changing anything
    with pytest.raises(gg.GraphError, match="second time"):
        d.backward()
    assert a.grad.item() == 3.0 and c.grad is None


def test_error_inside_backward_leaves_grads_and_graph_intact() -> None:
    class Boom:
        def on_backward(self, node, grad, sent):
            if node.op == "exp":
                raise RuntimeError("planted")

    x, y = leaf(1.0), leaf(2.0)
    f = x * y + x.exp()  # whatever the walk's order, nothing is stored until it completes
    x.grad = gg.tensor(10.0, dtype=gg.float64)
    with hook(Boom()), pytest.raises(RuntimeError, match="planted"):
        f.backward()
    assert x.grad.item() == 10.0 and y.grad is None
    assert STATE.hooks == ()
    f.backward()  # the graph was not freed by the failed pass
    assert x.grad.item() == pytest.approx(10.0 + 2.0 + np.e)
    assert y.grad.item() == 1.0


def test_detach_cuts_the_graph() -> None:
    x = leaf(3.0)
    y = x * x
    z = y.detach() * x  # only the explicit x factor carries gradient: dz/dx = y = 9
    z.backward()
    assert x.grad.item() == 9.0


def test_backward_through_leaf_that_does_not_require_grad() -> None:
    c = gg.tensor([1.0, 2.0], dtype=gg.float64)  # a constant
    w = leaf([0.5, -1.0])
    (c * w).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 2.0])
    assert c.grad is None


def test_broadcast_gradient_is_summed_back() -> None:
    # b (3,) broadcast over 2 rows: db = Σ_rows v.
    a = leaf(np.ones((2, 3)))
    b = leaf([1.0, 2.0, 3.0])
    v = np.arange(6.0).reshape(2, 3)
    (a * b).backward(v)
    np.testing.assert_array_equal(b.grad.numpy(), [3.0, 5.0, 7.0])
    np.testing.assert_array_equal(a.grad.numpy(), v * [1.0, 2.0, 3.0])

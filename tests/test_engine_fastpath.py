"""The eager engine's fast paths keep the engine's meaning: the walk order (latest-made node
first), deep graphs without recursion, the shared read-only seed, and the checks that moved
off the hot path."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import autograd
from glassgrad.autograd import GraphError, hook


def leaf(v, dtype=gg.float64) -> gg.Tensor:
    return gg.tensor(v, dtype=dtype, requires_grad=True)


class Walk:
    """Records the nodes the engine runs rules for, in order."""

    def __init__(self) -> None:
        self.nodes: list[gg.Tensor] = []

    def on_backward(self, node, grad, sent) -> None:
        self.nodes.append(node)


# --------------------------------------------------------------------------- the walk order
def _diamond():
    """x feeds a and b; c uses b and a; d uses c and a again (a reaches d two ways)."""
    x = leaf([1.0, 2.0])
    a = x * 3.0  # made 1st
    b = x.exp()  # 2nd
    c = b * a  # 3rd
    d = (c + a).sum()  # 4th, 5th
    return x, a, b, c, d


def test_a_diamond_is_walked_latest_made_first_each_node_once() -> None:
    x, a, b, c, d = _diamond()
    add = d._parents[0]
    walk = Walk()
    with hook(walk):
        d.backward()
    # A reversed depth-first order would run a's rule before b's (b is c's first input, so
    # it is finished first); by creation, b (made after a) comes first, then a.
    assert [id(n) for n in walk.nodes] == [id(n) for n in (d, add, c, b, a)]
    xv = np.array([1.0, 2.0])
    # d = Σ 3x·eˣ + 3x: d' = 3eˣ + 3x·eˣ + 3
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.exp(xv) * (1 + xv) + 3, rtol=1e-12)


def test_topological_order_is_the_walk_order_then_the_leaves() -> None:
    x, a, b, c, d = _diamond()
    order = autograd.topological_order([d])
    walk = Walk()
    with hook(walk):
        d.backward(retain_graph=True)
    assert [id(n) for n in order] == [id(n) for n in walk.nodes] + [id(x)]


def test_every_node_comes_before_the_nodes_it_uses_on_a_random_graph() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    init = [rng.standard_normal(3) for _ in range(3)]
    ours = [leaf(v) for v in init]
    theirs = [torch.tensor(v, requires_grad=True) for v in init]
    for _ in range(60):  # each new node uses two earlier ones, picked at random
        i, j = rng.integers(len(ours), size=2)
        ours.append(ours[i] * 0.5 + ours[j].tanh())
        theirs.append(theirs[i] * 0.5 + theirs[j].tanh())
    root = gg.stack(ours[-5:]).sum()
    order = autograd.topological_order([root])
    where = {id(n): k for k, n in enumerate(order)}
    for n in order:
        for p in n._parents or ():
            if p._requires_grad:
                assert where[id(n)] < where[id(p)]
    root.backward()
    torch.stack(theirs[-5:]).sum().backward()
    for t, want in zip(ours[:3], theirs[:3]):
        np.testing.assert_allclose(t.grad.numpy(), want.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("n", [100_000])
def test_a_chain_of_100k_nodes_needs_no_recursion(n: int) -> None:
    x = leaf(1.0)
    y = x
    for _ in range(n):
        y = y * 1.0 + 0.0  # two nodes per step
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100)  # a recursive walk would fail at once
    try:
        y.backward()
    finally:
        sys.setrecursionlimit(limit)
    assert x.grad.item() == 1.0


def test_a_node_used_by_several_roots_gets_every_roots_gradient() -> None:
    x = leaf(2.0)
    a = x * x
    b = a * 3.0
    (dx,) = gg.grad([a, b], [x])  # a is a root and also b's input
    assert dx.item() == pytest.approx(4.0 + 12.0)  # d(a + b)/dx = 2x + 6x


# --------------------------------------------------------------------------- errors mid-walk
def test_a_freed_node_deep_in_the_graph_changes_nothing() -> None:
    x = leaf(3.0)
    y = x * x
    y.backward()  # frees y's graph
    x.grad = None
    w = leaf(2.0)
    z = (y * w).exp()  # z's own nodes are fine; y, behind them, was freed
    with pytest.raises(GraphError, match="second time"):
        z.backward()
    assert x.grad is None and w.grad is None
    assert z._parents is not None  # the failed pass freed nothing
    for t in (x, y, w, z, z._parents[0]):
        assert t._g is None  # no partial gradient left behind


# --------------------------------------------------------------------------- the seed
def test_the_implied_seed_is_shared_and_read_only() -> None:
    a, b = leaf(2.0), leaf(5.0)
    s1 = autograd.seed_for(a * b, None)
    s2 = autograd.seed_for(a + b, None)
    assert s1 is s2 and s1 == 1.0 and not s1.flags.writeable


class Scribbler:
    """An observer that tries to change the gradient it is shown."""

    def __init__(self) -> None:
        self.errors: list[Exception] = []

    def on_backward(self, node, grad, sent) -> None:
        try:
            grad[...] = 7.0
        except ValueError as e:
            self.errors.append(e)


def test_an_observer_cannot_write_into_the_seed() -> None:
    x = leaf(3.0, dtype=gg.float32)
    s = Scribbler()
    with hook(s):
        (x * x).backward()
    assert s.errors and "read-only" in str(s.errors[0])
    x.grad = None
    (x * x).backward()  # every later seed is still 1
    assert x.grad.item() == pytest.approx(6.0)


@pytest.mark.parametrize("make", [
    lambda x: x,  # the root is the leaf: .grad would be the seed itself
    lambda x: x + 0.0,  # add hands the seed on unchanged
    lambda x: x.reshape(1, 1),  # reshape hands on a view of it
])
def test_no_gradient_shares_the_seeds_memory(make) -> None:
    x = leaf(np.ones((1,)), dtype=gg.float32)
    make(x).backward()
    assert x.grad._data.flags.writeable
    x.grad._data += 1.0  # the user's own array now
    (dx,) = gg.grad(make(x), [x])
    assert dx._data.flags.writeable and dx.item() == 1.0
    dx._data *= 5
    (dx2,) = gg.grad(make(x), [x], create_graph=True)
    assert dx2._data.flags.writeable and dx2.item() == 1.0
    x.grad = None
    make(x).backward(create_graph=True)
    assert x.grad._data.flags.writeable and x.grad.item() == 1.0
    assert autograd.seed_for(x.sum(), None) == 1.0

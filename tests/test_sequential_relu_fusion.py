"""Sequential's Linear → ReLU (or Tanh): the activation writes over the layer's result when
nothing else can read it (``layers._written_over``). The values, gradients and graph are
those of the unfused layers, bit for bit; a hook on either layer, ``inplace=True``, an
observer (trace, anomaly mode, compile's recording) or no_grad in any thread leaves the
layers as they are."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.nn import functional as F


def _net(seed: int = 0, dtype=np.float32, act=gg.nn.ReLU) -> gg.nn.Sequential:
    return gg.nn.Sequential(gg.nn.Linear(5, 7, seed=seed, dtype=dtype), act(),
                            gg.nn.Linear(7, 7, seed=seed + 1, dtype=dtype), act(),
                            gg.nn.Linear(7, 3, seed=seed + 2, dtype=dtype))


def _data(dtype=np.float32):
    rng = np.random.default_rng(0)
    return gg.tensor(rng.standard_normal((6, 5)).astype(dtype)), rng.integers(0, 3, 6)


def _unfused(net, X):
    """The same layers called one by one, never fused."""
    h = X
    for m in net:
        if isinstance(m, gg.nn.ReLU):
            h = F.relu(h)
        elif isinstance(m, gg.nn.Tanh):
            h = gg.tanh(h)
        else:
            h = m(h)
    return h


def _relu_outputs(out, op="relu"):
    """The relu (or ``op``) nodes of the graph behind ``out``."""
    found, stack, seen = [], [out], set()
    while stack:
        t = stack.pop()
        if id(t) in seen or t._op is None:
            continue
        seen.add(id(t))
        if t._op.name == op:
            found.append(t)
        stack.extend(t._parents)
    return found


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("act", "op"), [(gg.nn.ReLU, "relu"), (gg.nn.Tanh, "tanh")])
def test_fused_layers_give_the_unfused_values_gradients_and_graph(dtype, act, op) -> None:
    net, (X, y) = _net(dtype=dtype, act=act), _data(dtype)
    out = net(X)
    relus = _relu_outputs(out, op)
    assert len(relus) == 2
    assert all(r._data is r._parents[0]._data for r in relus)  # written over the layer's
    assert [r._parents[0]._op.name for r in relus] == ["linear", "linear"]
    F.cross_entropy(out, y).backward()
    grads = [p.grad.numpy().copy() for p in net.parameters()]
    net.zero_grad()
    ref = _unfused(net, X)
    assert all(r._data is not r._parents[0]._data for r in _relu_outputs(ref, op))
    np.testing.assert_array_equal(out.numpy(), ref.numpy())
    F.cross_entropy(ref, y).backward()
    for g, p in zip(grads, net.parameters(), strict=True):
        np.testing.assert_array_equal(g, p.grad.numpy())


def test_second_order_gradients_match_the_unfused_layers() -> None:
    net, (X, _) = _net(), _data()
    X.requires_grad_(True)
    results = []
    for forward in (net, lambda X: _unfused(net, X)):
        out = (forward(X) ** 2).sum()
        (gx,) = gg.autograd.grad(out, X, create_graph=True)
        (ggx,) = gg.autograd.grad((gx * gx).sum(), X)
        results.append((gx.numpy().copy(), ggx.numpy().copy()))
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_hook_on_the_linear_layer_sees_its_own_result_intact() -> None:
    net, (X, _) = _net(), _data()
    seen = []
    net[0].register_forward_hook(lambda m, args, out: seen.append(out))
    before = net[0](X).numpy().copy()
    seen.clear()
    net(X)
    np.testing.assert_array_equal(seen[0].numpy(), before)  # not overwritten by the relu
    assert (before < 0).any()  # (so an overwrite would have shown)


def test_a_hooked_layer_between_keeps_its_result_intact() -> None:
    net = gg.nn.Sequential(gg.nn.Linear(5, 7, seed=0), gg.nn.Linear(7, 7, seed=1),
                           gg.nn.ReLU())
    X, _ = _data()
    seen = []
    net[1].register_forward_hook(lambda m, args, out: seen.append(out))
    net(X)
    want = net[1](net[0](X)).numpy()
    np.testing.assert_array_equal(seen[0].numpy(), want)
    assert (want < 0).any()


def test_a_hook_on_the_relu_or_inplace_relu_is_not_fused() -> None:
    net, (X, _) = _net(), _data()
    net[1].register_forward_hook(lambda m, args, out: None)
    out = net(X)
    r = [t for t in _relu_outputs(out) if t._parents[0]._data is not t._data]
    assert len(r) == 1  # the first relu, hooked, made its own array; the second fused
    net2 = gg.nn.Sequential(gg.nn.Linear(5, 7, seed=0), gg.nn.ReLU(inplace=True))
    np.testing.assert_array_equal(net2(X).numpy(), F.relu(net2[0](X)).numpy())


def test_under_an_observer_or_no_grad_the_layers_are_not_fused() -> None:
    net, (X, _) = _net(), _data()
    with gg.explain.trace() as tr:
        out = net(X)
    assert all(r._data is not r._parents[0]._data for r in _relu_outputs(out))
    pre = [n for n in tr.nodes if n.op == "linear"][0].value
    np.testing.assert_array_equal(pre, net[0](X).numpy())  # the trace shows z, not relu(z)
    with gg.detect_anomaly():
        out = net(X)
    assert all(r._data is not r._parents[0]._data for r in _relu_outputs(out))
    with gg.no_grad():
        np.testing.assert_array_equal(net(X).numpy(), _unfused(net, X).numpy())


def test_anomaly_mode_in_backward_does_not_report_an_overwritten_input_as_its_values() -> None:
    # Two finite gradients whose sum overflows reach the fused relu: it is the first op to
    # send a non-finite gradient, and its input's own values were written over.
    net = gg.nn.Sequential(gg.nn.Linear(2, 2, bias=False, seed=0), gg.nn.ReLU())
    X = gg.tensor(np.array([[1e-30, -1e-30]], np.float32))
    h = net(X)  # fused: made outside detect_anomaly
    c = np.float32(3e38)
    loss = (h * c).sum() + (h * c).sum()  # finite; its gradient at h is c + c = inf
    with gg.detect_anomaly(), warnings.catch_warnings(), \
            pytest.raises(gg.AnomalyError) as err:
        warnings.simplefilter("ignore", RuntimeWarning)  # (the overflow itself)
        loss.backward()
    msg = str(err.value)
    assert "'relu'" in msg and "written over by this op's result, not kept" in msg

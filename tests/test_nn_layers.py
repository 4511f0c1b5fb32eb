"""Layers, activation modules, Sequential and Dropout: values and gradients vs PyTorch and
finite differences; the shape errors."""

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import nn

RNG = np.random.default_rng(0)


def _slots(module):
    """(module, attribute) of every parameter, to swap in gradcheck's float64 copies."""
    return [(m, a) for _, m in module.named_modules()
            for a, v in vars(m).items() if isinstance(v, nn.Parameter)]


def gradcheck_module(module, x):
    """gg.gradcheck of module(x) with respect to x and every parameter (float64)."""
    slots = _slots(module)
    params = [getattr(m, a) for m, a in slots]

    def fn(x, *ws):
        for (m, a), w in zip(slots, ws):
            setattr(m, a, w)
        try:
            return module(x)
        finally:
            for (m, a), p in zip(slots, params):
                setattr(m, a, p)

    xt = gg.tensor(x, dtype=np.float64, requires_grad=True)
    return gg.gradcheck(fn, [xt, *params], eps=1e-6, atol=1e-7, rtol=1e-5)


def test_linear_layout_and_forward_match_torch(torch):
    lin = nn.Linear(3, 2, seed=0)
    t = torch.nn.Linear(3, 2)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(lin.weight.numpy()))
        t.bias.copy_(torch.from_numpy(lin.bias.numpy()))
    x = RNG.standard_normal((5, 3)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    xg = gg.tensor(x, requires_grad=True)
    out, tout = lin(xg), t(xt)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-6, atol=1e-6)
    g = RNG.standard_normal((5, 2)).astype(np.float32)
    out.backward(g)
    tout.backward(torch.from_numpy(g))
    for ours, theirs in ((xg, xt), (lin.weight, t.weight), (lin.bias, t.bias)):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_linear_gradients_match_finite_differences_with_batch_dims():
    lin = nn.Linear(3, 2, seed=1, dtype=np.float64)
    assert gradcheck_module(lin, RNG.standard_normal((2, 4, 3)))
    assert gradcheck_module(nn.Linear(3, 2, bias=False, seed=2, dtype=np.float64),
                            RNG.standard_normal((4, 3)))


def test_linear_default_init_is_pytorchs_and_reproducible():
    a, b = nn.Linear(400, 300, seed=7), nn.Linear(400, 300, seed=7)
    assert np.array_equal(a.weight.numpy(), b.weight.numpy())
    assert not np.array_equal(a.weight.numpy(), nn.Linear(400, 300, seed=8).weight.numpy())
    bound = 1 / np.sqrt(400)  # kaiming_uniform(a=√5): gain √(2/6), bound gain·√(3/fan_in)
    w = a.weight.numpy()
    assert w.dtype == np.float32 and np.abs(w).max() <= bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.01 * bound  # std of U(−b, b) is b/√3
    assert np.abs(a.bias.numpy()).max() <= bound and a.bias.numpy().std() > 0.4 * bound


def test_linear_shape_error_names_layer_and_shapes_before_computing():
    lin = nn.Linear(3, 2, seed=0)
    with pytest.raises(ValueError, match=r"Linear\(in_features=3.*in_features = 3, got shape "
                       r"\(4, 5\).*Linear\(5, 2\)"):
        lin(np.ones((4, 5)))
    net = nn.MLP([2, 3, 1], seed=0)
    with pytest.raises(ValueError, match=r"Sequential layer \(0\): Linear\(in_features=2"):
        net(np.ones((4, 3)))


def test_linear_casts_data_to_its_dtype():
    lin = nn.Linear(3, 2, seed=0)
    assert lin(np.ones((2, 3))).dtype == np.float32  # float64 data, float32 model
    assert lin(np.ones((2, 3), dtype=np.int64)).dtype == np.float32


# theirs: the torch module made at test time from torch.nn, so this file imports without torch
@pytest.mark.parametrize("ours, theirs", [
    (nn.Identity(), lambda tnn: tnn.Identity()),
    (nn.Sigmoid(), lambda tnn: tnn.Sigmoid()),
    (nn.Tanh(), lambda tnn: tnn.Tanh()),
    (nn.ReLU(), lambda tnn: tnn.ReLU()),
    (nn.LeakyReLU(0.2), lambda tnn: tnn.LeakyReLU(0.2)),
    (nn.Softmax(dim=-1), lambda tnn: tnn.Softmax(dim=-1)),
    (nn.Softmax(dim=0), lambda tnn: tnn.Softmax(dim=0)),
])
def test_activation_modules_match_torch_values_and_gradients(ours, theirs, torch):
    theirs = theirs(torch.nn)
    x = RNG.standard_normal((4, 5))
    g = RNG.standard_normal((4, 5))
    xg = gg.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    out, tout = ours(xg), theirs(xt)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-12, atol=1e-12)
    out.backward(g)
    tout.backward(torch.from_numpy(g))
    np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert gradcheck_module(nn.Sequential(ours), x)


def test_sequential_indexing_iteration_and_append():
    a, b = nn.Linear(2, 3, seed=0), nn.Tanh()
    net = nn.Sequential(a, b)
    assert net[0] is a and net[-1] is b and list(net) == [a, b] and len(net) == 2
    sub = net[:1]
    assert isinstance(sub, nn.Sequential) and list(sub) == [a]
    assert list(net[1:].state_dict()) == [] and [n for n, _ in net[1:].named_children()] == ["1"]
    net.append(nn.Linear(3, 1, seed=1))
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias", "2.weight",
                                                      "2.bias"]
    with pytest.raises(TypeError, match="item '1' is a function, not a Module"):
        nn.Sequential(a, gg.tanh)


def test_sequential_from_ordered_dict_uses_the_names():
    from collections import OrderedDict

    net = nn.Sequential(OrderedDict([("hidden", nn.Linear(2, 3, seed=0)), ("act", nn.ReLU())]))
    assert list(net.state_dict()) == ["hidden.weight", "hidden.bias"]


def test_dropout_scales_in_training_and_is_identity_in_eval():
    d = nn.Dropout(0.25, seed=0)
    x = gg.ones(200, 100, requires_grad=True)
    out = d(x)
    vals = np.unique(out.numpy())
    np.testing.assert_allclose(vals, [0.0, 1 / 0.75], rtol=1e-6)
    assert abs((out.numpy() == 0).mean() - 0.25) < 0.01
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), out.numpy())  # gradient uses the same mask
    d.eval()
    assert d(x) is x
    assert np.array_equal(nn.Dropout(0.5, seed=3)(x).numpy(), nn.Dropout(0.5, seed=3)(x).numpy())
    assert (nn.Dropout(1.0)(x).numpy() == 0).all()
    with pytest.raises(ValueError, match="Dropout: p must be a probability"):
        nn.Dropout(1.5)

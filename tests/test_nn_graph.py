"""nn.Graph: networks of arbitrary connectivity (seed 001), and the example script."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import nn

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "arbitrary_connectivity.py"


def _example():
    spec = importlib.util.spec_from_file_location("arbitrary_connectivity", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_network_gradients_match_finite_differences():
    net = _example().build_network(seed=0, dtype=np.float64)
    slots = [(m, "weight") for _, m in net.named_modules() if isinstance(m, nn.Linear)]
    slots += [(m, "bias") for m, _ in slots]
    params = [getattr(m, a) for m, a in slots]
    assert len(params) == 6 and all(p.dtype == np.float64 for p in params)

    def fn(x, *ws):  # the network as a function of its input and every weight
        for (m, a), w in zip(slots, ws):
            setattr(m, a, w)
        try:
            return net(x)
        finally:
            for (m, a), p in zip(slots, params):
                setattr(m, a, p)

    x = gg.tensor(np.random.default_rng(1).standard_normal((5, 2)), requires_grad=True)
    assert gg.gradcheck(fn, [x, *params], eps=1e-6, atol=1e-8, rtol=1e-6)


def test_example_script_trains_xor(capsys):
    final_loss = _example().main(steps=300)
    assert final_loss < 1e-2
    assert "(out) <- x, h1, h2 (concat)" in capsys.readouterr().out


def test_skip_connection_computes_by_hand():
    lin = nn.Linear(3, 1, bias=False)
    nn.init.constant_(lin.weight, 0.0)
    lin.weight.data[0, :] = [1.0, 10.0, 100.0]
    net = nn.Graph(inputs=["a", "b"])
    net.add("double", lambda t: t * 2, "a")  # any callable can be a node
    net.add("out", lin, ["double", "b"])  # concatenated: [2a, b0, b1]
    out = net(np.array([[1.0]], np.float32), b=np.array([[2.0, 3.0]], np.float32))
    assert out.item() == 2 * 1 + 10 * 2 + 100 * 3
    assert net.edges() == [("a", "double"), ("double", "out"), ("b", "out")]
    assert [n for n, _ in net.named_parameters()] == ["out.weight"]


def test_sum_combine_and_several_outputs():
    net = nn.Graph("x", outputs=["h", "res"])
    net.add("h", nn.Tanh(), "x").add("res", nn.Identity(), ["x", "h"], combine="sum")
    x = gg.tensor([[0.5, -1.0]], requires_grad=True)
    h, res = net(x)
    np.testing.assert_allclose(res.numpy(), x.numpy() + np.tanh(x.numpy()), rtol=1e-6)
    res.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1 + (1 - np.tanh(x.numpy()) ** 2), rtol=1e-6)


def test_graph_state_dict_round_trip():
    a, b = _example().build_network(seed=0), _example().build_network(seed=5)
    x = np.random.default_rng(0).random((3, 2)).astype(np.float32)
    assert not np.allclose(a(x).numpy(), b(x).numpy())
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    assert list(a.state_dict())[:2] == ["h1_in.weight", "h1_in.bias"]


@pytest.mark.parametrize("build, error, match", [
    (lambda g: g.add("h", nn.Tanh(), "later"), ValueError, "neither a graph input nor an "
     "earlier node"),
    (lambda g: g.add("x", nn.Tanh(), "x"), ValueError, "already exists"),
    (lambda g: g.add("a.b", nn.Tanh(), "x"), ValueError, "without '.'"),
    (lambda g: g.add("h", 3, "x"), TypeError, "must be a Module or a callable"),
    (lambda g: g.add("h", nn.Tanh(), "x", combine="max"), ValueError, "combine must be"),
])
def test_graph_construction_errors(build, error, match):
    with pytest.raises(error, match=match):
        build(nn.Graph("x"))


def test_graph_forward_errors_name_the_node():
    net = nn.Graph("x").add("h", nn.Linear(2, 3, seed=0), "x").add("o", nn.Tanh(), ["h", "x"])
    with pytest.raises(ValueError, match=r"Graph node 'h' \(inputs \['x'\]\): Linear"):
        net(np.ones((4, 5), np.float32))
    bad = nn.Graph(["x", "y"]).add("o", nn.Tanh(), ["x", "y"])
    with pytest.raises(ValueError, match=r"node 'o': cannot concatenate its inputs"):
        bad(np.ones((4, 2)), np.ones((3, 2)))
    with pytest.raises(TypeError, match="expects 2 input"):
        bad(np.ones((4, 2)))
    with pytest.raises(RuntimeError, match="no nodes"):
        nn.Graph("x")(np.ones(2))

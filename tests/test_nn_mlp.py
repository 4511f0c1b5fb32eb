"""nn.MLP: structure, init options, the seed XOR example by hand, and learning tests."""

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import nn

X_XOR = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
Y_XOR = np.array([[0], [1], [1], [0]], dtype=np.float32)


def test_mlp_structure_and_output_activation():
    net = nn.MLP([4, 8, 8, 3], activation="relu", output_activation="softmax", seed=0)
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear", "Softmax"]
    out = net(np.ones((2, 4), np.float32)).numpy()
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    assert [type(m).__name__ for m in nn.MLP([2, 1])] == ["Linear"]
    assert nn.MLP([2, 3, 1], bias=False)[0].bias is None


def test_seed_xor_example_forward_deltas_and_correct_update():
    """Seed 000: 2-3-1, identity activation, every weight (bias included) 1, lr 0.1, one
    batch-gradient step on (0, 0) -> 0 with E = ½(ŷ − y)².

    Forward: hidden 1, 1, 1 and output 4; deltas ŷ − y = 4 at the output and 1·4 = 4 at each
    hidden unit. The correct step W := W − α·∂E/∂W sends the bias weights and the hidden→output
    weights to 1 − 0.1·4 = 0.6 and keeps the weights from the zero inputs at 1. (The seed
    article gets 1.4 from a sign slip: it uses δ = y − ŷ in W := W − α·Z·δ, moving uphill.)
    """
    net = nn.MLP([2, 3, 1], activation="identity", init="constant:1")
    x, y = gg.tensor([[0.0, 0.0]]), gg.tensor([[0.0]])
    hidden = net[1](net[0](x))
    hidden.retain_grad()
    out = net[2](hidden)
    np.testing.assert_array_equal(hidden.numpy(), [[1, 1, 1]])
    assert out.item() == 4.0
    loss = nn.functional.half_sse_loss(out, y)
    assert loss.item() == 8.0
    loss.backward()
    np.testing.assert_array_equal(hidden.grad.numpy(), [[4, 4, 4]])  # hidden deltas
    gg.optim.SGD(net.parameters(), lr=0.1).step()
    np.testing.assert_allclose(net[0].bias.numpy(), [0.6, 0.6, 0.6], rtol=1e-6)
    np.testing.assert_allclose(net[2].weight.numpy(), [[0.6, 0.6, 0.6]], rtol=1e-6)
    np.testing.assert_allclose(net[2].bias.numpy(), [0.6], rtol=1e-6)
    np.testing.assert_array_equal(net[0].weight.numpy(), np.ones((3, 2)))


def _train_xor(activation, seed, steps=300):
    net = nn.MLP([2, 3, 1], activation=activation, seed=seed)
    opt = gg.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    for _ in range(steps):
        loss = nn.functional.binary_cross_entropy_with_logits(net(X_XOR), Y_XOR)
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = ((net(X_XOR).numpy() > 0) == (Y_XOR > 0.5)).mean()
    return loss.item(), acc


def test_tanh_2_3_1_learns_xor_to_100_percent_with_sgd():
    loss, acc = _train_xor("tanh", seed=0)
    assert acc == 1.0 and loss < 0.01


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_identity_2_3_1_cannot_learn_xor(seed):
    # A product of matrices is a matrix: the network is one linear map, and no line separates
    # XOR's classes, so logistic loss is stuck at its linear optimum log 2 and accuracy < 100%.
    loss, acc = _train_xor("identity", seed=seed)
    assert acc <= 0.75 and loss > np.log(2) - 1e-3


def test_init_options():
    ws = lambda net: [m.weight.numpy() for m in net if isinstance(m, nn.Linear)]  # noqa: E731
    bs = lambda net: [m.bias.numpy() for m in net if isinstance(m, nn.Linear)]  # noqa: E731
    net = nn.MLP([2, 3, 1], init="constant:0.5")
    assert all((w == 0.5).all() for w in ws(net)) and all((b == 0.5).all() for b in bs(net))
    big = [300, 200, 100]
    for init, std in [("normal", 1.0), ("normal:0.1", 0.1), ("uniform", 1 / np.sqrt(3)),
                      ("xavier", np.sqrt(2 / 500)), ("kaiming", 5 / 3 / np.sqrt(300))]:
        w = ws(nn.MLP(big, activation="tanh", init=init, seed=0))[0]
        assert abs(w.std() - std) < 0.03 * std, init
        assert all((b == 0).all() for b in bs(nn.MLP(big, init=init, seed=0))), init
    relu_w = ws(nn.MLP(big, activation="relu", init="kaiming", seed=0))[0]
    assert abs(relu_w.std() - np.sqrt(2 / 300)) < 0.03 * np.sqrt(2 / 300)
    # reproducible from a seed, and the layers differ from each other
    a, b = nn.MLP([5, 5, 5], seed=3), nn.MLP([5, 5, 5], seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(ws(a), ws(b)))
    assert not np.array_equal(ws(a)[0], ws(a)[1])


def test_init_callable_gets_the_seed():
    net = nn.MLP([50, 40, 30], init=nn.init.kaiming_normal_, seed=1)
    again = nn.MLP([50, 40, 30], init=nn.init.kaiming_normal_, seed=1)
    np.testing.assert_array_equal(net[0].weight.numpy(), again[0].weight.numpy())
    net = nn.MLP([2, 2], init=lambda w: nn.init.constant_(w, 3.0))
    assert (net[0].weight.numpy() == 3).all() and (net[0].bias.numpy() == 0).all()


@pytest.mark.parametrize("kwargs, match", [
    (dict(sizes=[2]), "at least an input and an output"),
    (dict(sizes=[2, 0, 1]), "all positive"),
    (dict(sizes=[2, 1], init="glorot"), "unknown init 'glorot'"),
    (dict(sizes=[2, 1], init="constant"), "needs a value"),
    (dict(sizes=[2, 3, 1], activation="swish"), "unknown activation 'swish'"),
])
def test_mlp_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nn.MLP(**kwargs)

"""The seed article's worked XOR example (seeds/000), step by step.

Network 2-3-1 with identity activations, every weight and bias 1, learning rate 0.1, one step
of batch gradient descent on the sample (0, 0) -> 0 with E = ½·Σ(ŷ − y)².

Forward: each hidden unit gets 1·1 (bias) + 1·0 + 1·0 = 1, the output 1 + 1 + 1 + 1 = 4.
Backward: δ_out = ∂E/∂ŷ = ŷ − y = 4; each hidden δ = w·δ_out·f'(a) = 1·4·1 = 4.
Gradients: ∂E/∂w = z·δ, with z the value feeding the weight: 1·4 = 4 for the biases and the
hidden->output weights, 0·4 = 0 for the weights from the two zero inputs.
Update W := W − α·∂E/∂W: 1 − 0.1·4 = 0.6 for biases and hidden->output weights; the input
weights stay 1.0.

The article writes 1.4 instead: it sets δ = y − ŷ = −4 (the *negative* gradient) and then
still applies W := W − α·Z·δ, subtracting the negative gradient, i.e. stepping uphill. Its
forward values and deltas (up to that sign) are right; its update has a sign slip. The last
test shows the slip raises the loss.
"""

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.nn import functional as F

X = np.array([[0.0, 0.0]], dtype=np.float32)
Y = np.array([[0.0]], dtype=np.float32)


def seed_net():
    return gg.nn.MLP([2, 3, 1], activation="identity", init="constant:1")


def test_forward_hidden_ones_and_output_four():
    net = seed_net()
    hidden = net[0](gg.tensor(X))
    np.testing.assert_array_equal(hidden.numpy(), [[1.0, 1.0, 1.0]])
    assert net(gg.tensor(X)).item() == 4.0
    assert F.half_sse_loss(net(gg.tensor(X)), Y).item() == 8.0  # ½·(4 − 0)²


def test_deltas_and_gradients():
    net = seed_net()
    hidden = net[1](net[0](gg.tensor(X)))  # identity activation
    hidden.retain_grad()
    out = net[2](hidden)
    out.retain_grad()
    F.half_sse_loss(out, Y).backward()
    assert out.grad.numpy().tolist() == [[4.0]]  # δ_out = ŷ − y
    assert hidden.grad.numpy().tolist() == [[4.0, 4.0, 4.0]]  # δ_hidden = w·δ_out
    np.testing.assert_array_equal(net[2].weight.grad.numpy(), [[4.0, 4.0, 4.0]])
    np.testing.assert_array_equal(net[2].bias.grad.numpy(), [4.0])
    np.testing.assert_array_equal(net[0].weight.grad.numpy(), np.zeros((3, 2)))
    np.testing.assert_array_equal(net[0].bias.grad.numpy(), [4.0, 4.0, 4.0])


def test_one_batch_gd_step_with_fit():
    net = seed_net()
    h = gg.fit(net, X, Y, loss="half_sse", optimizer="sgd", lr=0.1, epochs=1, batch_size=None,
               verbose=0)
    assert h["loss"] == [8.0]
    np.testing.assert_allclose(net[0].bias.numpy(), [0.6, 0.6, 0.6], rtol=1e-6)
    np.testing.assert_allclose(net[2].weight.numpy(), [[0.6, 0.6, 0.6]], rtol=1e-6)
    np.testing.assert_allclose(net[2].bias.numpy(), [0.6], rtol=1e-6)
    np.testing.assert_array_equal(net[0].weight.numpy(), np.ones((3, 2)))  # inputs were 0
    # New forward: hidden 0.6 each, output 0.6 + 3·0.6·0.6 = 1.68, closer to the target 0.
    assert net(gg.tensor(X)).item() == pytest.approx(1.68, rel=1e-6)


def test_the_articles_update_goes_uphill():
    correct, article = seed_net(), seed_net()
    gg.fit(correct, X, Y, loss="half_sse", optimizer="sgd", lr=0.1, epochs=1, verbose=0)
    for layer in (article[0], article[2]):  # W := W − α·z·δ with δ = y − ŷ = −4: 1 → 1.4
        layer.bias.data = np.full_like(layer.bias.numpy(), 1.4)
    article[2].weight.data = np.full((1, 3), 1.4, dtype=np.float32)

    def loss(net):
        return F.half_sse_loss(net(gg.tensor(X)), Y).item()

    assert loss(correct) == pytest.approx(0.5 * 1.68**2, rel=1e-6)  # 1.41 < 8: downhill
    assert loss(article) == pytest.approx(0.5 * 7.28**2, rel=1e-6)  # 26.5 > 8: uphill

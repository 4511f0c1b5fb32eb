"""explain.trace_net: the layer-level trace in textbook notation, checked against hand values,
published numbers and finite differences computed here in plain NumPy."""

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.explain import trace_net

# The widely published 2-2-2 sigmoid example (inputs .05 .10, targets .01 .99, lr .5).
W1 = np.array([[0.15, 0.20], [0.25, 0.30]])
B1 = np.array([0.35, 0.35])
W2 = np.array([[0.40, 0.45], [0.50, 0.55]])
B2 = np.array([0.60, 0.60])
X, Y = np.array([0.05, 0.10]), np.array([0.01, 0.99])


def textbook_net():
    net = gg.nn.MLP([2, 2, 2], activation="sigmoid", output_activation="sigmoid",
                    init="constant:0", dtype=np.float64)
    net[0].weight.data, net[0].bias.data = W1.copy(), B1.copy()
    net[2].weight.data, net[2].bias.data = W2.copy(), B2.copy()
    return net


def numpy_loss(params):
    w1, b1, w2, b2 = params
    h = 1 / (1 + np.exp(-(w1 @ X + b1)))
    o = 1 / (1 + np.exp(-(w2 @ h + b2)))
    return 0.5 * np.sum((o - Y) ** 2)


def numpy_grads(params, eps=1e-6):
    grads = []
    for k, p in enumerate(params):
        g = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            up = [q.copy() for q in params]
            down = [q.copy() for q in params]
            up[k][i] += eps
            down[k][i] -= eps
            g[i] = (numpy_loss(up) - numpy_loss(down)) / (2 * eps)
        grads.append(g)
    return grads


def test_seed_xor_step_identity_network_all_weights_one():
    net = gg.nn.MLP([2, 3, 1], activation="identity", init="constant:1")
    tr = trace_net(net, [0, 0], [0], loss="half-sse", lr=0.1)
    hidden, out = tr.steps[0].layers
    assert hidden.a.tolist() == [[1, 1, 1]] and out.a.tolist() == [[4]]
    assert tr.steps[0].loss == 8  # ½ (4 − 0)²
    assert out.delta.tolist() == [[4]]  # ŷ − y
    assert hidden.delta.tolist() == [[4, 4, 4]]  # W²ᵀ δ² ⊙ 1
    np.testing.assert_allclose(out.W_after, [[0.6, 0.6, 0.6]], rtol=1e-15)
    np.testing.assert_allclose(out.b_after, [0.6], rtol=1e-15)
    np.testing.assert_allclose(hidden.b_after, [0.6, 0.6, 0.6], rtol=1e-15)
    assert hidden.W_after.tolist() == [[1, 1], [1, 1], [1, 1]]  # from the zero inputs
    # the model itself took the step, in its own float32
    np.testing.assert_allclose(net[2].weight.numpy(), [[0.6, 0.6, 0.6]], rtol=1e-7)
    assert net[0].weight.numpy().dtype == np.float32 and net[0].weight.grad is None
    checks = {c.name: c for c in tr.checks}
    assert checks["gradcheck"].ok and checks["textbook"].ok
    assert "still identical" in checks["symmetry"].detail[0]
    assert "W = [[1.8, 1.8]] and b = [1.68]" in checks["linear"].detail[0]
    sign = " ".join(checks["sign"].detail)
    assert "would become 1.4 instead of 0.6" in sign and "rise from 8 to 26.4992" in sign
    assert "sign slip of the seed XOR article" in sign


def test_textbook_2_2_2_sigmoid_matches_published_numbers_and_finite_differences():
    tr = trace_net(textbook_net(), X, Y, loss="half-sse", lr=0.5)
    st = tr.steps[0]
    h, o = st.layers
    # The published hand computation, to its 9 digits.
    np.testing.assert_allclose(h.z[0], [0.3775, 0.3925], atol=1e-12)
    np.testing.assert_allclose(h.a[0], [0.593269992, 0.596884378], atol=5e-10)
    np.testing.assert_allclose(o.a[0], [0.75136507, 0.772928465], atol=5e-10)
    assert abs(st.loss - 0.298371109) < 5e-10
    np.testing.assert_allclose(o.W_after, [[0.35891648, 0.408666186],
                                           [0.511301270, 0.561370121]], atol=5e-9)
    np.testing.assert_allclose(h.W_after, [[0.149780716, 0.19956143],
                                           [0.24975114, 0.29950229]], atol=5e-9)
    # Every gradient against central differences of an independent NumPy forward pass.
    fd = numpy_grads([W1, B1, W2, B2])
    for traced, numeric in zip([h.dW, h.db, o.dW, o.db], fd):
        np.testing.assert_allclose(traced, numeric, rtol=0, atol=1e-9)
    # δ by the textbook formulas, by hand.
    s2 = o.a[0] * (1 - o.a[0])
    d2 = (o.a[0] - Y) * s2
    np.testing.assert_allclose(o.delta[0], d2, rtol=1e-13)
    np.testing.assert_allclose(h.delta[0], (W2.T @ d2) * h.a[0] * (1 - h.a[0]), rtol=1e-13)
    assert [c.ok for c in tr.checks if c.name in ("gradcheck", "textbook")] == [True, True]


def test_several_steps_chain_and_descend():
    tr = trace_net(textbook_net(), X, Y, loss="half-sse", lr=0.5, steps=4)
    losses = [s.loss for s in tr.steps]
    assert all(a > b for a, b in zip(losses, losses[1:]))
    for a, b in zip(tr.steps, tr.steps[1:]):
        assert a.loss_after == pytest.approx(b.loss, rel=1e-15)
        np.testing.assert_array_equal(a.layers[0].W_after, b.layers[0].W)


def test_batch_gradient_is_the_average_of_per_sample_gradients():
    Xb = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    Yb = np.array([[0.0], [1.0], [1.0], [0.0]])
    tr = trace_net(gg.nn.MLP([2, 3, 1], activation="tanh", seed=0), Xb, Yb, loss="mse",
                   update=False)
    singles = [trace_net(gg.nn.MLP([2, 3, 1], activation="tanh", seed=0), x, y, loss="mse",
                         update=False) for x, y in zip(Xb, Yb)]
    for k in range(2):
        batch = tr.steps[0].layers[k]
        per = [s.steps[0].layers[k] for s in singles]
        np.testing.assert_allclose(batch.dW, np.mean([p.dW for p in per], axis=0), rtol=1e-12)
        # δ in the batch trace is per sample (the gradient of that sample's own loss)
        np.testing.assert_allclose(batch.delta, np.vstack([p.delta for p in per]), rtol=1e-12)
    assert tr.steps[0].loss == pytest.approx(np.mean(tr.steps[0].sample_losses), rel=1e-14)
    text = tr.to_text()
    assert "averaged over the 4 samples: (1/4) Σᵢ" in text and "(1/4) Σᵢ ℓᵢ" in text


def test_half_sse_batch_sums_and_ce_bce_deltas():
    Xb = np.array([[0.5, -1.0], [2.0, 0.3]])
    net = gg.nn.MLP([2, 2, 3], activation="relu", seed=1, dtype=np.float64)
    tr = trace_net(net, Xb, [2, 0], loss="ce", update=False)
    out = tr.steps[0].layers[-1]
    z = out.z
    soft = np.exp(z - z.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out.delta, soft - np.eye(3)[[2, 0]], rtol=1e-12)
    assert out.fprime.tolist() == np.ones_like(z).tolist()
    net = gg.nn.MLP([2, 2, 1], activation="tanh", output_activation="sigmoid", seed=2)
    tr = trace_net(net, Xb, [[1.0], [0.0]], loss="bce", update=False)
    out = tr.steps[0].layers[-1]
    np.testing.assert_allclose(out.delta, out.a - [[1.0], [0.0]], rtol=1e-9)
    net = gg.nn.MLP([2, 2, 1], activation="tanh", seed=3)
    tr = trace_net(net, Xb, [[1.0], [0.0]], loss="half-sse", update=False)
    ly = tr.steps[0].layers[0]
    np.testing.assert_allclose(ly.dW, ly.delta.T @ ly.a_in, rtol=1e-12)  # Σᵢ, no 1/n


def test_no_symmetry_or_linear_note_for_a_random_tanh_net():
    tr = trace_net(gg.nn.MLP([2, 3, 1], activation="tanh", seed=0), [1, 0], [1])
    assert {c.name for c in tr.checks} == {"gradcheck", "textbook", "sign"}


def test_update_false_leaves_the_model_alone():
    net = gg.nn.MLP([2, 3, 1], activation="identity", init="constant:1")
    trace_net(net, [0, 0], [0], update=False)
    assert np.all(net[0].bias.numpy() == 1) and np.all(net[2].weight.numpy() == 1)


@pytest.mark.parametrize("kwargs, message", [
    ({"x": [0, 0, 0]}, "the input has 3 values per sample but the network 2-3-1 expects 2"),
    ({"y": [0, 1]}, "the target has shape (1, 2) but the network 2-3-1 gives 1 output"),
    ({"loss": "hinge"}, "unknown loss 'hinge'"),
    ({"lr": -0.1}, "learning rate must be a number >= 0"),
    ({"steps": 0}, "steps must be at least 1"),
    ({"loss": "ce", "y": [3]}, "needs one integer class in [0, 0]"),
])
def test_bad_input_is_refused_before_anything_changes(kwargs, message):
    net = gg.nn.MLP([2, 3, 1], activation="identity", init="constant:1")
    args = {"x": [0, 0], "y": [0], **kwargs}
    with pytest.raises(ValueError) as e:
        trace_net(net, args.pop("x"), args.pop("y"), **args)
    assert message in str(e.value)
    assert np.all(net[0].bias.numpy() == 1)


def test_models_that_are_not_linear_plus_activation_are_refused():
    net = gg.nn.Sequential(gg.nn.Linear(2, 2), gg.nn.Dropout(0.5), gg.nn.Linear(2, 1))
    with pytest.raises(ValueError, match="cannot trace module Dropout at position 1"):
        trace_net(net, [0, 0], [0])
    with pytest.raises(ValueError, match="activation Tanh without a Linear layer before it"):
        trace_net(gg.nn.Sequential(gg.nn.Tanh(), gg.nn.Linear(2, 1)), [0, 0], [0])

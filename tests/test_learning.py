"""Learning tests: the models really learn what they should, and cannot what they cannot."""

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.training import evaluate


def test_tanh_2_3_1_learns_xor():
    X, y = gg.data.xor()
    model = gg.nn.MLP([2, 3, 1], activation="tanh", seed=0)
    h = gg.fit(model, X, y, loss="bce_with_logits", lr=0.1, epochs=300, verbose=0, seed=0)
    final = evaluate(model, X, y, loss="bce_with_logits")
    assert final["accuracy"] == 1.0 and final["loss"] < 0.01
    assert h["loss"][-1] < h["loss"][0] / 50


def test_tanh_2_3_1_learns_xor_by_plain_batch_gradient_descent():
    """The seeds' setting: full-batch GD on ½Σ(ŷ − y)², no momentum, no Adam."""
    X, y = gg.data.xor()
    model = gg.nn.MLP([2, 3, 1], activation="tanh", seed=0)
    gg.fit(model, X, y.astype(np.float32), loss="half_sse", optimizer="sgd", lr=0.1,
           epochs=1500, verbose=0)
    out = model(gg.tensor(X)).numpy()[:, 0]
    np.testing.assert_array_equal(out > 0.5, y == 1)
    np.testing.assert_allclose(out, y, atol=0.15)


def test_identity_2_3_1_cannot_learn_xor():
    """A composition of linear maps is linear: with identity activations the 2-3-1 network
    computes ŷ = W₂(W₁x + b₁) + b₂ = Wx + b, a single affine function of the inputs. XOR is not
    linearly separable (no line puts (0,1), (1,0) on one side and (0,0), (1,1) on the other),
    so at most 3 of the 4 points can be right. The best affine least-squares fit to XOR is the
    constant 0.5 (mean squared error 0.25), and training converges there."""
    X, y = gg.data.xor()
    model = gg.nn.MLP([2, 3, 1], activation="identity", seed=0)
    h = gg.fit(model, X, y.astype(np.float32), loss="mse", lr=0.05, epochs=600, verbose=0,
               seed=0)
    final = evaluate(model, X, y.astype(np.float32), loss="mse", metrics=["accuracy"])
    assert final["loss"] == pytest.approx(0.25, abs=1e-3)
    assert min(h["loss"]) >= 0.25 - 1e-4
    assert final["accuracy"] <= 0.75
    # The network is one affine map: collapse its weights and compare.
    W1, b1, W2, b2 = (p.numpy() for p in model.parameters())
    W, b = W2 @ W1, W2 @ b1 + b2
    np.testing.assert_allclose(model(gg.tensor(X)).numpy(), X @ W.T + b, atol=1e-5)


@pytest.mark.usefixtures("sklearn")
def test_mlp_reaches_97_percent_on_digits():
    """64-128-10 ReLU, Adam, 25 epochs of mini-batches of 32 (about 0.3 s a split). Held-out
    accuracy depends on which 20% is held out (97.2-99.7% over split seeds 0-5 here, seed 0
    the hardest), so the claim is checked on three splits, none of them picked: their mean
    must reach 97% and none may fall below 96%."""
    X, y = gg.data.load_digits()
    accuracies = []
    for split in (0, 1, 2):
        X_tr, X_te, y_tr, y_te = gg.data.train_test_split(X, y, 0.2, seed=split, stratify=y)
        model = gg.nn.MLP([64, 128, 10], activation="relu", init="kaiming", seed=0)
        gg.fit(model, X_tr, y_tr, loss="cross_entropy", lr=3e-3, epochs=25, batch_size=32,
               verbose=0, seed=0)
        accuracies.append(evaluate(model, X_te, y_te)["accuracy"])
    assert np.mean(accuracies) >= 0.97, accuracies
    assert min(accuracies) >= 0.96, accuracies


@pytest.mark.parametrize("name", ["circles", "moons"])
def test_two_moons_and_circles_are_separated(name):
    X, y = getattr(gg.data, name)(300, seed=0)
    X_tr, X_te, y_tr, y_te = gg.data.train_test_split(X, y, 0.25, seed=0, stratify=y)
    model = gg.nn.MLP([2, 16, 16, 1], activation="tanh", seed=0)
    gg.fit(model, X_tr, y_tr, loss="bce_with_logits", lr=0.02, epochs=100, batch_size=32,
           verbose=0, seed=0)
    assert evaluate(model, X_te, y_te)["accuracy"] >= 0.95

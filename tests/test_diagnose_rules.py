"""Each diagnose rule: a network built to trigger it, and one built not to."""

from __future__ import annotations

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import diagnose as dg
from glassgrad.autograd import STATE


@pytest.fixture(scope="module")
def digits(sklearn) -> tuple[np.ndarray, np.ndarray]:  # the set ships with sklearn
    X, y = gg.data.load_digits()
    return X[:512], y[:512]


def train(model, X, y, **kw):
    monitor = dg.Monitor(every=1)
    args = dict(optimizer="sgd", lr=0.1, epochs=5, batch_size=64, verbose=0, seed=0)
    args.update(kw)
    hist = gg.fit(model, X, y, callbacks=[monitor], **args)
    assert hist.extra["monitor"] is monitor.data
    return hist


def rules(hist) -> set[str]:
    return {f.rule for f in dg.diagnose(hist)}


@pytest.fixture(scope="module")
def relu_he(digits):
    """The healthy deep net: 10 hidden ReLU layers with He initialization."""
    return train(gg.nn.MLP([64, *[64] * 10, 10], activation="relu", init="kaiming", seed=0),
                 *digits)


def test_deep_relu_he_triggers_nothing(relu_he):
    assert rules(relu_he) == set()
    assert relu_he["accuracy"][-1] > 0.3  # it learns


def test_deep_sigmoid_standard_normal_saturates(digits):
    h = train(gg.nn.MLP([64, *[64] * 10, 10], activation="sigmoid", init="normal", seed=0),
              *digits)
    found = {f.rule: f for f in dg.diagnose(h)}
    assert "saturation" in found
    sat = found["saturation"]
    assert sat.layers and all(name in h.extra["monitor"]["activations"] for name in sat.layers)
    assert "xavier" in sat.fix and "%" in sat.evidence[0]


def test_deep_sigmoid_glorot_vanishes(digits, relu_he):
    h = train(gg.nn.MLP([64, *[64] * 10, 10], activation="sigmoid", init="xavier", seed=0),
              *digits)
    found = {f.rule: f for f in dg.diagnose(h)}
    assert "vanishing" in found
    params = h.extra["monitor"]["params"]
    first, last = list(params.values())[0], list(params.values())[-1]
    assert np.median(first["grad_norm"]) < 1e-2 * np.median(last["grad_norm"])
    assert found["vanishing"].layers == [next(iter(params))]
    assert "vanishing" not in rules(relu_he)


def test_exploding_and_lr_too_high():
    X, y = gg.data.regression(n_samples=100, n_features=5, seed=0)
    m = gg.nn.MLP([5, 16, 1], activation="tanh", seed=0)
    h = gg.fit(m, X, y, loss="mse", optimizer="sgd", lr=1.0, epochs=12, verbose=0,
               callbacks=[dg.Monitor(every=1)])
    assert {"exploding", "lr_too_high"} <= rules(h)
    healthy = gg.fit(gg.nn.MLP([5, 16, 1], activation="tanh", seed=0), X, y, loss="mse",
                     optimizer="sgd", lr=0.01, epochs=12, verbose=0,
                     callbacks=[dg.Monitor(every=1)])
    assert not {"exploding", "lr_too_high"} & rules(healthy)


def test_exploding_on_non_finite_gradients():
    m = gg.nn.MLP([2, 3, 1], seed=0)
    monitor = dg.Monitor(m)
    m[0].weight.data[0, 0] = np.inf
    loss = m(gg.tensor([[1.0, 2.0]])).sum()
    loss.backward()
    m[2].weight.grad.data[0, :2] = np.nan  # as an overflowing backward pass would leave it
    monitor.after_backward()
    monitor.after_step()
    rec = monitor.data["params"]["0"]
    assert rec["nonfinite_weight"] == [1] and rec["nonfinite_grad"] == [0]
    assert monitor.data["params"]["2"]["nonfinite_grad"] == [2]
    found = dg.diagnose(monitor, rules=["exploding"])
    assert found and found[0].layers == ["0", "2"]


def test_dead_relu_units(digits):
    m = gg.nn.MLP([64, 64, 64, 10], activation="relu", init="kaiming", seed=0)
    for layer in (m[0], m[2]):
        layer.bias.data = layer.bias.data - 10.0  # every hidden unit starts (and stays) off
    h = train(m, *digits)
    found = {f.rule: f for f in dg.diagnose(h)}
    assert found["dead_units"].layers == ["0", "2"]
    assert "stalled" in found
    healthy = train(gg.nn.MLP([64, 64, 64, 10], activation="relu", init="kaiming", seed=0),
                    *digits)
    assert "dead_units" not in rules(healthy)


def test_lr_too_low_and_stalled(digits):
    h = train(gg.nn.MLP([64, 64, 10], activation="tanh", seed=0), *digits, lr=1e-6)
    found = {f.rule: f for f in dg.diagnose(h)}
    assert {"lr_too_low", "stalled"} <= set(found)
    assert "lr=1e-06" in found["lr_too_low"].title
    ok = train(gg.nn.MLP([64, 64, 10], activation="tanh", seed=0), *digits, lr=0.1)
    assert rules(ok) == set()


def test_overfitting_names_the_epoch_it_started():
    X, y = gg.data.moons(n_samples=240, noise=0.35, seed=1)
    m = gg.nn.MLP([2, 64, 64, 1], activation="tanh", seed=0)
    h = gg.fit(m, X[:30], y[:30], optimizer="adam", lr=0.01, epochs=150, verbose=0,
               validation_data=(X[30:], y[30:]), callbacks=[dg.Monitor(every=5)])
    found = {f.rule: f for f in dg.diagnose(h)}
    assert set(found) == {"overfitting"}
    val = h["val_loss"]
    best = int(np.argmin(val))
    assert found["overfitting"].epoch == h.epoch[best] + 1
    assert f"epoch {h.epoch[best]}" in found["overfitting"].evidence[0]


def test_overfitting_on_plain_loss_lists():
    rising = {"loss": [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2],
              "val_loss": [1.0, 0.8, 0.7, 0.75, 0.8, 0.9, 1.0]}
    found = dg.diagnose(rising)
    assert [f.rule for f in found] == ["overfitting"]
    assert found[0].epoch == 3  # epochs counted from 0 in a bare dict; minimum at 2
    both_fall = {"loss": [1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2],
                 "val_loss": [1.0, 0.8, 0.7, 0.6, 0.55, 0.5, 0.45]}
    assert dg.diagnose(both_fall) == []


def test_healthy_xor_and_digits_trigger_nothing(digits):
    X, y = gg.data.xor()
    h = gg.fit(gg.nn.MLP([2, 4, 1], activation="tanh", seed=0), X, y, loss="bce_with_logits",
               lr=0.1, epochs=300, verbose=0, seed=0, callbacks=[dg.Monitor()])
    assert h["accuracy"][-1] == 1.0
    assert rules(h) == set()
    assert "no problems found" in dg.report(h)
    Xd, yd = gg.data.load_digits()
    h = gg.fit(gg.nn.MLP([64, 128, 10], activation="tanh", seed=0), Xd, yd, epochs=8,
               batch_size=64, validation_split=0.2, verbose=0, seed=0,
               callbacks=[dg.Monitor()])
    assert h["val_accuracy"][-1] > 0.9
    assert rules(h) == set()


def test_report_text_and_thresholds():
    flat = {"loss": [2.0, 2.0, 1.99, 2.0, 1.98, 2.0]}
    text = dg.report(flat)
    assert text.startswith("diagnose: 1 problem found (losses only")
    assert "[stalled]" in text and "fix:" in text
    assert dg.diagnose(flat, dg.Thresholds(stall_drop=0.005)) == []
    with pytest.raises(ValueError, match="unknown rule"):
        dg.diagnose(flat, rules=["nope"])
    with pytest.raises(TypeError, match="History"):
        dg.report(42)


def test_monitor_leaves_no_hook_behind(digits):
    seen = []
    probe = gg.training.LambdaCallback(on_after_backward=lambda t, s: seen.append(STATE.hooks))
    gg.fit(gg.nn.MLP([64, 8, 10], seed=0), *digits, epochs=1, batch_size=256, verbose=0,
           callbacks=[probe])
    assert seen and all(h == () for h in seen)  # monitoring off: nothing attached to the engine
    monitor = dg.Monitor(every=2)
    gg.fit(gg.nn.MLP([64, 8, 10], seed=0), *digits, epochs=2, batch_size=128, verbose=0,
           callbacks=[monitor])
    assert STATE.hooks == ()
    assert monitor.data["params"]["0"]["step"] == [0, 2, 4, 6]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the diverging loss overflows float32
def test_a_run_stopped_by_a_nan_loss_is_diagnosed_and_leaves_no_hook():
    X, y = gg.data.regression(n_samples=100, n_features=5, seed=0)
    monitor = dg.Monitor(every=1)
    with pytest.raises(gg.training.NonFiniteLossError) as info:
        gg.fit(gg.nn.MLP([5, 16, 1], activation="tanh", seed=0), X, y, loss="mse",
               optimizer="sgd", lr=1.0, epochs=60, verbose=0, callbacks=[monitor])
    assert STATE.hooks == ()  # the hook left when the output layer ran, before the loss
    assert {"exploding", "lr_too_high"} <= rules(info.value.history)

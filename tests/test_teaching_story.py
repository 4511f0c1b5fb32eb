"""Issue 13: the advice agrees with the tool's own measurements, and the 2010 experiment runs
as the paper ran it (rules, drop_last, the experiment's observations, its plots)."""

from __future__ import annotations

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import diagnose as dg
from glassgrad.diagnose.rules import Run, Thresholds
from glassgrad.training import Callback, History, evaluate


def _train(act: str, init: str, seed: int, X: np.ndarray, y: np.ndarray, width: int = 32,
           depth: int = 10) -> History:
    model = gg.nn.MLP([X.shape[1], *[width] * depth, int(y.max()) + 1], activation=act,
                      init=init, seed=seed)
    return gg.fit(model, X, y, optimizer="sgd", lr=0.1, epochs=20, batch_size=32, verbose=0,
                  seed=seed, callbacks=[dg.Monitor(every=1)])


@pytest.fixture(scope="module")
def circles() -> tuple[np.ndarray, np.ndarray]:
    return gg.data.circles(seed=0)


# --------------------------------------------------------------------------- saturation
@pytest.mark.parametrize("seed", range(6))
def test_deep_sigmoid_standard_normal_is_flagged_on_every_seed(circles, seed):
    """10 sigmoid layers of 32 units with N(0,1) weights: no single layer is reliably above
    30% saturated (the old one-threshold rule said "no problems" on seeds 0 and 3), but half
    the layers are, and the gradient shrinks toward the input."""
    h = _train("sigmoid", "normal", seed, *circles)
    found = {f.rule: f for f in dg.diagnose(h)}
    assert "saturation" in found
    sat = found["saturation"]
    assert len(sat.layers) >= 5  # several layers, each named
    assert all(name in h.extra["monitor"]["activations"] for name in sat.layers)
    text = " ".join(sat.evidence)
    assert "threshold" in text and "counts from" in text  # the margins are reported
    assert "tanh" in sat.fix and "ReLU" in sat.fix and "¼" in sat.fix


@pytest.mark.parametrize(("act", "init"), [("tanh", "xavier"), ("relu", "kaiming")])
@pytest.mark.parametrize("seed", range(3))
def test_healthy_deep_nets_are_not_flagged(circles, act, init, seed):
    h = _train(act, init, seed, *circles)
    assert {f.rule for f in dg.diagnose(h)} == set()


@pytest.mark.parametrize("seed", range(3))
def test_one_saturated_layer_of_a_learning_net_is_not_a_problem(seed):
    """blobs' unscaled inputs saturate tanh's first layer (20-30%) of a net that reaches
    100%: one layer near the threshold must not flip the verdict."""
    X, y = gg.data.blobs(seed=0)
    h = _train("tanh", "xavier", seed, X, y)
    assert h["accuracy"][-1] == 1.0
    first = next(iter(h.extra["monitor"]["activations"].values()))
    assert 0.15 < np.mean(first["saturated"][: len(first["saturated"]) // 10]) < 0.6
    assert "saturation" not in {f.rule for f in dg.diagnose(h)}


def _acts(op: str, fracs: list[float]) -> dict:
    return {f"{2 * i}": {"op": op, "saturated": [f] * 10, "dead": [0.0] * 10}
            for i, f in enumerate(fracs)}


def _params(grads: list[float]) -> dict:
    return {f"{2 * i}": {"grad_norm": [g] * 10, "update_ratio": [1e-3] * 10}
            for i, g in enumerate(grads)}


@pytest.mark.parametrize(("fracs", "grads", "fires"), [
    ([0.31, 0.0, 0.0, 0.0], [1.0] * 5, False),   # one layer just over 30%: noise
    ([0.29, 0.0, 0.0, 0.0], [1.0] * 5, False),
    ([0.65, 0.0, 0.0, 0.0], [1.0] * 5, True),    # one layer far over: enough alone
    ([0.2, 0.2, 0.31, 0.0], [1.0] * 5, True),    # widespread and one layer severe
    ([0.2, 0.2, 0.25, 0.0], [1.0] * 5, False),   # widespread but no harm shown
    ([0.2, 0.2, 0.25, 0.0], [0.1, 0.2, 0.3, 0.4, 0.5], True),  # ... and it hurts: 5×
    ([0.2, 0.0, 0.25, 0.0], [0.1, 0.2, 0.3, 0.4, 0.5], True),  # half the layers suffice
    ([0.2, 0.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4, 0.5], False),  # one of four does not
])
def test_saturation_combines_the_evidence(fracs, grads, fires):
    run = Run({"params": _params(grads), "activations": _acts("sigmoid", fracs),
               "epochs": [{"epoch": e, "loss": 1.0 / (e + 1)} for e in range(5)]})
    assert (dg.diagnose(run, rules=["saturation"]) != []) is fires


# --------------------------------------------------------------------------- advice
@pytest.mark.parametrize(("op", "must", "must_not"), [
    ("sigmoid", ["switch to tanh", "ReLU", "σ′(z) ≤ ¼", "f′(0) = 1"], ["for tanh/sigmoid"]),
    ("tanh", ["init='xavier'", "f′(0) = 1"], ["sigmoid", "kaiming"]),
    ("relu", ["init='kaiming'", "2/fan_in"], ["xavier"]),
])
def test_vanishing_advice_depends_on_the_activation(op, must, must_not):
    run = Run({"params": _params([1e-4, 1e-3, 1e-2, 1.0]), "activations": _acts(op, [0.0] * 3),
               "epochs": []})
    (found,) = dg.diagnose(run, rules=["vanishing"])
    for words in must:
        assert words in found.fix
    for words in must_not:
        assert words not in found.fix


def test_sigmoid_glorot_is_told_to_leave_sigmoid(circles):
    h = _train("sigmoid", "xavier", 0, *circles)
    found = {f.rule: f for f in dg.diagnose(h)}
    assert "vanishing" in found
    assert "switch to tanh" in found["vanishing"].fix
    assert "init='xavier' for tanh/sigmoid" not in found["vanishing"].fix


# --------------------------------------------------------------------------- overfitting
_FALL = [0.69, 0.3, 0.12, 0.05, 0.02, 0.012, 0.009, 0.007, 0.006]


@pytest.mark.parametrize("val", [
    [0.69, 0.3, 0.1, 0.03, 0.0077, 0.009, 0.011, 0.012, 0.013],  # the moons run: tiny
    [0.69, 0.5, 0.4, 0.35, 0.30, 0.45, 0.29, 0.31, 0.28],  # one bad epoch, then back down
    [0.69, 0.5, 0.4, 0.35, 0.30, 0.31, 0.32, 0.31, 0.32],  # +7%: under the relative margin
])
def test_overfitting_ignores_rises_that_do_not_matter(val):
    assert dg.diagnose({"loss": _FALL, "val_loss": val}, rules=["overfitting"]) == []


@pytest.mark.parametrize("val", [
    [0.69, 0.3, 0.1, 0.03, 0.0077, 0.04, 0.06, 0.09, 0.12],
    [0.69, 0.5, 0.4, 0.35, 0.30, 0.36, 0.40, 0.45, 0.50],
])
def test_overfitting_fires_on_a_clear_rise(val):
    (found,) = dg.diagnose({"loss": _FALL, "val_loss": val}, rules=["overfitting"])
    assert found.epoch == 5  # the minimum is at epoch 4 (a bare dict counts from 0)
    assert "counts from 10%" in found.evidence[1]


def test_overfitting_margins_are_thresholds():
    val = [0.69, 0.3, 0.1, 0.03, 0.0077, 0.009, 0.011, 0.012, 0.013]
    loose = Thresholds(overfit_min_delta=0.004)  # 0.0028 absolute: now the rise matters
    assert [f.rule for f in dg.diagnose({"loss": _FALL, "val_loss": val}, loose,
                                        rules=["overfitting"])] == ["overfitting"]


# --------------------------------------------------------------------------- drop_last, init
@pytest.mark.parametrize(("n", "bs", "steps"), [(10, 3, 3), (9, 3, 3), (3, 5, 1)])
def test_fit_drop_last_skips_the_short_batch(n, bs, steps):
    X, y = gg.data.blobs(n_samples=n, centers=2, seed=0)
    seen = []

    class Sizes(Callback):
        def on_batch_end(self, trainer, step, loss):
            seen.append(len(trainer.last_batch[0]))

    h = gg.fit(gg.nn.MLP([2, 4, 2], seed=0), X, y, optimizer="sgd", batch_size=bs, epochs=2,
               drop_last=True, callbacks=[Sizes()], verbose=0, seed=0)
    assert seen == [min(bs, n)] * (2 * steps)
    assert h.params["steps_per_epoch"] == steps and h.params["drop_last"] is True
    assert 0 <= h["accuracy"][-1] <= 1 and np.isfinite(h["loss"]).all()


def test_fit_drop_last_loss_is_the_mean_over_the_samples_used():
    X, y = gg.data.blobs(n_samples=10, centers=2, seed=0)
    model = gg.nn.MLP([2, 4, 2], seed=0)
    h = gg.fit(model, X, y, optimizer="sgd", lr=0.0, batch_size=4, epochs=1, shuffle=False,
               drop_last=True, verbose=0)
    full = evaluate(model, X[:8], y[:8])  # lr 0: the weights did not move
    np.testing.assert_allclose(h["loss"][0], full["loss"], rtol=1e-5)
    np.testing.assert_allclose(h["accuracy"][0], full["accuracy"])


@pytest.mark.parametrize(("bad", "error"), [("yes", TypeError), (1, TypeError)])
def test_fit_drop_last_must_be_a_bool(bad, error):
    X, y = gg.data.xor()
    with pytest.raises(error, match="drop_last must be True or False"):
        gg.fit(gg.nn.MLP([2, 3, 1], seed=0), X, y, drop_last=bad, verbose=0)


def test_fan_in_uniform_is_the_papers_standard_init():
    w = gg.nn.init.fan_in_uniform_(np.empty((200, 400)), seed=0)
    assert np.abs(w).max() <= 1 / np.sqrt(400) and np.abs(w).max() > 0.99 / np.sqrt(400)
    np.testing.assert_allclose(w.var(), 1 / (3 * 400), rtol=0.05)
    again = gg.nn.init.fan_in_uniform_(np.empty((200, 400)), seed=0)
    np.testing.assert_array_equal(w, again)

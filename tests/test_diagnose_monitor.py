"""Monitor's numbers against hand computations, its exports, and check_gradients."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import diagnose as dg
from glassgrad.autograd import STATE


def sgd_step(model, lr):
    for p in model.parameters():
        p.data = p.data - lr * p.grad.data


def test_norms_and_update_ratio_by_hand():
    m = gg.nn.MLP([3, 4, 2], activation="tanh", seed=0)
    monitor = dg.Monitor(m, every=1)
    x = np.array([[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]], dtype=np.float32)
    with monitor.observe_activations():
        out = m(gg.tensor(x))
        loss = (out * out).sum()
    loss.backward()
    monitor.after_backward(loss=loss)
    w0, b0 = m[0].weight.numpy().copy(), m[0].bias.numpy().copy()
    g0 = np.sqrt((m[0].weight.grad.data ** 2).sum() + (m[0].bias.grad.data ** 2).sum())
    sgd_step(m, 0.1)
    monitor.after_step()
    rec = monitor.data["params"]["0"]
    assert rec["step"] == [0] and monitor.step == 1
    np.testing.assert_allclose(rec["grad_norm"], [g0], rtol=1e-5)
    np.testing.assert_allclose(rec["weight_norm"], [np.sqrt((w0 ** 2).sum() + (b0 ** 2).sum())],
                               rtol=1e-5)
    np.testing.assert_allclose(rec["update_ratio"], [0.1 * g0 / rec["weight_norm"][0]],
                               rtol=1e-4)
    assert monitor.data["loss"]["value"] == [pytest.approx(loss.item())]
    # the hidden tanh layer is named after the Linear that feeds it; the output is not watched
    act = monitor.data["activations"]
    assert list(act) == ["0"] and act["0"]["op"] == "tanh"
    h = np.tanh(x @ w0.T + b0)
    assert act["0"]["mean"][0] == pytest.approx(h.mean(), rel=1e-5)
    assert act["0"]["std"][0] == pytest.approx(h.std(), rel=1e-4)
    assert STATE.hooks == ()


def test_saturated_and_dead_fractions():
    lin = gg.nn.Linear(1, 4)
    lin.weight.data = np.array([[100.0], [0.01], [-100.0], [1.0]], dtype=np.float32)
    lin.bias.data = np.zeros(4, np.float32)
    out_layer = gg.nn.Linear(4, 1)
    for act, expect_sat, expect_dead in (("sigmoid", 0.5, 0.0), ("tanh", 0.5, 0.0),
                                         ("relu", 0.0, 0.25)):
        activation = {"sigmoid": gg.nn.Sigmoid, "tanh": gg.nn.Tanh, "relu": gg.nn.ReLU}[act]
        model = gg.nn.Sequential(lin, activation(), out_layer)
        monitor = dg.Monitor(model)
        x = np.array([[1.0], [2.0]], dtype=np.float32)  # positive: unit 2 is always <= 0
        with monitor.observe_activations():
            model(gg.tensor(x))
        rec = monitor.data["activations"]["0"]
        # units 0 and 2 (weights ±100) are saturated for sigmoid/tanh: 4 of 8 values
        assert rec["saturated"] == [expect_sat]
        assert rec["dead"] == [expect_dead]


def test_every_skips_steps_and_attaches_nothing_then():
    m = gg.nn.MLP([2, 3, 1], seed=0)
    monitor = dg.Monitor(m, every=3)
    x = gg.tensor([[1.0, 2.0]])
    for _ in range(7):
        with monitor.observe_activations():
            assert (STATE.hooks == (monitor,)) == (monitor.step % 3 == 0)
            loss = m(x).sum()
        loss.backward()
        monitor.after_backward(loss=loss)
        sgd_step(m, 0.01)
        monitor.after_step()
        m.zero_grad()
    assert monitor.data["params"]["0"]["step"] == [0, 3, 6]
    assert monitor.data["activations"]["0"]["step"] == [0, 3, 6]
    assert monitor.data["loss"]["step"] == list(range(7))  # the loss is logged every step


def test_export_csv_and_json(tmp_path):
    X, y = gg.data.moons(n_samples=64, seed=0)
    monitor = dg.Monitor(every=1)
    gg.fit(gg.nn.MLP([2, 5, 5, 1], seed=0), X, y, epochs=3, batch_size=32, verbose=0,
           callbacks=[monitor])
    monitor.to_csv(tmp_path / "m.csv")
    monitor.to_json(tmp_path / "m.json")
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    params = [r for r in rows if r["kind"] == "param"]
    acts = [r for r in rows if r["kind"] == "activation"]
    assert len(params) == 3 * 6 and len(acts) == 2 * 6  # 3 Linear, 2 hidden tanh, 6 steps
    first = monitor.data["params"]["0"]
    assert float(params[0]["grad_norm"]) == pytest.approx(first["grad_norm"][0])
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["params"]["4"]["update_ratio"] == pytest.approx(
        monitor.data["params"]["4"]["update_ratio"])
    assert len(data["epochs"]) == 3 and data["epochs"][0]["epoch"] == 1
    assert sum(data["hist_last"]["0"]["counts"]) == 32 * 5  # one full batch, 5 units
    assert len(list(tmp_path.iterdir())) == 2  # no temporary files left behind


def test_monitor_needs_a_model():
    with pytest.raises(ValueError, match="no model"):
        dg.Monitor().after_backward()
    with pytest.raises(ValueError, match="every"):
        dg.Monitor(every=0)


# --------------------------------------------------------------------------- check_gradients
def test_check_gradients_passes_and_restores_the_model(capsys):
    X, y = gg.data.moons(n_samples=16, seed=0)
    m = gg.nn.MLP([2, 8, 8, 1], activation="tanh", seed=0)
    before = {k: v.numpy().copy() for k, v in m.state_dict().items()}
    loss = gg.nn.functional.binary_cross_entropy_with_logits
    report = dg.check_gradients(m, lambda out, t: loss(out, t.reshape(-1, 1)), X,
                                y.astype(np.float32), max_entries=10)
    printed = capsys.readouterr().out
    assert report.passed and "6 of 6 parameters agree" in printed
    assert [r.checked for r in report.rows] == [10, 8, 10, 8, 8, 1]  # sampled above 10
    assert all(r.max_rel_error < 1e-5 for r in report.rows)
    for k, v in m.state_dict().items():
        assert v.dtype == np.float32 and np.array_equal(v.data, before[k])


class Leaky(gg.nn.Module):
    """A model whose forward uses W twice but lets backprop see only one use (a planted bug)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = gg.nn.Parameter(np.array([[0.5, -0.3]], dtype=np.float32))

    def forward(self, x):
        hidden_use = gg.tensor(x.data @ self.w.data.T)  # the graph loses this path
        return gg.linear(x, self.w) + hidden_use


def test_check_gradients_finds_a_missing_path():
    report = dg.check_gradients(Leaky(), lambda out, t: ((out - t) ** 2).sum(),
                                [[1.0, 2.0], [0.5, -1.0]], [[0.0], [1.0]], verbose=False)
    assert not report.passed
    row = report.rows[0]
    assert row.name == "w" and not row.passed
    assert row.max_abs_numeric == pytest.approx(2 * row.max_abs_analytic, rel=1e-6)
    assert "FAIL" in str(report)


def test_check_gradients_notes_relu_kinks():
    m = gg.nn.Sequential(gg.nn.Linear(1, 2), gg.nn.ReLU(), gg.nn.Linear(2, 1))
    m[0].weight.data = np.array([[1.0], [2.0]], dtype=np.float32)
    m[0].bias.data = np.zeros(2, np.float32)
    report = dg.check_gradients(m, lambda out, t: out.sum(), [[0.0], [1.0]], [[0.0], [0.0]],
                                verbose=False)
    assert report.kinks == 2  # both units sit exactly at 0 for the first sample
    assert "kink" in str(report)
    with pytest.raises(ValueError, match="scalar"):
        dg.check_gradients(m, lambda out, t: out, [[1.0], [2.0]], [[0.0], [0.0]],
                           verbose=False)

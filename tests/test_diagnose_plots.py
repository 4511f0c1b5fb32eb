"""Plots (matplotlib, Agg), the initialization experiment and the two CLI commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import diagnose as dg
from glassgrad.cli import main
from glassgrad.diagnose.experiment import ConfigResult, ExperimentResult, run_init_experiment

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def moons_run():
    X, y = gg.data.moons(n_samples=200, seed=0)
    model = gg.nn.MLP([2, 8, 8, 1], activation="tanh", seed=0)
    hist = gg.fit(model, X, y, lr=0.05, epochs=20, batch_size=50, validation_split=0.25,
                  verbose=0, seed=0, callbacks=[dg.Monitor()])
    return hist, model, X, y


@pytest.mark.usefixtures("matplotlib")
def test_save_all_writes_every_plot(moons_run, tmp_path):
    hist, model, X, y = moons_run
    paths = dg.plots.save_all(hist, model, X, y, tmp_path / "plots")
    names = sorted(p.rsplit("/", 1)[-1] for p in paths)
    assert names == ["activation_stats.png", "activations.png", "decision_boundary.png",
                     "grad_norms.png", "loss.png"]
    for p in paths:
        data = Path(p).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000  # a real picture, not a stub
    assert len(list((tmp_path / "plots").iterdir())) == 5  # no temporary files left


@pytest.mark.usefixtures("matplotlib")
def test_figures_show_the_recorded_numbers(moons_run):
    hist, model, X, y = moons_run
    fig = dg.plots.plot_loss(hist)
    loss_ax, acc_ax = fig.axes
    lines = {ln.get_label(): ln for ln in loss_ax.get_lines()}
    np.testing.assert_allclose(lines["loss"].get_ydata(), hist["loss"])
    np.testing.assert_allclose(lines["val loss"].get_xdata(), hist.epoch)
    assert acc_ax.get_ylabel() == "accuracy"
    fig = dg.plots.plot_grad_norms(hist)
    first = fig.axes[0].get_lines()[0]  # each step's value, faint behind its moving median
    np.testing.assert_allclose(first.get_ydata(), hist.extra["monitor"]["params"]["0"]["grad_norm"])
    assert [ln.get_label() for ln in fig.axes[0].get_lines()
            if not ln.get_label().startswith("_")] == [
        "layer 1 ('0')", "layer 2 ('2')", "layer 3 ('4')"]
    fig = dg.plots.plot_activation_histograms(hist)
    assert len(fig.axes) == 2 and "first" in fig.axes[0].get_title()


def test_plots_explain_what_is_missing():  # the errors come before any import
    with pytest.raises(ValueError, match="Monitor"):
        dg.plots.plot_grad_norms({"loss": [1.0, 0.5]})
    with pytest.raises(ValueError, match="2 input features"):
        dg.plots.plot_decision_boundary(gg.nn.MLP([3, 1]), np.zeros((4, 3)), np.zeros(4))


@pytest.mark.usefixtures("matplotlib")
def test_decision_boundary_for_several_classes():
    X, y = gg.data.blobs(n_samples=60, centers=3, seed=0)
    model = gg.nn.MLP([2, 8, 3], seed=0)
    fig = dg.plots.plot_decision_boundary(model, X, y, resolution=30)
    assert fig.axes[0].get_title() == "Decision boundary"


# --------------------------------------------------------------------------- experiment
@pytest.mark.usefixtures("matplotlib", "sklearn")
def test_init_experiment_quick(tmp_path):
    result = run_init_experiment(quick=True, seed=0)
    assert [r.label for r in result.results] == [label for _, _, label in dg.experiment.CONFIGS]
    for r in result.results:
        assert len(r.grad_norms) == 6 and len(r.saturation) == 5  # 5 hidden layers
        assert 0 <= r.accuracy <= 1
    sig_normal, tanh_glorot = result.find("sigmoid", "normal"), result.find("tanh", "xavier")
    assert sig_normal.worst_saturation > tanh_glorot.worst_saturation
    text = result.report()
    assert "5 hidden layers of 32 units" in text and "Accuracy:" in text
    paths = dg.experiment.save_experiment_plots(result, tmp_path)
    assert all(Path(p).read_bytes().startswith(PNG) for p in paths) and len(paths) == 5


def _fake(label, act, init, acc, sat, grads):
    return ConfigResult(label, act, init, acc, 0.1, grads, sat, [acc], [], {"hist_last": {}})


def test_conclusions_come_from_the_numbers():
    settings = {}
    a = _fake("sigmoid + N(0,1)", "sigmoid", "normal", 0.6, [0.7, 0.8], [1e-3, 1.0])
    b = _fake("tanh + Glorot", "tanh", "xavier", 0.9, [0.0, 0.01], [0.5, 0.4])
    text = " ".join(ExperimentResult([a, b], settings, 1.0).conclusions())
    assert "is reproduced here" in text and "up to 80%" in text
    assert "farthest is sigmoid + N(0,1) 1e+03×" in text
    # the opposite numbers give the opposite conclusions
    a2 = _fake("sigmoid + N(0,1)", "sigmoid", "normal", 0.95, [0.0, 0.01], [0.5, 0.4])
    b2 = _fake("tanh + Glorot", "tanh", "xavier", 0.5, [0.5, 0.6], [1e-3, 1.0])
    text2 = " ".join(ExperimentResult([a2, b2], settings, 1.0).conclusions())
    assert "is not reproduced here" in text2
    assert "Accuracy: sigmoid + N(0,1) 95.0%, tanh + Glorot 50.0%" in text2


# --------------------------------------------------------------------------- CLI
@pytest.mark.usefixtures("matplotlib", "sklearn")
def test_cli_experiment(tmp_path, capsys):
    assert main(["experiment", "init", "--quick", "--plots", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Initialization experiment" in out and "wrote" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "init_accuracy.png", "init_activations.png", "init_gradients.png",
        "init_histograms.png", "init_sigmoid_standard.png"]


@pytest.mark.usefixtures("matplotlib", "safetensors")
def test_cli_diagnose_checkpoint(tmp_path, capsys):
    X, y = gg.data.moons(seed=0)
    model = gg.nn.MLP([2, 8, 1], activation="tanh", seed=0)
    gg.fit(model, X, y, lr=0.05, epochs=30, verbose=0, seed=0)
    ckpt = tmp_path / "moons.safetensors"
    gg.save(model, ckpt)
    saved = Path(ckpt).read_bytes()
    code = main(["diagnose", str(ckpt), "moons", "--plots", str(tmp_path / "p")])
    out = capsys.readouterr().out
    assert "4 of 4 parameters agree" in out and "no problems found" in out
    assert code == 0
    assert Path(ckpt).read_bytes() == saved  # the checkpoint is never changed
    assert (tmp_path / "p" / "decision_boundary.png").stat().st_size > 10_000


def test_cli_diagnose_bad_input(tmp_path, capsys, optional):
    assert main(["diagnose", str(tmp_path / "missing.safetensors"), "moons"]) == 2
    assert "cannot load" in capsys.readouterr().err
    optional("safetensors")
    ckpt = tmp_path / "m.safetensors"
    gg.save(gg.nn.MLP([3, 4, 1], seed=0), ckpt)
    assert main(["diagnose", str(ckpt), "no-such-set"]) == 2
    assert "unknown data set" in capsys.readouterr().err
    assert main(["diagnose", str(ckpt), "moons"]) == 2  # 3 inputs expected, moons has 2
    assert "glassgrad: error:" in capsys.readouterr().err

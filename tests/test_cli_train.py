"""`glassgrad train`: the README demo reaches 100% on XOR; flags, CSV input and errors."""

import re

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.cli import main
from glassgrad.serialization import load_metadata, load_model


def train(capsys, *argv):
    code = main(["train", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_xor_demo_reaches_100_percent(capsys):
    code, out, err = train(capsys, "xor")
    assert code == 0 and err == ""
    assert "MLP 2-4-1, tanh" in out and "17 parameters" in out
    assert "epoch   1/200" in out and "epoch 200/200" in out
    assert len([ln for ln in out.splitlines() if ln.startswith("epoch")]) == 11
    assert "100.0%   (4/4)" in out
    table = out.split("p(1)")[1].split()
    assert table.count("ok") == 4 and "WRONG" not in out


def test_quiet_prints_only_the_report(capsys):
    code, out, _ = train(capsys, "xor", "-q")
    assert code == 0 and "epoch " not in out and "done in" in out


@pytest.mark.usefixtures("safetensors")  # --save
def test_flags_shape_the_run_and_save_writes_a_rebuildable_model(capsys, tmp_path):
    path = tmp_path / "moons.safetensors"
    code, out, _ = train(capsys, "moons", "--layers", "8,8", "--activation", "relu",
                         "--optimizer", "sgd", "--lr", "0.1", "--batch-size", "16",
                         "--epochs", "5", "--samples", "100", "--val-split", "0.3",
                         "--seed", "3", "--save", str(path), "-q")
    assert code == 0
    assert "100 samples, 2 features, 2 classes (30% held out" in out
    assert "MLP 2-8-8-1, relu" in out and "sgd (lr 0.1), batch size 16, up to 5 epochs" in out
    assert "done in" in out and "5 epochs, 25 steps" in out  # ceil(70 / 16) = 5 steps/epoch
    assert "validation" in out and f"saved the model to {path}" in out
    model = load_model(path)
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert load_metadata(path)["glassgrad.dataset"] == "moons"
    X, y = gg.data.moons(100, seed=3)
    assert model(gg.tensor(X)).shape == (100, 1)


def test_full_layer_spec_and_full_batch(capsys):
    code, out, _ = train(capsys, "blobs", "--layers", "2-5-3", "--batch-size", "full",
                         "--epochs", "3", "-q")
    assert code == 0 and "MLP 2-5-3" in out and "full batch" in out
    assert "cross_entropy loss" in out and "3 classes" in out


def test_csv_with_word_labels(capsys, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    labels = np.array(["cat", "dog", "emu"])[np.argmax(X, 1)]
    lines = ["a,b,c,animal"] + [f"{r[0]:.4f},{r[1]:.4f},{r[2]:.4f},{t}"
                                for r, t in zip(X, labels)]
    path = tmp_path / "animals.csv"
    path.write_text("\n".join(lines) + "\n")
    code, out, _ = train(capsys, str(path), "--target", "animal", "--epochs", "40", "-q")
    assert code == 0
    assert "60 samples, 3 features, 3 classes" in out and "MLP 3-16-3" in out
    row = re.search(r"^  train\s+([\d.]+)\s+([\d.]+)%", out, re.MULTILINE)
    assert float(row.group(2)) > 80.0


def test_csv_regression_by_task_flag(capsys, tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("x,y\n" + "".join(f"{i},{2 * i}\n" for i in range(30)))
    code, out, _ = train(capsys, str(path), "--task", "regress", "--epochs", "2", "-q")
    assert code == 0 and "a numeric target" in out and "accuracy" not in out


@pytest.mark.parametrize("argv,message", [
    (["nosuchset"], "no data set or file named 'nosuchset'"),
    (["xor", "--layers", "3-8-1"], "needs 2 inputs and 1 output, e.g. --layers 2-8-1"),
    (["xor", "--layers", "two"], "expected sizes like 2-8-1"),
    (["xor", "--batch-size", "-4"], "--batch-size '-4'"),
    (["spirals", "--loss", "bce"], "handles two classes; this data has 3"),
    (["xor", "--lr", "-1"], "lr=-1.0 must be >= 0"),
    (["xor", "--init", "bogus"], "unknown init 'bogus'"),
    (["regression", "--optimizer", "sgd", "--lr", "1000"],
     r"loss became inf at epoch \d+, step \d+.*try a smaller --lr"),
])
def test_user_errors_exit_2_with_a_message(capsys, argv, message):
    code, _, err = train(capsys, *argv, "-q")
    assert code == 2
    assert err.startswith("glassgrad: error: ")
    assert re.search(message, err), err


def test_csv_error_names_line_and_column(capsys, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,y\n1,2,0\n3,,1\n")
    code, _, err = train(capsys, str(path), "-q")
    assert code == 2 and "line 3, column 2 ('b'): the value is missing" in err


@pytest.mark.usefixtures("matplotlib")  # --plots
def test_train_diagnose_and_plots(tmp_path, capsys):
    """--diagnose prints the rules' verdict; --plots writes readable PNGs of the run."""
    plots = tmp_path / "plots"
    assert main(["train", "xor", "-q", "--diagnose", "--plots", str(plots)]) == 0
    out = capsys.readouterr().out
    assert "diagnose: no problems found" in out  # a healthy XOR run raises no warning
    written = sorted(p.name for p in plots.iterdir())
    assert {"loss.png", "grad_norms.png", "decision_boundary.png"} <= set(written)
    for name in written:
        data = (plots / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
        assert f"wrote {plots / name}" in out


@pytest.mark.usefixtures("sklearn")  # the digits set
def test_train_diagnose_flags_a_saturating_sigmoid_net(capsys):
    """The seeds' 2010 finding on the command line: sigmoid + standard normal saturates."""
    code = main(["train", "digits", "-q", "--diagnose", "--layers", "64,64,64,64,64",
                 "--activation", "sigmoid", "--init", "normal", "--epochs", "2",
                 "--optimizer", "sgd", "--lr", "0.1"])
    assert code == 0
    out = capsys.readouterr().out
    assert "saturation" in out and "problem" in out


@pytest.mark.usefixtures("sklearn")  # the digits set
def test_output_piped_into_a_reader_that_stops_early():
    """`glassgrad train digits | head -1`: when the reader goes away, no traceback, exit 0."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "glassgrad", "train", "digits", "--epochs", "3"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.readline()
    p.stdout.close()  # like head -1
    err = p.stderr.read().decode()
    p.stderr.close()
    assert p.wait(timeout=120) == 0, err
    assert first.startswith(b"glassgrad train digits") and "Traceback" not in err

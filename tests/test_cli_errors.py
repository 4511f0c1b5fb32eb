"""Every `glassgrad` error is one line on stderr and exit code 2, never a traceback.

Also: an internal error (a bug) is one line and exit 70 (the traceback with --debug); Ctrl-C
is one line and exit 130, and `train --save` then saves the model as it is.
"""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.cli import CLIError, build_parser, main, validate
from glassgrad.cli import train as train_cli
from glassgrad.diagnose import check_gradients
from glassgrad.explain import ExprError, explain_expr
from glassgrad.serialization import load_model


@pytest.fixture
def files(tmp_path):
    """Bad inputs on disk, and a good checkpoint for diagnose."""
    (tmp_path / "big.csv").write_text("x,y\n1," + "7" * 200_000 + "\n2,3\n")
    (tmp_path / "binary.json").write_bytes(b'\xff\xfe{"layers": \x80}')
    (tmp_path / "a_file").write_text("x")
    gg.save(gg.nn.MLP([2, 4, 1], seed=0), tmp_path / "xor.safetensors")
    return tmp_path


def run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, message):
    assert code == 2, err
    assert err.startswith("glassgrad: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and ".tmp" not in err  # never our temporary file's name
    assert message in err, err


EXPR = ["explain", "expr", "x * y", "--values", "x=1,y=2"]
NET = ["explain", "net", "--layers", "2-2-1", "--input", "0,0"]
DIAG = ["diagnose", "{d}/xor.safetensors", "xor"]


@pytest.mark.parametrize("argv, message", [
    # data the readers cannot use
    (["train", "{d}/big.csv"], "a field is longer than 131072 characters"),
    (["train", "{d}"], "is a folder, not a data set"),
    (["diagnose", "{d}/xor.safetensors", "{d}"], "is a folder, not a data set"),
    (["explain", "net", "--weights", "{d}/binary.json", "--input", "0", "--target", "0"],
     "binary.json is not UTF-8 text (byte 0xff at position 0)"),
    # sizes and numbers that cannot work
    (["train", "xor", "--layers", "100000,100000"],
     "an MLP 2-100000-100000-1 has 10,000,500,001 parameters"),
    (["explain", "expr", "1" + "0" * 400 + " * x", "--values", "x=1"],
     "(401 digits) is beyond float64's range"),
    (["explain", "expr", "+".join(["x"] * 500_000), "--values", "x=1"],
     "the expression has 999,999 characters; the limit is 10,000"),
    (["explain", "expr", "1e999 * x", "--values", "x=1"], "the number inf is beyond"),
    ([*EXPR, "--precision", "-1"], "argument --precision: '-1' is not a number of "
                                   "significant digits from 1 to 17"),
    ([*EXPR, "--precision", "40"], "from 1 to 17"),
    ([*DIAG, "--batch-size", "0"], "argument --batch-size: 0 is too small"),
    ([*DIAG, "--optimizer", "lbfgs"], "argument --optimizer: invalid choice: 'lbfgs'"),
    ([*DIAG, "--lr", "-1"], "argument --lr: lr=-1.0 must be >= 0"),
    ([*DIAG, "--lr", "nan"], "argument --lr: lr=nan must be >= 0 and finite"),
    ([*DIAG, "--max-entries", "-1"], "argument --max-entries: -1 is too small"),
    ([*DIAG, "--check-samples", "0"], "argument --check-samples: 0 is too small"),
    (["train", "xor", "--epochs", "0"], "argument --epochs: 0 is too small"),
    (["train", "xor", "--val-split", "1"], "argument --val-split: '1' is not a fraction"),
    (["train", "xor", "--samples", "many"], "argument --samples: 'many' is not a whole number"),
    (["explain", "net", "--layers", "2-1", "--input", "0,0", "--target", "0", "--steps", "0"],
     "argument --steps: 0 is too small"),
    (["experiment", "init", "--depth", "0"], "argument --depth: 0 is too small"),
    # output paths, refused before any work
    ([*EXPR, "-o", "{d}/missing/out.txt"], "the folder '{d}/missing' does not exist"),
    ([*EXPR, "-o", "{d}"], "is a folder; give a file name inside it"),
    (["train", "xor", "--save", "{d}/missing/m.safetensors"],
     "the folder '{d}/missing' does not exist"),
    ([*DIAG, "--plots", "{d}/a_file"], "argument --plots: '{d}/a_file' is a file, not a folder"),
    (["train", "xor", "--plots", "{d}/a_file"], "is a file, not a folder"),
    (["train", "xor", "--plots", "{d}/a_file/sub"], "'{d}/a_file' is a file"),
    (["experiment", "init", "--plots", "{d}/a_file"], "is a file, not a folder"),
    # results that used to mislead
    ([*NET, "--loss", "bce", "--target", "3"], "--loss bce takes targets in [0, 1]"),
    ([*NET, "--loss", "bce", "--target", "-0.5"], "got -0.5"),
    (["explain", "expr", "x", "--values", "x=1"], "'x' is the variable x itself"),
    # argparse's own errors, in the same one-line form
    (["bogus"], "argument COMMAND: invalid choice: 'bogus'"),
    (["train"], "the following arguments are required: DATASET (see glassgrad train --help)"),
    (["train", "xor", "--nope"], "unrecognized arguments: --nope"),
])
def test_a_bad_input_is_one_line_and_exit_code_2(capsys, files, argv, message):
    argv = [a.format(d=files) for a in argv]
    code, out, err = run(capsys, argv)
    assert_one_line_error(code, err, message.format(d=files))
    assert out == ""  # nothing ran before the error: no header, no epoch


def test_a_csv_of_only_delimiters(capsys, tmp_path):
    (tmp_path / "commas.csv").write_text(",,,\n,,,\n")
    code, _, err = run(capsys, ["train", str(tmp_path / "commas.csv")])
    assert_one_line_error(code, err, "commas.csv")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs POSIX permissions, which root ignores")
def test_an_unwritable_folder_is_named(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, _, err = run(capsys, [*EXPR, "-o", str(locked / "out.txt")])
    assert_one_line_error(code, err, f"the folder '{locked}' is not writable")


def test_the_memory_limit_has_its_numbers_and_an_override(capsys):
    # 2-64-1: 2·64 + 64 + 64 + 1 = 257 parameters, 65 units, 4 samples of 4-byte floats
    params, need = validate.mlp_bytes([2, 64, 1], 4, 4)
    assert (params, need) == (257, 4 * 4 * (257 + 4 * 65))
    code, out, err = run(capsys, ["train", "xor", "--layers", "64", "--max-memory", "1e-6"])
    assert_one_line_error(code, err, "needs about 0.0 GiB")
    assert "over the limit of 0.0 GiB (--max-memory 1e-06)" in err
    code, out, _ = run(capsys, ["train", "xor", "--layers", "64", "--max-memory", "1",
                                "--epochs", "1", "-q"])
    assert code == 0 and "MLP 2-64-1" in out


def test_expressions_are_limited_in_depth_not_in_ordinary_use():
    tr = explain_expr("+".join(["x"] * 100), "x=1")  # a 100-term sum is still traced
    assert tr.grad("x").item() == 100.0
    with pytest.raises(ExprError, match="nests more than 200 levels deep"):
        explain_expr("+".join(["x"] * 300), "x=1")
    with pytest.raises(ExprError, match="nests more than 200 levels deep"):
        explain_expr("-" * 300 + "x", "x=1")
    with pytest.raises(ExprError, match="does not depend on any variable"):
        explain_expr("2 * 3", "")


@pytest.mark.parametrize("n, max_entries, message", [
    (0, 20, "X has no samples"), (4, 0, "max_entries=0 checks nothing"),
])
def test_check_gradients_refuses_a_check_of_nothing(n, max_entries, message):
    model = gg.nn.MLP([2, 3, 1], seed=0, dtype=np.float64)
    X, y = np.zeros((n, 2)), np.zeros((n, 1))
    with pytest.raises(ValueError, match=message):
        check_gradients(model, gg.nn.functional.mse_loss, X, y, max_entries=max_entries,
                        verbose=False)


def test_an_internal_error_is_one_line_exit_70_and_shows_its_traceback_with_debug(
        capsys, monkeypatch):
    def broken(args):
        return {}["missing"]

    monkeypatch.setattr(train_cli, "run", broken)
    code, _, err = run(capsys, ["train", "xor"])
    assert code == 70 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("glassgrad: internal error: KeyError: 'missing' (at test_cli_errors.py")
    assert "rerun with --debug" in err
    with pytest.raises(KeyError):
        main(["--debug", "train", "xor"])
    with pytest.raises(CLIError, match="is the variable x itself"):  # user errors too
        main(["--debug", "explain", "expr", "x", "--values", "x=1"])


def _interrupt_at_epoch(monkeypatch, stop):
    def on_epoch_start(self, trainer, epoch):
        self.epoch = epoch
        if epoch == stop:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_cli._Epoch, "on_epoch_start", on_epoch_start)


def test_ctrl_c_in_train_saves_the_model_after_its_last_complete_step(capsys, tmp_path,
                                                                     monkeypatch):
    done = tmp_path / "two_epochs.safetensors"
    assert main(["train", "xor", "--epochs", "2", "--save", str(done), "-q"]) == 0
    capsys.readouterr()
    _interrupt_at_epoch(monkeypatch, 3)  # Ctrl-C as epoch 3 starts: two epochs are complete
    path = tmp_path / "m.safetensors"
    code, _, err = run(capsys, ["train", "xor", "--epochs", "5", "--save", str(path), "-q"])
    assert code == 130 and err.count("\n") == 1
    assert err == (f"glassgrad: interrupted in epoch 3 of 5; saved the model as it was after "
                   f"its last complete step to {path} (--no-save-on-interrupt to skip)\n")
    saved, expected = load_model(path), load_model(done)
    fresh = gg.nn.MLP([2, 4, 1], activation="tanh", seed=0)
    for a, b, c in zip(saved.parameters(), expected.parameters(), fresh.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert not np.array_equal(a.numpy(), c.numpy())  # trained, not the initial weights


@pytest.mark.parametrize("flags", [["--no-save-on-interrupt"], []])
def test_ctrl_c_without_saving_is_one_line_and_exit_130(capsys, tmp_path, monkeypatch, flags):
    _interrupt_at_epoch(monkeypatch, 2)
    path = tmp_path / "m.safetensors"
    save = ["--save", str(path)] if flags else []
    code, _, err = run(capsys, ["train", "xor", "-q", *save, *flags])
    assert (code, err) == (130, "glassgrad: interrupted\n") and not path.exists()


def test_a_real_ctrl_c_in_a_running_train(tmp_path):
    """SIGINT to a running `glassgrad train --save`: one line, exit 130, the model saved."""
    path = tmp_path / "m.safetensors"
    # Python raises KeyboardInterrupt only where SIGINT is not ignored (a background job
    # inherits it ignored), so the child installs the handler itself.
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from glassgrad.cli import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [os.path.dirname(os.path.dirname(gg.__file__)), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.Popen([sys.executable, "-c", code, "train", "xor", "--epochs", "10000000",
                          "--save", str(path)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in p.stdout:  # wait until training runs: its first epoch line is out
            if line.startswith("epoch"):
                break
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 130, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("glassgrad: interrupted in epoch ") and f"to {path}" in err
    assert load_model(path)(gg.tensor(np.zeros((1, 2), np.float32))).shape == (1, 1)


def test_the_commands_offer_fits_optimizers():
    from glassgrad.training.setup import OPTIMIZERS

    sub = build_parser()._subparsers._group_actions[0].choices
    for name in ("train", "diagnose", "experiment"):
        opt = next(a for a in sub[name]._actions if a.dest == "optimizer")
        assert sorted(opt.choices) == sorted(OPTIMIZERS)

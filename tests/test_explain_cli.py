"""`glassgrad explain`: the seeds' examples reproduced by the CLI, every format, clear errors."""

import json

import pytest

from glassgrad.cli import main
from glassgrad.explain import validate

SEED_EXPR = ["explain", "expr", "(x + y) * z", "--values", "x=-2,y=5,z=-4"]
SEED_XOR = ["explain", "net", "--layers", "2-3-1", "--activation", "identity", "--init",
            "constant:1", "--lr", "0.1", "--input", "0,0", "--target", "0", "--loss",
            "half-sse"]
TEXTBOOK = {"layers": [{"weight": [[0.15, 0.20], [0.25, 0.30]], "bias": [0.35, 0.35]},
                       {"weight": [[0.40, 0.45], [0.50, 0.55]], "bias": [0.60, 0.60]}]}


def run(capsys, args):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_seed_examples_match_the_golden_files(capsys, golden):
    for args, name in ((SEED_EXPR, "seed_expr.txt"), (SEED_XOR, "seed_xor.txt"),
                       ([*SEED_XOR, "--format", "markdown"], "seed_xor.md")):
        code, out, err = run(capsys, args)
        assert (code, err) == (0, "")
        golden(f"explain/{name}", out)


def test_textbook_net_from_a_weights_file(tmp_path, capsys, golden):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(TEXTBOOK))
    code, out, _ = run(capsys, ["explain", "net", "--weights", str(path), "--activation",
                                "sigmoid", "--lr", "0.5", "--input", "0.05,0.10", "--target",
                                "0.01,0.99", "--precision", "9"])
    assert code == 0
    golden("explain/textbook_222.txt", out)


@pytest.mark.parametrize("fmt, marker", [
    ("json", '"schema": "glassgrad.explain/1"'), ("dot", "digraph"), ("html", "<table>"),
    ("latex", "\\begin{align*}"), pytest.param("svg", "<svg", marks=pytest.mark.needs_dot),
])
def test_every_format(capsys, fmt, marker):
    code, out, _ = run(capsys, [*SEED_EXPR, "--format", fmt])
    assert code == 0 and marker in out
    if fmt == "json":
        validate(out)
        doc = json.loads(out)
        assert [n["grad"] for n in doc["nodes"] if n["kind"] == "input"] == [-4.0, -4.0, 3.0]


def test_output_file(tmp_path, capsys):
    out = tmp_path / "xor.json"
    assert run(capsys, [*SEED_XOR, "--format", "json", "--output", str(out)])[:2] == (0, "")
    validate(out.read_text("utf-8"))


@pytest.mark.needs_dot
def test_output_png(tmp_path, capsys):
    png = tmp_path / "xor.png"
    assert run(capsys, [*SEED_XOR, "--format", "png", "-o", str(png)])[0] == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_batch_and_several_steps(capsys):
    code, out, _ = run(capsys, ["explain", "net", "--layers", "2-2-1", "--activation",
                                "sigmoid", "--input", "0,0;0,1;1,0;1,1", "--target",
                                "0;1;1;0", "--loss", "mse", "--steps", "2", "--seed", "1"])
    assert code == 0 and "A batch of 4 samples" in out and "Step 2" in out
    assert "averaged over the 4 samples" in out and "Loss per step" in out


@pytest.mark.parametrize("args, message", [
    (["explain", "expr", "(x + y", "--values", "x=1,y=2"], "cannot parse the expression"),
    (["explain", "expr", "(x + w) * z", "--values", "x=1,z=2"], "unknown variable w"),
    (["explain", "expr", "x", "--values", "x:1"], "write name=number"),
    ([*SEED_XOR[:10], "--input", "0,0,0", "--target", "0"],
     "the input has 3 values per sample but the network 2-3-1 expects 2"),
    ([*SEED_XOR[:10], "--input", "0,0;1,1", "--target", "0"],
     "--input has 2 sample(s) but --target has 1"),
    ([*SEED_XOR[:10], "--input", "0,a", "--target", "0"], "cannot read --input"),
    ([*SEED_XOR, "--format", "png"], "give --output FILE.png"),
    (["explain", "net", "--input", "0", "--target", "0"], "give the layer sizes with --layers"),
    (["explain", "net", "--layers", "2", "--input", "0", "--target", "0"],
     "give at least two positive sizes"),
    (["explain", "net", "--layers", "2-3-1", "--init", "bogus", "--input", "0,0",
      "--target", "0"], "unknown init 'bogus'"),
])
def test_bad_input_gives_a_clear_error(capsys, args, message):
    code, out, err = run(capsys, args)
    assert code == 2 and out == ""
    assert err.startswith("glassgrad: error: ") and message in err


def test_weights_file_errors(tmp_path, capsys):
    good = tmp_path / "w.json"
    good.write_text(json.dumps(TEXTBOOK))
    base = ["explain", "net", "--input", "0.05,0.10", "--target", "0.01,0.99", "--weights"]
    code, _, err = run(capsys, [*base, str(good), "--layers", "2-3-2"])
    assert code == 2 and ("--layers 2-3-2 does not match --weights" in err
                          and "layer 1 should have weight shape (3, 2)" in err
                          and "the file gives (2, 2)" in err)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "is not valid JSON" in run(capsys, [*base, str(bad)])[2]
    assert "cannot read --weights" in run(capsys, [*base, str(tmp_path / "none.json")])[2]
    wrong_bias = {"layers": [{"weight": [[1, 2]], "bias": [1, 2]}]}
    bad.write_text(json.dumps(wrong_bias))
    assert "its bias needs 1 values, got shape (2,)" in run(capsys, [*base, str(bad)])[2]
    chain = {"layers": [{"weight": [[1, 2]]}, {"weight": [[1, 2]]}]}
    bad.write_text(json.dumps(chain))
    assert "layer 1 has 1 outputs but layer 2's weight has 2 columns" in run(
        capsys, [*base, str(bad)])[2]

"""Issue 13, parts 3 and 4: one layer numbering and one vocabulary everywhere, and what
textbook worked examples show (weighted sums, weights-only updates, names, pictures)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.diagnose.monitor import layer_label
from glassgrad.diagnose.rules import Run, Thresholds, dead_units


# --------------------------------------------------------------------------- numbering
@pytest.mark.parametrize("name, order, want", [
    ("0", ["0", "2", "4", "6"], "layer 1 ('0')"),
    ("6", ["0", "2", "4", "6"], "layer 4 ('6')"),
    ("net.layers.1", ["net.layers.0", "net.layers.1"], "layer 2 ('net.layers.1')"),
    ("relu0", ["0", "2"], "layer 'relu0'"),
])
def test_layers_are_numbered_from_1_with_their_module_name(name, order, want):
    assert layer_label(name, order) == want


def test_a_warning_names_the_fourth_layer_layer_4():
    params = {n: {"grad_norm": [1.0], "update_ratio": [1e-3]} for n in ("0", "2", "4", "6")}
    acts = {"6": {"op": "relu", "dead": [0.9] * 8}}
    finding = dead_units(Run({"params": params, "activations": acts, "epochs": []}),
                         Thresholds())
    assert finding.evidence[0].startswith("layer 4 ('6'): 90% of its units output 0")


# --------------------------------------------------------------------------- weighted sums
TEXTBOOK = [([[0.15, 0.20], [0.25, 0.30]], [0.35, 0.35]),
            ([[0.40, 0.45], [0.50, 0.55]], [0.60, 0.60])]


def textbook_net(bias: bool = True, out: str = "identity") -> gg.nn.Module:
    net = gg.nn.MLP([2, 2, 2], activation="sigmoid", output_activation=out, bias=bias,
                    dtype=np.float64)
    for lin, (W, b) in zip([m for m in net if isinstance(m, gg.nn.Linear)], TEXTBOOK):
        lin.weight.data = np.array(W)
        if bias:
            lin.bias.data = np.array(b)
    return net



def test_the_forward_table_writes_each_weighted_sum_out():
    tr = gg.explain.trace_net(textbook_net(), [0.05, 0.10], [0.01, 0.99], lr=0.5)
    rows = tr.to_markdown().splitlines()
    sums = [r.split(" | ")[2] for r in rows if r.startswith("| 1 | ") or r.startswith("| 2 | ")]
    sums = [s for s in sums if "·" in s]
    assert len(sums) == 4
    z = np.concatenate([ly.z[0] for ly in tr.steps[0].layers])
    for cell, zj in zip(sums, z):
        terms, _, total = cell.partition(" = ")
        written = sum(np.prod([float(f.strip("()")) for f in t.split("·")])
                      for t in terms.split(" + "))
        np.testing.assert_allclose([written, float(total)], [zj, zj], rtol=1e-5)
    assert sums[0].startswith("0.15·0.05 + 0.2·0.1 + 0.35·1 = 0.3775")


def test_wide_layers_and_batches_keep_the_plain_table():
    wide = gg.explain.trace_net(gg.nn.MLP([6, 1], init="constant:0.1"), [1] * 6, [0])
    batch = gg.explain.trace_net(textbook_net(), [[0.05, 0.1], [1, 0]], [[0, 1], [1, 0]])
    for tr in (wide, batch):
        assert "weighted sum" not in tr.to_text()


# --------------------------------------------------------------------------- weights only
def sigmoid_textbook_net() -> gg.nn.Module:
    return textbook_net(out="sigmoid")  # Mazur's worked example: sigmoid at the output too


def test_updating_only_the_weights_reproduces_the_textbook_error_after_one_step():
    net = sigmoid_textbook_net()
    tr = gg.explain.trace_net(net, [0.05, 0.10], [0.01, 0.99], lr=0.5, freeze=("bias",))
    st = tr.steps[0]
    # Mazur's "A Step by Step Backpropagation Example": 0.298371109 -> 0.291027924, with
    # w5 = 0.35891648 and w1 = 0.149780716 after the step; the biases stay 0.35 and 0.6.
    np.testing.assert_allclose([st.loss, st.loss_after], [0.298371109, 0.291027924], rtol=1e-6)
    np.testing.assert_allclose([st.layers[1].W_after[0, 0], st.layers[0].W_after[0, 0]],
                               [0.35891648, 0.149780716], rtol=1e-7)
    lins = [m for m in net if isinstance(m, gg.nn.Linear)]
    np.testing.assert_allclose([lins[0].bias.numpy(), lins[1].bias.numpy()],
                               [[0.35, 0.35], [0.6, 0.6]])
    assert lins[1].weight.numpy()[0, 0] != 0.4  # the weights did move
    assert "b²[1] (frozen)" in tr.to_text() and tr.to_dict()["steps"][0]["layers"][0][
        "frozen"] == ["bias"]


def test_a_parameter_frozen_in_the_model_stays_put():
    net = sigmoid_textbook_net()
    net[0].weight.requires_grad = False
    st = gg.explain.trace_net(net, [0.05, 0.10], [0.01, 0.99], lr=0.5).steps[0]
    assert st.layers[0].frozen == ("weight",) and st.layers[1].frozen == ()
    np.testing.assert_array_equal(st.layers[0].W_after, st.layers[0].W)
    assert np.all(st.layers[0].dW != 0)  # its gradient is still shown


@pytest.mark.parametrize("freeze", [("biass",), ("weight", "W"), "everything"])
def test_an_unknown_part_to_freeze_is_refused_before_anything_changes(freeze):
    net = sigmoid_textbook_net()
    before = [p.numpy().copy() for p in net.parameters()]
    with pytest.raises(ValueError, match=r"cannot freeze .*'weight' and/or 'bias'"):
        gg.explain.trace_net(net, [0.05, 0.10], [0.01, 0.99], freeze=freeze)
    for p, b in zip(net.parameters(), before):
        np.testing.assert_array_equal(p.numpy(), b)


def test_cli_update_weights_golden(tmp_path, capsys, golden):
    from glassgrad.cli import main

    path = tmp_path / "w.json"
    path.write_text(json.dumps({"layers": [{"weight": W, "bias": b} for W, b in TEXTBOOK]}))
    code = main(["explain", "net", "--weights", str(path), "--activation", "sigmoid",
                 "--lr", "0.5", "--input", "0.05,0.10", "--target", "0.01,0.99",
                 "--precision", "9", "--update", "weights"])
    out = capsys.readouterr().out
    assert code == 0 and "biases frozen" in out.splitlines()[0]
    golden("explain/textbook_222_weights_only.txt", out)


# --------------------------------------------------------------------------- anomaly wording
@pytest.mark.parametrize("values, want", [
    ([np.inf, -np.inf], "all 2 values are ±Inf"),
    ([np.inf, np.inf], "all 2 values are +Inf"),
    ([-np.inf], "the value is −Inf"),
    ([np.nan, np.nan, np.nan], "all 3 values are NaN"),
    ([np.nan, np.inf], "all 2 values are NaN or +Inf (1 NaN, 1 Inf)"),
    ([1.0, np.inf], "range [1, 1], 0 NaN, 1 Inf"),
])
def test_anomaly_ranges_say_what_the_values_are(values, want):
    from glassgrad.anomaly import _range

    text = _range(np.array(values))
    assert want in text and "nan, nan" not in text


def test_anomaly_report_of_an_all_inf_result():
    x = gg.tensor([1000.0, 1000.0], requires_grad=True)
    with pytest.raises(gg.AnomalyError) as err, gg.detect_anomaly():
        x.exp()
    assert "'exp' produced shape (2,), all 2 values are +Inf" in str(err.value)
    assert "range [nan" not in str(err.value)


# --------------------------------------------------------------------------- trace names
def _neuron_trace(names=None):
    w1 = gg.tensor(0.3, requires_grad=True)
    x2 = gg.tensor(0.2, requires_grad=True)  # a user name that an automatic one would reuse
    t1 = gg.tensor(0.5)  # noqa: F841 (only its name matters: no automatic "t1" now)
    with gg.explain.trace(names=names) as tr:
        h = w1 * x2
        loss = (h + gg.tensor(0.1, requires_grad=True)).tanh()
        loss.backward()
    return tr


def test_trace_names_come_from_the_users_variables_and_never_collide():
    tr = _neuron_trace()
    assert [n.name for n in tr.nodes] == ["w1", "x2", "h", "x1", "t2", "loss"]
    assert tr.node("t2").expr == "h + x1"
    np.testing.assert_allclose([tr.grad("w1").item(), tr.grad("x2").item()],
                               [0.2 * (1 - np.tanh(0.16) ** 2), 0.3 * (1 - np.tanh(0.16) ** 2)],
                               rtol=1e-6)


def test_the_names_mapping_wins_over_variable_names():
    b = gg.tensor(1.0, requires_grad=True)
    with gg.explain.trace(names={"bias": b}) as tr:
        (b * b).backward()
    assert [n.name for n in tr.nodes] == ["bias", "t1"]


def test_module_parameters_take_the_modules_variable_name(golden):
    model = gg.nn.Linear(2, 1)
    model.weight.data = np.array([[0.5, -1.0]])
    model.bias.data = np.array([0.25])
    with gg.explain.trace() as tr:
        y = model(gg.tensor([[1.0, 2.0]]))
        y.sum().backward()
    names = {n.name for n in tr.nodes}
    assert {"model.weight", "model.bias", "y"} <= names
    golden("explain/trace_user_names.txt", _neuron_trace().to_text())


# --------------------------------------------------------------------------- HTML documents
@pytest.mark.parametrize("out", ["file", "stdout"])
def test_cli_html_is_a_complete_document(tmp_path, capsys, golden, out):
    from glassgrad.cli import main

    path = tmp_path / "trace.html"
    args = ["explain", "expr", "(x + y) * z", "--values", "x=-2,y=5,z=-4", "--format", "html"]
    assert main(args + (["--output", str(path)] if out == "file" else [])) == 0
    page = path.read_text(encoding="utf-8") if out == "file" else capsys.readouterr().out
    assert page.startswith("<!doctype html>")
    assert '<meta charset="utf-8">' in page and page.rstrip().endswith("</html>")
    assert "<title>Op-level trace of (x + y) * z</title>" in page
    golden("explain/seed_expr.html", page)


def test_a_notebook_still_gets_a_fragment():
    tr = gg.explain.explain_expr("(x + y) * z", "x=-2,y=5,z=-4")
    frag = tr._repr_html_()
    assert frag.startswith('<div class="gg-trace">') and "<!doctype" not in frag
    assert tr.to_html(document=True).count(frag) == 1  # the page wraps the same fragment


# --------------------------------------------------------------------------- the picture
def test_network_picture_labels_edges_with_weights_and_gradients_and_has_the_loss():
    import re

    tr = gg.explain.trace_net(sigmoid_textbook_net(), [0.05, 0.10], [0.01, 0.99], lr=0.5)
    dot = tr.to_dot(precision=6)
    st = tr.steps[0]
    edges = re.findall(r"-> u(\d)_(\d) \[label=<W.\[(\d),(\d)\] (\S+) → (\S+)<br/>"
                       r'<font color="#cf222e">∂L/∂w = (\S+)</font>>\]', dot)
    assert len(edges) == 8  # every weight of the 2-2-2 network, on its edge
    for layer, j, row, col, before, after, grad in edges:
        ly = st.layers[int(layer) - 1]
        assert int(j) + 1 == int(row)
        r, c = int(row) - 1, int(col) - 1
        np.testing.assert_allclose([float(before), float(after), float(grad)],
                                   [ly.W[r, c], ly.W_after[r, c], ly.dW[r, c]], rtol=1e-5)
    (loss,) = re.findall(r'loss \[.*label="L = ½ Σ \(ŷ − y\)² = (\S+)"\]', dot)
    np.testing.assert_allclose(float(loss), st.loss, rtol=1e-5)
    targets = re.findall(r'y_\d \[.*label="y\d = (\S+)"\]', dot)
    np.testing.assert_allclose([float(t) for t in targets], [0.01, 0.99])
    assert dot.count("-> loss") == 4  # two outputs and two targets


def test_network_picture_of_a_classifier_has_one_target_node():
    net = gg.nn.MLP([2, 3], init="constant:0.1", dtype=np.float64)
    dot = gg.explain.trace_net(net, [[0, 1], [1, 0]], [2, 0], loss="ce").to_dot()
    assert dot.count("y_0 [") == 1 and "y_1 [" not in dot and dot.count("-> loss") == 4
    assert "y = class [2, 0]" in dot


# --------------------------------------------------------------------------- vocabulary
def test_one_sample_says_L_throughout_and_a_batch_defines_its_l_i():
    one = gg.explain.trace_net(sigmoid_textbook_net(), [0.05, 0.10], [0.01, 0.99])
    for text in (one.to_text(), one.to_dot()):
        assert "ℓ" not in text and "∂L/∂ŷ" in text
    batch = gg.explain.trace_net(sigmoid_textbook_net(), [[0.05, 0.1], [1, 0]],
                                 [[0, 1], [1, 0]]).to_text()
    assert batch.index("Per-sample losses ℓᵢ") < batch.index("δ² = ∂ℓ/∂ŷ")


def test_the_step_count_matches_the_backward_table():
    tr = gg.explain.explain_expr("(x + y) * z", "x=-2,y=5,z=-4")
    assert "5 backward steps: 1 start, 4 chain-rule" in tr.to_text() and len(tr.steps) == 5
    tr = gg.explain.explain_expr("f = x * x", "x=3")
    assert "4 backward steps: 1 start, 2 chain-rule, 1 accumulation" in tr.to_text()


def test_explain_names_each_numbered_layer_by_its_module():
    net = gg.nn.Sequential(gg.nn.Linear(2, 3), gg.nn.Tanh(), gg.nn.Linear(3, 1))
    text = gg.explain.trace_net(net, [1.0, 0.0], [0.5]).to_markdown()  # lines unwrapped
    assert "layer 1 is the model's Linear '0', layer 2 is the model's Linear '2'" in text


def test_latex_marks_a_frozen_bias_instead_of_claiming_an_update():
    tr = gg.explain.trace_net(sigmoid_textbook_net(), [0.05, 0.10], [0.01, 0.99], lr=0.5,
                              freeze=("bias",))
    tex = tr.to_latex()
    assert tex.count(r"\quad\text{(frozen)}") == 2  # b¹ and b², not W¹, W²
    assert r"W^{(1)} &\leftarrow W^{(1)} - \alpha" in tex

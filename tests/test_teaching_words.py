"""Issue 13, parts 3 and 4: one layer numbering and one vocabulary everywhere, and what
textbook worked examples show (weighted sums, weights-only updates, names, pictures)."""

from __future__ import annotations

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


def textbook_net(bias: bool = True) -> gg.nn.Module:
    net = gg.nn.MLP([2, 2, 2], activation="sigmoid", bias=bias, dtype=np.float64)
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

"""Issue 13, parts 3 and 4: one layer numbering and one vocabulary everywhere, and what
textbook worked examples show (weighted sums, weights-only updates, names, pictures)."""

from __future__ import annotations

import pytest

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

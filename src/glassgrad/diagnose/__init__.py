"""Why training fails, in plain words and plots.

- ``Monitor``: records per-layer gradient/weight norms, update ratios and activation
  statistics (a ``fit`` callback, or by hand in a custom loop).
- ``diagnose(history)`` / ``report(history)``: the rules' findings (vanishing, exploding,
  saturation, dead units, learning rate too high/low, overfitting, stalled), with evidence
  and a fix; ``Thresholds`` holds the numbers they use.
- ``check_gradients(model, loss_fn, X, y)``: every parameter's backprop gradient against
  finite differences.
- ``plots``: loss curves, gradient norms, activation histograms, decision boundaries
  (``plots.save_all(history, model, X, y, out_dir)``).
- ``experiment``: the Glorot & Bengio (2010) initialization experiment
  (``glassgrad experiment init``).
"""

from __future__ import annotations

from . import plots
from .model_gradcheck import GradientReport, ParamCheck, check_gradients
from .monitor import Monitor
from .rules import RULES, Finding, Run, Thresholds, diagnose, report

__all__ = [
    "RULES", "Finding", "GradientReport", "Monitor", "ParamCheck", "Run", "Thresholds",
    "check_gradients", "diagnose", "plots", "report",
]

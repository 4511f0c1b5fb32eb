"""Rules: turn the recorded numbers into warnings with evidence and a fix, in plain words.

Each rule reads a ``Run`` (the per-epoch losses of a History plus what a ``Monitor``
recorded) and returns a ``Finding`` or ``None``. The thresholds live in ``Thresholds``, one
documented field each; pass your own to ``diagnose(run, thresholds)``.

================  =====================================================================
rule              fires when
================  =====================================================================
vanishing         the first layer's median gradient norm (or update ratio) is below
                  ``vanishing_ratio`` (1e-2: two orders of magnitude) times the last layer's
exploding         a gradient or weight became NaN/Inf, or the total gradient norm grew by
                  ``exploding_growth`` (1e3) and was still growing at the end
saturation        early in training (the first ``early`` = 10% of recorded steps) the
                  evidence adds up: at least ``saturation_share`` (half) of the hidden
                  sigmoid/tanh layers have half of ``saturation`` (15%) of their outputs in
                  the flat tails (σ < 0.01 or > 0.99, |tanh| > 0.99: derivative < 4% of its
                  peak), *and* either one layer reaches ``saturation`` (30%) or the damage
                  shows (the last layer's gradient norm ``gradient_shrink`` (2)× the first
                  layer's, or the loss kept more than half its start). One layer alone counts
                  only from ``saturation_alone`` (60%). Several weak signals together do not
                  flip on one noisy number. Early, because a converged net may saturate late
dead_units        a hidden ReLU layer ended with at least ``dead_units`` (50%) of its units
                  at 0 for every example of the batch (they no longer learn)
lr_too_high       the loss became NaN/Inf, or ended above ``diverge`` (1.1) times where it
                  started
lr_too_low        in the first half of training every layer's median ‖ΔW‖/‖W‖ was below
                  ``tiny_update`` (1e-4; ~1e-3 is typical) and the loss kept more than half
                  of its starting value
overfitting       over the last ``overfit_patience`` (3) epochs after its minimum, every
                  validation loss stayed ``overfit_rise`` (10%) above that minimum *and* at
                  least ``overfit_min_delta`` (2% of the first validation loss, the problem's
                  scale) above it, while training loss kept falling (Keras's ``min_delta``
                  and ``patience``: a rise from 0.0077 to 0.013 is noise, not overfitting)
stalled           the loss fell by less than ``stall_drop`` (5%) of its starting value
================  =====================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ops import OPS
from .monitor import layer_label


@dataclass(frozen=True)
class Thresholds:
    """The numbers behind every rule (see the module docstring for what each one means)."""

    vanishing_ratio: float = 1e-2
    exploding_growth: float = 1e3
    saturation: float = 0.3
    saturation_share: float = 0.5
    saturation_alone: float = 0.6
    gradient_shrink: float = 2.0
    early: float = 0.1
    dead_units: float = 0.5
    diverge: float = 1.1
    tiny_update: float = 1e-4
    overfit_rise: float = 0.1
    overfit_patience: int = 3
    overfit_min_delta: float = 0.02
    stall_drop: float = 0.05


@dataclass
class Finding:
    """One diagnosed problem: what, the numbers that show it, and what to do."""

    rule: str
    title: str
    evidence: list[str]
    fix: str
    layers: list[str] = field(default_factory=list)
    epoch: int | None = None  # for overfitting: the epoch where validation loss started rising

    def __str__(self) -> str:
        lines = [f"[{self.rule}] {self.title}"]
        lines += [f"    evidence: {e}" for e in self.evidence]
        lines.append(f"    fix: {self.fix}")
        return "\n".join(lines)


class Run:
    """What the rules read: per-epoch metrics and the monitor's records (either may be empty).

    Built from a ``History`` (with ``extra["monitor"]``), a ``Monitor``, its ``data`` dict or a
    plain ``{"loss": [...], "val_loss": [...]}`` dict.
    """

    def __init__(self, source: Any) -> None:
        data = getattr(source, "data", None)
        if hasattr(source, "history"):  # a History
            self.epochs = {k: list(v) for k, v in source.history.items()}
            if getattr(source, "epoch", None):
                self.epochs["epoch"] = list(source.epoch)
            self.monitor = (getattr(source, "extra", None) or {}).get("monitor") or {}
        elif isinstance(data, dict) and "params" in data:  # a Monitor
            self.monitor, self.epochs = source.finish(), _columns(data["epochs"])
        elif isinstance(source, dict) and "params" in source:
            self.monitor, self.epochs = source, _columns(source["epochs"])
        elif isinstance(source, dict):
            self.monitor, self.epochs = {}, {k: list(v) for k, v in source.items()}
        else:
            raise TypeError(
                f"diagnose: cannot read a {type(source).__name__}. Pass the History returned "
                f"by fit(), a Monitor, or a dict of per-epoch lists such as {{'loss': [...]}}."
            )
        if not self.epochs.get("loss") and self.monitor.get("epochs"):
            self.epochs = _columns(self.monitor["epochs"])
        self.params: dict[str, dict] = self.monitor.get("params", {})
        self.acts: dict[str, dict] = self.monitor.get("activations", {})

    def label(self, name: str) -> str:
        """The layer as every warning names it: ``"layer 4 ('6')"`` (``layer_label``)."""
        return layer_label(name, list(self.params) or list(self.acts))

    def losses(self) -> tuple[list[float], str]:
        """The training loss series and its unit ("epoch", or "step" for short runs)."""
        ep = [float(v) for v in self.epochs.get("loss", [])]
        if len(ep) >= 3:
            return ep, "epoch"
        steps = [float(v) for v in self.monitor.get("loss", {}).get("value", [])]
        return (steps, "step") if len(steps) > len(ep) else (ep, "epoch")

    def epoch_numbers(self) -> list[int]:
        n = len(self.epochs.get("loss", self.epochs.get("val_loss", [])))
        return [int(e) for e in self.epochs.get("epoch", range(n))]


def _columns(rows: list[dict]) -> dict[str, list]:
    cols: dict[str, list] = {}
    for r in rows:
        for k, v in r.items():
            cols.setdefault(k, []).append(v)
    return cols


def _median(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    return float(np.median(xs)) if xs else math.nan


def _g(x: float) -> str:
    return f"{x:.3g}"


# --------------------------------------------------------------------------- advice
# What fixes a deep net depends on its hidden activation. Glorot's initialization keeps the
# variance of activations and gradients constant only if f'(0) = 1 (tanh); sigmoid has
# σ' ≤ ¼, so each sigmoid layer still divides the back-propagated gradient by ~4 (the
# library's own `glassgrad experiment init` measures sigmoid + Glorot as the worst case).
_ADVICE = {
    "sigmoid": "sigmoid in hidden layers: switch to tanh with init='xavier' or ReLU with "
               "init='kaiming'. Why: σ′(z) ≤ ¼ (and σ's outputs are not centred on 0), so "
               "every sigmoid layer shrinks the back-propagated gradient about 4× however "
               "the weights are scaled; Glorot's init assumes f′(0) = 1, which tanh has and "
               "sigmoid does not",
    "tanh": "tanh: init='xavier' (Glorot: Var W = 2/(fan_in + fan_out), derived for "
            "f′(0) = 1, which tanh has)",
    "relu": "ReLU: init='kaiming' (He: Var W = 2/fan_in, making up for the half of its "
            "inputs ReLU sets to 0)",
}


def _advice(ops: Sequence[str]) -> str:
    """The initialization advice for the hidden activations ``ops``, one clause each."""
    known = [op for op in _ADVICE if op in ops]
    if not known:
        return ("scale the initialization to the layer size: init='xavier' for tanh, "
                "init='kaiming' for ReLU, and prefer tanh or ReLU to sigmoid in hidden layers")
    return "; ".join(_ADVICE[op] for op in known)


def _hidden_ops(run: Run) -> list[str]:
    return sorted({r["op"] for r in run.acts.values()})


# --------------------------------------------------------------------------- the rules
def vanishing(run: Run, t: Thresholds) -> Finding | None:
    names = list(run.params)
    if len(names) < 3:
        return None
    first, last = run.params[names[0]], run.params[names[-1]]
    g0, gl = _median(first["grad_norm"]), _median(last["grad_norm"])
    u0, ul = _median(first["update_ratio"]), _median(last["update_ratio"])
    evidence = []
    if gl > 0 and g0 < t.vanishing_ratio * gl:
        evidence.append(
            f"median gradient norm: first {run.label(names[0])} {_g(g0)}, last "
            f"{run.label(names[-1])} {_g(gl)} ({_g(gl / max(g0, 1e-300))}× larger at the top; "
            f"threshold {_g(1 / t.vanishing_ratio)}×)")
    if ul > 0 and u0 < t.vanishing_ratio * ul:
        evidence.append(
            f"median update ratio ‖ΔW‖/‖W‖: first layer {_g(u0)}, last layer {_g(ul)}")
    if not evidence:
        return None
    per_layer = ", ".join(f"{run.label(n)} {_g(_median(run.params[n]['grad_norm']))}"
                          for n in names)
    evidence.append(f"gradient norm by layer (input → output): {per_layer}")
    return Finding(
        "vanishing", "vanishing gradients: the lower layers barely learn", evidence,
        _advice(_hidden_ops(run)) + "; or use fewer layers. An adaptive optimizer (Adam) "
        "also helps.",
        layers=[names[0]],
    )


def exploding(run: Run, t: Thresholds) -> Finding | None:
    bad = [n for n, r in run.params.items()
           if any(r["nonfinite_grad"]) or any(r["nonfinite_weight"])]
    evidence = []
    if bad:
        n = bad[0]
        step = next(s for s, g, w in zip(run.params[n]["step"], run.params[n]["nonfinite_grad"],
                                         run.params[n]["nonfinite_weight"]) if g or w)
        evidence.append(f"NaN/Inf in the gradients or weights of {bad} (first at step {step})")
    total = _total_grad_norm(run)
    if len(total) >= 6 and not evidence:
        k = max(2, len(total) // 5)
        start, end = _median(total[:k]), max(total[-k:])
        # still growing: log-norm trends upward over the second half (steps are noisy)
        late = np.log([v for v in total[len(total) // 2:] if 0 < v < math.inf])
        rising = late.size >= 2 and np.polyfit(np.arange(late.size), late, 1)[0] > 0
        if start > 0 and end >= t.exploding_growth * start and rising:
            evidence.append(f"total gradient norm grew from {_g(start)} to {_g(end)} "
                            f"({_g(end / start)}×) and was still growing at the end")
    if not evidence:
        return None
    return Finding(
        "exploding", "exploding gradients: updates grow until the parameters overflow",
        evidence,
        "lower the learning rate, clip gradients (optim.clip_grad_norm_(params, 1.0)), use "
        "a smaller initialization, or normalize the inputs.",
        layers=bad,
    )


def _total_grad_norm(run: Run) -> list[float]:
    recs = list(run.params.values())
    if not recs:
        return []
    n = min(len(r["grad_norm"]) for r in recs)
    return [math.sqrt(sum(r["grad_norm"][i] ** 2 for r in recs)) for i in range(n)]


def _output_range(op: str) -> tuple[float, float]:
    """An activation op's output range, from its op-table entry ((−∞, ∞) if it has none)."""
    entry = OPS.get(op)
    return (entry and entry.activation_range) or (-math.inf, math.inf)


def _saturates(op: str) -> bool:
    """Bounded on both sides (sigmoid, tanh): flat tails where the derivative is ~0."""
    lo, hi = _output_range(op)
    return math.isfinite(lo) and math.isfinite(hi)


def _dies(op: str) -> bool:
    """Bounded below only (relu): a unit stuck at the bottom gets no gradient."""
    lo, hi = _output_range(op)
    return math.isfinite(lo) and hi == math.inf


def _early_saturation(run: Run, t: Thresholds) -> list[tuple[str, str, float]]:
    """(layer, op, mean saturated fraction over the first ``early`` of its records)."""
    out = []
    for name, r in run.acts.items():
        if _saturates(r["op"]) and r["saturated"]:
            frac = float(np.mean(r["saturated"][: max(1, int(len(r["saturated"]) * t.early))]))
            out.append((name, r["op"], frac))
    return out


def _saturation_harm(run: Run, t: Thresholds) -> str | None:
    """What shows that saturation hurts: a gradient shrinking toward the input, or a loss
    that kept more than half its start. None when neither."""
    names = list(run.params)
    if len(names) >= 2:
        g0 = _median(run.params[names[0]]["grad_norm"])
        gl = _median(run.params[names[-1]]["grad_norm"])
        if g0 > 0 and gl >= t.gradient_shrink * g0:
            return (f"the gradient shrinks toward the input: the last layer's median norm is "
                    f"{_g(gl / g0)}× the first layer's (counts from {_g(t.gradient_shrink)}×)")
    losses, unit = run.losses()
    # a whole run's curve only: one monitored epoch of a trained model barely moves its loss
    if (unit == "epoch" and len(losses) >= 3 and all(map(math.isfinite, losses))
            and losses[0] > 0):
        kept = min(losses) / losses[0]
        if kept > 0.5:
            return (f"the loss kept {kept:.0%} of its start (lowest {_g(min(losses))} after "
                    f"{_g(losses[0])} over {len(losses)} {unit}s)")
    return None


def saturation(run: Run, t: Thresholds) -> Finding | None:
    layers = _early_saturation(run, t)
    if not layers:
        return None
    name, op, worst = max(layers, key=lambda x: x[2])
    half = t.saturation / 2
    wide = [x for x in layers if x[2] >= half]
    need = max(1, math.ceil(t.saturation_share * len(layers)))
    harm = _saturation_harm(run, t)
    severe = worst >= t.saturation
    if not (worst >= t.saturation_alone or (len(wide) >= need and (severe or harm))):
        return None
    evidence = [
        f"most saturated: {run.label(name)} ({op}), {worst:.0%} of its outputs in the flat "
        f"tails "
        f"early in training ({worst / t.saturation:.2g}× the {t.saturation:.0%} threshold)",
        f"{len(wide)} of {len(layers)} sigmoid/tanh layers have at least {half:.0%} saturated "
        f"(counts from {need}): "
        + ", ".join(f"{run.label(n)} {f:.0%}" for n, _, f in layers),
    ]
    if harm:
        evidence.append(harm)
    ops = sorted({o for _, o, _ in wide or layers})
    return Finding(
        "saturation", "saturated outputs: activations stuck where their derivative is ~0",
        evidence,
        "the weights are too large for the layer size (or the inputs are not scaled). "
        + _advice(ops) + "; normalize the inputs.",
        layers=[n for n, _, _ in wide] or [name],
    )


def dead_units(run: Run, t: Thresholds) -> Finding | None:
    hits = []
    for name, r in run.acts.items():
        if _dies(r["op"]) and r["dead"]:
            k = max(1, len(r["dead"]) // 4)
            frac = float(np.mean(r["dead"][-k:]))
            if frac >= t.dead_units:
                hits.append((name, frac))
    if not hits:
        return None
    return Finding(
        "dead_units", "dead ReLU units: units that output 0 for every example never learn again",
        [f"{run.label(n)}: {frac:.0%} of its units output 0 on the whole batch at the end of "
         "training" for n, frac in hits],
        "lower the learning rate, use init='kaiming' with zero biases, or leaky_relu "
        "(a small slope for x < 0 keeps the gradient alive).",
        layers=[n for n, _ in hits],
    )


def lr_too_high(run: Run, t: Thresholds) -> Finding | None:
    losses, unit = run.losses()
    if len(losses) < 2:
        return None
    lr = run.monitor.get("lr")
    at = f" (lr={lr})" if lr is not None else ""
    bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
    if bad is not None:
        evidence = [f"the loss became {losses[bad]} at {unit} {bad}, after "
                    f"{_g(losses[0])} at the start"]
    elif losses[-1] > t.diverge * losses[0]:
        evidence = [f"the loss went up from {_g(losses[0])} to {_g(losses[-1])} over "
                    f"{len(losses)} {unit}s (lowest {_g(min(losses))})"]
    else:
        return None
    return Finding(
        "lr_too_high", f"learning rate too high{at}: the loss diverges", evidence,
        "divide the learning rate by 10 (or use Adam with lr=1e-3); clip gradients if "
        "single large steps are the cause.",
    )


def lr_too_low(run: Run, t: Thresholds) -> Finding | None:
    losses, _ = run.losses()
    if not run.params or len(losses) < 2 or not all(map(math.isfinite, losses)):
        return None
    ratios = {}
    for name, r in run.params.items():
        half = r["update_ratio"][: max(1, len(r["update_ratio"]) // 2)]
        ratios[name] = _median(half)
    top = max(ratios.values())
    if not top < t.tiny_update or abs(losses[-1]) <= 0.5 * abs(losses[0]):
        return None
    lr = run.monitor.get("lr")
    at = f" (lr={lr})" if lr is not None else ""
    return Finding(
        "lr_too_low", f"learning rate too low{at}: the weights barely move",
        [f"largest median update ratio ‖ΔW‖/‖W‖ per step: {_g(top)} (healthy: ~1e-3)",
         f"the loss only went from {_g(losses[0])} to {_g(losses[-1])}"],
        "multiply the learning rate by 10 to 100 (aim for update ratios near 1e-3).",
    )


def overfitting(run: Run, t: Thresholds) -> Finding | None:
    val, train = run.epochs.get("val_loss"), run.epochs.get("loss")
    if not val or not train or len(val) < t.overfit_patience + 2:
        return None
    val = [float(v) for v in val]
    best = int(np.nanargmin(val))
    window = val[best + 1:][-t.overfit_patience:]
    if len(val) - 1 - best < t.overfit_patience:
        return None
    # The whole window must stay up, by a relative and an absolute margin: one noisy epoch,
    # or a rise that is large in percent but tiny against the loss's scale, is not enough.
    rise = min(window) - val[best]
    scale = abs(val[0]) if math.isfinite(val[0]) else abs(val[best])
    if not (rise >= t.overfit_rise * abs(val[best]) and rise >= t.overfit_min_delta * scale):
        return None
    if not float(train[-1]) < float(train[best]):
        return None
    epochs = run.epoch_numbers()
    start = epochs[best + 1] if best + 1 < len(epochs) else best + 1
    return Finding(
        "overfitting", f"overfitting: validation loss rises from epoch {start} while "
        "training loss keeps falling",
        [f"validation loss: {_g(val[best])} at epoch {epochs[best]} (its minimum), "
         f"{_g(val[-1])} at epoch {epochs[-1]}",
         f"over the last {len(window)} epochs it stayed at least {_g(rise)} above that "
         f"minimum ({rise / abs(val[best]):.0%}; counts from {t.overfit_rise:.0%} and from "
         f"{_g(t.overfit_min_delta * scale)}, {t.overfit_min_delta:.0%} of the first "
         f"validation loss)",
         f"training loss over the same epochs: {_g(float(train[best]))} → {_g(float(train[-1]))}"],
        f"stop at epoch {epochs[best]} (fit(..., early_stopping=patience) restores the best "
        "weights), add weight decay or dropout, use a smaller model or more data.",
        epoch=start,
    )


def stalled(run: Run, t: Thresholds) -> Finding | None:
    losses, unit = run.losses()
    if len(losses) < 5 or not all(map(math.isfinite, losses)):
        return None
    first = losses[0]
    if losses[-1] > t.diverge * first:  # rising, not stalled: lr_too_high says so
        return None
    drop = (first - min(losses)) / abs(first) if first else 0.0
    if drop >= t.stall_drop:
        return None
    return Finding(
        "stalled", "training stalled: the loss is not going down",
        [f"loss {_g(first)} at the first {unit}, lowest {_g(min(losses))}, last "
         f"{_g(losses[-1])} after {len(losses)} {unit}s ({drop:.1%} lower)"],
        "check the learning rate (see the update ratios), the initialization (saturated or "
        "dead units), that the labels match the loss, and that the inputs are scaled.",
    )


RULES: dict[str, Callable[[Run, Thresholds], Finding | None]] = {
    "vanishing": vanishing,
    "exploding": exploding,
    "saturation": saturation,
    "dead_units": dead_units,
    "lr_too_high": lr_too_high,
    "lr_too_low": lr_too_low,
    "overfitting": overfitting,
    "stalled": stalled,
}


def diagnose(source: Any, thresholds: Thresholds | None = None,
             rules: Sequence[str] | None = None) -> list[Finding]:
    """The findings for ``source`` (a History, Monitor or dict), in ``RULES`` order.

    ``rules`` restricts the check to those names (default: all of ``RULES``).
    """
    run = source if isinstance(source, Run) else Run(source)
    t = thresholds or Thresholds()
    unknown = set(rules or ()) - set(RULES)
    if unknown:
        raise ValueError(f"diagnose: unknown rule(s) {sorted(unknown)}; the rules are "
                         f"{list(RULES)}")
    names = list(RULES) if rules is None else [n for n in RULES if n in rules]
    return [f for n in names if (f := RULES[n](run, t)) is not None]


def report(source: Any, thresholds: Thresholds | None = None) -> str:
    """The findings as text, ready to print at the end of training.

    >>> print(report({"loss": [1.0, 0.5, 0.3, 0.2, 0.1]}))
    diagnose: no problems found (checked 8 rules on the losses).
    """
    run = Run(source)
    findings = diagnose(run, thresholds)
    if not findings:
        what = "losses and per-layer statistics" if run.params else "losses"
        return f"diagnose: no problems found (checked {len(RULES)} rules on the {what})."
    head = f"diagnose: {len(findings)} problem{'s' if len(findings) > 1 else ''} found"
    if not run.params:
        head += " (losses only: pass callbacks=[diagnose.Monitor()] for per-layer rules)"
    return "\n".join([head, *map(str, findings)])

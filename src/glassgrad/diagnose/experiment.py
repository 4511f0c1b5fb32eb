"""The initialization experiment of Glorot & Bengio (2010), on this library.

The same deep network (``depth`` hidden layers of ``width`` units) is trained once per
(activation, initialization) of ``CONFIGS``: sigmoid with the standard normal N(0, 1) (as the
seed article describes the practice of the time), sigmoid and tanh with the paper's
"standard" U[−1/√n, 1/√n] (n = fan-in: what the paper actually ran), sigmoid and tanh with
Glorot's normalized initialization, ReLU with He's. A ``Monitor`` records every step, and
at ``snapshot_step`` (0: at initialization, as the paper's figures 6 and 7) it keeps every
hidden layer's activations and back-propagated gradients ∂L/∂z as histograms.

The report compares per-layer gradient norms, saturation and accuracy, then checks the
paper's observations one by one against this run's numbers and says which it reproduces.
Every sentence is computed from the measurements: nothing in the text is decided in advance.
Batches are all full-size (``fit(drop_last=True)``): a 3-sample last batch at lr 0.1 can
undo an epoch of training, which the paper's setting does not have.

``glassgrad experiment init`` runs it from the command line.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .monitor import Monitor, layer_label
from .rules import _dies, diagnose

STANDARD = "U(±1/√n)"  # the paper's "standard" initialization, U[−1/√fan_in, 1/√fan_in]
CONFIGS = (
    ("sigmoid", "normal", "sigmoid + N(0,1)"),
    ("sigmoid", "standard", f"sigmoid + {STANDARD}"),
    ("sigmoid", "xavier", "sigmoid + Glorot"),
    ("tanh", "standard", f"tanh + {STANDARD}"),
    ("tanh", "xavier", "tanh + Glorot"),
    ("relu", "kaiming", "ReLU + He"),
)
CONSTANT = (0.8, 1.25)  # a per-layer factor in this range counts as "roughly constant"


@dataclass
class ConfigResult:
    label: str
    activation: str
    init: str
    accuracy: float  # on the held-out test set, after the last epoch
    loss: float  # training loss of the last epoch
    grad_norms: list[float]  # median gradient norm per layer, input -> output
    saturation: list[float]  # per hidden layer: mean fraction saturated (or dead) early on
    val_accuracy: list[float]  # per epoch
    findings: list[str]
    monitor: dict[str, Any] = field(repr=False)

    @property
    def spread(self) -> float:
        """How many times larger the last layer's gradient is than the first layer's."""
        g0, gl = self.grad_norms[0], self.grad_norms[-1]
        return gl / g0 if g0 > 0 else math.inf

    @property
    def worst_saturation(self) -> float:
        return max(self.saturation, default=0.0)

    def snapshot(self) -> dict[str, dict]:
        """The per-layer records of the first snapshot ({} when none was taken)."""
        snaps = self.monitor.get("snapshots") or []
        return snaps[0]["layers"] if snaps else {}

    def layer_factor(self, key: str) -> float | None:
        """The geometric-mean factor by which ``key`` ("act_std" or "grad_std") changes from
        one hidden layer to the next, going up (input → output), at the snapshot."""
        vals = [r.get(key) for r in self.snapshot().values()]
        if len(vals) < 2 or any(v is None or not v > 0 for v in vals):
            return None
        return float((vals[-1] / vals[0]) ** (1 / (len(vals) - 1)))


def _per_layer(factor: float) -> str:
    return f"×{factor:.2f} per layer"


def _flow(r: ConfigResult) -> str:
    if r.spread >= 1:
        return f"{r.label} {r.spread:.3g}× (the first layer gets 1/{r.spread:.3g} of it)"
    return f"{r.label} {r.spread:.3g}× (the first layer gets {1 / r.spread:.3g}× more)"


@dataclass
class ExperimentResult:
    results: list[ConfigResult]
    settings: dict[str, Any]
    seconds: float

    def table(self) -> str:
        w = max(len(r.label) for r in self.results)
        head = (f"{'network':<{w}}  {'test acc':>8}  {'loss':>7}  {'saturated':>9}  "
                f"{'grad first':>10}  {'grad last':>9}  {'last/first':>10}  warnings")
        lines = [head, "-" * len(head)]
        for r in self.results:
            lines.append(
                f"{r.label:<{w}}  {r.accuracy:>8.1%}  {r.loss:>7.3f}  {r.worst_saturation:>9.0%}"
                f"  {r.grad_norms[0]:>10.2e}  {r.grad_norms[-1]:>9.2e}  {r.spread:>10.3g}  "
                f"{', '.join(r.findings) or '-'}")
        return "\n".join(lines)

    def find(self, activation: str, init: str) -> ConfigResult | None:
        return next((r for r in self.results if (r.activation, r.init) == (activation, init)),
                    None)

    def conclusions(self) -> list[str]:
        """Sentences derived from the measured numbers."""
        rs = self.results
        out = []
        by_sat = sorted(rs, key=lambda r: r.worst_saturation, reverse=True)
        top, low = by_sat[0], by_sat[-1]
        if top.worst_saturation - low.worst_saturation >= 0.1:
            out.append(
                f"Saturation: {top.label} had up to {top.worst_saturation:.0%} of a hidden "
                f"layer's outputs saturated (or dead) early in training, {low.label} "
                f"{low.worst_saturation:.0%}.")
        else:
            out.append("Saturation: no network saturated much more than the others "
                       f"(all between {low.worst_saturation:.0%} and "
                       f"{top.worst_saturation:.0%}).")
        out.append(self._gradient_flow())
        by_acc = sorted(rs, key=lambda r: r.accuracy, reverse=True)
        out.append("Accuracy: " + ", ".join(f"{r.label} {r.accuracy:.1%}" for r in by_acc)
                   + f" ({by_acc[0].label} best).")
        sig_n, tanh_g = self.find("sigmoid", "normal"), self.find("tanh", "xavier")
        if sig_n is not None and tanh_g is not None:
            more_sat = sig_n.worst_saturation > tanh_g.worst_saturation + 0.05
            worse = sig_n.accuracy < tanh_g.accuracy
            verdict = ("reproduced" if more_sat and worse else
                       "partly reproduced" if more_sat or worse else "not reproduced")
            out.append(
                f"The 2010 finding as the seed article words it (sigmoid with standard-normal "
                f"weights saturates and trains worse than tanh with Glorot's initialization) "
                f"is {verdict} here: saturation {sig_n.worst_saturation:.0%} vs "
                f"{tanh_g.worst_saturation:.0%}, accuracy {sig_n.accuracy:.1%} vs "
                f"{tanh_g.accuracy:.1%}. The paper's own \"standard\" initialization was "
                f"U[−1/√n, 1/√n] (n = fan-in), not N(0, 1); see its observations below.")
        why = self._why_not_glorot_for_sigmoid()
        if why:
            out.append(why)
        return out

    def _gradient_flow(self) -> str:
        # Compare against 1 (every layer learns at the same pace), not against the smallest
        # ratio: a ratio of 0.3 is as far from healthy as one of 3, in the other direction.
        by_dist = sorted(self.results, key=lambda r: abs(math.log(max(r.spread, 1e-300))))
        best, worst = by_dist[0], by_dist[-1]
        return (
            "Gradient flow (the last layer's median gradient norm ÷ the first layer's; 1 means "
            "every layer learns at the same pace, ≫ 1 that the gradient vanishes on its way "
            "to the input, ≪ 1 that it grows): closest to 1 is " + _flow(best)
            + ", farthest is " + _flow(worst) + ". All: "
            + ", ".join(f"{r.label} {r.spread:.3g}×" for r in by_dist) + ".")

    def _why_not_glorot_for_sigmoid(self) -> str | None:
        sig_g, tanh_g = self.find("sigmoid", "xavier"), self.find("tanh", "xavier")
        if sig_g is None:
            return None
        f = sig_g.layer_factor("grad_std")
        measured = (f" At the snapshot, sigmoid + Glorot's back-propagated gradient shrinks "
                    f"{_per_layer(1 / f)} toward the input" if f else
                    f" Over training, sigmoid + Glorot's first layer gets 1/{sig_g.spread:.3g} "
                    f"of the last layer's gradient")
        ft = tanh_g.layer_factor("grad_std") if tanh_g else None
        if ft:
            measured += f" (tanh + Glorot: {_per_layer(1 / ft)})"
        return ("Why Glorot's initialization does not rescue sigmoid: it is derived for "
                "activations with f′(0) = 1 (tanh), but σ′(z) ≤ ¼, so every sigmoid layer still "
                "divides the back-propagated gradient by about 4 (and σ's outputs, centred on "
                "½, shift the next layer)." + measured + ". In hidden layers use tanh with "
                "Glorot or ReLU with He.")

    def observations(self) -> list[tuple[str, bool | None, str]]:
        """The paper's observations as (statement, reproduced here? (None: not measured),
        the numbers that decide it)."""
        return [_top_layer_saturates(self), _top_layer_leaves(self),
                *_variance_across_layers(self)]

    def report(self) -> str:
        s = self.settings
        head = (f"Initialization experiment (Glorot & Bengio 2010): {s['depth']} hidden layers "
                f"of {s['width']} units on {s['dataset']} ({s['n_train']} training, "
                f"{s['n_test']} test samples), {s['optimizer']} lr={s['lr']}, batch "
                f"{s['batch_size']}{' (full batches only)' if s.get('drop_last', True) else ''}, "
                f"{s['epochs']} epochs, seed "
                f"{s['seed']}; snapshot at step {s.get('snapshot_step', 0)}; "
                f"{self.seconds:.1f} s.")
        obs = ["The paper's observations, checked against this run's numbers:"]
        for text, ok, numbers in self.observations():
            tag = {True: "reproduced", False: "NOT reproduced", None: "not measured"}[ok]
            obs.append(f"  [{tag}] {text}: {numbers}")
        return "\n".join([head, "", self.table(), "", *self.conclusions(), "", *obs])


# --------------------------------------------------------------------------- the paper's claims
def _epoch_of(step: int, result: ExperimentResult) -> int:
    per = max(1, result.settings.get("steps_per_epoch", 1))
    return step // per + 1


def _top_series(r: ConfigResult) -> tuple[str, list[int], list[float]] | None:
    acts = r.monitor.get("activations") or {}
    if not acts:
        return None
    name = list(acts)[-1]
    rec = acts[name]
    return (name, rec["step"], rec["low"]) if rec.get("low") else None


_SAT_CLAIM = ("with sigmoid and standard initialization the top hidden layer saturates at 0 "
              "early in training")
_LEAVE_CLAIM = "... and slowly leaves saturation"


def _top_layer_saturates(result: ExperimentResult) -> tuple[str, bool | None, str]:
    r = result.find("sigmoid", "standard")
    series = _top_series(r) if r else None
    if series is None:
        return _SAT_CLAIM, None, f"no sigmoid + {STANDARD} run with activation records"
    name, steps, low = series
    half = max(1, len(low) // 2)
    peak = int(np.argmax(low[:half]))
    ok = low[peak] >= 0.5
    mean = r.monitor["activations"][name]["mean"]
    order = list(r.monitor.get("params") or r.monitor["activations"])
    return _SAT_CLAIM, ok, (
        f"top hidden {layer_label(name, order)}: {low[0]:.0%} of its "
        f"outputs below 0.01 at the start, at "
        f"most {low[peak]:.0%} in the first half of training (step {steps[peak]}, epoch "
        f"{_epoch_of(steps[peak], result)}; saturated = at least 50%); its mean output went "
        f"from {mean[0]:.2f} to {mean[-1]:.2f} (the paper's fell to about 0 early)")


def _top_layer_leaves(result: ExperimentResult) -> tuple[str, bool | None, str]:
    r = result.find("sigmoid", "standard")
    series = _top_series(r) if r else None
    if series is None:
        return _LEAVE_CLAIM, None, f"no sigmoid + {STANDARD} run with activation records"
    name, steps, low = series
    peak = int(np.argmax(low[: max(1, len(low) // 2)]))
    if low[peak] < 0.5:
        return _LEAVE_CLAIM, None, "the layer never saturated at 0, so it had nothing to leave"
    below = next((i for i in range(peak, len(low)) if low[i] <= low[peak] / 2), None)
    if below is None:
        return _LEAVE_CLAIM, False, (
            f"still {low[-1]:.0%} below 0.01 at the end (epoch "
            f"{_epoch_of(steps[-1], result)}); the paper saw it leave after about 100 epochs, "
            f"longer than this run")
    took = _epoch_of(steps[below], result) - _epoch_of(steps[peak], result)
    return _LEAVE_CLAIM, True, (
        f"from {low[peak]:.0%} at epoch {_epoch_of(steps[peak], result)} to {low[below]:.0%} at "
        f"epoch {_epoch_of(steps[below], result)} ({took} epochs), {low[-1]:.0%} at the end")


def _variance_across_layers(result: ExperimentResult) -> list[tuple[str, bool | None, str]]:
    lo, hi = CONSTANT
    std, glorot = result.find("tanh", "standard"), result.find("tanh", "xavier")
    out = []
    for key, what, shrink_dir in (("act_std", "activations", "going up"),
                                  ("grad_std", "back-propagated gradients ∂L/∂z",
                                   "going down to the input")):
        claim = (f"with tanh and standard initialization the {what} shrink from layer to "
                 f"layer {shrink_dir}")
        f = std.layer_factor(key) if std else None
        if f is None:
            out.append((claim, None, f"no tanh + {STANDARD} snapshot with 2+ hidden layers"))
        else:
            f_dir = f if key == "act_std" else 1 / f  # measured in the claim's direction
            out.append((claim, f_dir < lo, f"standard deviation {_per_layer(f_dir)} "
                        f"{shrink_dir} (shrinking = below ×{lo})"))
    claim = ("with Glorot's normalized initialization their variance stays roughly constant "
             "across layers")
    fa = glorot.layer_factor("act_std") if glorot else None
    fg = glorot.layer_factor("grad_std") if glorot else None
    if fa is None or fg is None:
        out.append((claim, None, "no tanh + Glorot snapshot with 2+ hidden layers"))
    else:
        ok = lo <= fa <= hi and lo <= 1 / fg <= hi
        out.append((claim, ok, f"tanh + Glorot: activations' standard deviation "
                    f"{_per_layer(fa)} going up, gradients' {_per_layer(1 / fg)} going down "
                    f"(roughly constant = between ×{lo} and ×{hi})"))
    return out


def _dataset(name: str, seed: int, n_max: int | None) -> tuple[np.ndarray, np.ndarray]:
    from .. import data

    if name == "digits":
        X, y = data.load_digits()
    elif name == "spirals":
        X, y = data.spirals(n_samples=600, n_classes=3, seed=seed)
    elif name == "blobs":
        X, y = data.blobs(n_samples=600, centers=4, n_features=16, seed=seed)
    else:
        raise ValueError(f"experiment: unknown dataset {name!r}; use digits, spirals or blobs")
    if n_max is not None and len(X) > n_max:
        idx = np.random.default_rng(seed).permutation(len(X))[:n_max]
        X, y = X[idx], y[idx]
    return X.astype(np.float32), y


def _init(name: str) -> Any:
    from ..nn import init

    return init.fan_in_uniform_ if name == "standard" else name  # MLP knows the others


def run_init_experiment(
    depth: int = 5,
    width: int = 64,
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 0.1,
    optimizer: str = "sgd",
    dataset: str = "digits",
    seed: int = 0,
    quick: bool = False,
    configs: tuple = CONFIGS,
    snapshot_step: int = 0,
    drop_last: bool = True,
) -> ExperimentResult:
    """Train the same network with each (activation, init) of ``configs``; compare them.

    Every epoch uses full batches only (``drop_last``; False shows what a short last batch
    at this learning rate does to the accuracy curves). ``snapshot_step`` is the step whose
    activations and back-propagated gradients are kept per layer (0: at initialization).
    ``quick`` shrinks everything (300 samples, at most 6 epochs, width 32) for tests.
    """
    from .. import data, nn
    from ..training import fit

    if depth < 1 or width < 1 or epochs < 1:
        raise ValueError("experiment: depth, width and epochs must be at least 1")
    if snapshot_step < 0:
        raise ValueError(f"experiment: snapshot_step counts steps from 0 (at initialization), "
                         f"got {snapshot_step}")
    n_max = None
    if quick:
        n_max, epochs, width = 300, min(epochs, 6), min(width, 32)
    X, y = _dataset(dataset, seed, n_max)
    X_tr, X_te, y_tr, y_te = data.train_test_split(X, y, 0.25, seed=seed)
    n_classes = int(y.max()) + 1
    start = time.perf_counter()
    results = []
    for act, init, label in configs:
        model = nn.MLP([X.shape[1], *[width] * depth, n_classes], activation=act,
                       init=_init(init), seed=seed)
        monitor = Monitor(every=1, snapshot_steps=[snapshot_step])
        hist = fit(model, X_tr, y_tr, loss="cross_entropy", optimizer=optimizer, lr=lr,
                   epochs=epochs, batch_size=batch_size, drop_last=drop_last,
                   validation_data=(X_te, y_te), callbacks=[monitor], verbose=0, seed=seed)
        results.append(_config_result(label, act, init, hist, monitor.data))
    n_batches = len(X_tr) // min(batch_size, len(X_tr)) if drop_last else math.ceil(
        len(X_tr) / batch_size)
    settings = {"depth": depth, "width": width, "epochs": epochs, "batch_size": batch_size,
                "lr": lr, "optimizer": optimizer, "dataset": dataset, "seed": seed,
                "drop_last": drop_last, "n_train": len(X_tr), "n_test": len(X_te),
                "snapshot_step": snapshot_step, "steps_per_epoch": n_batches}
    return ExperimentResult(results, settings, time.perf_counter() - start)


def _config_result(label: str, act: str, init: str, hist: Any,
                   mon: dict[str, Any]) -> ConfigResult:
    grad = [float(np.median(r["grad_norm"])) for r in mon["params"].values()]
    sat = []
    for r in mon["activations"].values():
        frac = r["dead"] if _dies(r["op"]) else r["saturated"]  # (from the op's range)
        sat.append(float(np.mean(frac[: max(1, len(frac) // 10)])))
    return ConfigResult(
        label, act, init, float(hist.history["val_accuracy"][-1]),
        float(hist.history["loss"][-1]), grad, sat,
        [float(v) for v in hist.history["val_accuracy"]],
        [f.rule for f in diagnose(hist)], mon,
    )


def plot_experiment(result: ExperimentResult) -> dict[str, Any]:
    """Figures comparing the networks: gradient norms and saturation per layer, accuracy,
    end-of-training activation histograms (one panel per network), the snapshot's
    activation and gradient histograms per layer, and sigmoid + standard's activations over
    training (the paper's figure 2)."""
    from .plots import COLORS, _figure

    figs = {}
    fig, (ax, ax2) = _figure(2)
    for i, r in enumerate(result.results):
        c = COLORS[i % len(COLORS)]
        ax.plot(range(1, len(r.grad_norms) + 1), r.grad_norms, "o-", color=c, lw=2,
                label=r.label)
        ax2.plot(range(1, len(r.saturation) + 1), np.asarray(r.saturation) * 100, "o-",
                 color=c, lw=2, label=r.label)
    ax2.set_xticks(range(1, max(len(r.saturation) for r in result.results) + 1))
    ax.set_yscale("log")
    ax.set_xlabel("layer (1 = nearest the input)")
    ax.set_title("Median gradient norm ‖∂L/∂W‖ per layer")
    ax2.set_xlabel("hidden layer (1 = the first Linear's outputs)")
    ax2.set_ylabel("% of outputs (saturated) or units (dead)")
    ax2.set_ylim(-2, 102)
    ax2.set_title("Saturated (sigmoid/tanh) outputs or dead (ReLU) units, early training")
    for a in (ax, ax2):
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=9)
    figs["init_gradients"] = fig

    fig, (ax,) = _figure(1, 6.5, 4.2)
    for i, r in enumerate(result.results):
        ax.plot(range(1, len(r.val_accuracy) + 1), r.val_accuracy, "-", lw=2,
                color=COLORS[i % len(COLORS)], label=r.label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title("Test accuracy per epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    figs["init_accuracy"] = fig

    n = len(result.results)
    cols = 2 if n > 1 else 1
    fig, axes = _figure(cols, 4.6, 3.3, nrows=(n + cols - 1) // cols)
    for ax in axes[n:]:
        ax.set_visible(False)
    for ax, r in zip(axes, result.results):
        for i, h in enumerate(r.monitor["hist_last"].values()):
            counts = np.asarray(h["counts"], dtype=float)
            ax.stairs(counts / max(counts.sum(), 1) * 100, np.asarray(h["edges"]),
                      color=COLORS[i % len(COLORS)], lw=1.5, label=str(i + 1))
        ax.set_title(f"{r.label}: activations at the end of training", fontsize=10)
        ax.set_xlabel("activation value")
        ax.set_ylabel("% of values")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title="hidden layer", title_fontsize=7)
    figs["init_activations"] = fig
    figs["init_histograms"] = plot_snapshot_histograms(result)
    sig_std = result.find("sigmoid", "standard")
    if sig_std is not None and sig_std.monitor.get("activations"):
        from .plots import plot_activation_stats
        from .rules import Run

        fig = plot_activation_stats(Run(sig_std.monitor))  # the paper's figure 2
        fig.suptitle(f"{sig_std.label}: activations per hidden layer over training")
        figs["init_sigmoid_standard"] = fig
    return figs


def plot_snapshot_histograms(result: ExperimentResult) -> Any:
    """Per network (rows): the histograms of every hidden layer's activations (left) and
    back-propagated gradients ∂L/∂z (right) at the snapshot step, as the paper's figures 6
    and 7 show them: one line per layer, on bins shared by the layers."""
    from .plots import COLORS, _figure

    rows = [r for r in result.results if r.snapshot()]
    if not rows:
        raise ValueError("plot_snapshot_histograms: no snapshot was recorded (the run ended "
                         "before snapshot_step).")
    fig, axes = _figure(2, 4.8, 2.6, nrows=len(rows))
    step = result.settings.get("snapshot_step", 0)
    for i, r in enumerate(rows):
        ax_a, ax_g = axes[2 * i], axes[2 * i + 1]
        for j, rec in enumerate(r.snapshot().values()):
            c = COLORS[j % len(COLORS)]
            for ax, key in ((ax_a, "act"), (ax_g, "grad")):
                h = rec.get(key)
                if h:
                    counts = np.asarray(h["counts"], dtype=float)
                    ax.stairs(counts / max(counts.sum(), 1) * 100, np.asarray(h["edges"]),
                              color=c, lw=1.4, label=f"layer {j + 1}")
        ax_a.set_title(f"{r.label}: activations, step {step}", fontsize=9)
        ax_g.set_title(f"{r.label}: back-propagated ∂L/∂z, step {step}", fontsize=9)
        for ax in (ax_a, ax_g):
            ax.set_ylabel("% of values", fontsize=8)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
        ax_a.legend(fontsize=6, title="hidden layer", title_fontsize=6)
    return fig


def save_experiment_plots(result: ExperimentResult, out_dir: str | os.PathLike) -> list[str]:
    """Every figure of ``plot_experiment`` as a PNG in ``out_dir``; returns their paths."""
    from .plots import save_figure

    os.makedirs(out_dir, exist_ok=True)
    return [save_figure(f, os.path.join(os.fspath(out_dir), f"{name}.png"))
            for name, f in plot_experiment(result).items()]

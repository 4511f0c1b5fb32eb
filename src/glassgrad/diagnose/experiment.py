"""The initialization experiment of Glorot & Bengio (2010), on this library.

The same deep network (``depth`` hidden layers of ``width`` units) is trained four times,
changing only the activation and the initialization: sigmoid + standard normal (the
practice the paper criticised), sigmoid + Glorot, tanh + Glorot, ReLU + He. A ``Monitor``
records every step; the report compares per-layer gradient norms, the fraction of saturated
(or dead) units early in training and the final accuracy. The conclusions are sentences
computed from those numbers: nothing in the text is decided in advance.

``glassgrad experiment init`` runs it from the command line.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .monitor import Monitor
from .rules import diagnose

CONFIGS = (
    ("sigmoid", "normal", "sigmoid + N(0,1)"),
    ("sigmoid", "xavier", "sigmoid + Glorot"),
    ("tanh", "xavier", "tanh + Glorot"),
    ("relu", "kaiming", "ReLU + He"),
)


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

    def conclusions(self) -> list[str]:
        """Sentences derived from the measured numbers."""
        rs = self.results
        out = []
        by_sat = sorted(rs, key=lambda r: r.worst_saturation, reverse=True)
        top, low = by_sat[0], by_sat[-1]
        if top.worst_saturation - low.worst_saturation >= 0.1:
            out.append(
                f"Saturation: {top.label} had up to {top.worst_saturation:.0%} of a hidden "
                f"layer's units saturated (or dead) early in training, {low.label} "
                f"{low.worst_saturation:.0%}.")
        else:
            out.append("Saturation: no network saturated much more than the others "
                       f"(all between {low.worst_saturation:.0%} and "
                       f"{top.worst_saturation:.0%}).")
        by_spread = sorted(rs, key=lambda r: r.spread, reverse=True)
        worst, best = by_spread[0], by_spread[-1]
        out.append(
            f"Gradient flow: the last layer's gradient norm is {worst.spread:.3g}× the first "
            f"layer's with {worst.label} (vanishing toward the input when ≫ 1) and "
            f"{best.spread:.3g}× with {best.label}.")
        by_acc = sorted(rs, key=lambda r: r.accuracy, reverse=True)
        out.append("Accuracy: " + ", ".join(f"{r.label} {r.accuracy:.1%}" for r in by_acc)
                   + f" ({by_acc[0].label} best).")
        sig_n = next((r for r in rs if (r.activation, r.init) == ("sigmoid", "normal")), None)
        tanh_g = next((r for r in rs if (r.activation, r.init) == ("tanh", "xavier")), None)
        if sig_n is not None and tanh_g is not None:
            more_sat = sig_n.worst_saturation > tanh_g.worst_saturation + 0.05
            worse = sig_n.accuracy < tanh_g.accuracy
            verdict = ("reproduced" if more_sat and worse else
                       "partly reproduced" if more_sat or worse else "not reproduced")
            out.append(
                f"The 2010 finding (sigmoid with standard-normal weights saturates and trains "
                f"worse than tanh with Glorot's initialization) is {verdict} here: "
                f"saturation {sig_n.worst_saturation:.0%} vs {tanh_g.worst_saturation:.0%}, "
                f"accuracy {sig_n.accuracy:.1%} vs {tanh_g.accuracy:.1%}.")
        return out

    def report(self) -> str:
        s = self.settings
        head = (f"Initialization experiment (Glorot & Bengio 2010): {s['depth']} hidden layers "
                f"of {s['width']} units on {s['dataset']} ({s['n_train']} training, "
                f"{s['n_test']} test samples), {s['optimizer']} lr={s['lr']}, batch "
                f"{s['batch_size']}, {s['epochs']} epochs, seed {s['seed']}; "
                f"{self.seconds:.1f} s.")
        return "\n".join([head, "", self.table(), "", *self.conclusions()])


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
) -> ExperimentResult:
    """Train the same network with each (activation, init) of ``configs``; compare them.

    ``quick`` shrinks everything (300 samples, 3 epochs, width 32) for tests.
    """
    from .. import data, nn
    from ..training import fit

    if depth < 1 or width < 1 or epochs < 1:
        raise ValueError("experiment: depth, width and epochs must be at least 1")
    n_max = None
    if quick:
        n_max, epochs, width = 300, min(epochs, 3), min(width, 32)
    X, y = _dataset(dataset, seed, n_max)
    X_tr, X_te, y_tr, y_te = data.train_test_split(X, y, 0.25, seed=seed)
    n_classes = int(y.max()) + 1
    start = time.perf_counter()
    results = []
    for act, init, label in configs:
        model = nn.MLP([X.shape[1], *[width] * depth, n_classes], activation=act, init=init,
                       seed=seed)
        monitor = Monitor(every=1)
        hist = fit(model, X_tr, y_tr, loss="cross_entropy", optimizer=optimizer, lr=lr,
                   epochs=epochs, batch_size=batch_size, validation_data=(X_te, y_te),
                   callbacks=[monitor], verbose=0, seed=seed)
        mon = monitor.data
        grad = [float(np.median(r["grad_norm"])) for r in mon["params"].values()]
        sat = []
        for r in mon["activations"].values():
            frac = r["dead"] if r["op"] == "relu" else r["saturated"]
            early = frac[: max(1, len(frac) // 10)]
            sat.append(float(np.mean(early)))
        results.append(ConfigResult(
            label, act, init, float(hist.history["val_accuracy"][-1]),
            float(hist.history["loss"][-1]), grad, sat,
            [float(v) for v in hist.history["val_accuracy"]],
            [f.rule for f in diagnose(hist)], mon,
        ))
    settings = {"depth": depth, "width": width, "epochs": epochs, "batch_size": batch_size,
                "lr": lr, "optimizer": optimizer, "dataset": dataset, "seed": seed,
                "n_train": len(X_tr), "n_test": len(X_te)}
    return ExperimentResult(results, settings, time.perf_counter() - start)


def plot_experiment(result: ExperimentResult) -> dict[str, Any]:
    """Figures comparing the networks: gradient norms and saturation per layer, accuracy,
    and end-of-training activation histograms (one panel per network)."""
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
    ax2.set_xlabel("hidden layer")
    ax2.set_ylabel("% of units")
    ax2.set_ylim(-2, 102)
    ax2.set_title("Saturated (sigmoid/tanh) or dead (ReLU) units, early training")
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
    return figs


def save_experiment_plots(result: ExperimentResult, out_dir: str | os.PathLike) -> list[str]:
    from .plots import save_figure

    os.makedirs(out_dir, exist_ok=True)
    return [save_figure(f, os.path.join(os.fspath(out_dir), f"{name}.png"))
            for name, f in plot_experiment(result).items()]

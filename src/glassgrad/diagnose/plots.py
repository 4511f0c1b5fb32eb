"""Plots of a training run: loss curves, per-layer gradient norms, activation histograms,
decision boundaries. Matplotlib is imported lazily (extra "plot").

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (no global state,
no GUI backend), which Jupyter shows inline; ``save_all`` writes PNG files atomically.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from typing import Any

import numpy as np

from ..fileio import write_atomic
from .rules import Run, _dies, _output_range

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf"]


def _figure(ncols: int = 1, width: float = 6.0, height: float = 4.0,
            nrows: int = 1) -> tuple[Any, list]:
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "glassgrad.diagnose.plots needs matplotlib. Fix: pip install \"glassgrad[plot]\""
        ) from None
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(ncols * nrows)]
    return fig, axes


def _run(source: Any) -> Run:
    return source if isinstance(source, Run) else Run(source)


def _log_scale_if_wide(ax: Any, values: list[float]) -> None:
    v = [x for x in values if x is not None and math.isfinite(x) and x > 0]
    finite = [x for x in values if x is not None and math.isfinite(x)]
    if v and len(v) == len(finite) and max(v) / min(v) > 50:
        ax.set_yscale("log")


def plot_loss(source: Any) -> Any:
    """Training and validation loss per epoch (and accuracy, when recorded)."""
    from matplotlib.ticker import MaxNLocator

    run = _run(source)
    ep = run.epochs
    acc_keys = [k for k in ("accuracy", "val_accuracy") if ep.get(k)]
    fig, axes = _figure(2 if acc_keys else 1)
    ax = axes[0]
    x = run.epoch_numbers()
    allv: list[float] = []
    steps = run.monitor.get("loss", {})
    few = len(ep.get("loss", [])) < 3  # one or two epochs: a curve needs the per-step losses
    for key, style in (("loss", "-o" if few else "-"), ("val_loss", "--o" if few else "--")):
        if ep.get(key) and not (few and steps.get("value")):
            vals = [float(v) for v in ep[key]]
            ax.plot(x[: len(vals)], vals, style, lw=2, label=key.replace("_", " "))
            allv += vals
    if not allv:  # per-step losses from the monitor
        ax.plot(steps.get("step", []), steps.get("value", []), lw=1.5, label="loss per step")
        allv = list(steps.get("value", []))
        ax.set_xlabel("step")
    else:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _log_scale_if_wide(ax, allv)
    ax.set_ylabel("loss")
    ax.set_title("Loss")
    ax.grid(alpha=0.3)
    ax.legend()
    if acc_keys:
        ax = axes[1]
        for key, style in zip(acc_keys, ("-", "--")):
            vals = [float(v) for v in ep[key]]
            ax.plot(x[: len(vals)], vals, style + ("o" if len(vals) < 3 else ""), lw=2,
                    label=key.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.set_title("Accuracy")
        ax.grid(alpha=0.3)
        ax.legend()
    return fig


def moving_median(values: Any, window: int) -> np.ndarray:
    """The median of each value's centred ``window`` (shorter at the ends); NaNs ignored.

    >>> moving_median([1.0, 9.0, 2.0, 3.0], 3).tolist()
    [5.0, 2.0, 3.0, 2.5]
    """
    v = np.asarray(values, dtype=float)
    half = max(int(window), 1) // 2
    padded = np.pad(v, half, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    with warnings.catch_warnings():  # a window of NaNs only gives NaN, a gap in the line
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(windows, axis=1)


def _smooth_window(n: int) -> int:
    return max(5, n // 25) | 1  # ~25 independent points along the run, odd


def _raw_and_smoothed(ax: Any, steps: list, values: list[float], color: str,
                      label: str) -> None:
    # per-step norms jump with each batch: the raw values faint, a moving median on top
    vals = _positive(values)
    ax.plot(steps, vals, color=color, lw=0.8, alpha=0.25, label=f"_raw {label}")
    ax.plot(steps, moving_median(vals, _smooth_window(len(vals))), color=color, lw=1.8,
            label=label)


def plot_grad_norms(source: Any) -> Any:
    """Per-layer gradient norm and update-to-weight ratio over the recorded steps: each step's
    value faint, a moving median (about 25 windows along the run) drawn on top."""
    run = _run(source)
    _require_monitor(run, "plot_grad_norms")
    fig, (ax, ax2) = _figure(2)
    for i, (name, r) in enumerate(run.params.items()):
        c = COLORS[i % len(COLORS)]
        _raw_and_smoothed(ax, r["step"], r["grad_norm"], c, run.label(name))
        _raw_and_smoothed(ax2, r["step"], r["update_ratio"], c, run.label(name))
    ax.set_yscale("log")
    ax.set_title("Gradient norm ‖∂L/∂W‖ per layer")
    ax2.set_yscale("log")
    ax2.axhline(1e-3, color="k", ls=":", lw=1, label="typical 1e-3")
    ax2.set_title("Update ratio ‖ΔW‖/‖W‖ per layer")
    for a in (ax, ax2):
        a.set_xlabel("step")
        a.grid(alpha=0.3, which="both")
        a.legend(fontsize=8, ncol=2 if len(run.params) > 5 else 1)
    return fig


def _positive(xs: list[float]) -> list[float]:
    # log axes cannot show 0 or NaN: leave gaps there instead of failing
    return [x if x is not None and math.isfinite(x) and x > 0 else math.nan for x in xs]


def plot_activation_histograms(source: Any) -> Any:
    """Histograms of each hidden layer's activations, first batch vs end of training.

    The figure of Glorot & Bengio (2010): normalized histograms overlaid, one line per layer.
    """
    run = _run(source)
    _require_monitor(run, "plot_activation_histograms")
    panels = [(k, t) for k, t in (("hist_first", "first recorded batch"),
                                  ("hist_last", "end of training")) if run.monitor.get(k)]
    if not panels:
        raise ValueError("plot_activation_histograms: no activations were recorded "
                         "(the model has no hidden sigmoid/tanh/relu layer, or "
                         "Monitor(activations=False)).")
    fig, axes = _figure(len(panels))
    for ax, (key, title) in zip(axes, panels):
        hists = run.monitor[key]
        for i, (name, h) in enumerate(hists.items()):
            counts = np.asarray(h["counts"], dtype=float)
            edges = np.asarray(h["edges"])
            dens = counts / max(counts.sum(), 1) * 100
            ax.stairs(dens, edges, color=COLORS[i % len(COLORS)], lw=1.8,
                      label=f"{run.label(name)} ({h['op']})")
        ax.set_title(f"Activation values, {title} (step {next(iter(hists.values()))['step']})")
        ax.set_xlabel("activation value")
        ax.set_ylabel("% of values")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def plot_activation_stats(source: Any) -> Any:
    """Per-layer activation median with its 5–95% quantile band, and the saturated/dead
    fraction, over training. Quantiles, not mean ± std: activations of ReLU never go below 0
    and those of sigmoid stay in (0, 1), which a band of ± std does not respect."""
    run = _run(source)
    _require_monitor(run, "plot_activation_stats")
    fig, (ax, ax2) = _figure(2)
    for i, (name, r) in enumerate(run.acts.items()):
        c = COLORS[i % len(COLORS)]
        s = np.asarray(r["step"])
        if r.get("p50"):
            mid, lo, hi = (np.asarray(r[k]) for k in ("p50", "p5", "p95"))
        else:  # records of an older Monitor: mean ± std, clipped to the activation's range
            m, sd = np.asarray(r["mean"]), np.asarray(r["std"])
            bounds = _output_range(r["op"])
            mid, lo, hi = m, np.clip(m - sd, *bounds), np.clip(m + sd, *bounds)
        ax.plot(s, mid, color=c, lw=1.5, label=f"{run.label(name)} ({r['op']})")
        ax.fill_between(s, lo, hi, color=c, alpha=0.12)
        # unbounded above (relu): units die, never saturate; bounded: they saturate
        what = "dead" if _dies(r["op"]) else "saturated"
        frac = r[what]
        ax2.plot(s, np.asarray(frac) * 100, color=c, lw=1.5,
                 label=f"{run.label(name)} ({what})")
    ax.set_title("Activation median and 5–95% range per layer")
    ax2.set_title("Saturated (sigmoid/tanh) or dead (ReLU) units")
    ax2.set_ylabel("%")
    ax2.set_ylim(-2, 102)
    for a in (ax, ax2):
        a.set_xlabel("step")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    return fig


def plot_decision_boundary(model: Any, X: Any, y: Any, resolution: int = 200) -> Any:
    """The model's predicted class over the plane of a 2-feature data set, with the points."""
    from ..autograd import no_grad
    from ..tensor import Tensor

    X, y = np.asarray(X), np.asarray(y).reshape(len(X), -1)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary: needs 2 input features, got X of shape "
                         f"{X.shape}")
    pad = 0.1 * (X.max(axis=0) - X.min(axis=0)) + 1e-9
    lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], resolution),
                         np.linspace(lo[1], hi[1], resolution))
    dtype = next(iter(p.dtype for p in model.parameters()), np.float32)
    grid = np.c_[xx.ravel(), yy.ravel()].astype(dtype)
    with no_grad():
        out = np.asarray(model(Tensor(grid))._data, dtype=float)
    labels = y.argmax(axis=1) if y.shape[1] > 1 else y[:, 0]
    fig, (ax,) = _figure(1, 5.5, 4.8)
    if out.ndim == 2 and out.shape[1] > 1:
        cls = out.argmax(axis=1).reshape(xx.shape)
        k = out.shape[1]
        from matplotlib.colors import ListedColormap

        cmap = ListedColormap((COLORS * (k // len(COLORS) + 1))[:k])
        ax.contourf(xx, yy, cls, levels=np.arange(k + 1) - 0.5, cmap=cmap, alpha=0.3)
        ax.scatter(X[:, 0], X[:, 1], c=labels, cmap=cmap, vmin=-0.5, vmax=k - 0.5,
                   edgecolors="k", linewidths=0.5, s=25)
    else:
        z = out.reshape(xx.shape)
        if not (z.min() >= 0 and z.max() <= 1):  # logits (or a ±1 regression): squash
            z = 0.5 * (1 + np.tanh(0.5 * z))  # σ(z), which never overflows
        cs = ax.contourf(xx, yy, z, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.55)
        ax.contour(xx, yy, z, levels=[0.5], colors="k", linewidths=2)
        fig.colorbar(cs, ax=ax, label="P(class 1)")
        ax.scatter(X[:, 0], X[:, 1], c=labels, cmap="RdBu_r", vmin=0, vmax=1, edgecolors="w",
                   linewidths=0.6, s=28)
    ax.set_title("Decision boundary")
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    return fig


def _require_monitor(run: Run, fn: str) -> None:
    if not run.params:
        raise ValueError(f"{fn}: no per-layer records. Fix: train with "
                         "callbacks=[glassgrad.diagnose.Monitor()] (or use one by hand).")


def save_figure(fig: Any, path: str | os.PathLike) -> str:
    """Write ``fig`` as a PNG, atomically (temp file + rename)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return write_atomic(path, buf.getvalue())


def save_all(history: Any, model: Any = None, X: Any = None, y: Any = None,
             out_dir: str | os.PathLike = "plots") -> list[str]:
    """Every plot that the run supports, as PNG files in ``out_dir``; returns their paths.

    loss.png always; grad_norms.png, activations.png and activation_stats.png when a
    Monitor recorded the run; decision_boundary.png for a model on 2-feature data.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    run = _run(history)
    figs = {"loss": lambda: plot_loss(run)}
    if run.params:
        figs["grad_norms"] = lambda: plot_grad_norms(run)
    if run.acts:
        figs["activations"] = lambda: plot_activation_histograms(run)
        figs["activation_stats"] = lambda: plot_activation_stats(run)
    if (model is not None and X is not None and y is not None and np.ndim(X) == 2
            and np.shape(X)[1] == 2):
        figs["decision_boundary"] = lambda: plot_decision_boundary(model, X, y)
    return [save_figure(make(), os.path.join(out_dir, f"{name}.png"))
            for name, make in figs.items()]

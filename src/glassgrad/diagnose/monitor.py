"""``Monitor``: per-layer numbers recorded while a network trains.

Per parameter layer and recorded step: gradient norm, weight norm, update-to-weight ratio
‖ΔW‖/‖W‖ and non-finite counts. Per activation (outputs of the ``sigmoid``, ``tanh`` and
``relu`` ops, seen through the engine's forward hook): mean, standard deviation, the fraction
of saturated values (sigmoid < 0.01 or > 0.99, |tanh| > 0.99: the local derivative is below
4% of its peak there), the fraction in the lower tail alone (``low``: sigmoid < 0.01,
tanh < −0.99, ReLU = 0; the 2010 paper's "saturated at 0"), the 5%, 50% and 95% quantiles
and of dead ReLU units (a unit that is 0 for every example of the batch), plus histograms of
the first and the last recorded batch.

``snapshot_steps`` names steps (0 = the first, before any update) at which every hidden
layer's activations and back-propagated gradients ∂L/∂z (z: the layer's input to its
activation) are kept as histograms on shared bins, as the figures of Glorot & Bengio (2010)
show them; ``data["snapshots"]`` lists them.

The hook is attached only while a recorded step's forward pass runs, so a step that is not
recorded (``every``) and a run without a Monitor cost nothing.

Everything is stored in one JSON-friendly dict, ``monitor.data``, which ``fit`` keeps in
``history.extra["monitor"]``; ``rules`` and ``plots`` read it, ``to_csv``/``to_json`` export it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..autograd import STATE, attach, detach
from ..fileio import write_atomic
from ..ops import OPS
from ..tensor import Tensor

# The ops whose entry gives an output range (``activation_range``): sigmoid, tanh, relu.
ACTIVATION_OPS = tuple(name for name, op in OPS.items() if op.activation_range)
# Within 1 − SATURATION of either end of a bounded range (sigmoid outside [0.01, 0.99],
# |tanh| > 0.99) the derivative is below 4% of its peak.
SATURATION = 0.99
HIST_BINS = 30
QUANTILES = (0.05, 0.5, 0.95)  # recorded as "p5", "p50", "p95"


def named_parameters(model: Any) -> list[tuple[str, Tensor]]:
    """(name, tensor) pairs of a Module, a dict of Tensors or a list of Tensors."""
    if hasattr(model, "named_parameters"):
        return list(model.named_parameters())
    if isinstance(model, dict):
        return list(model.items())
    return [(f"p{i}", p) for i, p in enumerate(model)]


def layer_of(name: str) -> str:
    """The layer a parameter belongs to: "layers.1.weight" -> "layers.1"."""
    return name.rpartition(".")[0] or name


def layer_label(name: str, order: Sequence[str]) -> str:
    """How warnings and plots name a layer: numbered from 1 = the first Linear (nearest the
    input) in ``order`` (the model's parameter layers), as ``explain`` numbers W¹, W², with
    the module's own name in brackets to find it: ``layer_label("6", ["0", "2", "4", "6"])``
    is ``"layer 4 ('6')"``. A name not in ``order`` keeps its own: ``"layer 'relu0'"``."""
    order = list(order)
    if name in order:
        return f"layer {order.index(name) + 1} ('{name}')"
    return f"layer '{name}'"


def _sqnorm(a: np.ndarray) -> float:
    v = a.reshape(-1)
    s = float(np.dot(v, v))
    if not math.isfinite(s) and np.isfinite(v).all():  # squares overflowed float32
        v = v.astype(np.float64)
        s = float(np.dot(v, v))
    return s


def _nonfinite(a: np.ndarray) -> int:
    return 0 if np.isfinite(a).all() else int(a.size - np.count_nonzero(np.isfinite(a)))


class Monitor:
    """Record what each layer does during training; a ``fit`` callback or used by hand.

    As a callback: ``gg.fit(model, X, y, ..., callbacks=[Monitor()])``. By hand::

        monitor = Monitor(model)
        with monitor.observe_activations():
            loss = loss_fn(model(X), y)
        loss.backward()
        monitor.after_backward(loss=loss)   # gradient and weight norms
        optimizer.step()
        monitor.after_step()                # update-to-weight ratios

    ``every`` records one step in ``every``; the others cost next to nothing (the loss is
    still logged each step). A recorded step costs about 100 µs of Python and NumPy on a
    small MLP (a third of a 64-128-10 digits step), so the default of 10 keeps monitoring
    under 10% of the training time; ``every=1`` sees every step. ``activations=False``
    skips the forward hook. ``snapshot_steps`` (see the module docstring) are taken
    whatever ``every`` is.
    """

    def __init__(self, model: Any = None, every: int = 10, activations: bool = True,
                 snapshot_steps: Any = ()) -> None:
        if every < 1:
            raise ValueError(f"Monitor(every={every}): must record at least every step >= 1")
        snaps = sorted({int(s) for s in snapshot_steps})
        if snaps and snaps[0] < 0:
            raise ValueError(f"Monitor(snapshot_steps={list(snapshot_steps)}): steps count "
                             f"from 0 (the first step); got {snaps[0]}.")
        self.model = model
        self.every = every
        self.activations = activations
        self.data: dict[str, Any] = {
            "every": every,
            "params": {},  # layer -> {"step", "grad_norm", "weight_norm", "update_ratio", ...}
            "activations": {},  # layer -> {"op", "step", "mean", "std", "saturated", ...}
            "hist_first": {},  # layer -> {"op", "step", "edges", "counts"}
            "hist_last": {},
            "snapshots": [],  # {"step", "layers": {layer: {"op", "act", "grad", ...}}}
            "loss": {"step": [], "value": []},
            "epochs": [],  # the fit logs of every epoch: {"epoch", "loss", "val_loss", ...}
            "lr": None,
        }
        self.step = 0  # steps seen (recorded or not)
        self._ids: dict[int, str] = {}  # id(parameter) -> layer, to name activations
        # (layer, its parameters, buffers holding their values before the update)
        self._groups: list[tuple[str, list[Tensor], list[np.ndarray]]] = []
        self._last_acts: dict[str, tuple[str, np.ndarray]] = {}
        self._act_index = 0
        self._recording = False
        self._last_step: dict[str, int] = {}
        self._rows: dict[str, int] = {}
        self._seen: set[str] = set()  # activation layers already recorded in this pass
        self._ones_cache: dict[tuple, np.ndarray] = {}
        self._output_layer: str | None = None
        self._output_ids: set[int] = set()
        self._snapshot_steps = set(snaps)
        self._snap: dict[str, tuple[str, Tensor, Tensor]] = {}  # layer -> (op, out, z)

    # ------------------------------------------------------------------ by hand
    def recording(self) -> bool:
        """Whether the current step is one that ``every`` records."""
        return self.step % self.every == 0

    def _watching(self) -> bool:
        """Whether this step's forward pass needs the hook (statistics or a snapshot)."""
        return self.activations and (self.recording() or self.step in self._snapshot_steps)

    @contextlib.contextmanager
    def observe_activations(self, model: Any = None) -> Iterator[Monitor]:
        """Record the activations of the forward pass run inside this block."""
        self._index_params(model)
        if not self._watching():
            yield self
            return
        self._attach()
        try:
            yield self
        finally:
            self._detach()

    def after_backward(self, model: Any = None, loss: Any = None) -> None:
        """Record gradient and weight norms (call after ``backward()``, before the update)."""
        self._index_params(model)
        if loss is not None:
            self._log_loss(loss)
        if self._snap:
            self._take_snapshot()
        if not self.recording():
            return
        self._recording = True
        params = self.data["params"]
        for layer, ps, before in self._groups:
            g2 = w2 = 0.0
            bad_g = bad_w = 0
            for p, b in zip(ps, before):
                w = p._data
                s = _sqnorm(w)
                w2 += s
                if not math.isfinite(s):
                    bad_w += _nonfinite(w)
                if p.grad is not None:
                    s = _sqnorm(p.grad._data)
                    g2 += s
                    if not math.isfinite(s):
                        bad_g += _nonfinite(p.grad._data)
                if b.shape == w.shape and b.dtype == w.dtype:  # reuse the buffer
                    np.copyto(b, w)
            rec = params.get(layer)
            if rec is None:
                rec = params[layer] = {
                    "step": [], "grad_norm": [], "weight_norm": [], "update_ratio": [],
                    "nonfinite_grad": [], "nonfinite_weight": [],
                    "size": sum(p.numel() for p in ps),
                }
            rec["step"].append(self.step)
            rec["grad_norm"].append(math.sqrt(g2))
            rec["weight_norm"].append(math.sqrt(w2))
            rec["update_ratio"].append(math.nan)  # filled in by after_step()
            rec["nonfinite_grad"].append(bad_g)
            rec["nonfinite_weight"].append(bad_w)
            for i, (p, b) in enumerate(zip(ps, before)):
                if b.shape != p._data.shape or b.dtype != p._data.dtype:
                    before[i] = p._data.copy()

    def after_step(self, model: Any = None) -> None:
        """Record ‖ΔW‖/‖W‖ per layer (call after ``optimizer.step()``); ends the step."""
        if self._recording:
            params = self.data["params"]
            with np.errstate(all="ignore"):  # inf - inf in a diverged run is NaN, not an error
                self._update_ratios(params)
        self._recording = False
        self.step += 1

    def _update_ratios(self, params: dict) -> None:
        for layer, ps, before in self._groups:
            d2 = 0.0
            for p, b in zip(ps, before):
                np.subtract(p._data, b, out=b)  # the buffer holds ΔW now
                d2 += _sqnorm(b)
            rec = params[layer]
            w = rec["weight_norm"][-1]
            rec["update_ratio"][-1] = math.sqrt(d2) / w if w > 0 else math.inf

    def end_epoch(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Store an epoch's summary (train/validation loss and metrics) for the rules."""
        row = {"epoch": int(epoch)}
        row.update({k: float(v) for k, v in (logs or {}).items()})
        self.data["epochs"].append(row)

    def finish(self) -> dict[str, Any]:
        """Compute the last-batch activation histograms; returns ``data``."""
        for layer, (op, a) in self._last_acts.items():
            self.data["hist_last"][layer] = _histogram(op, a, self._last_step.get(layer, 0))
        return self.data

    # ------------------------------------------------------------------ fit callback
    def on_fit_start(self, trainer: Any) -> None:
        self.model = trainer.model
        self._index_params(trainer.model)
        opt = getattr(trainer, "optimizer", None)
        groups = getattr(opt, "param_groups", None)
        if groups:
            self.data["lr"] = groups[0].get("lr")
        extra = getattr(trainer.history, "extra", None)
        if extra is not None:
            extra["monitor"] = self.data

    def on_batch_start(self, trainer: Any, step: int) -> None:
        if self._watching():
            self._attach()

    def on_after_backward(self, trainer: Any, step: int) -> None:
        self._detach()
        self.after_backward(trainer.model)

    def on_batch_end(self, trainer: Any, step: int, loss: Any) -> None:
        self._detach()
        self._log_loss(loss)
        self.after_step(trainer.model)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        self.end_epoch(epoch, logs)

    def on_fit_end(self, trainer: Any) -> None:
        self.close()

    def close(self) -> None:
        """Detach from the engine (if a step was cut short) and finish the histograms."""
        self._detach()
        self._snap = {}  # a snapshot whose backward pass never ran
        self.finish()

    # ------------------------------------------------------------------ engine hook
    def on_forward(self, op: Any, inputs: tuple, out: Tensor) -> None:
        out_range = getattr(op, "activation_range", None)
        if out_range is None:
            if op.name in ("linear", "matmul"):
                for t in inputs:
                    if id(t) in self._output_ids:
                        # The output layer ran: the model's forward is over. Detach now, so
                        # the loss's ops are not watched and a step that fit() aborts (a
                        # NaN loss) cannot leave the hook attached.
                        self._detach()
                        return
            return
        self._act_index += 1
        layer = self._source_layer(inputs[0]) or f"{op.name}{self._act_index}"
        # Hidden layers only: the output layer's activation (and a relu or sigmoid inside the
        # loss, which also reads the last layer's output) is judged by the loss, not here.
        if layer == self._output_layer or layer in self._seen:
            return
        self._seen.add(layer)
        if self.step in self._snapshot_steps:
            z = inputs[0]
            if z._requires_grad:
                z.retain_grad()  # its .grad is ∂L/∂z after backward(): the paper's gradient
            self._snap[layer] = (op.name, out, z)
        if self.recording():
            self._record_activation(layer, op.name, out._data)

    def _record_activation(self, layer: str, op: str, a: np.ndarray) -> None:
        rec = self.data["activations"].setdefault(layer, {
            "op": op, "step": [], "mean": [], "std": [], "saturated": [], "dead": [],
            "low": [], "p5": [], "p50": [], "p95": [], "nonfinite": [],
        })
        n = a.size
        v = a.reshape(-1)
        mean = float(np.dot(v, self._ones(n, v.dtype))) / n  # BLAS: no overflow warning
        var = max(float(np.dot(v, v)) / n - mean * mean, 0.0)
        rec["step"].append(self.step)
        rec["mean"].append(mean)
        rec["std"].append(math.sqrt(var))
        # quantiles, not mean ± std: a ReLU band must not dip below 0 (one partition: cheap)
        ks = [min(n - 1, int(q * n)) for q in QUANTILES]
        part = np.partition(v, ks)
        for key, k in zip(("p5", "p50", "p95"), ks):
            rec[key].append(float(part[k]))
        rec["low"].append(float(np.count_nonzero(v < _LOW_TAIL[op]) / n if op != "relu"
                                else 1.0 - np.count_nonzero(v) / n))
        if op == "relu":
            rec["saturated"].append(0.0)
            units = a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1)
            rec["dead"].append(float(np.count_nonzero(units.max(axis=0) <= 0))
                               / units.shape[1])
        else:
            c = 0.0 if op == "tanh" else 0.5  # the centre of the range
            half = SATURATION - c  # |a - c| above this is in a flat tail
            far = np.abs(v - c) if c else np.abs(v)
            rec["saturated"].append(np.count_nonzero(far > half) / n)
            rec["dead"].append(0.0)
        rec["nonfinite"].append(0 if math.isfinite(var + mean) else _nonfinite(a))
        if layer not in self.data["hist_first"]:
            self.data["hist_first"][layer] = _histogram(op, a, self.step)
        rows = a.shape[0] if a.ndim else 1
        if rows >= self._rows.get(layer, 0):  # skip an epoch's short last batch
            self._rows[layer] = rows
            self._last_acts[layer] = (op, a)
            self._last_step[layer] = self.step

    def _take_snapshot(self) -> None:
        """Histograms of this step's activations and ∂L/∂z, on bins shared by all layers
        (so the layers' shapes can be compared, as in the paper's figures)."""
        acts = {k: out._data for k, (_, out, _) in self._snap.items()}
        grads = {k: z.grad._data for k, (_, _, z) in self._snap.items() if z.grad is not None}
        g_max = max((float(np.abs(g).max()) for g in grads.values() if g.size), default=0.0)
        g_max = g_max if math.isfinite(g_max) and g_max > 0 else 1.0
        relu_hi = max((float(np.nanmax(a)) for k, a in acts.items()
                       if self._snap[k][0] == "relu" and a.size), default=0.0)
        relu_hi = relu_hi if math.isfinite(relu_hi) and relu_hi > 0 else 1.0
        layers = {}
        for layer, (op, _, z) in self._snap.items():
            a = acts[layer]
            rec = {"op": op, "act": _histogram(op, a, self.step, hi=relu_hi),
                   "act_std": float(np.std(a, dtype=np.float64))}
            if layer in grads:
                g = grads[layer]
                counts, edges = np.histogram(g[np.isfinite(g)], bins=HIST_BINS,
                                             range=(-g_max, g_max))
                rec["grad"] = {"edges": edges.tolist(), "counts": counts.tolist()}
                rec["grad_std"] = float(np.std(g, dtype=np.float64))
            z.grad = None  # let go of the batch's arrays
            layers[layer] = rec
        self.data["snapshots"].append({"step": self.step, "layers": layers})
        self._snap = {}

    # ------------------------------------------------------------------ export
    def to_json(self, path: str | os.PathLike) -> None:
        """Write ``data`` as JSON (atomically)."""
        self.finish()
        write_atomic(path, json.dumps(_jsonable(self.data), indent=1))

    def to_csv(self, path: str | os.PathLike) -> None:
        """One row per (step, layer): the parameter and activation columns side by side."""
        self.finish()
        write_atomic(path, rows_to_csv(self.data))

    # ------------------------------------------------------------------ helpers
    def _index_params(self, model: Any) -> Any:
        model = model if model is not None else self.model
        if model is None:
            raise ValueError(
                "Monitor: no model to watch. Fix: pass it, Monitor(model), or call "
                "after_backward(model)."
            )
        if self.model is None:
            self.model = model
        if not self._ids:
            named = named_parameters(model)
            self._ids = {id(p): layer_of(n) for n, p in named}
            self._output_layer = next(reversed(self._ids.values()), None)
            self._output_ids = {i for i, layer in self._ids.items()
                                if layer == self._output_layer}
            groups: dict[str, list[Tensor]] = {}
            for name, p in named:
                groups.setdefault(layer_of(name), []).append(p)
            self._groups = [(layer, ps, [p._data.copy() for p in ps])
                            for layer, ps in groups.items()]
        return model

    def _source_layer(self, x: Tensor) -> str | None:
        """The layer whose parameters made ``x`` (a linear, or matmul + bias), if any."""
        frontier = [x]
        for _ in range(2):  # linear(x, W, b) is one op; x @ W + b is two
            nxt = []
            for t in frontier:
                for p in t._parents or ():
                    layer = self._ids.get(id(p))
                    if layer is not None:
                        return layer
                    nxt.append(p)
            frontier = nxt
        return None

    def _ones(self, n: int, dtype: Any) -> np.ndarray:
        key = (n, dtype)
        ones = self._ones_cache.get(key)
        if ones is None:
            ones = self._ones_cache[key] = np.ones(n, dtype)
        return ones

    def _log_loss(self, loss: Any) -> None:
        value = loss.item() if hasattr(loss, "item") else float(loss)
        self.data["loss"]["step"].append(self.step)
        self.data["loss"]["value"].append(float(value))

    def _attach(self) -> None:
        # autograd.attach rather than hook(): a recorded step spans several callbacks.
        self._act_index = 0
        self._seen = set()
        if self not in STATE.hooks:
            attach(self)

    def _detach(self) -> None:
        detach(self)


_LOW_TAIL = {"sigmoid": 1.0 - SATURATION, "tanh": -SATURATION}


def _histogram(op: str, a: np.ndarray, step: int, hi: float | None = None) -> dict[str, Any]:
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    if op == "sigmoid":
        lo, hi = 0.0, 1.0
    elif op == "tanh":
        lo, hi = -1.0, 1.0
    elif hi is None:
        lo, hi = 0.0, float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    else:  # a range shared with other layers
        lo = 0.0
    counts, edges = np.histogram(finite, bins=HIST_BINS, range=(lo, hi))
    return {"op": op, "step": step, "edges": edges.tolist(), "counts": counts.tolist()}


def rows_to_csv(data: dict[str, Any]) -> str:
    """The monitor's records as CSV text: step, layer, kind, then every metric."""
    import io

    cols = ["grad_norm", "weight_norm", "update_ratio", "nonfinite_grad", "nonfinite_weight",
            "op", "mean", "std", "saturated", "dead", "low", "p5", "p50", "p95", "nonfinite"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["step", "layer", "kind", *cols])
    for kind, table in (("param", data["params"]), ("activation", data["activations"])):
        for layer, rec in table.items():
            for i, step in enumerate(rec["step"]):
                row = [step, layer, kind]
                for c in cols:
                    v = rec.get(c)
                    row.append(v if isinstance(v, str) else ("" if v is None else v[i]))
                w.writerow(row)
    return buf.getvalue()


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, np.generic):
        return x.item()
    return x



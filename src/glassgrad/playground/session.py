"""One browser tab's state: its data, its model, its training loop and what the page is sent.

Training is the library's own: ``nn.MLP`` in float64, the loss of ``nn.functional``, plain
``optim.SGD``, a ``diagnose.Monitor`` watching each step. Every change happens under the
session's lock, and a new set-up is built completely before it replaces the old one, so bad
input or a failed build leaves the running session as it was.
"""

from __future__ import annotations

import base64
import math
import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np

from .. import nn, optim
from ..autograd import no_grad
from ..diagnose import Monitor, Run, Thresholds, diagnose
from ..explain import NetTrace, trace_net
from ..nn import functional as nnf
from ..tensor import Tensor
from . import data as pdata
from .config import FEATURES, Config

GRID = 50  # the heat maps' resolution: GRID × GRID points, one batched forward pass
MAX_HISTORY = 2000  # loss-curve points kept; beyond, every other one is dropped
MONITOR_WINDOW = 20000  # steps one Monitor records before a fresh one starts (bounded memory)
# The rules' default calls gradients vanishing at a 100× drop from the last layer to the
# first, measured on nets hundreds of units wide. The playground's layers have at most 8
# units, so ‖Wᵀδ‖ shrinks less per layer: 6 sigmoid layers with N(0, 1) weights (which
# stall at loss ln 2) measure 15–200× over init seeds 0–7 at 400 steps, while tanh/xavier and
# relu/kaiming at the same depth, and the default set-up, stay at or below 3×. One order of
# magnitude separates them.
THRESHOLDS = Thresholds(vanishing_ratio=0.1)
_LOSSES = {"bce": nnf.binary_cross_entropy, "mse": nnf.mse_loss,
           "half-sse": nnf.half_sse_loss}
_ACTS = {"linear": "identity", "tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu"}


class Built:
    """A model, its data and optimizer, made from one Config (built before it is used)."""

    def __init__(self, cfg: Config, points: pdata.Points) -> None:
        if points.problem != cfg.problem and cfg.data == "csv":
            cfg = replace(cfg, problem=points.problem)
        self.cfg, self.points = cfg, points
        self.split = pdata.split(points, cfg)
        self.X_train = pdata.features(self.split.X_train, cfg.features)
        self.X_test = pdata.features(self.split.X_test, cfg.features)
        self.y_train = self.split.y_train[:, None]
        self.y_test = self.split.y_test[:, None]
        out = None if cfg.output_activation == "linear" else cfg.output_activation
        self.model = nn.MLP(cfg.sizes, activation=_ACTS[cfg.activation], output_activation=out,
                            init=cfg.init_spec, seed=cfg.init_seed, dtype=np.float64)
        self.linears = [m for m in self.model if isinstance(m, nn.Linear)]
        self.opt = optim.SGD(self.model.parameters(), lr=cfg.lr)
        self.monitor = Monitor(self.model, every=1)
        self.rng = np.random.default_rng(cfg.seed + 2)
        self.order = self._order()

    def _order(self) -> np.ndarray:
        n = len(self.X_train)
        return self.rng.permutation(n) if self.cfg.shuffle else np.arange(n)


class Session:
    """A tab's playground: ``apply`` a Config, ``step``, ``snapshot`` for the page."""

    def __init__(self, cfg: Config | None = None) -> None:
        self.lock = threading.RLock()
        self.version = 0  # bumped by every change the page should redraw
        self.stopped: str | None = None  # why training stopped (divergence), for the page
        self.speed = 100.0  # training steps per second while playing (0: as fast as it can)
        self._runner: threading.Thread | None = None
        self._halt = threading.Event()
        self._points: pdata.Points | None = None
        self._csv: pdata.Points | None = None
        self._trace: tuple[int, NetTrace] | None = None
        self._findings: tuple[int, list[dict]] = (-1, [])
        self.apply(cfg or Config())

    # ------------------------------------------------------------------ set-up
    def apply(self, cfg: Config, points: pdata.Points | None = None) -> None:
        """Use ``cfg`` (and ``points``, else generated from it): new data, weights, history.

        Built first, swapped in only when everything succeeded.
        """
        if points is None:
            if cfg.data == "csv":
                if self._csv is None:
                    raise ValueError("data: no CSV file uploaded in this tab yet. Fix: upload "
                                     "one (three columns: x1,x2,label) or pick a data set.")
                points = self._csv
            else:
                points = pdata.generate(cfg)
        built = Built(cfg, points)
        with self.lock:
            self.b = built
            if points.name == "csv":
                self._csv = points
            self._points = points
            self._restart()

    def load_csv(self, body: bytes, filename: str) -> None:
        """Train on the user's CSV (two features and a label), keeping the rest of the set-up."""
        points = pdata.from_csv(body, filename)
        cfg = replace(self.cfg, data="csv", problem=points.problem, loss="auto", output="auto")
        self.apply(cfg, points)

    def reset(self) -> None:
        """Fresh weights (from the same init seed), same data; the step counter restarts."""
        self.apply(self.cfg, self._points)

    def regenerate(self) -> None:
        """A new draw of the data set (the next seed); for a CSV, a new train/test split."""
        cfg = replace(self.cfg, seed=(self.cfg.seed + 1) % (2**31 - 1))
        self.apply(cfg, self._points if self.cfg.data == "csv" else None)

    def _restart(self) -> None:
        self.steps = 0
        self.epoch = 0
        self.pos = 0
        self.stopped = None
        self.history: dict[str, list[float]] = {"step": [], "train": [], "test": []}
        self._trace = None
        self._findings = (-1, [])
        self._record()
        self.version += 1

    @property
    def cfg(self) -> Config:
        return self.b.cfg

    # ------------------------------------------------------------------ training
    def next_batch(self) -> np.ndarray:
        """Indices (into the training set) of the batch the next step trains on."""
        bs = min(self.cfg.batch, len(self.b.X_train))
        return self.b.order[self.pos:self.pos + bs]

    def loss_fn(self, out: Tensor, y: np.ndarray) -> Tensor:
        return _LOSSES[self.cfg.loss_name](out, y)

    def penalty(self) -> Tensor | None:
        """λ·R(W) over the weights (biases are not regularized, as in TF Playground)."""
        cfg = self.cfg
        if cfg.reg == "none" or cfg.reg_rate == 0:
            return None
        weights = [m.weight for m in self.b.linears]
        fn = nnf.l1_penalty if cfg.reg == "l1" else nnf.l2_penalty
        return fn(weights) * cfg.reg_rate

    def step(self) -> bool:
        """One SGD step on the next batch; False (and ``stopped`` says why) if it diverged."""
        # Overflow is an outcome here, not an error: the step checks for it and says so.
        with self.lock, np.errstate(over="ignore", invalid="ignore"):
            return self._step()

    def _step(self) -> bool:
        if self.stopped:
            return False
        b, idx = self.b, self.next_batch()
        params = list(b.model.parameters())
        before = [p._data.copy() for p in params]
        with b.monitor.observe_activations(b.model):
            out = b.model(Tensor(b.X_train[idx]))
        loss = self.loss_fn(out, b.y_train[idx])
        reg = self.penalty()
        value = loss.item()
        if not math.isfinite(value):
            return self._diverged(f"the loss became {value}")
        b.opt.zero_grad()
        (loss + reg if reg is not None else loss).backward()
        b.monitor.after_backward(b.model, loss=value)
        b.opt.step()
        if not all(np.isfinite(p._data).all() for p in params):
            for p, old in zip(params, before):
                p._data[...] = old  # keep the last finite weights on screen
            return self._diverged("the update made a weight infinite or NaN")
        b.monitor.after_step(b.model)
        self.steps += 1
        self.pos += len(idx)
        if self.pos >= len(b.X_train):
            self._end_epoch()
        if b.monitor.step >= MONITOR_WINDOW:
            b.monitor = Monitor(b.model, every=1)
        self._trace = None
        self.version += 1
        return True

    def _end_epoch(self) -> None:
        b = self.b
        self.epoch += 1
        self.pos = 0
        b.order = b._order()
        losses = self._record()
        b.monitor.end_epoch(self.epoch, {"loss": losses[0], "val_loss": losses[1]})

    def _diverged(self, what: str) -> bool:
        biggest = max(float(np.abs(p._data).max()) for p in self.b.model.parameters())
        lr = self.cfg.lr
        self.stopped = (
            f"Training stopped at step {self.steps + 1}: {what}. Why: the learning rate "
            f"{lr:g} is too large for this network and data, so each update overshoots and "
            f"the weights grow until they overflow (largest |w| now {biggest:.3g}). Fix: lower "
            f"the learning rate (try {lr / 10:g}) and press reset.")
        self.pause()
        self.version += 1
        return False

    def evaluate(self) -> dict[str, float]:
        """Loss (and accuracy, for classification) on the training and the test set."""
        b = self.b
        res = {}
        with no_grad():
            for part, X, y in (("train", b.X_train, b.y_train), ("test", b.X_test, b.y_test)):
                out = b.model(Tensor(X))
                res[f"{part}_loss"] = float(self.loss_fn(out, y).item())
                if self.cfg.problem == "classification":
                    pred = out.numpy() > 0.5
                    res[f"{part}_acc"] = float(np.mean(pred == (y > 0.5)))
        return res

    def _record(self) -> tuple[float, float]:
        ev = self.evaluate()
        h = self.history
        h["step"].append(self.steps)
        h["train"].append(ev["train_loss"])
        h["test"].append(ev["test_loss"])
        if len(h["step"]) > MAX_HISTORY:
            for k in h:
                h[k] = h[k][::2]
        return ev["train_loss"], ev["test_loss"]

    # ------------------------------------------------------------------ play / pause
    @property
    def playing(self) -> bool:
        return self._runner is not None and self._runner.is_alive() and not self._halt.is_set()

    def play(self) -> None:
        """Train in a background thread (off the request path) until ``pause``."""
        with self.lock:
            if self.playing or self.stopped:
                return
            self._halt = threading.Event()
            self._runner = threading.Thread(target=self._run, args=(self._halt,), daemon=True,
                                            name="glassgrad-playground-train")
            self._runner.start()
            self.version += 1

    def pause(self) -> None:
        self._halt.set()
        self.version += 1

    def close(self) -> None:
        """Stop training and wait for the thread (the tab went away)."""
        self.pause()
        runner = self._runner
        if runner is not None and runner is not threading.current_thread():
            runner.join(timeout=5)

    def _run(self, halt: threading.Event) -> None:
        next_at = time.perf_counter()
        while not halt.is_set():
            if not self.step():
                break
            if self.speed > 0:
                next_at += 1.0 / self.speed
                delay = next_at - time.perf_counter()
                if delay > 0:
                    halt.wait(delay)
                else:
                    next_at = time.perf_counter()  # behind: do not try to catch up in a burst
            else:
                time.sleep(0)  # let the server's threads have the interpreter

    # ------------------------------------------------------------------ what the page sees
    def trace(self) -> NetTrace:
        """``gg.explain.trace_net`` of the next step (current weights, next batch), cached."""
        with self.lock:
            if self._trace is None or self._trace[0] != self.version:
                idx = self.next_batch()
                tr = trace_net(self.b.model, self.b.X_train[idx], self.b.y_train[idx],
                               loss=self.cfg.loss_name, lr=self.cfg.lr, update=False,
                               check=False)
                self._trace = (self.version, tr)
            return self._trace[1]

    def reg_grads(self) -> list[np.ndarray]:
        """λ·∂R/∂W per layer, through the engine (zeros without regularization)."""
        with self.lock:
            ws = [Tensor(m.weight.numpy().copy(), requires_grad=True) for m in self.b.linears]
            cfg = self.cfg
            if cfg.reg == "none" or cfg.reg_rate == 0:
                return [np.zeros_like(w.numpy()) for w in ws]
            fn = nnf.l1_penalty if cfg.reg == "l1" else nnf.l2_penalty
            (fn(ws) * cfg.reg_rate).backward()
            return [w.grad.numpy() for w in ws]

    def data_message(self) -> dict[str, Any]:
        """The points and the input features' pictures: sent when the data changes."""
        b = self.b
        grid = self._grid_points()
        feats = pdata.features(grid, self.cfg.features)
        every = pdata.features(grid, FEATURES)
        return {
            "type": "data", "problem": self.cfg.problem, "domain": b.points.domain,
            "train": {"x": b.split.X_train.round(4).tolist(), "y": b.split.y_train.tolist()},
            "test": {"x": b.split.X_test.round(4).tolist(), "y": b.split.y_test.tolist()},
            "features": [{"name": f, "label": pdata.FEATURE_LABELS[f],
                          **_picture(feats[:, k], 0.0)} for k, f in enumerate(self.cfg.features)],
            # every feature, chosen or not: the thumbnail next to its toggle
            "feature_pictures": {f: _picture(every[:, k], 0.0)
                                 for k, f in enumerate(FEATURES)},
            "grid": GRID,
        }

    def snapshot(self) -> dict[str, Any]:
        """Everything the page redraws: losses, weights, every unit over the plane, diagnosis."""
        with self.lock, np.errstate(over="ignore", invalid="ignore"):
            b = self.b
            ev = self.evaluate()
            return {
                "type": "state", "version": self.version, "step": self.steps,
                "epoch": self.epoch, "playing": self.playing, "stopped": self.stopped,
                **ev, "history": self.history,
                "weights": [{"W": m.weight.numpy().tolist(),
                             "b": None if m.bias is None else m.bias.numpy().tolist()}
                            for m in b.linears],
                "units": self._unit_pictures(),
                "diagnosis": self._diagnosis(),
                "batch": self.next_batch().tolist(),
            }

    def _grid_points(self) -> np.ndarray:
        x0, x1, y0, y1 = self.b.points.domain
        xs = np.linspace(x0, x1, GRID)
        ys = np.linspace(y1, y0, GRID)  # row 0 is the top of the picture
        gx, gy = np.meshgrid(xs, ys)
        return np.stack([gx.ravel(), gy.ravel()], 1)

    def unit_outputs(self, X: np.ndarray) -> list[np.ndarray]:
        """Each layer's outputs a (rows of X, units), from one batched forward pass."""
        mods = list(self.b.model)
        outs = []
        a = Tensor(X)
        with no_grad():
            for k, m in enumerate(mods):
                a = m(a)
                if k + 1 == len(mods) or isinstance(mods[k + 1], nn.Linear):
                    outs.append(a.numpy())
        return outs

    def _unit_pictures(self) -> list[list[dict]]:
        outs = self.unit_outputs(pdata.features(self._grid_points(), self.cfg.features))
        acts = [self.cfg.activation] * (len(outs) - 1) + [self.cfg.output_activation]
        pics = []
        for a, act in zip(outs, acts):
            centre = 0.5 if act == "sigmoid" else 0.0
            pics.append([_picture(a[:, j], centre) for j in range(a.shape[1])])
        if self.cfg.problem == "classification":  # the decision boundary is at 0.5
            pics[-1] = [_picture(outs[-1][:, 0], 0.5, 0.5)]
        else:
            pics[-1] = [_picture(outs[-1][:, 0], 0.0,
                                 max(float(np.abs(self.b.points.y).max()), 1e-9))]
        return pics

    def _diagnosis(self) -> dict[str, Any]:
        mon = self.b.monitor.data
        names = [n for n, _ in self.b.model.named_children() if n in mon["params"]]
        layers = []
        for k, name in enumerate(names):
            p, a = mon["params"][name], mon["activations"].get(name)
            layers.append({
                "layer": k + 1, "grad_norm": p["grad_norm"][-1] if p["grad_norm"] else None,
                "op": a["op"] if a else None,
                "saturated": a["saturated"][-1] if a and a["saturated"] else None,
                "dead": a["dead"][-1] if a and a["dead"] else None,
            })
        if self.steps >= 20 and self.steps - self._findings[0] >= 20:
            found = diagnose(Run(self.b.monitor), THRESHOLDS)
            self._findings = (self.steps, [
                {"rule": f.rule, "title": f.title, "evidence": f.evidence, "fix": f.fix}
                for f in found])
        return {"layers": layers, "findings": self._findings[1]}


def _picture(v: np.ndarray, centre: float, half: float | None = None) -> dict[str, Any]:
    """Values as bytes 0..255 (128 = ``centre``), base64: a heat map the page colours."""
    if half is None:
        half = float(np.abs(v - centre).max()) if v.size else 1.0
    half = half if half > 1e-12 and math.isfinite(half) else 1.0
    q = np.clip(np.rint((v - centre) / half * 127.5 + 127.5), 0, 255).astype(np.uint8)
    return {"centre": centre, "half": half, "q": base64.b64encode(q.tobytes()).decode("ascii")}

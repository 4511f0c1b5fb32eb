"""``fit(..., distributed=True)``: the training loop with each step's batch split over ranks.

Before the first step every rank checks that the others run the same fit (model, data,
seed, settings) and takes rank 0's weights. Each step, a rank runs forward and backward on
its part of the global batch (``shard.py``), the gradients and the loss are averaged in one
all-reduce (``reduce.py``), and every rank applies the same update. Once per epoch the
training outputs and the validation outputs (validation is split over the ranks too) are
gathered on rank 0, which computes the epoch's logs and sends them to every rank: all ranks
keep the same history, so early stopping and schedules decide alike.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor
from ..training.fit import NonFiniteLossError, Trainer, _compiled_call
from .comm import (
    _group,
    broadcast_object,
    broadcast_parameters,
    check_same,
    data_digest,
    gather_rows,
)
from .reduce import GradientReducer, Reduced
from .shard import batch_plan, positions, shard_bounds


class DistributedTrainer(Trainer):
    """A ``Trainer`` whose steps are split over the MPI ranks (see the module docstring)."""

    def run(self) -> Any:
        self._prepare()
        return super().run()

    def _prepare(self) -> None:
        """Every check across ranks, then rank 0's weights everywhere: before any step."""
        g = _group()
        self.rank, self.size = g.rank, g.size
        opt = self.optimizer
        check_same("fit(distributed=True)", **self._settings())
        broadcast_parameters(self.model)
        self.reducer = GradientReducer(p for group in opt.param_groups for p in group["params"])
        n, bs = len(self.X), self.batch_size
        # where each rank's rows sit in the epoch's order: to put gathered outputs back in place
        where = [positions(n, bs, r, g.size) for r in range(g.size)]
        self._gather_order = np.concatenate(where)
        self._train_counts = [len(w) for w in where]
        with no_grad():
            out1 = self.model(Tensor._wrap(self.X[:1]))._data
        self._out_tail, self._out_dtype = out1.shape[1:], out1.dtype
        self.history.params["distributed"] = g.size

    def _settings(self) -> dict[str, Any]:
        opt = self.optimizer
        hypers = [{k: v for k, v in group.items() if k != "params"} for group in opt.param_groups]
        return {
            "model": [(name, tuple(p.shape), str(p.dtype))
                      for name, p in self.model.named_parameters()],
            "data_shapes": [self.X.shape, self.y.shape],
            "training_data": data_digest(self.X, self.y),
            "validation_data": data_digest(self.X_val, self.y_val),
            "random_generator_state_(from_seed=)": _short_hash(self.rng.bit_generator.state),
            "optimizer": [type(opt).__name__, repr(hypers)],
            "loss": self.loss_kind, "metrics": sorted(self.metrics),
            "epochs": self.epochs, "batch_size": self.batch_size, "shuffle": self.shuffle,
            "compile": self.compiled.backend if self.compiled is not None else False,
        }

    # ------------------------------------------------------------------ one epoch
    def _epoch(self, epoch: int, hooks: dict) -> dict[str, float]:
        n, bs = len(self.X), self.batch_size
        order = self.rng.permutation(n) if self.shuffle and bs < n else None
        mine = positions(n, bs, self.rank, self.size)
        rows = mine if order is None else order[mine]
        X, y = self.X[rows], self.y[rows]  # this rank's rows, step after step: one gather
        outputs: list[np.ndarray] = []
        total, at = 0.0, 0
        for lo, hi, a, b in batch_plan(n, bs, self.rank, self.size):
            xb, yb = X[at:at + b - a], y[at:at + b - a]
            at += b - a
            loss = self._step(epoch, lo // bs + 1, xb, yb, outputs, hooks)
            total += loss * (hi - lo)
        train_out = self._gather(outputs, self._train_counts) if self.metrics else None
        val_out = self._validation_outputs()
        logs = None
        if self.rank == 0:  # the others' outputs were gathered here
            logs = {"loss": total / n}
            if train_out is not None:
                pred = np.empty_like(train_out)
                pred[self._gather_order] = train_out  # back in the epoch's order
                y_epoch = self.y if order is None else self.y[order]
                logs.update({name: m(pred, y_epoch) for name, m in self.metrics.items()})
            if val_out is not None:
                logs.update(self._scores(val_out, self.y_val, "val_"))
        return broadcast_object(logs)  # rank 0's numbers on every rank, bit for bit

    def _step(self, epoch: int, batch: int, xb: np.ndarray, yb: np.ndarray,
              outputs: list[np.ndarray], hooks: dict) -> float:
        """One step on this rank's part ``xb`` (maybe empty); returns the global loss."""
        self.step = step = self.step + 1
        self.last_batch = (xb, yb)
        for f in hooks["on_batch_start"]:
            f(self, step)
        self.optimizer.zero_grad()
        value = None
        if len(xb):
            if self.compiled is None:
                out = self.model(Tensor._wrap(xb))
                loss = self.loss_fn(out, Tensor._wrap(yb))
            else:
                loss, out = _compiled_call(self.compiled, xb, yb)
            value = float(loss._data)
            if self.compiled is None and np.isfinite(value):
                loss.backward()
            if self.metrics:
                outputs.append(out._data)
        reduced = self.reducer.reduce(len(xb), value)
        if reduced.bad_ranks:
            raise self._stopped(reduced, epoch, step, batch)
        for f in hooks["on_after_backward"]:
            f(self, step)
        self.optimizer.step()
        for f in hooks["on_batch_end"]:
            f(self, step, reduced.loss)
        return reduced.loss

    def _stopped(self, reduced: Reduced, epoch: int, step: int, batch: int
                 ) -> NonFiniteLossError:
        ranks = ", ".join(map(str, reduced.bad_ranks))
        plural = "s" if len(reduced.bad_ranks) > 1 else ""
        e = self._non_finite(reduced.loss, epoch, step, batch)
        err = NonFiniteLossError(
            f"{e} (Distributed: the loss was not finite on rank{plural} {ranks} of "
            f"{self.size}; every rank stopped at step {step}.)", epoch, step, self.history)
        err.ranks = reduced.bad_ranks  # type: ignore[attr-defined]
        err.every_rank = True  # type: ignore[attr-defined]
        return err

    # ------------------------------------------------------------------ gathered outputs
    def _gather(self, local: list[np.ndarray], counts: list[int]) -> np.ndarray | None:
        rows = (np.concatenate(local) if local else
                np.empty((0, *self._out_tail), self._out_dtype))
        return gather_rows(rows, counts)

    def _validation_outputs(self) -> np.ndarray | None:
        """The model's outputs on the validation set (each rank computes its part); on rank 0
        only, None elsewhere or without validation data. All ranks must call it."""
        if self.X_val is None:
            return None
        n = len(self.X_val)
        a, b = shard_bounds(n, self.rank, self.size)
        model = self.model
        training = getattr(model, "training", False)
        if training and hasattr(model, "eval"):
            model.eval()
        try:
            with no_grad():
                local = [model(Tensor._wrap(self.X_val[a:b]))._data] if b > a else []
        finally:
            if training and hasattr(model, "train"):
                model.train()
        bounds = [shard_bounds(n, r, self.size) for r in range(self.size)]
        return self._gather(local, [hi - lo for lo, hi in bounds])

    def _scores(self, out: np.ndarray, y: np.ndarray, prefix: str) -> dict[str, float]:
        with no_grad():
            logs = {prefix + "loss": float(self.loss_fn(Tensor._wrap(out), Tensor._wrap(y))._data)}
        logs.update({prefix + name: m(out, y) for name, m in self.metrics.items()})
        return logs


def _short_hash(value: object) -> str:
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]

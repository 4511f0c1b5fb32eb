"""Callbacks: code that ``fit`` calls at fixed points of the loop (the Keras protocol).

Order of calls in one run::

    on_fit_start(trainer)
    for each epoch:  on_epoch_start(trainer, epoch)
        for each batch:  on_batch_start(trainer, step) -> forward, loss, backward
                         on_after_backward(trainer, step)   # grads in .grad, weights not yet moved
                         optimizer.step()
                         on_batch_end(trainer, step, loss)  # loss: a float, before the step
        validation -> on_epoch_end(trainer, epoch, logs)  # logs: {"loss": .., "val_loss": ..}
    on_fit_end(trainer)

``epoch`` counts from 1 and ``step`` counts every optimizer step of the run from 1 (as the
progress lines print them). Set ``trainer.stop_training = True`` to end after the epoch.
``fit`` only calls the methods a callback overrides, so an unused hook costs nothing per step.
When ``fit`` raises (a NaN loss, an error in a callback) ``on_fit_end`` is not called, so
nothing (e.g. EarlyStopping's restore) changes the weights after the error.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..autograd import mark_modified
from . import setup


class Callback:
    """Base class: override the methods you need; each default does nothing."""

    def on_fit_start(self, trainer: Any) -> None:
        pass

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        pass

    def on_batch_start(self, trainer: Any, step: int) -> None:
        pass

    def on_after_backward(self, trainer: Any, step: int) -> None:
        pass

    def on_batch_end(self, trainer: Any, step: int, loss: float) -> None:
        pass

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        pass

    def on_fit_end(self, trainer: Any) -> None:
        pass


HOOKS = ("on_fit_start", "on_epoch_start", "on_batch_start", "on_after_backward",
         "on_batch_end", "on_epoch_end", "on_fit_end")


def overridden(callbacks: list[Any], hook: str) -> list[Callable]:
    """Bound ``hook`` methods of the callbacks that define it (not Callback's no-op)."""
    found = []
    for cb in callbacks:
        f = getattr(cb, hook, None)  # instance attributes count (LambdaCallback sets them)
        if f is not None and getattr(f, "__func__", None) is not getattr(Callback, hook):
            found.append(f)
    return found


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda t, e, logs: ...)``."""

    def __init__(self, **hooks: Callable) -> None:
        for name, f in hooks.items():
            if name not in HOOKS:
                raise TypeError(f"LambdaCallback: unknown hook {name!r}; the hooks are {HOOKS}.")
            setattr(self, name, f)


def _snapshot(model: Any) -> dict[str, np.ndarray]:
    return {k: v._data.copy() for k, v in model.state_dict().items()}


def _restore(model: Any, saved: dict[str, np.ndarray]) -> None:
    # Copy into the live arrays, so the optimizer's references to the parameters stay valid.
    state = model.state_dict()
    for k, v in state.items():
        np.copyto(v._data, saved[k])
    mark_modified(*state.values())  # written in place: graphs made before may not go backward


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; restore the best weights.

    ``monitor`` "auto" means "val_loss" when there is validation data, else "loss". An epoch
    improves when the value beats the best so far by more than ``min_delta`` (lower is better
    for losses, higher for accuracy). With ``restore_best_weights`` the model ends with the
    weights of its best epoch, whether or not the run stopped early.
    """

    def __init__(self, patience: int = 5, monitor: str = "auto", min_delta: float = 0.0,
                 restore_best_weights: bool = True, mode: str = "auto") -> None:
        patience = setup.count(patience, "patience (in epochs)", 0, "EarlyStopping", 5)
        min_delta = setup.real(min_delta, "min_delta", "EarlyStopping", 0.001)
        restore_best_weights = setup.flag(restore_best_weights, "restore_best_weights",
                                          "EarlyStopping")
        if not isinstance(monitor, str):
            raise TypeError(f"EarlyStopping: monitor must be a name such as 'val_loss', got "
                            f"{monitor!r}.")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}.")
        self.patience, self.monitor, self.min_delta = patience, monitor, abs(min_delta)
        self.restore_best_weights, self.mode = restore_best_weights, mode

    def on_fit_start(self, trainer: Any) -> None:
        if self.monitor == "auto":
            self._key = "val_loss" if trainer.X_val is not None else "loss"
        else:
            self._key = _known(self.monitor, trainer, "EarlyStopping")
        mode = self.mode
        if mode == "auto":
            mode = "max" if "acc" in self._key else "min"
        self._sign = 1.0 if mode == "min" else -1.0
        self.best = math.inf
        self.best_epoch: int | None = None
        self.stopped_epoch: int | None = None
        self.wait = 0
        self._weights: dict[str, np.ndarray] | None = None

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        if self._key not in logs:
            raise KeyError(f"EarlyStopping: monitor={self._key!r} is not among the epoch's "
                           f"values {sorted(logs)}. Fix: pass one of those names.")
        value = self._sign * logs[self._key]
        if value < self.best - self.min_delta:  # NaN never improves
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._weights = _snapshot(trainer.model)
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True
            trainer.history.stopped_epoch = epoch

    def on_fit_end(self, trainer: Any) -> None:
        last = trainer.history.epoch[-1] if trainer.history.epoch else None
        if self._weights is not None and self.best_epoch != last:
            _restore(trainer.model, self._weights)
            trainer.history.restored_epoch = self.best_epoch


def _known(monitor: str, trainer: Any, who: str) -> str:
    """``monitor`` if the epochs' logs will have it (refused before the first step if not)."""
    names = getattr(trainer, "log_names", None)
    if names is None or monitor in names:
        return monitor
    close = difflib.get_close_matches(monitor, names, n=1, cutoff=0.5)
    if monitor.startswith("val_") and trainer.X_val is None:
        hint = " (val_ values need validation_split= or validation_data=)"
    else:
        hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"{who}: monitor={monitor!r} will not be in this run's logs, which "
                     f"hold {names}{hint}; no weight was changed. Fix: monitor one of those "
                     f"names.")


class LRSchedulerCallback(Callback):
    """Step a learning-rate scheduler once per epoch (``ReduceLROnPlateau`` gets ``monitor``).

    ``fit(..., callbacks=[scheduler])`` wraps a ``glassgrad.optim`` scheduler in this for you.
    """

    def __init__(self, scheduler: Any, monitor: str = "auto") -> None:
        self.scheduler, self.monitor = scheduler, monitor

    def on_fit_start(self, trainer: Any) -> None:
        if self.monitor != "auto" and type(self.scheduler).__name__ == "ReduceLROnPlateau":
            _known(self.monitor, trainer, "LRSchedulerCallback")

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        if type(self.scheduler).__name__ == "ReduceLROnPlateau":
            key = self.monitor
            if key == "auto":
                key = "val_loss" if "val_loss" in logs else "loss"
            self.scheduler.step(logs[key])
        else:
            self.scheduler.step()

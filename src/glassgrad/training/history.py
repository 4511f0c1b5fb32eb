"""``History``: what ``fit`` returns, one value per epoch for every loss and metric."""

from __future__ import annotations

import math
from typing import Any


class History:
    """Per-epoch record of a training run (Keras's ``History``, plus the run's outcome).

    ``history`` maps a metric name ("loss", "val_loss", "accuracy", "val_accuracy", ...) to one
    value per epoch; ``epoch`` lists the epoch numbers (counting from 1, as printed).
    ``best_epoch`` is the epoch with the lowest monitored loss ("val_loss" when there is
    validation data, else "loss"); ``stopped_epoch`` is where early stopping ended the run
    (None when it ran every epoch); ``restored_epoch`` is the epoch whose weights the model
    holds after early stopping restored them. ``extra`` is free-form: callbacks such as
    ``diagnose.Monitor`` keep their own records there.

    >>> h = History()
    >>> h.record(1, {"loss": 0.5}); h.record(2, {"loss": 0.25})
    >>> h["loss"], h.best_epoch
    ([0.5, 0.25], 2)
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.stopped_epoch: int | None = None
        self.restored_epoch: int | None = None
        self.monitor = "loss"
        self.params: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}
        self.elapsed = 0.0  # seconds spent in fit()

    def record(self, epoch: int, logs: dict[str, float]) -> None:
        """Append one epoch's values (a metric missing from ``logs`` gets NaN, so every list
        stays aligned with ``epoch``)."""
        n = len(self.epoch)
        for k in logs:
            if k not in self.history:
                self.history[k] = [math.nan] * n
        for k, values in self.history.items():
            values.append(float(logs.get(k, math.nan)))
        self.epoch.append(epoch)

    @property
    def best_epoch(self) -> int | None:
        values = self.history.get(self.monitor)
        if not values:
            return None
        finite = [(v, i) for i, v in enumerate(values) if not math.isnan(v)]
        return self.epoch[min(finite)[1]] if finite else None

    def best(self, metric: str | None = None) -> float | None:
        """The monitored metric's value at ``best_epoch`` (or ``metric``'s, at that epoch)."""
        e = self.best_epoch
        if e is None:
            return None
        return self.history[metric or self.monitor][self.epoch.index(e)]

    def last(self, metric: str = "loss") -> float:
        """The last recorded value of ``metric``."""
        if metric not in self.history or not self.history[metric]:
            raise KeyError(f"History has no values for {metric!r}; it has "
                           f"{sorted(self.history)}.")
        return self.history[metric][-1]

    def __getitem__(self, metric: str) -> list[float]:
        return self.history[metric]

    def __contains__(self, metric: str) -> bool:
        return metric in self.history

    def __len__(self) -> int:
        return len(self.epoch)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python data (JSON-able): epochs, metrics and the run's outcome."""
        return {
            "epoch": list(self.epoch), "history": {k: list(v) for k, v in self.history.items()},
            "best_epoch": self.best_epoch, "stopped_epoch": self.stopped_epoch,
            "restored_epoch": self.restored_epoch, "monitor": self.monitor,
            "params": dict(self.params), "elapsed": self.elapsed,
        }

    def __repr__(self) -> str:
        if not self.epoch:
            return "History(no epochs)"
        last = ", ".join(f"{k}={v[-1]:.4g}" for k, v in self.history.items())
        extra = f", stopped_epoch={self.stopped_epoch}" if self.stopped_epoch else ""
        return (f"History({len(self.epoch)} epochs, {last}, best_epoch={self.best_epoch}"
                f"{extra})")

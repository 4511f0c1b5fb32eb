"""Progress output of ``fit``: a tqdm bar in a terminal, a few plain lines anywhere else.

A bar that redraws is only useful where a terminal shows it; in a log file or a notebook it
becomes thousands of lines. So: verbose=1 draws a tqdm bar (updated once per epoch) when
stderr is a terminal and tqdm is installed, else prints about ten evenly spaced epoch lines;
verbose=2 prints one line per epoch; verbose=0 prints nothing.
"""

from __future__ import annotations

import math
import sys
from typing import Any, TextIO

from .callbacks import Callback


def format_value(name: str, value: float) -> str:
    """``accuracy 97.5%`` for accuracies, ``loss 0.0123`` (or ``1.2e-05``) otherwise."""
    if math.isnan(value):
        return f"{name} nan"
    if "acc" in name:
        return f"{name} {100 * value:.1f}%"
    if value != 0 and abs(value) < 1e-3 or abs(value) >= 1e5:
        return f"{name} {value:.2e}"
    return f"{name} {value:.4f}"


def format_logs(logs: dict[str, float]) -> str:
    return "  ".join(format_value(k, v) for k, v in logs.items())


def _tqdm_or_none() -> Any:
    try:
        from tqdm import tqdm  # the terminal bar (only used when stderr is a terminal)
    except ImportError:
        return None
    return tqdm


class Progress(Callback):
    """The progress callback ``fit(verbose=...)`` adds; usable on its own too."""

    def __init__(self, verbose: int = 1, stream: TextIO | None = None,
                 lines: int = 10) -> None:
        self.verbose = verbose
        self.stream = stream
        self.lines = lines
        self._bar: Any = None

    def on_fit_start(self, trainer: Any) -> None:
        self._out = self.stream or sys.stdout
        self._epochs = trainer.epochs
        self._width = len(str(trainer.epochs))
        self._every = 1 if self.verbose >= 2 else max(1, math.ceil(trainer.epochs / self.lines))
        self._bar = None
        if self.verbose == 1 and self.stream is None and _isatty(sys.stderr):
            tqdm = _tqdm_or_none()
            if tqdm is not None:
                self._bar = tqdm(total=trainer.epochs, unit="epoch", leave=True,
                                 dynamic_ncols=True, file=sys.stderr)

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(format_logs(logs), refresh=False)
            self._bar.update(1)
            return
        if (epoch == 1 or epoch % self._every == 0 or epoch == self._epochs
                or trainer.stop_training):
            print(f"epoch {epoch:>{self._width}}/{self._epochs}  {format_logs(logs)}",
                  file=self._out, flush=True)

    def close(self) -> None:
        """Close the bar (fit calls this even when training ends with an error)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_fit_end(self, trainer: Any) -> None:
        self.close()
        h = trainer.history
        if h.stopped_epoch is not None:
            from .callbacks import EarlyStopping

            es = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)
            why = f"no improvement in {es._key} for {es.patience} epochs; " if es else ""
            msg = f"early stopping: {why}stopped after epoch {h.stopped_epoch}"
            if h.restored_epoch is not None:
                msg += f", restored the weights of epoch {h.restored_epoch}"
            print(msg, file=self._out, flush=True)
        elif h.restored_epoch is not None:
            print(f"restored the weights of the best epoch, {h.restored_epoch}", file=self._out,
                  flush=True)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False

"""``fit``: the training loop, Keras's convenience on PyTorch's building blocks.

One step is ``zero_grad -> forward -> loss -> backward -> optimizer.step()``; everything else
(metrics, validation, progress, early stopping) happens once per epoch, so the loop costs
little beyond the model's own work. Every input is checked before the first step (see
``setup.py``).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ..autograd import no_grad
from ..compiler import BACKENDS, Compiled, CompileError
from ..compiler import compile as compile_fn
from ..creation import rng as random_generator
from ..data.loader import DataLoader as ArrayLoader
from ..data.loader import train_test_split
from ..tensor import Tensor
from ..utils.data import DataLoader, RandomSampler, SequentialSampler
from . import setup
from .callbacks import HOOKS, Callback, EarlyStopping, LRSchedulerCallback, overridden
from .history import History
from .progress import Progress


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or Inf; ``fit`` stopped before applying that step.

    ``epoch``, ``step`` and the ``history`` so far are attributes of the error.
    """

    def __init__(self, message: str, epoch: int, step: int, history: History) -> None:
        super().__init__(message)
        self.epoch, self.step, self.history = epoch, step, history


class Trainer:
    """The state of one ``fit`` run, as callbacks see it.

    ``model``, ``optimizer``, ``loss_fn``, ``history``, ``epoch`` (current, from 1), ``step``
    (optimizer steps so far), ``stop_training`` (set True to stop after this epoch), the
    data ``X``, ``y``, ``X_val``, ``y_val`` (NumPy; validation ones None without validation),
    ``last_batch`` = (X_batch, y_batch), ``epochs``, ``batch_size``, ``steps_per_epoch``,
    ``log_names`` (the names each epoch's logs will hold: "loss", the metrics, their "val_").
    """

    def __init__(self, model: Any, optimizer: Any, loss_fn: Any, loss_kind: str,
                 X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None,
                 y_val: np.ndarray | None, epochs: int, batch_size: int, shuffle: bool,
                 metrics: dict, callbacks: list, rng: np.random.Generator,
                 drop_last: bool = False) -> None:
        self.model, self.optimizer = model, optimizer
        self.loss_fn, self.loss_kind = loss_fn, loss_kind
        self.X, self.y, self.X_val, self.y_val = X, y, X_val, y_val
        self.epochs, self.batch_size, self.shuffle = epochs, batch_size, shuffle
        self.drop_last = drop_last
        self.steps_per_epoch = (len(X) // batch_size if drop_last
                                else math.ceil(len(X) / batch_size))
        self.metrics, self.callbacks, self.rng = metrics, callbacks, rng
        self.history = History()
        names = ["loss", *metrics]
        self.log_names = names + [f"val_{k}" for k in names] if X_val is not None else names
        self.history.monitor = "val_loss" if X_val is not None else "loss"
        self.epoch = 0
        self.step = 0
        self.stop_training = False
        self.last_batch: tuple[np.ndarray, np.ndarray] | None = None
        self.compiled: Compiled | None = None  # fit(compile=True): the recorded step

    # ------------------------------------------------------------------ the loop
    def run(self) -> History:
        hooks = {h: overridden(self.callbacks, h) for h in HOOKS}
        start = time.perf_counter()
        try:
            # A diverging run overflows before its loss turns NaN; fit reports that itself
            # (with the epoch and step), so NumPy's warnings would only say it less clearly.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                self._loop(hooks)
        finally:
            self.history.elapsed = time.perf_counter() - start
            for cb in self.callbacks:
                if isinstance(cb, Progress):
                    cb.close()
        return self.history

    def _loop(self, hooks: dict) -> None:
        for f in hooks["on_fit_start"]:
            f(self)
        for epoch in range(1, self.epochs + 1):
            self.epoch = epoch
            for f in hooks["on_epoch_start"]:
                f(self, epoch)
            logs = self._epoch(epoch, hooks)
            self.history.record(epoch, logs)
            for f in hooks["on_epoch_end"]:
                f(self, epoch, logs)
            if self.stop_training:
                break
        for f in hooks["on_fit_end"]:
            f(self)

    def _epoch(self, epoch: int, hooks: dict) -> dict[str, float]:
        X, y, bs, n = self.X, self.y, self.batch_size, len(self.X)
        used = n - n % bs if self.drop_last else n  # drop_last: no short last batch
        if self.shuffle and bs < n:  # one gather per epoch; the batches are then views
            order = self.rng.permutation(n)
            X, y = X[order], y[order]
        model, loss_fn, opt, compiled = self.model, self.loss_fn, self.optimizer, self.compiled
        zero_grad, opt_step = opt.zero_grad, opt.step
        batch_start, after_backward, batch_end = (hooks["on_batch_start"],
                                                  hooks["on_after_backward"],
                                                  hooks["on_batch_end"])
        keep = bool(self.metrics)
        outputs: list[np.ndarray] = []
        total = 0.0
        for lo in range(0, used, bs):
            xb, yb = X[lo:lo + bs], y[lo:lo + bs]
            self.step = step = self.step + 1
            self.last_batch = (xb, yb)
            for f in batch_start:
                f(self, step)
            zero_grad()
            if compiled is None:
                out = model(Tensor._wrap(xb))
                loss = loss_fn(out, Tensor._wrap(yb))
            else:  # forward and backward in one replay; .grad filled as backward() fills it
                loss, out = _compiled_call(compiled, xb, yb)
            value = float(loss._data)
            if not math.isfinite(value):
                raise self._non_finite(value, epoch, step, lo // bs + 1)
            if compiled is None:
                loss.backward()
            for f in after_backward:
                f(self, step)
            opt_step()
            total += value * len(xb)
            if keep:
                outputs.append(out._data)
            for f in batch_end:
                f(self, step, value)
        logs = {"loss": total / used}
        if keep:
            pred = outputs[0] if len(outputs) == 1 else np.concatenate(outputs)
            for name, m in self.metrics.items():
                logs[name] = m(pred, y[:used])
        if self.X_val is not None:
            logs.update(evaluate_arrays(model, loss_fn, self.X_val, self.y_val, self.metrics,
                                        prefix="val_"))
        return logs

    def _non_finite(self, value: float, epoch: int, step: int, batch: int) -> NonFiniteLossError:
        lrs = sorted({g.get("lr") for g in getattr(self.optimizer, "param_groups", [])
                      if g.get("lr") is not None})
        lr = f" (lr={lrs[0]:g})" if len(lrs) == 1 else ""
        return NonFiniteLossError(
            f"fit(): the loss became {value} at epoch {epoch}, step {step} (batch {batch} of "
            f"{self.steps_per_epoch}); training stopped before applying that step, so the "
            f"weights are those after step {step - 1}. Usual causes: a learning rate too "
            f"high{lr} making the weights explode, or log(0) in the loss (prefer "
            f"bce_with_logits to sigmoid + bce). Fix: lower the learning rate, or run one "
            f"step under gg.detect_anomaly() to find the op that made it.",
            epoch, step, self.history,
        )


def compile_step(model: Any, loss_fn: Any, backend: str = "numpy") -> Compiled:
    """The training step ``(loss, output)`` of ``model`` under ``loss_fn``, compiled (by
    ``gg.compile``'s ``backend``)."""
    return compile_fn(lambda xb, yb: _loss_and_output(model, loss_fn, xb, yb),
                      backend=backend)


def _loss_and_output(model: Any, loss_fn: Any, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
    out = model(xb)
    return loss_fn(out, yb), out


def _compiled_call(compiled: Compiled, xb: np.ndarray, yb: np.ndarray) -> tuple[Tensor, Tensor]:
    try:
        return compiled(Tensor._wrap(xb), Tensor._wrap(yb))
    except CompileError as e:  # raised while recording, before any weight changed
        given = "True" if compiled.backend == "numpy" else repr(compiled.backend)
        raise CompileError(f"fit(compile={given}): {e} Or train this model with "
                           f"compile=False.") from None


def evaluate_arrays(model: Any, loss_fn: Any, X: np.ndarray, y: np.ndarray,
                    metrics: dict, prefix: str = "") -> dict[str, float]:
    """Loss and metrics of the model on prepared arrays, one forward pass in eval mode."""
    training = getattr(model, "training", False)
    if training and hasattr(model, "eval"):
        model.eval()  # e.g. Dropout off while measuring
    try:
        with no_grad():
            out = model(Tensor._wrap(X))
            logs = {prefix + "loss": float(loss_fn(out, Tensor._wrap(y))._data)}
        for name, m in metrics.items():
            logs[prefix + name] = m(out._data, y)
    finally:
        if training and hasattr(model, "train"):
            model.train()
    return logs


def _callback_list(callbacks: Any, early_stopping: Any, verbose: int) -> list:
    found: list = []
    for cb in callbacks or ():
        if isinstance(cb, Callback) or any(hasattr(cb, h) for h in HOOKS):
            found.append(cb)
        elif hasattr(cb, "step"):  # an optim learning-rate scheduler
            found.append(LRSchedulerCallback(cb))
        else:
            raise TypeError(f"fit(): {cb!r} is not a callback (it has none of the methods "
                            f"{HOOKS}) nor a learning-rate scheduler.")
    if early_stopping is not None and early_stopping is not False:
        if isinstance(early_stopping, EarlyStopping):
            found.append(early_stopping)
        else:  # a patience, in epochs
            found.append(EarlyStopping(patience=setup.count(
                early_stopping, "early_stopping (a patience in epochs, or an EarlyStopping)",
                minimum=0, example=5)))
    if verbose:
        found.append(Progress(verbose))  # last: it prints what the others decided
    return found


def _loader_arrays(loader: Any, y: Any, batch_size: Any
                   ) -> tuple[Any, Any, int, bool, Any, bool]:
    """(X, y, batch_size, shuffle, generator) of ``fit(model, loader)``: the loader's samples
    read once, in order, and its batching settings."""
    if y is not None or batch_size is not None:
        raise ValueError(
            f"fit(model, loader): the DataLoader gives the targets and the batch size; got "
            f"{'y' if y is not None else 'batch_size'} as well. Fix: fit(model, loader, ...) "
            f"without y and batch_size (or fit(model, X, y, batch_size=...) without a loader).")
    if isinstance(loader, ArrayLoader):
        return (loader.X, loader.y, loader.batch_size, loader.shuffle, loader._rng,
                getattr(loader, "drop_last", False))
    name = "fit(model, loader)"
    own_batches = loader.batch_size is not None and getattr(
        loader.batch_sampler, "sampler", None) is loader.sampler  # the loader's, not a custom one
    if not (own_batches and isinstance(loader.sampler, RandomSampler | SequentialSampler)):
        raise ValueError(f"{name}: fit batches the data itself (sequential or shuffled), so a "
                         f"custom sampler or batch_sampler would be ignored. Fix: write the "
                         f"training loop yourself, or use shuffle=True/False.")
    shuffle = isinstance(loader.sampler, RandomSampler)
    ordered = DataLoader(loader.dataset, batch_size=loader.batch_size,
                         collate_fn=loader.collate_fn)
    parts = list(ordered)
    if not parts or any(not isinstance(b, list | tuple) or len(b) != 2 for b in parts):
        raise ValueError(f"{name}: the loader must yield (inputs, targets) batches, got "
                         f"{type(parts[0]).__name__ if parts else 'no batches'}.")
    X, Y = ([p[i]._data if isinstance(p[i], Tensor) else np.asarray(p[i]) for p in parts]
            for i in (0, 1))
    return (np.concatenate(X), np.concatenate(Y), loader.batch_size, shuffle, loader.generator,
            loader.drop_last)


def _compile_backend(compile: Any) -> str | None:  # noqa: A002
    """fit()'s ``compile``: None (eager), or the ``gg.compile`` back end that replays steps."""
    if isinstance(compile, str):
        if compile not in BACKENDS:
            raise ValueError(
                f"fit(): compile is True, False or the name of a gg.compile back end "
                f"({', '.join(map(repr, BACKENDS))}), got {compile!r}. Fix: compile=True "
                f"(recorded NumPy), or compile='c' (one C function per step).")
        return compile
    return "numpy" if setup.flag(compile, "compile") else None


def _options(epochs: Any, batch_size: Any, shuffle: Any, compile: Any,  # noqa: A002
             drop_last: Any, distributed: bool, verbose: Any, validation_split: Any,
             validation_data: Any) -> tuple:
    """fit()'s scalar options, checked (one clear error each) and normalised."""
    epochs = setup.count(epochs, "epochs")
    if batch_size is not None:
        batch_size = setup.count(batch_size, "batch_size (None for the full batch)",
                                 example=32)
    shuffle, compile = setup.flag(shuffle, "shuffle"), _compile_backend(compile)
    drop_last = setup.flag(drop_last, "drop_last")
    if drop_last and distributed:
        raise ValueError("fit(): drop_last=True is not supported with distributed=True yet "
                         "(the ranks split every batch, the short one included). Fix: pass "
                         "drop_last=False, or a training set that batch_size divides.")
    verbose = int(verbose) if isinstance(verbose, bool | np.bool_) else setup.count(
        verbose, "verbose (0, 1 or 2)", minimum=0, example=1)
    if validation_split is not None and validation_data is not None:
        raise ValueError("fit(): pass validation_split or validation_data, not both.")
    if validation_split is not None:
        validation_split = setup.real(validation_split, "validation_split", example=0.2)
        if not 0 < validation_split < 1:
            raise ValueError(f"fit(): validation_split is a fraction in (0, 1), got "
                             f"{validation_split!r}. Fix: pass e.g. validation_split=0.2.")
    return epochs, batch_size, shuffle, compile, drop_last, verbose, validation_split


def _validation_sets(X: np.ndarray, y_all: np.ndarray, y_raw: np.ndarray,
                     validation_data: Any, validation_split: float | None, out1: Any,
                     kind: str, rng: np.random.Generator) -> tuple:
    """(X, y, X_val, y_val): ``validation_data`` checked against the training set, or a
    seeded split of it (stratified for integer labels), or no validation set."""
    if validation_data is not None:
        if not isinstance(validation_data, tuple | list) or len(validation_data) != 2:
            raise ValueError("fit(): validation_data must be a pair (X_val, y_val).")
        X_val = setup.as_array(validation_data[0], "X_val").astype(X.dtype, copy=False)
        y_val_raw = setup.as_array(validation_data[1], "y_val")
        setup.check_pair(X_val, y_val_raw, "the validation data", ("X_val", "y_val"))
        if X_val.shape[1:] != X.shape[1:]:
            raise ValueError(f"fit(): X_val has shape {X_val.shape} but X has {X.shape}; the "
                             f"samples must have the same features.")
        return X, y_all, X_val, setup.prepare_targets(y_val_raw, out1, kind, X.dtype, "y_val")
    if validation_split is None:
        return X, y_all, None, None
    strat = y_raw if y_raw.dtype.kind in "iub" and y_raw.ndim == 1 else None
    if strat is not None and np.unique(strat, return_counts=True)[1].min() < 2:
        strat = None  # a class with one sample cannot be in both parts
    X, X_val, y_all, y_val = train_test_split(X, y_all, validation_split, seed=rng,
                                              stratify=strat)
    return X, y_all, X_val, y_val


def fit(
    model: Any,
    X: Any,
    y: Any = None,
    loss: Any = None,
    optimizer: Any = "adam",
    lr: float | None = None,
    epochs: int = 10,
    batch_size: int | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
    validation_split: float | None = None,
    validation_data: tuple[Any, Any] | None = None,
    early_stopping: int | EarlyStopping | None = None,
    metrics: Any = "auto",
    callbacks: list | None = None,
    verbose: int = 1,
    seed: int | np.random.Generator | None = None,
    compile: bool | str = False,  # noqa: A002  (the name users know from Keras and torch)
    distributed: bool = False,
) -> History:
    """Train ``model`` on ``(X, y)`` and return the per-epoch ``History``.

    ``X`` may be a ``DataLoader`` (``glassgrad.utils.data`` or ``glassgrad.data``) instead of
    ``X, y``: its (inputs, targets) batches are read once, in order, and its batch size,
    shuffling and generator are used (so per-epoch random transforms of a custom Dataset run
    once; write the loop yourself for those).

    - ``loss``: "mse", "half_sse", "l1", "bce", "bce_with_logits", "cross_entropy", "nll" or a
      callable ``loss(output, target)``. None picks one from the targets: integer labels ->
      cross_entropy (several outputs) or bce_with_logits (one output; bce after a Sigmoid);
      float targets -> mse.
    - ``optimizer``: an ``optim`` optimizer, or "sgd" (lr 0.01), "adam", "adamw", "rmsprop"
      (lr 0.001) with ``lr=`` to change the rate.
    - ``batch_size``: None for the whole set per step (batch gradient descent, as in the
      seeds), 1 for online learning, n for mini-batches (reshuffled each epoch if ``shuffle``).
    - ``drop_last``: skip each epoch's short last batch (n % batch_size samples), as
      PyTorch's DataLoader: a batch of 3 at a learning rate tuned for 32 can undo an epoch.
      With ``shuffle`` other samples are left out each epoch; without, always the last ones.
    - ``validation_split``: a fraction held out (a seeded, stratified random split, not the
      last rows as Keras); or ``validation_data=(X_val, y_val)``.
    - ``early_stopping``: a patience in epochs (monitors val_loss, else loss) and restores the
      best epoch's weights; or an ``EarlyStopping`` callback.
    - ``metrics``: "auto" = accuracy for classification; or a list of "accuracy", "mae",
      "mse" and callables ``metric(y_true, y_pred)``. Computed once per epoch: train metrics
      on the predictions made during the epoch, as Keras.
    - ``verbose``: 0 silent, 1 a progress bar in a terminal (about ten lines otherwise),
      2 one line per epoch. ``seed`` fixes shuffling and the validation split.
    - ``compile``: replay each step's forward and backward as recorded NumPy (``gg.compile``):
      the same numbers, less Python per op, so small networks train faster. ``compile="c"``
      replays each as one C function (``gg.compile(..., backend="c")``: a C compiler, the
      same numbers to float rounding, faster still); ``"numba"`` as one numba function.
      Models that draw random numbers while training (Dropout) are refused with a
      ``CompileError``.
    - ``distributed``: data-parallel over the MPI ranks of ``mpiexec -n N python -m mpi4py``
      (``glassgrad.distributed``): each rank trains on its part of every batch of
      ``batch_size``, gradients are averaged each step, all ranks end with the same weights
      and history; only rank 0 prints. One process without ``mpiexec`` runs as usual.

    Raises before any weight changes on bad input, and ``NonFiniteLossError`` (naming epoch and
    step) if the loss becomes NaN/Inf, before applying that step.
    """
    if isinstance(X, DataLoader | ArrayLoader):
        X, y, batch_size, shuffle, loader_rng, loader_drop = _loader_arrays(X, y, batch_size)
        seed = loader_rng if seed is None else seed
        drop_last = drop_last or loader_drop  # the loader's setting, as its own loop would
    elif y is None:
        raise TypeError("fit(): missing the targets y. Fix: fit(model, X, y, ...), or pass a "
                        "DataLoader of (inputs, targets) batches: fit(model, loader, ...).")
    X = setup.as_array(X, "X")
    y_raw = setup.as_array(y, "y")
    setup.check_pair(X, y_raw, "the training data")
    epochs, batch_size, shuffle, compile, drop_last, verbose, validation_split = _options(
        epochs, batch_size, shuffle, compile, drop_last, distributed, verbose,
        validation_split, validation_data)
    rng = random_generator(seed)  # (None: the global one, which gg.manual_seed seeds)
    dtype = setup.param_dtype(model)
    if X.dtype != dtype:
        X = X.astype(dtype)  # once here, not in every step's matmul
    out1 = setup.probe(model, X)
    loss_fn, kind = setup.resolve_loss(loss, y_raw, out1, model)
    y_all = setup.prepare_targets(y_raw, out1, kind, dtype)
    X, y_all, X_val, y_val = _validation_sets(X, y_all, y_raw, validation_data,
                                              validation_split, out1, kind, rng)
    metric_fns = setup.resolve_metrics(metrics, kind, y_raw, y_all)
    opt = setup.resolve_optimizer(optimizer, lr, model)
    n = len(X)
    bs = n if batch_size is None else min(batch_size, n)
    trainer_class = Trainer
    if distributed:  # the loop split over MPI ranks lives in glassgrad.distributed
        from ..distributed import is_main
        from ..distributed.training import DistributedTrainer as trainer_class

        verbose = verbose if is_main() else 0
    trainer = trainer_class(model, opt, loss_fn, kind, X, y_all, X_val, y_val, epochs, bs,
                            shuffle, metric_fns, _callback_list(callbacks, early_stopping,
                                                                verbose), rng,
                            drop_last=drop_last)
    if compile:
        trainer.compiled = compile_step(model, loss_fn, compile)
    trainer.history.params = {
        "epochs": epochs, "batch_size": bs, "steps_per_epoch": trainer.steps_per_epoch,
        "samples": n, "val_samples": 0 if X_val is None else len(X_val), "loss": kind,
        "optimizer": type(opt).__name__, "shuffle": shuffle, "compile": compile or False,
        "drop_last": drop_last,
    }
    if hasattr(model, "train"):
        model.train()
    return trainer.run()


def evaluate(model: Any, X: Any, y: Any, loss: Any = None, metrics: Any = "auto") -> dict:
    """Loss and metrics of ``model`` on ``(X, y)`` (no training), as in ``fit``'s logs.

    >>> import glassgrad as gg
    >>> X, y = gg.data.xor()
    >>> sorted(evaluate(gg.nn.MLP([2, 3, 1], seed=0), X, y))
    ['accuracy', 'loss']
    """
    X = setup.as_array(X, "X")
    y_raw = setup.as_array(y, "y")
    setup.check_pair(X, y_raw, "the data")
    dtype = setup.param_dtype(model)
    X = X.astype(dtype, copy=False)
    out1 = setup.probe(model, X)
    loss_fn, kind = setup.resolve_loss(loss, y_raw, out1, model)
    y_all = setup.prepare_targets(y_raw, out1, kind, dtype)
    return evaluate_arrays(model, loss_fn, X, y_all,
                           setup.resolve_metrics(metrics, kind, y_raw, y_all))

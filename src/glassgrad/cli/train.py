"""``glassgrad train DATASET``: train an MLP on a teaching set or a CSV and report how it went.

Each built-in set has defaults that train it well in seconds (``glassgrad train xor`` reaches
100% in a fraction of a second); every flag overrides them.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import INTERRUPTED, CLIError
from .validate import (
    check_memory,
    fraction,
    non_negative,
    os_error,
    output_dir,
    output_file,
    positive_int,
    read_csv,
    whole,
)


@dataclass
class Preset:
    hidden: list[int]
    activation: str = "tanh"
    lr: float = 0.01
    batch_size: int | None = 32
    epochs: int = 100
    val_split: float = 0.2
    init: str = "xavier"
    kwargs: dict[str, Any] = field(default_factory=dict)


PRESETS = {
    "xor": Preset([4], lr=0.1, batch_size=None, epochs=200, val_split=0.0),
    "circles": Preset([16, 16], kwargs={"n_samples": 400}),
    "moons": Preset([16, 16], kwargs={"n_samples": 400}),
    "spirals": Preset([64, 64], activation="relu", epochs=150, init="kaiming",
                      kwargs={"n_samples": 600}),
    "blobs": Preset([16], epochs=30),
    "digits": Preset([128], activation="relu", lr=0.003, epochs=25, init="kaiming"),
    "regression": Preset([], lr=0.1, epochs=100),
    "sine": Preset([32, 32], epochs=300),
}
CSV_PRESET = Preset([16])
LOSSES = ("mse", "half_sse", "l1", "bce", "bce_with_logits", "cross_entropy")


def add_parser(sub: argparse._SubParsersAction) -> None:
    from ..training.setup import OPTIMIZERS

    p = sub.add_parser(
        "train", help="train an MLP on a built-in data set or a CSV file",
        description="Train a multilayer perceptron and print its progress and final accuracy. "
                    "Example: glassgrad train xor; glassgrad train data.csv --target label.",
    )
    p.add_argument("dataset", metavar="DATASET",
                   help=f"one of {', '.join(PRESETS)}, or the path of a CSV file")
    p.add_argument("--layers", help="all sizes (2-8-1) or hidden sizes only (8,8); 0 = none")
    p.add_argument("--activation", choices=["identity", "sigmoid", "tanh", "relu", "leaky_relu"])
    p.add_argument("--init", help="xavier, kaiming, normal, uniform, constant:V or pytorch "
                                  "(default: xavier; kaiming for ReLU presets)")
    p.add_argument("--loss", choices=LOSSES, help="default: chosen from the targets")
    p.add_argument("--optimizer", default="adam", choices=sorted(OPTIMIZERS))
    p.add_argument("--lr", type=non_negative("lr", "a negative learning rate climbs the loss",
                                             "0.01"),
                   help="learning rate (default: the data set's)")
    p.add_argument("--batch-size", help="samples per step: a number, or 'full' for batch GD")
    p.add_argument("--epochs", type=positive_int)
    p.add_argument("--seed", type=int, default=0, help="seed for data, weights and shuffling")
    p.add_argument("--samples", type=positive_int, help="number of samples of a generated data set")
    p.add_argument("--val-split", type=fraction, help="fraction held out for validation (0: none)")
    p.add_argument("--early-stopping", type=whole(0, "it is a number of epochs"),
                   metavar="PATIENCE",
                   help="stop after PATIENCE epochs without improvement; keep the best weights")
    p.add_argument("--target", default="-1", help="CSV target column: name or index (default -1)")
    p.add_argument("--task", choices=["auto", "classify", "regress"], default="auto",
                   help="CSV: classification or regression (auto: integer targets classify)")
    p.add_argument("--save", metavar="PATH", type=output_file,
                   help="save the trained model (safetensors); on Ctrl-C, save it as it is "
                        "after the last complete step")
    p.add_argument("--no-save-on-interrupt", dest="save_on_interrupt", action="store_false",
                   help="with --save: on Ctrl-C, exit without saving")
    p.add_argument("--max-memory", type=non_negative("max-memory", "it is a size", "16"),
                   metavar="GIB", help="refuse a model whose training needs more than GIB "
                   "gibibytes (default: half of this machine's memory)")
    p.add_argument("--diagnose", action="store_true",
                   help="watch every layer while training; print plain-language warnings "
                        "(vanishing/exploding gradients, saturation, dead units, ...) at the end")
    p.add_argument("--plots", metavar="DIR", type=output_dir,
                   help="write loss, gradient-norm, activation and decision-boundary plots to DIR "
                        "(implies --diagnose; needs matplotlib: pip install 'glassgrad[plot]')")
    p.add_argument("--compile", nargs="?", const="numpy", default=None,
                   choices=("numpy", "c", "numba"), metavar="BACKEND",
                   help="replay each step as recorded NumPy (gg.compile): the same numbers, "
                        "less Python per op; --compile c as one C function per step (a C "
                        "compiler; the same numbers to rounding, faster); with --diagnose "
                        "steps run eagerly, watched")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over MPI: run as mpiexec -n N python -m mpi4py -m "
                        "glassgrad train ... --distributed (pip install 'glassgrad[distributed]')")
    p.add_argument("-q", "--quiet", action="store_true", help="print the final report only")
    p.set_defaults(func=_run_maybe_distributed)


def _run_maybe_distributed(args: argparse.Namespace) -> int:
    if not args.distributed:
        return run(args)
    from ..distributed.cli import run_train  # every rank runs `run`; rank 0 speaks

    return run_train(args, run)


# ----------------------------------------------------------------------------- data
def _load(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, Preset, dict]:
    from .. import data

    name = args.dataset
    info: dict[str, Any] = {"name": name, "classes": None}
    if name in PRESETS:
        preset = PRESETS[name]
        kw = dict(preset.kwargs)
        if args.samples is not None:
            if name == "digits":
                raise CLIError("--samples does not apply to digits (a fixed set of 1797).")
            kw["n_samples"] = args.samples
        if name != "digits":
            kw["seed"] = args.seed
        X, y = data.DATASETS[name](**kw)
        info["task"] = "regress" if name in ("regression", "sine") else "classify"
        return X, y, preset, info
    if not os.path.exists(name):
        raise CLIError(f"no data set or file named {name!r}. Use one of {', '.join(PRESETS)}, "
                       f"or the path of a CSV file.")
    target: int | str = int(args.target) if args.target.lstrip("-").isdigit() else args.target
    X, y, meta = read_csv(name, target=target, return_info=True)
    info["classes"] = meta["classes"]
    task = args.task
    if task == "auto":
        task = "classify" if y.dtype.kind == "i" and len(np.unique(y)) <= 20 else "regress"
    info["task"] = task
    if task == "classify":
        if y.dtype.kind == "f" and not np.all(y == np.round(y)):
            raise CLIError("--task classify needs whole-number or word targets; this target "
                           "column has fractions.")
        labels, y = np.unique(y, return_inverse=True)
        if info["classes"] is None and not np.array_equal(labels, np.arange(len(labels))):
            info["classes"] = [str(v) for v in labels.tolist()]
        y = y.astype(np.int64)
    else:
        y = y.astype(np.float32)
    return X, y, CSV_PRESET, info


def _sizes(spec: str | None, n_in: int, n_out: int, preset: Preset) -> list[int]:
    if spec is None:
        return [n_in, *preset.hidden, n_out]
    try:
        if "-" in spec:
            sizes = [int(s) for s in spec.split("-")]
            if sizes[0] != n_in or sizes[-1] != n_out:
                middle = "-".join(spec.split("-")[1:-1]) or "8"
                raise CLIError(f"--layers {spec}: this data needs {_n(n_in, 'input')} and "
                               f"{_n(n_out, 'output')}, e.g. --layers {n_in}-{middle}-{n_out}.")
            return sizes
        hidden = [int(s) for s in spec.replace(" ", "").split(",") if s and s != "0"]
    except ValueError:
        raise CLIError(f"--layers {spec!r}: expected sizes like 2-8-1 or hidden sizes like "
                       f"8,8.") from None
    return [n_in, *hidden, n_out]


# ----------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> int:
    try:
        X, y, preset, info = _load(args)
    except (ValueError, ImportError) as e:
        raise CLIError(str(e)) from None
    classify = info["task"] == "classify"
    n_classes = int(y.max()) + 1 if classify else 0
    loss = _loss(args.loss, classify, n_classes)
    n_out = n_classes if loss == "cross_entropy" else 1
    sizes = _sizes(args.layers, X.shape[1], n_out, preset)
    # Before the weights exist: a model too big for this machine is refused, not attempted.
    check_memory(sizes, len(X), np.dtype(np.float32).itemsize, args.max_memory,
                 f"--layers {args.layers}" if args.layers else f"the {info['name']} preset")
    activation = args.activation or preset.activation
    batch_size = _batch_size(args.batch_size, preset)
    epochs = args.epochs if args.epochs is not None else preset.epochs
    val_split = preset.val_split if args.val_split is None else args.val_split
    lr = preset.lr if args.lr is None else args.lr
    args.init = args.init or (preset.init if args.activation is None else
                              "kaiming" if activation in ("relu", "leaky_relu") else "xavier")
    model = _model(sizes, activation, args, loss)
    n_params = sum(p.numel() for p in model.parameters())
    _header(info, X, y, classify, n_classes, sizes, activation, args, n_params, loss, lr,
            batch_size, epochs, val_split)
    parts = _parts(X, y, val_split, classify, args.seed)
    return _train_and_save(model, parts, args, info, loss, lr, epochs, batch_size, classify)


def _loss(name: str | None, classify: bool, n_classes: int) -> str:
    """``--loss``, or the one that fits the targets: mse for numbers, BCE (from logits) for
    two classes, cross-entropy for more."""
    loss = name or ("mse" if not classify else
                    "bce_with_logits" if n_classes <= 2 else "cross_entropy")
    if classify and n_classes > 2 and loss != "cross_entropy":
        raise CLIError(f"--loss {loss} handles two classes; this data has {n_classes}. "
                       f"Use --loss cross_entropy.")
    return loss


def _model(sizes: list[int], activation: str, args: argparse.Namespace, loss: str) -> Any:
    from .. import nn

    try:
        return nn.MLP(sizes, activation=activation, init=args.init, seed=args.seed,
                      output_activation="sigmoid" if loss == "bce" else None)
    except (ValueError, TypeError) as e:
        raise CLIError(str(e)) from None


def _parts(X: np.ndarray, y: np.ndarray, val_split: float, classify: bool,
           seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(X, y)], or [training part, validation part] when ``val_split``: split here, so the
    report can score both parts with the final weights."""
    if not val_split:
        return [(X, y)]
    from ..data import train_test_split

    X_tr, X_val, y_tr, y_val = train_test_split(
        X, y, val_split, seed=seed,
        stratify=y if classify and np.bincount(y).min() >= 2 else None)
    return [(X_tr, y_tr), (X_val, y_val)]


def _train_and_save(model: Any, parts: list, args: argparse.Namespace, info: dict, loss: str,
                    lr: float, epochs: int, batch_size: int | None, classify: bool) -> int:
    """Train, report and save (``--save``); on Ctrl-C, save what the last complete step left
    (unless ``--no-save-on-interrupt``) and return the exit status for an interruption."""
    epoch = _Epoch()
    try:
        history = _fit(model, parts, args, loss, lr, epochs, batch_size, epoch)
        _finish(model, parts, history, loss, classify, info, args)
    except KeyboardInterrupt:
        if not (args.save and args.save_on_interrupt):
            raise
        _save(model, args.save, info, loss)
        print(f"glassgrad: interrupted in epoch {epoch.epoch} of {epochs}; saved the model as "
              f"it was after its last complete step to {args.save} (--no-save-on-interrupt "
              f"to skip)", file=sys.stderr)
        return INTERRUPTED
    if args.save:
        _save(model, args.save, info, loss)
        print(f"\nsaved the model to {args.save} "
              f"(rebuild it with glassgrad.serialization.load_model)")
    return 0


class _Epoch:
    """A fit callback that knows the epoch in progress, for the message on Ctrl-C."""

    epoch = 0

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        self.epoch = epoch


def _fit(model: Any, parts: list, args: argparse.Namespace, loss: str, lr: float, epochs: int,
         batch_size: int | None, epoch: _Epoch) -> Any:
    from ..compiler import CompileError
    from ..training import NonFiniteLossError, fit

    monitor = None
    if args.diagnose or args.plots:
        from .. import diagnose

        monitor = diagnose.Monitor()
    try:
        return fit(model, *parts[0], loss=loss, optimizer=args.optimizer, lr=lr,
                   epochs=epochs, batch_size=batch_size,
                   validation_data=parts[1] if len(parts) > 1 else None,
                   early_stopping=args.early_stopping, verbose=0 if args.quiet else 1,
                   seed=args.seed, callbacks=[epoch, *([monitor] if monitor else [])],
                   compile=args.compile or False, distributed=args.distributed)
    except NonFiniteLossError as e:
        if monitor is not None:  # what the monitor saw before the loss blew up explains why
            print(diagnose.report(e.history))
        raise CLIError(f"{e} On the command line: try a smaller --lr.") from None
    except (ValueError, TypeError, CompileError) as e:
        raise CLIError(str(e)) from None


def _finish(model: Any, parts: list, history: Any, loss: str, classify: bool, info: dict,
            args: argparse.Namespace) -> None:
    """The report, the monitor's verdict and the plots of a finished run."""
    _report(model, parts, history, loss, classify, info)
    if not (args.diagnose or args.plots):
        return
    from .. import diagnose

    print("\n" + diagnose.report(history))
    if args.plots:
        try:
            written = diagnose.plots.save_all(history, model, *parts[0], args.plots)
        except ImportError as e:
            raise CLIError(f"cannot write the plots to {args.plots!r}: {e}") from None
        except OSError as e:
            raise os_error(e, args.plots) from None
        for path in written:
            print(f"wrote {path}")


def _save(model: Any, path: str, info: dict, loss: str) -> None:
    from .. import serialization

    meta = {"glassgrad.dataset": info["name"], "glassgrad.loss": loss}
    if info["classes"]:
        meta["glassgrad.classes"] = ",".join(info["classes"])
    try:
        serialization.save(model, path, metadata=meta)
    except OSError as e:
        raise os_error(e, path) from None


def _batch_size(spec: str | None, preset: Preset) -> int | None:
    if spec is None:
        return preset.batch_size
    if spec.lower() in ("full", "none", "all"):
        return None
    if not spec.isdigit() or int(spec) < 1:
        raise CLIError(f"--batch-size {spec!r}: give a positive number, or 'full' for the "
                       f"whole data set per step (batch gradient descent).")
    return int(spec)


def _header(info: dict, X: np.ndarray, y: np.ndarray, classify: bool, n_classes: int,
            sizes: list[int], activation: str, args: argparse.Namespace, n_params: int,
            loss: str, lr: float, batch_size: int | None, epochs: int, val_split: float) -> None:
    kind = f"{n_classes} classes" if classify else "a numeric target"
    held = f"{val_split:.0%} held out for validation" if val_split else "all used for training"
    batch = "full batch" if batch_size is None else f"batch size {batch_size}"
    act = f"{activation}" if len(sizes) > 2 else "no hidden layer (a linear model)"
    print(f"glassgrad train {info['name']}")
    print(f"  data     {_n(len(X), 'sample')}, {_n(X.shape[1], 'feature')}, {kind} ({held})")
    print(f"  model    MLP {'-'.join(map(str, sizes))}, {act}, init {args.init}: "
          f"{_n(n_params, 'parameter')}")
    print(f"  training {loss} loss, {args.optimizer} (lr {lr:g}), {batch}, up to {epochs} "
          f"epochs, seed {args.seed}\n")


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _report(model: Any, parts: list, history: Any, loss: str, classify: bool,
            info: dict) -> None:
    from ..training import evaluate

    h = history
    steps = h.params["steps_per_epoch"] * len(h.epoch)
    print(f"\ndone in {h.elapsed:.2f} s: {len(h.epoch)} epochs, {steps} steps")
    if h.restored_epoch is not None:
        print(f"(the model holds the weights of epoch {h.restored_epoch}, its best)")
    print(f"  {'':<11}{'loss':>10}" + (f"{'accuracy':>17}" if classify else ""))
    for name, (X, y) in zip(("train", "validation"), parts):
        logs = evaluate(model, X, y, loss=loss)
        line = f"  {name:<11}{logs['loss']:>10.4f}"
        if classify:
            right = round(logs["accuracy"] * len(X))
            line += f"{100 * logs['accuracy']:>9.1f}% {f'({right}/{len(X)})':>7}"
        print(line)
    if info["name"] == "xor":
        _xor_table(model, *parts[0], loss)


def _xor_table(model: Any, X: np.ndarray, y: np.ndarray, loss: str) -> None:
    from ..autograd import no_grad
    from ..tensor import Tensor

    with no_grad():
        out = model(Tensor._wrap(X))._data.reshape(-1)
    logits = loss == "bce_with_logits"
    p = 1 / (1 + np.exp(-out)) if logits else out
    print(f"\n  x1  x2  target  {'p(1)' if logits else 'output':>6}")
    for (a, b), t, o in zip(X, y, p):
        mark = "ok" if (o > 0.5) == bool(t) else "WRONG"
        print(f"  {a:>2g}  {b:>2g}  {t:>6}  {o:>6.3f}  {mark}")

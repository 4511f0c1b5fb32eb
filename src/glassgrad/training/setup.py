"""What ``fit`` checks and resolves before it touches a weight: data, loss, optimizer, metrics.

Every check runs before the first step, so bad input leaves the model exactly as it was.
Errors say what is wrong, where (row, column, shape) and how to fix it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor

# Short names -> nn.functional names; each is also accepted under its long name.
LOSSES = {
    "mse": "mse_loss", "half_sse": "half_sse_loss", "l1": "l1_loss",
    "bce": "binary_cross_entropy", "bce_with_logits": "binary_cross_entropy_with_logits",
    "cross_entropy": "cross_entropy", "nll": "nll_loss",
}
_LOSS_CLASSES = {
    "MSELoss": "mse", "HalfSSELoss": "half_sse", "L1Loss": "l1", "BCELoss": "bce",
    "BCEWithLogitsLoss": "bce_with_logits", "CrossEntropyLoss": "cross_entropy",
    "NLLLoss": "nll",
}
CLASS_INDEX_LOSSES = {"cross_entropy", "nll"}  # targets are integer class indices
CLASSIFICATION_LOSSES = CLASS_INDEX_LOSSES | {"bce", "bce_with_logits"}

# Name -> (optim class name, default lr: Keras's, PyTorch's for the adaptive ones).
OPTIMIZERS = {
    "sgd": ("SGD", 0.01), "adam": ("Adam", 0.001), "adamw": ("AdamW", 0.001),
    "rmsprop": ("RMSprop", 0.001),
}


# ----------------------------------------------------------------------------- arguments
def count(value: Any, name: str, minimum: int = 1, where: str = "fit()",
          example: int = 10) -> int:
    """``value`` as a Python int >= ``minimum``. NumPy integers pass (through
    ``operator.index``, as NumPy takes sizes); bools, floats and strings are refused."""
    if isinstance(value, bool | np.bool_):  # True is an int to Python, never a count here
        n = None
    else:
        try:
            n = operator.index(value)
        except TypeError:
            n = None
    if n is None:
        raise TypeError(f"{where}: {name} must be an integer >= {minimum}, got {value!r} (a "
                        f"{type(value).__name__}). Fix: pass a whole number, e.g. "
                        f"{name}={example}.")
    if n < minimum:
        raise ValueError(f"{where}: {name} must be an integer >= {minimum}, got {n}. Fix: "
                         f"pass e.g. {name}={example}.")
    return n


def real(value: Any, name: str, where: str = "fit()", example: float = 0.01) -> float:
    """``value`` as a finite Python float; Python and NumPy ints and floats pass, bools,
    strings and NaN/Inf are refused."""
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_)
    if not ok:
        raise TypeError(f"{where}: {name} must be a number, got {value!r} (a "
                        f"{type(value).__name__}). Fix: pass e.g. {name}={example}.")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{where}: {name} must be a finite number, got {value!r}. Fix: pass "
                         f"e.g. {name}={example}.")
    return v


def flag(value: Any, name: str, where: str = "fit()") -> bool:
    """``value`` as a bool; a string such as "false" (which Python finds true) is refused."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{where}: {name} must be True or False, got {value!r} (a "
                        f"{type(value).__name__}). Fix: pass {name}=True or {name}=False.")
    return bool(value)


# ----------------------------------------------------------------------------- data
def as_array(a: Any, what: str) -> np.ndarray:
    arr = a._data if isinstance(a, Tensor) else np.asarray(a)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"fit(): {what} must hold numbers, got dtype {arr.dtype}. Fix: convert "
                        f"it to a float (features) or integer (labels) NumPy array.")
    return arr


def check_finite(arr: np.ndarray, what: str) -> None:
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        idx = ", ".join(map(str, where))
        raise ValueError(
            f"fit(): {what}[{idx}] is {arr[where]}; the data must be finite (a NaN or Inf "
            f"input makes every gradient NaN). Fix: drop or fill the bad values first."
        )


def check_pair(X: np.ndarray, y: np.ndarray, what: str, names: tuple[str, str] = ("X", "y")
               ) -> None:
    if X.ndim == 0 or len(X) == 0:
        raise ValueError(f"fit(): {what} is empty (X has shape {X.shape}); there is nothing to "
                         f"train on. Fix: pass at least one sample.")
    if y.ndim == 0 or len(y) != len(X):
        raise ValueError(
            f"fit(): {what} has {len(X)} samples in X (shape {X.shape}) but y has shape "
            f"{y.shape}. Fix: pass one target per sample (row of X)."
        )
    check_finite(X, names[0])
    check_finite(y, names[1])


def param_dtype(model: Any) -> np.dtype:
    params = list(model.parameters())
    if not params:
        raise ValueError(
            f"fit(): the model ({type(model).__name__}) has no parameters to train. Fix: "
            f"give it layers with weights, e.g. nn.Linear or nn.MLP."
        )
    return params[0]._data.dtype


def probe(model: Any, X: np.ndarray) -> np.ndarray:
    """Run the model on one sample (no graph) to learn its output shape or fail early."""
    x1 = X[:1]
    try:
        with no_grad():
            out = model(Tensor._wrap(x1))
    except Exception as e:
        raise ValueError(
            f"fit(): the model cannot take this data: running it on one sample X[:1] of "
            f"shape {x1.shape} failed with {type(e).__name__}: {e} Fix: make the model's "
            f"input size match X's {X.shape[1:]} features per sample."
        ) from e
    arr = out._data if isinstance(out, Tensor) else np.asarray(out)
    if arr.ndim == 0 or arr.shape[0] != 1:
        raise ValueError(f"fit(): the model maps 1 sample (shape {x1.shape}) to an output of "
                         f"shape {arr.shape}; it must keep the batch dimension first.")
    return arr


def resolve_loss(loss: Any, y: np.ndarray, out1: np.ndarray, model: Any) -> tuple[Callable, str]:
    """(loss function, kind) where kind is a short name, or "custom" for other callables."""
    from ..nn import functional as F

    if loss is None:  # pick the usual loss for the targets and the output width
        if y.dtype.kind in "iub":
            last = list(model.modules())[-1] if hasattr(model, "modules") else None
            if out1.shape[-1] > 1:
                loss = "cross_entropy"
            else:
                loss = "bce" if type(last).__name__ == "Sigmoid" else "bce_with_logits"
        else:
            loss = "mse"
    if isinstance(loss, str):
        short = {v: k for k, v in LOSSES.items()}.get(loss, loss)
        if short not in LOSSES:
            raise ValueError(f"fit(): unknown loss {loss!r}. Fix: use one of "
                             f"{sorted(LOSSES)} or a callable loss(output, target).")
        return getattr(F, LOSSES[short]), short
    if not callable(loss):
        raise TypeError(f"fit(): loss must be a name or a callable, got {type(loss).__name__}.")
    kind = _LOSS_CLASSES.get(type(loss).__name__)
    if kind is None:
        name = getattr(loss, "__name__", "")
        kind = {v: k for k, v in LOSSES.items()}.get(name, "custom")
    return loss, kind


def prepare_targets(y: np.ndarray, out1: np.ndarray, kind: str, dtype: np.dtype,
                    what: str = "y") -> np.ndarray:
    """Targets in the dtype and shape the loss needs; labels checked against the outputs."""
    if kind in CLASS_INDEX_LOSSES:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.dtype.kind == "f" and y.ndim == 1:
            if not np.all(y == np.round(y)):
                raise TypeError(f"fit(): {kind} needs integer class labels in {what}, got "
                                f"fractional values. Fix: pass labels 0..C-1 as integers.")
            y = y.astype(np.int64)
        if y.dtype.kind in "iub" and y.ndim == 1:
            n_classes = out1.shape[-1]
            bad = np.flatnonzero((y < 0) | (y >= n_classes))
            if bad.size:
                raise ValueError(_label_error(y, bad, n_classes, what))
            return y.astype(np.int64, copy=False)
        if y.dtype.kind in "iub":
            raise ValueError(f"fit(): {kind} needs one integer label per sample ({what} of "
                             f"shape (N,)), got shape {y.shape}. Fix: pass y.reshape(-1) or "
                             f"the class indices y.argmax(1) of one-hot rows.")
        return y.astype(dtype, copy=False)  # class probabilities: shape checked by the loss
    y = y.astype(dtype, copy=False)
    if y.ndim == 1 and out1.shape[1:] == (1,):
        y = y[:, None]  # (N,) against (N, 1) outputs would broadcast to (N, N)
    if kind != "custom" and y.shape[1:] != out1.shape[1:]:
        raise ValueError(
            f"fit(): the model outputs shape (batch, {', '.join(map(str, out1.shape[1:]))}) "
            f"but {what} has shape {y.shape}; the {kind} loss compares them element by "
            f"element. Fix: give the last layer {y.shape[1] if y.ndim > 1 else 1} outputs, "
            f"or reshape the targets."
        )
    if kind in ("bce", "bce_with_logits") and (y.min() < 0 or y.max() > 1):
        raise ValueError(f"fit(): {kind} needs targets in [0, 1] (probabilities of class 1), "
                         f"but {what} holds values from {y.min()} to {y.max()}. Fix: use labels "
                         f"0/1, or cross_entropy for more than two classes.")
    return y


def _label_error(y: np.ndarray, bad: np.ndarray, n_classes: int, what: str) -> str:
    i = int(bad[0])
    lo, hi = int(y.min()), int(y.max())
    if lo < 0:  # more outputs would not help: a negative index is never a class
        fix = ("relabel the classes 0..C-1, e.g. np.unique(y, return_inverse=True)[1] (for "
               "-1/+1 labels: (y + 1) // 2)")
    else:
        fix = f"relabel the classes 0..C-1, or give the model {hi + 1} outputs"
    return (f"fit(): {what}[{i}] = {y[i]} is not a class of this model: it has {n_classes} "
            f"outputs, so labels must be in 0..{n_classes - 1}, but {what} holds labels from "
            f"{lo} to {hi} ({bad.size} out of range). Fix: {fix}.")


def resolve_optimizer(optimizer: Any, lr: float | None, model: Any) -> Any:
    from .. import optim

    if lr is not None:
        given, lr = lr, real(lr, "lr")  # (the message shows the value as given: float32 -0.1)
        if not lr >= 0:
            raise ValueError(f"fit(): lr={given!s} must be >= 0 (a negative learning rate climbs "
                             f"the loss). Fix: pass a positive value such as lr=0.01.")
    if isinstance(optimizer, str):
        key = optimizer.lower()
        if key not in OPTIMIZERS:
            raise ValueError(f"fit(): unknown optimizer {optimizer!r}. Fix: use one of "
                             f"{sorted(OPTIMIZERS)} or an optim.Optimizer instance.")
        cls, default_lr = OPTIMIZERS[key]
        return getattr(optim, cls)(model.parameters(), lr=default_lr if lr is None else lr)
    if not hasattr(optimizer, "step") or not hasattr(optimizer, "param_groups"):
        raise TypeError(f"fit(): optimizer must be a name or an optim.Optimizer, got "
                        f"{type(optimizer).__name__}.")
    if lr is not None:
        raise ValueError("fit(): lr= only applies to an optimizer given by name; this one was "
                         "built already. Fix: set lr when constructing the optimizer.")
    own = {id(p) for p in model.parameters()}
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    for g in optimizer.param_groups:
        if not g.get("lr", 0) >= 0:
            raise ValueError(f"fit(): the optimizer has lr={g['lr']}; it must be >= 0.")
    if not own & held:
        raise ValueError(
            f"fit(): the optimizer holds none of the model's {len(own)} parameters, so "
            f"training would change nothing. Fix: build it from this model, e.g. "
            f"optim.SGD(model.parameters(), lr=0.1)."
        )
    return optimizer


# ----------------------------------------------------------------------------- metrics
def accuracy_fn(kind: str, y: np.ndarray) -> Callable[[np.ndarray, np.ndarray], float]:
    """Accuracy for this loss and these targets: argmax for several outputs, else a threshold
    (0 for logits or ±1 targets, 0.5 for probabilities and 0/1 regression targets)."""
    pm1 = y.dtype.kind in "if" and y.size and np.isin(y, (-1, 1)).all()
    threshold = 0.0 if kind == "bce_with_logits" or pm1 else 0.5

    def accuracy(out: np.ndarray, t: np.ndarray) -> float:
        # count_nonzero, not mean: this runs every epoch, and np.mean's overhead shows there
        if out.ndim == 2 and out.shape[1] > 1:
            true = t if t.ndim == 1 else t.argmax(1)
            return int(np.count_nonzero(out.argmax(1) == true)) / len(out)
        o, t = out.reshape(len(out)), t.reshape(len(t))
        return int(np.count_nonzero((o > threshold) == (t > threshold))) / len(out)

    return accuracy


def resolve_metrics(metrics: Any, kind: str, y_raw: np.ndarray,
                    y: np.ndarray) -> dict[str, Callable]:
    if metrics == "auto":
        classify = kind in CLASSIFICATION_LOSSES or y_raw.dtype.kind in "iub"
        metrics = ("accuracy",) if classify else ()
    out: dict[str, Callable] = {}
    for m in metrics or ():
        if m in ("accuracy", "acc"):
            out["accuracy"] = accuracy_fn(kind, y)
        elif m == "mae":
            out["mae"] = lambda o, t: float(np.mean(np.abs(o - t.reshape(o.shape))))
        elif m == "mse":
            out["mse"] = lambda o, t: float(np.mean((o - t.reshape(o.shape)) ** 2))
        elif callable(m):  # scikit-learn's order: metric(y_true, y_pred)
            out[getattr(m, "__name__", "metric")] = lambda o, t, m=m: float(m(t, o))
        else:
            raise ValueError(f"fit(): unknown metric {m!r}. Fix: use 'accuracy', 'mae', 'mse' "
                             f"or a callable metric(y_true, y_pred).")
    return out

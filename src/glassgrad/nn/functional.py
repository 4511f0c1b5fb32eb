"""Losses and weight penalties, composed from engine ops (no backward code here).

Every loss takes ``(input, target)`` and ``reduction`` in {"mean", "sum", "none"}, as PyTorch.
Targets may be Tensors, NumPy arrays or lists; float targets take the input's dtype. Shapes and
labels are checked before anything is computed, and errors name the loss and the shapes.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import functional as F
from .. import ops
from ..autograd import record
from ..functional import linear
from ..functional import log_softmax as _log_softmax
from ..ops import apply
from ..tensor import Tensor
from .functional_act import (
    _softplus1,
    dropout,
    elu,
    gelu,
    hardtanh,
    leaky_relu,
    leaky_relu_,
    log_softmax,
    logsigmoid,
    mish,
    normalize,
    one_hot,
    relu,
    relu6,
    relu_,
    sigmoid,
    silu,
    softmax,
    softmin,
    softplus,
    tanh,
)

_REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------------------- helpers
def _as_input(x: Any, loss: str) -> Tensor:
    if not isinstance(x, Tensor):
        x = Tensor._wrap(np.asarray(x, dtype=np.float32) if isinstance(x, list | float)
                         else np.asarray(x))
    if x._data.dtype.kind != "f":
        raise TypeError(
            f"{loss}: the input (predictions) must be floating point, got {x.dtype} with shape "
            f"{x.shape}. Fix: pass the model's float output."
        )
    return x


def _float_target(target: Any, like: Tensor, loss: str, same_shape: bool = True) -> Tensor:
    if (type(target) is Tensor and not target._requires_grad
            and target._data.dtype is like._data.dtype and target._data.shape == like.shape):
        return target  # the common case, checked cheaply: a constant target that fits
    t = target if isinstance(target, Tensor) else Tensor._wrap(np.asarray(target))
    if same_shape and t.shape != like.shape:
        raise ValueError(
            f"{loss}: input shape {like.shape} and target shape {t.shape} differ. Broadcasting "
            f"them would compare every prediction with every target. Fix: give the target the "
            f"input's shape, e.g. y.reshape({like.shape})."
        )
    if t._data.dtype != like._data.dtype:
        t = F.cast(t, like._data.dtype)  # an op (not .astype on the array): compile replays it
    return t


def _reduce(loss: Tensor, reduction: str, name: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_reduction(reduction: str, name: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _legacy_reduction(size_average: bool | None, reduce: bool | None, reduction: str,
                      name: str = "loss") -> str:
    """PyTorch's deprecated ``size_average``/``reduce`` pair, mapped (with its warning) to the
    ``reduction`` it means; ``reduction`` itself when both are None."""
    if size_average is None and reduce is None:
        return reduction
    if isinstance(size_average, str) or isinstance(reduce, str):
        # PyTorch would read the text as a true flag and silently take the mean
        raise TypeError(
            f"{name}: got the reduction {size_average or reduce!r} where PyTorch's argument "
            f"order has size_average or reduce (deprecated flags). Fix: pass it by name: "
            f"reduction={size_average or reduce!r}."
        )
    warnings.warn("size_average and reduce args will be deprecated, please use "
                  "reduction='mean', 'sum' or 'none' instead.", UserWarning, stacklevel=3)
    if reduce is False:
        return "none"
    return "sum" if size_average is False else "mean"


def _weighted_reduce(loss: Tensor, weight: Any, reduction: str, name: str,
                     mean_by_weight: bool = True) -> Tensor:
    """Reduce ``loss`` times a per-element ``weight``. PyTorch's "mean" is Σ w·l / Σ w for
    mse_loss and l1_loss but the plain mean of w·l for huber_loss (``mean_by_weight=False``)."""
    if weight is None:
        return _reduce(loss, reduction, name)
    w = _float_target(weight, loss, name, same_shape=False)
    if w.shape != loss.shape:
        raise ValueError(f"{name}: weight of shape {w.shape} must have the input's shape "
                         f"{loss.shape} (one weight per element, as PyTorch).")
    if reduction == "mean" and mean_by_weight:
        return (loss * w).sum() / w._data.sum()
    return _reduce(loss * w, reduction, name)


# --------------------------------------------------------------------------- regression
def mse_loss(
    input: Any, target: Any, size_average: bool | None = None,  # noqa: A002
    reduce: bool | None = None, reduction: str = "mean", weight: Any = None,
) -> Tensor:
    """PyTorch's mean squared error: (1/n) Σ (ŷ − y)²  (no ½; derivative (2/n)(ŷ − y));
    with ``weight`` (the input's shape) Σ w·(ŷ − y)² / Σ w (PyTorch's weighted mean).

    >>> import glassgrad as gg
    >>> gg.nn.functional.mse_loss(gg.tensor([1.0, 3.0]), gg.tensor([0.0, 0.0])).item()
    5.0
    """
    if (reduction == "mean" or reduction == "sum") and isinstance(input, Tensor) \
            and isinstance(target, Tensor) and weight is None and size_average is None \
            and reduce is None:
        out = _mse_same_kind(input, target, reduction)
        if out is not None:
            return out
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce, reduction, "mse_loss")
    _check_reduction(reduction, "mse_loss")
    x = _as_input(input, "mse_loss")
    y = _float_target(target, x, "mse_loss")
    if reduction != "none" and weight is None:  # the fused primitive: one node (speed)
        return apply(ops.mse_loss, x, y, reduction=reduction)
    d = x - y
    return _weighted_reduce(d * d, weight, reduction, "mse_loss")


def _mse_same_kind(x: Tensor, y: Tensor, reduction: str) -> Tensor | None:
    """``mse_loss``'s usual call, a float input and a target of its shape and dtype, recorded
    as apply records it, without the argument checks and conversions nothing needs here
    (they cost a quarter of the loss on a small batch); None for any other call."""
    a, b = x._data, y._data
    dt = a.dtype
    if dt.kind != "f" or b.dtype is not dt or b.shape != a.shape:
        return None
    out = ops.mse_loss.forward(a, b, reduction=reduction)
    if out.dtype is not dt:  # (never for float inputs of one dtype: apply decides)
        return None
    return record(ops.mse_loss, (x, y), out, {"reduction": reduction})


def half_sse_loss(input: Any, target: Any, reduction: str = "sum") -> Tensor:  # noqa: A002
    """The textbooks' (and the seeds') E = ½ Σ (ŷ − y)², whose derivative is simply ŷ − y.

    ``reduction="mean"`` gives ½ · mean, ``"none"`` the per-element ½ (ŷ − y)².
    """
    _check_reduction(reduction, "half_sse_loss")
    x = _as_input(input, "half_sse_loss")
    d = x - _float_target(target, x, "half_sse_loss")
    return _reduce(d * d, reduction, "half_sse_loss") * 0.5


def l1_loss(
    input: Any, target: Any, size_average: bool | None = None,  # noqa: A002
    reduce: bool | None = None, reduction: str = "mean", weight: Any = None,
) -> Tensor:
    """Mean absolute error (1/n) Σ |ŷ − y|; derivative sign(ŷ − y)/n."""
    reduction = _legacy_reduction(size_average, reduce, reduction, "l1_loss")
    _check_reduction(reduction, "l1_loss")
    x = _as_input(input, "l1_loss")
    loss = (x - _float_target(target, x, "l1_loss")).abs()
    return _weighted_reduce(loss, weight, reduction, "l1_loss")


def huber_loss(
    input: Any, target: Any, reduction: str = "mean", delta: float = 1.0,  # noqa: A002
    weight: Any = None,
) -> Tensor:
    """½(ŷ − y)² where |ŷ − y| < δ, else δ(|ŷ − y| − ½δ): quadratic near 0, linear beyond."""
    return _huber("huber_loss", input, target, reduction, delta, weight, scale=1.0)


def smooth_l1_loss(
    input: Any, target: Any, size_average: bool | None = None,  # noqa: A002
    reduce: bool | None = None, reduction: str = "mean", beta: float = 1.0,
) -> Tensor:
    """½(ŷ − y)²/β where |ŷ − y| < β, else |ŷ − y| − ½β (huber_loss with δ = β, divided
    by β; beta = 0 is the L1 loss)."""
    reduction = _legacy_reduction(size_average, reduce, reduction, "smooth_l1_loss")
    if beta == 0:
        return l1_loss(input, target, reduction=reduction)
    return _huber("smooth_l1_loss", input, target, reduction, beta, None, scale=1.0 / beta)


def _huber(name: str, input: Any, target: Any, reduction: str, delta: float,  # noqa: A002
           weight: Any, scale: float) -> Tensor:
    _check_reduction(reduction, name)
    if delta < 0:
        raise ValueError(f"{name}: {'delta' if scale == 1 else 'beta'} must be >= 0, "
                         f"got {delta}")
    x = _as_input(input, name)
    d = x - _float_target(target, x, name)
    a = d.abs()
    loss = F.where(a < delta, d * d * 0.5, (a - 0.5 * delta) * delta)
    loss = loss * scale if scale != 1 else loss
    return _weighted_reduce(loss, weight, reduction, name, mean_by_weight=False)


# --------------------------------------------------------------------------- binary
def _weighted(loss: Tensor, weight: Any, name: str) -> Tensor:
    if weight is None:
        return loss
    w = _float_target(weight, loss, name, same_shape=False)
    try:
        np.broadcast_shapes(w.shape, loss.shape)
    except ValueError:
        raise ValueError(
            f"{name}: weight of shape {w.shape} does not broadcast to the loss of shape "
            f"{loss.shape}. Fix: give one weight per element or per class."
        ) from None
    return loss * w


def _clamped_log(p: Tensor) -> Tensor:
    """max(log p, −100) as PyTorch's BCE, without ever evaluating log(0)."""
    pos = p > 0
    logs = F.where(pos, p, 1.0).log()
    return F.clip(F.where(pos, logs, -100.0), lo=-100.0)


def binary_cross_entropy(
    input: Any, target: Any, weight: Any = None, size_average: bool | None = None,  # noqa: A002
    reduce: bool | None = None, reduction: str = "mean",
) -> Tensor:
    """−[y·log p + (1 − y)·log(1 − p)] on probabilities p, each log clamped at −100 as in
    PyTorch (so p = 0 or 1 gives a finite loss). Prefer ``binary_cross_entropy_with_logits``.
    """
    name = "binary_cross_entropy"
    reduction = _legacy_reduction(size_average, reduce, reduction, name)
    _check_reduction(reduction, name)
    p = _as_input(input, name)
    y = _float_target(target, p, name)
    if p._data.size and (p._data.min() < 0 or p._data.max() > 1):
        raise ValueError(
            f"{name}: the input must be probabilities in [0, 1], but it ranges over "
            f"[{p._data.min():g}, {p._data.max():g}]. Fix: apply a sigmoid first, or better, "
            f"use binary_cross_entropy_with_logits on the raw outputs (it is stable)."
        )
    loss = -(y * _clamped_log(p) + (1 - y) * _clamped_log(1 - p))
    return _reduce(_weighted(loss, weight, name), reduction, name)


def binary_cross_entropy_with_logits(
    input: Any, target: Any, weight: Any = None, size_average: bool | None = None,  # noqa: A002
    reduce: bool | None = None, reduction: str = "mean", pos_weight: Any = None,
) -> Tensor:
    """The logistic-regression cost on logits x: log(1 + eˣ) − x·y, i.e.
    max(x, 0) − x·y + log(1 + e^−|x|), which never overflows; derivative σ(x) − y.
    With ``pos_weight`` w: w·y·log(1 + e⁻ˣ) + (1 − y)·log(1 + eˣ), as PyTorch."""
    name = "binary_cross_entropy_with_logits"
    reduction = _legacy_reduction(size_average, reduce, reduction, name)
    _check_reduction(reduction, name)
    x = _as_input(input, name)
    y = _float_target(target, x, name)
    if pos_weight is None:
        loss = _softplus1(x) - x * y
    else:
        pw = _float_target(pos_weight, x, name, same_shape=False)
        loss = pw * y * _softplus1(-x) + (1 - y) * _softplus1(x)
    return _reduce(_weighted(loss, weight, name), reduction, name)


# --------------------------------------------------------------------------- classes
def _class_targets(target: Any, x: Tensor, name: str, ignore_index: int) -> np.ndarray:
    t = target._data if isinstance(target, Tensor) else np.asarray(target)
    if x.ndim not in (1, 2):
        raise ValueError(
            f"{name}: expected input of shape (batch, classes) or (classes,), got {x.shape}."
        )
    want = x.shape[:1] if x.ndim == 2 else ()
    if t.dtype.kind not in "iu":
        raise TypeError(
            f"{name}: the target must hold integer class indices, got dtype {t.dtype} with "
            f"shape {t.shape}. Fix: pass labels as integers, e.g. y.astype(np.int64)"
            + (" (for class probabilities, give a float target of the input's shape to "
               "cross_entropy)." if name == "cross_entropy" else ".")
        )
    if t.shape != want:
        hint = " Fix: flatten it with y.reshape(-1)." if t.size == (want[0] if want else 1) else ""
        raise ValueError(
            f"{name}: input of shape {x.shape} needs a target of shape {want} (one class "
            f"index per sample), got {t.shape}.{hint}"
        )
    n_classes = x.shape[-1]
    if t.size and (t.min() < 0 or t.max() >= n_classes):  # (two fast reductions first)
        bad = ((t < 0) | (t >= n_classes)) & (t != ignore_index)
    else:
        bad = np.zeros(0, dtype=bool)
    if bad.any():
        pos = int(np.flatnonzero(bad.ravel())[0])
        used = t[t != ignore_index]
        lo, hi = int(used.min()), int(used.max())
        fix = (f"give the model {hi + 1} outputs, or relabel the classes 0..C-1" if lo >= 0
               else "relabel the classes 0..C-1 (a negative label is never a class; for "
               "-1/+1 labels use (y + 1) // 2)")
        raise IndexError(
            f"{name}: target contains label {int(t.ravel()[pos])} at position {pos}, but the "
            f"input has {n_classes} classes, so labels must be in 0..{n_classes - 1}; the "
            f"labels range from {lo} to {hi}. Fix: {fix}."
        )
    return t


def nll_loss(
    input: Any, target: Any, weight: Any = None, size_average: bool | None = None,  # noqa: A002
    ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
) -> Tensor:
    """Negative log likelihood −log pᵧ on log-probabilities (batch, classes) and integer targets.

    With class weights w the mean is Σ −wᵧ log pᵧ / Σ wᵧ (PyTorch's weighted mean); samples
    whose target is ``ignore_index`` count for nothing.
    """
    name = "nll_loss"
    reduction = _legacy_reduction(size_average, reduce, reduction, name)
    _check_reduction(reduction, name)
    x = _as_input(input, name)
    t = _class_targets(target, x, name, ignore_index)
    return _nll(x, t, weight, ignore_index, reduction, name)


def _nll(x: Tensor, t: np.ndarray, weight: Any, ignore_index: int, reduction: str,
         name: str, smoothing: float = 0.0) -> Tensor:
    unbatched = x.ndim == 1
    if unbatched:
        x, t = x.reshape(1, -1), t.reshape(1)
    n, c = x.shape
    if weight is not None and np.shape(weight) != (c,):
        raise ValueError(f"{name}: weight must have one entry per class, shape ({c},), "
                         f"got {np.shape(weight)}")
    dt = x._data.dtype
    keep = t != ignore_index
    safe = t if keep.all() else np.where(keep, t, 0)
    w_row = np.ones(n, dtype=dt) if weight is None else (
        np.asarray(weight._data if isinstance(weight, Tensor) else weight, dt)[safe]
    )
    w_row = w_row * keep
    row = keep.astype(dt)  # each kept sample's share of the smoothing term
    # −log pᵧ is picked by a one-hot mask that carries the sign, the class weight and the
    # mean's 1/Σw: the whole loss is then three nodes (log_softmax, mul, sum), and a dense
    # multiply is cheaper in NumPy than scattering the gradient back with np.add.at.
    if reduction == "mean":
        denom = w_row.sum()
        if denom == 0:  # every sample ignored: PyTorch's mean is nan
            return (x * np.zeros((n, c), dt)).sum() * np.asarray(np.nan, dtype=dt)
        w_row, row = w_row / denom, row / denom
    mask = np.zeros((n, c), dtype=dt)
    mask[np.arange(n), safe] = -w_row * (1 - smoothing) if smoothing else -w_row
    if smoothing:  # PyTorch's label smoothing: + (ε/C)·Σ_c −w_c log p_c on every kept sample
        w_class = np.ones(c, dt) if weight is None else np.asarray(
            weight._data if isinstance(weight, Tensor) else weight, dt)
        mask -= (smoothing / c) * np.outer(row, w_class).astype(dt)
    if reduction == "none":
        picked = (x * mask).sum(axis=-1)
        return picked[0] if unbatched else picked
    return (x * mask).sum()


def cross_entropy(
    input: Any, target: Any, weight: Any = None, size_average: bool | None = None,  # noqa: A002
    ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """−log softmax(x)ᵧ from logits x (batch, classes) and integer targets y; stable (it works
    with log_softmax, never log of an underflowed probability). Derivative softmax(x) − onehot(y).

    A float target of the input's shape is taken as class probabilities: −Σ_c y_c log p_c.
    ``label_smoothing`` ε mixes the target with the uniform distribution: (1 − ε)·y + ε/C.

    >>> import glassgrad as gg
    >>> round(gg.nn.functional.cross_entropy(gg.tensor([[0.0, 0.0]]), [1]).item(), 4)
    0.6931
    """
    name = "cross_entropy"
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce, reduction, name)
    _check_reduction(reduction, name)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing}")
    x = _as_input(input, name)
    t_arr = target._data if isinstance(target, Tensor) else np.asarray(target)
    if t_arr.dtype.kind == "f" and t_arr.shape == x.shape:
        y = _float_target(target, x, name)
        if label_smoothing:
            y = y * (1 - label_smoothing) + label_smoothing / x.shape[-1]
        logp = _log_softmax(x, axis=-1)
        if weight is not None:
            y = y * _float_target(weight, x, name, same_shape=False)
        return _reduce(-(logp * y).sum(axis=-1), reduction, name)
    t = _class_targets(target, x, name, ignore_index)
    if (weight is None and x.ndim == 2 and reduction != "none" and not label_smoothing
            and not (t == ignore_index).any()):
        # The common case, fused: one node, gradient softmax − onehot (speed).
        return apply(ops.cross_entropy, x, t, reduction=reduction)
    return _nll(_log_softmax(x, axis=-1), t, weight, ignore_index, reduction, name,
                label_smoothing)


# --------------------------------------------------------------------------- penalties
def _params(params: Any) -> list[Tensor]:
    if hasattr(params, "parameters") and callable(params.parameters):
        return list(params.parameters())
    if isinstance(params, Tensor):
        return [params]
    return list(params)


def l2_penalty(params: Iterable[Tensor] | Any) -> Tensor:
    """½ Σ w² over ``params`` (Tensors or a Module: all its parameters, biases included).

    ``loss + λ·l2_penalty(ws)`` has gradient ∂loss + λw: SGD's ``weight_decay=λ``. It is the
    negative log of a Gaussian prior N(0, 1/λ) on the weights, up to a constant: the log P(N)
    term of maximizing log P(D|N) + log P(N).
    """
    ps = _params(params)
    if not ps:
        raise ValueError("l2_penalty: got no parameters")
    total = (ps[0] * ps[0]).sum()
    for p in ps[1:]:
        total = total + (p * p).sum()
    return total * 0.5


def l1_penalty(params: Iterable[Tensor] | Any) -> Tensor:
    """Σ |w| over ``params``: the negative log of a Laplace prior (it drives weights to 0)."""
    ps = _params(params)
    if not ps:
        raise ValueError("l1_penalty: got no parameters")
    total = ps[0].abs().sum()
    for p in ps[1:]:
        total = total + p.abs().sum()
    return total


__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "dropout",
    "elu", "gelu", "half_sse_loss", "hardtanh", "huber_loss", "l1_loss", "l1_penalty", "l2_penalty",
    "leaky_relu", "leaky_relu_", "linear", "log_softmax", "logsigmoid", "mish", "mse_loss",
    "nll_loss", "normalize", "one_hot", "relu", "relu_", "relu6", "sigmoid", "silu",
    "smooth_l1_loss", "softmax", "softmin", "softplus", "tanh",
]

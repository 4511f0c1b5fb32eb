"""Convolution, pooling, normalization and embedding functions, with PyTorch's signatures.

``conv2d``, ``max_pool2d`` and ``embedding`` call the primitives of ``ops_nn.py``; the rest
are composites with no backward code: ``avg_pool2d`` is a convolution with a constant
averaging kernel, ``adaptive_avg_pool2d`` two products with constant averaging matrices,
``batch_norm``/``layer_norm`` are built from mean, subtract, multiply and pow. Arguments are
checked here, before anything is computed, so errors name the function and the shapes.
Images are (N, C, H, W), or (C, H, W) for a single unbatched one, as in PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import autograd as _autograd
from .. import functional as F
from .. import ops_nn
from ..ops import apply
from ..ops_nn import Pair, out_size
from ..tensor import Tensor

IntPair = int | tuple[int, int]


# --------------------------------------------------------------------------- checks
def _tensor(x: Any) -> Tensor:
    if isinstance(x, Tensor):
        return x
    arr = np.asarray(x)
    return Tensor._wrap(arr.astype(np.float32) if arr.dtype == np.float64 and not
                        isinstance(x, np.ndarray) else arr)


def _pair(v: Any, name: str, fn: str, low: int) -> Pair:
    """An int or two ints, each >= ``low``, as a (height, width) pair."""
    pair = (v, v) if isinstance(v, int | np.integer) else tuple(v) if isinstance(
        v, tuple | list) else None
    if pair is None or len(pair) != 2 or not all(isinstance(i, int | np.integer) for i in pair):
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints (height, width), "
                        f"got {v!r}")
    if min(pair) < low:
        raise ValueError(f"{fn}: {name} must be >= {low} in each dimension, got {v!r}")
    return int(pair[0]), int(pair[1])


def _images(x: Any, fn: str) -> tuple[Tensor, bool]:
    """(N, C, H, W) input, and whether it came unbatched as (C, H, W)."""
    x = _tensor(x)
    if x.ndim == 3:
        return F.reshape(x, (1, *x.shape)), True
    if x.ndim != 4:
        raise ValueError(
            f"{fn}: expected an image batch of shape (N, C, H, W) or one image (C, H, W), got "
            f"shape {x.shape}. Fix: reshape the data, e.g. x.reshape(-1, 1, 28, 28) for "
            f"flattened 28×28 grey images."
        )
    return x, False


def _unbatch(y: Tensor, unbatched: bool) -> Tensor:
    return F.reshape(y, y.shape[1:]) if unbatched else y


def _check_out(x: Tensor, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair,
               fn: str, ceil_mode: bool = False) -> None:
    hw = tuple(out_size(x.shape[2 + i], kernel[i], stride[i], padding[i], dilation[i],
                        ceil_mode) for i in range(2))
    if min(hw) < 1:
        raise ValueError(
            f"{fn}: the input's image is {x.shape[2]}×{x.shape[3]} (padding {padding}), smaller "
            f"than the kernel {kernel} with dilation {dilation}: the output would be "
            f"{hw[0]}×{hw[1]}. Fix: use a smaller kernel, more padding, or larger images."
        )


# --------------------------------------------------------------------------- conv2d
def _same_padding(kernel: Pair, dilation: Pair, stride: Pair) -> Pair:
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    if stride != (1, 1) or any(t % 2 for t in totals):
        raise ValueError(
            f"conv2d: padding='same' is supported for stride 1 and an odd effective kernel "
            f"size (so the padding is the same on both sides); got kernel {kernel}, dilation "
            f"{dilation}, stride {stride}. Fix: give the padding as numbers."
        )
    return totals[0] // 2, totals[1] // 2


def _padding(padding: Any, kernel: Pair, dilation: Pair, stride: Pair) -> Pair:
    if padding == "valid":
        return 0, 0
    if padding == "same":
        return _same_padding(kernel, dilation, stride)
    if isinstance(padding, str):
        raise ValueError(f"conv2d: padding must be 'valid', 'same' or numbers, got {padding!r}")
    return _pair(padding, "padding", "conv2d", 0)


def _check_conv(x: Tensor, w: Tensor, bias: Any, groups: int) -> None:
    if w.ndim != 4:
        raise ValueError(f"conv2d: weight must have shape (out_channels, in_channels/groups, "
                         f"kh, kw), got {w.shape}")
    if not isinstance(groups, int | np.integer) or groups < 1 or w.shape[0] % groups:
        raise ValueError(f"conv2d: groups must be a positive int dividing out_channels "
                         f"({w.shape[0]}), got {groups!r}")
    if x.shape[1] != w.shape[1] * groups:
        raise ValueError(
            f"conv2d: the input has {x.shape[1]} channels (shape {x.shape}) but the weight "
            f"{w.shape} with groups={groups} expects {w.shape[1] * groups}. Fix: make the "
            f"layer's in_channels match the data's channel dimension (axis 1)."
        )
    if bias is not None and np.shape(bias) != (w.shape[0],):
        raise ValueError(f"conv2d: bias must have shape ({w.shape[0]},), one per output "
                         f"channel, got {np.shape(bias)}")


def conv2d(input: Any, weight: Any, bias: Any = None, stride: IntPair = 1,  # noqa: A002
           padding: IntPair | str = 0, dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """2-D cross-correlation, as ``torch.nn.functional.conv2d``: input (N, C, H, W), weight
    (O, C/groups, kh, kw), bias (O,) → (N, O, OH, OW), OH = ⌊(H + 2p − d(kh − 1) − 1)/s⌋ + 1.

    >>> import glassgrad as gg
    >>> gg.nn.functional.conv2d(gg.ones(1, 1, 4, 4), gg.ones(2, 1, 3, 3)).shape
    (1, 2, 2, 2)
    """
    x, unbatched = _images(input, "conv2d")
    w = _tensor(weight)
    _check_conv(x, w, bias, groups)
    kernel = w.shape[2], w.shape[3]
    s = _pair(stride, "stride", "conv2d", 1)
    d = _pair(dilation, "dilation", "conv2d", 1)
    p = _padding(padding, kernel, d, s)
    _check_out(x, kernel, s, p, d, "conv2d")
    # no bias: a constant row of zeros (its rule never runs), so conv2d stays one node
    b = np.zeros(w.shape[0], dtype=w.dtype) if bias is None else bias
    y = apply(ops_nn.conv2d, x, w, b, stride=s, padding=p, dilation=d, groups=int(groups))
    return _unbatch(y, unbatched)


# --------------------------------------------------------------------------- pooling
def _pool_args(fn: str, kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1
               ) -> tuple[Pair, Pair, Pair, Pair]:
    k = _pair(kernel_size, "kernel_size", fn, 1)
    s = k if stride is None or stride == [] else _pair(stride, "stride", fn, 1)
    p = _pair(padding, "padding", fn, 0)
    d = _pair(dilation, "dilation", fn, 1)
    for i in range(2):
        if 2 * p[i] > d[i] * (k[i] - 1) + 1:  # PyTorch's rule: a window is never all padding
            raise ValueError(
                f"{fn}: padding {p} must be at most half of the effective kernel size "
                f"(kernel_size {k}, dilation {d}). Fix: use less padding or a larger kernel."
            )
    return k, s, p, d


def max_pool2d(input: Any, kernel_size: IntPair, stride: IntPair | None = None,  # noqa: A002
               padding: IntPair = 0, dilation: IntPair = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor:
    """The maximum of each window, as ``torch.nn.functional.max_pool2d`` (stride defaults to
    the kernel size); the gradient goes to each window's first maximum."""
    if return_indices:
        raise NotImplementedError(
            "max_pool2d: return_indices=True (for max_unpool2d) is not supported. Fix: call "
            "it without return_indices."
        )
    x, unbatched = _images(input, "max_pool2d")
    k, s, p, d = _pool_args("max_pool2d", kernel_size, stride, padding, dilation)
    _check_out(x, k, s, p, d, "max_pool2d", bool(ceil_mode))
    y = apply(ops_nn.max_pool2d, x, kernel_size=k, stride=s, padding=p, dilation=d,
              ceil_mode=bool(ceil_mode))
    return _unbatch(y, unbatched)


def avg_pool2d(input: Any, kernel_size: IntPair, stride: IntPair | None = None,  # noqa: A002
               padding: IntPair = 0, ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """The mean of each window, as ``torch.nn.functional.avg_pool2d``. Composite: every
    channel convolved with a constant kernel of 1/(kh·kw), as one convolution of N·C images
    of one channel; with ``count_include_pad=False`` each output is then divided by the number
    of input (not padding) elements its window covers."""
    if ceil_mode:
        raise NotImplementedError(
            "avg_pool2d: ceil_mode=True is not supported. Fix: pad the input so that the "
            "windows fit, or use ceil_mode=False."
        )
    x, unbatched = _images(input, "avg_pool2d")
    k, s, p, _ = _pool_args("avg_pool2d", kernel_size, stride, padding)
    _check_out(x, k, s, p, (1, 1), "avg_pool2d")
    n, c, h, w = x.shape
    dt = x._data.dtype if x._data.dtype.kind == "f" else np.dtype(np.float32)
    divisor = divisor_override or k[0] * k[1]
    kernel = np.full((1, 1, *k), 1 / divisor, dtype=dt)
    y = conv2d(F.reshape(x, (n * c, 1, h, w)), kernel, stride=s, padding=p)
    y = F.reshape(y, (n, c, *y.shape[2:]))
    if not count_include_pad and divisor_override is None and p != (0, 0):
        ones = np.ones((1, 1, h, w), dtype=dt)
        covered = conv2d(ones, np.ones((1, 1, *k), dt), stride=s, padding=p)._data[0]
        y = y * (k[0] * k[1] / covered)
    return _unbatch(y, unbatched)


def _averaging_matrix(size: int, out: int, dtype: Any) -> np.ndarray:
    """(out, size): row i averages PyTorch's bin i, [⌊i·size/out⌋, ⌈(i + 1)·size/out⌉)."""
    m = np.zeros((out, size), dtype=dtype)
    for i in range(out):
        lo, hi = (i * size) // out, -(-((i + 1) * size) // out)
        m[i, lo:hi] = 1 / (hi - lo)
    return m


def adaptive_avg_pool2d(input: Any, output_size: Any) -> Tensor:  # noqa: A002
    """Average over ``output_size`` bins whatever the input's size, as PyTorch (bins may
    overlap by one when the size does not divide). Composite: Pₕ @ x @ P_wᵀ with constant
    averaging matrices, since a bin's mean is the mean of its rows' means."""
    x, unbatched = _images(input, "adaptive_avg_pool2d")
    sizes = (output_size, output_size) if not isinstance(output_size, tuple | list) else (
        tuple(output_size))
    if len(sizes) != 2:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be an int or (height, width), "
                         f"got {output_size!r}")
    oh, ow = (x.shape[2 + i] if sizes[i] is None else int(sizes[i]) for i in range(2))
    if oh < 1 or ow < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be >= 1, got {output_size!r}")
    dt = x._data.dtype
    y = F.matmul(x, _averaging_matrix(x.shape[3], ow, dt).T)
    y = F.matmul(_averaging_matrix(x.shape[2], oh, dt), y)
    return _unbatch(y, unbatched)


# --------------------------------------------------------------------------- normalization
def _channel_shape(x: Tensor) -> tuple[int, ...]:
    """Shape that broadcasts a per-channel (axis 1) vector against x."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _update_running(running: Any, value: np.ndarray, momentum: float) -> None:
    """running ← (1 − momentum)·running + momentum·value, in place (state dicts share it)."""
    arr = running._data if isinstance(running, Tensor) else running
    arr *= 1 - momentum
    arr += momentum * value.astype(arr.dtype, copy=False)
    if isinstance(running, Tensor):
        _autograd.mark_modified(running)


def _normalize(x: Tensor, mean: Any, inv_std: Any, weight: Any, bias: Any, shape: tuple
               ) -> Tensor:
    """(x − mean)·inv_std·weight + bias, the scale folded into one small factor first."""
    scale = inv_std if weight is None else inv_std * F.reshape(_tensor(weight), shape)
    y = (x - mean) * scale
    return y if bias is None else y + F.reshape(_tensor(bias), shape)


def batch_norm(input: Any, running_mean: Any, running_var: Any, weight: Any = None,  # noqa: A002
               bias: Any = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Normalize each channel (axis 1) of (N, C) or (N, C, ...) input, as
    ``torch.nn.functional.batch_norm``: y = (x − μ)/√(σ² + eps)·weight + bias.

    Training: μ and σ² (biased) are the batch's, and the running statistics (if given) move
    toward the batch's mean and unbiased variance by ``momentum``, in place. Otherwise μ and
    σ² are the running statistics. Composite of mean, subtract, multiply and pow."""
    x = _tensor(input)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected input of shape (N, C) or (N, C, ...), got "
                         f"{x.shape}")
    shape = _channel_shape(x)
    axes = (0, *range(2, x.ndim))
    c = x.shape[1]
    for name, v in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if v is not None and np.shape(v) != (c,):
            raise ValueError(f"batch_norm: {name} must have shape ({c},), one per channel of "
                             f"the input {x.shape}, got {np.shape(v)}")
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation (training=False) needs running_mean and "
                             "running_var. Fix: pass them, or training=True.")
        rm = np.asarray(running_mean).reshape(shape).astype(x._data.dtype, copy=False)
        rv = np.asarray(running_var).reshape(shape).astype(x._data.dtype, copy=False)
        return _normalize(x, rm, (rv + eps) ** -0.5, weight, bias, shape)
    n = x.numel() // c
    if n <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got input of shape {x.shape}. Fix: use batches of 2 or more, or "
                         f"model.eval().")
    mean = F.mean(x, axis=axes, keepdims=True)
    d = x - mean
    var = F.mean(d * d, axis=axes, keepdims=True)
    if running_mean is not None and running_var is not None:
        if _autograd.STATE.hooks:  # gg.compile cannot replay this update: it refuses
            _autograd.note_python_value(mean, "batch_norm's running-statistics update")
        _update_running(running_mean, mean._data.reshape(c), momentum)
        _update_running(running_var, var._data.reshape(c) * (n / (n - 1)), momentum)
    return _normalize(x, mean, (var + eps) ** -0.5, weight, bias, shape)


def layer_norm(input: Any, normalized_shape: Any, weight: Any = None,  # noqa: A002
               bias: Any = None, eps: float = 1e-5) -> Tensor:
    """Normalize over the last ``len(normalized_shape)`` axes, as
    ``torch.nn.functional.layer_norm``: y = (x − μ)/√(σ² + eps)·weight + bias with the
    (biased) statistics of each sample. Composite of mean, subtract, multiply and pow."""
    x = _tensor(input)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(
        normalized_shape)
    if not shape or tuple(x.shape[x.ndim - len(shape):]) != shape or x.ndim < len(shape):
        raise ValueError(
            f"layer_norm: normalized_shape {shape} must be the last dimensions of the input, "
            f"whose shape is {x.shape}. Fix: LayerNorm(x.shape[-1]) normalizes each feature "
            f"vector."
        )
    for name, v in (("weight", weight), ("bias", bias)):
        if v is not None and tuple(np.shape(v)) != shape:
            raise ValueError(f"layer_norm: {name} must have shape {shape}, got {np.shape(v)}")
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    mean = F.mean(x, axis=axes, keepdims=True)
    d = x - mean
    inv_std = (F.mean(d * d, axis=axes, keepdims=True) + eps) ** -0.5
    y = d * inv_std
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


# --------------------------------------------------------------------------- embedding
def embedding(input: Any, weight: Any, padding_idx: int | None = None,  # noqa: A002
              max_norm: float | None = None) -> Tensor:
    """Rows of ``weight`` (num_embeddings, dim) picked by the integer ``input``, as
    ``torch.nn.functional.embedding``: shape input.shape + (dim,). The row ``padding_idx``
    takes no gradient."""
    if max_norm is not None:
        raise NotImplementedError("embedding: max_norm is not supported (it rescales the "
                                  "weight in place). Fix: leave max_norm=None.")
    w = _tensor(weight)
    idx = input._data if isinstance(input, Tensor) else np.asarray(input)
    num = w.shape[0]
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: the input must hold integer indices, got {idx.dtype} "
                        f"with shape {idx.shape}. Fix: x.astype(np.int64).")
    if idx.size and (idx.min() < 0 or idx.max() >= num):
        bad = int(idx.max() if idx.max() >= num else idx.min())
        raise IndexError(f"embedding: index {bad} is out of range for {num} embeddings "
                         f"(weight {w.shape}). Fix: indices must be in 0..{num - 1}, or build "
                         f"Embedding with more rows.")
    if padding_idx is not None:
        if not -num <= padding_idx < num:
            raise ValueError(f"embedding: padding_idx must be within 0..{num - 1}, got "
                             f"{padding_idx}")
        padding_idx = int(padding_idx) % num
    return apply(ops_nn.embedding, w, idx, padding_idx=padding_idx)


# --------------------------------------------------------------------------- dropout
def dropout2d(input: Any, p: float = 0.5, training: bool = True,  # noqa: A002
              seed: int | np.random.Generator | None = None) -> Any:
    """Zero whole channels with probability ``p``, scale the rest by 1/(1 − p), as
    ``torch.nn.functional.dropout2d``; the identity when not training."""
    from .conv import Dropout2d

    layer = Dropout2d(p, seed=seed)
    layer.training = training
    return layer(input)


__all__ = [
    "adaptive_avg_pool2d", "avg_pool2d", "batch_norm", "conv2d", "dropout2d", "embedding",
    "layer_norm", "max_pool2d",
]

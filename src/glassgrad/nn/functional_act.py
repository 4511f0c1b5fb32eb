"""``nn.functional``'s activations and helpers under PyTorch's names and signatures (``dim=``,
``inplace=``), composed from engine ops: no backward code here.

``inplace=True`` writes into the input for ``relu``, ``leaky_relu`` and ``dropout``, as PyTorch
(recorded in the graph: ``inplace_graph.py``); the other activations accept it and compute
out of place (the returned tensor is PyTorch's, the input keeps its values).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .. import functional as G
from ..inplace import update_
from ..tensor import Tensor


def _tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor._wrap(np.asarray(x, dtype=np.float32)
                                                         if isinstance(x, list | float)
                                                         else np.asarray(x))


def _implicit_dim(name: str, ndim: int) -> int:
    # PyTorch's deprecated choice when no dim is given (_get_softmax_dim), with its warning.
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call "
                  f"to include dim=X as an argument.", UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def _cast(x: Tensor, dtype: Any) -> Tensor:
    return x if dtype is None else G.cast(x, dtype)


def relu(input: Any, inplace: bool = False) -> Tensor:  # noqa: A002
    """max(x, 0); ``inplace=True`` writes it into ``input`` (``input.relu_()``)."""
    return input.relu_() if inplace else G.relu(input)


def relu_(input: Tensor) -> Tensor:  # noqa: A002
    """``relu(input, inplace=True)``."""
    return input.relu_()


def leaky_relu(input: Any, negative_slope: float = 0.01,  # noqa: A002
               inplace: bool = False) -> Tensor:
    """x if x > 0 else negative_slope·x; ``inplace=True`` writes it into ``input``."""
    if not inplace:
        return G.leaky_relu(input, negative_slope)
    return update_(input, lambda x: G.leaky_relu(x, negative_slope), "leaky_relu_()")


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:  # noqa: A002
    """``leaky_relu(input, negative_slope, inplace=True)``."""
    return leaky_relu(input, negative_slope, inplace=True)


def sigmoid(input: Any) -> Tensor:  # noqa: A002
    """σ(x) = 1 / (1 + e⁻ˣ)."""
    return G.sigmoid(input)


def tanh(input: Any) -> Tensor:  # noqa: A002
    """tanh(x)."""
    return G.tanh(input)


def softmax(input: Any, dim: int | None = None, _stacklevel: int = 3,  # noqa: A002
            dtype: Any = None) -> Tensor:
    """exp(xᵢ) / Σⱼ exp(xⱼ) along ``dim`` (computed in ``dtype`` if given)."""
    x = _cast(_tensor(input), dtype)
    return G.softmax(x, axis=_implicit_dim("softmax", x.ndim) if dim is None else dim)


def log_softmax(input: Any, dim: int | None = None, _stacklevel: int = 3,  # noqa: A002
                dtype: Any = None) -> Tensor:
    """xᵢ − log Σⱼ exp(xⱼ) along ``dim`` (stable: never the log of an underflowed exp)."""
    x = _cast(_tensor(input), dtype)
    return G.log_softmax(x, axis=_implicit_dim("log_softmax", x.ndim) if dim is None else dim)


def softmin(input: Any, dim: int | None = None, _stacklevel: int = 3,  # noqa: A002
            dtype: Any = None) -> Tensor:
    """softmax(−x) along ``dim``."""
    x = _cast(_tensor(input), dtype)
    return G.softmax(-x, axis=_implicit_dim("softmin", x.ndim) if dim is None else dim)


def _softplus1(x: Tensor) -> Tensor:
    """log(1 + eˣ) = logsumexp(0, x): stable, derivative σ(x) everywhere."""
    zero = Tensor._wrap(np.zeros(x.shape + (1,), dtype=x._data.dtype))
    return G.logsumexp(G.concatenate([zero, G.expand_dims(x, -1)], axis=-1), axis=-1)


def softplus(input: Any, beta: float = 1.0, threshold: float = 20.0) -> Tensor:  # noqa: A002
    """(1/β)·log(1 + e^(βx)), and x itself where βx > threshold (as PyTorch)."""
    x = _tensor(input)
    soft = _softplus1(x * beta) * (1.0 / beta) if beta != 1 else _softplus1(x)
    return G.where(x * beta > threshold, x, soft)


def logsigmoid(input: Any) -> Tensor:  # noqa: A002
    """log σ(x) = −log(1 + e⁻ˣ) (stable)."""
    return -_softplus1(-_tensor(input))


def silu(input: Any, inplace: bool = False) -> Tensor:  # noqa: A002
    """x·σ(x) (also called swish)."""
    x = _tensor(input)
    return x * G.sigmoid(x)


def gelu(input: Any, approximate: str = "none") -> Tensor:  # noqa: A002
    """x·Φ(x), Φ the standard normal CDF: ½x(1 + erf(x/√2)); ``approximate="tanh"`` is
    ½x(1 + tanh(√(2/π)(x + 0.044715x³))), as PyTorch."""
    x = _tensor(input)
    if approximate == "none":
        return x * (G.erf(x * (1.0 / math.sqrt(2.0))) + 1.0) * 0.5
    if approximate == "tanh":
        return x * (G.tanh((x + x * x * x * 0.044715) * math.sqrt(2.0 / math.pi)) + 1.0) * 0.5
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r} (as "
                     f"PyTorch). Fix: pass approximate='tanh' for the tanh form.")


def mish(input: Any, inplace: bool = False) -> Tensor:  # noqa: A002
    """x·tanh(log(1 + eˣ))."""
    x = _tensor(input)
    return x * G.tanh(_softplus1(x))


def elu(input: Any, alpha: float = 1.0, inplace: bool = False) -> Tensor:  # noqa: A002
    """x if x > 0 else α(eˣ − 1); eˣ is taken of min(x, 0), so large x cannot overflow."""
    x = _tensor(input)
    neg = (G.exp(G.clip(x, hi=0.0)) - 1.0) * alpha
    return G.where(x > 0, x, neg)


def hardtanh(input: Any, min_val: float = -1.0, max_val: float = 1.0,  # noqa: A002
             inplace: bool = False) -> Tensor:
    """x clipped to [min_val, max_val]; gradient 1 strictly inside, 0 elsewhere (PyTorch's)."""
    x = _tensor(input)
    # comparisons (not x's array) so that gg.compile records the masks instead of freezing them
    outside = G.where(x >= max_val, max_val, min_val)
    return G.where((x > min_val) & (x < max_val), x, outside)


def relu6(input: Any, inplace: bool = False) -> Tensor:  # noqa: A002
    """min(max(x, 0), 6)."""
    return hardtanh(input, 0.0, 6.0)


def normalize(input: Any, p: float = 2.0, dim: int = 1, eps: float = 1e-12,  # noqa: A002
              out: Any = None) -> Tensor:
    """x / max(‖x‖ₚ, eps) along ``dim``. The norm is taken as (max(Σ|x|ᵖ, epsᵖ))^(1/p),
    the same value, so an all-zero row gets a zero gradient instead of 0·∞ = NaN."""
    if out is not None:
        raise TypeError("normalize: out= is not supported; use the returned tensor.")
    x = _tensor(input)
    powered = (x * x) if p == 2 else G.abs(x) ** p
    total = G.maximum(G.sum(powered, axis=dim, keepdims=True), eps ** p)
    return x / (G.sqrt(total) if p == 2 else total ** (1.0 / p))


def one_hot(tensor: Any, num_classes: int = -1) -> Tensor:
    """Class indices (int64) -> int64 rows with a 1 at each index: shape (*, num_classes);
    ``num_classes=-1`` takes the largest index + 1. No gradient (integers)."""
    t = tensor._data if isinstance(tensor, Tensor) else np.asarray(tensor)
    if t.dtype != np.int64:
        raise RuntimeError(
            f"one_hot: the indices must be int64 (PyTorch's LongTensor), got {t.dtype} with "
            f"shape {t.shape}. Fix: convert them, e.g. y.astype(np.int64) or gg.tensor(y, "
            f"dtype=gg.int64)."
        )
    if num_classes == -1:
        if t.size == 0:
            raise RuntimeError("one_hot: cannot infer the number of classes from an empty "
                               "tensor. Fix: pass num_classes.")
        num_classes = int(t.max()) + 1
    if t.size and t.min() < 0:
        raise RuntimeError(f"one_hot: class values must be non-negative, got {int(t.min())}.")
    if t.size and t.max() >= num_classes:
        raise RuntimeError(
            f"one_hot: class values must be smaller than num_classes={num_classes}, got "
            f"{int(t.max())}. Fix: pass num_classes={int(t.max()) + 1} or more."
        )
    return Tensor._wrap((t[..., None] == np.arange(num_classes)).astype(np.int64))


def dropout(input: Any, p: float = 0.5, training: bool = True,  # noqa: A002
            inplace: bool = False, *, seed: int | np.random.Generator | None = None) -> Any:
    """Inverted dropout: zero with probability p, scale the rest by 1/(1 − p) (if training);
    ``seed`` (glassgrad's) makes the mask reproducible."""
    from .layers import Dropout

    d = Dropout(p, inplace, seed=seed)
    d.training = training
    return d(input)


__all__ = [
    "dropout", "elu", "hardtanh", "leaky_relu", "leaky_relu_", "log_softmax", "logsigmoid",
    "mish", "normalize", "one_hot", "relu", "relu_", "relu6", "sigmoid", "silu", "softmax",
    "softmin", "softplus", "tanh",
]

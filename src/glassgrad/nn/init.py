"""Weight initializers, as ``torch.nn.init``: each fills a tensor in place and returns it.

Every random initializer takes ``seed`` (an int or a ``numpy.random.Generator``), so a model is
reproducible: the same seed gives the same weights. ``seed=None`` draws fresh randomness.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..tensor import Tensor

Seed = int | np.random.Generator | None

_GAINS = {"linear": 1.0, "identity": 1.0, "conv1d": 1.0, "conv2d": 1.0, "sigmoid": 1.0,
          "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 0.75}


def _array(tensor: Any, fn: str) -> np.ndarray:
    if isinstance(tensor, Tensor):
        return tensor._data
    if isinstance(tensor, np.ndarray):
        return tensor
    raise TypeError(f"nn.init.{fn}: expects a Tensor or a NumPy array, got {type(tensor).__name__}")


def _fill(tensor: Any, values: np.ndarray | float, fn: str) -> Any:
    _array(tensor, fn)[...] = values  # in place: optimizers and state dicts keep seeing it
    return tensor


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor that keeps activations' variance steady through a layer (PyTorch's table):
    1 for linear/sigmoid, 5/3 for tanh, √2 for relu, √(2/(1 + slope²)) for leaky_relu."""
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity not in _GAINS:
        raise ValueError(
            f"calculate_gain: unknown nonlinearity {nonlinearity!r}. "
            f"Fix: use one of {sorted([*_GAINS, 'leaky_relu'])}."
        )
    return _GAINS[nonlinearity]


def _calculate_fan_in_and_fan_out(tensor: Any, fn: str = "init") -> tuple[int, int]:
    """fan_in = inputs per unit (shape[1]·receptive field), fan_out = shape[0]·receptive."""
    shape = np.shape(_array(tensor, fn))
    if len(shape) < 2:
        raise ValueError(
            f"nn.init.{fn}: fan in and fan out need a tensor with at least 2 dimensions "
            f"(a weight of shape (out_features, in_features)), got shape {shape}. "
            f"Fix: use constant_/zeros_/uniform_/normal_ for biases."
        )
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def constant_(tensor: Any, val: float) -> Any:
    """Fill with ``val`` (the seed XOR example starts with every weight at 1)."""
    return _fill(tensor, val, "constant_")


def zeros_(tensor: Any) -> Any:
    return _fill(tensor, 0.0, "zeros_")


def ones_(tensor: Any) -> Any:
    return _fill(tensor, 1.0, "ones_")


def uniform_(tensor: Any, a: float = 0.0, b: float = 1.0, seed: Seed = None) -> Any:
    """Fill with samples of U(a, b)."""
    arr = _array(tensor, "uniform_")
    return _fill(tensor, _rng(seed).uniform(a, b, arr.shape), "uniform_")


def normal_(tensor: Any, mean: float = 0.0, std: float = 1.0, seed: Seed = None) -> Any:
    """Fill with samples of N(mean, std²); the default is the lecture notes' standard normal."""
    arr = _array(tensor, "normal_")
    return _fill(tensor, _rng(seed).normal(mean, std, arr.shape), "normal_")


def xavier_uniform_(tensor: Any, gain: float = 1.0, seed: Seed = None) -> Any:
    """Glorot & Bengio (2010): U(−a, a) with a = gain·√(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor, "xavier_uniform_")
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a, seed=seed)


def xavier_normal_(tensor: Any, gain: float = 1.0, seed: Seed = None) -> Any:
    """Glorot & Bengio (2010): N(0, std²) with std = gain·√(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor, "xavier_normal_")
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), seed=seed)


def fan_in_uniform_(tensor: Any, seed: Seed = None) -> Any:
    """U(−1/√fan_in, 1/√fan_in): the "standard" initialization of Glorot & Bengio (2010),
    the common heuristic they compared against (Var W = 1/(3·fan_in)). PyTorch's Linear
    draws its weights from the same distribution."""
    fan_in, _ = _calculate_fan_in_and_fan_out(tensor, "fan_in_uniform_")
    bound = 1.0 / math.sqrt(fan_in)
    return uniform_(tensor, -bound, bound, seed=seed)


def _kaiming_std(tensor: Any, a: float, mode: str, nonlinearity: str, fn: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"nn.init.{fn}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor, fn)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
    seed: Seed = None,
) -> Any:
    """He et al. (2015): U(−b, b) with b = gain·√(3 / fan); ``a`` is leaky_relu's slope."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, seed=seed)


def kaiming_normal_(
    tensor: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
    seed: Seed = None,
) -> Any:
    """He et al. (2015): N(0, std²) with std = gain / √fan."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_")
    return normal_(tensor, 0.0, std, seed=seed)


__all__ = [
    "calculate_gain", "constant_", "fan_in_uniform_", "kaiming_normal_", "kaiming_uniform_",
    "normal_", "ones_", "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_",
]

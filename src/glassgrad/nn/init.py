"""Weight initializers, as ``torch.nn.init``: each fills a tensor in place and returns it.

Signatures are PyTorch's. Every random initializer takes ``generator`` (PyTorch's name) or
``seed`` (keyword): an int or a ``numpy.random.Generator``, so a model is reproducible: the
same seed gives the same weights. Neither draws fresh randomness. The values follow the same
distributions as PyTorch's, not the same numbers (the random streams differ): to compare with
PyTorch, copy the weights across with ``load_state_dict``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..autograd import mark_modified
from ..creation import rng as global_rng
from ..tensor import Tensor

Seed = int | np.random.Generator | None

_GAINS = {"linear": 1.0, "identity": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0,
          "conv_transpose1d": 1.0, "conv_transpose2d": 1.0, "conv_transpose3d": 1.0,
          "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 0.75}


def _array(tensor: Any, fn: str) -> np.ndarray:
    if isinstance(tensor, Tensor):
        return tensor._data
    if isinstance(tensor, np.ndarray):
        return tensor
    raise TypeError(f"nn.init.{fn}: expects a Tensor or a NumPy array, got {type(tensor).__name__}")


def _fill(tensor: Any, values: np.ndarray | float, fn: str) -> Any:
    _array(tensor, fn)[...] = values  # in place: optimizers and state dicts keep seeing it
    if isinstance(tensor, Tensor):
        # as PyTorch's version counter: an older graph must not backward. A ``.data`` alias
        # has its own counter, so ``init.normal_(w.data)`` leaves w's version alone (PyTorch).
        mark_modified(tensor, memory=not getattr(tensor, "_alias", False))
    return tensor


def _rng(generator: Seed, seed: Seed = None, fn: str = "init") -> np.random.Generator:
    if generator is not None and seed is not None:
        raise TypeError(f"nn.init.{fn}: pass generator= or seed=, not both (they are the "
                        f"same thing under two names).")
    g = generator if generator is not None else seed
    if g is None:  # the global generator, which gg.manual_seed seeds
        return global_rng()
    if isinstance(g, int | np.integer) and not isinstance(g, bool):
        return np.random.default_rng(g)
    if isinstance(g, np.random.Generator):
        return g
    raise TypeError(f"nn.init.{fn}: generator must be an int seed or a numpy.random.Generator, "
                    f"got {type(g).__name__}. Fix: pass e.g. generator=0.")


def _dims(tensor: Any, fn: str, allowed: str, ok: bool) -> np.ndarray:
    arr = _array(tensor, fn)
    if not ok:
        raise ValueError(f"nn.init.{fn}: only tensors with {allowed} are supported, got shape "
                         f"{arr.shape}.")
    return arr


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


def eye_(tensor: Any) -> Any:
    """Fill a 2-D tensor with the identity (ones on the diagonal, as np.eye)."""
    arr = _dims(tensor, "eye_", "2 dimensions", _array(tensor, "eye_").ndim == 2)
    return _fill(tensor, np.eye(*arr.shape), "eye_")


def dirac_(tensor: Any, groups: int = 1) -> Any:
    """Fill a 3-, 4- or 5-D convolution weight so the convolution is the identity: in each of
    ``groups`` groups, output channel d takes input channel d at the kernel's centre."""
    arr = _dims(tensor, "dirac_", "3, 4 or 5 dimensions", _array(tensor, "dirac_").ndim in
                (3, 4, 5))
    if groups < 1 or arr.shape[0] % groups:
        raise ValueError(f"nn.init.dirac_: dim 0 ({arr.shape[0]}) must be divisible by "
                         f"groups ({groups}).")
    out_per_group = arr.shape[0] // groups
    values = np.zeros(arr.shape)
    centre = tuple(k // 2 for k in arr.shape[2:])
    for g in range(groups):
        for d in range(min(out_per_group, arr.shape[1])):
            values[(g * out_per_group + d, d, *centre)] = 1.0
    return _fill(tensor, values, "dirac_")


def uniform_(tensor: Any, a: float = 0.0, b: float = 1.0, generator: Seed = None, *,
             seed: Seed = None) -> Any:
    """Fill with samples of U(a, b)."""
    arr = _array(tensor, "uniform_")
    return _fill(tensor, _rng(generator, seed, "uniform_").uniform(a, b, arr.shape), "uniform_")


def normal_(tensor: Any, mean: float = 0.0, std: float = 1.0, generator: Seed = None, *,
            seed: Seed = None) -> Any:
    """Fill with samples of N(mean, std²); the default is the lecture notes' standard normal."""
    arr = _array(tensor, "normal_")
    values = _rng(generator, seed, "normal_").normal(mean, std, arr.shape)
    return _fill(tensor, values, "normal_")


def trunc_normal_(tensor: Any, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator: Seed = None, *, seed: Seed = None) -> Any:
    """Fill with samples of N(mean, std²) kept within [a, b] (a normal conditioned on the
    interval). Drawn by redrawing the samples that fall outside, so the interval must hold at
    least 1% of the normal's mass (a ValueError says so otherwise)."""
    arr = _array(tensor, "trunc_normal_")
    cdf = lambda v: 0.5 * (1 + math.erf((v - mean) / (std * math.sqrt(2))))
    mass = cdf(b) - cdf(a)
    if not mass >= 0.01:
        raise ValueError(
            f"nn.init.trunc_normal_: [a, b] = [{a}, {b}] holds {mass:.2g} of the mass of "
            f"N({mean}, {std}²); glassgrad draws by rejection and needs at least 1%. Fix: "
            f"widen [a, b] or move it towards the mean."
        )
    rng = _rng(generator, seed, "trunc_normal_")
    values = rng.normal(mean, std, arr.shape)
    outside = (values < a) | (values > b)
    while outside.any():  # each round keeps ≥ 1% of the rest: ends in a few rounds
        values[outside] = rng.normal(mean, std, int(outside.sum()))
        outside = (values < a) | (values > b)
    return _fill(tensor, values, "trunc_normal_")


def orthogonal_(tensor: Any, gain: float = 1.0, generator: Seed = None, *,
                seed: Seed = None) -> Any:
    """Fill with a (semi-)orthogonal matrix times ``gain`` (Saxe et al. 2013): the QR factor
    of a normal matrix, signs fixed so it is uniformly distributed; dims after the first are
    flattened."""
    arr = _dims(tensor, "orthogonal_", "2 or more dimensions",
                _array(tensor, "orthogonal_").ndim >= 2)
    rows, cols = arr.shape[0], arr.size // max(arr.shape[0], 1)
    if arr.size == 0:
        return tensor
    flat = _rng(generator, seed, "orthogonal_").normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, (gain * q).reshape(arr.shape), "orthogonal_")


def sparse_(tensor: Any, sparsity: float, std: float = 0.01, generator: Seed = None, *,
            seed: Seed = None) -> Any:
    """Fill a 2-D tensor with N(0, std²) values, then zero ceil(sparsity·rows) random
    entries of each column (Martens 2010)."""
    arr = _dims(tensor, "sparse_", "2 dimensions", _array(tensor, "sparse_").ndim == 2)
    rows, cols = arr.shape
    rng = _rng(generator, seed, "sparse_")
    values = rng.normal(0.0, std, arr.shape)
    n_zero = math.ceil(sparsity * rows)
    for c in range(cols):
        values[rng.permutation(rows)[:n_zero], c] = 0.0
    return _fill(tensor, values, "sparse_")


def xavier_uniform_(tensor: Any, gain: float = 1.0, generator: Seed = None, *,
                    seed: Seed = None) -> Any:
    """Glorot & Bengio (2010): U(−a, a) with a = gain·√(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor, "xavier_uniform_")
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a, _rng(generator, seed, "xavier_uniform_"))


def xavier_normal_(tensor: Any, gain: float = 1.0, generator: Seed = None, *,
                   seed: Seed = None) -> Any:
    """Glorot & Bengio (2010): N(0, std²) with std = gain·√(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor, "xavier_normal_")
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return normal_(tensor, 0.0, std, _rng(generator, seed, "xavier_normal_"))


def fan_in_uniform_(tensor: Any, generator: Seed = None, *, seed: Seed = None) -> Any:
    """U(−1/√fan_in, 1/√fan_in): the "standard" initialization of Glorot & Bengio (2010),
    the common heuristic they compared against (Var W = 1/(3·fan_in)). PyTorch's Linear
    draws its weights from the same distribution."""
    fan_in, _ = _calculate_fan_in_and_fan_out(tensor, "fan_in_uniform_")
    bound = 1.0 / math.sqrt(fan_in)
    return uniform_(tensor, -bound, bound, _rng(generator, seed, "fan_in_uniform_"))


def _kaiming_std(tensor: Any, a: float, mode: str, nonlinearity: str, fn: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"nn.init.{fn}: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor, fn)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
    generator: Seed = None, *, seed: Seed = None,
) -> Any:
    """He et al. (2015): U(−b, b) with b = gain·√(3 / fan); ``a`` is leaky_relu's slope."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_uniform_")
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, _rng(generator, seed, "kaiming_uniform_"))


def kaiming_normal_(
    tensor: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
    generator: Seed = None, *, seed: Seed = None,
) -> Any:
    """He et al. (2015): N(0, std²) with std = gain / √fan."""
    std = _kaiming_std(tensor, a, mode, nonlinearity, "kaiming_normal_")
    return normal_(tensor, 0.0, std, _rng(generator, seed, "kaiming_normal_"))


__all__ = [
    "calculate_gain", "constant_", "dirac_", "eye_", "fan_in_uniform_", "kaiming_normal_",
    "kaiming_uniform_", "normal_", "ones_", "orthogonal_", "sparse_", "trunc_normal_",
    "uniform_", "xavier_normal_", "xavier_uniform_", "zeros_",
]

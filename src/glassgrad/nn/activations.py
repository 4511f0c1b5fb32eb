"""Activation modules: each calls one engine op, so its derivative is the op table's."""

from __future__ import annotations

import warnings
from typing import Any

from .. import functional as F
from ..tensor import Tensor
from . import functional_act as A
from .module import Module


class Identity(Module):
    """f(x) = x, f'(x) = 1 (the seed XOR network's activation). Arguments are ignored, as
    PyTorch's (so it can stand in for any layer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def forward(self, x: Any) -> Any:
        return x


class Sigmoid(Module):
    """σ(x) = 1 / (1 + e⁻ˣ), σ'(x) = σ(x)(1 − σ(x))."""

    def forward(self, x: Any) -> Tensor:
        return F.sigmoid(x)


class Tanh(Module):
    """tanh(x), tanh'(x) = 1 − tanh²(x)."""

    def forward(self, x: Any) -> Tensor:
        return F.tanh(x)


class ReLU(Module):
    """max(x, 0), derivative 1 where x > 0 else 0. ``inplace=True`` writes the result into
    the input, as PyTorch (``x.relu_()``)."""

    def __init__(self, inplace: bool = False) -> None:
        self.inplace = bool(inplace)

    def forward(self, x: Any) -> Tensor:
        return A.relu(x, self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x if x > 0 else slope·x (``inplace=True``: written into the input, as PyTorch)."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        self.negative_slope = float(negative_slope)
        self.inplace = bool(inplace)

    def forward(self, x: Any) -> Tensor:
        return A.leaky_relu(x, self.negative_slope, self.inplace)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace
                                                          else "")


class Softmax(Module):
    """exp(xᵢ) / Σⱼ exp(xⱼ) along ``dim`` (stable: exp of log_softmax)."""

    def __init__(self, dim: int = -1) -> None:
        self.dim = int(dim)

    def forward(self, x: Any) -> Tensor:
        return F.softmax(x, axis=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """xᵢ − log Σⱼ exp(xⱼ) along ``dim`` (stable)."""

    def __init__(self, dim: int | None = None) -> None:
        self.dim = dim

    def forward(self, x: Any) -> Tensor:
        return A.log_softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmin(LogSoftmax):
    """softmax(−x) along ``dim``."""

    def forward(self, x: Any) -> Tensor:
        return A.softmin(x, self.dim)


class SiLU(Module):
    """x·σ(x)."""

    def __init__(self, inplace: bool = False) -> None:
        self.inplace = bool(inplace)

    def forward(self, x: Any) -> Tensor:
        return A.silu(x)


class GELU(Module):
    """x·Φ(x) (Φ the standard normal CDF); ``approximate="tanh"`` for the tanh form."""

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got "
                             f"{approximate!r} (as PyTorch).")
        self.approximate = approximate

    def forward(self, x: Any) -> Tensor:
        return A.gelu(x, self.approximate)


class Mish(SiLU):
    """x·tanh(log(1 + eˣ))."""

    def forward(self, x: Any) -> Tensor:
        return A.mish(x)


class ELU(Module):
    """x if x > 0 else α(eˣ − 1)."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        self.alpha, self.inplace = float(alpha), bool(inplace)

    def forward(self, x: Any) -> Tensor:
        return A.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class Softplus(Module):
    """(1/β)·log(1 + e^(βx)); x where βx > threshold."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        self.beta, self.threshold = float(beta), float(threshold)

    def forward(self, x: Any) -> Tensor:
        return A.softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class LogSigmoid(Module):
    """log σ(x) (stable)."""

    def forward(self, x: Any) -> Tensor:
        return A.logsigmoid(x)


class Hardtanh(Module):
    """x clipped to [min_val, max_val]."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False,
                 min_value: float | None = None, max_value: float | None = None) -> None:
        if min_value is not None or max_value is not None:  # PyTorch's deprecated names
            warnings.warn("keyword argument `min_value`/`max_value` is deprecated and renamed "
                          "to `min_val`/`max_val`", DeprecationWarning, stacklevel=2)
            min_val = min_val if min_value is None else min_value
            max_val = max_val if max_value is None else max_value
        if max_val <= min_val:
            raise ValueError(f"{type(self).__name__}: max_val ({max_val}) must be greater "
                             f"than min_val ({min_val})")
        self.min_val, self.max_val, self.inplace = float(min_val), float(max_val), inplace

    def forward(self, x: Any) -> Tensor:
        return A.hardtanh(x, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}"


class ReLU6(Hardtanh):
    """min(max(x, 0), 6)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(0.0, 6.0, inplace)


ACTIVATIONS: dict[str, type[Module]] = {
    "identity": Identity, "linear": Identity, "sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU,
    "leaky_relu": LeakyReLU, "softmax": Softmax,
}

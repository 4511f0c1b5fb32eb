"""Activation modules: each calls one engine op, so its derivative is the op table's."""

from __future__ import annotations

from typing import Any

from .. import functional as F
from ..tensor import Tensor
from .module import Module


class Identity(Module):
    """f(x) = x, f'(x) = 1 (the seed XOR network's activation)."""

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
    """max(x, 0), derivative 1 where x > 0 else 0."""

    def forward(self, x: Any) -> Tensor:
        return F.relu(x)


class LeakyReLU(Module):
    """x if x > 0 else slope·x."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        self.negative_slope = float(negative_slope)

    def forward(self, x: Any) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Softmax(Module):
    """exp(xᵢ) / Σⱼ exp(xⱼ) along ``dim`` (stable: exp of log_softmax)."""

    def __init__(self, dim: int = -1) -> None:
        self.dim = int(dim)

    def forward(self, x: Any) -> Tensor:
        return F.softmax(x, axis=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


ACTIVATIONS: dict[str, type[Module]] = {
    "identity": Identity, "linear": Identity, "sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU,
    "leaky_relu": LeakyReLU, "softmax": Softmax,
}

"""Layers: ``Linear`` (the fused x @ Wᵀ + b), ``Sequential`` and ``Dropout``."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import autograd as _autograd
from .. import functional as F
from ..tensor import Tensor
from . import init
from .module import Module, Parameter


def _shape(x: Any) -> tuple[int, ...]:
    return x.shape if isinstance(x, Tensor | np.ndarray) else np.shape(x)


class Linear(Module):
    """y = x @ Wᵀ + b with W of shape (out_features, in_features), as PyTorch.

    Initialized as PyTorch does: W ~ U(−1/√in, 1/√in) (kaiming_uniform_ with a = √5) and
    b ~ U(−1/√in, 1/√in), drawn from ``seed`` (an int or a Generator). Inputs that need no
    gradient (data) are cast to the layer's dtype, so float64 data does not slow a float32
    model down.

    >>> import glassgrad as gg
    >>> layer = gg.nn.Linear(3, 2, seed=0)
    >>> layer.weight.shape, layer.bias.shape, layer(gg.ones(4, 3)).shape
    ((2, 3), (2,), (4, 2))
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True,
        seed: int | np.random.Generator | None = None, dtype: Any = np.float32,
    ) -> None:
        if in_features < 0 or out_features < 0:
            raise ValueError(
                f"Linear: in_features and out_features must be >= 0, got "
                f"({in_features}, {out_features})"
            )
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        rng = np.random.default_rng(seed) if not isinstance(seed, np.random.Generator) else seed
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype=dtype))
        self.bias = Parameter(np.empty(self.out_features, dtype=dtype)) if bias else None
        if self.in_features and self.out_features:
            init.kaiming_uniform_(self.weight, a=math.sqrt(5), seed=rng)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features else 0.0
            init.uniform_(self.bias, -bound, bound, seed=rng)

    def forward(self, x: Any) -> Tensor:
        shape = x._data.shape if isinstance(x, Tensor) else _shape(x)
        if not shape or shape[-1] != self.in_features:
            raise ValueError(
                f"{self!r}: expected input whose last dimension is in_features = "
                f"{self.in_features}, got shape {shape}. Fix: give the data "
                f"{self.in_features} features per sample (shape (batch, {self.in_features})), "
                f"or build the layer as Linear({shape[-1] if shape else '?'}, "
                f"{self.out_features})."
            )
        w = self.weight
        if not (isinstance(x, Tensor) and x._requires_grad):
            if not isinstance(x, Tensor):
                x = Tensor._wrap(np.asarray(x))
            if x._data.dtype is not w._data.dtype and x._data.dtype != w._data.dtype:
                x = F.cast(x, w._data.dtype)  # data in float64 meets a float32 layer
        return F.linear(x, w, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Sequential(Module):
    """Modules applied one after another; indexable and iterable, children named "0", "1", ...

    Also accepts an ``OrderedDict`` of name -> module, as PyTorch.
    """

    def __init__(self, *modules: Any) -> None:
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            items = list(modules[0].items())
        else:
            items = [(str(i), m) for i, m in enumerate(modules)]
        for name, m in items:
            if not isinstance(m, Module):
                raise TypeError(
                    f"Sequential: item {name!r} is a {type(m).__name__}, not a Module. "
                    f"Fix: wrap functions in a Module (e.g. nn.Tanh() instead of gg.tanh)."
                )
        self._items: dict[str, Module] = dict(items)

    def _attributes(self) -> Iterator[tuple[str, Any]]:
        return iter(self._items.items())

    def forward(self, x: Any) -> Any:
        for name, m in self._items.items():
            try:
                x = m(x)
            except (ValueError, TypeError) as e:
                if type(e) not in (ValueError, TypeError):  # subclasses may need other args
                    raise
                # Say which layer failed: the message of a deep model's error needs a place.
                raise type(e)(f"Sequential layer ({name}): {e}") from None
        return x

    def append(self, module: Module) -> Sequential:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append: expects a Module, got {type(module).__name__}")
        self._items[str(len(self._items))] = module
        return self

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items.values())

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):  # keeps the children's names, as PyTorch
            return Sequential(OrderedDict(list(self._items.items())[idx]))
        return list(self._items.values())[idx]


class Dropout(Module):
    """Zero each element with probability ``p`` during training, scale the rest by 1/(1 − p)
    (inverted dropout, as PyTorch); the identity in ``eval()`` mode."""

    def __init__(self, p: float = 0.5, seed: int | np.random.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be a probability in [0, 1], got {p}")
        self.p = float(p)
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    def forward(self, x: Any) -> Any:
        if not self.training or self.p == 0.0:
            return x
        arr = x._data if isinstance(x, Tensor) else np.asarray(x)
        dt = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float32)
        if self.p == 1.0:
            return x * np.zeros(arr.shape, dtype=dt)
        if _autograd.STATE.hooks:
            _autograd.note_random("Dropout")
        mask = self._rng.random(arr.shape, dtype=np.float32) >= self.p
        return x * (mask * dt.type(1.0 / (1.0 - self.p)))

    def extra_repr(self) -> str:
        return f"p={self.p}"

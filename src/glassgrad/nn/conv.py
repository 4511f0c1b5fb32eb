"""Layers for image feature maps: ``Conv2d`` and ``Dropout2d``, as PyTorch's."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import autograd as _autograd
from .. import functional as F
from ..creation import rng as random_generator
from ..tensor import Tensor
from . import init
from .functional_conv import _pair, conv2d
from .module import Module, Parameter

Seed = int | np.random.Generator | None


def _rng(seed: Seed) -> np.random.Generator:
    return random_generator(seed)  # (None: the global one, which gg.manual_seed seeds)


def match_dtype(x: Any, like: Tensor) -> Any:
    """Data (no gradient) in the layer's float dtype, so float64 data does not slow a float32
    model down (as ``Linear``); a tensor that needs a gradient is left as it is."""
    if isinstance(x, Tensor) and x._requires_grad:
        return x
    if not isinstance(x, Tensor):
        x = Tensor._wrap(np.asarray(x))
    if x._data.dtype != like._data.dtype:
        x = F.cast(x, like._data.dtype)
    return x


class Conv2d(Module):
    """2-D convolution (cross-correlation) over (N, C, H, W) images, as ``torch.nn.Conv2d``:
    weight (out_channels, in_channels/groups, kh, kw), bias (out_channels,).

    Initialized as PyTorch: weight by kaiming_uniform_ with a = √5 (U(±1/√fan_in)), bias
    U(±1/√fan_in) with fan_in = in_channels/groups·kh·kw, drawn from ``seed``.

    >>> import glassgrad as gg
    >>> conv = gg.nn.Conv2d(1, 6, 5, padding=2, seed=0)
    >>> conv.weight.shape, conv(gg.ones(2, 1, 28, 28)).shape
    ((6, 1, 5, 5), (2, 6, 28, 28))
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True,
        padding_mode: str = "zeros", seed: Seed = None, dtype: Any = np.float32,
    ) -> None:
        if padding_mode != "zeros":
            raise NotImplementedError(
                f"Conv2d: padding_mode={padding_mode!r} is not supported, only 'zeros'.")
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: in_channels ({in_channels}) and out_channels ({out_channels}) must "
                f"both be divisible by groups ({groups}).")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d", 1)
        self.stride = _pair(stride, "stride", "Conv2d", 1)
        self.padding = padding if isinstance(padding, str) else _pair(
            padding, "padding", "Conv2d", 0)
        self.dilation = _pair(dilation, "dilation", "Conv2d", 1)
        self.groups = int(groups)
        rng = _rng(seed)
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        self.bias = Parameter(np.empty(self.out_channels, dtype=dtype)) if bias else None
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), seed=rng)
        if self.bias is not None:
            bound = 1 / math.sqrt(math.prod(shape[1:]))
            init.uniform_(self.bias, -bound, bound, seed=rng)

    def forward(self, x: Any) -> Tensor:
        return conv2d(match_dtype(x, self.weight), self.weight, self.bias, self.stride,
                      self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")


class Dropout2d(Module):
    """Zero whole channels of (N, C, H, W) (or (C, H, W)) input with probability ``p`` in
    training, scaling the rest by 1/(1 − p), as ``torch.nn.Dropout2d``; the identity in
    ``eval()`` mode."""

    def __init__(self, p: float = 0.5, seed: Seed = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout2d: p must be a probability in [0, 1], got {p}")
        self.p = float(p)
        self._rng = _rng(seed)

    def forward(self, x: Any) -> Any:
        if not self.training or self.p == 0.0:
            return x
        if not isinstance(x, Tensor):
            x = Tensor._wrap(np.asarray(x))
        arr, shape = x._data, x._data.shape
        if len(shape) not in (3, 4):
            raise ValueError(f"Dropout2d: expected input (N, C, H, W) or (C, H, W), got shape "
                             f"{shape}")
        dt = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float32)
        if _autograd.STATE.hooks:
            _autograd.note_random("Dropout2d")
        keep = self._rng.random((*shape[:-2], 1, 1), dtype=np.float32) >= self.p
        scale = 0.0 if self.p == 1.0 else 1.0 / (1.0 - self.p)
        return x * (keep * dt.type(scale))

    def extra_repr(self) -> str:
        return f"p={self.p}"

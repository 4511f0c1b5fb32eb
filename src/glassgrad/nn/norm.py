"""Normalization layers: ``BatchNorm1d``, ``BatchNorm2d`` and ``LayerNorm``, as PyTorch's."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor
from .conv import match_dtype
from .functional_conv import batch_norm, layer_norm
from .module import Module, Parameter


def _buffer(module: Module, name: str, value: Tensor) -> None:
    """Keep ``value`` as state that is no parameter (PyTorch's buffer): with
    ``register_buffer`` where Module has it (so it goes into state dicts), else an attribute."""
    register = getattr(module, "register_buffer", None)
    if register is not None:
        register(name, value)
    else:
        setattr(module, name, value)


class _BatchNorm(Module):
    _dims: tuple[int, ...] = ()  # the input ranks the layer accepts

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 dtype: Any = np.float32) -> None:
        self.num_features, self.eps, self.momentum = int(num_features), float(eps), momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(np.ones(num_features, dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype)) if affine else None
        if track_running_stats:
            _buffer(self, "running_mean", Tensor._wrap(np.zeros(num_features, dtype)))
            _buffer(self, "running_var", Tensor._wrap(np.ones(num_features, dtype)))
            _buffer(self, "num_batches_tracked", Tensor._wrap(np.array(0, np.int64)))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def forward(self, x: Any) -> Tensor:
        shape = np.shape(x._data if isinstance(x, Tensor) else x)
        if len(shape) not in self._dims or shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}): expected input of "
                f"{' or '.join(f'{d}' for d in self._dims)} dimensions with "
                f"{self.num_features} channels on axis 1, got shape {shape}."
                + (" Fix: BatchNorm2d for images, BatchNorm1d for (N, C) or (N, C, L)."
                   if len(shape) not in self._dims else "")
            )
        update = self.training and self.track_running_stats
        factor = self.momentum
        if update and self.momentum is None:  # a cumulative average of all batches
            factor = 1.0 / (int(self.num_batches_tracked._data) + 1)
        stats = not self.training or self.track_running_stats
        y = batch_norm(match_dtype(x, self.weight if self.affine else Tensor._wrap(
            np.zeros(0, np.float32))), self.running_mean if stats else None,
            self.running_var if stats else None, self.weight, self.bias,
            self.training or self.running_mean is None, factor or 0.0, self.eps)
        if update:  # only after a forward that succeeded: an error changes nothing
            self.num_batches_tracked._data += 1
        return y

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) input per channel, as
    ``torch.nn.BatchNorm1d``: batch statistics in training (running statistics updated with
    ``momentum``, the variance unbiased), the running statistics in ``eval()`` mode."""

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) images per channel, as ``torch.nn.BatchNorm2d``.

    >>> import glassgrad as gg
    >>> bn = gg.nn.BatchNorm2d(3)
    >>> y = bn(gg.randn(4, 3, 5, 5, seed=0))
    >>> bn.running_var.shape, int(bn.num_batches_tracked.item())
    ((3,), 1)
    """

    _dims = (4,)


class LayerNorm(Module):
    """Normalize each sample over its last dimensions (``normalized_shape``), then scale by
    ``weight`` and shift by ``bias`` (elementwise, of that shape), as ``torch.nn.LayerNorm``.
    """

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True,
                 dtype: Any = np.float32) -> None:
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(
            normalized_shape)
        self.normalized_shape, self.eps = shape, float(eps)
        self.elementwise_affine = elementwise_affine
        self.weight = Parameter(np.ones(shape, dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(shape, dtype)) if elementwise_affine and bias else None

    def forward(self, x: Any) -> Tensor:
        if self.weight is not None:
            x = match_dtype(x, self.weight)
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")

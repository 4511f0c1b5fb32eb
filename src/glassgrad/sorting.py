"""``sort``, ``argsort`` and ``topk``, as PyTorch: the order comes from NumPy's sort (a
constant index); the values are ``gather``ed by it, so their gradient flows back to the
positions they came from."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import return_types
from .shape import gather
from .tensor import Tensor, _dim

METHODS = ("sort", "argsort", "topk")


def _order(x: Tensor, dim: int, descending: bool) -> np.ndarray:
    """A stable order (equal values keep their order, as PyTorch's ``stable=True``)."""
    a = x._data
    if descending and a.dtype.kind in "fi":
        return np.argsort(-a, axis=dim, kind="stable").astype(np.int64)
    idx = np.argsort(a, axis=dim, kind="stable").astype(np.int64)
    return np.flip(idx, axis=dim) if descending else idx


def argsort(input: Tensor, dim: int = -1, descending: bool = False, *,  # noqa: A002
            stable: bool = False) -> Tensor:
    """The indices that sort ``input`` along ``dim`` (an int64 tensor, no gradient; the
    sort is always stable)."""
    d = _dim(dim, max(input._data.ndim, 1), "argsort")
    return Tensor._wrap(_order(input, d, descending))


def sort(input: Tensor, dim: int = -1, descending: bool = False, *,  # noqa: A002
         stable: bool = False) -> Any:
    """``(values, indices)`` sorted along ``dim``; the values are differentiable."""
    d = _dim(dim, max(input._data.ndim, 1), "sort")
    idx = _order(input, d, descending)
    return return_types.sort(gather(input, d, idx), Tensor._wrap(idx))


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True,  # noqa: A002
         sorted: bool = True) -> Any:  # noqa: A002
    """``(values, indices)`` of the ``k`` largest (``largest=False``: smallest) along
    ``dim``, largest first; the values are differentiable."""
    d = _dim(dim, max(input._data.ndim, 1), "topk")
    n = input._data.shape[d] if input._data.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError(f"topk: k={k} is out of range for dimension {d} of size {n} "
                           f"(input shape {list(input._data.shape)}). Fix: 0 <= k <= {n}.")
    idx = np.take(_order(input, d, largest), np.arange(k), axis=d)
    return return_types.topk(gather(input, d, idx), Tensor._wrap(idx))

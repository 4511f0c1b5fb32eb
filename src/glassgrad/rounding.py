"""Rounding and integer division, as PyTorch: ``floor``, ``ceil``, ``round``, ``trunc``,
``floor_divide`` (``a // b``) and ``remainder`` (``a % b``).

The rounding functions are steps: their derivative is 0 wherever it exists, so (as ``sign``)
they return constants, through which no gradient flows. ``remainder`` is differentiable:
a % b = a − b·⌊a/b⌋, so ∂/∂a = 1 and ∂/∂b = −⌊a/b⌋ (PyTorch's derivatives), built from
the table's ops with ⌊a/b⌋ as a constant. On integers both keep the integer dtype.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import functional as F
from .tensor import Tensor, as_constant

METHODS = ("floor", "ceil", "round", "trunc", "floor_divide", "remainder")


def _values(x: Any) -> np.ndarray:
    return x._data if isinstance(x, Tensor) else np.asarray(x)


def floor(input: Any) -> Tensor:  # noqa: A002
    """⌊x⌋ elementwise (no gradient flows: its derivative is 0 almost everywhere)."""
    return Tensor._wrap(np.floor(_values(input)))


def ceil(input: Any) -> Tensor:  # noqa: A002
    """⌈x⌉ elementwise (no gradient flows)."""
    return Tensor._wrap(np.ceil(_values(input)))


def trunc(input: Any) -> Tensor:  # noqa: A002
    """x rounded toward 0 (no gradient flows)."""
    return Tensor._wrap(np.trunc(_values(input)))


def round(input: Any, decimals: int = 0) -> Tensor:  # noqa: A001, A002
    """x rounded to ``decimals`` places, halves to even as PyTorch (no gradient flows)."""
    return Tensor._wrap(np.round(_values(input), decimals))


def _pair(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    ts = tuple(t for t in (a, b) if isinstance(t, Tensor))
    return as_constant(a, ts), as_constant(b, ts)


def floor_divide(input: Any, other: Any) -> Tensor:  # noqa: A002
    """⌊a/b⌋ elementwise (``a // b``), the dtype as PyTorch's (int // int stays integer).
    No gradient flows (PyTorch has none either)."""
    a, b = _pair(input, other)
    return Tensor._wrap(np.asarray(np.floor_divide(a._data, b._data)))


def remainder(input: Any, other: Any) -> Tensor:  # noqa: A002
    """a − b·⌊a/b⌋ (``a % b``, the sign of b, as Python and PyTorch); differentiable in
    both for floats."""
    a, b = _pair(input, other)
    if a._data.dtype.kind != "f" and b._data.dtype.kind != "f":
        return Tensor._wrap(np.asarray(np.remainder(a._data, b._data)))
    return F.sub(a, F.mul(b, floor_divide(a, b)))

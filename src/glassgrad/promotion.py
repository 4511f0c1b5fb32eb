"""The dtype of an op's result: PyTorch's type promotion, in one place.

NumPy and PyTorch agree when every input has the same dtype and the op keeps it (float32 in,
float32 out); ``ops.apply`` calls ``promote`` only when the result's dtype differs from its
first or last input's, so that common case costs two comparisons; then, if PyTorch's
dtype differs from NumPy's, the inputs are cast (``cast`` nodes, so gradients are cast back
and ``gg.compile`` replays the casts) and the op runs again. The rules, as PyTorch's:

1. Categories rank bool < integer < floating point. Among inputs of one category the wider
   dtype wins (int32 + int64 → int64, float32 + float64 → float64); across categories the
   higher category's dtype wins (int64 + float32 → float32, not NumPy's float64;
   int64 + float16 → float16).
2. Tensors with dimensions outrank 0-d tensors: a 0-d tensor decides the dtype only when
   its category is higher (float32 matrix + 0-d float64 → float32; int64 vector + 0-d
   float64 → float64).
3. Python numbers are the lowest rank and take the tensor's dtype when their category is
   not higher (float32 + 2.5 → float32; int32 + 2 → int32); a higher one takes that
   category's default: int + 2.5 → float32, bool + 1 → int64 (``tensor.as_constant``).
4. An op that makes floats from integers or bools (``/``, ``exp``, ``sqrt``, ``mean``, ...)
   gives the default float dtype (``gg.get_default_dtype()``, float32 unless changed):
   int tensor / 2 → float32, not NumPy's float64.
5. ``sum`` and ``cumsum`` of bools or integers give int64.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import ops
from .dtypes import default_float
from .ops import apply

_INT64 = np.dtype(np.int64)


def _category(dt: np.dtype) -> int:
    return 2 if dt.kind == "f" else (1 if dt.kind in "iu" else 0)


def promote_types(a: np.dtype, b: np.dtype) -> np.dtype:
    """PyTorch's ``promote_types``: the higher category's dtype, or within one category the
    wider (as NumPy: uint8 + int8 → int16)."""
    ca, cb = _category(a), _category(b)
    if ca != cb:
        return a if ca > cb else b
    return np.promote_types(a, b)


def result_type(*arrays: Any) -> np.dtype:
    """The dtype PyTorch gives an elementwise op on these arrays (rules 1 and 2 above)."""
    dim: np.dtype | None = None
    zero: np.dtype | None = None
    for a in arrays:
        dt = a.dtype
        if a.ndim:
            dim = dt if dim is None else promote_types(dim, dt)
        else:
            zero = dt if zero is None else promote_types(zero, dt)
    if dim is None:
        return zero if zero is not None else default_float()
    if zero is None or _category(zero) <= _category(dim):
        return dim
    return promote_types(dim, zero)


def wanted(op: Any, arrays: tuple[Any, ...], out: Any) -> np.dtype | None:
    """The dtype PyTorch gives ``op`` on ``arrays`` where NumPy's result ``out`` differs from
    it, else None (NumPy's is right).

    Ops that decide their own dtype (``cast``) or whose inputs play different roles (class
    labels, indices: every non-elementwise op but ``concatenate``) keep NumPy's, unless
    NumPy made float64 from inputs that held none (rule 4)."""
    got = out.dtype
    rules = op.rules
    if rules is not None:  # every value input already of the result's dtype: nothing to do
        for a, rule in zip(arrays, rules):  # (a where's condition, class labels: no rule)
            if rule is not None and a.dtype != got:
                break
        else:
            return None
    if op.name == "cast":
        return None
    if op.kind == "elementwise" or op.name == "concatenate":
        want = result_type(*arrays)
    elif op.name in ("sum", "cumsum"):
        want = _INT64 if got.kind in "biu" else arrays[0].dtype
    else:
        want = got if got != np.float64 else _widest_float(arrays)
    if got.kind == "f" and want.kind != "f":
        want = default_float()  # rule 4
    return None if got == want else want


def cast_inputs(op: Any, inputs: tuple[Any, ...], dtype: np.dtype) -> tuple[Any, ...]:
    """``inputs`` with each value input of another dtype cast to ``dtype`` (by the ``cast``
    op, so the gradient is cast back and ``gg.compile`` replays it); inputs without a rule
    (a condition, class labels) stay as they are."""
    rules = op.rules or (True,) * len(inputs)
    return tuple(apply(ops.cast, t, dtype=dtype)
                 if rule is not None and t._data.dtype != dtype else t
                 for t, rule in zip(inputs, rules))


def _widest_float(arrays: tuple[Any, ...]) -> np.dtype:
    floats = [np.dtype(a.dtype) for a in arrays if a.dtype.kind == "f"]
    return max(floats, key=lambda d: d.itemsize) if floats else default_float()

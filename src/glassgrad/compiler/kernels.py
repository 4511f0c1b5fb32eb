"""The compiled step's own variants of a few op-table rules, which ``gg.compile`` uses (the
engine never does; ``nn.Sequential`` writes an activation over a Linear's result with
``FORWARD_INTO``), keyed by op name. Each computes the same values as the op's forward
or rule, bit for bit; ``tests/test_compile_inplace.py`` and ``tests/test_compile_fold.py``
check every entry against the plain one.

- ``FORWARD_INTO`` / ``GRADS_INTO``: the result written over the (only) input, or over the
  incoming gradient. ``passes.in_place`` uses one where the recording proves that array is
  the step's own and read by nothing afterwards.
- ``GRADS_FOLD``: per input, ``c ← α·rule(...) + β·c`` as one BLAS product (``blas.gemm``),
  so an optimizer's update (``Optimizer.fold``) needs no gradient array (``passes.fold``).
- ``linear_no_bias`` / ``bias_relu_into``: a linear layer's forward without its bias, and the
  relu written over that result adding the bias in its pass (``passes.bias_relu``, as
  ``nn.Sequential`` does eagerly): one C pass (``_backward.bias_relu``) or NumPy's two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..autograd import _native
from ..blas import axpby, gemm
from ..ops import (
    _RELU,
    _TANH,
    Op,
    _column_sums,
    _matmul_grad_a,
    _matmul_grad_b,
    _one_pass,
    _rows,
    _zero,
)


def _matmul_fold_a(c: Any, alpha: float, beta: float, grad: Any, out: Any, a: Any, b: Any
                   ) -> None:
    if a.ndim == 2 and b.ndim == 2:
        return gemm(alpha, grad, b.T, beta, c)
    return axpby(alpha, _matmul_grad_a(grad, out, a, b), beta, c)


def _matmul_fold_b(c: Any, alpha: float, beta: float, grad: Any, out: Any, a: Any, b: Any
                   ) -> None:
    if a.ndim == 2 and b.ndim == 2:
        return gemm(alpha, a.T, grad, beta, c)
    return axpby(alpha, _matmul_grad_b(grad, out, a, b), beta, c)


def _fold_column_sums(c: Any, alpha: float, beta: float, g: Any) -> None:
    """c ← α·Σ_rows g + β·c: the sums, then one pass over c (a matrix product with a row of
    ones has no gain here: measured 42 µs against 9 on 128×512)."""
    axpby(alpha, _column_sums(g), beta, c)


_bias_relu = None if _native is None else _native.bias_relu


def linear_no_bias(x: Any, weight: Any, bias: Any) -> Any:
    """linear's forward before its bias (``ops._linear_forward``'s product)."""
    return x @ weight.T


def bias_relu_into(z: Any, bias: Any) -> Any:
    """relu(z + bias) written over z: ``ops._linear_forward``'s ``out += bias``, then relu's
    forward in place, as one pass where the C kernel takes the arrays (the same bits)."""
    if _bias_relu is None or _bias_relu(z, bias) is NotImplemented:
        z += bias
        np.maximum(z, _zero(z), out=z)
    return z


FORWARD_INTO: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "tanh": lambda x: np.tanh(x, out=x),
    "relu": lambda x: np.maximum(x, _zero(x), out=x),
}

def _tanh_grad_into(grad: Any, out: Any, x: Any) -> Any:
    if _one_pass is not None and _one_pass(_TANH, grad, out, grad) is not NotImplemented:
        return grad  # (one C pass, as the op's rule)
    return np.multiply(grad, 1 - out * out, out=grad)


def _relu_grad_into(grad: Any, out: Any, x: Any) -> Any:
    if _one_pass is not None and _one_pass(_RELU, grad, out, grad) is not NotImplemented:
        return grad
    return np.multiply(grad, out > 0, out=grad)


GRADS_INTO: dict[str, tuple[Callable[..., Any] | None, ...]] = {
    "tanh": (_tanh_grad_into,),
    "relu": (_relu_grad_into,),
}

GRADS_FOLD: dict[str, tuple[Callable[..., None] | None, ...]] = {
    "matmul": (_matmul_fold_a, _matmul_fold_b),
    "linear": (
        None,  # (the input's gradient is no parameter's)
        lambda c, alpha, beta, grad, out, x, weight, bias:
            gemm(alpha, _rows(grad).T, _rows(x), beta, c),
        lambda c, alpha, beta, grad, out, x, weight, bias:
            _fold_column_sums(c, alpha, beta, _rows(grad)),
    ),
}


def forward_into(op: Op) -> Callable[[np.ndarray], np.ndarray] | None:
    """``op``'s forward written over its input, if it has one."""
    return FORWARD_INTO.get(op.name)


def grad_into(op: Op, i: int) -> Callable[..., Any] | None:
    """``op``'s rule for input ``i`` written over the incoming gradient, if it has one."""
    rules = GRADS_INTO.get(op.name, ())
    return rules[i] if i < len(rules) else None


def grad_fold(op: Op, i: int) -> Callable[..., None] | None:
    """``op``'s rule for input ``i`` folded into an update (c ← α·rule + β·c), if any."""
    rules = GRADS_FOLD.get(op.name, ())
    return rules[i] if i < len(rules) else None

"""Gradient clipping, as ``torch.nn.utils``: both change ``.grad`` in place."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..tensor import Tensor


def _grads(parameters: Any) -> list[np.ndarray]:
    if hasattr(parameters, "parameters") and callable(parameters.parameters):
        parameters = parameters.parameters()  # a Module: all its parameters
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad._data for p in parameters if p.grad is not None]


def clip_grad_norm_(
    parameters: Iterable[Tensor] | Tensor, max_norm: float, norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
) -> Tensor:
    """Scale all gradients together so that their joint norm is at most ``max_norm``.

    total = ‖(‖g₁‖, ‖g₂‖, …)‖ₚ (the norm of all gradients as one vector); every gradient is
    multiplied by min(1, max_norm / (total + 1e-6)). Returns the total norm before clipping.
    """
    grads = _grads(parameters)
    if max_norm < 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm}")
    if not grads:
        return Tensor._wrap(np.asarray(0.0, dtype=np.float32))
    p = float(norm_type)
    if math.isinf(p):
        total = max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    elif p == 2.0:
        # ‖g‖² as a dot product: BLAS speed, no |g|² temporary the size of the gradient.
        total = math.sqrt(sum(float(np.dot(g.ravel(), g.ravel())) for g in grads))
    else:
        total = sum(float(np.sum(np.abs(g) ** p)) for g in grads) ** (1.0 / p)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
            f"{total}, so they cannot be clipped. Fix: find where the loss became nan/inf "
            f"(gg.detect_anomaly()), or pass error_if_nonfinite=False."
        )
    coef = min(max_norm / (total + 1e-6), 1.0)
    if coef < 1.0:  # multiplying by 1 would change nothing
        for g in grads:
            g *= g.dtype.type(coef)
    dtype = grads[0].dtype
    return Tensor._wrap(np.asarray(total, dtype=dtype))


def clip_grad_value_(parameters: Iterable[Tensor] | Tensor, clip_value: float) -> None:
    """Clip every gradient element to [−clip_value, clip_value]."""
    if clip_value < 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value}")
    for g in _grads(parameters):
        np.clip(g, -clip_value, clip_value, out=g)

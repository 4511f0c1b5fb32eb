"""Anomaly mode: stop at the first op that turns finite numbers into NaN or Inf.

``with glassgrad.detect_anomaly(): ...`` watches every op, forward and backward, through the
engine's hook. It names the op, the user's source line that created it, the ranges of its
inputs and, for the common traps (log of 0, exp overflow, division by zero, the
``where(mask, sqrt(x), 0)`` trap), what happened and how to fix it. Off, it costs nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

from .autograd import hook

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


class AnomalyError(FloatingPointError):
    """A NaN or Inf appeared; the message says where and why."""


def _user_frame() -> str:
    """'file:line: code' of the innermost caller outside glassgrad."""
    f = sys._getframe(1)
    while f is not None and os.path.abspath(f.f_code.co_filename).startswith(_PKG_DIR):
        f = f.f_back
    if f is None:
        return "<unknown>"
    import linecache

    code = linecache.getline(f.f_code.co_filename, f.f_lineno).strip()
    return f"{f.f_code.co_filename}:{f.f_lineno}: {code}"


def _range(a: Any) -> str:
    a = np.asarray(a)
    if a.dtype.kind not in "fiu" or a.size == 0:
        return f"shape {a.shape}, dtype {a.dtype}"
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    if not finite.size:  # no range to give: "range [nan, nan]" would read as NaN values
        return f"shape {a.shape}, {_all_nonfinite(a)}"
    extra = ""
    if a.dtype.kind == "f" and finite.size != a.size:
        extra = f", {int(np.isnan(a).sum())} NaN, {int(np.isinf(a).sum())} Inf"
    return f"shape {a.shape}, range [{finite.min():.4g}, {finite.max():.4g}]{extra}"


def _all_nonfinite(a: np.ndarray) -> str:
    """"all 2 values are ±Inf", "all 3 values are NaN", or both kinds counted."""
    nan, pos, neg = int(np.isnan(a).sum()), int((a == np.inf).sum()), int((a == -np.inf).sum())
    inf = "±Inf" if pos and neg else "+Inf" if pos else "−Inf"
    if not nan:
        return f"all {a.size} values are {inf}" if a.size > 1 else f"the value is {inf}"
    if not pos + neg:
        return f"all {a.size} values are NaN" if a.size > 1 else "the value is NaN"
    return f"all {a.size} values are NaN or {inf} ({nan} NaN, {pos + neg} Inf)"


def _finite(a: Any) -> bool:
    return a is None or a.dtype.kind != "f" or bool(np.isfinite(a).all())


def _reason(op: Any, xs: list[np.ndarray], grad: np.ndarray | None) -> str:
    """Why ``op`` produced a NaN/Inf from these inputs: the cause its op-table entry names
    (``nan_causes``; ``grad`` is None in the forward pass), else a general word."""
    causes = getattr(op, "nan_causes", None)
    why = causes(grad, *xs) if causes is not None else None
    if why:
        return why
    if grad is None:
        return "the result overflowed or became undefined for these inputs."
    return "the local derivative is infinite or undefined at these inputs."


class _AnomalyHook:
    def __init__(self) -> None:
        # id(node) -> the source line that created it. Not a WeakKeyDictionary: that compares
        # keys with ==, which on Tensors is elementwise. An entry goes when its node dies.
        self.where: dict[int, str] = {}

    def on_forward(self, op: Any, inputs: tuple, out: Any) -> None:
        line = _user_frame()
        if out._op is not None:
            key = id(out)
            self.where[key] = line
            weakref.finalize(out, self.where.pop, key, None)
        if _finite(out._data):
            return
        xs = [t._data for t in inputs]
        bad_in = [i for i, x in enumerate(xs) if not _finite(x)]
        ranges = "\n".join(f"  input {i}: {_range(x)}" for i, x in enumerate(xs))
        if bad_in:
            raise AnomalyError(
                f"forward: '{op.name}' received a non-finite value in input {bad_in[0]}, "
                f"which was not produced by a watched op (it came from data or from code run "
                f"outside detect_anomaly()).\n  at {line}\n{ranges}"
            )
        raise AnomalyError(
            f"forward: '{op.name}' produced {_range(out._data)} from finite inputs: "
            f"{_reason(op, xs, None)}\n  at {line}\n{ranges}"
        )

    def on_backward(self, node: Any, grad: Any, sent: list) -> None:
        g = grad._data if hasattr(grad, "_data") else grad
        for i, pg in enumerate(sent):
            pa = pg._data if hasattr(pg, "_data") else pg
            if _finite(pa):
                continue
            xs = [p._data for p in node._parents]
            line = self.where.get(id(node), "<created outside detect_anomaly()>")
            # (an input that shares the result's array was written over by it: Sequential's
            # Linear → ReLU, layers._written_over; its own values are not kept)
            ranges = "\n".join(
                f"  input {k}: " + ("written over by this op's result, not kept"
                                    if x is node._data else _range(x))
                for k, x in enumerate(xs))
            origin = ("the gradient arriving from above was already non-finite"
                      if not _finite(g) else _reason(node._op, xs, g))
            raise AnomalyError(
                f"backward: the gradient that '{node._op.name}' sends to its input {i} is "
                f"{_range(pa)}: {origin}\n  '{node._op.name}' was created at {line}\n"
                f"  gradient from above: {_range(g)}\n{ranges}"
            )


@contextlib.contextmanager
def detect_anomaly() -> Iterator[None]:
    """Raise ``AnomalyError`` at the first op whose forward or backward turns finite into NaN/Inf.

    >>> import glassgrad as gg
    >>> with gg.detect_anomaly():
    ...     gg.tensor([0.0, 1.0], requires_grad=True).log()
    Traceback (most recent call last):
    glassgrad.anomaly.AnomalyError: forward: 'log' produced ... log of 0 gives −inf ...
    """
    with np.errstate(all="ignore"), hook(_AnomalyHook()):
        yield

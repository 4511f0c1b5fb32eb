"""``check_gradients``: a whole model's backward pass against finite differences, in float64.

For each parameter: the analytic gradient of ``loss_fn(model(X), y)`` from backprop, the
central difference (L(θ + ε) − L(θ − ε)) / 2ε for each checked entry (all of them for small
tensors, a fixed random sample for big ones), the largest relative error
|a − n| / max(|a|, |n|, 1e-12) and pass/fail against |a − n| ≤ atol + rtol·|n|. The model's
parameters are switched to float64 copies for the check and restored afterwards, even on error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..autograd import grad as _grad
from ..autograd import hook, no_grad
from ..gradcheck import central_differences
from ..tensor import Tensor
from .monitor import named_parameters


@dataclass
class ParamCheck:
    name: str
    shape: tuple[int, ...]
    checked: int  # entries compared
    max_abs_analytic: float
    max_abs_numeric: float
    max_rel_error: float
    passed: bool
    worst: tuple[int, ...]  # index of the entry with the largest error


class GradientReport:
    """The table ``check_gradients`` prints; ``passed`` is True when every row passed."""

    def __init__(self, rows: list[ParamCheck], kinks: int, eps: float) -> None:
        self.rows, self.kinks, self.eps = rows, kinks, eps

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    def __str__(self) -> str:
        w = max([9, *(len(r.name) for r in self.rows)])
        lines = [f"{'parameter':<{w}}  {'shape':<12} {'checked':>7}  {'|analytic|':>10}  "
                 f"{'|numeric|':>10}  {'rel.error':>9}  result"]
        for r in self.rows:
            result = "ok" if r.passed else f"FAIL at {r.worst}"
            lines.append(
                f"{r.name:<{w}}  {str(r.shape):<12} {r.checked:>7}  {r.max_abs_analytic:>10.3e}  "
                f"{r.max_abs_numeric:>10.3e}  {r.max_rel_error:>9.2e}  {result}")
        bad = sum(not r.passed for r in self.rows)
        lines.append(f"{len(self.rows) - bad} of {len(self.rows)} parameters agree "
                     f"(central differences, eps={self.eps}, float64).")
        if self.kinks:
            lines.append(
                f"note: {self.kinks} input(s) of relu/abs/max-like ops lie within eps of their "
                "kink (e.g. ReLU at 0), where the derivative jumps; a mismatch on entries "
                "feeding them is expected there, not a bug.")
        return "\n".join(lines)

    __repr__ = __str__


class _KinkCounter:
    def __init__(self, eps: float) -> None:
        self.eps, self.count = eps, 0

    def on_forward(self, op: Any, inputs: tuple, out: Tensor) -> None:
        kinks = getattr(op, "kinks", None)  # the op entry: 0 where the derivative jumps
        if kinks is not None:
            at = kinks(*(t._data for t in inputs))
            self.count += int((np.abs(at) < 10 * self.eps).sum())


def check_gradients(
    model: Any,
    loss_fn: Any,
    X: Any,
    y: Any,
    *,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-4,
    max_entries: int = 20,
    seed: int = 0,
    verbose: bool = True,
) -> GradientReport:
    """Compare backprop's gradient of every parameter with central differences.

    ``model`` is a Module, and ``loss_fn(model(X), y)`` must return a scalar Tensor; for a
    dict/list of parameter Tensors (a hand-written model) ``loss_fn(X, y)`` is called instead.
    Tensors with more than ``max_entries`` entries are checked on a seeded random sample of
    that many. Dropout and other training-only randomness are turned off (``model.eval()``)
    for the check. Prints the table when ``verbose``; returns it either way.
    """
    params = named_parameters(model)
    Xt, yt = _inputs(params, X, y, max_entries)

    def loss() -> Tensor:
        # A Module is called on X; for a bare dict/list of parameters loss_fn gets X itself.
        return loss_fn(model(Xt) if callable(model) else Xt, yt)

    rng = np.random.default_rng(seed)
    with _float64_eval(model, [p for _, p in params]):
        kinks = _KinkCounter(eps)
        with hook(kinks):
            value = loss()
        _check_scalar(value)
        analytic = _grad(value, [p for _, p in params], allow_unused=True)
        rows = [_compare(name, p, a, loss, rng, eps, atol, rtol, max_entries)
                for (name, p), a in zip(params, analytic)]
    report = GradientReport(rows, kinks.count, eps)
    if verbose:
        print(report)
    return report


def _inputs(params: list, X: Any, y: Any, max_entries: int) -> tuple[Tensor, Tensor]:
    """X and y as float64 Tensors (integer targets kept), after checking the arguments."""
    if not params:
        raise ValueError("check_gradients: the model has no parameters to check")
    X_arr = np.asarray(X._data if isinstance(X, Tensor) else X, dtype=np.float64)
    # With no sample the loss is a mean over nothing (NaN): every entry would read as FAIL.
    if X_arr.ndim and len(X_arr) == 0:
        raise ValueError(f"check_gradients: X has no samples (shape {X_arr.shape}), so the "
                         f"loss is not defined. Fix: pass at least one sample")
    if max_entries < 1:
        raise ValueError(f"check_gradients: max_entries={max_entries} checks nothing. Fix: "
                         f"max_entries >= 1 (entries compared per parameter tensor)")
    y_arr = y._data if isinstance(y, Tensor) else np.asarray(y)
    return Tensor(X_arr), Tensor(y_arr.astype(np.float64) if y_arr.dtype.kind == "f" else y_arr)


@contextlib.contextmanager
def _float64_eval(model: Any, params: list[Tensor]) -> Iterator[None]:
    """The model in eval mode with float64 copies of its parameters; restored afterwards,
    even on error."""
    saved = [(p, p._data) for p in params]
    was_training = getattr(model, "training", None)
    try:
        if was_training is not None and hasattr(model, "eval"):
            model.eval()
        for p, data in saved:
            p._data = data.astype(np.float64)
        yield
    finally:
        for p, data in saved:
            p._data = data
        if was_training and hasattr(model, "train"):
            model.train()


def _compare(name: str, p: Tensor, analytic: Tensor | None, loss: Callable[[], Tensor],
             rng: np.random.Generator, eps: float, atol: float, rtol: float,
             max_entries: int) -> ParamCheck:
    """One row of the table: ``p``'s backprop gradient against central differences, on all
    of its entries or a sample of ``max_entries`` drawn from ``rng``."""
    a = np.zeros(p.shape) if analytic is None else analytic._data
    idx = (np.arange(p.numel()) if p.numel() <= max_entries
           else np.sort(rng.choice(p.numel(), max_entries, replace=False)))
    with no_grad():
        num = central_differences(lambda: loss().item(), p._data, idx, eps)
    an = a.reshape(-1)[idx]
    err = np.abs(an - num)
    rel = err / np.maximum(np.maximum(np.abs(an), np.abs(num)), 1e-12)
    ok = err <= atol + rtol * np.abs(num)
    worst = int(idx[int(np.argmax(rel))]) if idx.size else 0
    return ParamCheck(
        name, tuple(p.shape), int(idx.size), float(np.abs(an).max(initial=0.0)),
        float(np.abs(num).max(initial=0.0)), float(rel.max(initial=0.0)),
        bool(ok.all()), tuple(int(i) for i in np.unravel_index(worst, p.shape)),
    )


def _check_scalar(value: Any) -> None:
    if not isinstance(value, Tensor) or value.numel() != 1:
        shape = getattr(value, "shape", type(value).__name__)
        raise ValueError(
            f"check_gradients: loss_fn(model(X), y) must return a scalar Tensor, got {shape}. "
            "Fix: reduce the loss with .mean() or .sum() (reduction='mean')."
        )

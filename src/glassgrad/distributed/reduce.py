"""Averaging gradients across ranks: one fused all-reduce per step.

``GradientReducer`` packs every gradient, weighted by this rank's sample count, into one
flat buffer together with a few numbers of bookkeeping, and sums it over all ranks with one
buffer-protocol ``Allreduce(IN_PLACE)``::

    [ b·∇p₀ | b·∇p₁ | ... | has ∇p₀, has ∇p₁, ... | b | b·loss | b if loss | bad₀ ... ]

Dividing the summed gradients by Σb gives the mean over the global batch, Σ_r b_r·∇_r / Σ b_r,
which is what one process computes on the whole batch when the loss is a mean over samples
(a rank with b = 0 adds nothing). The same call reduces the loss, so every rank reports the
global one, and tells every rank which ranks saw a NaN/Inf loss, so all stop at the same step.
``DistributedOptimizer`` wraps an optimizer so that ``step()`` does this before the update.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np

from ..autograd import enable_grad
from ..tensor import Tensor
from .comm import _group, _layout, check_same, parameters_digest


class Reduced(NamedTuple):
    """What one all-reduce gave every rank alike."""

    loss: float | None  # the global batch's mean loss (None: no rank passed one)
    count: float  # samples in the global batch (Σ b)
    bad_ranks: tuple[int, ...]  # ranks whose loss was NaN or Inf


class NonFiniteGradientStep(FloatingPointError):
    """The loss was NaN or Inf on some rank; every rank raised this at the same step, before
    the update. ``ranks`` and ``step`` are attributes."""

    every_rank = True

    def __init__(self, message: str, ranks: tuple[int, ...], step: int) -> None:
        super().__init__(message)
        self.ranks, self.step = ranks, step


class GradientReducer:
    """Averages the ``.grad`` of ``params`` over every rank, weighted by sample counts.

    The buffer is allocated once; ``reduce`` is one copy in, one ``Allreduce``, one divide out.
    A parameter with no gradient on any rank keeps ``.grad`` None (the optimizer skips it, as
    it would in one process); one with a gradient on some ranks only counts zeros elsewhere.
    """

    def __init__(self, params: Iterable[Tensor]) -> None:
        self.params = list(dict.fromkeys(params))  # each once, in order
        g = _group()
        self.rank, self.size, self.comm = g.rank, g.size, g.comm
        arrays = [p._data for p in self.params]
        self.dtype = np.result_type(*arrays) if arrays else np.dtype(np.float32)
        n, k = sum(a.size for a in arrays), len(arrays)
        self.buffer = np.zeros(n + k + 3 + self.size, self.dtype)
        self._views, at = [], 0
        for a in arrays:
            self._views.append(self.buffer[at:at + a.size].reshape(a.shape))
            at += a.size
        self._has = self.buffer[n:n + k]
        self._meta = self.buffer[n + k:n + k + 3]  # samples, loss sum, samples with a loss
        self._bad = self.buffer[n + k + 3:]

    def reduce(self, count: float = 1, loss: float | None = None) -> Reduced:
        """Replace every rank's ``.grad`` by the global mean, Σ_r count_r·∇_r / Σ count_r.

        ``count`` is how many samples this rank's gradient averages over (0: none, its
        ``.grad`` is ignored); ``loss`` its mean loss, or None. All ranks must call it.
        """
        if self.size == 1:  # nothing to combine: the gradients stay exactly as they are
            bad = () if loss is None or math.isfinite(loss) else (0,)
            return Reduced(loss, float(count), bad)
        self._pack(count, loss)
        from mpi4py import MPI

        self.comm.Allreduce(MPI.IN_PLACE, self.buffer, op=MPI.SUM)
        total, loss_sum, with_loss = (float(v) for v in self._meta)
        bad = tuple(int(r) for r in np.flatnonzero(self._bad))
        if bad:
            return Reduced(loss_sum, total, bad)  # the gradients are not used
        self._unpack(total)
        return Reduced(loss_sum / with_loss if with_loss else None, total, ())

    def _pack(self, count: float, loss: float | None) -> None:
        for i, (p, view) in enumerate(zip(self.params, self._views)):
            g = None if count == 0 else p.grad
            if g is None:
                view.fill(0)
                self._has[i] = 0
            else:
                np.multiply(g._data, count, out=view)
                self._has[i] = 1
        self._bad.fill(0)
        self._meta[0] = count
        self._meta[1:] = 0
        if loss is not None and count != 0:
            if math.isfinite(loss):
                self._meta[1:] = loss * count, count
            else:
                self._meta[1] = loss  # the sum stays NaN/Inf, so the message can show it
                self._bad[self.rank] = 1

    def _unpack(self, total: float) -> None:
        for i, (p, view) in enumerate(zip(self.params, self._views)):
            if self._has[i] == 0 or total == 0:
                p.grad = None
            elif p.grad is not None and p.grad._data.dtype == p._data.dtype:
                np.divide(view, total, out=p.grad._data, casting="unsafe")
            else:
                p.grad = Tensor._wrap((view / total).astype(p._data.dtype))


class DistributedOptimizer:
    """An optimizer whose ``step()`` first averages the gradients over every rank (one fused
    all-reduce), then applies the wrapped optimizer's update, the same on every rank: Horovod's
    ``DistributedOptimizer``. Everything else (``zero_grad``, ``param_groups``, ``state``,
    ``state_dict``) is the wrapped optimizer's, so schedulers and ``gg.compile(loss_fn,
    optimizer=...)`` take it as an optimizer; such a compiled step computes the gradients and
    calls this ``step()`` (the update is never folded into the gradient products, which would
    use this rank's gradient, not the mean).

    The mean is weighted by each rank's sample count: ``step(count=len(xb))``, or set
    ``.count`` before a compiled step; without one every rank weighs the same. With
    ``loss=``, the global mean loss is ``.last_loss`` afterwards, and a NaN/Inf loss on any
    rank raises ``NonFiniteGradientStep`` on every rank, before the update. Checks at
    construction that every rank holds the same parameters (shapes and values; call
    ``broadcast_parameters(model)`` first).
    """

    def __init__(self, optimizer: Any) -> None:
        if not isinstance(getattr(optimizer, "param_groups", None), list):
            raise TypeError(f"DistributedOptimizer(): wraps a glassgrad optimizer "
                            f"(gg.optim.SGD, ...), got {type(optimizer).__name__}.")
        self.optimizer = optimizer
        params = [p for group in optimizer.param_groups for p in group["params"]]
        named = [(str(i), p) for i, p in enumerate(params)]
        check_same("DistributedOptimizer()", parameters=_layout(named))
        check_same("DistributedOptimizer() (call broadcast_parameters(model) first, so "
                   "every rank starts from rank 0's weights)",
                   parameter_values=parameters_digest(params))
        self._reducer = GradientReducer(params)
        self.count: float | None = None
        self.last_loss: float | None = None
        self.steps = 0

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.optimizer.param_groups

    @property
    def state(self) -> dict:
        return self.optimizer.state

    @property
    def defaults(self) -> dict[str, Any]:
        return self.optimizer.defaults

    def zero_grad(self, set_to_none: bool = True) -> None:
        """The wrapped optimizer's ``zero_grad``."""
        self.optimizer.zero_grad(set_to_none)

    def step(self, closure: Callable[[], Any] | None = None, *, count: float | None = None,
             loss: Any = None) -> Any:
        """Average the gradients over all ranks, then update. Every rank must call it, once
        per step, even one that had no samples this step (``count=0``)."""
        if closure is not None:
            with enable_grad():
                loss = closure()
        n = count if count is not None else self.count if self.count is not None else 1
        value = None if loss is None else float(loss._data if isinstance(loss, Tensor)
                                                 else loss)
        self.steps += 1
        r = self._reducer.reduce(n, value)
        if r.bad_ranks:
            raise NonFiniteGradientStep(
                f"DistributedOptimizer.step(): the loss was {r.loss} on rank"
                f"{'s' if len(r.bad_ranks) > 1 else ''} {', '.join(map(str, r.bad_ranks))} "
                f"of {self._reducer.size} at step {self.steps}; every rank stopped before "
                f"applying it, so the weights are those after step {self.steps - 1}. Fix: "
                f"lower the learning rate, or look at that rank's batch.",
                r.bad_ranks, self.steps)
        self.last_loss = r.loss
        self.optimizer.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict)

    def __repr__(self) -> str:
        return f"DistributedOptimizer({self.optimizer!r}, {self._reducer.size} ranks)"

"""A compiled step's program: built from a recording (record → lower → passes → emit),
checked once against the engine, then replayed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import autograd, blas
from ..interrupt import DeferredInterrupt
from ..tensor import Tensor
from . import emit, passes
from .errors import CompileError
from .ir import Line
from .lower import Lowered, Returns, lower
from .record import record

# store_grads' usual case in C (arrays into .grad slots that are None), or None
_store_fresh = None if autograd._native is None else autograd._native.store_fresh


def build(loss_fn: Callable[..., Tensor], targs: tuple[Tensor, ...],
          optimizer: Any = None, backend: str = "numpy") -> Program:
    """Record ``loss_fn`` on ``targs`` and make its program; the first call's result is
    ``first_result`` (with an optimizer, its step is taken). With ``backend="numba"``,
    replays run one compiled function (``numba_backend``), or NumPy where it cannot."""
    low = lower(record(loss_fn, targs))
    arrays = passes.held(low.lines)
    source, fn = _emit(low, low.lines, low.returns, arrays)
    prog = Program(fn, source, low.rec.params, low.leaves, low.arg_leaves,
                   low.rec.aux is not None, optimizer)
    if callable(getattr(optimizer, "fold", None)):  # (a duck-typed optimizer: no folds)
        _fold_updates(prog, low, arrays)
    prog.guard, prog.changed = emit.guard(low)
    if backend == "numba":
        from .numba_backend import accelerate  # noqa: PLC0415  (numba: an optional extra)

        prog = accelerate(prog, low)
    elif backend == "c":
        from . import c_backend  # noqa: PLC0415

        prog = c_backend.accelerate(prog, low)
    # Every program is written: the gradients the lowering computed on the recorded values
    # (arrays the passes read to prove their rewrites) go now, before the checks below run
    # the step twice more (the MLP at batch 1024: 10 MiB; the first call's peak RSS with
    # SGD folded went from 80 to 70 MiB, measured).
    _forget_recorded_gradients(low, arrays)
    # The first call's result: replay on these very inputs and check it against the eager
    # engine once, so a recording that would differ is caught here, not in a training run.
    result = fn(*(t._data for t in targs))
    _check_gradients(low, result[1])
    if prog.fused is not None:
        _check_folded(prog, result, targs)
    prog.first_result = prog.finish(targs, result)
    return prog


def _forget_recorded_gradients(low: Lowered, arrays: dict[str, list[np.ndarray]]) -> None:
    """Let go of the arrays each line held in the recording, which only the passes read:
    the gradients the lowering computed go (the forward's values stay, held by the
    recording's graph until the checks are done)."""
    for line in low.lines:
        line.values = []
    low.sent.clear()
    arrays.clear()


def _emit(low: Lowered, lines: list[Line], returns: Returns,
          arrays: dict[str, list[np.ndarray]], extra_arg: str = ""
          ) -> tuple[str, Callable[..., Any]]:
    """``lines`` through the in-place, bias-and-relu and freeing passes, as source and as a
    function."""
    returned = returns.names()
    lines = passes.in_place(lines, arrays, low.external(), returned)
    lines = passes.bias_relu(lines)
    lines = passes.free_after_last_use(lines, returned)
    return emit.program(low, lines, returns, extra_arg)


def _check_gradients(low: Lowered, grads: tuple) -> None:
    """Refuse a program whose gradients differ from the engine's on the recorded values."""
    rec = low.rec
    receivers = [*low.leaves, *(rec.targs[i] for i in low.arg_leaves)]
    ref = autograd.grad(rec.loss, receivers, allow_unused=True)
    for t, mine, theirs in zip(receivers, grads, ref):
        scale = _scale(theirs._data) if theirs is not None else 0
        if theirs is None or not np.allclose(mine, theirs._data, rtol=1e-5, atol=1e-6 * scale,
                                             equal_nan=True):
            raise CompileError(
                f"internal error: the recorded step's gradient for a tensor of shape "
                f"{t.shape} differs from the engine's. Please report it; run the step "
                f"eagerly (without gg.compile) meanwhile."
            )


def _scale(a: np.ndarray) -> float:
    """The largest finite magnitude in ``a`` (at least 1): the scale of a tolerance that a
    NaN or Inf gradient (bad data, not a wrong program) must not turn into NaN."""
    a = np.abs(a)
    return float(np.max(a, where=np.isfinite(a), initial=1.0))


def _fold_updates(prog: Program, low: Lowered, arrays: dict[str, list[np.ndarray]]) -> None:
    """Give ``prog`` a second program in which each parameter the optimizer holds, whose
    gradient is one product with a folded variant and whose array nothing reads afterwards,
    receives its update in that product (``passes.fold``), with the (c, α, β) that
    ``optimizer.fold(p)`` gives on each call. (``_check_folded`` checks it before its first
    use.)"""
    held = {id(p) for g in prog.optimizer.param_groups for p in g["params"]}
    candidates = [p for p in prog.leaves if id(p) in held and id(p) in low.foldable]
    lines, which = passes.fold(low.lines, arrays, low.returns.names(), [
        (low.names[id(p)], p._data, low.foldable[id(p)]) for p in candidates])
    folded = [candidates[k] for k in which]
    if not any(p._data.size >= blas.BLAS_MIN for p in folded):
        return  # a small network: a fold gains nothing without BLAS, and costs a few calls
    kept = [k for k, p in enumerate(prog.leaves) if not any(p is f for f in folded)]
    r = low.returns
    order = [*kept, *range(len(prog.leaves), len(r.grads))]
    returns = r._replace(grads=[r.grads[k] for k in order], copied=[r.copied[k] for k in order])
    source, fn = _emit(low, lines, returns, arrays, "U")
    prog.fused, prog.fused_source, prog.folded = fn, source, folded
    prog.fused_leaves = [prog.leaves[k] for k in kept]
    prog.unfolded_held = any(id(p) in held for p in prog.fused_leaves)


def _check_folded(prog: Program, result: tuple, targs: tuple[Tensor, ...]) -> None:
    """Check the folded program once, on these inputs, against the checked gradients
    (``result``, the plain program's): targets are copies (the parameters must not move
    here), α and β arbitrary."""
    folded = prog.folded
    copies = [p._data.copy() for p in folded]
    fused = prog.fused(*(t._data for t in targs), [(c, -0.3, 0.7) for c in copies])
    grads = dict(zip(map(id, prog.leaves), result[1]))
    for p, c in zip(folded, copies):
        want = -0.3 * grads[id(p)] + 0.7 * p._data
        scale = _scale(want)
        if not np.allclose(c, want, rtol=1e-4, atol=1e-5 * scale, equal_nan=True):
            raise CompileError(
                f"internal error: the folded update of a parameter of shape {p.shape} differs "
                f"from the gradient's. Please report it; compile without optimizer= meanwhile."
            )
    others = [grads[id(p)] for p in prog.fused_leaves] + list(result[1][len(prog.leaves):])
    if not all(np.array_equal(a, b, equal_nan=True) for a, b in zip(fused[1], others)):
        raise CompileError("internal error: the folded program's other gradients differ. "
                           "Please report it; compile without optimizer= meanwhile.")


class Program:
    """One recording: the generated function and where its gradients go; with an optimizer,
    also the function with the optimizer's updates folded in (``fused``), when it has one."""

    def __init__(self, fn: Callable, source: str, params: list[Tensor], leaves: list[Tensor],
                 arg_leaves: list[int], has_aux: bool, optimizer: Any = None) -> None:
        self.fn = fn
        self.has_aux = has_aux
        self.source = self.plain_source = source
        self.params = params
        self.leaves = leaves
        self.arg_leaves = arg_leaves
        self.optimizer = optimizer
        self.fused: Callable | None = None
        self.fused_source = ""
        self.folded: list[Tensor] = []  # parameters updated inside ``fused``
        self.fused_leaves: list[Tensor] = []  # the others, whose gradients it returns
        self.unfolded_held = False  # whether the optimizer holds any of those
        self.first_result: Tensor | tuple[Tensor, ...]
        self.guard: Callable[[tuple], bool]  # whether a call may replay this recording
        self.changed: Callable[[tuple], str | None]  # the first guard a call fails

    def run(self, targs: tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
        opt = self.optimizer
        if opt is None:
            return self.deliver(targs, self.fn(*[t._data for t in targs]), self.leaves)
        if self.fused is not None:
            folds = [opt.fold(p) for p in self.folded]
            if all(f is not None for f in folds):
                opt.zero_grad()
                with DeferredInterrupt():  # the weights change inside the products: all or none
                    result = self.fused(*[t._data for t in targs], [f[:3] for f in folds])
                    loss = self.deliver(targs, result, self.fused_leaves)
                    for f in folds:
                        if f[3] is not None:
                            f[3]()
                    autograd.mark_modified(*self.folded)  # (a graph made before must not
                    # go backward through the new values)
                if self.unfolded_held:  # parameters the optimizer holds but could not fold
                    opt.step()  # (their .grad is set, the folded ones' None)
                    opt.zero_grad()
                self.source = self.fused_source
                return loss
        self.source = self.plain_source
        return self.finish(targs, self.fn(*[t._data for t in targs]))

    def finish(self, targs: tuple[Tensor, ...], result: tuple) -> Tensor | tuple[Tensor, ...]:
        """Deliver the plain program's ``result``; with an optimizer, as one training step:
        gradients from zero, ``step()``, and the gradients forgotten."""
        opt = self.optimizer
        if opt is None:
            return self.deliver(targs, result, self.leaves)
        opt.zero_grad()
        loss = self.deliver(targs, result, self.leaves)
        opt.step()
        opt.zero_grad()
        return loss

    def deliver(self, targs: tuple[Tensor, ...], result: tuple, leaves: list[Tensor]
                ) -> Tensor | tuple[Tensor, ...]:
        """Accumulate the gradients into ``.grad`` of ``leaves`` (and of the arguments that
        require grad) as ``backward()`` does, and return the loss (with the extra outputs, if
        any). The program copies a gradient that the recording saw shared (one array sent to
        two leaves, the seed); store_grads copies views, so no ``.grad`` shares memory with
        anything. Its usual case (every ``.grad`` None) runs in C
        (``_backward.store_fresh``), with store_grads' result."""
        receivers = leaves if not self.arg_leaves else [
            *leaves, *(targs[i] for i in self.arg_leaves)]
        if _store_fresh is None or not _store_fresh(receivers, result[1]):
            autograd.store_grads(zip(receivers, result[1]), shared_copied=True)
        value = result[0]
        loss = Tensor._wrap(value if type(value) is np.ndarray else np.asarray(value))
        if not self.has_aux:
            return loss
        return (loss, *[Tensor._wrap(np.asarray(a)) for a in result[2]])

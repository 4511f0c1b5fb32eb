"""``compile``: record one training step's forward and backward pass, replay it as plain NumPy.

An eager step pays Python bookkeeping on every op: a Tensor per result, a node per op, a
walk of the graph, checks of shapes and dtypes. For a small network that bookkeeping costs
more than the arithmetic. ``compile(loss_fn)`` runs ``loss_fn`` under an engine observer,
notes every op it ran, and writes the whole step (forward ops, then the backward
rules of ``ops.py`` in reverse order, with the engine's un-broadcasting and accumulation
decided once, for these shapes) as one straight-line Python function. Calling the result
replays that function: NumPy calls and nothing else. Its source is readable
(``step.source``): it is the "backprop by hand in NumPy" a textbook would write, generated.

A recording holds only while what it read is unchanged, so, as ``torch.compile`` does, each
one carries guards (``guards.py``), checked before every replay: the arguments' shapes,
dtypes and requires_grad, the parameters' identity and requires_grad, modules' train/eval
mode and forward hooks, the numbers, tensors and functions the loss function captures. A
failed guard records again; at most ``Compiled.cache_size`` recordings are kept (least
recently used dropped). What no guard can make right is refused with ``CompileError``: a
value read in Python during recording (``.item()``, ``float()``, ``if t:``) from a tensor
the step computed, a parameter, or an argument of several elements; random draws (Dropout
in training mode). The function is also recorded twice, the second time on other values,
and refused if the two disagree where a replay would freeze a value (NumPy on ``.data``;
one more sample, not a proof). An integer array or number passed as an index is replayed as
an input. While an observer is attached (``explain.trace``, ``diagnose.Monitor``,
``detect_anomaly``) calls run eagerly, so those tools see every op.

The package, in the order a recording goes through it (see its README): ``record.py`` (the
observer, the replay check), ``lower.py`` (the recording as ``ir.Line`` objects),
``passes.py`` (in place, folded updates, free after last use), ``emit.py`` (source, exec,
guard), ``guards.py`` (what a recording read), ``program.py`` (build, check, replay).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .. import autograd
from ..autograd import STATE
from ..tensor import Tensor
from .errors import CompileError
from .program import Program, build
from .record import as_tensor, split

__all__ = ["CompileError", "Compiled", "compile"]


BACKENDS = ("numpy", "numba", "c")


def compile(loss_fn: Callable[..., Tensor], optimizer: Any = None,  # noqa: A001
            backend: str = "numpy") -> Compiled:
    """Make ``loss_fn`` a compiled training step: ``step(*args)`` does what
    ``loss = loss_fn(*args); loss.backward()`` does, and returns the loss (detached).

    ``loss_fn`` may also return ``(loss, *extra)``, extra tensors such as the model's output
    for metrics; the step then returns ``(loss, *extra)``, all detached.

    Gradients accumulate into ``.grad`` of every tensor with ``requires_grad=True`` that the
    loss depends on (the model's parameters, and arguments that require grad), exactly as
    ``backward()`` would; the optimizer is used as usual afterwards. The first call with new
    shapes runs ``loss_fn`` twice (the second time on other values, as a check) and records;
    later calls replay the recording without running ``loss_fn`` while its guards hold (the
    same parameters and modes, captured numbers, ...: see the module docstring), and record
    again when one does not.

    With ``optimizer``, the step is a whole training step, ``optimizer.zero_grad();
    loss_fn(*args).backward(); optimizer.step()``, and where the optimizer's update of a
    parameter is linear in its gradient (``Optimizer.fold``: SGD, also with weight decay or
    momentum) the update is folded into the matrix product that makes the gradient: for a
    linear layer W ← W − lr·Gᵀ@x is one BLAS call (``blas.gemm``), so that gradient is never
    stored and the update makes no pass of its own over W (in a network with a parameter of
    at least ``blas.BLAS_MIN`` elements: below that a fold gains nothing). The gradients are
    used up: after the step ``.grad`` of the optimizer's parameters is None (compile without
    ``optimizer`` to inspect or clip them).

    ``backend="c"`` replays the whole step, the optimizer's folded update included, as one C
    function compiled by the system's C compiler on its first replay, the second call (a
    fraction of a second; kept on disk for the next process) and ``backend="numba"`` (``pip install
    "glassgrad[jit]"``) as one numba function (seconds; ``step.jit_seconds``), with the same
    guards; results agree with the NumPy replay to float rounding. A step with an op they
    have no code for, or without a C compiler, replays in NumPy, with a
    ``JitFallbackWarning`` saying why (see ``compiler/README.md``).

    >>> import glassgrad as gg
    >>> model = gg.nn.MLP([2, 3, 1], activation="tanh", seed=0)
    >>> opt = gg.optim.SGD(model.parameters(), lr=0.1)
    >>> step = gg.compile(lambda X, y: gg.nn.functional.mse_loss(model(X), y))
    >>> X, y = gg.data.xor()
    >>> y = y.reshape(-1, 1)
    >>> for _ in range(3):
    ...     opt.zero_grad()
    ...     loss = step(X, y)
    ...     opt.step()
    >>> print(step.source.splitlines()[0])
    def step(a0, a1):
    """
    if not callable(loss_fn):
        raise TypeError(
            f"compile(): expected a function that returns a scalar loss, got "
            f"{type(loss_fn).__name__}. Fix: gg.compile(lambda X, y: loss(model(X), y))."
        )
    if optimizer is not None and not (isinstance(getattr(optimizer, "param_groups", None), list)
                                      and callable(getattr(optimizer, "step", None))):
        raise TypeError(
            f"compile(): optimizer must be a glassgrad optimizer (gg.optim.SGD, ...), got "
            f"{type(optimizer).__name__}. Fix: gg.compile(loss_fn, optimizer=opt), or leave "
            f"optimizer out and call opt.step() after each step."
        )
    if backend not in BACKENDS:
        raise ValueError(
            f"compile(): backend must be one of {BACKENDS}, got {backend!r}. Fix: "
            f"backend='numpy' (the default), backend='c' (a C compiler) or backend='numba' "
            f"(pip install \"glassgrad[jit]\")."
        )
    if backend == "numba":
        from .numba_backend import require_numba  # noqa: PLC0415

        require_numba()
    return Compiled(loss_fn, optimizer, backend)


class Compiled:
    """A loss function with its recorded steps, one per argument signature (shapes, dtypes,
    requires_grad), at most ``cache_size`` of them: a new signature beyond that drops the
    least recently used recording. Each recording is replayed only while its guards hold
    (``guards.py``); otherwise the call records again, and ``why_recorded`` says why."""

    cache_size: int = 8

    def __init__(self, loss_fn: Callable[..., Tensor], optimizer: Any = None,
                 backend: str = "numpy") -> None:
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.backend = backend
        self._programs: OrderedDict[tuple, Program] = OrderedDict()  # oldest use first
        self._last: Program | None = None
        self.why_recorded = ""  # why the latest recording was made

    def __call__(self, *args: Any) -> Tensor | tuple[Tensor, ...]:
        prog = self._last
        if prog is not None and not STATE.hooks and STATE.grad_enabled and prog.guard(args):
            return prog.run(args)  # the common case: the previous call's recording holds
        targs = tuple([a if type(a) is Tensor else as_tensor(a) for a in args])
        if STATE.hooks or not STATE.grad_enabled:
            return self._eager(targs)
        key = tuple([(t._data.shape, t._data.dtype, t._requires_grad) for t in targs])
        prog = self._programs.get(key)
        if prog is not None and prog.guard(targs):
            self._programs.move_to_end(key)
            self._last = prog
            return prog.run(targs)
        why = ("no recording for these argument shapes and dtypes" if prog is None
               else f"no longer true: {prog.changed(targs)}")
        prog = build(self.loss_fn, targs, self.optimizer, self.backend)
        self._programs[key] = prog  # (replaces a stale recording of the same signature)
        self._programs.move_to_end(key)
        while len(self._programs) > self.cache_size:
            self._programs.popitem(last=False)
        self._last = prog
        self.why_recorded = why
        return prog.first_result

    def _eager(self, targs: tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
        if not STATE.grad_enabled:
            raise autograd.GraphError(
                "a compiled step computes gradients, but gradients are off here (inside "
                "gg.no_grad()). Fix: call it outside no_grad, or call the uncompiled loss "
                "function to evaluate the loss without gradients."
            )
        opt = self.optimizer
        if opt is not None:
            opt.zero_grad()
        loss, aux = split(self.loss_fn(*targs))
        loss.backward()
        if opt is not None:
            opt.step()
            opt.zero_grad()
        return loss.detach() if aux is None else (loss.detach(), *[a.detach() for a in aux])

    def reset(self) -> None:
        """Forget every recording: the next call records again. Not needed after a change
        the guards see (a module's train/eval mode, a parameter replaced, a captured number);
        needed after changing something they do not follow (a value in a dict or a plain
        object that the loss function reads)."""
        self._programs.clear()
        self._last = None

    @property
    def source(self) -> str:
        """The Python source of the most recently used recording."""
        if self._last is None:
            raise CompileError("nothing recorded yet: call the compiled step once first")
        return self._last.source

    @property
    def jit_seconds(self) -> float:
        """Seconds the C compiler or numba spent compiling and checking the most recently used
        recording's kernels (0 for the NumPy back end)."""
        return getattr(self._last, "jit_seconds", 0.0)

    def __repr__(self) -> str:
        name = getattr(self.loss_fn, "__qualname__", repr(self.loss_fn))
        return f"<compiled {name}: {len(self._programs)} recording(s)>"

"""``gg.autograd.Function``: a differentiable op written as a class, as in PyTorch.

    class Cube(gg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * 3 * x ** 2

    y = Cube.apply(x)

It is built on the op table's mechanism for custom ops: each subclass gets one ``Op`` (not
added to the table ``gg.OPS``; its name is the class name), whose backward is the class's
``backward``. ``apply`` runs ``forward`` without recording, then links the result into the
graph with ``autograd.record``, as every op's result is. So the engine does the generic
work for it (skipping, un-broadcasting, casting, accumulating, the in-place check, hooks),
and ``create_graph=True`` works when ``backward`` is written with differentiable ops.

Differences from PyTorch: ``forward`` returns one tensor (not a tuple of them); the engine's
in-place check covers every tensor input and the output, besides the tensors saved with
``save_for_backward`` (PyTorch checks only the saved ones).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .autograd import STATE, enable_grad, no_grad, record, version
from .ops import Op
from .tensor import Tensor


class FunctionCtx:
    """The ``ctx`` that ``forward`` and ``backward`` share: what forward saves for
    backward, and which inputs need a gradient."""

    def __init__(self, needs_input_grad: tuple[bool, ...]) -> None:
        self.needs_input_grad = needs_input_grad
        self._saved: tuple[Tensor | None, ...] = ()
        self._saved_versions: tuple[int, ...] = ()
        self._non_differentiable: set[int] = set()

    def save_for_backward(self, *tensors: Tensor | None) -> None:
        """Keep tensors for ``backward`` (read them back with ``ctx.saved_tensors``); a
        later in-place write to one of them makes backward raise, as in PyTorch."""
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(
                    f"save_for_backward(): argument {i} is a {type(t).__name__}, but only "
                    f"tensors (or None) can be saved. Fix: keep other values as attributes "
                    f"of ctx (ctx.k = k).")
        self._saved = tensors
        self._saved_versions = tuple(0 if t is None else version(t) for t in tensors)

    @property
    def saved_tensors(self) -> tuple[Tensor | None, ...]:
        """The tensors given to ``save_for_backward``, checked for in-place writes since."""
        for i, (t, v) in enumerate(zip(self._saved, self._saved_versions)):
            if t is not None and version(t) != v:
                raise RuntimeError(
                    f"saved_tensors: saved tensor {i} (shape {t.shape}) was modified in place "
                    f"after save_for_backward(), so backward would use the new values, not "
                    f"the ones forward saw. Fix: make the change after backward(), or save "
                    f"a copy (ctx.save_for_backward(x.clone())).")
        return self._saved

    def mark_non_differentiable(self, *outputs: Tensor) -> None:
        """Declare outputs that take no gradient (e.g. indices): they do not require grad."""
        self._non_differentiable.update(id(t) for t in outputs)


@dataclass(frozen=True, eq=False, repr=False)
class FunctionOp(Op):
    """An ``Op`` made for a ``Function`` subclass (``function``)."""

    function: type | None = None


class Function:
    """Base class of a custom differentiable op; see the module docstring.

    Subclasses define ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)`` as
    static methods and are called with ``apply(*args)``. ``backward`` returns one gradient
    per argument of ``forward`` (None for a non-tensor or one that needs no gradient),
    each of its input's shape (or broadcastable to it).
    """

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a Function subclass must define forward(ctx, *args) as a "
                                  "@staticmethod")

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs: Any) -> Any:
        raise NotImplementedError("a Function subclass must define backward(ctx, "
                                  "*grad_outputs) as a @staticmethod")

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        """Run ``forward`` on ``args`` and link its result into the graph."""
        needs = tuple(isinstance(a, Tensor) and a._requires_grad for a in args)
        ctx = FunctionCtx(needs)
        with no_grad():  # ops inside forward are not recorded, as in PyTorch
            out = cls.forward(ctx, *args, **kwargs)
        if not isinstance(out, Tensor):
            raise TypeError(
                f"{cls.__name__}.forward returned a {type(out).__name__}; glassgrad's "
                f"Function supports exactly one output tensor. Fix: return one tensor (for "
                f"several results, write one Function per result).")
        if not (any(needs) and STATE.grad_enabled) or id(out) in ctx._non_differentiable:
            return out
        positions = tuple(i for i, a in enumerate(args) if isinstance(a, Tensor))
        ctx._positions = positions  # where each graph input sits among forward's arguments
        ctx._n_args = len(args)
        return record(_op_for(cls), tuple(args[i] for i in positions), out._data,
                      {"ctx": ctx})


def _op_for(cls: type) -> FunctionOp:
    """The one ``Op`` of a Function subclass (made on first use, kept on the class)."""
    op = cls.__dict__.get("_gg_op")
    if op is None:
        name = cls.__name__

        def backward(grad: Any, out: Any, *inputs: Any, ctx: FunctionCtx) -> tuple:
            return _run_backward(cls, ctx, grad, inputs)

        op = FunctionOp(
            name, f"custom: {cls.__qualname__}.backward", _not_replayable(name), backward,
            domain=None, kind="custom", variadic=True, local_kind="structural",
            compile_refusal=lambda **attrs: (
                f"the custom autograd.Function {name} runs Python code gg.compile cannot "
                f"replay"),
            function=cls,
        )
        cls._gg_op = op
    return op


def _not_replayable(name: str) -> Any:
    def forward(*arrays: Any, **attrs: Any) -> Any:
        raise RuntimeError(f"{name}: a custom autograd.Function runs only through "
                           f"{name}.apply(...)")

    return forward


def _run_backward(cls: type, ctx: FunctionCtx, grad: Any, inputs: tuple) -> tuple:
    """The engine's call of ``cls.backward``: its gradients, checked, for the graph inputs.

    The engine passes arrays, or Tensors under ``create_graph=True``; ``backward`` always
    sees Tensors, and records a graph only under ``create_graph``."""
    differentiable = isinstance(grad, Tensor)
    with enable_grad() if differentiable else no_grad():
        grads = cls.backward(ctx, grad if differentiable else Tensor._wrap(np.asarray(grad)))
    if not isinstance(grads, tuple):
        grads = (grads,)
    n = ctx._n_args
    if len(grads) != n and not (len(grads) > n and all(g is None for g in grads[n:])):
        raise RuntimeError(
            f"{cls.__name__}.backward returned {len(grads)} gradient(s), but forward took "
            f"{n} argument(s): it must return one per argument of forward (None for a "
            f"non-tensor or one without a gradient).")
    return tuple(_checked(cls, i, grads[i], x, differentiable)
                 for i, x in zip(ctx._positions, inputs))


def _checked(cls: type, i: int, g: Any, x: Any, differentiable: bool) -> Any:
    """Gradient ``i`` as the engine takes it: an array (a Tensor under create_graph)."""
    if g is None:
        return None
    if not isinstance(g, Tensor):
        raise TypeError(f"{cls.__name__}.backward returned a {type(g).__name__} as gradient "
                        f"{i}; it must be a tensor or None. Fix: wrap it, gg.tensor(value).")
    try:
        fits = np.broadcast_shapes(g.shape, x.shape) == g.shape
    except ValueError:
        fits = False
    if not fits:
        raise RuntimeError(
            f"{cls.__name__}.backward returned a gradient of shape {g.shape} for argument {i}, "
            f"whose shape is {x.shape}: a gradient has its input's shape (or one that "
            f"broadcasts to it, which is summed). Fix: return a gradient of shape {x.shape}.")
    return g if differentiable else g._data

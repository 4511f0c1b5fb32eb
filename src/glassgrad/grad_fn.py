"""``t.grad_fn``: PyTorch's view of a graph node, built on demand from the Tensor.

glassgrad's node *is* the result Tensor (``_op``, ``_parents``); nothing is stored for
``grad_fn``. Reading it wraps the tensor in a small object with PyTorch's interface:
``name()`` (``"MulBackward0"``), ``next_functions`` (one ``(function, 0)`` pair per input:
the input's ``grad_fn``, an ``AccumulateGrad`` for a leaf that requires grad, ``None`` for
an input that needs no gradient) and a repr like ``<MulBackward0>``. So the engine's hot
path pays nothing for it.

The name is the op's name in CamelCase + ``Backward0`` (``log_softmax`` →
``LogSoftmaxBackward0``); the trailing digit, PyTorch's overload index, is always 0 here
(one set of rules per op). A custom ``autograd.Function`` ``Cube`` gives ``CubeBackward``,
as in PyTorch. Two reads of ``t.grad_fn`` give equal objects (compared by node).
"""

from __future__ import annotations

from typing import Any

from .autograd import parents_as_used
from .tensor import Tensor


class AccumulateGrad:
    """Where the gradient of a leaf that requires grad ends: its ``.grad``
    (``variable`` is the leaf)."""

    __slots__ = ("variable",)

    def __init__(self, variable: Tensor) -> None:
        self.variable = variable

    def name(self) -> str:
        return "AccumulateGrad"

    @property
    def next_functions(self) -> tuple:
        return ()

    def __eq__(self, other: object) -> bool:
        return type(other) is AccumulateGrad and other.variable is self.variable

    def __hash__(self) -> int:
        return id(self.variable)

    def __repr__(self) -> str:
        return "<AccumulateGrad>"


class BackwardNode:
    """The backward function of the result tensor ``node`` (see the module docstring)."""

    __slots__ = ("_node",)

    def __init__(self, node: Tensor) -> None:
        self._node = node

    def name(self) -> str:
        op = self._node._op
        function = getattr(op, "function", None)  # a custom autograd.Function's op
        if function is not None:
            return f"{function.__name__}Backward"
        return "".join(part.capitalize() for part in op.name.split("_")) + "Backward0"

    @property
    def next_functions(self) -> tuple[tuple[Any, int], ...]:
        """One ``(function, 0)`` per input, in order; empty once backward() has freed the
        graph (PyTorch keeps the structure, glassgrad frees it with the values)."""
        return tuple((grad_fn_of(p, leaf=True), 0) for p in parents_as_used(self._node))

    @property
    def op(self) -> str:
        """glassgrad's name of the op (``"mul"``)."""
        return self._node._op.name

    def __eq__(self, other: object) -> bool:
        return type(other) is BackwardNode and other._node is self._node

    def __hash__(self) -> int:
        return id(self._node)

    def __repr__(self) -> str:
        return f"<{self.name()}>"


def grad_fn_of(t: Tensor, leaf: bool = False) -> BackwardNode | AccumulateGrad | None:
    """``t.grad_fn``: None for a leaf (or, with ``leaf=True``, an ``AccumulateGrad`` for a
    leaf that requires grad, as ``next_functions`` lists it)."""
    if t._op is not None:
        return BackwardNode(t)
    if leaf and t._requires_grad:
        return AccumulateGrad(t)
    return None

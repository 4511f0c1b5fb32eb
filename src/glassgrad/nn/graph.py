"""``Graph``: networks of arbitrary connectivity (seed 001), not just stacks of layers.

Each node is a module (or any callable of Tensors) fed by any earlier nodes or graph inputs.
Several inputs are concatenated on the last axis (or summed, with ``combine="sum"``), so skip
connections and an input wired straight to the output are one ``add`` call each. A node can
only name nodes added before it, so the network is acyclic by construction, and the order of
``add`` calls is a topological order: the forward pass is one loop, the backward pass is the
engine's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .. import functional as F
from ..tensor import Tensor
from .module import Module


def _names(spec: str | Sequence[str], what: str) -> tuple[str, ...]:
    names = (spec,) if isinstance(spec, str) else tuple(spec)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"Graph: {what} must be a name or a list of names, got {spec!r}")
    return names


def _same_dtype(xs: list[Any]) -> list[Tensor]:
    """Data (arrays, tensors without grad) cast to the dtype of the first tensor that needs a
    gradient, so float64 data does not turn a float32 network float64."""
    ts = [v if isinstance(v, Tensor) else Tensor._wrap(np.asarray(v)) for v in xs]
    dt = next((t._data.dtype for t in ts if t._requires_grad), None)
    if dt is None:
        return ts
    return [t if t._requires_grad or t._data.dtype == dt else F.cast(t, dt) for t in ts]


class Graph(Module):
    """A directed acyclic network of named nodes.

    >>> import glassgrad as gg
    >>> nn = gg.nn
    >>> net = nn.Graph(inputs="x")
    >>> net = net.add("h", nn.Linear(2, 3, seed=0), "x").add("z", nn.Tanh(), "h")
    >>> net = net.add("out", nn.Linear(3 + 2, 1, seed=1), ["z", "x"])  # x skips to the output
    >>> net(gg.ones(4, 2)).shape
    (4, 1)
    """

    def __init__(self, inputs: str | Sequence[str] = "x",
                 outputs: str | Sequence[str] | None = None) -> None:
        self.input_names = _names(inputs, "inputs")
        if len(set(self.input_names)) != len(self.input_names):
            raise ValueError(f"Graph: input names must be distinct, got {self.input_names}")
        self._outputs = None if outputs is None else _names(outputs, "outputs")
        # name -> (module or callable, names of its inputs, how to combine several inputs)
        self._nodes: dict[str, tuple[Callable[..., Any], tuple[str, ...], str]] = {}

    def add(self, name: str, module: Callable[..., Any], inputs: str | Sequence[str],
            combine: str = "concat") -> Graph:
        """Add node ``name`` computing ``module(inputs...)``; returns the graph for chaining.

        ``inputs`` name graph inputs or earlier nodes; with several, their outputs are
        concatenated on the last axis (``combine="concat"``) or added (``combine="sum"``).
        """
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"Graph.add: node name must be a non-empty string without '.', "
                             f"got {name!r}")
        if name in self._nodes or name in self.input_names:
            raise ValueError(f"Graph.add: a node or input named {name!r} already exists. "
                             f"Fix: give each node a distinct name.")
        if not callable(module):
            raise TypeError(f"Graph.add: node {name!r} must be a Module or a callable, "
                            f"got {type(module).__name__}")
        if combine not in ("concat", "sum"):
            raise ValueError(f"Graph.add: combine must be 'concat' or 'sum', got {combine!r}")
        srcs = _names(inputs, f"inputs of node {name!r}")
        known = (*self.input_names, *self._nodes)
        for s in srcs:
            if s not in known:
                raise ValueError(
                    f"Graph.add: node {name!r} takes input from {s!r}, which is neither a "
                    f"graph input nor an earlier node (known: {list(known)}). Fix: add {s!r} "
                    f"first; a node can only use earlier ones, which keeps the graph acyclic."
                )
        self._nodes[name] = (module, srcs, combine)
        return self

    @property
    def output_names(self) -> tuple[str, ...]:
        """The nodes returned by forward (default: the last node added)."""
        if self._outputs is not None:
            return self._outputs
        if not self._nodes:
            return ()
        return (next(reversed(self._nodes)),)

    def edges(self) -> list[tuple[str, str]]:
        """Every wire (source, destination), in the order the nodes were added."""
        return [(s, name) for name, (_, srcs, _) in self._nodes.items() for s in srcs]

    def _attributes(self) -> Iterator[tuple[str, Any]]:
        # Parameters are named after their node: "h.weight", "out.bias".
        for name, (module, _, _) in self._nodes.items():
            if isinstance(module, Module):
                yield name, module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Feed the graph inputs (positionally, or by name) and return the output node(s)."""
        if not self._nodes:
            raise RuntimeError("Graph.forward: the graph has no nodes. Fix: call add() first.")
        if len(args) + len(kwargs) != len(self.input_names):
            raise TypeError(f"Graph.forward: expects {len(self.input_names)} input(s) "
                            f"{self.input_names}, got {len(args) + len(kwargs)}")
        values: dict[str, Any] = dict(zip(self.input_names, args))
        for k, v in kwargs.items():
            if k not in self.input_names or k in values:
                raise TypeError(f"Graph.forward: unexpected or repeated input {k!r}; "
                                f"the inputs are {self.input_names}")
            values[k] = v
        for name, (module, srcs, combine) in self._nodes.items():
            xs = [values[s] for s in srcs]
            if len(xs) == 1:
                x = xs[0]
            elif combine == "sum":
                x = xs[0]
                for y in xs[1:]:
                    x = x + y
            else:
                shapes = [tuple(getattr(v, "shape", ())) for v in xs]
                if len({s[:-1] for s in shapes}) > 1 or any(not s for s in shapes):
                    raise ValueError(
                        f"Graph node {name!r}: cannot concatenate its inputs {list(srcs)} of "
                        f"shapes {shapes} on the last axis; all but the last dimension must "
                        f"match. Fix: check the layer sizes feeding {name!r}."
                    )
                x = F.concatenate(_same_dtype(xs), axis=-1)
            try:
                values[name] = module(x)
            except (ValueError, TypeError) as e:
                if type(e) not in (ValueError, TypeError):  # subclasses may need other args
                    raise
                raise type(e)(f"Graph node {name!r} (inputs {list(srcs)}): {e}") from None
        outs = tuple(values[n] for n in self.output_names)
        return outs[0] if len(outs) == 1 else outs

    def __repr__(self) -> str:
        lines = [f"Graph(inputs={list(self.input_names)}, outputs={list(self.output_names)}"]
        for name, (module, srcs, combine) in self._nodes.items():
            how = "" if len(srcs) == 1 else f" ({combine})"
            body = repr(module).replace("\n", "\n  ")
            lines.append(f"  ({name}) <- {', '.join(srcs)}{how}: {body}")
        return "\n".join(lines) + "\n)"

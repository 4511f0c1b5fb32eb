"""glassgrad.explain: backpropagation shown step by step, in numbers and pictures.

- ``trace()``: op level, every forward node and backward step the engine runs (``trace.py``);
- ``explain_expr("(x + y) * z", "x=-2,y=5,z=-4")``: the same for a typed expression;
- ``trace_net(model, x, y, loss="half-sse", lr=0.1)``: layer level, in textbook notation
  (z, a, δ, ∂L/∂W, the update) for a network of Linear layers and activations.

Every trace renders as text, Markdown, HTML (shown by Jupyter), LaTeX, JSON and a DOT graph;
see README.md in this folder for what lives where (the modules read bottom-up, from
``records.py``).
"""

from .export import SCHEMA_ID, load_schema, to_dict, to_json, validate
from .expr import ExprError, explain_expr
from .net_trace import NetTrace, trace_net
from .picture import render_graph, to_dot
from .records import Check, Node, Step
from .trace import Trace, trace

__all__ = [
    "SCHEMA_ID", "Check", "ExprError", "NetTrace", "Node", "Step", "Trace", "explain_expr",
    "load_schema", "render_graph", "to_dict", "to_dot", "to_json", "trace", "trace_net",
    "validate",
]

"""The records a trace is made of, and the formulas it quotes: the bottom of ``explain``.

Plain data, no behaviour beyond lookups: every other module of the package reads these, and
this module imports nothing of glassgrad but the op table (for the activations' formulas), so
the package reads bottom-up.

- op level: ``Node`` (a value of the forward pass), ``Step`` (a step of the backward pass);
- layer level: ``LayerStep`` (one layer of one step), ``StepTrace`` (one gradient-descent
  step), ``LossSpec`` and ``LOSSES`` (the losses ``trace_net`` knows), ``ACTIVATION_FORMULAS``;
- both: ``Check`` (a check's verdict, printed under a trace).

The two trace classes, ``trace.Trace`` and ``net_trace.NetTrace``, hold these records but live
above the renderers, since they carry the rendering methods (``rendering.Rendered``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ops import OPS


@dataclass
class Check:
    """One check's verdict: ``ok`` True (passed), False (failed) or None (a note)."""

    name: str
    ok: bool | None
    title: str
    detail: list[str] = field(default_factory=list)
    # Numbers behind the verdict (e.g. the largest difference), for programs; not printed,
    # since their last digits depend on the machine's floating-point library.
    metrics: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- op level
@dataclass
class Node:
    """One value of the computation: a leaf (``input``/``constant``) or an op's result."""

    id: int
    name: str
    kind: str  # "input" (a leaf that requires grad), "constant" or "op"
    op: str | None
    inputs: list[int]
    value: np.ndarray
    expr: str = ""  # what it computes, in terms of its inputs' names ("x + y")
    formula: str | None = None  # the op's derivative formula, from the op table
    grad: np.ndarray | None = None  # total gradient that reached it (last backward pass)
    in_graph: bool = False  # an op result that the engine linked into the graph
    attrs: dict | None = field(default=None, repr=False)  # op keywords, for replay
    forward: Any = field(default=None, repr=False)  # the op's forward function, for replay


@dataclass
class Step:
    """One step of the backward pass.

    ``seed``: the gradient a backward pass starts with (``product``, usually 1).
    ``chain``: ``node`` sends ``product`` = ``upstream`` × ``local`` to input ``position``,
    ``parent``. ``accumulate``: ``parent`` already had ``previous``; it now has ``product``.
    """

    id: int
    kind: str
    node: int
    parent: int | None = None
    position: int | None = None
    upstream: np.ndarray | None = None
    formula: str | None = None
    formula_latex: str | None = None  # the same derivative as the op table writes it in LaTeX
    local: np.ndarray | None = None
    local_kind: str | None = None  # "elementwise", "matrix" (a product with G) or "structural"
    product: np.ndarray | None = None
    previous: np.ndarray | None = None
    added: np.ndarray | None = None
    note: str = ""
    pass_index: int = 1


# --------------------------------------------------------------------------- layer level
@dataclass(frozen=True)
class LossSpec:
    name: str
    function: str  # in glassgrad.nn.functional
    reduction: str  # of the batch loss: "sum" (c = 1) or "mean" (c = 1/n)
    formula: str
    derivative: str
    latex: str

    def scale(self, n: int) -> float:
        """c in L = c Σᵢ ℓᵢ for a batch of ``n``: 1 for a summed loss, 1/n for a mean."""
        return 1.0 if self.reduction == "sum" else 1.0 / n


LOSSES = {
    "half-sse": LossSpec("half-sse", "half_sse_loss", "sum", "L = ½ Σ (ŷ − y)²",
                         "∂L/∂ŷ = ŷ − y", r"L = \tfrac{1}{2}\sum (\hat y - y)^2"),
    "mse": LossSpec("mse", "mse_loss", "mean", "L = (1/N) Σ (ŷ − y)²  (N = every entry)",
                    "∂L/∂ŷ = 2(ŷ − y)/N", r"L = \tfrac{1}{N}\sum (\hat y - y)^2"),
    "bce": LossSpec("bce", "binary_cross_entropy", "mean",
                    "L = −(1/N) Σ [y ln ŷ + (1 − y) ln(1 − ŷ)]",
                    "∂L/∂ŷ = (ŷ − y) / (N ŷ (1 − ŷ))",
                    r"L = -\tfrac{1}{N}\sum \left[y\ln\hat y + (1-y)\ln(1-\hat y)\right]"),
    "ce": LossSpec("ce", "cross_entropy", "mean",
                   "L = −(1/n) Σᵢ ln softmax(zᵢ)[yᵢ]  (from logits, integer classes)",
                   "∂L/∂z = (softmax(z) − onehot(y)) / n",
                   r"L = -\tfrac{1}{n}\sum_i \ln \operatorname{softmax}(z_i)_{y_i}"),
}
_ALIASES = {"half_sse": "half-sse", "sse": "half-sse", "cross_entropy": "ce",
            "cross-entropy": "ce", "binary_cross_entropy": "bce"}


def loss_spec(loss: str) -> LossSpec:
    """The ``LossSpec`` called ``loss`` (or one of its aliases); ValueError naming the
    choices otherwise."""
    key = _ALIASES.get(loss, loss)
    if key not in LOSSES:
        raise ValueError(f"explain: unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    return LOSSES[key]


# f and f′ as a layer-level trace writes them: the ops' own (sigmoid, tanh, relu) from the op
# table; identity, leaky_relu and softmax are composites, not ops, so theirs are said here.
ACTIVATION_FORMULAS = {
    "identity": "f(z) = z,  f′(z) = 1",
    **{name: OPS[name].layer_formula for name in ("sigmoid", "tanh", "relu")},
    "leaky_relu": "f(z) = z if z > 0 else αz,  f′(z) = 1 if z > 0 else α",
    "softmax": "softmax: f′ is the Jacobian diag(s) − s sᵀ, not one number per unit",
}
# The activation modules a layer-level trace understands, by class name.
ACTIVATION_NAMES = {"Identity": "identity", "Sigmoid": "sigmoid", "Tanh": "tanh",
                    "ReLU": "relu", "LeakyReLU": "leaky_relu", "Softmax": "softmax"}


@dataclass
class LayerStep:
    """One layer of one step. Arrays have one row per sample; δ is per sample (of ℓᵢ)."""

    index: int
    module: str
    activation: str
    W: np.ndarray
    b: np.ndarray | None
    a_in: np.ndarray
    z: np.ndarray
    a: np.ndarray
    fprime: np.ndarray | None  # f′(z); None for softmax
    back: np.ndarray  # ∂ℓᵢ/∂aˡ: (ŷ − y)-like at the output, Wˡ⁺¹ᵀδˡ⁺¹ for hidden layers
    delta: np.ndarray
    dW: np.ndarray
    db: np.ndarray | None
    W_after: np.ndarray
    b_after: np.ndarray | None
    # Parts held fixed by the step ("weight", "bias"): their gradient is shown, not applied.
    frozen: tuple[str, ...] = ()


@dataclass
class StepTrace:
    """One gradient-descent step of a layer-level trace: the batch, the loss, the layers."""

    index: int
    x: np.ndarray
    y: np.ndarray
    yhat: np.ndarray
    loss: float
    sample_losses: np.ndarray
    loss_after: float
    layers: list[LayerStep]

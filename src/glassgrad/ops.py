"""The op table: every differentiable primitive, its forward and its backward, side by side.

Each entry is ``defop(name, formula, forward, backward, ...)``:

- ``forward(*arrays, **attrs)`` computes the result with NumPy;
- ``backward`` is one rule per input, ``rule(grad, out, *inputs, **attrs)`` returning that
  input's gradient (a single rule for a one-input op; ``None`` for an input that takes no
  gradient). ``grad`` is the gradient arriving from above, ``out`` the forward result,
  inputs keep their forward names. Rules are bare math: the engine
  (``autograd.py``) sums away broadcast dimensions, casts to the input's dtype, accumulates
  and skips inputs that need no gradient. Rules use only operators, methods and the NumPy
  functions that ``Tensor`` also accepts, so with ``create_graph=True`` the same rule runs
  on Tensors and its result is differentiable again (higher-order gradients).
- ``formula`` is what ``glassgrad ops`` and the explainer print (given per input for a
  multi-input op, with its LaTeX in ``latex``); ``domain`` (and ``cases`` for ops whose
  inputs are not plain broadcastable arrays) drive the generated tests in
  ``tests/test_ops_table.py``.
- Every other fact about an op is a field of its entry, read where it is needed: ``reads``
  (what each rule reads by value: the engine's in-place check, ``rule_reads.py``),
  ``public``/``method`` (``functional.py``, ``methods.py``, ``__init__.py``), ``infix``,
  ``local_kind``/``local_matrix``/``layer_formula`` (explain), ``activation_range``
  (diagnose), ``kinks`` (the gradient check), ``nan_causes`` (anomaly mode),
  ``compile_refusal`` (compile) and ``error_hint`` (``apply``'s errors). ``tests/
  test_op_fields.py`` checks them, and the completeness test that none is missing.

Composites (mean, var, softmax, stack, leaky_relu, ...) live in ``functional.py`` and have
no backward code. An op is a primitive here only for numerical stability or speed, and its
entry says which.

Careful: this module defines ops named sum, max, min, abs and pow, which shadow Python's
built-ins here; use ``builtins.max`` etc. if a built-in is ever needed.
"""

from __future__ import annotations

import builtins
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .autograd import STATE, _native, record
from .autograd import _one as _cached_ones
from .rule_reads import declare
from .tensor import Tensor, as_constant


def case(*shapes: tuple[int, ...], **attrs: Any) -> tuple[tuple, dict]:
    """A test case for an op of kind "custom": the input shapes and the attributes."""
    return shapes, attrs


@dataclass(frozen=True, eq=False, repr=False)  # (repr: its own, below)
class Op:
    name: str
    formula: str  # the derivative, as ``glassgrad ops`` prints it
    forward: Callable[..., np.ndarray]
    backward: Callable[..., Any] | tuple[Callable[..., Any] | None, ...]
    domain: tuple[float, float] | None = (-2.0, 2.0)  # where inputs are sampled in tests
    kind: str = "elementwise"  # elementwise | reduction | custom: how tests choose shapes
    cases: tuple = ()  # (input shapes, attrs) pairs for kind="custom"
    why: str = ""  # why this is a primitive rather than a composite
    class_inputs: tuple[int, ...] = ()  # inputs holding integer class labels (tests: 0..C-1)
    variadic: bool = False  # any number of inputs; ``backward`` returns all their gradients
    # ---- what the rest of the library knows about the op, said here once (see defop)
    derivatives: tuple[str | None, ...] = ()  # per input: the formula explain shows for it
    latex: tuple[str | None, ...] = ()  # per input: that formula as LaTeX
    reads: tuple[tuple[str, ...] | None, ...] | None = None  # per rule: see rule_reads.py
    public: bool = False  # gg.<name> and functional.<name> (in __all__)
    method: bool = False  # also a Tensor method, x.<name>(...)
    infix: str = ""  # the symbol between the two inputs when a trace writes the node
    local_kind: str = ""  # how explain shows a local derivative: elementwise|matrix|structural
    local_matrix: Callable[..., Any] | None = None  # "matrix": (i, *inputs) -> G's factor
    activation_range: tuple[float, float] | None = None  # an activation: its output range
    layer_formula: str = ""  # an activation: f and f′ as the layer-level trace writes them
    kinks: Callable[..., Any] | None = None  # (*inputs) -> 0 where the derivative jumps
    nan_causes: Callable[..., str | None] | None = None  # (grad, *inputs) -> why NaN/Inf
    compile_refusal: Callable[..., str | None] | None = None  # (**attrs) -> why compile can't
    error_hint: Callable[..., str] | None = None  # (*input shapes) -> a hint for a bad call
    rules: tuple[Callable[..., Any] | None, ...] | None = field(init=False)

    def __post_init__(self) -> None:
        # One rule per input (``None``: not differentiable), so the engine computes only the
        # gradients some input needs: for x @ W with data x, the x-side matmul never runs.
        rules = None if self.variadic else (
            self.backward if isinstance(self.backward, tuple) else (self.backward,)
        )
        object.__setattr__(self, "rules", rules)
        if not self.local_kind:  # a per-element (or per-reduced-element) local derivative
            plain = self.kind in ("elementwise", "reduction") and not self.variadic
            object.__setattr__(self, "local_kind", "elementwise" if plain else "structural")
        if self.reads is not None:
            self._declare_reads(rules or (self.backward,))

    def _declare_reads(self, rules: tuple) -> None:
        reads = self.reads
        if len(rules) == 1 and all(isinstance(r, str) for r in reads):  # one rule's names
            reads = (reads,)
        if len(reads) != len(rules):
            raise ValueError(f"{self.name}: reads declares {len(reads)} rules, the op has "
                             f"{len(rules)}. Fix: one tuple of names per rule (None for none)")
        object.__setattr__(self, "reads", reads)
        for rule, names in zip(rules, reads):
            if rule is not None:
                declare(rule, names or ())

    def __repr__(self) -> str:
        return f"<op {self.name}>"

    def __call__(self, *inputs: Any, **attrs: Any) -> Any:
        """On Tensors, record a node; on plain arrays, just compute (as rules need)."""
        for x in inputs:
            if isinstance(x, Tensor):
                return apply(self, *inputs, **attrs)
        return self.forward(*inputs, **attrs)

    def derivative(self, i: int) -> str:
        """The formula explain shows for input ``i``: its own part of ``formula`` when the
        op has one per input, else the whole formula."""
        part = self._part(self.derivatives, i)
        return part if part is not None else self.formula

    def derivative_latex(self, i: int) -> str:
        """``derivative(i)`` as LaTeX (for an input without a gradient: every part)."""
        part = self._part(self.latex, i)
        return part if part is not None else r",\quad ".join(p for p in self.latex if p)

    def _part(self, parts: tuple[str | None, ...], i: int) -> str | None:
        if self.variadic:  # one formula for any number of inputs
            i = 0
        return parts[i] if 0 <= i < len(parts) else None


OPS: dict[str, Op] = {}


def defop(name: str, formula: str | tuple[str | None, ...], forward: Callable,
          backward: Callable | tuple, definition: str = "",
          latex: str | tuple[str | None, ...] = "", **kw: Any) -> Op:
    """Add an entry to the table. ``formula`` is the derivative; for an op with several
    differentiable inputs, a tuple with each input's part (None for an input without a
    gradient), and ``latex`` the same parts as LaTeX. ``definition`` ("y = x@Wᵀ + b") goes
    before the parts in the printed formula, which joins them: "def:  part,  part". With a
    single part, explain shows the whole printed formula for the input."""
    parts = formula if isinstance(formula, tuple) else (formula,)
    text = ",  ".join(p for p in parts if p)
    if definition:
        text = f"{definition}:  {text}"
    if builtins.sum(p is not None for p in parts) == 1:
        parts = tuple(text if p is not None else None for p in parts)
    op = Op(name, text, forward, backward, derivatives=parts,
            latex=latex if isinstance(latex, tuple) else (latex,), **kw)
    OPS[name] = op
    return op


def apply(op: Op, *inputs: Any, **attrs: Any) -> Any:
    """Run ``op`` forward on Tensors (other values become constants) and record the node.

    The hottest function in the library: no comprehension, one call to ``forward``.
    """
    for x in inputs:
        if type(x) is not Tensor and not isinstance(x, Tensor):  # (nn.Parameter is a Tensor)
            inputs = tuple(as_constant(y, inputs) for y in inputs)
            break
    first, last = inputs[0]._data, inputs[-1]._data
    try:
        if attrs:  # (one or two inputs spelled out: a comprehension is a frame of its own)
            n = len(inputs)
            if n == 1:
                out = op.forward(first, **attrs)
            elif n == 2:
                out = op.forward(first, last, **attrs)
            else:
                out = op.forward(*[t._data for t in inputs], **attrs)
        elif len(inputs) == 2:
            out = op.forward(first, last)
        elif len(inputs) == 1:
            out = op.forward(first)
        elif len(inputs) == 3:
            out = op.forward(first, inputs[1]._data, last)
        else:
            out = op.forward(*[t._data for t in inputs])
    except (ValueError, IndexError, TypeError) as e:
        raise _op_error(op, inputs, attrs, e) from None
    # NumPy's dtype is PyTorch's when the inputs share the result's dtype (float32 in, float32
    # out); otherwise the promotion rules decide (promotion.py), off the hot path.
    dt = out.dtype
    if dt is not first.dtype or dt is not last.dtype:
        want = promotion.wanted(op, tuple(t._data for t in inputs), out)
        if want is not None:
            return apply(op, *promotion.cast_inputs(op, inputs, want), **attrs)
    return record(op, inputs, out, attrs or None)


def _op_error(op: Op, ts: tuple, attrs: dict, e: Exception) -> Exception:
    shapes = ", ".join(str(t.shape) for t in ts)
    hint = ""
    if op.error_hint is not None:
        hint = " " + op.error_hint(*(t.shape for t in ts))
    elif op.kind == "elementwise" and len(ts) > 1:
        hint = (
            " Shapes broadcast when, aligned from the right, each pair of dimensions is equal "
            "or one of them is 1. Fix: reshape one operand (e.g. x.reshape(-1, 1)) so that "
            "they line up."
        )
    a = f" with {attrs}" if attrs else ""
    # Re-raise as the plain built-in type: subclasses such as AxisError take other arguments.
    kind = next(t for t in (IndexError, TypeError, ValueError) if isinstance(e, t))
    return kind(f"{op.name}: cannot apply to inputs of shapes {shapes}{a}: {e}.{hint}")


# =========================================================================== elementwise
# Every public, method-like op below is gg.<name> and x.<name>() (``public``, ``method``).
_API = {"public": True, "method": True}
# Whether a NumPy scalar keeps its dtype in arithmetic with a Python number (NEP 50: NumPy 2;
# NumPy 1.x computes float32 scalar / int in float64)
_WEAK_PYTHON_NUMBERS = (np.float32(1) / 3).dtype == np.float32


def _inf_minus_inf(grad: Any, a: Any, b: Any) -> str | None:
    if grad is None:
        return "Inf − Inf (or −Inf + Inf) is NaN: some input had already overflowed."
    return None


def _div_nan(grad: Any, a: Any, b: Any) -> str | None:
    if not (b == 0).any():
        return None
    if grad is None:
        return ("division by zero. Fix: add a small epsilon to the divisor "
                "(x / (y + 1e-12)) or mask the zero entries out.")
    return "the derivative of a/b is ∞ where b = 0. Fix: keep the divisor away from 0."


def _passes_through(grad: Any, out: Any, a: Any, b: Any) -> Any:
    """∂/∂a = 1: the gradient passes through unchanged (add's rules, sub's for a). The C
    walk knows this rule (``set_pass_rule``) and hands the gradient on without the call."""
    return grad


add = defop(
    "add", ("∂(a + b)/∂a = 1", "∂(a + b)/∂b = 1"),
    np.add,
    (_passes_through, _passes_through),
    latex=(r"\partial (a + b)/\partial a = 1", r"\partial (a + b)/\partial b = 1"),
    reads=((), ()), infix="+", nan_causes=_inf_minus_inf, **_API,
)
sub = defop(
    "sub", ("∂(a − b)/∂a = 1", "∂(a − b)/∂b = −1"),
    np.subtract,
    (_passes_through, lambda grad, out, a, b: -grad),
    latex=(r"\partial (a - b)/\partial a = 1", r"\partial (a - b)/\partial b = -1"),
    reads=((), ()), infix="−", nan_causes=_inf_minus_inf, **_API,
)
if _native is not None:  # the C walk does not call it (it would return its gradient)
    _native.set_pass_rule(_passes_through)
mul = defop(
    "mul", ("∂(a·b)/∂a = b", "∂(a·b)/∂b = a"),
    np.multiply,
    (lambda grad, out, a, b: grad * b, lambda grad, out, a, b: grad * a),
    latex=(r"\partial (a\cdot b)/\partial a = b", r"\partial (a\cdot b)/\partial b = a"),
    reads=(("b",), ("a",)), infix="·", **_API,
)
div = defop(
    "div", ("∂(a/b)/∂a = 1/b", "∂(a/b)/∂b = −a/b²"),
    np.true_divide,
    (lambda grad, out, a, b: grad / b, lambda grad, out, a, b: -grad * out / b),
    domain=(0.5, 2.0),
    latex=(r"\partial (a/b)/\partial a = 1/b", r"\partial (a/b)/\partial b = -a/b^{2}"),
    reads=(("b",), ("out", "b")), infix="/", nan_causes=_div_nan, **_API,
)
neg = defop(
    "neg", "∂(−x)/∂x = −1",
    np.negative,
    lambda grad, out, x: -grad,
    latex=r"\partial (-x)/\partial x = -1", reads=(), **_API,
)


def _pow_nan(grad: Any, a: Any, b: Any) -> str | None:
    if grad is None and (a < 0).any():
        return ("a negative base raised to a non-integer power is NaN. Fix: make the base "
                "non-negative, e.g. abs(x) ** p.")
    if grad is not None and (a == 0).any():
        return ("the derivative of x^p at x = 0 is ∞ for p < 1. Fix: add a small epsilon to "
                "the base.")
    return None


pow = defop(  # noqa: A001 - the op's public name
    "pow", ("∂(aᵇ)/∂a = b·aᵇ⁻¹", "∂(aᵇ)/∂b = aᵇ·ln a  (taken as 0 where a ≤ 0)"),
    np.power,
    (
        lambda grad, out, a, b: grad * b * a ** (b - 1),
        lambda grad, out, a, b: grad * out * np.log(np.where(a > 0, a, 1)),
    ),
    domain=(0.5, 2.0),
    latex=(r"\partial (a^{b})/\partial a = b\cdot a^{b-1}",
           r"\partial (a^{b})/\partial b = a^{b}\cdot \ln a"
           r"\quad (\text{taken as 0 where } a \le 0)"),
    reads=(("a", "b"), ("out", "a")), infix="^", nan_causes=_pow_nan, **_API,
)


def _exp_nan(grad: Any, x: Any) -> str | None:
    limit = np.log(np.finfo(x.dtype).max) if x.dtype.kind == "f" else 709.0
    if grad is None and (x > limit).any():
        return (f"exp overflows above {limit:.1f} in {x.dtype}. Fix: subtract the maximum "
                "first (as logsumexp and softmax do), scale the input down, or clip it.")
    return None


exp = defop(
    "exp", "∂eˣ/∂x = eˣ",
    np.exp,
    lambda grad, out, x: grad * out,
    latex=r"\partial e^{x}/\partial x = e^{x}", reads=("out",), nan_causes=_exp_nan, **_API,
)


def _log_nan(grad: Any, x: Any) -> str | None:
    if grad is None and (x <= 0).any():
        return ("log of 0 gives −inf and of a negative number NaN. Fix: keep the argument "
                "positive (log(x.clip(1e-12)) or log(x + eps)); for probabilities from logits "
                "use log_softmax, cross_entropy or binary_cross_entropy_with_logits.")
    if grad is not None and (x == 0).any():
        return ("the derivative of log at 0 is 1/0 = ∞. Fix: keep the argument away from 0 "
                "(clip it) or use a stable fused op (log_softmax, cross_entropy).")
    return None


log = defop(
    "log", "∂ln x/∂x = 1/x",
    np.log,
    lambda grad, out, x: grad / x,
    domain=(0.5, 3.0),
    latex=r"\partial \ln x/\partial x = 1/x", reads=("x",), nan_causes=_log_nan, **_API,
)


def _sqrt_nan(grad: Any, x: Any) -> str | None:
    if grad is None:
        if (x < 0).any():
            return "square root of a negative number. Fix: clip the argument at 0 (or use abs)."
        return None
    if not (x == 0).any():
        return None
    trap = ""
    if (np.broadcast_to(grad, x.shape)[x == 0] == 0).any():
        trap = (" The gradient arriving there is 0, so this is the where(mask, sqrt(x), 0) "
                "trap: where() sends 0 to the branch it did not pick, but 0 · ∞ = NaN. "
                "Fix: make the unused branch safe, sqrt(where(mask, x, 1)), then where(...).")
    return "the derivative of sqrt at 0 is 1/(2·0) = ∞." + trap


sqrt = defop(
    "sqrt", "∂√x/∂x = 1/(2√x)",
    np.sqrt,
    lambda grad, out, x: grad / (2 * out),
    domain=(0.5, 3.0),
    latex=r"\partial \sqrt{x}/\partial x = 1/(2\sqrt{x})", reads=("out",),
    nan_causes=_sqrt_nan, **_API,
)
abs = defop(  # noqa: A001
    "abs", "∂|x|/∂x = sign(x)  (0 at x = 0)",
    np.abs,
    lambda grad, out, x: grad * np.sign(x),
    latex=r"\partial |x|/\partial x = \operatorname{sign}(x)\quad (0 \text{ at } x = 0)",
    reads=("x",), kinks=lambda x: x, **_API,
)
sin = defop(
    "sin", "∂sin x/∂x = cos x",
    np.sin,
    lambda grad, out, x: grad * np.cos(x),
    latex=r"\partial \sin x/\partial x = \cos x", reads=("x",), **_API,
)
cos = defop(
    "cos", "∂cos x/∂x = −sin x",
    np.cos,
    lambda grad, out, x: -grad * np.sin(x),
    latex=r"\partial \cos x/\partial x = -\sin x", reads=("x",), **_API,
)


# The activations' backward rules in one C pass (``_backward.activation_grad``: relu, tanh,
# sigmoid), or None (not built, or GLASSGRAD_NATIVE=0). Each rule below tries it first and
# computes its NumPy expression when it returns NotImplemented (a Tensor under create_graph,
# mixed dtypes, a non-contiguous array...). Same bits: tests/test_native_kernels.py.
_one_pass = None if _native is None else _native.activation_grad
_RELU, _TANH, _SIGMOID = 0, 1, 2


def _one(a: Any) -> Any:
    """1 for arithmetic with ``a``: for an array, a read-only 0-d array of its dtype (the
    engine's cached seed of ones, ``autograd._one``). The same bits as the Python 1 (exact in
    every float dtype), but NumPy converts a Python number on every call (about 2,800
    instructions, more than a small array's arithmetic)."""
    if type(a) is not np.ndarray:
        # a NumPy scalar (a compiled replay's 0-d value): one of its dtype, since NumPy 1.x
        # computes a float32 scalar with a Python int in float64 (NumPy 2 keeps float32);
        # a Tensor (create_graph): its own operators take the number
        return a.dtype.type(1) if isinstance(a, np.generic) else 1
    return _cached_ones(a.dtype, ())


def _tanh_grad(grad: Any, out: Any) -> Any:
    """grad·(1 − out²): NumPy's three passes, or one in C."""
    if _one_pass is not None:
        r = _one_pass(_TANH, grad, out)
        if r is not NotImplemented:
            return r
    return grad * (_one(out) - out * out)


tanh = defop(
    "tanh", "∂tanh x/∂x = 1 − tanh²x",
    np.tanh,
    lambda grad, out, x: _tanh_grad(grad, out),
    domain=(-3.0, 3.0),
    why="speed: one node instead of the four of (eˣ − e⁻ˣ)/(eˣ + e⁻ˣ), and no overflow",
    latex=r"\partial \tanh x/\partial x = 1 - \tanh^{2} x", reads=("out",),
    activation_range=(-1.0, 1.0), layer_formula="f(z) = tanh z,  f′(z) = 1 − tanh² z", **_API,
)


_ERF = np.frompyfunc(math.erf, 1, 1)  # NumPy has no erf ufunc; math.erf is exact (C libm)


def _erf(x: np.ndarray) -> np.ndarray:
    return np.asarray(_ERF(x), dtype=x.dtype)


erf = defop(
    "erf", "∂erf x/∂x = (2/√π)·e^(−x²)",
    _erf,
    lambda grad, out, x: grad * ((2.0 / math.sqrt(math.pi)) * np.exp(-x * x)),
    domain=(-3.0, 3.0),
    why="GELU's Gaussian CDF needs it, and NumPy has no erf to compose it from",
    latex=r"\partial \operatorname{erf} x/\partial x = \tfrac{2}{\sqrt{\pi}} e^{-x^{2}}",
    reads=("x",), **_API,
)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # σ(x) = ½(1 + tanh(x/2)): exact, never overflows, one ufunc pass. (Constants of x's own
    # type: NumPy 1.x would turn a 0-d float32 times a Python float into float64.)
    half, one = x.dtype.type(0.5), x.dtype.type(1)
    return half * (one + np.tanh(half * x))


def _sigmoid_grad(grad: Any, out: Any) -> Any:
    """grad·out·(1 − out): NumPy's three passes, or one in C."""
    if _one_pass is not None:
        r = _one_pass(_SIGMOID, grad, out)
        if r is not NotImplemented:
            return r
    return grad * out * (1 - out)


sigmoid = defop(
    "sigmoid", "∂σ(x)/∂x = σ(x)·(1 − σ(x))",
    _sigmoid,
    lambda grad, out, x: _sigmoid_grad(grad, out),
    domain=(-4.0, 4.0),
    why="stability: 1/(1 + e⁻ˣ) overflows for x < −88 in float32; speed: one node",
    latex=r"\partial \sigma(x)/\partial x = \sigma(x)\cdot (1 - \sigma(x))", reads=("out",),
    activation_range=(0.0, 1.0), layer_formula="σ(z) = 1/(1 + e⁻ᶻ),  σ′(z) = σ(z)(1 − σ(z))",
    **_API,
)


def _zero(x: np.ndarray) -> Any:
    # relu takes the maximum against a zero scalar of x's dtype (a Python 0 could promote a
    # float16 x). A row of zeros was faster with an older NumPy; with NumPy 2 the scalar is
    # (measured: 171 µs vs 208 µs on 1024×512, 88 µs vs 141 µs on a 64×6×28×28 conv output,
    # whose 28-long rows made the row's loop short). Same values, −0.0 and NaN included.
    return x.dtype.type(0)


def _relu_grad(grad: Any, out: Any) -> Any:
    """grad·(out > 0): out > 0 exactly where x > 0, so x is not needed. NumPy's two passes
    (and a boolean array), or one in C."""
    if _one_pass is not None:
        r = _one_pass(_RELU, grad, out)
        if r is not NotImplemented:
            return r
    return grad * (out > 0)


relu = defop(
    "relu", "∂relu(x)/∂x = 1 if x > 0 else 0",
    lambda x: np.maximum(x, _zero(x)),
    lambda grad, out, x: _relu_grad(grad, out),
    why="speed: the most used activation, one node instead of where(x > 0, x, 0)",
    latex=r"\partial \operatorname{relu}(x)/\partial x = 1 \text{ if } x > 0 \text{ else } 0",
    reads=("out",), kinks=lambda x: x, activation_range=(0.0, np.inf),
    layer_formula="f(z) = max(z, 0),  f′(z) = 1 if z > 0 else 0", **_API,
)
if _native is not None:  # the C walk runs these rules' C loop itself (_rules.c), and writes
    # over the incoming gradient when nothing else holds it; a rule replaced is called
    _native.set_activation_rules(relu.rules[0], tanh.rules[0], sigmoid.rules[0])
maximum = defop(
    "maximum", ("∂max(a, b)/∂a = 1 if a > b (½ if a = b)", "∂/∂b likewise"),
    np.maximum,
    (
        lambda grad, out, a, b: grad * ((a > b) + 0.5 * (a == b)),
        lambda grad, out, a, b: grad * ((b > a) + 0.5 * (a == b)),
    ),
    latex=(r"\partial \max(a, b)/\partial a = 1 \text{ if } a > b\ "
           r"(\tfrac{1}{2} \text{ if } a = b)", r"\partial/\partial b \text{ likewise}"),
    reads=(("a", "b"), ("a", "b")), kinks=lambda a, b: a - b, **_API,
)
minimum = defop(
    "minimum", ("∂min(a, b)/∂a = 1 if a < b (½ if a = b)", "∂/∂b likewise"),
    np.minimum,
    (
        lambda grad, out, a, b: grad * ((a < b) + 0.5 * (a == b)),
        lambda grad, out, a, b: grad * ((b < a) + 0.5 * (a == b)),
    ),
    latex=(r"\partial \min(a, b)/\partial a = 1 \text{ if } a < b\ "
           r"(\tfrac{1}{2} \text{ if } a = b)", r"\partial/\partial b \text{ likewise}"),
    reads=(("a", "b"), ("a", "b")), kinks=lambda a, b: a - b, **_API,
)
where = defop(
    "where", (None, "∂where(c, a, b)/∂a = c", "∂/∂b = ¬c  (c is not differentiable)"),
    np.where,
    (
        None,
        lambda grad, out, cond, a, b: np.where(cond, grad, 0),
        lambda grad, out, cond, a, b: np.where(cond, 0, grad),
    ),
    latex=(None, r"\partial \operatorname{where}(c, a, b)/\partial a = c",
           r"\partial/\partial b = \neg c\quad (c \text{ is not differentiable})"),
    reads=(None, ("cond",), ("cond",)), public=True,
)
clip = defop(
    "clip", "∂clip(x, lo, hi)/∂x = 1 if lo ≤ x ≤ hi else 0",
    lambda x, lo=None, hi=None: np.clip(x, lo, hi),
    lambda grad, out, x, lo=None, hi=None: (
        grad * ((x >= (-np.inf if lo is None else lo)) & (x <= (np.inf if hi is None else hi)))
    ),
    kind="custom",
    cases=(case((3, 4), lo=-0.5, hi=0.5), case((5,), lo=0.0), case((2, 3), hi=0.2)),
    latex=(r"\partial \operatorname{clip}(x, \mathrm{lo}, \mathrm{hi})/\partial x = 1 "
           r"\text{ if } \mathrm{lo} \le x \le \mathrm{hi} \text{ else } 0"),
    reads=("x",), local_kind="elementwise", **_API,
)


def _cast_forward(x: np.ndarray, dtype: Any = None) -> np.ndarray:
    return x.astype(dtype, copy=False)


cast = defop(
    "cast", "∂cast(x)/∂x = 1  (the gradient is cast back to x's dtype)",
    _cast_forward,
    lambda grad, out, x, dtype=None: grad,
    kind="custom",
    cases=(case((3,), dtype=np.float64),),
    latex=(r"\partial \operatorname{cast}(x)/\partial x = 1\quad "
           r"(\text{the gradient is cast back to } x\text{'s dtype})"),
    reads=(), local_kind="elementwise", **_API,
)


# =========================================================================== linear algebra
# A vector operand is promoted as in NumPy (a (k,) is (1, k); b (k,) is (k, 1)) and the
# gradient's matching axis is added back; the engine then sums any broadcast batch axes.
def _matmul_grad_a(grad: Any, out: Any, a: Any, b: Any) -> Any:
    if b.ndim == 1:
        return grad[..., None] * b if a.ndim == 1 else grad[..., :, None] @ b[None, :]
    if a.ndim == 1:
        return (grad[..., None, :] @ b.swapaxes(-1, -2))[..., 0, :]
    return grad @ b.swapaxes(-1, -2)


def _matmul_grad_b(grad: Any, out: Any, a: Any, b: Any) -> Any:
    if a.ndim == 1:
        return grad[..., None] * a if b.ndim == 1 else a[:, None] @ grad[..., None, :]
    if b.ndim == 1:
        return (a.swapaxes(-1, -2) @ grad[..., :, None])[..., :, 0]
    return a.swapaxes(-1, -2) @ grad


def _matmul_hint(a: tuple[int, ...], b: tuple[int, ...]) -> str:
    return (
        f"For a @ b the last dimension of a ({a[-1] if a else '-'}) must equal the "
        f"{'first' if len(b) == 1 else 'second-to-last'} dimension of b "
        f"({b[0] if len(b) == 1 else (b[-2] if b else '-')}). Fix: transpose one operand "
        f"(b.T) or check the layer sizes."
    )


matmul = defop(
    "matmul", ("∂(A@B)/∂A = G@Bᵀ", "∂(A@B)/∂B = Aᵀ@G"),
    np.matmul,
    (_matmul_grad_a, _matmul_grad_b),
    kind="custom",
    cases=(
        case((3, 4), (4, 5)), case((4,), (4,)), case((4,), (4, 3)), case((3, 4), (4,)),
        case((2, 3, 4), (4, 5)), case((2, 3, 4), (2, 4, 5)), case((3, 4), (2, 4, 5)),
        case((2, 1, 3, 4), (5, 4, 2)), case((4,), (2, 4, 3)),
    ),
    latex=(r"\partial (AB)/\partial A = G B^{\top}", r"\partial (AB)/\partial B = A^{\top} G"),
    reads=(("b",), ("a",)), infix="@", error_hint=_matmul_hint,
    # ∂(A@B)/∂A is "multiply G by Bᵀ": explain shows the other operand.
    local_kind="matrix", local_matrix=lambda i, a, b: (b, a)[i], **_API,
)


def _linear_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    out = x @ weight.T
    out += bias  # out is fresh, so adding in place saves a temporary the size of the batch
    return out


def _rows(a: Any) -> Any:
    """(..., n) as a matrix (rows, n): batch dimensions flattened."""
    return a if a.ndim == 2 else a.reshape(-1, a.shape[-1])


_native_column_sums = None if _native is None else _native.column_sums


def _column_sums(g: Any) -> Any:
    """Σ_rows g, of g (..., n) as rows (``_rows``, inline: a call costs more than a small
    reshape): np.add.reduce(g, 0), rows added in order, in one C pass where the extension
    is built (the same bits; 45 µs against NumPy's 71 on 1024×512 float32, measured). The C
    walk takes these sums from the pass of a relu right above the layer instead
    (``_backward.c``, ``set_linear_rules``): same bits, no pass of their own."""
    if g.ndim != 2:
        g = g.reshape(-1, g.shape[-1])
    if type(g) is not np.ndarray:  # a Tensor (create_graph): its reduce takes axis by name
        return np.add.reduce(g, axis=0)
    if _native_column_sums is not None:
        sums = _native_column_sums(g)
        if sums is not NotImplemented:
            return sums
    return np.add.reduce(g, 0)  # (axis positional: NumPy parses no keyword)


def _linear_hint(x: tuple[int, ...], w: tuple[int, ...], b: tuple[int, ...]) -> str:
    return (
        f"linear computes x @ weightᵀ + bias with weight (out_features, in_features): "
        f"x's last dimension ({x[-1] if x else '-'}) must equal in_features "
        f"({w[-1] if w else '-'}) and bias must have out_features ({w[0] if w else '-'}) "
        f"elements. Fix: make the layer's in_features match the data's last dimension."
    )


linear = defop(
    "linear", ("∂/∂x = G@W", "∂/∂W = Gᵀ@x", "∂/∂b = Σ_rows G"),
    _linear_forward,
    (
        lambda grad, out, x, weight, bias: grad @ weight,
        # (a 2-D grad means a 2-D x: the two _rows calls are skipped for the usual batch)
        lambda grad, out, x, weight, bias: (
            grad.T @ x if grad.ndim == 2 else _rows(grad).T @ _rows(x)),
        lambda grad, out, x, weight, bias: _column_sums(grad),
    ),
    kind="custom",
    cases=(case((4, 3), (5, 3), (5,)), case((3,), (2, 3), (2,)), case((2, 4, 3), (5, 3), (5,)),
           case((70, 3), (5, 3), (5,)), case((2, 40, 3), (5, 3), (5,))),  # BLAS column sums
    why="speed: one node for a layer instead of transpose, matmul and add, and no gradient "
        "for the input when it is data",
    definition="y = x@Wᵀ + b",
    latex=(r"\partial/\partial x = G W", r"\partial/\partial W = G^{\top} x",
           r"\partial/\partial b = \sum_{\text{rows}} G"),
    reads=(("weight",), ("x",), ()), error_hint=_linear_hint, public=True,
    # y = x@Wᵀ + b: ∂/∂x multiplies G by W, ∂/∂W by x, ∂/∂b by 1 per row.
    local_kind="matrix", local_matrix=lambda i, x, weight, bias: (
        (weight, x, np.ones_like(bias))[i]),
)
if _native is not None:  # the C walk gives the bias rule's sums from a relu's pass above it
    _native.set_linear_rules(linear, linear.rules[2])


# =========================================================================== reductions
def _norm_axis(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(a % ndim if ndim else 0 for a in axis)


def _expand_like(grad: Any, x_shape: tuple[int, ...], axis: Any, keepdims: bool) -> Any:
    """Reshape a reduced gradient so it broadcasts against the unreduced input's shape."""
    if axis is None or keepdims:  # already broadcastable: a 0-d value, or dims kept as 1
        return grad
    if x_shape:
        shape = list(x_shape)
        for a in _norm_axis(axis, len(x_shape)):
            shape[a] = 1
        grad = grad.reshape(tuple(shape))
    return grad


def _expand_to(grad: Any, shape: tuple[int, ...]) -> Any:
    """``grad`` broadcast up to ``shape``, as a fresh array (np.broadcast_to is a slow
    Python wrapper, and its read-only view would have to be copied later anyway)."""
    if type(grad) is np.ndarray:
        out = np.empty(shape, grad.dtype)  # (dtype positional: NumPy parses no keyword)
        if grad.ndim:
            out[...] = grad
        else:  # (the whole sum's or mean's gradient: fill is a third faster than [...] =)
            out.fill(grad)
        return out
    return np.broadcast_to(grad, shape)  # a Tensor (create_graph): the differentiable op


def _add_reduce(x: np.ndarray, axis: Any = None, keepdims: bool = False) -> Any:
    """Σ over ``axis``: ``np.add.reduce(x, axis, dtype=None, out=None, keepdims)``, its
    arguments by position (by name, NumPy matches each keyword's string: a tenth of a small
    sum's time)."""
    return np.add.reduce(x, axis, None, None, keepdims)


sum = defop(  # noqa: A001
    "sum", "∂(Σᵢ xᵢ)/∂xⱼ = 1",
    _add_reduce,
    # (_expand_like's first test repeated: the whole sum, its usual use, skips the call)
    lambda grad, out, x, axis=None, keepdims=False: _expand_to(
        grad if axis is None or keepdims else _expand_like(grad, x.shape, axis, keepdims),
        x.shape,
    ),
    kind="reduction",
    latex=r"\partial (\sum_i x_i)/\partial x_j = 1", reads=(), **_API,
)


def _mean_forward(x: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    # np.add.reduce: np.mean's Python wrapper costs more than the arithmetic on small arrays.
    total = np.add.reduce(x, axis, None, None, keepdims)  # (by position: _add_reduce)
    return np.true_divide(total, x.size // (total.size or 1), dtype=total.dtype)


def _ratio(big: tuple[int, ...], small: tuple[int, ...]) -> int:
    """How many elements of ``big`` each element of ``small`` stands for, from shapes: with
    create_graph a rule's inputs are Tensors, whose ``size`` is PyTorch's method. (Arrays
    take the cheaper ``.size`` path: about 4× faster on small shapes.)"""
    return math.prod(big) // (math.prod(small) or 1)


mean = defop(
    "mean", "∂(Σᵢ xᵢ / n)/∂xⱼ = 1/n",
    _mean_forward,
    lambda grad, out, x, axis=None, keepdims=False: (
        _expand_to(_expand_like(grad, x.shape, axis, keepdims) / (
            x.size // out.size if type(grad) is np.ndarray else _ratio(x.shape, out.shape)
        ), x.shape)
    ),
    kind="reduction",
    why="speed: the reduction of nearly every loss; one node instead of sum and divide",
    latex=r"\partial (\sum_i x_i / n)/\partial x_j = 1/n", reads=(), **_API,
)


def _extreme_backward(grad: Any, out: Any, x: Any, axis: Any = None, keepdims: bool = False):
    # The gradient is shared equally among the elements that attain the extreme (ties).
    mask = x == _expand_like(out, x.shape, axis, keepdims)
    count = np.add.reduce(mask, axis=axis, keepdims=True)
    return _expand_like(grad, x.shape, axis, keepdims) * mask / count


max = defop(  # noqa: A001
    "max", "∂max(x)/∂xⱼ = 1 where xⱼ is the maximum (shared equally among ties), else 0",
    lambda x, axis=None, keepdims=False: np.maximum.reduce(x, axis=axis, keepdims=keepdims),
    _extreme_backward,
    kind="reduction",
    latex=(r"\partial \max(x)/\partial x_j = 1 \text{ where } x_j "
           r"\text{ is the maximum (shared equally among ties), else } 0"),
    reads=("out", "x"), **_API,
)
min = defop(  # noqa: A001
    "min", "∂min(x)/∂xⱼ = 1 where xⱼ is the minimum (shared equally among ties), else 0",
    lambda x, axis=None, keepdims=False: np.minimum.reduce(x, axis=axis, keepdims=keepdims),
    _extreme_backward,
    kind="reduction",
    latex=(r"\partial \min(x)/\partial x_j = 1 \text{ where } x_j "
           r"\text{ is the minimum (shared equally among ties), else } 0"),
    reads=("out", "x"), **_API,
)


def _logsumexp(x: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    if _short_last_axis(x, axis):  # e.g. (1024, 10) logits: reduce with the rows in SIMD lanes
        out = _logsumexp((x.T if x.ndim == 2 else np.moveaxis(x, -1, 0)).copy(), axis=0)
        return out[..., None] if keepdims else out
    m = np.maximum.reduce(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, m.dtype.type(0))
    out = np.log(np.add.reduce(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _short_last_axis(x: np.ndarray, axis: Any) -> bool:
    """A reduction over a short last axis of many rows (class logits). NumPy reduces such an
    axis row by row, a few elements at a time; moved to the front it is reduced across all
    rows at once (measured on 1024×10: max 43 → 9 µs, sum 26 → 8 µs, the copy included)."""
    if x.ndim < 2 or axis not in (-1, x.ndim - 1, (-1,), (x.ndim - 1,)):
        return False
    return x.shape[-1] <= 32 and x.size >= 64 * x.shape[-1]


logsumexp = defop(
    "logsumexp", "∂ log Σⱼ e^xⱼ / ∂xᵢ = e^xᵢ / Σⱼ e^xⱼ = softmax(x)ᵢ",
    _logsumexp,
    lambda grad, out, x, axis=None, keepdims=False: (
        _expand_like(grad, x.shape, axis, keepdims)
        * np.exp(x - _expand_like(out, x.shape, axis, keepdims))
    ),
    kind="reduction",
    why="stability: subtracts the max before exp, so large inputs do not overflow",
    latex=(r"\partial \log \sum_j e^{x_j} / \partial x_i = e^{x_i} / \sum_j e^{x_j} "
           r"= \operatorname{softmax}(x)_i"),
    reads=("out", "x"), **_API,
)


def _log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return x - _logsumexp(x, axis=axis, keepdims=True)


log_softmax = defop(
    "log_softmax", "∂ log_softmax(x)ᵢ / ∂xⱼ = δᵢⱼ − softmax(x)ⱼ",
    _log_softmax,
    lambda grad, out, x, axis=-1: (
        grad - np.exp(out) * np.add.reduce(grad, axis=axis, keepdims=True)
    ),
    kind="custom",
    cases=(case((5,)), case((3, 4), axis=-1), case((3, 4), axis=0), case((2, 3, 4), axis=1),
           case((70, 3), axis=-1)),
    why="stability and speed: the base of cross_entropy; never takes log of an underflowed 0",
    latex=(r"\partial \operatorname{log\_softmax}(x)_i / \partial x_j "
           r"= \delta_{ij} - \operatorname{softmax}(x)_j"),
    reads=("out",), **_API,
)


def _cumsum_backward(grad: Any, out: Any, x: Any, axis: int = 0) -> Any:
    # yₖ = Σ_{i≤k} xᵢ, so ∂L/∂xⱼ = Σ_{k≥j} Gₖ: the cumulative sum from the end, written as
    # total − cumsum + G (no flip op needed, and it runs on Tensors for create_graph).
    if not x.ndim:  # a 0-d cumsum is the identity
        return grad
    return np.add.reduce(grad, axis=axis, keepdims=True) - cumsum(grad, axis=axis) + grad


def _cumsum_forward(x: np.ndarray, axis: int = 0) -> np.ndarray:
    # PyTorch: a bool or integer cumsum is int64 (NumPy keeps int32 on some platforms), and
    # a 0-d one is the value itself (NumPy's is 1-d).
    dtype = np.int64 if x.dtype.kind in "biu" else x.dtype
    return np.cumsum(x, axis=axis, dtype=dtype) if x.ndim else x.astype(dtype)


cumsum = defop(
    "cumsum", "∂(Σ_{i≤k} xᵢ)/∂xⱼ = 1 for k ≥ j: the gradient is G summed from the end",
    _cumsum_forward,
    _cumsum_backward,
    kind="custom",
    cases=(case((5,), axis=0), case((3, 4), axis=1), case((3, 4), axis=-2),
           case((2, 3, 4), axis=1), case((), axis=0)),
    latex=(r"\partial (\sum_{i \le k} x_i)/\partial x_j = 1 \text{ for } k \ge j"
           r"\text{: the gradient is } G \text{ summed from the end}"),
    reads=(), public=True,
)


# =========================================================================== shape
def _reshape_forward(x: np.ndarray, shape: tuple[int, ...] = ()) -> np.ndarray:
    return np.reshape(x, shape)


reshape = defop(
    "reshape", "∂reshape(x)/∂x: the gradient is reshaped back to x's shape",
    _reshape_forward,
    lambda grad, out, x, shape=(): grad.reshape(x.shape),
    kind="custom",
    cases=(case((2, 6), shape=(3, 4)), case((12,), shape=(2, -1)), case((1,), shape=())),
    latex=(r"\partial \operatorname{reshape}(x)/\partial x"
           r"\text{: the gradient is reshaped back to } x\text{'s shape}"),
    reads=(), **_API,
)


def _permute_forward(x: np.ndarray, dims: tuple[int, ...] = ()) -> np.ndarray:
    return x.transpose(dims)


def _inverse(dims: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(dims))


def _permuted(a: Any, dims: tuple[int, ...]) -> Any:
    # An array's transpose(axes) is a permutation; a Tensor's (create_graph) is PyTorch's swap.
    return a.transpose(dims) if type(a) is np.ndarray else a.permute(dims)


# PyTorch's name for a permutation of the dimensions (NumPy's transpose(axes)); transpose,
# swapaxes, t, T and mT are composites on it (functional.py).
permute = defop(
    "permute", "∂permute(x)/∂x: the gradient is permuted back by the inverse permutation",
    _permute_forward,
    lambda grad, out, x, dims=(): _permuted(grad, _inverse(dims)),
    kind="custom",
    cases=(case((3, 4), dims=(1, 0)), case((2, 3, 4), dims=(1, 2, 0)),
           case((2, 3, 4), dims=(2, 1, 0)), case((5,), dims=(0,))),
    latex=(r"\partial \operatorname{permute}(x)/\partial x"
           r"\text{: the gradient is permuted back by the inverse permutation}"),
    reads=(), **_API,
)
broadcast_to = defop(
    "broadcast_to", "∂broadcast_to(x)/∂x: the gradient is summed over the broadcast dimensions",
    lambda x, shape=(): np.broadcast_to(x, shape),
    lambda grad, out, x, shape=(): grad,  # the engine sums the broadcast dimensions away
    kind="custom",
    cases=(case((3, 1), shape=(2, 3, 4)), case((4,), shape=(3, 4))),
    latex=(r"\partial \operatorname{broadcast\_to}(x)/\partial x"
           r"\text{: the gradient is summed over the broadcast dimensions}"),
    reads=(), **_API,
)


def _getitem_backward(grad: Any, out: Any, x: Any, index: Any = None) -> Any:
    return index_add(np.zeros(x.shape, dtype=x.dtype), grad, index=index)


def _getitem_compile_refusal(index: Any = None) -> str | None:
    parts = index if isinstance(index, tuple) else (index,)
    if any(isinstance(p, np.ndarray) and p.dtype == np.bool_ for p in parts):
        return ("indexing with a boolean mask gives a result whose shape depends on the "
                "values, which a recording cannot replay. Fix: use gg.where(mask, x, 0) "
                "instead of x[mask], or run this step eagerly.")
    return None


getitem = defop(
    "getitem", "∂x[i]/∂x: the gradient is scattered back to position i (summed where repeated)",
    lambda x, index=None: x[index],
    _getitem_backward,
    kind="custom",
    cases=(
        case((5,), index=2), case((4, 3), index=(slice(1, 3), 0)),
        case((4, 3), index=(None, Ellipsis, slice(None, None, -1))),
        case((5, 2), index=np.array([0, 2, 2, 4])),
        case((3, 4), index=np.array([[True, False, True, False]] * 3)),
        case((4, 3), index=(np.array([0, 1, 3]), np.array([2, 2, 0]))),
    ),
    latex=(r"\partial x[i]/\partial x\text{: the gradient is scattered back to position } i"
           r"\text{ (summed where repeated)}"),
    reads=(), public=True, compile_refusal=_getitem_compile_refusal,
)


def _index_add_forward(base: np.ndarray, values: np.ndarray, index: Any = None) -> np.ndarray:
    out = base.copy()
    np.add.at(out, index, values)
    return out


index_add = defop(
    "index_add", ("∂(base with values added at i)/∂base = 1", "∂/∂values = G[i]"),
    _index_add_forward,
    (lambda grad, out, base, values, index=None: grad,
     lambda grad, out, base, values, index=None: grad[index]),
    kind="custom",
    cases=(case((5,), (3,), index=np.array([0, 2, 2])),),
    why="the backward of getitem; a primitive so that getitem has a second derivative",
    latex=(r"\partial (\text{base with values added at } i)/\partial\,\mathrm{base} = 1",
           r"\partial/\partial\,\mathrm{values} = G[i]"),
    reads=((), ()),
)


def _concat_backward(grad: Any, out: Any, *xs: Any, axis: int = 0) -> tuple[Any, ...]:
    ax = axis % out.ndim
    ends = np.cumsum([x.shape[ax] for x in xs])
    lead = (slice(None),) * ax
    return tuple(grad[(*lead, slice(e - x.shape[ax], e))] for x, e in zip(xs, ends))


concatenate = defop(
    "concatenate", "∂concat(x₁, x₂, …)/∂xₖ: the slice of the gradient where xₖ was placed",
    lambda *xs, axis=0: np.concatenate(xs, axis=axis),
    _concat_backward,
    variadic=True,
    kind="custom",
    cases=(case((2, 3), (4, 3), axis=0), case((2, 3), (2, 1), (2, 2), axis=-1)),
    latex=(r"\partial \operatorname{concat}(x_1, x_2, \ldots)/\partial x_k"
           r"\text{: the slice of the gradient where } x_k \text{ was placed}"),
    # Read by value: only grad (out and the inputs for their shapes). The engine does not
    # ask a variadic op (it assumes every input is read); the entry says it all the same.
    reads=(), public=True,
)


# =========================================================================== losses
# Two losses that end nearly every training step, fused for speed (one node instead of three
# or four) and, for cross_entropy, stability. nn.functional builds the others from primitives.
def _mse_forward(input: np.ndarray, target: np.ndarray, reduction: str = "mean") -> np.ndarray:
    d = input - target
    total = np.add.reduce(d * d, None)
    if reduction != "mean":
        return total
    # total is a NumPy scalar: scalar arithmetic rounds the count to its dtype and divides,
    # the bits (and overflow warnings) of true_divide, without the ufunc machinery or making
    # the count a NumPy scalar first (about 900 instructions against 3,700 or more). NumPy 1.x
    # computes a float32 scalar over a Python int in float64: there the count is made a
    # scalar of total's dtype first, as NumPy 2 does it.
    return total / d.size if _WEAK_PYTHON_NUMBERS else total / total.dtype.type(d.size)


def _mse_grad(grad: Any, out: Any, input: Any, target: Any, reduction: str = "mean") -> Any:
    d = input - target
    scale = 2 / _size(d) if reduction == "mean" else 2
    if type(grad) is np.ndarray:
        # grad (0-d) as a NumPy scalar: scalar arithmetic rounds the Python number to grad's
        # dtype as the ufunc does and gives the same product, without the ufunc machinery
        # (about 5,000 instructions of this rule's 17,000 in the XOR step). NumPy 1.x would
        # compute a float32 scalar times a Python float in float64 (no overflow, and a second
        # rounding when the product meets d): there the number is made grad's dtype first.
        g = grad[()]
        return (g * (scale if _WEAK_PYTHON_NUMBERS else g.dtype.type(scale))) * d
    if not _WEAK_PYTHON_NUMBERS and isinstance(grad, np.generic):
        scale = grad.dtype.type(scale)
    return (grad * scale) * d


def _size(a: Any) -> int:
    """The number of elements of an array, a NumPy scalar (what arithmetic on 0-d arrays
    gives) or (in a create_graph rule) a Tensor."""
    if type(a) is np.ndarray:
        return a.size
    return a.numel() if isinstance(a, Tensor) else np.size(a)


mse_loss = defop(
    "mse_loss", ("∂L/∂ŷ = 2(ŷ − y)/n", "∂L/∂y = −2(ŷ − y)/n  (n = 1 for 'sum')"),
    _mse_forward,
    (_mse_grad, lambda grad, out, input, target, reduction="mean": -_mse_grad(
        grad, out, input, target, reduction)),
    kind="custom",
    cases=(case((4, 1), (4, 1)), case((3, 2), (3, 2), reduction="sum"), case((5,), (5,))),
    why="speed: one node instead of subtract, square and mean",
    definition="L = Σ(ŷ − y)²/n",
    latex=(r"\partial L/\partial \hat y = 2(\hat y - y)/n",
           r"\partial L/\partial y = -2(\hat y - y)/n\quad (n = 1 \text{ for 'sum'})"),
    # The second rule hands ``out`` on to _mse_grad, which does not read it; declared as
    # read all the same, since a bytecode check cannot see into the helper.
    reads=(("input", "target"), ("out", "input", "target")),
)


def _ce_forward(logits: np.ndarray, target: np.ndarray, reduction: str = "mean") -> np.ndarray:
    # −log softmax(z)[y] = logsumexp(z) − z[y], without the full log-softmax matrix; on the
    # logits as (rows, classes), where z[y] is one fancy index.
    z, y = _class_rows(logits, target)
    e, s, m, axis = _softmax_parts(z)
    losses = np.squeeze(np.log(s) + m, axis=axis) - z[np.arange(len(y)), y]
    total = np.add.reduce(losses, axis=None)
    if reduction == "mean":
        total = np.true_divide(total, losses.size, dtype=total.dtype)
    out = np.asarray(total)  # (an array, not a NumPy scalar: the kept parts are keyed by it)
    if STATE.grad_enabled:
        _keep_softmax(out, e, s, axis)
    return out


def _ce_grad(grad: Any, out: Any, logits: Any, target: Any, reduction: str = "mean") -> Any:
    # softmax(logits) − onehot(target), divided by N for the mean.
    n = (_size(logits) // logits.shape[-1]) if reduction == "mean" else 1
    if type(logits) is np.ndarray:  # subtract the 1s in place: no one-hot matrix
        z, y = _class_rows(logits, target)
        kept = _kept_softmax(id(out))
        e, s, _, axis = kept if kept is not None else _softmax_parts(z)
        p = np.divide(e, s, out=e)  # e is this call's own: the forward's, handed over once
        rows = np.arange(len(y))
        if axis == 0:  # classes first: p is the transpose of (rows, classes)
            p[y, rows] -= 1
            p = p.T
        else:
            p[rows, y] -= 1
        p *= grad / n
        return p.reshape(logits.shape)
    p = np.exp(logits - logsumexp(logits, axis=-1, keepdims=True))  # Tensors (create_graph)
    onehot = np.arange(logits.shape[-1]) == np.asarray(target)[..., None]
    return (p - onehot) * (grad / n)


def _softmax_parts(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """For logits rows z (N, C): e = exp(z − max), s = Σ_classes e and the max, each in the
    layout the reductions run fastest in, and that layout's class axis: (C, N) and 0 for a
    short class axis (as ``_logsumexp``), else (N, C) and 1. log(s) + max is ``_logsumexp``
    to the bit, and e / s is the softmax that the gradient needs."""
    a, axis = (z.T.copy(), 0) if _short_last_axis(z, -1) else (z, 1)
    m = np.maximum.reduce(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, m.dtype.type(0))
    e = np.exp(a - m)
    return e, np.add.reduce(e, axis=axis, keepdims=True), m, axis


# The gradient is softmax(z) − onehot(y), and the forward has just made exp(z − max) and its
# sums: while grad mode is on, the forward keeps them under its own result array (by identity,
# dropped with that array, as conv2d keeps its columns), and the rule, which receives that
# array as ``out``, takes them once instead of computing them again. The rule's fallback
# (a second backward, retain_graph) computes the same parts, so the gradient has the same bits.
_SOFTMAX: dict[int, tuple[Any, np.ndarray, np.ndarray, int]] = {}


def _keep_softmax(out: np.ndarray, e: np.ndarray, s: np.ndarray, axis: int) -> None:
    i = id(out)
    _SOFTMAX[i] = (weakref.ref(out, lambda _, i=i: _SOFTMAX.pop(i, None)), e, s, axis)


def _kept_softmax(key: int) -> tuple[np.ndarray, np.ndarray, None, int] | None:
    # (by ``id``: the rule holds the result, so no other live array has that id)
    entry = _SOFTMAX.pop(key, None)
    if entry is None or entry[0]() is None:
        return None
    return entry[1], entry[2], None, entry[3]


def _class_rows(logits: np.ndarray, target: Any) -> tuple[np.ndarray, np.ndarray]:
    """Logits (..., C) as a (rows, C) matrix, and the class targets as the matching vector."""
    return logits.reshape(-1, logits.shape[-1]), np.asarray(target).reshape(-1)


cross_entropy = defop(
    "cross_entropy", ("∂L/∂zᵢ = (softmax(zᵢ) − onehot(yᵢ)) / N", None),
    _ce_forward,
    (_ce_grad, None),
    kind="custom",
    cases=(case((4, 3), (4,)), case((2, 3, 5), (2, 3)), case((4, 3), (4,), reduction="sum"),
           case((70, 3), (70,)), case((2, 40, 3), (2, 40), reduction="sum")),  # many rows
    class_inputs=(1,),
    why="stability and speed: log-softmax never takes log of 0, and one node instead of four",
    definition="L = −Σᵢ log softmax(zᵢ)[yᵢ] / N",
    latex=(r"L = -\sum_i \log \operatorname{softmax}(z_i)[y_i] / N\text{:}\quad "
           r"\partial L/\partial z_i = (\operatorname{softmax}(z_i) - \operatorname{onehot}(y_i))"
           r" / N", None),
    # (the rule looks the forward's softmax parts up by ``id(out)``, not by value)
    reads=(("logits", "target"), None),
)


# =========================================================================== gather
# PyTorch's gather (dim=1: out[i][j] = x[i][index[i][j]]); shape.gather checks the index
# first. Its backward is index_add into zeros, so it has a second derivative as getitem does.
def _gather_grid(index: np.ndarray, dim: int) -> tuple:
    """The advanced index that picks x[i][index[i][j][k]][k] (for dim=1): ``index`` along
    ``dim``, each element's own position along the other dimensions."""
    dim %= index.ndim
    return tuple(index if k == dim else np.arange(n).reshape((n,) + (1,) * (index.ndim - 1 - k))
                 for k, n in enumerate(index.shape))


def _gather_backward(grad: Any, out: Any, x: Any, dim: int = 0, index: Any = None) -> Any:
    return index_add(np.zeros(x.shape, dtype=x.dtype), grad, index=_gather_grid(index, dim))


gather = defop(
    "gather", "∂gather(x, d, i)/∂x: the gradient is scatter-added back along d to positions i "
              "(summed where i repeats)",
    lambda x, dim=0, index=None: x[_gather_grid(index, dim)],
    _gather_backward,
    kind="custom",
    cases=(case((3, 4), dim=1, index=np.array([[0, 3], [1, 1], [2, 0]])),
           case((4, 3), dim=0, index=np.array([[3, 0, 1], [0, 0, 2]])),
           case((2, 3, 4), dim=-1, index=np.array([[[1, 0, 3]], [[2, 2, 0]]]))),
    latex=(r"\partial \operatorname{gather}(x, d, i)/\partial x\text{: the gradient is "
           r"scatter-added back along } d \text{ to positions } i"
           r"\text{ (summed where } i \text{ repeats)}"),
    reads=(),
)


# At the bottom: promotion uses apply and the cast op, so it is imported once they exist.
from . import promotion  # noqa: E402

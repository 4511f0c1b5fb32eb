"""What the back ends that compile a whole step share (``numba_backend.py``, ``c_backend.py``):
the op table's functions by role (``roles``), the reason a line cannot be compiled
(``Unsupported``, and the checks of attributes both make), the size below which a product
runs as loops (``LOOPS_MAX``), and the plan of fused and in-place passes around relu layers
(``fusions``), proved with the NumPy replay's own passes. Nothing here imports numba."""

from __future__ import annotations

from .. import ops
from . import kernels
from .ir import Line
from .lower import Lowered
from .passes import bias_relu, held, in_place, plain

LOOPS_MAX = 1 << 15  # multiply-adds up to which a product runs as loops, not BLAS


class Unsupported(Exception):  # noqa: N818  (not an error: the reason to fall back)
    """An op line the kernels cannot run (the op's name, why)."""


def no_attrs(op: str, attrs: dict, allowed: frozenset[str] | set[str] = frozenset()) -> None:
    """Refuse an op line with attributes other than ``allowed`` (the kernels of most ops
    take none)."""
    if set(attrs) - allowed:
        raise Unsupported(op, f"attributes {attrs}")


def loss_reduction(op: str, attrs: dict) -> bool:
    """Whether a loss's ``reduction`` is "mean" ("sum" is the other one the kernels take)."""
    r = attrs.pop("reduction", "mean")
    if r not in ("mean", "sum") or attrs:
        raise Unsupported(op, f"reduction={r!r} with attributes {attrs}")
    return r == "mean"


def over_every_element(op: str, attrs: dict) -> None:
    """Refuse a sum or mean over some axes only (the kernels sum every element)."""
    if attrs.get("axis") is not None or attrs.get("keepdims") or set(attrs) - {
            "axis", "keepdims"}:
        raise Unsupported(op, f"attributes {attrs} (the kernels sum every element)")


_ROLES: dict[int, tuple[ops.Op, int]] = {}


EVERY_INPUT = -2  # the role of a variadic op's backward: every input's gradient at once


def roles() -> dict[int, tuple[ops.Op, int]]:
    """id(function) -> (op, -1 for the forward, the rule's input index, or ``EVERY_INPUT``
    for a variadic op's backward), for the op table's functions (built once)."""
    if not _ROLES:
        for op in ops.OPS.values():
            _ROLES[id(op.forward)] = (op, -1)
            for i, rule in enumerate(op.rules or ()):
                if rule is not None:
                    _ROLES[id(rule)] = (op, i)
            if op.variadic:
                _ROLES[id(op.backward)] = (op, EVERY_INPUT)
    return _ROLES


def fusions(low: Lowered) -> dict[int, tuple[str, ...]]:
    """Line index -> how the numba source fuses or writes it over an input, for relu layers:

    - a relu whose input array is dead afterwards (``passes.in_place``'s proof, the NumPy
      replay's) writes over it (``relu_``); where the NumPy replay adds a linear layer's
      bias in that relu's pass (``passes.bias_relu``'s proof: the layer's 2-D result and its
      bias named by nothing between the two), the layer's product goes without its bias and
      the relu adds it (``no_bias`` / ``bias_relu``);
    - relu's rule writes over the incoming gradient when that is dead afterwards
      (``relu_grad_``); if the linear layer below takes the column sums of its result as
      its bias gradient, the rule computes them in its pass (``relu_grad_sums`` / ``sums``).

    Each changes how many passes run, never what a value is: the first call checks the
    kernels against the NumPy replay as for any step."""
    lines = low.lines
    arrays = held(lines)
    converted = in_place(lines, arrays, low.external(), low.returns.names())
    own = {i for i, (a, b) in enumerate(zip(lines, converted)) if b.fn is not a.fn}
    with_bias = bias_relu(converted)  # (the NumPy replay's proof for the bias in the relu)
    by_role = roles()
    plan: dict[int, tuple[str, ...]] = {}

    def role(line: Line) -> tuple[str | None, int | None]:
        op, i = by_role.get(id(line.fn), (None, None))
        return (op.name if op is not None else None), i

    for i, line in enumerate(lines):
        name, k = role(line)
        if name != "relu" or not plain(line):
            continue
        if k == -1 and i in own:
            if with_bias[i].fn is kernels.bias_relu_into:
                x, bias = with_bias[i].args
                j = max(j for j in range(i) if lines[j].target == x)
                plan[j], plan[i] = ("no_bias",), ("bias_relu", bias)
            else:
                plan[i] = ("relu_",)
        elif k == 0:
            t = line.target
            later = [u for u in range(i + 1, len(lines)) if t in lines[u].names()]
            uses = [u for u in later if role(lines[u]) == ("linear", 2)
                    and lines[u].args[0] == t and lines[u].kind == "call"]
            if (len(uses) == 1 and len(arrays[t][0].shape) == 2
                    and not any(lines[u].target == t for u in later)):
                sums = f"sums_{t}"
                plan[i] = ("relu_grad_sums", sums, "in_place" if i in own else "fresh")
                plan[uses[0]] = ("sums", sums)
            elif i in own:
                plan[i] = ("relu_grad_",)
    return plan

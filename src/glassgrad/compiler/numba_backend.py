"""The numba back end (``gg.compile(loss_fn, backend="numba")``): the whole step as one
``@numba.njit`` function, compiled by LLVM on the first call.

It starts from the same lowered program as the NumPy replay (``lower.py``'s lines, before
the in-place and fold passes, which are NumPy's ways to save memory) and writes one line of
numba source per line: each op-table call becomes a call of its kernel in
``numba_kernels.py`` (explicit loops; a large matrix product calls BLAS), each edge's
``sum_to``, ``cast`` and accumulation are written out, and, with an optimizer whose update
folds (``Optimizer.fold``), every parameter's update c ← α·∂L/∂p + β·c runs in the same
function: inside its gradient's BLAS product where nothing reads the parameter afterwards
(``Source.fold``), else at the end, once every gradient is computed. Around relu layers,
passes are fused (``fusions``). A small step then costs one call instead of
a few dozen NumPy calls. The guards, the engine check of the first call and the result
delivery are the NumPy program's (``program.Program``), so a replay is taken exactly when
the NumPy one would be.

Nothing is trusted blindly: an op without a numba kernel, a shape or dtype the kernels do not
take, or a compile failure makes the step replay in NumPy, with one ``JitFallbackWarning``
naming the op; each kernel is checked once, when compiled, against the NumPy replay on the
same inputs (to float rounding: loops sum in order, NumPy pairwise). Compiled functions are
cached by their source (which records the shapes that chose loops or BLAS), in memory and on
disk (``numba_cache.py``), so recording again after a guard fails (a parameter replaced,
another batch size) compiles nothing new, and a new process loads the step instead of
compiling it. ``numba_program.py`` runs the replays.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from .. import blas
from .fusion_plan import (
    LOOPS_MAX,
    Unsupported,
    fusions,
    loss_reduction,
    no_attrs,
    over_every_element,
)
from .fusion_plan import roles as _roles
from .ir import Line
from .lower import Lowered
from .numba_program import JitFallbackWarning, NumbaProgram, held_params, warn
from .passes import held, unread_after
from .program import Program

__all__ = ["JitFallbackWarning", "NumbaProgram", "accelerate", "require_numba"]

INSTALL = 'pip install "glassgrad[jit]"'


def require_numba() -> None:
    """Raise ImportError, saying how to install it, when numba cannot be imported."""
    try:
        import numba  # noqa: F401, PLC0415
    except ImportError as e:
        raise ImportError(
            f"gg.compile(..., backend='numba') needs numba, which is not installed ({e}). "
            f"Fix: {INSTALL} (or pip install numba), or leave backend out to replay in NumPy."
        ) from None


# =========================================================================== source
class Source:
    """The numba source of one lowered program: the recorded arrays (shapes and dtypes
    choose kernels) and the lines written so far."""

    def __init__(self, low: Lowered) -> None:
        rec = low.rec
        self.low = low
        self.held = held(low.lines)  # each temporary's recorded arrays (``passes.held``)
        self.arrays: dict[str, np.ndarray] = {n: a[0] for n, a in self.held.items() if a}
        self.inputs = [*(f"a{i}" for i in range(len(rec.targs))),
                       *(low.names[id(p)] for p in rec.params),
                       *(low.names[id(c)] for c in low.consts), "seed"]
        for name, t in zip(self.inputs, (*rec.targs, *rec.params, *low.consts)):
            self.arrays[name] = t._data
        self.arrays["seed"] = low.seed
        # The kernels index C-ordered arrays flat (a caller's array may be a transpose); a 0-d
        # one is left alone (numba's ascontiguousarray makes it 1-d; guards fix its shape).
        self.body = [f"    {n} = np.ascontiguousarray({n})" for n in self.inputs
                     if self.arrays[n].ndim]
        self.last_product: tuple[str, str, str] = ("", "", "")
        # gradient name -> (body index, operand a, operand b, index in low.lines): the lines
        # that are one BLAS product alone, where an update may be folded in (``folds``)
        self.products: dict[str, tuple[int, str, str, int]] = {}

    def dtype_of(self, names: list[str], op: str) -> np.dtype:
        """The one float dtype (float32 or float64) of ``names``'s arrays."""
        dts = {self.arrays[n].dtype for n in names}
        if len(dts) != 1 or next(iter(dts)) not in (np.float32, np.float64):
            raise Unsupported(op, f"dtypes {sorted(map(str, dts))} (the kernels take one "
                                  f"float dtype, float32 or float64)")
        return next(iter(dts))

    def shape(self, name: str) -> tuple[int, ...]:
        return self.arrays[name].shape

    def line(self, line: Line, fused: tuple[str, ...] | None = None, index: int = -1
             ) -> None:
        """Write ``line``, ``low.lines[index]`` (``fused``: what ``fusions`` planned for it,
        if anything)."""
        if line.kind == "comment":
            self.body.append(f"    # {line.comment}")
            return
        if line.kind == "del":  # (numba frees by reference count)
            return
        if line.item is not None:
            raise Unsupported(line.name, "a rule giving every input's gradient at once")
        if fused is not None:
            expr = self.fused(line, fused)
            if not expr:  # (written whole: two targets)
                return
        else:
            expr = line.args[0] if line.kind == "copy" else self.call(line)
        if line.sum_to is not None:
            expr = self.sum_to(line, expr)
        if line.cast is not None:
            expr = f"({expr}).astype(np.{np.dtype(line.cast).name})"
        added = f"{line.target} + " if line.accumulate else ""
        if (expr == self.last_product[0] and expr.startswith("matmul_blas(")
                and not line.accumulate):
            self.products[line.target] = (len(self.body), *self.last_product[1:], index)
        self.body.append(f"    {line.target} = {added}{expr}")

    def fused(self, line: Line, plan: tuple[str, ...]) -> str:
        """The expression of a line that ``fusions`` changed (its checks were made there)."""
        self.call(line)  # (the line's own checks: shapes, dtypes, attributes)
        kind, *names = plan
        a = line.args
        if kind == "no_bias":  # linear's product alone: the relu after it adds the bias
            x, w = a[0], a[1]
            (n, k), m = self.shape(x), self.shape(w)[0]
            return self.product(x, w + ".T", n * m * k)
        if kind == "bias_relu":
            return f"bias_relu_({a[0]}, {names[0]})"
        if kind == "relu_":
            return f"relu_({a[0]})"
        if kind == "relu_grad_":
            return f"relu_grad_({a[0]}, {a[1]})"
        if kind == "relu_grad_sums":  # written over the gradient when it is dead afterwards
            kernel = "relu_grad_sums_" if names[1] == "in_place" else "relu_grad_sums"
            self.body.append(f"    {line.target}, {names[0]} = {kernel}({a[0]}, {a[1]})")
            return ""
        return names[0]  # "sums": the column sums computed with relu's rule

    def call(self, line: Line) -> str:
        op, i = _roles().get(id(line.fn), (None, None))
        if op is None:
            raise Unsupported(line.name, "not an op table function")
        emit = EMITTERS.get(op.name)
        if emit is None:
            raise Unsupported(op.name, "no numba kernel")
        attrs = dict(line.attrs or {})
        return emit(self, op.name, i, line.args, attrs)

    def sum_to(self, line: Line, expr: str) -> str:
        """``expr`` (shaped like the op's result, ``args[1]``) summed down to ``sum_to``."""
        src, dst = self.shape(line.args[1]), line.sum_to
        t = f"_s_{line.target}"
        self.body.append(f"    {t} = {expr}")
        if all(n == 1 for n in dst):  # one element (numba's np.sum would give a scalar)
            return f"full({dst!r}, total({t}), {t})"
        lead = len(src) - len(dst)
        for _ in range(lead):
            t = f"np.sum({t}, axis=0)"
        for k in reversed(range(len(dst))):
            if dst[k] == 1 and src[lead + k] != 1:
                t = f"np.sum({t}, axis={k})"
        return f"np.ascontiguousarray({t}).reshape({dst!r})"

    def product(self, a: str, b: str, flops: int) -> str:
        kernel = self.large_product() if flops > LOOPS_MAX else "matmul_loops"
        self.last_product = (f"{kernel}({a}, {b})", a, b)
        return f"{kernel}({a}, {b})"

    @staticmethod
    def large_product() -> str:
        """The kernel of a large product: NumPy's BLAS where it is registered, else np.dot."""
        return "matmul_blas" if _numpy_blas() else "matmul_dot"

    def text(self, returns: tuple[str, list[str], list[bool], list[str] | None],
             updates: list[tuple[str, str, int]] = (), direct: bool = False) -> str:
        """The function's source. ``updates``: (gradient, parameter, slot) of each parameter
        updated at its end, c ← α·g + β·c (``axpby``). ``direct``: c is the parameter's array
        as passed in, α and β its group's, one pair per slot (``al0, be0, ...``: the same for
        a whole group, ``Optimizer.fold_group``); otherwise each parameter has its own
        ``u{slot}, al{slot}, be{slot}`` (``Optimizer.fold``)."""
        loss, grads, copied, aux = returns
        slots = sorted({s for *_, s in updates})
        own = "" if direct else "u{s}, "
        extra = "".join(f", {own.format(s=s)}al{s}, be{s}" for s in slots)
        # The update writes the array the caller passed in (w_p0), not the contiguous copy
        # ascontiguousarray makes of a strided one.
        keep = [f"    w_{p} = {p}" for _, p, _ in updates] if direct else []
        body, tail = list(self.body), []
        for g, p, s in updates:
            c = f"w_{p}" if direct else f"u{s}"
            fold = self.fold(g, p)
            if fold is None:
                tail.append(f"    axpby(al{s}, {g}, be{s}, {c})  # update {p}")
            else:
                k, a, b = fold
                body[k] = (f"    gemm_update(al{s}, {a}, {b}, be{s}, {c})  # update {p} in "
                           f"∂L/∂{p}'s product")
        head = [f"def step({', '.join(self.inputs)}{extra}):"]
        gs = [g + ".copy()" if c else g for g, c in zip(grads, copied)]
        xs = [a + ".copy()" if a[0] in "apc" else a for a in aux or ()]  # (never the caller's
        # array itself: an update may write over it, and the engine returns new tensors)
        ret = f"    return {loss}, ({''.join(g + ', ' for g in gs)})"
        ret += f", ({''.join(x + ', ' for x in xs)})" if aux is not None else ""
        return "\n".join([*head, *keep, *body, *tail, ret]) + "\n"

    def fold(self, g: str, p: str) -> tuple[int, str, str] | None:
        """Where parameter ``p``'s update may run inside its gradient's product (c ← α·a@b +
        β·c, ``gemm_update``): (body index, a, b), or None. The gradient ``g`` must be one
        BLAS product read by no other line, nothing after that line may read ``p``
        (``passes.unread_after``, the NumPy fold's proof), and ``p`` is no operand of the
        product. (c is ``p`` itself in the direct variant, and in the other one too for a
        parameter whose group has no momentum: ``Optimizer.fold`` gives its array.)"""
        if g not in self.products:
            return None
        k, a, b, i = self.products[g]
        lines = self.low.lines
        if any(g in line.names() for j, line in enumerate(lines)
               if j != i and line.kind != "del"):
            return None
        operands = set(re.findall(r"\w+", f"{a} {b}"))
        if p in operands or not unread_after(lines[i + 1:], p, self.arrays[p], self.held,
                                             self.low.returns.names()):
            return None
        return k, a, b


def _binary(fwd: str, rules: tuple[str, str]) -> Callable[..., str]:
    def emit(src: Source, op: str, i: int, args: list[str], attrs: dict) -> str:
        no_attrs(op, attrs)
        g, out, a, b = (None, None, *args) if i < 0 else args
        src.dtype_of([a, b] if i < 0 else [g, a, b], op)
        form = fwd if i < 0 else rules[i]
        expr = form.format(g=g, out=out, a=a, b=b)
        if form != "{g}" and all(src.shape(n) == () for n in (a, b, g) if n):
            return f"as_0d({expr}, {a})"  # numba makes a Python float of 0-d ⊕ 0-d
        return expr
    return emit


def _unary(fwd: str, rule: str) -> Callable[..., str]:
    def emit(src: Source, op: str, i: int, args: list[str], attrs: dict) -> str:
        no_attrs(op, attrs)
        src.dtype_of(args, op)
        return f"{fwd}({args[0]})" if i < 0 else f"{rule}({args[0]}, {args[1]})"
    return emit


def _linear(src: Source, op: str, i: int, args: list[str], attrs: dict) -> str:
    no_attrs(op, attrs)
    g, out, x, w, b = (None, None, *args) if i < 0 else args
    if len(src.shape(x)) != 2:
        raise Unsupported(op, f"an input of shape {src.shape(x)} (the kernels take 2-D)")
    src.dtype_of([x, w, b], op)
    (n, k), m = src.shape(x), src.shape(w)[0]
    if i < 0:
        return f"add_row({src.product(x, w + '.T', n * m * k)}, {b})"
    return (src.product(g, w, n * m * k), src.product(f"{g}.T", x, n * m * k),
            f"column_sums({g})")[i]


def _matmul(src: Source, op: str, i: int, args: list[str], attrs: dict) -> str:
    no_attrs(op, attrs)
    g, out, a, b = (None, None, *args) if i < 0 else args
    if len(src.shape(a)) != 2 or len(src.shape(b)) != 2:
        raise Unsupported(op, f"shapes {src.shape(a)} @ {src.shape(b)} (the kernels take "
                              f"2-D @ 2-D)")
    src.dtype_of([a, b], op)
    flops = src.shape(a)[0] * src.shape(a)[1] * src.shape(b)[1]
    return (src.product(a, b, flops), src.product(g, b + ".T", flops),
            src.product(a + ".T", g, flops))[i + 1]


def _mse(src: Source, op: str, i: int, args: list[str], attrs: dict) -> str:
    mean = loss_reduction(op, attrs)
    g, out, x, y = (None, None, *args) if i < 0 else args
    if src.shape(x) != src.shape(y):
        raise Unsupported(op, f"input {src.shape(x)} and target {src.shape(y)} differ")
    src.dtype_of([x, y], op)
    return f"mse({x}, {y}, {mean})" if i < 0 else f"mse_grad({g}, {x}, {y}, {mean}, {1 - 2 * i}.0)"


def _cross_entropy(src: Source, op: str, i: int, args: list[str], attrs: dict) -> str:
    mean = loss_reduction(op, attrs)
    g, out, z, y = (None, None, *args) if i < 0 else args
    if len(src.shape(z)) != 2 or src.shape(y) != src.shape(z)[:1] \
            or src.arrays[y].dtype.kind not in "iu":
        raise Unsupported(op, f"logits {src.shape(z)} with targets {src.shape(y)} "
                              f"{src.arrays[y].dtype} (the kernel takes (N, C) and N labels)")
    src.dtype_of([z], op)
    return f"cross_entropy({z}, {y}, {mean})" if i < 0 else \
        f"cross_entropy_grad({g}, {z}, {y}, {mean})"


def _reduce(divide: bool) -> Callable[..., str]:
    def emit(src: Source, op: str, i: int, args: list[str], attrs: dict) -> str:
        over_every_element(op, attrs)
        x = args[0] if i < 0 else args[2]
        src.dtype_of([x], op)
        per = f" / {x}.size" if divide else ""
        return f"as_0d(total({x}){per}, {x})" if i < 0 else f"filled({args[0]}.item(){per}, {x})"
    return emit


# op name -> emitter(source, op name, rule index (-1: forward), argument names, attributes)
EMITTERS: dict[str, Callable[..., str]] = {
    "add": _binary("({a} + {b})", ("{g}", "{g}")),
    "sub": _binary("({a} - {b})", ("{g}", "(-{g})")),
    "mul": _binary("({a} * {b})", ("({g} * {b})", "({g} * {a})")),
    "div": _binary("({a} / {b})", ("({g} / {b})", "(-{g} * {out} / {b})")),
    "tanh": _unary("tanh", "tanh_grad"),
    "relu": _unary("relu", "relu_grad"),
    "sigmoid": _unary("sigmoid", "sigmoid_grad"),
    "exp": _unary("exp", "times"),
    "linear": _linear,
    "matmul": _matmul,
    "mse_loss": _mse,
    "cross_entropy": _cross_entropy,
    "sum": _reduce(False),
    "mean": _reduce(True),
}

def _numpy_blas() -> bool:
    """Whether kernels can call NumPy's own BLAS (and ``GLASSGRAD_BLAS=numpy`` is not set:
    ``blas.describe`` says what runs)."""
    from . import numba_kernels  # noqa: PLC0415  (imports numba)

    return numba_kernels.NUMPY_BLAS and bool(blas._blas().fns)


# =========================================================================== compiling


# =========================================================================== program
def accelerate(prog: Program, low: Lowered) -> Program:
    """``prog`` replayed by numba, or ``prog`` itself (with a ``JitFallbackWarning``) when a
    line has no kernel or the kernel does not compile or check."""
    opt = prog.optimizer
    held_ids = held_params(opt) if callable(getattr(opt, "fold", None)) else set()
    folded = [p for p in prog.leaves if id(p) in held_ids]
    try:
        src = Source(low)
        plan = fusions(low)
        for i, line in enumerate(low.lines):
            src.line(line, plan.get(i), i)
    except Unsupported as e:
        warn(f"op '{e.args[0]}' is not supported by the numba back end ({e.args[1]})")
        return prog
    r = low.returns
    kept = [k for k, p in enumerate(prog.leaves) if id(p) not in held_ids]
    kept += range(len(prog.leaves), len(r.grads))
    returns = (r.loss, [r.grads[k] for k in kept], [r.copied[k] for k in kept], r.aux)
    names = [low.names[id(p)] for p in folded]
    slots = [next(k for k, g in enumerate(opt.param_groups) if any(q is p for q in g["params"]))
             for p in folded]
    sources = {"plain": src.text((r.loss, r.grads, r.copied, r.aux)), "fused": "", "direct": ""}
    if folded:
        grads = [low.grads[id(p)] for p in folded]
        sources["fused"] = src.text(returns, [(g, n, k) for k, (g, n) in
                                              enumerate(zip(grads, names))])
        if set(names) <= {low.names[id(p)] for p in low.rec.params}:  # (each passed in once)
            sources["direct"] = src.text(returns, list(zip(grads, names, slots)), direct=True)
    jp = NumbaProgram.__new__(NumbaProgram)
    jp.__dict__.update(prog.__dict__)  # the same recording, guards and delivery
    jp.setup(low, sources, folded, slots, [prog.leaves[k] for k in kept if k < len(prog.leaves)],
             held_ids)
    return jp if jp.first_kernel(low.rec.targs) is not None else prog

"""The numba back end (``gg.compile(loss_fn, backend="numba")``): the whole step as one
``@numba.njit`` function, compiled by LLVM on the first call.

It starts from the same lowered program as the NumPy replay (``lower.py``'s lines, before
the in-place and fold passes, which are NumPy's ways to save memory) and writes one line of
numba source per line: each op-table call becomes a call of its kernel in
``numba_kernels.py`` (explicit loops; a large matrix product calls BLAS), each edge's
``sum_to``, ``cast`` and accumulation are written out, and, with an optimizer whose update
folds (``Optimizer.fold``), every parameter's update c ← α·∂L/∂p + β·c runs at the end of the
same function, once every gradient is computed. A small step then costs one call instead of
a few dozen NumPy calls. The guards, the engine check of the first call and the result
delivery are the NumPy program's (``program.Program``), so a replay is taken exactly when
the NumPy one would be.

Nothing is trusted blindly: an op without a numba kernel, a shape or dtype the kernels do not
take, or a compile failure makes the step replay in NumPy, with one ``JitFallbackWarning``
naming the op; each kernel is checked once, when compiled, against the NumPy replay on the
same inputs (to float rounding: loops sum in order, NumPy pairwise). Compiled kernels are
cached by their source (which records the shapes that chose loops or BLAS), so recording
again after a guard fails (a parameter replaced, another batch size) compiles nothing new.
"""

from __future__ import annotations

import time
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import autograd, ops
from ..interrupt import DeferredInterrupt
from ..tensor import Tensor
from . import numba_kernels
from .ir import Line
from .lower import Lowered
from .passes import held
from .program import Program, _scale

LOOPS_MAX = 1 << 15  # multiply-adds up to which a product runs as loops, not BLAS
CACHE_SIZE = 32  # compiled step functions kept, by source
_CACHE: OrderedDict[str, Callable[..., Any]] = OrderedDict()
INSTALL = 'pip install "glassgrad[jit]"'


class JitFallbackWarning(UserWarning):
    """``backend="numba"`` could not compile a step; it replays in NumPy (same results)."""


class Unsupported(Exception):  # noqa: N818  (not an error: the reason to fall back)
    """An op line the kernels cannot run (the op's name, why)."""


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
        self.arrays: dict[str, np.ndarray] = {n: a[0] for n, a in held(low.lines).items() if a}
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

    def dtype_of(self, names: list[str], op: str) -> np.dtype:
        """The one float dtype (float32 or float64) of ``names``'s arrays."""
        dts = {self.arrays[n].dtype for n in names}
        if len(dts) != 1 or next(iter(dts)) not in (np.float32, np.float64):
            raise Unsupported(op, f"dtypes {sorted(map(str, dts))} (the kernels take one "
                                  f"float dtype, float32 or float64)")
        return next(iter(dts))

    def shape(self, name: str) -> tuple[int, ...]:
        return self.arrays[name].shape

    def line(self, line: Line) -> None:
        if line.kind == "comment":
            self.body.append(f"    # {line.comment}")
            return
        if line.kind == "del":  # (numba frees by reference count)
            return
        if line.item is not None:
            raise Unsupported(line.name, "a rule giving every input's gradient at once")
        expr = line.args[0] if line.kind == "copy" else self.call(line)
        if line.sum_to is not None:
            expr = self.sum_to(line, expr)
        if line.cast is not None:
            expr = f"({expr}).astype(np.{np.dtype(line.cast).name})"
        added = f"{line.target} + " if line.accumulate else ""
        self.body.append(f"    {line.target} = {added}{expr}")

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
        kernel = "matmul_loops" if flops <= LOOPS_MAX else "matmul_blas"
        return f"{kernel}({a}, {b})"

    def text(self, returns: tuple[str, list[str], list[bool], list[str] | None],
             updates: list[str]) -> str:
        loss, grads, copied, aux = returns
        upd = "".join(f", u{k}, al{k}, be{k}" for k in range(len(updates)))
        head = [f"def step({', '.join(self.inputs)}{upd}):"]
        tail = [f"    axpby(al{k}, {g}, be{k}, u{k})  # update {g.removeprefix('g_')}"
                for k, g in enumerate(updates)]
        gs = [g + ".copy()" if c else g for g, c in zip(grads, copied)]
        xs = [a + ".copy()" if a[0] in "apc" else a for a in aux or ()]  # (never the caller's
        # array itself: an update may write over it, and the engine returns new tensors)
        ret = f"    return {loss}, ({''.join(g + ', ' for g in gs)})"
        ret += f", ({''.join(x + ', ' for x in xs)})" if aux is not None else ""
        return "\n".join([*head, *self.body, *tail, ret]) + "\n"


def _binary(fwd: str, rules: tuple[str, str]) -> Callable[..., str]:
    def emit(src: Source, op: str, i: int, args: list[str], attrs: dict) -> str:
        _no_attrs(op, attrs)
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
        _no_attrs(op, attrs)
        src.dtype_of(args, op)
        return f"{fwd}({args[0]})" if i < 0 else f"{rule}({args[0]}, {args[1]})"
    return emit


def _linear(src: Source, op: str, i: int, args: list[str], attrs: dict) -> str:
    _no_attrs(op, attrs)
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
    _no_attrs(op, attrs)
    g, out, a, b = (None, None, *args) if i < 0 else args
    if len(src.shape(a)) != 2 or len(src.shape(b)) != 2:
        raise Unsupported(op, f"shapes {src.shape(a)} @ {src.shape(b)} (the kernels take "
                              f"2-D @ 2-D)")
    src.dtype_of([a, b], op)
    flops = src.shape(a)[0] * src.shape(a)[1] * src.shape(b)[1]
    return (src.product(a, b, flops), src.product(g, b + ".T", flops),
            src.product(a + ".T", g, flops))[i + 1]


def _mse(src: Source, op: str, i: int, args: list[str], attrs: dict) -> str:
    mean = _reduction(op, attrs)
    g, out, x, y = (None, None, *args) if i < 0 else args
    if src.shape(x) != src.shape(y):
        raise Unsupported(op, f"input {src.shape(x)} and target {src.shape(y)} differ")
    src.dtype_of([x, y], op)
    return f"mse({x}, {y}, {mean})" if i < 0 else f"mse_grad({g}, {x}, {y}, {mean}, {1 - 2 * i}.0)"


def _cross_entropy(src: Source, op: str, i: int, args: list[str], attrs: dict) -> str:
    mean = _reduction(op, attrs)
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
        if attrs.get("axis") is not None or attrs.get("keepdims") or set(attrs) - {
                "axis", "keepdims"}:
            raise Unsupported(op, f"attributes {attrs} (the kernel sums every element)")
        x = args[0] if i < 0 else args[2]
        src.dtype_of([x], op)
        per = f" / {x}.size" if divide else ""
        return f"as_0d(total({x}){per}, {x})" if i < 0 else f"filled({args[0]}.item(){per}, {x})"
    return emit


def _no_attrs(op: str, attrs: dict) -> None:
    if attrs:
        raise Unsupported(op, f"attributes {attrs}")


def _reduction(op: str, attrs: dict) -> bool:
    """Whether ``reduction`` is "mean" ("sum" is the other one the kernels take)."""
    r = attrs.pop("reduction", "mean")
    if r not in ("mean", "sum") or attrs:
        raise Unsupported(op, f"reduction={r!r} with attributes {attrs}")
    return r == "mean"


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

_ROLES: dict[int, tuple[ops.Op, int]] = {}


def _roles() -> dict[int, tuple[ops.Op, int]]:
    """id(function) -> (op, -1 for the forward or the rule's input index), for the op
    table's functions (built once)."""
    if not _ROLES:
        for op in ops.OPS.values():
            _ROLES[id(op.forward)] = (op, -1)
            for i, rule in enumerate(op.rules or ()):
                if rule is not None:
                    _ROLES[id(rule)] = (op, i)
    return _ROLES


def _compiled(source: str) -> Callable[..., Any]:
    """The njit function of ``source``, from the cache or made now (numba compiles it on the
    first call for each argument type)."""
    fn = _CACHE.get(source)
    if fn is None:
        import numba  # noqa: PLC0415

        env: dict[str, Any] = {"np": np, "numba": numba}
        env.update({k: v for k, v in vars(numba_kernels).items() if hasattr(v, "py_func")})
        exec(compile(source, "<glassgrad.compile numba>", "exec"), env)  # noqa: S102
        fn = _CACHE[source] = numba.njit(env["step"])  # (our own source, from the op table)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(source)
    return fn


# =========================================================================== program
def accelerate(prog: Program, low: Lowered) -> Program:
    """``prog`` replayed by numba, or ``prog`` itself (with a ``JitFallbackWarning``) when a
    line has no kernel or the kernel does not compile or check."""
    opt = prog.optimizer
    held_ids = ({id(p) for g in opt.param_groups for p in g["params"]}
                if callable(getattr(opt, "fold", None)) else set())
    folded = [p for p in prog.leaves if id(p) in held_ids]
    try:
        src = Source(low)
        for line in low.lines:
            src.line(line)
    except Unsupported as e:
        _warn(f"op '{e.args[0]}' is not supported by the numba back end ({e.args[1]})")
        return prog
    r = low.returns
    plain = src.text((r.loss, r.grads, r.copied, r.aux), [])
    kept = [k for k, p in enumerate(prog.leaves) if id(p) not in held_ids]
    kept += range(len(prog.leaves), len(r.grads))
    fused = src.text((r.loss, [r.grads[k] for k in kept], [r.copied[k] for k in kept], r.aux),
                     [low.grads[id(p)] for p in folded]) if folded else ""
    jp = NumbaProgram.__new__(NumbaProgram)
    jp.__dict__.update(prog.__dict__)  # the same recording, guards and delivery
    jp.setup(low, plain, fused, folded,
             [prog.leaves[k] for k in kept if k < len(prog.leaves)])
    which = "fused" if folded and all(opt.fold(p) is not None for p in folded) else "plain"
    return jp if jp.kernel(which, low.rec.targs) is not None else prog


def _warn(why: str) -> None:
    warnings.warn(f"gg.compile(backend='numba'): {why}; this step replays in NumPy instead "
                  f"(same results).", JitFallbackWarning, stacklevel=5)


class NumbaProgram(Program):
    """A ``Program`` whose replays run one numba function: ``plain`` (loss and gradients) or,
    with an optimizer that folds every parameter it holds, ``fused`` (the updates inside)."""

    def setup(self, low: Lowered, plain: str, fused: str, folded: list[Tensor],
              kept: list[Tensor]) -> None:
        self.consts, self.seed = low.consts, low.seed
        self.jit_sources = {"plain": plain, "fused": fused}
        self.jit_kernels: dict[str, Callable[..., Any]] = {}
        self.jit_folded = folded
        self.jit_kept = kept
        self.jit_seconds = 0.0  # compile time of the kernels this program compiled
        self.jit_failed = False  # a kernel did not compile or check: NumPy from then on

    def kernel(self, which: str, targs: tuple[Tensor, ...]) -> Callable[..., Any] | None:
        """The ``which`` kernel, compiled and checked against the NumPy replay on ``targs``
        on first use; None (after a warning) if it fails either."""
        fn = self.jit_kernels.get(which)
        if fn is not None or self.jit_failed:
            return fn
        source = self.jit_sources[which]
        try:
            fn = _compiled(source)
            start = time.perf_counter()
            self._check(fn, which, targs)
            self.jit_seconds += time.perf_counter() - start
        except AssertionError as e:
            self.jit_failed = True
            _warn(f"internal error, please report it: the numba kernel differs from the NumPy "
                  f"replay ({e})")
            return None
        except Exception as e:  # noqa: BLE001  (numba's typing and lowering errors)
            self.jit_failed = True
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            _warn(f"numba could not compile the step ({type(e).__name__}: {first})")
            return None
        self.jit_kernels[which] = fn
        self.source = source
        return fn

    def inputs(self, targs: tuple[Tensor, ...]) -> list[np.ndarray]:
        return [*(t._data for t in targs), *(p._data for p in self.params),
                *(c._data for c in self.consts), self.seed]

    def _check(self, fn: Callable[..., Any], which: str, targs: tuple[Tensor, ...]) -> None:
        """Run ``fn`` once (numba compiles it here) and compare it with the NumPy program on
        the same inputs: the folded updates on copies, with α, β = −0.3, 0.7."""
        ref = self.fn(*[t._data for t in targs])
        if which == "plain":
            mine = fn(*self.inputs(targs))
            _close(mine[1], ref[1], "gradient")
        else:
            copies = [p._data.copy() for p in self.jit_folded]
            mine = fn(*self.inputs(targs), *[x for c in copies for x in (c, -0.3, 0.7)])
            grads = dict(zip(map(id, self.leaves), ref[1]))
            _close(copies, [-0.3 * grads[id(p)] + 0.7 * p._data for p in self.jit_folded],
                   "folded update")
            n = len(self.leaves)
            kept = {id(p) for p in self.jit_kept}
            others = [g for p, g in zip(self.leaves, ref[1]) if id(p) in kept] + list(ref[1][n:])
            _close(mine[1], others, "gradient")
        _close([mine[0], *(mine[2] if self.has_aux else ())],
               [ref[0], *(ref[2] if self.has_aux else ())], "output")

    def run(self, targs: tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
        if self.jit_failed:
            return Program.run(self, targs)
        opt = self.optimizer
        if opt is not None and self.jit_folded:
            folds = [opt.fold(p) for p in self.jit_folded]
            fn = None
            if all(f is not None for f in folds):
                fn = self.kernel("fused", targs)
            if fn is not None:
                opt.zero_grad()
                with DeferredInterrupt():  # the weights change inside: all or none
                    result = fn(*self.inputs(targs), *[x for f in folds for x in f[:3]])
                    loss = self.deliver(targs, result, self.jit_kept)
                    for f in folds:
                        if f[3] is not None:
                            f[3]()
                    autograd.mark_modified(*self.jit_folded)
                return loss
        fn = self.kernel("plain", targs)
        if fn is None:
            return Program.run(self, targs)
        return self.finish(targs, fn(*self.inputs(targs)))


def _close(mine: Any, ref: Any, what: str) -> None:
    """Raise AssertionError unless ``mine`` and ``ref`` (sequences of arrays) agree to float
    rounding, with the same shapes and dtypes."""
    for m, r in zip(mine, ref, strict=True):
        m, r = np.asarray(m), np.asarray(r)
        if m.shape != r.shape or m.dtype != r.dtype or not np.allclose(
                m, r, rtol=1e-4, atol=1e-5 * _scale(r), equal_nan=True):
            raise AssertionError(f"a {what} of shape {r.shape} {r.dtype}, numba gives shape "
                                 f"{m.shape} {m.dtype}")

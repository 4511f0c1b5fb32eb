"""The C back end (``gg.compile(loss_fn, backend="c")``): the whole step as one C function,
compiled by the system's C compiler on its first replay and kept on disk for the next process.

It starts from the lowered lines and the fusion plan the numba back end also uses
(``fusion_plan.fusions``: the NumPy replay's proofs of what may be written over) and writes
each line as C loops over arrays whose shapes and dtypes the recording fixed, so every loop
bound and index is a constant the compiler sees. A large matrix product calls NumPy's own
OpenBLAS by address (``blas.gemm_address``, handed to the library once when it is loaded), a
small one is three loops; an optimizer's update c ← α·∂L/∂p + β·c runs inside its gradient's
product where the NumPy fold's proof allows (``passes.unread_after``), else at the end.
Temporaries live in one workspace the library keeps between calls (a second thread calling
at the same time gets one of its own), so a replay allocates only the arrays it returns.

What it adds over numba: no JIT to import (numba and LLVM take about 90 MiB of memory), a
compile of a fraction of a second, and a call with nothing around the kernel but the array
checks (``_backward.call_step``; without the extension, ``ctypes``). The guards, the first
call's check against the engine, the check of each kernel against the NumPy replay and the
three variants (plain, fused, direct) are the numba back end's (``NativeProgram``). An op,
shape or dtype it has no loops for, or no C compiler, makes the step replay in NumPy with a
``JitFallbackWarning``; ``c_build.py`` compiles and loads.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import ops, ops_nn
from . import c_build
from .fusion_plan import (
    LOOPS_MAX,
    Unsupported,
    fusions,
    loss_reduction,
    no_attrs,
    over_every_element,
    roles,
)
from .ir import Line
from .lower import Lowered
from .native_program import NativeProgram, held_params, warn
from .passes import held, unread_after
from .program import Program

__all__ = ["CProgram", "accelerate"]

C_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double",
           np.dtype(np.int64): "int64_t", np.dtype(np.int32): "int32_t",
           np.dtype(np.int16): "int16_t", np.dtype(np.int8): "int8_t",
           np.dtype(np.uint8): "uint8_t", np.dtype(np.uint16): "uint16_t",
           np.dtype(np.uint32): "uint32_t", np.dtype(np.uint64): "uint64_t",
           np.dtype(np.bool_): "uint8_t"}
# (a bool array is NumPy's bytes of 0 or 1, read and written as uint8_t: GCC 12 has no vector
# type for C's _Bool, so a loop that read one, as where's does, ran as scalar code)
ALIGN = 64  # bytes: each temporary starts on a cache line
# relu's rule, g·(out > 0): as NumPy computes it (a NaN or ±∞ gradient gives NaN where out ≤
# 0, a negative one −0). The 0 or 1 is made from the comparison's bits (gg_one_t, see
# c_build.PRELUDE), not converted from it or chosen by a branch: GCC 12 vectorizes the loop
# that way for AVX2 and AVX-512 targets. Written g * (out > 0), it was vectorized only with
# AVX-512 (an AMD EPYC with AVX2 ran the batch-128 MLP step's two relu passes, with their
# column sums, in 349 and 394 µs as scalar code, and in 14 and 11 µs vectorized); written
# out > 0 ? g : g·0, nowhere.
RELU_GRAD = "{0} * gg_one_t({1} > 0)"


class StepDeclined(Exception):  # noqa: N818  (not an error: replay this call in NumPy)
    """The compiled step did not run on these arrays (a layout it was not written for, a
    class index out of range): nothing was written; the NumPy replay runs instead."""

    def __str__(self) -> str:
        rc = self.args[0] if self.args else None
        if rc is NotImplemented:
            return ("the arrays do not fit the compiled step: an array the step writes (a "
                    "parameter, an optimizer's buffer) is not C-contiguous, aligned and "
                    "writeable, or shares memory with another of the step's arrays")
        return {1: "a class index is out of range", 2: "no memory for the temporaries"}.get(
            rc, f"the step returned {rc}")


def _like(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A stand-in of that shape and dtype, holding no memory (for a temporary's metadata)."""
    return np.broadcast_to(np.zeros((), dtype), shape)


def _strides(shape: tuple[int, ...]) -> list[int]:
    out, step = [], 1
    for n in reversed(shape):
        out.append(step)
        step *= n
    return out[::-1]


class CSource:
    """The C text of one lowered program: each name a pointer into an argument, the
    workspace or another name's array; ``arrays`` their shapes and dtypes."""

    def __init__(self, low: Lowered) -> None:
        rec = low.rec
        self.low = low
        self.held = held(low.lines)
        self.arrays: dict[str, np.ndarray] = {n: a[0] for n, a in self.held.items() if a}
        self.inputs = [*(f"a{i}" for i in range(len(rec.targs))),
                       *(low.names[id(p)] for p in rec.params),
                       *(low.names[id(c)] for c in low.consts), "seed"]
        for name, t in zip(self.inputs, (*rec.targs, *rec.params, *low.consts)):
            self.arrays[name] = t._data
        self.arrays["seed"] = low.seed
        for name in self.arrays:
            if not re.fullmatch(r"[A-Za-z_]\w*", name) or name.startswith("gg_"):
                raise Unsupported("compile", f"a value named {name!r}")
        for name in self.inputs:
            self.ctype(name)
        self.body: list[str] = []
        self.declared: dict[str, str] = {}  # pointer name -> its C element type
        self.temps = 0
        # The workspace: each temporary array is a buffer, live from the line that makes it
        # to the last line that names it or a name bound to it (``layout`` packs them).
        self.buffers: list[list[Any]] = []  # [first line, last line, bytes, names]
        self.buffer_of: dict[str, int] = {}  # name -> the buffer it names now
        self.root: dict[str, Any] = {}  # name -> the array it names now (a buffer, an input)
        self.at = 0  # the index in low.lines of the line being written
        # gradient name -> (body index, a, transposed, b, transposed, index in low.lines, the
        # operands' names and the arrays they named then): a line that is one BLAS product
        # alone, into which an update may fold (``fold``)
        self.products: dict[str, tuple[int, str, bool, str, bool, int, set[Any]]] = {}
        self.last_product: tuple[int, str, bool, str, bool] | None = None
        # (logits, labels) -> the buffers cross_entropy's forward kept for its rule: each
        # exp(z − max) rounded to z's dtype, and each row's sum of those (``_cross_entropy``)
        self.softmax_parts: dict[tuple[str, str], tuple[str, str]] = {}

    # ------------------------------------------------------------------ names and memory
    def shape(self, name: str) -> tuple[int, ...]:
        return self.arrays[name].shape

    def ctype(self, name: str) -> str:
        dt = self.arrays[name].dtype
        if dt not in C_TYPES or not dt.isnative:
            raise Unsupported("compile", f"an array of dtype {dt}")
        return C_TYPES[dt]

    def declare(self, name: str) -> None:
        t = self.ctype(name)
        if self.declared.setdefault(name, t) != t:
            raise Unsupported("compile", f"{name} held two dtypes")

    def alloc(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> str:
        """Bind ``name`` to a new temporary of that shape and dtype in the workspace."""
        self.arrays[name] = _like(shape, np.dtype(dtype))
        self.declare(name)
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        self.buffer_of[name] = len(self.buffers)
        self.root[name] = ("ws", len(self.buffers))
        self.body.append(f"    {name} = ({self.declared[name]} *)gg_at(ws, @{len(self.buffers)}@);")
        self.buffers.append([self.at, self.at, -(-max(nbytes, 1) // ALIGN) * ALIGN, {name}])
        return name

    def temp(self) -> str:
        self.temps += 1
        return f"gg_t{self.temps}"

    def view(self, name: str, shape: tuple[int, ...]) -> str:
        """A new name for ``name``'s array seen with another shape of as many elements (a
        reshape: every array here is C-ordered, so no copy)."""
        if math.prod(shape) != self.arrays[name].size:
            raise Unsupported("reshape", f"{self.shape(name)} to {shape}")
        v = self.temp()
        self.arrays[v] = _like(shape, self.arrays[name].dtype)
        self.bind(v, name)
        return v

    def bind(self, name: str, other: str) -> None:
        """``name`` now names ``other``'s array (no copy: a Python assignment)."""
        if name != other:
            self.arrays.setdefault(name, self.arrays[other])
            self.declare(name)
            if self.declared[name] != self.ctype(other):
                raise Unsupported("compile", f"{name} and {other} differ in dtype")
            self.body.append(f"    {name} = {other};")
            self.root[name] = self.root.get(other, other)
            k = self.buffer_of.get(other)
            if k is not None:
                self.buffer_of[name] = k
                self.buffers[k][1] = max(self.buffers[k][1], self.at)
                self.buffers[k][3].add(name)
            else:
                self.buffer_of.pop(name, None)

    def dtype_of(self, names: list[str], op: str) -> np.dtype:
        """The one float dtype (float32 or float64) of ``names``'s arrays."""
        dts = {self.arrays[n].dtype for n in names}
        if len(dts) != 1 or next(iter(dts)) not in (np.float32, np.float64):
            raise Unsupported(op, f"dtypes {sorted(map(str, dts))} (the loops take one float "
                                  f"dtype, float32 or float64)")
        return next(iter(dts))

    def typed(self, form: str, name: str) -> str:
        """``form`` with the branch-free helpers (``gg_one_t``: 1 or 0; ``gg_pick_t``: one of
        two values; c_build.PRELUDE) made those of ``name``'s element type, and ``gg_half``
        its 0.5."""
        t = self.ctype(name)
        return (form.replace("gg_one_t(", f"gg_one_{t}(").replace("gg_pick_t(", f"gg_pick_{t}(")
                .replace("gg_half", f"(({t})0.5)"))

    # ------------------------------------------------------------------ loops
    def noalias(self, written: list[str], read: list[str]) -> tuple[str, dict[str, str]]:
        """``restrict`` pointers for one loop, one per array it touches (names of one array
        share one), so that the compiler vectorizes it without proving the arrays apart.
        Two live buffers of the workspace never overlap (``layout``), a buffer never
        overlaps an argument, and ``call_step`` refuses a written argument that overlaps
        another: the promise holds. Returns the declarations and each name's pointer."""
        local: dict[str, str] = {}
        by_root: dict[Any, str] = {}
        decl = []
        roots_written = {self.root.get(w, w) for w in written}
        for n in [*written, *read]:
            root = self.root.get(n, n)
            if root not in by_root:
                by_root[root] = f"gg_r{len(by_root)}"
                const = "" if root in roots_written else "const "
                decl.append(f"{const}{self.ctype(n)} *restrict {by_root[root]} = {n};")
            local[n] = by_root[root]
        return " ".join(decl), local

    def each(self, dst: str, shape: tuple[int, ...], form: str, names: list[str]) -> None:
        """dst[i] = form(names[0][i], ...) over ``shape``, each name broadcast to it."""
        size = math.prod(shape)
        form = self.typed(form, dst)
        if all(self.shape(n) == shape for n in names):
            decl, p = self.noalias([dst], names)
            terms = [f"{p[n]}[i]" for n in names]
            self.body.append(f"    {{ {decl} for (int64_t i = 0; i < {size}; i++) "
                             f"{p[dst]}[i] = {form.format(*terms)}; }}")
            return
        nd = len(shape)
        terms = []
        for n in names:
            s = self.shape(n)
            if len(s) > nd or any(a not in (1, b) for a, b in zip(s[::-1], shape[::-1])):
                raise Unsupported("compile", f"shape {s} does not broadcast to {shape}")
            padded = (1,) * (nd - len(s)) + s
            terms.append(f"{n}[{_index(padded, shape)}]")
        self.body.append(f"    {_loops(shape)}{dst}[{_index(shape, shape)}] = "
                         f"{form.format(*terms)};")

    def product(self, dst: str, a: str, ta: bool, b: str, tb: bool, beta: str = "0",
                alpha: str = "1") -> None:
        """dst (m, n) ← α·op(a)@op(b) + β·dst, op a transpose where asked; a, b C-ordered 2-D."""
        (m, k) = self.shape(a)[::-1] if ta else self.shape(a)
        n = self.shape(b)[0] if tb else self.shape(b)[1]
        lda, ldb = self.shape(a)[1], self.shape(b)[1]
        letter = {"float": "s", "double": "d"}[self.ctype(a)]
        if m * n * k > LOOPS_MAX:
            if not c_build.numpy_blas():
                raise Unsupported("matmul", "NumPy's OpenBLAS (with 64-bit integers) was not "
                                            "found for a large product")
            self.last_product = (len(self.body), a, ta, b, tb)
            self.body.append(f"    gg_{letter}gemm(101, {112 if ta else 111}, "
                             f"{112 if tb else 111}, {m}, {n}, {k}, {alpha}, {a}, {lda}, {b}, "
                             f"{ldb}, {beta}, {dst}, {n});")
            return
        ia = f"t * {lda} + i" if ta else f"i * {lda} + t"
        ib = f"j * {ldb} + t" if tb else f"t * {ldb} + j"
        t = self.ctype(a)
        keep = ("s" if alpha == "1" else f"{alpha} * s") if beta == "0" else \
            f"{beta} == 0 ? {alpha} * s : {alpha} * s + {beta} * {dst}[i * {n} + j]"
        self.last_product = None
        self.body.append(
            f"    for (int64_t i = 0; i < {m}; i++) for (int64_t j = 0; j < {n}; j++) {{ "
            f"{t} s = 0; for (int64_t t = 0; t < {k}; t++) s += {a}[{ia}] * {b}[{ib}]; "
            f"{dst}[i * {n} + j] = ({t})({keep}); }}")

    def column_sums(self, dst: str, g: str) -> None:
        rows, cols = self.shape(g)
        decl, p = self.noalias([dst], [g])
        self.body.append(f"    {{ {decl} for (int64_t j = 0; j < {cols}; j++) {p[dst]}[j] = 0; "
                         f"for (int64_t i = 0; i < {rows}; i++) for (int64_t j = 0; j < {cols}; "
                         f"j++) {p[dst]}[j] += {p[g]}[i * {cols} + j]; }}")

    # ------------------------------------------------------------------ lines
    def line(self, line: Line, fused: tuple[str, ...] | None = None, index: int = -1) -> None:
        """Write ``line``, ``low.lines[index]`` (``fused``: what ``fusions`` planned for it).
        Every buffer its code names lives at least to this line, also one read through a
        name the line does not list (the bias a fused relu adds)."""
        self.at = index
        start = len(self.body)
        self._line(line, fused, index)
        for statement in self.body[start:]:
            for name in set(re.findall(r"[A-Za-z_]\w*", statement)):
                k = self.buffer_of.get(name)
                if k is not None:
                    self.buffers[k][1] = max(self.buffers[k][1], index)

    def _line(self, line: Line, fused: tuple[str, ...] | None, index: int) -> None:
        if line.kind == "comment":
            self.body.append(f"    /* {line.comment.replace('*/', '* /')} */")
            return
        if line.kind == "del":
            return
        if line.item is not None:  # one of a variadic rule's gradients (``_concatenate``)
            part = f"{line.args[0]}__{line.item}"
            if line.kind != "copy" or part not in self.arrays:
                raise Unsupported(line.name, "a rule giving every input's gradient at once")
            line = Line(**{**line.__dict__, "args": [part], "item": None})
        post = line.sum_to is not None or line.cast is not None or line.accumulate
        dst = self.temp() if post else line.target
        start = len(self.body)
        self.last_product = None
        if fused is not None:
            res = self.fused(line, fused, dst)
        elif line.kind == "copy":
            res = line.args[0]
        else:
            res = self.call(line, dst)
        if res is None:  # (a fused line that bound its target itself)
            return
        if (not post and res == line.target and self.last_product is not None
                and self.last_product[0] >= start):
            _, a, _, b, _ = self.last_product
            self.products[line.target] = (*self.last_product, index,
                                          {a, b, self.root.get(a, a), self.root.get(b, b)})
        if line.sum_to is not None:
            res = self.sum_to(res, tuple(line.sum_to))
        if line.cast is not None:
            new = self.temp()
            self.alloc(new, self.shape(res), np.dtype(line.cast))
            self.each(new, self.shape(res), f"({C_TYPES[np.dtype(line.cast)]})({{0}})", [res])
            res = new
        if line.accumulate:
            new = self.temp()
            self.alloc(new, self.shape(line.target), self.arrays[line.target].dtype)
            self.each(new, self.shape(line.target), "{0} + {1}", [line.target, res])
            res = new
        self.bind(line.target, res)

    def sum_to(self, src: str, shape: tuple[int, ...]) -> str:
        """``src`` summed down to ``shape`` (a broadcast's gradient)."""
        new = self.temp()
        self.alloc(new, shape, self.arrays[src].dtype)
        self.body.append(f"    for (int64_t i = 0; i < {math.prod(shape)}; i++) {new}[i] = 0;")
        full = self.shape(src)
        nd = len(full)
        padded = (1,) * (nd - len(shape)) + shape
        self.body.append(f"    {_loops(full)}{new}[{_index(padded, full)}] += "
                         f"{src}[{_index(full, full)}];")
        return new

    def call(self, line: Line, dst: str) -> str:
        op, i = roles().get(id(line.fn), (None, None))
        if op is None and line.fn in COMPARISONS and not line.attrs and len(line.args) == 2:
            return COMPARISONS[line.fn](self, line.name, line.args, dst)
        if op is None:
            raise Unsupported(line.name, "not an op table function")
        emit = EMITTERS.get(op.name)
        if emit is None:
            raise Unsupported(op.name, "no C loops")
        return emit(self, op.name, i, line.args, dict(line.attrs or {}), dst)

    def fused(self, line: Line, plan: tuple[str, ...], dst: str) -> str | None:
        """A line that ``fusions`` changed (its checks were made there and by ``call``)."""
        kind, *names = plan
        a = line.args
        if kind == "no_bias":  # linear's product alone: the relu after it adds the bias
            x, w = a[0], a[1]
            _linear_checks(self, "linear", x, w, a[2:])
            self.alloc(dst, (self.shape(x)[0], self.shape(w)[0]), self.arrays[x].dtype)
            self.product(dst, x, False, w, True)
            return dst
        if kind == "bias_relu":  # written over the layer's result, then it is the relu's
            x, bias = a[0], names[0]
            self.dtype_of([x, bias], "relu")
            cols = self.shape(x)[1]
            decl, p = self.noalias([x], [bias])
            self.body.append(f"    {{ {decl} for (int64_t i = 0; i < {self.shape(x)[0]}; i++) "
                             f"for (int64_t j = 0; j < {cols}; j++) {{ {self.ctype(x)} v = "
                             f"{p[x]}[i * {cols} + j] + {p[bias]}[j]; {p[x]}[i * {cols} + j] = "
                             f"v < 0 ? 0 : v; }} }}")
            return x
        if kind == "relu_":
            self.dtype_of([a[0]], "relu")
            self.each(a[0], self.shape(a[0]), "{0} < 0 ? 0 : {0}", [a[0]])
            return a[0]
        if kind == "relu_grad_":
            self.dtype_of([a[0], a[1]], "relu")
            self.each(a[0], self.shape(a[0]), RELU_GRAD, [a[0], a[1]])
            return a[0]
        if kind == "relu_grad_sums":  # relu's rule and the column sums of its result
            g, out = a[0], a[1]
            sums, how = names
            self.dtype_of([g, out], "relu")
            if how == "in_place":
                self.bind(line.target, g)
            else:
                self.alloc(line.target, self.shape(g), self.arrays[g].dtype)
            self.alloc(sums, (self.shape(g)[1],), self.arrays[g].dtype)
            rows, cols = self.shape(g)
            decl, p = self.noalias([line.target, sums], [g, out])
            t, ij = self.ctype(line.target), f"[i * {cols} + j]"
            rule = self.typed(RELU_GRAD, line.target).format(p[g] + ij, p[out] + ij)
            r, sm = p[line.target], p[sums]
            self.body.append(
                f"    {{ {decl} for (int64_t j = 0; j < {cols}; j++) {sm}[j] = 0; "
                f"for (int64_t i = 0; i < {rows}; i++) for (int64_t j = 0; j < {cols}; "
                f"j++) {{ {t} v = {rule}; {r}{ij} = v; {sm}[j] += v; }} }}")
            return None
        return names[0]  # "sums": the column sums computed with relu's rule

    # ------------------------------------------------------------------ the function
    def text(self, returns: tuple[str, list[str], list[bool], list[str] | None],
             updates: list[tuple[str, str, int]] = (), direct: bool = False
             ) -> tuple[str, dict[str, Any]]:
        """The C source of one variant, and how ``c_build.step_function`` calls it: its
        arrays in the order the step takes them ((name, stand-in, whether the step writes
        it)), how many of them are the step's inputs, the names of the optimizer's buffers
        and coefficients the caller passes after those, how many gradients and extra outputs
        it returns. ``updates`` and ``direct`` as in ``numba_backend.Source.text``."""
        loss, grads, _, aux = returns
        slots = sorted({s for *_, s in updates})
        arrays: list[tuple[str, np.ndarray, bool]] = [
            (n, self.arrays[n], direct and any(n == p for _, p, _ in updates))
            for n in self.inputs]
        scalars: list[str] = []
        extra: list[str] = []
        for s in slots:
            if not direct:
                p = next(p for _, p, t in updates if t == s)
                arrays.append((f"u{s}", self.arrays[p], True))
                extra.append(f"u{s}")
            scalars += [f"al{s}", f"be{s}"]
            extra += [f"al{s}", f"be{s}"]
        outs = [loss, *grads, *(aux or ())]
        for k, n in enumerate(outs):
            arrays.append((f"gg_out{k}", self.arrays[n], True))
        body, tail = list(self.body), []
        for g, p, s in updates:
            c = p if direct else f"u{s}"
            fold = self.fold(g, p)
            if fold is None:
                t = self.ctype(p)
                tail.append(f"    for (int64_t i = 0; i < {self.arrays[p].size}; i++) {c}[i] = "
                            f"({t})(be{s} == 0 ? al{s} * {g}[i] : al{s} * {g}[i] + be{s} * "
                            f"{c}[i]);  /* update {p} */")
            else:
                k, a, ta, b, tb = fold
                saved = list(self.body)
                self.body = []
                self.product(c, a, ta, b, tb, beta=f"be{s}", alpha=f"al{s}")
                note = f"  /* update {p} in ∂L/∂{p}'s product */"
                self.body, body[k] = saved, self.body[0] + note
        for k, n in enumerate(outs):
            tail.append(f"    memcpy(gg_out{k}, {n}, {self.arrays[n].nbytes});")
        # A buffer nothing reads or writes (a gradient whose product now updates the
        # parameter instead) takes no memory: its line goes.
        used: set[str] = set()
        for statement in (*body, *tail):
            made = re.match(r"    (\w+) = \(\w+ \*\)gg_at\(ws, @\d+@\);$", statement)
            found = set(re.findall(r"[A-Za-z_]\w*", statement))
            used |= found - {made.group(1)} if made else found
        unused = {k for k, b in enumerate(self.buffers) if not b[3] & used}
        body = [b for b in body if not any(f"@{k}@" in b for k in unused)]
        offsets, size = self.layout({*outs, *(g for g, _, _ in updates)}, unused)
        body = [re.sub(r"@(\d+)@", lambda m: str(offsets[int(m.group(1))]), b) for b in body]
        decl = [f"    {t} *{n} = 0;" for n, t in self.declared.items() if n not in self.inputs]
        unpack = [f"    {C_TYPES[a.dtype]} *{n} = ({C_TYPES[a.dtype]} *)gg_arrays[{k}];"
                  for k, (n, a, _) in enumerate(arrays)]
        unpack += [f"    const double {n} = gg_scalars[{k}];" for k, n in enumerate(scalars)]
        sizes = ", ".join(str(-1 - a.nbytes if w else a.nbytes) for _, a, w in arrays)
        text = "\n".join([
            c_build.PRELUDE,
            f"GG_EXPORT const long long gg_sizes[] = {{{sizes or 0}}};",
            f"#define GG_WORKSPACE {max(size, ALIGN)}",
            c_build.WORKSPACE,
            "GG_EXPORT int gg_step(char **gg_arrays, const double *gg_scalars) {",
            *unpack, *decl,
            "    int gg_rc = 0;",
            "    char *ws = gg_workspace_take();",
            "    if (!ws) return 2;",
            *body, *tail,
            "gg_done:",
            "    gg_workspace_give(ws);",
            "    return gg_rc;",
            "}", ""])
        return text, {"arrays": arrays, "inputs": len(self.inputs), "extra": extra,
                      "outs": (len(grads), None if aux is None else len(aux))}

    def layout(self, kept: set[str], unused: set[int] = frozenset()
               ) -> tuple[dict[int, int], int]:
        """Each buffer's offset in the workspace, and its size: two buffers may share memory
        when one's last line comes before the other's first (a line that reads one array
        while it writes another never has them share memory). ``kept``: names read at the end
        (the arrays returned, the gradients of the updates at the end), whose buffers live to
        the end; ``unused``: buffers that take no place. Largest first, each at the lowest
        offset clear of the placed buffers it lives beside (greedy by size: the MLP at batch
        1024 takes 8.39 MB, the buffers alive on its busiest line, where placing them in
        order of their first line took 8.47)."""
        last: dict[str, int] = {}
        for i, line in enumerate(self.low.lines):
            for n in line.names():
                last[n] = i
        end = len(self.low.lines) + 1
        lives = {k: (first, end if names & kept
                     else max([stop, *(last.get(n, -1) for n in names)]), size)
                 for k, (first, stop, size, names) in enumerate(self.buffers) if k not in unused}
        placed: list[tuple[int, int, int, int]] = []  # (offset, bytes, first line, last line)
        offsets: dict[int, int] = {}
        for k in sorted(lives, key=lambda k: (-lives[k][2], lives[k][0], k)):
            first, stop, size = lives[k]
            offset = 0
            for o, sz in sorted((o, sz) for o, sz, f, st in placed if st >= first and f <= stop):
                if offset + size <= o:
                    break
                offset = max(offset, o + sz)
            offsets[k] = offset
            placed.append((offset, size, first, stop))
        return offsets, max((o + sz for o, sz, _, _ in placed), default=0)

    def fold(self, g: str, p: str) -> tuple[int, str, bool, str, bool] | None:
        """Where ``p``'s update may run inside its gradient's product (the numba back end's
        rule, ``numba_backend.Source.fold``): (body index, a, ta, b, tb), or None. Not where
        an operand is ``p`` or named ``p``'s array then (BLAS would write what it reads)."""
        if g not in self.products:
            return None
        k, a, ta, b, tb, i, operands = self.products[g]
        lines = self.low.lines
        if any(g in line.names() for j, line in enumerate(lines)
               if j != i and line.kind != "del"):
            return None
        if p in operands or not unread_after(lines[i + 1:], p, self.arrays[p], self.held,
                                           self.low.returns.names()):
            return None
        return k, a, ta, b, tb


def _loops(shape: tuple[int, ...]) -> str:
    """Nested C loops over ``shape``, with the counters i0, i1, ... that ``_index`` reads."""
    return "".join(f"for (int64_t i{k} = 0; i{k} < {n}; i{k}++) " for k, n in enumerate(shape))


def _index(shape: tuple[int, ...], full: tuple[int, ...]) -> str:
    """The flat index into a C-ordered array of ``shape`` (broadcast to ``full``) at the
    loop counters i0, i1, ... over ``full``."""
    strides = _strides(shape)
    terms = [f"i{k} * {st}" if st != 1 else f"i{k}" for k, (n, st) in
             enumerate(zip(shape, strides)) if n != 1 and full[k] != 1]
    return " + ".join(terms) or "0"


# =========================================================================== emitters
def _binary(fwd: str, rules: tuple[str, str]) -> Callable[..., str]:
    """forms over (a, b) for the forward, (g, out, a, b) for the rules; an operand may be a
    bool array (a mask: NumPy and C both take it as 0 or 1 of the other's dtype)"""
    def emit(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
        no_attrs(op, attrs)
        names = args if i < 0 else [args[0], *args[2:]]
        dt = src.dtype_of([n for n in names if src.arrays[n].dtype != np.bool_] or names, op)
        form = fwd if i < 0 else rules[i]
        if form == "{0}":
            return args[0]  # (the incoming gradient itself, as in the NumPy rule)
        shape = np.broadcast_shapes(*map(src.shape, args)) if i < 0 else src.shape(args[1])
        src.alloc(dst, shape, dt)
        src.each(dst, shape, form, args)
        return dst
    return emit


def _unary(fwd: str, rule: str) -> Callable[..., str]:
    def emit(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
        no_attrs(op, attrs)
        src.dtype_of(args if i < 0 else args[:2], op)
        x = args[0] if i < 0 else args[1]
        src.alloc(dst, src.shape(x), src.arrays[x].dtype)
        src.each(dst, src.shape(x), fwd if i < 0 else rule, args[:1] if i < 0 else args[:2])
        return dst
    return emit


def _unary_x(fwd: str, rule: str) -> Callable[..., str]:
    """An elementwise op whose rule reads its input: forms over (x) and (g, x); ``{t}`` is
    the element type."""
    def emit(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
        no_attrs(op, attrs)
        names = [args[0]] if i < 0 else [args[0], args[2]]
        src.dtype_of(names, op)
        x = names[-1]
        src.alloc(dst, src.shape(x), src.arrays[x].dtype)
        src.each(dst, src.shape(x), (fwd if i < 0 else rule).replace("{t}", src.ctype(x)),
                 names)
        return dst
    return emit


def _bound(op: str, value: Any, dtype: np.dtype) -> str | None:
    """A clip bound as a C constant of ``dtype`` (the value NumPy 2 compares with: the Python
    number made that dtype), or None for no bound."""
    if value is None:
        return None
    if not isinstance(value, int | float | np.integer | np.floating) or isinstance(value, bool):
        raise Unsupported(op, f"a bound of type {type(value).__name__} (the loops take numbers)")
    v = float(dtype.type(value))
    if math.isnan(v):
        raise Unsupported(op, "a NaN bound")
    if math.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    return f"({C_TYPES[dtype]}){v.hex()}"


def _clip(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
    no_attrs(op, attrs, {"lo", "hi"})
    names = [args[0]] if i < 0 else [args[0], args[2]]
    dt = src.dtype_of(names, op)
    lo, hi = _bound(op, attrs.get("lo"), dt), _bound(op, attrs.get("hi"), dt)
    x = names[-1]
    src.alloc(dst, src.shape(x), dt)
    if i < 0:  # np.clip: max(x, lo) then min(…, hi); a NaN stays NaN (its tests are false)
        form = "{0}"
        if lo is not None:
            form = f"({form} < {lo} ? {lo} : {form})"
        if hi is not None:
            form = f"({form} > {hi} ? {hi} : {form})"
    else:  # g·(lo ≤ x ≤ hi): a NaN x gives g·0
        # (& of the two tests, not &&: no branch, so that the loop vectorizes)
        inside = " & ".join([*([f"({{1}} >= {lo})"] if lo else []),
                             *([f"({{1}} <= {hi})"] if hi else [])]) or "1"
        form = f"{{0}} * gg_one_t({inside})"
    src.each(dst, src.shape(x), form, names)
    return dst


def _where(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
    no_attrs(op, attrs)
    cond, a, b = args[-3:]
    if src.arrays[cond].dtype != np.bool_:
        raise Unsupported(op, f"a condition of dtype {src.arrays[cond].dtype} (not bool)")
    if i < 0:
        dt = src.dtype_of([a, b], op)
        shape = np.broadcast_shapes(*map(src.shape, (cond, a, b)))
        src.alloc(dst, shape, dt)
        src.each(dst, shape, "gg_pick_t({0}, {1}, {2})", [cond, a, b])
        return dst
    g = args[0]
    dt = src.dtype_of([g], op)
    shape = src.shape(args[1])  # (out's: np.where(cond, g, 0) broadcasts cond with g)
    src.alloc(dst, shape, dt)
    zero = f"({C_TYPES[dt]})0"
    src.each(dst, shape, f"gg_pick_t({{1}}, {{0}}, {zero})" if i == 1
             else f"gg_pick_t({{1}}, {zero}, {{0}})", [g, cond])
    return dst


def _comparison(symbol: str) -> Callable[..., str]:
    """A comparison's boolean result (a NumPy ufunc the graph records without a rule)."""
    def emit(src: CSource, op: str, args: list[str], dst: str) -> str:
        src.dtype_of(args, op)
        shape = np.broadcast_shapes(*map(src.shape, args))
        src.alloc(dst, shape, np.dtype(np.bool_))
        src.each(dst, shape, f"{{0}} {symbol} {{1}}", args)
        return dst
    return emit


COMPARISONS: dict[Any, Callable[..., str]] = {
    np.greater: _comparison(">"), np.less: _comparison("<"),
    np.greater_equal: _comparison(">="), np.less_equal: _comparison("<="),
    np.equal: _comparison("=="), np.not_equal: _comparison("!="),
}


def _linear_checks(src: CSource, op: str, x: str, w: str, bias: list[str]) -> None:
    if len(src.shape(x)) != 2 or len(src.shape(w)) != 2 or (
            bias and src.shape(bias[0]) != src.shape(w)[:1]):
        raise Unsupported(op, f"an input of shape {src.shape(x)} (the loops take 2-D)")
    src.dtype_of([x, w, *bias], op)


def _linear(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
    no_attrs(op, attrs)
    if len(src.shape(args[0] if i < 0 else args[2])) not in (0, 2):
        return _linear_rows(src, op, i, args, attrs, dst)
    if i < 0:
        x, w, *bias = args
        _linear_checks(src, op, x, w, bias)
        src.alloc(dst, (src.shape(x)[0], src.shape(w)[0]), src.arrays[x].dtype)
        src.product(dst, x, False, w, True)
        if bias:
            cols = src.shape(w)[0]
            src.body.append(f"    for (int64_t i = 0; i < {src.shape(x)[0]}; i++) for "
                            f"(int64_t j = 0; j < {cols}; j++) {dst}[i * {cols} + j] += "
                            f"{bias[0]}[j];")
        return dst
    g, _, x, w, *bias = args
    _linear_checks(src, op, x, w, bias)
    src.dtype_of([g, x], op)  # (the products take one dtype)
    if i == 0:
        src.alloc(dst, src.shape(x), src.arrays[x].dtype)
        src.product(dst, g, False, w, False)
    elif i == 1:
        src.alloc(dst, src.shape(w), src.arrays[x].dtype)
        src.product(dst, g, True, x, False)
    else:
        src.alloc(dst, src.shape(w)[:1], src.arrays[x].dtype)
        src.column_sums(dst, g)
    return dst


def _linear_rows(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str
                 ) -> str:
    """A linear layer on one sample (in,) or on more than 2 dimensions (a batch of
    sequences): the same products on x seen as rows (..., in) → (rows, in), as the op
    table's rules take it (``ops._rows``); every array here is C-ordered, so the views copy
    nothing."""
    x = args[0] if i < 0 else args[2]
    shape = src.shape(x)
    rows = math.prod(shape[:-1])
    x2 = src.view(x, (rows, shape[-1]))
    if i < 0:
        w, *bias = args[1:]
        out = _linear(src, op, -1, [x2, w, *bias], attrs, src.temp())
        return src.view(out, (*shape[:-1], src.shape(w)[0]))
    g, out, _, w, *bias = args
    g2 = src.view(g, (rows, src.shape(g)[-1]))
    if i == 0:
        res = _linear(src, op, 0, [g2, out, x2, w, *bias], attrs, src.temp())
        return src.view(res, shape)
    return _linear(src, op, i, [g2, out, x2, w, *bias], attrs, dst)


def _matmul(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
    no_attrs(op, attrs)
    g, _, a, b = (None, None, *args) if i < 0 else args
    if len(src.shape(b)) > 2:
        return _matmul_stack(src, op, i, args, dst)
    if len(src.shape(a)) != 2 or len(src.shape(b)) != 2:
        return _matmul_rows(src, op, i, args, dst)
    src.dtype_of([a, b] if g is None else [g, a, b], op)
    shape = ((src.shape(a)[0], src.shape(b)[1]), src.shape(a), src.shape(b))[i + 1]
    src.alloc(dst, shape, src.arrays[a].dtype)
    if i < 0:
        src.product(dst, a, False, b, False)
    elif i == 0:
        src.product(dst, g, False, b, True)
    else:
        src.product(dst, a, True, g, False)
    return dst


def _matmul_rows(src: CSource, op: str, i: int, args: list[str], dst: str) -> str:
    """a @ b for a of any dimensions and b a matrix or a vector (NumPy's rules: a vector a
    is one row, a vector b one column, dropped from the result): the 2-D product on views
    (a as rows, b as (k, m)), and its rules on the same views. (A stack of matrices for b:
    ``_matmul_stack``.)"""
    g, _, a, b = (None, None, *args) if i < 0 else args
    sa, sb = src.shape(a), src.shape(b)
    if not sa or len(sb) not in (1, 2) or sa[-1] != sb[0]:
        raise Unsupported(op, f"shapes {sa} @ {sb} (the loops take a stack of rows @ a "
                              f"matrix or a vector)")
    src.dtype_of([a, b] if g is None else [g, a, b], op)
    rows, k, m = math.prod(sa[:-1]), sa[-1], sb[1] if len(sb) == 2 else 1
    a2, b2 = src.view(a, (rows, k)), src.view(b, (k, m))
    dt = src.arrays[a].dtype
    if i < 0:
        out = src.temp()
        src.alloc(out, (rows, m), dt)
        src.product(out, a2, False, b2, False)
        return src.view(out, (*sa[:-1], *sb[1:]))
    g2 = src.view(g, (rows, m))
    res = src.temp()
    if i == 0:
        src.alloc(res, (rows, k), dt)
        src.product(res, g2, False, b2, True)
        return src.view(res, sa)
    src.alloc(res, (k, m), dt)
    src.product(res, a2, True, g2, False)
    return src.view(res, sb)


def _matmul_stack(src: CSource, op: str, i: int, args: list[str], dst: str) -> str:
    """a @ b for b a stack of matrices and a a matrix or a stack (NumPy's rules: the stacks'
    leading axes broadcast): one 2-D product per matrix of the broadcast stack, on pointers
    into a, b and the result; the rules' results have the broadcast stack's shape (the
    line's ``sum_to`` then sums a broadcast operand's gradient down to its shape)."""
    g, _, a, b = (None, None, *args) if i < 0 else args
    sa, sb = src.shape(a), src.shape(b)
    if len(sa) < 2 or sa[-1] != sb[-2]:
        raise Unsupported(op, f"shapes {sa} @ {sb} (the loops take a matrix or a stack of "
                              f"matrices @ a stack of matrices)")
    dt = src.dtype_of([a, b] if g is None else [g, a, b], op)
    try:
        batch = tuple(np.broadcast_shapes(sa[:-2], sb[:-2]))
    except ValueError:
        raise Unsupported(op, f"stacks {sa[:-2]} and {sb[:-2]} do not broadcast") from None
    n, k, m = sa[-2], sa[-1], sb[-1]
    # (the result's matrix, then each operand's: name, matrix shape, transposed)
    forms = ({"out": (n, m), "a": (a, (n, k), False), "b": (b, (k, m), False)},
             {"out": (n, k), "a": (g, (n, m), False), "b": (b, (k, m), True)},
             {"out": (k, m), "a": (a, (n, k), True), "b": (g, (n, m), False)})[i + 1]
    src.alloc(dst, (*batch, *forms["out"]), dt)
    heads, mats = [], {}
    for role in ("a", "b"):  # (matrix q of the broadcast stack: its index in the operand's)
        name, shape, _ = forms[role]
        stack = (1,) * (len(batch) - (src.arrays[name].ndim - 2)) + src.shape(name)[:-2]
        index = [f"(q / {math.prod(batch[d + 1:])}) % {batch[d]} * {math.prod(stack[d + 1:])}"
                 for d in range(len(batch)) if stack[d] != 1]
        mats[role], head = _matrix(src, name, shape, dt, True, f"({' + '.join(index) or 0})")
        heads.append(head)
    out, head = _matrix(src, dst, forms["out"], dt, False, "q")
    _per_sample(src, math.prod(batch), 1, [*heads, head], lambda: src.product(
        out, mats["a"], forms["a"][2], mats["b"], forms["b"][2]))
    return dst


def _mse(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
    mean = loss_reduction(op, attrs)
    g, _, x, y = (None, None, *args) if i < 0 else args
    if src.shape(x) != src.shape(y):
        raise Unsupported(op, f"input {src.shape(x)} and target {src.shape(y)} differ")
    src.dtype_of([x, y] if g is None else [g, x, y], op)
    n = src.arrays[x].size
    t = C_TYPES[src.arrays[x].dtype]
    if i < 0:
        src.alloc(dst, (), src.arrays[x].dtype)
        src.body.append(f"    {{ double s = 0; for (int64_t i = 0; i < {n}; i++) {{ {t} d = "
                        f"{x}[i] - {y}[i]; s += d * d; }} {dst}[0] = ({t})(s"
                        f"{f' / {n}' if mean else ''}); }}")
        return dst
    src.alloc(dst, src.shape(x), src.arrays[x].dtype)
    scale = f"{1 - 2 * i}.0 * {g}[0] * {f'(2.0 / {n})' if mean else '2.0'}"
    src.body.append(f"    {{ double k = {scale}; for (int64_t i = 0; i < {n}; i++) {dst}[i] = "
                    f"({t})(k * ({x}[i] - {y}[i])); }}")
    return dst


def _cross_entropy(src: CSource, op: str, i: int, args: list[str], attrs: dict,
                   dst: str) -> str:
    mean = loss_reduction(op, attrs)
    g, _, z, y = (None, None, *args) if i < 0 else args
    if len(src.shape(z)) != 2 or src.shape(y) != src.shape(z)[:1] \
            or src.arrays[y].dtype.kind not in "iu" or i > 0:
        raise Unsupported(op, f"logits {src.shape(z)} with targets {src.shape(y)} "
                              f"{src.arrays[y].dtype} (the loops take (N, C) and N labels)")
    src.dtype_of([z] if g is None else [g, z], op)
    src.ctype(y)
    n, c = src.shape(z)
    t = C_TYPES[src.arrays[z].dtype]
    # a class index out of range: the step declines (nothing the caller holds is written
    # yet), and the NumPy replay raises the engine's error
    src.body.append(f"    for (int64_t i = 0; i < {n}; i++) if ({y}[i] < 0 || {y}[i] >= {c}) "
                    f"{{ gg_rc = 1; goto gg_done; }}")
    row_max = (f"{t} m = {z}[i * {c}]; for (int64_t j = 1; j < {c}; j++) m = {z}[i * {c} + j] "
               f"> m ? {z}[i * {c} + j] : m;")
    if i < 0:
        # The forward also keeps what the rule would compute again, with the rule's roundings:
        # each exp(z − max) in z's dtype, and their sum per row (in double, as the rule adds
        # them). The rule is then one scaling pass, no exp (57 against 3 µs for 1024 × 10).
        kept = src.alloc(src.temp(), (n, c), src.arrays[z].dtype)
        sums = src.alloc(src.temp(), (n,), np.dtype(np.float64))
        src.softmax_parts[(z, y)] = (kept, sums)
        src.alloc(dst, (), src.arrays[z].dtype)
        src.body.append(
            f"    {{ double s = 0; for (int64_t i = 0; i < {n}; i++) {{ {row_max} double e = 0, "
            f"r = 0; for (int64_t j = 0; j < {c}; j++) {{ double x = exp((double)({z}[i * {c} "
            f"+ j] - m)); {t} v = ({t})x; {kept}[i * {c} + j] = v; e += x; r += v; }} "
            f"{sums}[i] = r; s += m + log(e) - {z}[i * {c} + {y}[i]]; }} {dst}[0] = ({t})(s"
            f"{f' / {n}' if mean else ''}); }}")
        return dst
    src.alloc(dst, (n, c), src.arrays[z].dtype)
    scale = f"(double){g}[0]{f' / {n}' if mean else ''}"
    if (z, y) in src.softmax_parts:
        kept, sums = src.softmax_parts[(z, y)]
        src.body.append(
            f"    {{ double k = {scale}; for (int64_t i = 0; i < {n}; i++) {{ double r = k / "
            f"{sums}[i]; for (int64_t j = 0; j < {c}; j++) {dst}[i * {c} + j] = ({t})({kept}"
            f"[i * {c} + j] * r); {dst}[i * {c} + {y}[i]] = ({t})({dst}[i * {c} + {y}[i]] - k);"
            f" }} }}")
        return dst
    src.body.append(
        f"    {{ double k = {scale}; for (int64_t i = 0; i < {n}; i++) {{ {row_max} "
        f"double e = 0; for (int64_t j = 0; j < {c}; j++) {{ {t} v = ({t})exp((double)({z}[i * "
        f"{c} + j] - m)); {dst}[i * {c} + j] = v; e += v; }} double r = k / e; for (int64_t j = "
        f"0; j < {c}; j++) {dst}[i * {c} + j] = ({t})({dst}[i * {c} + j] * r); "
        f"{dst}[i * {c} + {y}[i]] = ({t})({dst}[i * {c} + {y}[i]] - k); }} }}")
    return dst


def _axes(op: str, nd: int, axis: Any) -> tuple[int, ...]:
    """``axis`` (an int, a tuple or list of them, or None for every axis) as sorted axes,
    each in 0 ≤ a < nd."""
    if axis is None:
        return tuple(range(nd))
    axes = axis if isinstance(axis, tuple | list) else (axis,)
    if not all(isinstance(a, int | np.integer) and -nd <= a < nd for a in axes):
        raise Unsupported(op, f"axis={axis!r} on {nd} dimensions")
    return tuple(sorted({int(a) % nd for a in axes}))


def _reduced_axes(op: str, attrs: dict, nd: int) -> tuple[int, ...]:
    """The axes a reduction's attributes name (every one for axis=None)."""
    no_attrs(op, attrs, {"axis", "keepdims"})
    return _axes(op, nd, attrs.get("axis"))


def _reduce_axes(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str,
                 divide: bool) -> str:
    """A sum or mean over some axes: each element added into its output element in double
    (NumPy adds in its dtype, pairwise along a contiguous axis: the same value to rounding);
    the rule spreads the gradient back (over the count, for a mean)."""
    x = args[0] if i < 0 else args[2]
    dt = src.dtype_of([x] if i < 0 else [args[0], x], op)
    shape = src.shape(x)
    axes = _reduced_axes(op, attrs, len(shape))
    kept = tuple(1 if k in axes else n for k, n in enumerate(shape))  # (keepdims' shape)
    count = math.prod(shape[k] for k in axes)
    t = C_TYPES[dt]
    if i >= 0:  # the gradient, seen with the kept dimensions, broadcast back over x
        src.alloc(dst, shape, dt)
        g = src.view(args[0], kept)
        src.each(dst, shape, f"{{0}} / ({t}){count}" if divide else "{0}", [g])
        return dst
    out = tuple(n for k, n in enumerate(shape) if k not in axes)
    src.alloc(dst, kept if attrs.get("keepdims") else out, dt)
    acc = src.alloc(src.temp(), (max(math.prod(kept), 1),), np.dtype(np.float64))
    total = math.prod(kept)
    src.body.append(f"    for (int64_t j = 0; j < {total}; j++) {acc}[j] = 0;")
    src.body.append(f"    {_loops(shape)}{acc}[{_index(kept, shape)}] += "
                    f"{x}[{_index(shape, shape)}];")
    per = f" / {count}" if divide else ""
    src.body.append(f"    for (int64_t j = 0; j < {total}; j++) {dst}[j] = ({t})({acc}[j]{per});")
    return dst


def _reduce(divide: bool) -> Callable[..., str]:
    def emit(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
        if attrs.get("axis") is not None or attrs.get("keepdims"):  # some axes, or kept
            return _reduce_axes(src, op, i, args, attrs, dst, divide)
        over_every_element(op, attrs)
        x = args[0] if i < 0 else args[2]
        src.dtype_of([x] if i < 0 else [args[0], x], op)
        n = src.arrays[x].size
        t = C_TYPES[src.arrays[x].dtype]
        per = f" / {n}" if divide else ""
        if i < 0:
            src.alloc(dst, (), src.arrays[x].dtype)
            src.body.append(f"    {{ double s = 0; for (int64_t i = 0; i < {n}; i++) s += "
                            f"{x}[i]; {dst}[0] = ({t})(s{per}); }}")
        else:
            src.alloc(dst, src.shape(x), src.arrays[x].dtype)
            src.body.append(f"    {{ {t} v = ({t})((double){args[0]}[0]{per}); for (int64_t "
                            f"i = 0; i < {n}; i++) {dst}[i] = v; }}")
        return dst
    return emit


def _reshape(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
    if i < 0:  # the recorded result's shape (the attribute may hold a -1)
        return src.view(args[0], src.shape(dst))
    return src.view(args[0], src.shape(args[2]))  # the gradient, in the input's shape


def _concatenate(src: CSource, op: str, i: int, args: list[str], attrs: dict,
                 dst: str) -> str | None:
    """Copies of contiguous blocks: the inputs' into the result, or the gradient's back into
    one array per input (``{dst}__{k}``, which the item lines name)."""
    no_attrs(op, attrs, {"axis"})
    forward = i == -1  # (else EVERY_INPUT: the backward)
    parts = args if forward else args[2:]
    whole = None if forward else args[0]
    src.dtype_of(parts if whole is None else [whole, *parts], op)
    shapes = [src.shape(n) for n in parts]
    nd = len(shapes[0])
    if nd == 0 or any(len(s) != nd for s in shapes):
        raise Unsupported(op, f"inputs of shapes {shapes}")
    ax = attrs.get("axis", 0) % nd
    out_shape = (*shapes[0][:ax], sum(s[ax] for s in shapes), *shapes[0][ax + 1:])
    outer = math.prod(out_shape[:ax])
    item = np.dtype(src.arrays[parts[0]].dtype).itemsize
    row = math.prod(out_shape[ax:])
    if forward:
        src.alloc(dst, out_shape, src.arrays[parts[0]].dtype)
    offset = 0
    for k, (n, s) in enumerate(zip(parts, shapes)):
        inner = math.prod(s[ax:])
        if forward:
            to, frm, at_to, at_frm = dst, n, f"o * {row} + {offset}", f"o * {inner}"
        else:
            to = src.alloc(f"{dst}__{k}", s, src.arrays[n].dtype)
            frm, at_to, at_frm = whole, f"o * {inner}", f"o * {row} + {offset}"
        src.body.append(f"    for (int64_t o = 0; o < {outer}; o++) memcpy({to} + {at_to}, "
                        f"{frm} + {at_frm}, {inner * item});")
        offset += inner
    return dst if forward else None


def _axis_block(op: str, shape: tuple[int, ...], axis: Any) -> tuple[int, int, int]:
    """(outer, n, inner): x seen as (outer, n, inner) with the reduced axes in the middle,
    for ``axis`` one axis, consecutive axes or None (every axis): C-ordered, no copy."""
    return _block(shape, *_block_axes(op, shape, axis))


def _block(shape: tuple[int, ...], first: int, last: int) -> tuple[int, int, int]:
    return (math.prod(shape[:first]), math.prod(shape[first:last + 1]),
            math.prod(shape[last + 1:]))


def _block_axes(op: str, shape: tuple[int, ...], axis: Any) -> tuple[int, int]:
    """The first and last of ``axis``'s axes, which must be consecutive."""
    axes = _axes(op, len(shape), axis)
    if not axes or axes != tuple(range(axes[0], axes[-1] + 1)):
        raise Unsupported(op, f"axis={axis!r} on shape {shape} (the loops take one axis or "
                              f"consecutive ones)")
    return axes[0], axes[-1]


# element (o, j, k) of a block: j along the reduced axes; the loops over (o, k)
_AT = "(o * {n} + j) * {inner} + k"
_ROWS = "for (int64_t o = 0; o < {outer}; o++) for (int64_t k = 0; k < {inner}; k++)"


def _lse(x: str, t: str, at: str, n: int) -> str:
    """C statements giving ``lse``, log Σⱼ exp(x) over one (o, k) (NumPy's: the maximum
    subtracted first, 0 where it is not finite; the sum in double)."""
    return (f"int64_t j = 0; {t} m = {x}[{at}]; for (j = 1; j < {n}; j++) m = {x}[{at}] > m ? "
            f"{x}[{at}] : m; if (!isfinite(m)) m = 0; double s = 0; for (j = 0; j < {n}; j++) "
            f"s += exp({x}[{at}] - m); {t} lse = ({t})(log(s) + m);")


def _logsumexp(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
    """log Σ exp over one axis, consecutive axes or every one (``_lse``); its rule,
    g·exp(x − out)."""
    no_attrs(op, attrs, {"axis", "keepdims"})
    x = args[0] if i < 0 else args[2]
    shape = src.shape(x)
    if not shape and attrs.get("axis") is not None:
        raise Unsupported(op, f"axis={attrs.get('axis')!r} on a 0-d input")
    first, last = _block_axes(op, shape, attrs.get("axis")) if shape else (0, -1)
    outer, n, inner = _block(shape, first, last)
    dt = src.dtype_of([x] if i < 0 else [args[0], args[1], x], op)
    t = C_TYPES[dt]
    at, rows = _AT.format(n=n, inner=inner), _ROWS.format(outer=outer, inner=inner)
    if i < 0:
        src.alloc(dst, (*shape[:first], *((1,) * (last + 1 - first) if attrs.get("keepdims")
                                          else ()), *shape[last + 1:]), dt)
        src.body.append(f"    {rows} {{ {_lse(x, t, at, n)} {dst}[o * {inner} + k] = lse; }}")
        return dst
    g, out = args[0], args[1]
    src.alloc(dst, shape, dt)
    src.body.append(f"    {rows} for (int64_t j = 0; j < {n}; j++) {dst}[{at}] = "
                    f"{g}[o * {inner} + k] * exp({x}[{at}] - {out}[o * {inner} + k]);")
    return dst


def _log_softmax(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str
                 ) -> str:
    """x − logsumexp(x) along one axis (``_lse``); its rule, g − exp(out)·Σ g along it."""
    no_attrs(op, attrs, {"axis"})
    x = args[0] if i < 0 else args[2]
    shape = src.shape(x)
    axis = attrs.get("axis", -1)
    if not shape or not isinstance(axis, int | np.integer):
        raise Unsupported(op, f"axis={axis!r} on shape {shape}")
    outer, n, inner = _axis_block(op, shape, axis)
    dt = src.dtype_of([x] if i < 0 else [args[0], args[1]], op)
    t = C_TYPES[dt]
    src.alloc(dst, shape, dt)
    at, rows = _AT.format(n=n, inner=inner), _ROWS.format(outer=outer, inner=inner)
    if i < 0:
        src.body.append(f"    {rows} {{ {_lse(x, t, at, n)} for (j = 0; j < {n}; j++) "
                        f"{dst}[{at}] = {x}[{at}] - lse; }}")
        return dst
    g, out = args[0], args[1]
    src.body.append(
        f"    {rows} {{ int64_t j = 0; double s = 0; for (j = 0; j < {n}; j++) s += "
        f"{g}[{at}]; for (j = 0; j < {n}; j++) {dst}[{at}] = ({t})({g}[{at}] - exp({out}"
        f"[{at}]) * ({t})s); }}")
    return dst


def _broadcast_to(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str
                  ) -> str:
    """x copied out to ``shape``; the rule is the gradient itself (the line's ``sum_to``
    sums the broadcast dimensions away, as the engine does)."""
    no_attrs(op, attrs, {"shape"})
    if i >= 0:
        return args[0]
    x = args[0]
    src.ctype(x)
    shape = np.broadcast_shapes(src.shape(x), tuple(attrs.get("shape", ())))
    src.alloc(dst, shape, src.arrays[x].dtype)
    src.each(dst, shape, "{0}", [x])
    return dst


def _permute_copy(src: CSource, dst: str, x: str, dims: tuple[int, ...]) -> None:
    """dst ← x with its axes in the order ``dims`` (a copy: every array here is C-ordered)."""
    shape = src.shape(x)
    out = tuple(shape[d] for d in dims)
    strides = _strides(shape)
    at = " + ".join(f"i{k} * {strides[d]}" for k, d in enumerate(dims) if shape[d] != 1) or "0"
    src.body.append(f"    {_loops(out)}{dst}[{_index(out, out)}] = {x}[{at}];")


def _permute(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
    no_attrs(op, attrs, {"dims"})
    x = args[0] if i < 0 else args[2]
    nd = len(src.shape(x))
    dims = tuple(int(d) % nd for d in attrs.get("dims", ())) if nd else ()
    if sorted(dims) != list(range(nd)):
        raise Unsupported(op, f"dims={attrs.get('dims')!r} on {nd} dimensions")
    src.ctype(x)
    if i < 0:
        src.alloc(dst, tuple(src.shape(x)[d] for d in dims), src.arrays[x].dtype)
        _permute_copy(src, dst, x, dims)
    else:  # the gradient permuted back (the inverse permutation)
        src.alloc(dst, src.shape(x), src.arrays[args[0]].dtype)
        _permute_copy(src, dst, args[0], tuple(int(k) for k in np.argsort(dims)))
    return dst


TABLE_MAX = 65_536  # the most positions an indexing step writes out as a table in the source


def _getitem(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
    """x[index] (``_pick``)."""
    no_attrs(op, attrs, {"index"})
    return _pick(src, op, i, args, dst, lambda base: base[attrs.get("index")])


def _gather(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
    """x's elements at ``index`` along ``dim`` (``_pick``: the op table's own index grid)."""
    no_attrs(op, attrs, {"dim", "index"})
    if not isinstance(attrs.get("index"), np.ndarray):
        raise Unsupported(op, f"an index of type {type(attrs.get('index')).__name__}")
    index, dim = attrs["index"], attrs.get("dim", 0)
    return _pick(src, op, i, args, dst, lambda base: base[ops._gather_grid(index, dim)])


def _pick(src: CSource, op: str, i: int, args: list[str], dst: str,
          select: Callable[[np.ndarray], Any]) -> str:
    """The elements ``select`` picks from x, which the recording fixed: ``select`` is run
    on x's positions. Where it gives a view (ints, slices, None, ...), loops with the view's
    offset and strides; else (integer arrays) a table of the positions, written in the
    source, up to ``TABLE_MAX`` of them. The rule adds each gradient back at its position
    (a position read twice gets both)."""
    x = args[0] if i < 0 else args[2]
    shape = src.shape(x)
    src.ctype(x)
    base = np.arange(math.prod(shape), dtype=np.int64).reshape(shape)
    try:
        probe = select(base)
    except Exception as e:  # (the recording ran it: never here)
        raise Unsupported(op, "an index the loops cannot follow") from e
    out = probe.shape
    loops = _loops(out)
    if np.shares_memory(probe, base):  # a view: an offset and strides
        offset = int(probe.ravel()[0]) if probe.size else 0
        at = " + ".join([str(offset), *(f"i{k} * {st // 8}" for k, (n, st) in
                                        enumerate(zip(out, probe.strides)) if n != 1)])
        put = None
    elif probe.size <= TABLE_MAX:
        table = src.temp()
        at = f"{table}[{_index(out, out)}]"
        put = (f"static const int64_t {table}[{max(probe.size, 1)}] = "
               f"{{{', '.join(map(str, probe.ravel().tolist())) or '0'}}};")
    else:
        raise Unsupported(op, f"an index that reads {probe.size} positions (the table in the "
                              f"source takes {TABLE_MAX})")
    if i < 0:
        src.alloc(dst, out, src.arrays[x].dtype)
        src.body.append(f"    {{ {put or ''} {loops}{dst}[{_index(out, out)}] = {x}[{at}]; }}")
        return dst
    g = args[0]
    src.alloc(dst, shape, src.arrays[g].dtype)
    src.body.append(f"    {{ {put or ''} for (int64_t j = 0; j < {math.prod(shape)}; j++) "
                    f"{dst}[j] = 0; {loops}{dst}[{at}] += {g}[{_index(out, out)}]; }}")
    return dst


def _embedding(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str
               ) -> str:
    """weight's rows at ``indices`` (an argument of the step, so checked on every call: one
    out of range makes the step decline before it writes anything, and the NumPy replay
    gives the engine's error); its rule adds each row's gradient back to its row, none to
    ``padding_idx``'s."""
    no_attrs(op, attrs, {"padding_idx"})
    w, idx = args[-2:]
    if len(src.shape(w)) != 2 or src.arrays[idx].dtype.kind not in "iu":
        raise Unsupported(op, f"a weight of shape {src.shape(w)} with indices of dtype "
                              f"{src.arrays[idx].dtype}")
    dt = src.dtype_of([w] if i < 0 else [args[0], w], op)
    src.ctype(idx)
    (v, d), r = src.shape(w), src.arrays[idx].size
    if i < 0:
        src.alloc(dst, (*src.shape(idx), d), dt)
        src.body.append(f"    for (int64_t r = 0; r < {r}; r++) if ({idx}[r] < 0 || {idx}[r] >= "
                        f"{v}) {{ gg_rc = 1; goto gg_done; }}")
        src.body.append(f"    for (int64_t r = 0; r < {r}; r++) for (int64_t j = 0; j < {d}; "
                        f"j++) {dst}[r * {d} + j] = {w}[{idx}[r] * {d} + j];")
        return dst
    pad = attrs.get("padding_idx")
    if pad is not None and not isinstance(pad, int | np.integer):
        raise Unsupported(op, f"padding_idx={pad!r}")
    skip = f" || {idx}[r] == {int(pad)}" if pad is not None else ""
    src.alloc(dst, src.shape(w), dt)
    src.body.append(f"    for (int64_t j = 0; j < {v * d}; j++) {dst}[j] = 0;")
    src.body.append(f"    for (int64_t r = 0; r < {r}; r++) {{ if ({idx}[r] < 0 || {idx}[r] >= "
                    f"{v}{skip}) continue; for (int64_t j = 0; j < {d}; j++) {dst}[{idx}[r] * "
                    f"{d} + j] += {args[0]}[r * {d} + j]; }}")
    return dst


def _pairs(op: str, attrs: dict, *names: str) -> list[tuple[int, int]]:
    """The (height, width) attributes ``names`` of a recorded op: as recorded, else the op
    table's defaults (its forward's signature), so that the loops never restate them."""
    params = inspect.signature(ops.OPS[op].forward).parameters
    out = []
    for name in names:
        v = attrs.get(name, params[name].default)
        v = (v, v) if isinstance(v, int | np.integer) else tuple(v)
        if len(v) != 2 or not all(isinstance(k, int | np.integer) for k in v):
            raise Unsupported(op, f"{name}={attrs.get(name)!r}")
        out.append((int(v[0]), int(v[1])))
    return out


def _per_sample(src: CSource, count: int, groups: int, heads: list[str],
                body: Callable[[], None]) -> None:
    """``body``'s lines inside ``for (q = 0; q < count; q++) for (k = 0; k < groups; k++)``,
    after the declarations ``heads`` (pointers to sample or matrix q's and group k's
    matrices, ``_matrix``)."""
    src.body.append(f"    for (int64_t q = 0; q < {count}; q++) for (int64_t k = 0; k < "
                    f"{groups}; k++) {{ {' '.join(heads)}")
    body()
    src.body.append("    }")
    src.last_product = None  # (a product per sample: no optimizer's update goes inside)


def _matrix(src: CSource, base: str, shape: tuple[int, int], dt: np.dtype, const: bool,
            index: str) -> tuple[str, str]:
    """A name for the ``index``-th (shape) matrix of ``base`` (matrices one after another),
    and its declaration."""
    local = src.temp()
    src.arrays[local] = _like(shape, dt)
    return local, (f"{'const ' if const else ''}{C_TYPES[dt]} *{local} = {base} + {index} * "
                   f"{math.prod(shape)};")


def _conv2d(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
    """conv2d (x, w, b) and its rules, as the op table computes them (``_Convolution``): the
    input's conv2d_input(G, w), the weight's conv2d_weight(x, G), the bias's Σ over samples
    and positions (in double)."""
    x, w, b = args[-3:]
    if src.shape(b) != src.shape(w)[:1]:
        raise Unsupported(op, f"a bias of shape {src.shape(b)} for a weight of shape "
                              f"{src.shape(w)}")
    conv = _Convolution(src, op, attrs, src.shape(x), src.shape(w))
    if i < 0:
        return conv.forward(dst, x, w, b, [x, w, b])
    g = args[0]
    if i == 0:
        return conv.input(dst, g, w, [g, w])
    if i == 1:
        return conv.weight(dst, g, x, [g, x])
    dt = src.dtype_of([g, b], op)
    (n, o, oh, ow), t = src.shape(g), C_TYPES[dt]
    src.alloc(dst, (o,), dt)
    src.body.append(f"    for (int64_t r = 0; r < {o}; r++) {{ double s = 0; for (int64_t q = "
                    f"0; q < {n}; q++) for (int64_t j = 0; j < {oh * ow}; j++) s += {g}[(q * "
                    f"{o} + r) * {oh * ow} + j]; {dst}[r] = ({t})s; }}")
    return dst


def _conv2d_input(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str
                  ) -> str:
    """conv2d_input (G, w), the transposed convolution: conv2d's rule for its input, of the
    input's size ``size``; its rules: G's conv2d(H, w) without bias, w's conv2d_weight(H, G)
    (H: the gradient arriving)."""
    g, w = args[-2:]
    (h, wd), = _pairs(op, attrs, "size")
    x_shape = (src.shape(g)[0], src.shape(w)[1] * _groups(op, attrs), h, wd)
    conv = _Convolution(src, op, attrs, x_shape, src.shape(w))
    if i < 0:
        return conv.input(dst, g, w, [g, w])
    if i == 0:
        return conv.forward(dst, args[0], w, None, [args[0], w])
    return conv.weight(dst, g, args[0], [args[0], g])


def _conv2d_weight(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str
                   ) -> str:
    """conv2d_weight (x, G): conv2d's rule for its weight, of the kernel's size ``size``;
    its rules: x's conv2d_input(G, H), G's conv2d(x, H) without bias."""
    x, g = args[-2:]
    (kh, kw), = _pairs(op, attrs, "size")
    w_shape = (src.shape(g)[1], src.shape(x)[1] // _groups(op, attrs), kh, kw)
    conv = _Convolution(src, op, attrs, src.shape(x), w_shape)
    if i < 0:
        return conv.weight(dst, g, x, [x, g])
    if i == 0:
        return conv.input(dst, g, args[0], [args[0], g])
    return conv.forward(dst, x, args[0], None, [args[0], x])


def _groups(op: str, attrs: dict) -> int:
    groups = attrs.get("groups", 1)
    if not isinstance(groups, int | np.integer) or groups < 1:
        raise Unsupported(op, f"groups={groups!r}")
    return int(groups)


class _Convolution:
    """The loops of one convolution, x (N, C, H, W) ⋆ w (O, C/groups, kh, kw) with the
    recorded stride, padding, dilation and groups, a sample and a group at a time: the
    group's windows copied into columns (C/groups·kh·kw, OH·OW) in the workspace (im2col;
    0 where a window reaches into the padding), one product with the group's weight seen as
    (O/groups, C/groups·kh·kw). ``forward`` gives x ⋆ w (+ b); ``weight`` Σₙ Gₙ·colsₙᵀ (the
    columns of x made again, each sample's product added into the last); ``input`` Wᵀ·Gₙ
    spread back over the windows (col2im). conv2d, conv2d_input and conv2d_weight are each
    one of the three, and their rules the two others."""

    def __init__(self, src: CSource, op: str, attrs: dict, x_shape: tuple[int, ...],
                 w_shape: tuple[int, ...]) -> None:
        no_attrs(op, attrs, {"stride", "padding", "dilation", "groups"}
                 | (set() if op == "conv2d" else {"size"}))
        groups = _groups(op, attrs)
        if len(x_shape) != 4 or len(w_shape) != 4 or w_shape[1] * groups != x_shape[1] \
                or w_shape[0] % groups:
            raise Unsupported(op, f"shapes {x_shape}, {w_shape} with groups={groups}")
        self.src, self.op, self.groups = src, op, groups
        (n, c, h, wd), (o, cg, kh, kw) = self.x_shape, self.w_shape = x_shape, w_shape
        (sh, sw), (ph, pw), (dh, dw) = _pairs(op, attrs, "stride", "padding", "dilation")
        oh, ow = ops_nn.out_size(h, kh, sh, ph, dh), ops_nn.out_size(wd, kw, sw, pw, dw)
        self.g_shape = (n, o, oh, ow)
        self.og, self.ck, self.p = o // groups, cg * kh * kw, oh * ow  # (per group)
        # Each column row r: the channel (of group k), kernel row and column it reads; for
        # each output row a, its input row hh (outside the input: a row of zeros) and the
        # outputs [lo, hi) whose input column lies inside the input, so that the copies
        # have no test. (TYPE and COLS: the element type and the columns' buffer.)
        self.rows = (
            f"for (int64_t r = 0; r < {self.ck}; r++) {{ int64_t cc = k * {cg} + r / "
            f"{kh * kw}, ii = r / {kw} % {kh}, jj = r % {kw}, s0 = {pw} - jj * {dw}, s1 = "
            f"{wd - 1 + pw} - jj * {dw}; int64_t lo = s0 <= 0 ? 0 : (s0 + {sw - 1}) / {sw}, hi "
            f"= s1 < 0 ? 0 : s1 / {sw} + 1; if (hi > {ow}) hi = {ow}; if (lo > hi) lo = hi; for "
            f"(int64_t a = 0; a < {oh}; a++) {{ int64_t hh = a * {sh} - {ph} + ii * {dh}; "
            f"TYPE *cr = COLS + r * {self.p} + a * {ow}; int64_t at = ((q * {c} + cc) * {h} + "
            f"hh) * {wd} - s0;")
        self.stride = sw

    def _columns(self, names: list[str], wants: dict[str, tuple[int, ...]]
                 ) -> tuple[np.dtype, str, str]:
        """The one dtype of ``names`` (``wants``: the shapes some must have), a new columns
        buffer of it, and the loops over its rows' windows for that buffer."""
        for name, shape in wants.items():
            if self.src.shape(name) != shape:
                raise Unsupported(self.op, f"an array of shape {self.src.shape(name)} where "
                                           f"the convolution has {shape}")
        dt = self.src.dtype_of(names, self.op)
        cols = self.src.alloc(self.src.temp(), (self.ck, self.p), dt)
        return dt, cols, self.rows.replace("TYPE", C_TYPES[dt]).replace("COLS", cols)

    def _group_block(self, base: str, dt: np.dtype, of_weight: bool, const: bool
                     ) -> tuple[str, str]:
        """Group k's block of a weight-shaped array (O/groups, C/groups·kh·kw), or of sample
        q's output-shaped one (O/groups, OH·OW): its name and declaration."""
        if of_weight:
            return _matrix(self.src, base, (self.og, self.ck), dt, const, "k")
        return _matrix(self.src, base, (self.og, self.p), dt, const, f"(q * {self.groups} + k)")

    def _im2col(self, rows: str, x: str) -> None:
        ow = self.g_shape[3]
        self.src.body.append(
            f"    {rows} if (hh < 0 || hh >= {self.x_shape[2]}) {{ for (int64_t e = 0; e < "
            f"{ow}; e++) cr[e] = 0; continue; }} for (int64_t e = 0; e < lo; e++) cr[e] = 0; "
            f"for (int64_t e = lo; e < hi; e++) cr[e] = {x}[at + e * {self.stride}]; for "
            f"(int64_t e = hi; e < {ow}; e++) cr[e] = 0; }} }}")

    def forward(self, dst: str, x: str, w: str, b: str | None, names: list[str]) -> str:
        """dst ← x ⋆ w, plus b (one per output channel) unless None."""
        src = self.src
        dt, cols, rows = self._columns(names, {x: self.x_shape, w: self.w_shape})
        src.alloc(dst, self.g_shape, dt)
        wk, head_w = self._group_block(w, dt, True, True)
        out, head = self._group_block(dst, dt, False, False)

        def body() -> None:
            self._im2col(rows, x)
            src.product(out, wk, False, cols, False)
            if b is not None:
                src.body.append(f"    for (int64_t r = 0; r < {self.og}; r++) for (int64_t j "
                                f"= 0; j < {self.p}; j++) {out}[r * {self.p} + j] += "
                                f"{b}[k * {self.og} + r];")
        _per_sample(src, self.x_shape[0], self.groups, [head_w, head], body)
        return dst

    def weight(self, dst: str, g: str, x: str, names: list[str]) -> str:
        """dst ← Σₙ Gₙ·colsₙᵀ: the gradient of x ⋆ w for w, G that of the result."""
        src = self.src
        dt, cols, rows = self._columns(names, {x: self.x_shape, g: self.g_shape})
        src.alloc(dst, self.w_shape, dt)
        gk, head = self._group_block(g, dt, False, True)
        dk, head_d = self._group_block(dst, dt, True, False)

        def body() -> None:
            self._im2col(rows, x)
            src.product(dk, gk, False, cols, True, beta="(q ? 1 : 0)")
        _per_sample(src, self.x_shape[0], self.groups, [head, head_d], body)
        return dst

    def input(self, dst: str, g: str, w: str, names: list[str]) -> str:
        """dst ← Wᵀ·Gₙ spread back over the windows: the gradient of x ⋆ w for x."""
        src = self.src
        dt, cols, rows = self._columns(names, {g: self.g_shape, w: self.w_shape})
        src.alloc(dst, self.x_shape, dt)
        src.body.append(f"    for (int64_t j = 0; j < {math.prod(self.x_shape)}; j++) "
                        f"{dst}[j] = 0;")
        wk, head_w = self._group_block(w, dt, True, True)
        gk, head = self._group_block(g, dt, False, True)

        def body() -> None:
            src.product(cols, wk, True, gk, False)
            src.body.append(f"    {rows} if (hh < 0 || hh >= {self.x_shape[2]}) continue; for "
                            f"(int64_t e = lo; e < hi; e++) {dst}[at + e * {self.stride}] += "
                            f"cr[e]; }} }}")
        _per_sample(src, self.x_shape[0], self.groups, [head_w, head], body)
        return dst


def _max_pool2d(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str
                ) -> str:
    """max_pool2d over windows that tile the input (kernel = stride, no padding or
    dilation; rows and columns left over are skipped), LeNet's and most tutorials': each
    window's first maximum (a NaN wins, the first), as NumPy's maximum keeps it. The rule is
    the op table's: each element gets gradient · (it is the window's first element equal to
    the maximum) + 0 (so a −0 gradient lands as +0, and a NaN or ±∞ one gives NaN at the
    others), and a NaN maximum's gradient is added at the window's last NaN, as PyTorch
    gives it."""
    no_attrs(op, attrs, {"kernel_size", "stride", "padding", "dilation", "ceil_mode"})
    x = args[-1]
    if len(src.shape(x)) != 4:
        raise Unsupported(op, f"an input of shape {src.shape(x)} (the loops take 4-D)")
    k, stride, padding, dilation = _pairs(op, attrs, "kernel_size", "stride", "padding",
                                          "dilation")
    n, c, h, wd = src.shape(x)
    (kh, kw), (oh, ow) = k, (h // k[0], wd // k[1])
    ceil = bool(attrs.get("ceil_mode"))
    if (stride != k or padding != (0, 0) or dilation != (1, 1)
            or ceil and (h % kh or wd % kw)):
        return _max_pool_windows(src, op, i, args, dst, k, stride, padding, dilation, ceil)
    dt = src.dtype_of([x] if i < 0 else [args[0], args[1], x], op)
    t = C_TYPES[dt]
    # A row of windows at a time, the kernel's positions written out, the outputs along the
    # row innermost: loops GCC vectorizes (one window at a time, with a branch per element,
    # ran 3 ns an element: LeNet's first pooling 980 µs forward, 1,170 µs backward).
    taps = [(ii, jj) for ii in range(kh) for jj in range(kw)]
    rows = (f"for (int64_t q = 0; q < {n * c}; q++) for (int64_t a = 0; a < {oh}; a++) {{ "
            f"int64_t o = (q * {oh} + a) * {ow}, r = (q * {h} + a * {kh}) * {wd}; "
            f"for (int64_t e = 0; e < {ow}; e++) {{")
    at = [f"r + {ii * wd + jj} + e * {kw}" for ii, jj in taps]
    if i < 0:
        src.alloc(dst, (n, c, oh, ow), dt)
        body = " ".join(f"v = {x}[{a}]; m = gg_pick_t((m == m) & ((v > m) | (v != v)), v, m);"
                        for a in at[1:])
        src.body.append(src.typed(f"    {rows} {t} v, m = {x}[{at[0]}]; {body} {dst}[o + e] = "
                                  f"m; }} }}", dst))
        return dst
    g, out = args[0], args[1]
    src.alloc(dst, (n, c, h, wd), dt)
    src.body.append(f"    for (int64_t j = 0; j < {n * c * h * wd}; j++) {dst}[j] = 0;")
    # each position: grad · (first equal to the maximum) + 0; a NaN window's last NaN gets
    # the gradient added to that, as the op table's rule adds it. The flags are 0 and 1 of
    # the element type (f: no equal element yet; l: no NaN yet, from the end), so that the
    # loop has only arithmetic and choices made from bits (ints and ?: kept it scalar).
    n_taps = len(at)
    find = " ".join(f"{t} h{k} = f * gg_one_t({x}[{a}] == m); f -= h{k};"
                    for k, a in enumerate(at))
    last = " ".join(f"{t} l{k} = l * gg_one_t({x}[{at[k]}] != {x}[{at[k]}]); l -= l{k};"
                    for k in reversed(range(n_taps)))
    put = " ".join(f"{{ {t} d = gv * h{k} + ({t})0; {dst}[{a}] = gg_pick_t((m != m) & "
                   f"(l{k} != 0), d + gv, d); }}" for k, a in enumerate(at))
    src.body.append(src.typed(f"    {rows} {t} m = {out}[o + e], gv = {g}[o + e], f = 1, l = 1; "
                              f"{find} {last} {put} }} }}", dst))
    return dst


def _max_pool_windows(src: CSource, op: str, i: int, args: list[str], dst: str,
                      kernel: tuple[int, int], stride: tuple[int, int],
                      padding: tuple[int, int], dilation: tuple[int, int], ceil: bool) -> str:
    """max_pool2d over any windows (stride, padding, dilation, ceil_mode), one window at a
    time, an element outside the input read as −∞, as the op table's padding gives it. The
    rule adds each window's gradient · (first equal to the maximum) to each of its elements
    inside the input (windows may overlap), and a NaN maximum's gradient at the window's
    last NaN."""
    x = args[-1]
    n, c, h, wd = src.shape(x)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    oh = ops_nn.out_size(h, kh, sh, ph, dh, ceil)
    ow = ops_nn.out_size(wd, kw, sw, pw, dw, ceil)
    dt = src.dtype_of([x] if i < 0 else [args[0], args[1], x], op)
    t = C_TYPES[dt]
    each = (f"for (int64_t q = 0; q < {n * c}; q++) for (int64_t a = 0; a < {oh}; a++) for "
            f"(int64_t e = 0; e < {ow}; e++) {{ int64_t o = (q * {oh} + a) * {ow} + e;")
    taps = (f"for (int64_t ii = 0; ii < {kh}; ii++) for (int64_t jj = 0; jj < {kw}; jj++) {{ "
            f"int64_t hh = a * {sh} - {ph} + ii * {dh}, ww = e * {sw} - {pw} + jj * {dw}; int "
            f"inside = hh >= 0 && hh < {h} && ww >= 0 && ww < {wd}; int64_t at = (q * {h} + "
            f"hh) * {wd} + ww; {t} v = inside ? {x}[at] : -INFINITY;")
    if i < 0:
        src.alloc(dst, (n, c, oh, ow), dt)
        src.body.append(f"    {each} {t} m = 0; int first = 1; {taps} if (first || (m == m "
                        f"&& (v > m || v != v))) m = v; first = 0; }} {dst}[o] = m; }}")
        return dst
    g, out = args[0], args[1]
    src.alloc(dst, (n, c, h, wd), dt)
    src.body.append(f"    for (int64_t j = 0; j < {n * c * h * wd}; j++) {dst}[j] = 0;")
    src.body.append(f"    {each} {t} m = {out}[o], gv = {g}[o]; int free = 1; int64_t last = "
                    f"-1; {taps} int hit = free & (v == m); free &= !hit; if (v != v) last = "
                    f"at; if (inside) {dst}[at] += gv * ({t})hit; }} if (m != m && last >= 0) "
                    f"{dst}[last] += gv; }}")
    return dst


def _cast(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
    """x made float32 or float64 (from a float, an integer or a bool array: C's conversion
    rounds to nearest as NumPy's astype does); the rule hands the gradient on, and the line's
    ``cast`` makes it x's dtype again."""
    no_attrs(op, attrs, {"dtype"})
    x = args[0]
    if i >= 0:
        return x  # (the incoming gradient itself, as the op table's rule)
    to = np.dtype(attrs.get("dtype"))
    if to not in (np.float32, np.float64) or src.arrays[x].dtype not in C_TYPES:
        raise Unsupported(op, f"{src.arrays[x].dtype} to {to} (the loops make float32 or "
                              f"float64)")
    if to == src.arrays[x].dtype:
        return x  # (astype(copy=False): the array itself)
    src.alloc(dst, src.shape(x), to)
    src.each(dst, src.shape(x), f"({C_TYPES[to]}){{0}}", [x])
    return dst


def _cumsum(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
    """Running sums along one axis, in the array's dtype and NumPy's order; the rule, the
    running sums of the gradient from the end."""
    no_attrs(op, attrs, {"axis"})
    x = args[0] if i < 0 else args[2]
    shape = src.shape(x)
    if not shape:
        raise Unsupported(op, "a 0-d input")
    outer, n, inner = _axis_block(op, shape, attrs.get("axis", 0))
    dt = src.dtype_of([x] if i < 0 else [args[0], x], op)
    t = C_TYPES[dt]
    src.alloc(dst, shape, dt)
    at, rows = _AT.format(n=n, inner=inner), _ROWS.format(outer=outer, inner=inner)
    src_name, order = (x, "j = 0; j < {n}; j++") if i < 0 else (args[0],
                                                                 "j = {n} - 1; j >= 0; j--")
    src.body.append(f"    {rows} {{ {t} s = 0; for (int64_t {order.format(n=n)}) {{ s += "
                    f"{src_name}[{at}]; {dst}[{at}] = s; }} }}")
    return dst


def _extreme(larger: bool) -> Callable[..., str]:
    """max or min over some axes (or all; NumPy's: a NaN wins); the rule shares each output's
    gradient equally among the elements equal to it, in double, as the op table's rule
    divides by the count of ties."""
    def emit(src: CSource, op: str, i: int, args: list[str], attrs: dict, dst: str) -> str:
        x = args[0] if i < 0 else args[2]
        dt = src.dtype_of([x] if i < 0 else [args[0], args[1], x], op)
        shape = src.shape(x)
        axes = _reduced_axes(op, attrs, len(shape))
        kept = tuple(1 if k in axes else n for k, n in enumerate(shape))
        total = max(math.prod(kept), 1)
        t = C_TYPES[dt]
        loops = _loops(shape)
        j, at = _index(kept, shape), _index(shape, shape)
        if i < 0:
            out = tuple(n for k, n in enumerate(shape) if k not in axes)
            src.alloc(dst, kept if attrs.get("keepdims") else out, dt)
            beyond, cmp = ("-INFINITY", ">") if larger else ("INFINITY", "<")
            src.body.append(f"    for (int64_t j = 0; j < {total}; j++) {dst}[j] = {beyond};")
            src.body.append(
                f"    {loops}{{ {t} v = {x}[{at}], a = {dst}[{j}]; if (a == a && (v != v || "
                f"v {cmp} a)) {dst}[{j}] = v; }}")
            return dst
        g, out = src.view(args[0], kept), src.view(args[1], kept)
        # (the ties counted in integers, which GCC may add up in any order: vectorized)
        count = src.alloc(src.temp(), (total,), np.dtype(np.int64))
        src.alloc(dst, shape, dt)
        src.body.append(f"    for (int64_t j = 0; j < {total}; j++) {count}[j] = 0;")
        src.body.append(f"    {loops}{count}[{j}] += {x}[{at}] == {out}[{j}];")
        src.body.append(f"    {loops}{dst}[{at}] = ({t})((double){g}[{j}] * gg_one_double("
                        f"{x}[{at}] == {out}[{j}]) / (double){count}[{j}]);")
        return dst
    return emit


# op name -> emitter(source, op, rule index (-1: forward; EVERY_INPUT: a variadic op's
# backward), argument names, attributes, the name to bind the result to): returns the name
# that holds the result (None: it bound its own names)
EMITTERS: dict[str, Callable[..., str]] = {
    "add": _binary("{0} + {1}", ("{0}", "{0}")),
    "sub": _binary("{0} - {1}", ("{0}", "-{0}")),
    "mul": _binary("{0} * {1}", ("{0} * {3}", "{0} * {2}")),
    "div": _binary("{0} / {1}", ("{0} / {3}", "-{0} * {1} / {3}")),
    "tanh": _unary("tanh({0})", "{0} * (1 - {1} * {1})"),
    "relu": _unary("{0} < 0 ? 0 : {0}", RELU_GRAD),
    "sigmoid": _unary("(gg_half + gg_half * tanh(gg_half * {0}))", "{0} * {1} * (1 - {1})"),
    "exp": _unary("exp({0})", "{0} * {1}"),
    "neg": _unary("-{0}", "-{0}"),
    "sin": _unary_x("sin({0})", "{0} * cos({1})"),
    "cos": _unary_x("cos({0})", "-{0} * sin({1})"),
    # erf as math.erf computes it, in double; its rule (2/√π)·exp(−x²)
    "erf": _unary_x("({t})erf((double){0})",
                    f"{{0}} * ({2.0 / math.sqrt(math.pi)!r} * exp(-{{1}} * {{1}}))"),
    "sqrt": _unary("sqrt({0})", "{0} / (2 * {1})"),
    # aᵇ; its rules as the op table's: b·aᵇ⁻¹, and aᵇ·ln a taken as 0 where a ≤ 0
    "pow": _binary("pow({0}, {1})", ("{0} * {3} * pow({2}, {3} - 1)",
                                     "{0} * {1} * log({2} > 0 ? {2} : 1)")),
    # NumPy's maximum and minimum keep a NaN; their rules split a tie in halves
    "maximum": _binary("({0} != {0} || {0} > {1}) ? {0} : {1}",
                       ("{0} * (gg_one_t({2} > {3}) + gg_half * gg_one_t({2} == {3}))",
                        "{0} * (gg_one_t({3} > {2}) + gg_half * gg_one_t({2} == {3}))")),
    "minimum": _binary("({0} != {0} || {0} < {1}) ? {0} : {1}",
                       ("{0} * (gg_one_t({2} < {3}) + gg_half * gg_one_t({2} == {3}))",
                        "{0} * (gg_one_t({3} < {2}) + gg_half * gg_one_t({2} == {3}))")),
    "log": _unary_x("log({0})", "{0} / {1}"),
    # |x|' = sign(x) as NumPy gives it: ±1, 0 at ±0, NaN at NaN
    "abs": _unary_x("fabs({0})", "{0} * gg_pick_t({1} != {1}, {1}, gg_one_t({1} > 0) - "
                                 "gg_one_t({1} < 0))"),
    "clip": _clip,
    "where": _where,
    "linear": _linear,
    "matmul": _matmul,
    "mse_loss": _mse,
    "cross_entropy": _cross_entropy,
    "sum": _reduce(False),
    "mean": _reduce(True),
    "reshape": _reshape,
    "concatenate": _concatenate,
    "logsumexp": _logsumexp,
    "log_softmax": _log_softmax,
    "permute": _permute,
    "getitem": _getitem,
    "gather": _gather,
    "embedding": _embedding,
    "cumsum": _cumsum,
    "conv2d": _conv2d,
    "conv2d_input": _conv2d_input,
    "conv2d_weight": _conv2d_weight,
    "cast": _cast,
    "max_pool2d": _max_pool2d,
    "broadcast_to": _broadcast_to,
    "max": _extreme(True),
    "min": _extreme(False),
}


# =========================================================================== program
class CProgram(NativeProgram):
    """A ``NativeProgram`` whose kernels are C functions (the numba back end's variants,
    checks and delivery); a call the step declines (``StepDeclined``) replays in NumPy."""

    backend = "c"
    kernel_name, compiler_name = "the C step", "the C back end"

    def setup_c(self, layouts: dict[str, dict[str, Any]]) -> None:
        self.c_layouts = layouts  # variant -> how its function is called (CSource.text)

    def _compile_checked(self, source: str, which: str, targs: tuple[Any, ...]
                         ) -> Callable[..., Any]:
        fn = c_build.step_function(source, declined=StepDeclined, **self.c_layouts[which])
        self._check(fn, which, targs)
        return fn

    def run(self, targs: tuple[Any, ...]) -> Any:
        try:
            return NativeProgram.run(self, targs)
        except StepDeclined as e:
            if e.args[0] is NotImplemented and not getattr(self, "c_declined", False):
                self.c_declined = True  # (said once: every such call replays in NumPy)
                warn(f"{e}", "c")
            return Program.run(self, targs)


def accelerate(prog: Program, low: Lowered) -> Program:
    """``prog`` replayed by a compiled C step, or ``prog`` itself (with a
    ``JitFallbackWarning``) when a line has no loops or no C compiler is found. The step is
    compiled and checked on its first replay (the first call's result is the NumPy
    replay's, as for every back end); one that does not compile or check replays in NumPy
    from then on, with a ``JitFallbackWarning``."""
    why = c_build.unavailable()
    if why:
        warn(why, "c")
        return prog
    opt = prog.optimizer
    held_ids = held_params(opt) if callable(getattr(opt, "fold", None)) else set()
    folded = [p for p in prog.leaves if id(p) in held_ids]
    try:
        src = CSource(low)
        plan = fusions(low)
        for i, line in enumerate(low.lines):
            src.line(line, plan.get(i), i)
        r = low.returns
        kept = [k for k, p in enumerate(prog.leaves) if id(p) not in held_ids]
        kept += range(len(prog.leaves), len(r.grads))
        returns = (r.loss, [r.grads[k] for k in kept], [r.copied[k] for k in kept], r.aux)
        names = [low.names[id(p)] for p in folded]
        slots = [next(k for k, g in enumerate(opt.param_groups)
                      if any(q is p for q in g["params"])) for p in folded]
        variants = {"plain": src.text((r.loss, r.grads, r.copied, r.aux))}
        if folded:
            grads = [low.grads[id(p)] for p in folded]
            variants["fused"] = src.text(returns, [(g, n, k) for k, (g, n) in
                                                   enumerate(zip(grads, names))])
            if set(names) <= {low.names[id(p)] for p in low.rec.params}:
                variants["direct"] = src.text(returns, list(zip(grads, names, slots)),
                                              direct=True)
    except Unsupported as e:
        warn(f"op '{e.args[0]}' is not supported by the C back end ({e.args[1]})", "c")
        return prog
    sources = {k: "" for k in ("plain", "fused", "direct")}
    sources.update({k: v[0] for k, v in variants.items()})
    cp = CProgram.__new__(CProgram)
    cp.__dict__.update(prog.__dict__)  # the same recording, guards and delivery
    cp.setup(low, sources, folded, slots if folded else [],
             [prog.leaves[k] for k in kept if k < len(prog.leaves)], held_ids)
    cp.setup_c({k: v[1] for k, v in variants.items()})
    # Compiled and checked on the first replay, not now: the recording still holds every
    # array it saw (about 18 MiB for the MLP at batch 1024), and the step's workspace taken
    # on top of them raised that first call's peak RSS from 85 to 95 MiB (measured); taken
    # after they are let go, it reuses their memory.
    return cp


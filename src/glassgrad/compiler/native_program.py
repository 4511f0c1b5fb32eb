"""``NativeProgram``: a compiled step's ``Program`` whose replays run one native function,
made by a back end that compiles the whole step (``numba_program.NumbaProgram``: numba;
``c_backend.CProgram``: the system's C compiler). It keeps the NumPy program's guards,
first-call check and delivery; what it adds is how a replay calls the function and finds
the optimizer's coefficients (see ``NativeProgram``), and the check of each function against
the NumPy replay before its first use. Nothing here imports numba."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import autograd
from ..interrupt import DeferredInterrupt
from ..tensor import Tensor
from .lower import Lowered
from .program import Program, _scale


class JitFallbackWarning(UserWarning):
    """``backend="numba"`` or ``backend="c"`` could not compile a step; it replays in NumPy
    (same results)."""


def warn(why: str, backend: str = "numba") -> None:
    warnings.warn(f"gg.compile(backend='{backend}'): {why}; this step replays in NumPy "
                  f"instead (same results).", JitFallbackWarning, stacklevel=5)


def held_params(opt: Any) -> set[int]:
    """id() of every parameter ``opt`` holds."""
    return {id(p) for g in opt.param_groups for p in g["params"]}


class NativeProgram(Program):
    """A ``Program`` whose replays run one compiled function, one of three kernels: ``plain``
    (loss and gradients; ``step()`` runs after it), ``fused`` (each parameter's update
    inside, with ``Optimizer.fold``'s c, α, β per call) or ``direct`` (the updates inside,
    written into the parameters, with one α, β per group, ``Optimizer.fold_group``, asked
    again only when the optimizer's groups change). A back end's subclass compiles them
    (``_compile_checked``) and names itself in warnings (``backend``, ``kernel_name``,
    ``compiler_name``)."""

    backend = ""  # gg.compile's backend= (in warnings)
    kernel_name = compiler_name = ""  # "the numba kernel", "numba"

    def setup(self, low: Lowered, sources: dict[str, str], folded: list[Tensor],
              slots: list[int], kept: list[Tensor], held: set[int]) -> None:
        self.consts, self.seed = low.consts, low.seed
        self.jit_nargs = len(low.rec.targs)
        self.jit_sources = sources
        self.jit_kernels: dict[str, Callable[..., Any]] = {}
        self.jit_calls: dict[str, Callable[..., Any]] = {}  # kernel name -> its caller
        self.jit_folded = folded  # the parameters the optimizer holds, updated inside
        self.jit_slots = slots  # each one's group (its index in param_groups)
        self.jit_kept = kept  # the leaves whose gradients are returned
        self.jit_held = held  # id() of the parameters the optimizer held when recorded
        self.jit_groups = list(getattr(self.optimizer, "param_groups", ()))  # ... its groups
        self.jit_held_changed = False  # it holds others now: plain kernel and step()
        self.jit_coef: tuple[float, ...] | None = None  # the direct kernel's α, β per slot
        self.jit_snapshot: list[tuple[dict, dict, list, int]] = []  # see _optimizer_unchanged
        self.jit_seconds = 0.0  # compile time of the kernels this program compiled
        self.jit_failed = False  # a kernel did not compile or check: NumPy from then on

    def first_kernel(self, targs: tuple[Tensor, ...]) -> Callable[..., Any] | None:
        """The kernel the first replay will use, compiled and checked now."""
        opt = self.optimizer
        if self.jit_folded:
            self._refold(targs)
            if self.jit_coef is not None:
                return self.jit_kernels["direct"]
            if all(opt.fold(p) is not None for p in self.jit_folded):
                return self.kernel("fused", targs)
        return self.kernel("plain", targs)

    def kernel(self, which: str, targs: tuple[Tensor, ...]) -> Callable[..., Any] | None:
        """The ``which`` kernel, compiled and checked against the NumPy replay on ``targs``
        on first use; None (after a warning) if it fails either."""
        fn = self.jit_kernels.get(which)
        if fn is not None or self.jit_failed:
            return fn
        source = self.jit_sources[which]
        try:
            start = time.perf_counter()
            fn = self._compile_checked(source, which, targs)
            self.jit_seconds += time.perf_counter() - start
        except _InputError as e:  # the NumPy replay itself refused these inputs: the
            raise e.__cause__ from None  # caller's error, not the kernel's (asked again next)
        except AssertionError as e:
            self.jit_failed = True
            warn(f"internal error, please report it: {self.kernel_name} differs from the "
                 f"NumPy replay ({e})", self.backend)
            return None
        except Exception as e:  # noqa: BLE001  (numba's typing errors, a C compiler's)
            self.jit_failed = True
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            warn(f"{self.compiler_name} could not compile the step ({type(e).__name__}: "
                 f"{first})", self.backend)
            return None
        self.jit_kernels[which] = fn
        self.jit_calls[which] = self._caller(fn)
        self.source = source
        return fn

    def _compile_checked(self, source: str, which: str, targs: tuple[Tensor, ...]
                         ) -> Callable[..., Any]:
        """The compiled function of ``source``, checked against the NumPy replay
        (``_check``). Each back end defines it."""
        raise NotImplementedError

    def _caller(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``call(targs, extra)``: ``fn`` on the arrays the arguments, parameters and constants
        hold now (new values in place need no new recording), the seed, then ``extra``;
        generated, so that a replay builds no list of inputs."""
        env = {"kernel": fn, "seed": self.seed}
        ts = [f"t{i}" for i in range(self.jit_nargs)]
        arrays = [f"{t}._data" for t in ts]
        for kind, tensors in (("P", self.params), ("C", self.consts)):
            for k, t in enumerate(tensors):
                env[f"{kind}{k}"] = t
                arrays.append(f"{kind}{k}._data")
        source = (f"def call(targs, extra):\n    ({''.join(t + ', ' for t in ts)}) = targs\n"
                  f"    return kernel({''.join(a + ', ' for a in arrays)}seed, *extra)\n")
        exec(compile(source, f"<glassgrad.compile {self.backend} caller>", "exec"),  # noqa: S102
             env)
        return env["call"]

    def _optimizer_unchanged(self) -> bool:
        """Whether the optimizer's groups are those of the last ``_refold``: the same dicts
        holding the same lists of as many parameters, the same entries, each equal. (The
        lists compare by identity first, so no two tensors are compared.)"""
        groups = self.optimizer.param_groups
        if len(groups) != len(self.jit_snapshot):
            return False
        try:
            for group, (was, copy, params, n) in zip(groups, self.jit_snapshot):
                if group is not was or group["params"] is not params or len(params) != n \
                        or group != copy:
                    return False
        except Exception:  # noqa: BLE001  (a value == cannot compare, an array: ask again)
            return False
        return True

    def _refold(self, targs: tuple[Tensor, ...]) -> None:
        """Take the optimizer's groups as they are now: the snapshot of them, whether it still
        holds the parameters it held when recorded, and the direct kernel's α, β (None: the
        fused kernel folds per parameter and per call, or there is no fold)."""
        opt = self.optimizer
        self.jit_snapshot = [(g, dict(g), g["params"], len(g["params"]))
                             for g in opt.param_groups]
        self.jit_coef = None
        # Other parameters, or a group dict replaced (SGD.fold would read the old one):
        # the plain kernel, then step(), which reads param_groups as they are.
        now = opt.param_groups
        self.jit_held_changed = held_params(opt) != self.jit_held or len(now) != len(
            self.jit_groups) or any(a is not b for a, b in zip(now, self.jit_groups))
        if self.jit_held_changed or not self.jit_sources["direct"] \
                or not callable(getattr(opt, "fold_group", None)):
            return
        coef: list[float] = []
        for slot in sorted(set(self.jit_slots)):
            group = opt.param_groups[slot] if slot < len(opt.param_groups) else {"params": []}
            ids = {id(q) for q in group["params"]}
            if not all(id(p) in ids for p, s in zip(self.jit_folded, self.jit_slots)
                       if s == slot):
                return  # (groups replaced or reordered: the kernel's slots no longer fit)
            ab = opt.fold_group(group)
            if ab is None:
                return
            coef += ab
        try:
            direct = self.kernel("direct", targs)
        except BaseException:
            self.jit_snapshot = []  # (asked again on the next call)
            raise
        if direct is not None:
            self.jit_coef = tuple(coef)

    def inputs(self, targs: tuple[Tensor, ...], params: list[np.ndarray] | None = None
               ) -> list[np.ndarray]:
        return [*(t._data for t in targs), *(params or (p._data for p in self.params)),
                *(c._data for c in self.consts), self.seed]

    def _check(self, fn: Callable[..., Any], which: str, targs: tuple[Tensor, ...]) -> None:
        """Run ``fn`` once (numba compiles it here) and compare it with the NumPy program on
        the same inputs: the folded updates on copies, with α, β = −0.3, 0.7."""
        try:
            ref = self.fn(*[t._data for t in targs])
        except Exception as e:
            raise _InputError from e
        if which == "plain":
            mine = fn(*self.inputs(targs))
            _close(mine[1], ref[1], "a gradient")
        else:
            copies = [p._data.copy() for p in self.jit_folded]
            if which == "fused":
                mine = fn(*self.inputs(targs), *[x for c in copies for x in (c, -0.3, 0.7)])
            else:  # the parameters themselves are written: pass copies in their place
                new = dict(zip(map(id, self.jit_folded), copies))
                mine = fn(*self.inputs(targs, [new.get(id(p), p._data) for p in self.params]),
                          *(-0.3, 0.7) * len(set(self.jit_slots)))
            grads = dict(zip(map(id, self.leaves), ref[1]))
            _close(copies, [-0.3 * grads[id(p)] + 0.7 * p._data for p in self.jit_folded],
                   "a folded update")
            n = len(self.leaves)
            kept = {id(p) for p in self.jit_kept}
            others = [g for p, g in zip(self.leaves, ref[1]) if id(p) in kept] + list(ref[1][n:])
            _close(mine[1], others, "a gradient")
        _close([mine[0], *(mine[2] if self.has_aux else ())],
               [ref[0], *(ref[2] if self.has_aux else ())], "an output")

    def run(self, targs: tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
        if self.jit_failed:
            return Program.run(self, targs)
        opt = self.optimizer
        if opt is not None and self.jit_folded:
            if not self._optimizer_unchanged():
                self._refold(targs)
            if self.jit_coef is not None:
                return self._run_direct(targs)
            if not self.jit_held_changed:
                loss = self._run_fused(targs)
                if loss is not None:
                    return loss
        fn = self.kernel("plain", targs)
        if fn is None:
            return Program.run(self, targs)
        return self.finish(targs, self.jit_calls["plain"](targs, ()))

    def _run_direct(self, targs: tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
        """One step through the direct kernel, with no Ctrl-C guard around the update: it
        happens inside one native call, which a signal cannot interrupt midway (Python runs
        its handler between bytecodes, after the call). The version bump comes before the
        call: an interrupt between the two leaves the weights unchanged with their version
        moved, so a graph made before refuses to go backward (an error, never a gradient at
        stale values); bumped after, an interrupt in between would leave new weights that
        such a graph would use silently."""
        self.optimizer.zero_grad()
        autograd.mark_modified(*self.jit_folded)
        result = self.jit_calls["direct"](targs, self.jit_coef)
        if not self.jit_kept and not self.arg_leaves:
            if self.has_aux:
                return self.deliver(targs, result, [])
            value = result[0]
            return Tensor._wrap(value if type(value) is np.ndarray else np.asarray(value))
        with DeferredInterrupt():  # the other gradients are part of the step: all or none
            return self.deliver(targs, result, self.jit_kept)

    def _run_fused(self, targs: tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...] | None:
        """One step through the fused kernel, with each parameter's (c, α, β) asked of the
        optimizer now; None if a fold is refused or the kernel cannot run."""
        opt = self.optimizer
        folds = [opt.fold(p) for p in self.jit_folded]
        if any(f is None for f in folds) or self.kernel("fused", targs) is None:
            return None
        extra = [x for f in folds for x in (f[0], float(f[1]), float(f[2]))]
        opt.zero_grad()
        with DeferredInterrupt():  # then() updates in NumPy after the call: all or none
            result = self.jit_calls["fused"](targs, extra)
            loss = self.deliver(targs, result, self.jit_kept)
            for f in folds:
                if f[3] is not None:
                    f[3]()
            autograd.mark_modified(*self.jit_folded)
        return loss


class _InputError(Exception):
    """The NumPy replay failed on the inputs a kernel was to be checked on (a class index
    out of range, say): its cause is the caller's error."""


def _close(mine: Any, ref: Any, what: str) -> None:
    """Raise AssertionError unless ``mine`` and ``ref`` (sequences of arrays) agree to float
    rounding, with the same shapes and dtypes."""
    for m, r in zip(mine, ref, strict=True):
        m, r = np.asarray(m), np.asarray(r)
        if m.shape != r.shape or m.dtype != r.dtype or not np.allclose(
                m, r, rtol=1e-4, atol=1e-5 * _scale(r), equal_nan=True):
            raise AssertionError(f"{what} of shape {r.shape} {r.dtype}: the compiled step "
                                 f"gives other values, or shape {m.shape} {m.dtype}")

"""SGD (momentum, Nesterov, weight decay), Adam, AdamW and RMSprop, exactly as ``torch.optim``.

Each update works in place on the parameter's array with ``out=`` NumPy calls: no graph, no
per-step allocation, the parameter's dtype (float32) throughout. Parameters whose ``.grad`` is
None are skipped. A write to a parameter is ``Optimizer._apply`` (p ← s·p − δ), called once
per parameter at the end of its update; or, with the same arithmetic, BLAS's axpy (SGD on a
large parameter) and the C copies of the usual SGD and Adam steps (``SGD.step``, ``Adam.step``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .. import blas
from ..autograd import _native
from .optimizer import Fold, Optimizer, _check

# Below this many elements a fresh temporary is cheaper than a reused scratch array; above it,
# reusing one avoids allocating (and page-faulting) a parameter-sized array every step.
_SCRATCH_MIN = 1 << 15
# Below both this and BLAS's threshold, SGD's update is one small temporary (see _descend).
_DESCEND_SMALL = min(_SCRATCH_MIN, blas.BLAS_MIN)
# The C copies of SGD's step on small parameters and of Adam's and RMSprop's (_optim.c), or
# None (not built, or GLASSGRAD_NATIVE=0): see SGD.step, Adam.step and RMSprop.step.
_native_sgd_step = None if _native is None else _native.sgd_step
_native_adam_step = None if _native is None else _native.adam_step
_native_rmsprop_step = None if _native is None else _native.rmsprop_step


def _average_square_(v: np.ndarray, g: np.ndarray, decay: float, t: np.ndarray) -> None:
    """v ← decay·v + (1 − decay)·g², in place (``t`` is scratch): Adam's and RMSprop's second
    moment, in the same operation order as PyTorch (so the results match to the last bit)."""
    v *= decay
    np.multiply(g, g, out=t)
    t *= 1 - decay
    v += t


class SGD(Optimizer):
    """Stochastic gradient descent, PyTorch's formulation:

        g ← ∇ + λ·w                          (weight_decay λ)
        b ← μ·b + (1 − dampening)·g           (momentum μ; b starts as g)
        g ← g + μ·b if nesterov else b
        w ← w − lr·g

    >>> import glassgrad as gg
    >>> w = gg.tensor([1.0], requires_grad=True)
    >>> opt = gg.optim.SGD([w], lr=0.1)
    >>> (w * w).sum().backward(); opt.step(); w  # 1 − 0.1·2
    tensor([0.8], requires_grad=True)
    """

    def __init__(
        self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0,
        dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
    ) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)
        self._lr_of: Any = None  # _plain_descent's last lr and that lr as a 0-d array
        self._lr_as: np.ndarray | None = None

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """``Optimizer.step``. Its usual call on a small network (no closure, exactly ``SGD``,
        one group, a float lr, small float parameters with gradients of their own dtype and
        shape, momentum buffers made by the first step) runs as one C call, ``sgd_step`` in
        _optim.c: the same checks, the same writes and bits, the same record of the
        writes, with a tenth of the interpreter's bookkeeping (XOR's step: about 1 µs instead
        of 6). It returns None, having changed nothing, for anything else, and this method's
        Python definition runs."""
        native = _native_sgd_step
        g = self._native_group(native, closure, SGD)
        if g is not None and native(
                g["params"], g["lr"], _DESCEND_SMALL, self._marks, self.state, g["momentum"],
                g["dampening"], g["weight_decay"], g["nesterov"]) is not None:
            return None
        return super().step(closure)

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        _check(self, "momentum", group["momentum"], "a momentum coefficient")
        _check(self, "weight_decay", group["weight_decay"], "it pulls weights toward 0")
        _check(self, "dampening", group["dampening"], "a fraction", hi=1.0)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"SGD: nesterov=True needs momentum > 0 and dampening = 0, got momentum="
                f"{group['momentum']}, dampening={group['dampening']}. Fix: e.g. momentum=0.9."
            )

    def _update(self, group: dict[str, Any]) -> None:
        lr, mom, damp = group["lr"], group["momentum"], group["dampening"]
        wd, nesterov = group["weight_decay"], group["nesterov"]
        if not (mom or wd):  # plain gradient descent, w ← w − lr·g: the textbook's update
            self._plain_descent(group["params"], lr)
            return
        state = self.state
        for p in group["params"]:
            if p._grad is None:
                continue
            w = p._data
            g = p._grad._data
            if wd:
                g = self._weight_decayed(g, w, wd, slot=0)
            if mom:
                s = state.get(p)
                if s is None or s.get("momentum_buffer") is None:
                    buf = np.array(g, dtype=w.dtype, copy=True)
                    state[p] = {"momentum_buffer": buf}
                else:
                    buf = s["momentum_buffer"]
                    buf *= mom
                    if damp:
                        t1 = self._tmp(w, 1)
                        np.multiply(g, 1 - damp, out=t1)
                        buf += t1
                    else:
                        buf += g
                if nesterov:
                    t1 = self._tmp(w, 1)
                    np.multiply(buf, mom, out=t1)
                    t1 += g
                    g = t1
                else:
                    g = buf
            self._descend(p, g, lr)

    def fold(self, p: Any) -> Fold | None:
        """The update as one product (see ``Optimizer.fold``). Without momentum,
        w ← w − lr·(∇ + λ·w) = (1 − lr·λ)·w − lr·∇: the product writes straight into w.
        With momentum (not Nesterov's, which needs ∇ apart from b), the product writes
        b ← (1 − dampening)·∇ + μ·b (b ← ∇ on the first step), then b gets its λ·w term and
        w ← w − lr·b."""
        group = self._group_of[id(p)]
        lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
        w = p._data
        if not mom:
            return w, -lr, 1.0 - lr * wd, None
        if group["nesterov"]:
            return None
        s = self.state.get(p)
        buf = None if s is None else s.get("momentum_buffer")
        first = buf is None
        if first:
            buf = np.empty_like(w)  # stored only once the step uses it (in then())
        scale = 1.0 if first else 1.0 - group["dampening"]

        def then() -> None:
            if first:
                self.state[p] = {"momentum_buffer": buf}
            if wd:
                t = self._tmp(w, 1)
                np.multiply(w, scale * wd, out=t)
                np.add(buf, t, out=buf)
            self._descend(p, buf, lr)

        return buf, scale, 0.0 if first else mom, then

    def _plain_descent(self, params: list[Any], lr: float) -> None:
        """w ← w − lr·g for every parameter with a gradient (``_descend``, with its small-array
        case written out: this is every plain SGD step). lr multiplies as a 0-d array of the
        gradient's dtype: NumPy turns a Python float into one on every call (about 2,600
        instructions, more than the product of a small array), and the product has the same
        bits (a Python float meeting a float32 array is rounded to float32 first)."""
        apply = self._apply
        # The 0-d lr of the last step, kept while lr is the same float object (a schedule or
        # load_state_dict sets a new one; a float cannot change in place): making it again
        # costs as much as a small parameter's product.
        lr_as = self._lr_as if self._lr_of is lr and type(lr) is float else None
        for p in params:
            grad = p._grad
            if grad is None:
                continue
            g = grad._data
            if p._data.size >= _DESCEND_SMALL:
                self._descend(p, g, lr)
                continue
            dt = g.dtype
            if lr_as is None or lr_as.dtype is not dt:
                lr_as = np.array(lr, dt)
                lr_as.flags.writeable = False  # (shared by later steps)
                self._lr_of, self._lr_as = lr, lr_as
            apply(p, g * lr_as)

    def _descend(self, p: Any, g: np.ndarray, lr: float) -> None:
        """w ← w − lr·g, in place."""
        w = p._data
        if w.size >= blas.BLAS_MIN and g.dtype == w.dtype:
            blas.axpy(-lr, g, w)  # one pass over w on BLAS's threads, not two of NumPy's
        elif w.size < _SCRATCH_MIN:
            self._apply(p, lr * g)  # a small temporary costs less than a scratch array lookup
        else:
            t = self._tmp(w, 0)
            np.multiply(g, lr, out=t)
            self._apply(p, t)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), PyTorch's formulation, step t:

        g ← ∇ + λ·w                     (weight_decay: L2 added to the gradient)
        m ← β₁·m + (1 − β₁)·g,   v ← β₂·v + (1 − β₂)·g²
        w ← w − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)

    ``amsgrad=True`` uses the running maximum of v.
    """

    _decoupled = False

    def __init__(
        self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad)
        super().__init__(params, defaults)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """``Optimizer.step``. Its usual call (no closure, exactly ``Adam`` or ``AdamW``, one
        group, no amsgrad, float hyperparameters, parameters whose state the first step made)
        runs as one C call, ``adam_step`` in _optim.c: the same checks and state, the same
        writes and bits, in one pass over each parameter's four arrays where the NumPy below
        makes about twelve (XOR's step: under 2 µs instead of 30). It returns None, having
        changed nothing, for anything else, and this method's Python definition runs."""
        native = _native_adam_step
        g = self._native_group(native, closure, Adam, AdamW)
        if g is not None and not g["amsgrad"] and len(g["betas"]) == 2 and native(
                g["params"], self.state, g["lr"], g["betas"][0], g["betas"][1], g["eps"],
                g["weight_decay"], self._decoupled, self._marks) is not None:
            return None
        return super().step(closure)

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        _check(self, "eps", group["eps"], "it keeps the division finite")
        betas = group["betas"]
        if len(betas) != 2:
            raise ValueError(f"{type(self).__name__}: betas must be a pair (β₁, β₂), got {betas}")
        _check(self, "betas[0]", betas[0], "an averaging coefficient", hi=1.0, hi_open=True)
        _check(self, "betas[1]", betas[1], "an averaging coefficient", hi=1.0, hi_open=True)
        _check(self, "weight_decay", group["weight_decay"], "it pulls weights toward 0")

    def _update(self, group: dict[str, Any]) -> None:
        lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
        wd, amsgrad = group["weight_decay"], group["amsgrad"]
        # AdamW decays the weights, not the gradient: w ← (1 − lr·λ)·w − δ. PyTorch scales w
        # first, but δ does not depend on w, so scaling in the final write is the same.
        decay = 1 - lr * wd if wd and self._decoupled else 1.0
        for p, w, g, s in self._counted_steps(
                group, lambda w: {"exp_avg": np.zeros_like(w), "exp_avg_sq": np.zeros_like(w)}):
            step = s["step"]
            if wd and not self._decoupled:
                g = self._weight_decayed(g, w, wd, slot=1)
            m, v = s["exp_avg"], s["exp_avg_sq"]
            t = self._tmp(w, 0)
            np.subtract(g, m, out=t)  # m ← m + (1 − β₁)(g − m): torch's lerp, same rounding
            t *= 1 - b1
            m += t
            _average_square_(v, g, b2, t)
            if amsgrad:
                vmax = s.get("max_exp_avg_sq")
                if vmax is None:
                    vmax = s["max_exp_avg_sq"] = np.zeros_like(w)
                np.maximum(vmax, v, out=vmax)
                v = vmax
            step_size = lr / (1 - b1**step)
            np.sqrt(v, out=t)
            t /= math.sqrt(1 - b2**step)
            t += eps
            np.divide(m, t, out=t)
            t *= step_size
            self._apply(p, t, decay)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019): w ← w·(1 − lr·λ) before the
    Adam step, instead of adding λ·w to the gradient. Default weight_decay 0.01, as PyTorch."""

    _decoupled = True

    def __init__(
        self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


class RMSprop(Optimizer):
    """RMSprop (Hinton), PyTorch's formulation:

        g ← ∇ + λ·w,   v ← α·v + (1 − α)·g²
        d ← √(v − ḡ²) + ε if centered (ḡ: running mean of g) else √v + ε
        b ← μ·b + g/d, w ← w − lr·b   (momentum μ > 0)   or   w ← w − lr·g/d
    """

    def __init__(
        self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
        weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
    ) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered)
        super().__init__(params, defaults)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """``Optimizer.step``. Its usual call (no closure, exactly ``RMSprop``, one group,
        float hyperparameters, parameters whose state the first step made) runs as one C
        call, ``rmsprop_step`` in _optim.c, as Adam's does (see ``Adam.step``)."""
        native = _native_rmsprop_step
        g = self._native_group(native, closure, RMSprop)
        if g is not None and native(
                g["params"], self.state, g["lr"], g["alpha"], g["eps"], g["weight_decay"],
                g["momentum"], g["centered"], self._marks) is not None:
            return None
        return super().step(closure)

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        _check(self, "alpha", group["alpha"], "a smoothing constant", hi=1.0)
        _check(self, "eps", group["eps"], "it keeps the division finite")
        _check(self, "momentum", group["momentum"], "a momentum coefficient")
        _check(self, "weight_decay", group["weight_decay"], "it pulls weights toward 0")

    def _update(self, group: dict[str, Any]) -> None:
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        wd, mom, centered = group["weight_decay"], group["momentum"], group["centered"]
        for p, w, g, s in self._counted_steps(group,
                                              lambda w: {"square_avg": np.zeros_like(w)}):
            if wd:
                g = self._weight_decayed(g, w, wd, slot=1)
            v = s["square_avg"]
            t = self._tmp(w, 0)
            _average_square_(v, g, alpha, t)
            if centered:
                ga = s.get("grad_avg")
                if ga is None:
                    ga = s["grad_avg"] = np.zeros_like(w)
                np.subtract(g, ga, out=t)
                t *= 1 - alpha
                ga += t
                np.multiply(ga, ga, out=t)
                np.subtract(v, t, out=t)
                np.sqrt(t, out=t)
            else:
                np.sqrt(v, out=t)
            t += eps
            if mom > 0:
                buf = s.get("momentum_buffer")
                if buf is None:
                    buf = s["momentum_buffer"] = np.zeros_like(w)
                buf *= mom
                np.divide(g, t, out=t)
                buf += t
                np.multiply(buf, lr, out=t)
            else:
                np.divide(g, t, out=t)
                t *= lr
            self._apply(p, t)

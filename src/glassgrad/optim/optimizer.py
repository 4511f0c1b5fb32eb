"""``Optimizer``: parameter groups, per-parameter state, ``zero_grad``, ``state_dict``.

Subclasses implement ``_update(group)`` with in-place NumPy arithmetic (no graph is recorded,
no array is allocated per step: temporaries go into scratch buffers shared by all parameters
of a dtype). ``step()`` runs in two phases: every gradient is checked first (nothing changes
on a bad one), then every update is applied with Ctrl-C deferred (``DeferredInterrupt``), so a
step is applied to all parameters and their state, or to none. Every write to a parameter
goes through ``_apply``, except SGD's BLAS update of a large parameter (``blas.axpy``) and
the C copies of SGD's and Adam's usual step (``SGD.step``, ``Adam.step``), which skip the
Python step when ``_apply`` is not replaced on the optimizer.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from ..autograd import enable_grad, mark_modified_memo, zero_grad
from ..interrupt import hold, release
from ..tensor import Tensor

# (c, α, β, then): the step computes c ← α·∂L/∂p + β·c in one product, then calls then()
Fold = tuple[np.ndarray, float, float, Callable[[], None] | None]


class Optimizer(ABC):
    """Base class, as ``torch.optim.Optimizer``: ``param_groups`` is a list of dicts holding
    "params" and the hyperparameters ("lr", ...); ``state`` maps a parameter to its buffers."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        name = type(self).__name__
        if isinstance(params, Tensor):
            params = [params]
        elif hasattr(params, "parameters") and callable(params.parameters):
            raise TypeError(
                f"{name}: got a model ({type(params).__name__}); an optimizer takes its "
                f"parameters. Fix: {name}(model.parameters(), ...)."
            )
        groups = list(params)
        if not groups:
            raise ValueError(
                f"{name}: got an empty parameter list, so there is nothing to optimize. Fix: "
                f"pass model.parameters() of a model that has parameters."
            )
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        self._scratch: dict[tuple[np.dtype, int], np.ndarray] = {}
        self._group_of: dict[int, dict[str, Any]] = {}  # id(parameter) -> its group
        self._params: list[Tensor] = []  # every group's, in state_dict's numbering
        self._marks: list[Any] = []  # mark_modified_memo's memory of the parameters' arrays
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (others from defaults).
        Everything is checked before the group is added."""
        name = type(self).__name__
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError(f"{name}: a parameter group is a dict with a 'params' entry")
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{name}: parameter {i} is a {type(p).__name__}, not a Tensor. Fix: pass "
                    f"model.parameters() or a list of tensors with requires_grad=True."
                )
            if p._op is not None:
                raise ValueError(
                    f"{name}: parameter {i} (shape {p.shape}) was computed by '{p.op}', so it "
                    f"is not a leaf and cannot be updated. Fix: optimize the leaf tensors."
                )
            if p._data.dtype.kind != "f":
                raise TypeError(f"{name}: parameter {i} has dtype {p.dtype}; only float "
                                f"tensors can be optimized")
            if id(p) in seen:
                raise ValueError(f"{name}: parameter {i} (shape {p.shape}) appears twice; "
                                 f"give each parameter once")
            seen.add(id(p))
        group = {**self.defaults, **param_group, "params": params}
        self._validate(group)
        self.param_groups.append(group)
        self._group_of.update((id(p), group) for p in params)
        self._params.extend(params)

    def _validate(self, group: dict[str, Any]) -> None:
        """Raise ValueError for a hyperparameter out of range (subclasses extend this)."""
        _check(self, "lr", group["lr"], "a negative learning rate climbs the loss", lo=0.0)

    # ------------------------------------------------------------------ the update
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every gradient (``None``, or zeros with ``set_to_none=False``)."""
        for group in self.param_groups:
            zero_grad(group["params"], set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient (those with ``.grad`` None are skipped).

        ``closure``, if given, recomputes the loss (with gradients) and is returned. Every
        gradient is checked before anything changes; a Ctrl-C during the update takes effect
        once every parameter and its state are updated (the step is never half-applied)."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        updated = self._check_grads()
        held = hold()  # the commit phase, Ctrl-C deferred: all writes to parameters and state
        try:
            for group in self.param_groups:
                self._update(group)
            # a graph made before must not go backward through them (mark_modified's work)
            mark_modified_memo(updated, self._marks)
        finally:
            release(held)  # (DeferredInterrupt as two calls: a with block costs twice this)
        return loss

    def _native_group(self, native: Any, closure: Any, *classes: type) -> dict[str, Any] | None:
        """The one parameter group, when this step may hand it to its C copy ``native``
        (``_optim.c``; None where the extension is not built or ``GLASSGRAD_NATIVE=0``): no
        closure, exactly one of ``classes`` (a subclass may change any part), ``_apply`` not
        replaced on the optimizer, one group, its "params" a list. Else None: Python's step."""
        if native is None or closure is not None or type(self) not in classes \
                or "_apply" in self.__dict__ or len(self.param_groups) != 1:
            return None
        group = self.param_groups[0]
        return group if type(group["params"]) is list else None

    def _check_grads(self) -> list[Tensor]:
        """The parameters that have a gradient; raise, naming the parameter, if a ``.grad``
        is not a float Tensor of its shape."""
        updated = []
        try:  # the fast pass (it runs every step); the slow one below names the culprit
            for p in self._params:
                g = p._grad
                if g is not None:
                    if g._data.shape != p._data.shape or g._data.dtype.kind != "f":
                        break
                    updated.append(p)
            else:
                return updated
        except AttributeError:  # a .grad that is not a Tensor
            pass
        for i, p in enumerate(self._params):
            g = p._grad
            if g is not None and (not isinstance(g, Tensor) or g._data.shape != p._data.shape
                                  or g._data.dtype.kind != "f"):
                self._bad_grad(i, p, g)
        raise AssertionError("unreachable: the fast pass found a bad gradient")

    def _bad_grad(self, i: int, p: Tensor, g: Any) -> None:
        name = type(self).__name__
        where = f"{name}.step(): parameter {i}" + (f" ({p.name!r})" if p.name else "")
        if not isinstance(g, Tensor):
            raise TypeError(f"{where} has a .grad of type {type(g).__name__}, not a Tensor. "
                            f"Fix: assign p.grad = gg.tensor(array), or let backward() set it.")
        if g._data.shape != p._data.shape:
            raise ValueError(
                f"{where} has shape {p._data.shape} but its .grad has shape {g._data.shape}; "
                f"an update needs one gradient value per weight, so nothing was changed. "
                f"Fix: give it a gradient of shape {p._data.shape} (zero_grad(), then "
                f"backward() again)."
            )
        raise TypeError(
            f"{where} has dtype {p._data.dtype} but its .grad has dtype {g._data.dtype}; a "
            f"gradient must be floating point, so nothing was changed. Fix: assign "
            f"p.grad = gg.tensor(grad.astype(np.{p._data.dtype}))."
        )

    def _apply(self, p: Tensor, delta: np.ndarray, scale: float = 1.0) -> None:
        """p ← scale·p − delta, in place: the one place where an optimizer writes a parameter
        (``step()`` calls it only in its commit phase)."""
        w = p._data
        if scale != 1.0:
            w *= scale
        w -= delta

    def fold(self, p: Tensor) -> Fold | None:
        """How this optimizer's update of ``p`` folds into the matrix product that makes
        ``p``'s gradient (``gg.compile(loss_fn, optimizer=opt)`` asks, once per step): a
        ``(c, α, β, then)`` such that the step computes c ← α·∂L/∂p + β·c inside that product
        and then calls ``then()`` (unless None) to finish the update; or None when the update
        is not linear in the gradient (then the gradient is computed and ``step()`` runs).
        Calling ``fold`` changes nothing: a fold that is not used leaves no trace.

        A fold of the form ``(p's own array, α, β, None)`` must depend only on ``p``'s
        group's hyperparameters (its entries other than "params"), not on ``state``: a
        compiled step keeps such α, β (``fold_group``) until one of those entries changes."""
        return None

    def fold_group(self, group: dict[str, Any]) -> tuple[float, float] | None:
        """``(α, β)`` when ``fold`` gives every parameter ``p`` of ``group`` the same plain
        update p ← α·∂L/∂p + β·p (c is p's own array, nothing to finish), else None. By
        ``fold``'s contract it depends only on the group's hyperparameters, so a compiled step
        asks once and again only after one of them changed (``numba_backend``)."""
        coef = None
        for p in group["params"]:
            f = self.fold(p)
            if f is None or f[3] is not None or f[0] is not p._data:
                return None
            if coef is None:
                coef = (float(f[1]), float(f[2]))
            elif coef != (float(f[1]), float(f[2])):
                return None
        return coef

    @abstractmethod
    def _update(self, group: dict[str, Any]) -> None:
        """Update, in place, every parameter of ``group`` that has a gradient (the rule that
        makes an optimizer; see SGD)."""

    def _tmp(self, x: np.ndarray, slot: int = 0) -> np.ndarray:
        """A scratch array shaped like ``x``, reused on every step (no allocation per update).

        Keyed by shape and dtype: parameters of one shape share it, since updates run one
        after another; one dict lookup is cheaper than slicing a shared buffer."""
        key = (x.shape, x.dtype, slot)
        buf = self._scratch.get(key)
        if buf is None:
            buf = self._scratch[key] = np.empty_like(x)
        return buf

    def _counted_steps(self, group: dict[str, Any], new_state: Callable[[np.ndarray], dict]
                       ) -> Iterator[tuple[Tensor, np.ndarray, np.ndarray, dict]]:
        """(parameter, weights, gradient, state) of each parameter of ``group`` that has a
        gradient, its state made by ``new_state(weights)`` on first use, ``"step"`` counted."""
        state = self.state
        for p in group["params"]:
            if p._grad is None:
                continue
            w = p._data
            s = state.get(p)
            if s is None:
                s = state[p] = {"step": 0, **new_state(w)}
            s["step"] += 1
            yield p, w, p._grad._data, s

    def _weight_decayed(self, g: np.ndarray, w: np.ndarray, wd: float, slot: int) -> np.ndarray:
        """∇ + λ·w (the gradient of the L2 prior added), in scratch ``slot``."""
        t = self._tmp(w, slot)
        np.multiply(w, wd, out=t)
        t += g
        return t

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """PyTorch's layout: {"state": {index: {name: array}}, "param_groups": [{..., "params":
        [indices]}]}, parameters numbered in group order. Arrays are copies."""
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        state = {
            index[id(p)]: {k: np.array(v, copy=True) if isinstance(v, np.ndarray) else v
                           for k, v in s.items()}
            for p, s in self.state.items() if id(p) in index
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and buffers; checked completely before anything changes."""
        name = type(self).__name__
        try:
            groups, state = state_dict["param_groups"], state_dict["state"]
        except (KeyError, TypeError):
            raise ValueError(f"{name}.load_state_dict: expects a dict with 'state' and "
                             f"'param_groups', as state_dict() returns") from None
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state has {len(groups)} parameter "
                             f"groups, this optimizer {len(self.param_groups)}")
        params: list[Tensor] = []
        for i, (saved, own) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: group {i} has {len(saved['params'])} parameters "
                    f"in the state but {len(own['params'])} here. Fix: load the state of an "
                    f"optimizer built over the same model."
                )
            params.extend(own["params"])
        by_index = {idx: p for g, own in zip(groups, self.param_groups)
                    for idx, p in zip(g["params"], own["params"])}
        new_state: dict[Tensor, dict[str, Any]] = {}
        for idx, s in state.items():
            p = by_index.get(int(idx))
            if p is None:
                raise ValueError(f"{name}.load_state_dict: state for parameter {idx}, which no "
                                 f"group lists")
            entry = {}
            for k, v in s.items():
                if isinstance(v, np.ndarray | Tensor):
                    arr = np.array(v._data if isinstance(v, Tensor) else v, dtype=p.dtype)
                    if arr.ndim and arr.shape != p.shape:
                        raise ValueError(
                            f"{name}.load_state_dict: buffer '{k}' of parameter {idx} has "
                            f"shape {arr.shape}, but the parameter has shape {p.shape}"
                        )
                    v = arr
                entry[k] = v
            new_state[p] = entry
        for saved, own in zip(groups, self.param_groups):
            trial = {**own, **{k: v for k, v in saved.items() if k != "params"}}
            self._validate(trial)
        for saved, own in zip(groups, self.param_groups):
            own.update(copy.deepcopy({k: v for k, v in saved.items() if k != "params"}))
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(g.items()) if k != "params")
        return "\n".join(lines) + "\n)"


def _check(opt: Any, key: str, value: Any, why: str, lo: float = 0.0, hi: float | None = None,
           hi_open: bool = False) -> None:
    """One hyperparameter's range check, with a message naming the optimizer and the value."""
    name = opt if isinstance(opt, str) else type(opt).__name__
    try:
        if isinstance(value, str | bytes | bool | np.bool_):  # float("0.1") would pass
            raise TypeError
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: {key} must be a number, got {value!r} (a "
                        f"{type(value).__name__}). Fix: pass e.g. {key}=0.01.") from None
    bad = not (v >= lo) or (hi is not None and (v >= hi if hi_open else v > hi))
    if bad:
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{name}: invalid {key}={value!r}: it must be {rng} ({why}). "
                         f"Fix: pass a value {rng}.")

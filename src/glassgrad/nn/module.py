"""``Module`` and ``Parameter``: a layer is a plain class whose parameters are found by walking it.

No ``__setattr__`` magic: ``parameters()`` walks the instance's attributes in definition order
(and lists, tuples and dicts of modules or parameters inside them), so a model is an ordinary
Python object and the names match PyTorch's ("0.weight", "layers.1.bias").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from ..autograd import mark_modified, zero_grad
from ..tensor import Tensor, _check_grad_dtype


class Parameter(Tensor):
    """A Tensor that a ``Module`` owns and an optimizer updates: ``requires_grad=True``, float.

    Shares memory with a NumPy array or Tensor it is made from (as ``torch.nn.Parameter``);
    Python numbers and lists become float32.

    >>> import glassgrad as gg
    >>> w = gg.nn.Parameter([1.0, 2.0])
    >>> w.requires_grad, w.dtype
    (True, dtype('float32'))
    """

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        if isinstance(data, Tensor):
            data = data._data
        elif not isinstance(data, np.ndarray):
            data = np.asarray(data, dtype=np.float32)
        _check_grad_dtype(data.dtype, data.shape)
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped, as PyTorch reports it."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class RemovableHandle:
    """Returned by ``register_forward_hook``; ``handle.remove()`` detaches the hook."""

    def __init__(self, hooks: list, hook: Callable) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def _walk(name: str, value: Any) -> Iterator[tuple[str, Any]]:
    """(qualified name, Parameter or Module) found in one attribute value, in order."""
    if isinstance(value, Parameter | Module):
        yield name, value
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _walk(f"{name}.{i}", v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(f"{name}.{k}", v)


class Module:
    """Base class of layers and models: subclass it, set attributes in ``__init__``, define
    ``forward``. Calling ``super().__init__()`` is allowed but not needed.

    >>> import glassgrad as gg
    >>> class Affine(gg.nn.Module):
    ...     def __init__(self):
    ...         self.scale = gg.nn.Parameter([2.0])
    ...         self.shift = gg.nn.Parameter([1.0])
    ...     def forward(self, x):
    ...         return x * self.scale + self.shift
    >>> [name for name, _ in Affine().named_parameters()]
    ['scale', 'shift']
    """

    training: bool = True  # a class default, so subclasses need not call __init__
    _forward_hooks: list = []  # replaced by a per-instance list on first registration

    def __init__(self) -> None:
        pass

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} has no forward() method. Fix: define "
            f"`def forward(self, x): ...` in the class."
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for h in list(self._forward_hooks):
                res = h(self, args, out)
                if res is not None:
                    out = res
        return out

    def register_forward_hook(self, hook: Callable[[Module, tuple, Any], Any]) -> RemovableHandle:
        """Call ``hook(module, inputs, output)`` after every forward (a non-None return
        replaces the output), as PyTorch. Returns a handle whose ``remove()`` detaches it."""
        if "_forward_hooks" not in vars(self):
            self._forward_hooks = []
        self._forward_hooks.append(hook)
        return RemovableHandle(self._forward_hooks, hook)

    # ------------------------------------------------------------------ the walk
    def _attributes(self) -> Iterator[tuple[str, Any]]:
        """(name, value) pairs searched for parameters and submodules. Containers such as
        ``Sequential`` override this to name their children "0", "1", ..."""
        return iter(vars(self).items())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for attr, value in self._attributes():
            for name, v in _walk(attr, value):
                if isinstance(v, Module):
                    yield name, v

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_modules(
        self, memo: set[int] | None = None, prefix: str = ""
    ) -> Iterator[tuple[str, Module]]:
        """This module and every submodule, each once, depth first (PyTorch's order)."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, m in self.named_children():
            yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(name, parameter) pairs; a parameter shared by two layers is listed once."""
        if not recurse:
            mods: Iterator[tuple[str, Module]] = iter([(prefix, self)])
        elif remove_duplicate:
            mods = self.named_modules(prefix=prefix)
        else:
            mods = self._all_modules(prefix, set())
        seen: set[int] = set()
        for mprefix, m in mods:
            for attr, value in m._attributes():
                for name, p in _walk(attr, value):
                    if not isinstance(p, Parameter):
                        continue
                    if remove_duplicate:
                        if id(p) in seen:
                            continue
                        seen.add(id(p))
                    yield (f"{mprefix}.{name}" if mprefix else name), p

    def _all_modules(self, prefix: str, visited: set[int]) -> Iterator[tuple[str, Module]]:
        # Every path to every module (shared submodules appear under each name, as in
        # PyTorch's state_dict), guarding only against cycles.
        if id(self) in visited:
            return
        visited.add(id(self))
        yield prefix, self
        for name, m in self.named_children():
            yield from m._all_modules(f"{prefix}.{name}" if prefix else name, visited)
        visited.discard(id(self))

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    # ------------------------------------------------------------------ modes and grads
    def train(self, mode: bool = True) -> Module:
        """Switch this module and its submodules to training mode (Dropout active)."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> Module:
        """Switch to evaluation mode (Dropout off), as ``train(False)``."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget every parameter's gradient (``None``, or zeros with set_to_none=False)."""
        zero_grad(self.parameters(), set_to_none)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze every parameter."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def to(self, dtype: Any) -> Module:
        """Convert every parameter (and gradient) to a float ``dtype``, in place."""
        dt = np.dtype(dtype)
        _check_grad_dtype(dt, ())
        for p in self.parameters():
            p._data = p._data.astype(dt, copy=False)
            if p.grad is not None:
                p.grad._data = p.grad._data.astype(dt, copy=False)
        return self

    def double(self) -> Module:
        return self.to(np.float64)

    def float(self) -> Module:
        return self.to(np.float32)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> OrderedDict[str, Tensor]:
        """name -> detached Tensor sharing memory with the parameter, as PyTorch."""
        return OrderedDict(
            (name, Tensor._wrap(p._data))
            for name, p in self.named_parameters(remove_duplicate=False)
        )

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> IncompatibleKeys:
        """Copy values into the parameters. Everything is checked first (missing, extra and
        mis-shaped entries; with ``strict=False`` missing and extra ones are skipped), so an
        error leaves the model unchanged."""
        own = dict(self.named_parameters(remove_duplicate=False))
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        cls = type(self).__name__
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise KeyError(
                f"{cls}.load_state_dict: the state dict does not match the model: "
                f"{'; '.join(parts)}. The model expects {list(own)}. Fix: load a state dict "
                f"saved from the same architecture, or pass strict=False to load the "
                f"matching entries only."
            )
        arrays: list[tuple[Parameter, np.ndarray]] = []
        for name, p in own.items():
            if name not in state_dict:
                continue
            v = state_dict[name]
            arr = v._data if isinstance(v, Tensor) else np.asarray(v)
            if arr.shape != p.shape:
                raise ValueError(
                    f"{cls}.load_state_dict: '{name}' has shape {arr.shape} in the state dict "
                    f"but {p.shape} in the model. Fix: build the model with the same layer "
                    f"sizes as the one that was saved."
                )
            if arr.dtype.kind not in "fiub":
                raise TypeError(
                    f"{cls}.load_state_dict: '{name}' holds {arr.dtype} values, not numbers."
                )
            if p._data.dtype.kind == "f" and arr.dtype.kind != "f":
                raise TypeError(
                    f"{cls}.load_state_dict: '{name}' holds {arr.dtype} values but the model's "
                    f"parameter is {p.dtype}: integers or bools are no trained weights (a wrong "
                    f"entry or file?). Fix: pass float values (e.g. arr.astype(np.float32))."
                )
            arrays.append((p, arr))
        for p, arr in arrays:  # all checked: now copy (in place, as PyTorch's param.copy_)
            if arr is not p._data:
                p._data[...] = arr
        mark_modified(*(p for p, _ in arrays))  # a graph made before must not go backward
        return IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------------ display
    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr (its settings)."""
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [head]
        for name, m in children:
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"

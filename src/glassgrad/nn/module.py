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
from .device import check_device, parse_to_args


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


_NO_INPUT: Any = object()  # Module.__call__ without a positional input


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
    _buffers: dict[str, bool] = {}  # buffer name -> persistent; per instance once registered

    def __init__(self) -> None:
        pass

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} has no forward() method. Fix: define "
            f"`def forward(self, x): ...` in the class."
        )

    def __call__(self, x: Any = _NO_INPUT, /, *args: Any, **kwargs: Any) -> Any:
        """``forward(...)``, then the forward hooks (if any were registered)."""
        # The usual call, one positional input, is passed on as such: a star call and its
        # argument tuple cost about a third of this method (x is positional-only, so a
        # keyword named x still reaches forward as a keyword).
        if args or kwargs or x is _NO_INPUT:
            if x is not _NO_INPUT:
                args = (x, *args)
            out = self.forward(*args, **kwargs)
        else:
            out = self.forward(x)
            args = None
        if self._forward_hooks:
            return self._run_hooks((x,) if args is None else args, out)
        return out

    def _run_hooks(self, args: tuple, out: Any) -> Any:
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

    # ------------------------------------------------------------------ registration
    def _check_name(self, name: Any, what: str, fn: str) -> None:
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(
                f"{type(self).__name__}.{fn}: {what} name {name!r} is not a non-empty string "
                f"without '.' ('.' separates the levels of state-dict keys). Fix: pass e.g. "
                f"'running_mean'."
            )

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Keep ``tensor`` as attribute ``name``: state (e.g. running statistics) that is no
        parameter: ``parameters()`` and optimizers skip it, ``to``/``float``/``double``
        convert it (if floating), and ``state_dict`` holds it unless ``persistent=False``."""
        self._check_name(name, "buffer", "register_buffer")
        if name in vars(self) and name not in self._buffers:
            raise KeyError(f"{type(self).__name__}.register_buffer: attribute {name!r} already "
                           f"exists and is not a buffer. Fix: choose another name.")
        if isinstance(tensor, Parameter) or not (tensor is None or isinstance(tensor, Tensor)):
            what = "a Parameter" if isinstance(tensor, Parameter) else type(tensor).__name__
            raise TypeError(
                f"{type(self).__name__}.register_buffer({name!r}): got {what}; a buffer is a "
                f"Tensor (or None). Fix: pass gg.tensor(values), or register_parameter for "
                f"values an optimizer should train."
            )
        if "_buffers" not in vars(self):
            self._buffers = {}
        self._buffers[name] = bool(persistent)
        setattr(self, name, tensor)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Set attribute ``name`` to ``param`` (a Parameter, or None for an absent one)."""
        self._check_name(name, "parameter", "register_parameter")
        if not (param is None or isinstance(param, Parameter)):
            raise TypeError(
                f"{type(self).__name__}.register_parameter({name!r}): got "
                f"{type(param).__name__}, not a Parameter. Fix: wrap it: nn.Parameter(values)."
            )
        setattr(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        """Set attribute ``name`` to the submodule ``module`` (PyTorch's ``add_module``)."""
        self._check_name(name, "module", "add_module")
        if not (module is None or isinstance(module, Module)):
            raise TypeError(f"{type(self).__name__}.add_module({name!r}): "
                            f"{type(module).__name__} is not a Module.")
        setattr(self, name, module)

    def register_module(self, name: str, module: Module | None) -> None:
        """Alias of ``add_module``."""
        self.add_module(name, module)

    def get_submodule(self, target: str) -> Module:
        """The submodule at the dotted path ``target`` ("" is this module), e.g. "layers.0"."""
        found = dict(self.named_modules(remove_duplicate=False)).get(target)
        if found is None:
            raise AttributeError(
                f"{type(self).__name__}.get_submodule: no submodule {target!r}. It has "
                f"{[n for n, _ in self.named_modules() if n][:20]}."
            )
        return found

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every submodule, then on this module (PyTorch's order), e.g. to
        initialize weights: ``model.apply(init_fn)``. Returns this module."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

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
        self, memo: set[int] | None = None, prefix: str = "", remove_duplicate: bool = True,
    ) -> Iterator[tuple[str, Module]]:
        """This module and every submodule, each once (every path to it with
        ``remove_duplicate=False``), depth first (PyTorch's order)."""
        if not remove_duplicate:
            yield from self._all_modules(prefix, set())
            return
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

    def _own_buffers(self, persistent_only: bool = False) -> Iterator[tuple[str, Tensor]]:
        for name, persistent in self._buffers.items():
            value = vars(self).get(name)
            if isinstance(value, Tensor) and (persistent or not persistent_only):
                yield name, value

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True,
    ) -> Iterator[tuple[str, Tensor]]:
        """(name, buffer) pairs of the buffers registered with ``register_buffer``."""
        mods = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                if recurse else iter([(prefix, self)]))
        seen: set[int] = set()
        for mprefix, m in mods:
            for name, b in m._own_buffers():
                if remove_duplicate:
                    if id(b) in seen:
                        continue
                    seen.add(id(b))
                yield (f"{mprefix}.{name}" if mprefix else name), b

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

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

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """Convert every parameter (and gradient) and floating buffer to a float dtype, in
        place; takes PyTorch's forms ``to(dtype)``, ``to("cpu")``, ``to(device, dtype)``,
        ``to(tensor)``. A device other than the CPU is refused (glassgrad has no GPU yet)."""
        dt = parse_to_args(args, kwargs, f"{type(self).__name__}.to")
        if dt is None:
            return self
        if dt.kind != "f":
            raise TypeError(
                f"{type(self).__name__}.to: a module holds floating-point weights, got dtype "
                f"{dt}. Fix: pass gg.float32 or gg.float64 (convert data, not the model, to "
                f"integers)."
            )
        for p in self.parameters():
            p._data = p._data.astype(dt, copy=False)
            if p.grad is not None:
                p.grad._data = p.grad._data.astype(dt, copy=False)
        for _, b in self.named_buffers():
            if b._data.dtype.kind == "f":
                b._data = b._data.astype(dt, copy=False)
        return self

    def double(self) -> Module:
        return self.to(np.float64)

    def float(self) -> Module:
        return self.to(np.float32)

    def half(self) -> Module:
        return self.to(np.float16)

    def cpu(self) -> Module:
        """This module: glassgrad's weights are always on the CPU."""
        return self

    def cuda(self, device: Any = None) -> Module:
        """Refused: glassgrad runs on the CPU only (the error says what to do instead)."""
        check_device("cuda" if device is None else f"cuda:{device}",
                     f"{type(self).__name__}.cuda")
        return self

    # ------------------------------------------------------------------ state
    def _state_items(self) -> Iterator[tuple[str, Tensor]]:
        """What a state dict holds, in PyTorch's order: per module (every path to it), its
        own parameters, then its persistent buffers; then its children."""
        for mprefix, m in self._all_modules("", set()):
            items = list(m.named_parameters(recurse=False, remove_duplicate=False))
            for name, t in items + list(m._own_buffers(persistent_only=True)):
                yield (f"{mprefix}.{name}" if mprefix else name), t

    def state_dict(
        self, *args: Any, destination: Any = None, prefix: str = "", keep_vars: bool = False,
    ) -> OrderedDict[str, Tensor]:
        """name -> detached Tensor sharing memory with the parameter or buffer, as PyTorch
        (``keep_vars=True``: the Parameters themselves); names start with ``prefix``."""
        out = OrderedDict() if destination is None else destination
        for name, t in self._state_items():
            out[prefix + name] = t if keep_vars else Tensor._wrap(t._data)
        return out

    def load_state_dict(
        self, state_dict: Any, strict: bool = True, assign: bool = False,
    ) -> IncompatibleKeys:
        """Copy values into the parameters and buffers. Everything is checked first (missing,
        extra and mis-shaped entries; with ``strict=False`` missing and extra ones are
        skipped), so an error leaves the model unchanged. ``assign=True`` makes each
        parameter use the given array instead of copying it."""
        own = dict(self._state_items())
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
        arrays: list[tuple[Tensor, np.ndarray]] = []
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
                    f"entry is {p.dtype}: integers or bools are no trained weights (a wrong "
                    f"entry or file?). Fix: pass float values (e.g. arr.astype(np.float32))."
                )
            arrays.append((p, arr))
        for p, arr in arrays:  # all checked: now copy (in place, as PyTorch's param.copy_)
            if assign:
                p._data = arr
            elif arr is not p._data:
                p._data[...] = arr
        # a graph made before must not go backward
        mark_modified(*(p for p, _ in arrays), memory=not assign)
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

"""Guards for ``gg.compile``: what a recording read, checked before every replay.

A recording is the loss function as it ran once, so a replay is right only while everything
that run read is unchanged. As ``torch.compile`` does, each recording lists what it read, and
one generated function checks the list before every replay (about a microsecond for a small
MLP):

- the arguments: their number, type, shape, dtype and ``requires_grad``, and the value of
  one that the function read in Python (``int(i)``, ``if flag.item():``);
- the tensors the program reads that are not arguments (parameters, constants): shape, dtype
  and ``requires_grad`` (the program reads their ``.data`` on every call, so new values of
  the same shape need no new recording);
- what the loss function captures: its closure variables, the globals it names, its default
  arguments, and, through those, functions (followed), modules (the same object; its
  ``.training``, its forward hooks, and the same modules, tensors and arrays and the same
  Python numbers in its attributes; the globals its ``forward`` names), tensors (the same
  object, shape, dtype, ``requires_grad``; for one that needs no gradient its array too,
  which an op may hold directly, as ``gg.where`` does a mask), arrays (the same object) and
  Python numbers and strings (the same value and type).

A check that fails means "record again" (``Compiled`` does it, and says which check failed
in ``why_recorded``). Values reached only through other objects (a dict of settings, a plain
object's attribute) are not followed: pass such a value as an argument.
"""

from __future__ import annotations

import functools
import keyword
import types
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..tensor import Tensor

_SCALARS = (bool, int, float, complex, str, bytes, np.generic)
_MAX_DEPTH = 4  # functions followed from the loss function (a helper, its helper, ...)


class Guards:
    """The checks of one recording: Python expressions over the call's arguments ``t0``,
    ``t1``, ... and the objects bound in ``env``, each with a description."""

    def __init__(self, nargs: int) -> None:
        self.nargs = nargs
        self.env: dict[str, Any] = {"Tensor": Tensor}
        self.checks: list[tuple[str, str]] = []
        self.tensors: dict[int, Tensor] = {}  # captured tensors (not the program's own)
        self._done: set[int] = set()  # objects whose state is checked already
        self._keep: list[Any] = []  # ...kept alive, so that their ids stay theirs

    def name(self, obj: Any) -> str:
        key = f"k{len(self.env)}"
        self.env[key] = obj
        return key

    def add(self, expr: str, what: str) -> None:
        self.checks.append((expr, what))

    def _first(self, obj: Any) -> bool:
        """Whether ``obj`` is met for the first time (its state is then checked once)."""
        if id(obj) in self._done:
            return False
        self._done.add(id(obj))
        self._keep.append(obj)
        return True

    # ------------------------------------------------------------------ what is checked
    def arguments(self, targs: Iterable[Tensor]) -> None:
        for i, t in enumerate(targs):
            self.add(f"type(t{i}) is Tensor", f"argument {i} is a Tensor")
            self.tensor(f"t{i}", t, f"argument {i}")

    def tensor(self, expr: str, t: Tensor, what: str, array: bool = False) -> None:
        """Shape, dtype and requires_grad of ``t`` (read through ``expr``); with ``array``,
        also that it holds the same array object."""
        d = t._data
        self.add(f"{expr}._data.shape == {d.shape!r}", f"{what}: shape {d.shape}")
        self.add(f"{expr}._data.dtype == {self.name(d.dtype)}", f"{what}: dtype {d.dtype}")
        self.add(f"{expr}._requires_grad is {t._requires_grad}",
                 f"{what}: requires_grad={t._requires_grad}")
        if array:
            self.add(f"{expr}._data is {self.name(d)}", f"{what}: its array (.data)")

    def program_tensors(self, params: list[Tensor], consts: list[Tensor]) -> None:
        """The leaves the program reads by object: parameters and constants."""
        for kind, ts in (("parameter", params), ("constant", consts)):
            for t in ts:
                if self._first(t):
                    self.tensor(self.name(t), t, f"{kind} {self.describe(t)}")

    def value_read(self, t: Tensor, argument: int | None, value: Any, how: str) -> None:
        """The function read ``t``'s value in Python (``how``): the same value again."""
        expr = f"t{argument}" if argument is not None else self.name(t)
        what = f"argument {argument}" if argument is not None else self.describe(t)
        self.add(f"{expr}._data.tolist() == {self.name(value)}",
                 f"the value of {what}, read with {how} while recording ({value!r})")

    def describe(self, t: Tensor) -> str:
        return f"{t.name!r} {t.shape}" if t.name else f"of shape {t.shape}"

    def captured(self, fn: Callable[..., Any], what: str, depth: int = 0) -> None:
        """Everything ``fn`` reads from outside its arguments (see the module docstring)."""
        if depth > _MAX_DEPTH or not self._first(fn):
            return
        if isinstance(fn, types.MethodType):
            self.value(f"{self.name(fn)}.__self__", fn.__self__, f"{what}.__self__", depth)
            self.captured(fn.__func__, what, depth + 1)
            return
        if isinstance(fn, functools.partial):
            n = self.name(fn)
            self.value(f"{n}.func", fn.func, f"{what}.func", depth)
            for i, a in enumerate(fn.args):
                self.value(f"{n}.args[{i}]", a, f"{what} argument {i}", depth)
            for k, a in fn.keywords.items():
                self.value(f"{n}.keywords[{k!r}]", a, f"{what} argument {k}", depth)
            return
        if not isinstance(fn, types.FunctionType):
            from ..nn import Module  # (nn imports the engine, which imports this module)

            if isinstance(fn, Module):
                self.module(self.name(fn), fn, what, depth)
            return
        code, n = fn.__code__, self.name(fn)
        for var, cell in zip(code.co_freevars, fn.__closure__ or ()):
            self.value(f"{self.name(cell)}.cell_contents", _contents(cell), var, depth)
        for i, v in enumerate(fn.__defaults__ or ()):
            self.value(f"{n}.__defaults__[{i}]", v, f"default {i} of {fn.__qualname__}", depth)
        for k, v in (fn.__kwdefaults__ or {}).items():
            self.value(f"{n}.__kwdefaults__[{k!r}]", v, f"default {k} of {fn.__qualname__}",
                       depth)
        if _is_library(fn):
            return  # glassgrad's own globals are its functions and modules
        g = fn.__globals__
        for var in sorted(_global_names(code) & g.keys()):
            self.value(f"{self.name(g)}[{var!r}]", g[var], var, depth)

    def value(self, expr: str, v: Any, what: str, depth: int) -> None:
        """``expr`` still gives ``v`` (a number or string: an equal one of the same type;
        anything else: the same object), and the state of ``v`` is unchanged."""
        from ..nn import Module

        if v is None or isinstance(v, bool):
            self.add(f"{expr} is {v}", f"{what} is {v}")
        elif isinstance(v, _SCALARS):
            self.add(f"type({expr}) is {self.name(type(v))} and {expr} == {self.name(v)}",
                     f"{what} == {v!r}")
        elif isinstance(v, types.ModuleType | type):
            return  # an import or a class: not data a recording could freeze
        else:
            self.add(f"{expr} is {self.name(v)}", f"{what} is the same object")
            if isinstance(v, Module):
                if self._first(v):
                    self.module(self.name(v), v, what, depth)
            elif isinstance(v, Tensor):
                if self._first(v):
                    self.tensors[id(v)] = v
                    self.tensor(self.name(v), v, what, array=not v._requires_grad)
            elif callable(v) and not isinstance(v, np.ndarray):
                self.captured(v, what, depth + 1)

    def module(self, n: str, m: Any, what: str, depth: int) -> None:
        """``m``'s mode, forward hooks and attributes (``n`` names it in the guard)."""
        self.add(f"{n}.training is {bool(m.training)}", f"{what}.training is {m.training}")
        hooks = list(m._forward_hooks)
        self.add(f"{n}._forward_hooks == {self.name(hooks)}" if hooks
                 else f"not {n}._forward_hooks", f"{what}'s forward hooks")
        numbers: dict[str, Any] = {}  # checked in one comparison: a Linear has two
        for attr, v in vars(m).items():
            if attr in ("training", "_forward_hooks"):
                continue
            expr = (f"{n}.{attr}" if attr.isidentifier() and not keyword.iskeyword(attr)
                    and not hasattr(type(m), attr) else f"{n}.__dict__[{attr!r}]")
            if isinstance(v, list | tuple | dict):
                self.members(expr, v, f"{what}.{attr}", depth)
            elif isinstance(v, _SCALARS) or v is None:
                numbers[expr] = v
            elif _is_data(v):
                self.value(expr, v, f"{what}.{attr}", depth)
        if numbers:
            self.add(f"({', '.join(numbers)},) == {self.name(tuple(numbers.values()))}",
                     f"{what}'s numbers {tuple(numbers.values())!r}")
        forward = getattr(type(m), "forward", None)
        if isinstance(forward, types.FunctionType) and not _is_library(forward):
            self.captured(forward, f"{type(m).__name__}.forward", depth + 1)

    def members(self, expr: str, box: Any, what: str, depth: int) -> None:
        """Modules, tensors and arrays inside a module's list, tuple or dict attribute."""
        items = box.items() if isinstance(box, dict) else enumerate(box)
        for k, v in items:
            sub = f"{expr}[{k!r}]"
            if isinstance(v, list | tuple | dict):
                self.members(sub, v, f"{what}[{k!r}]", depth)
            elif _is_data(v):
                self.value(sub, v, f"{what}[{k!r}]", depth)

    # ------------------------------------------------------------------ the check
    def build(self) -> tuple[Callable[[tuple], bool], Callable[[tuple], str | None]]:
        """The guard (true when a call may replay) and ``changed``, which names the first
        check that fails (for the slow path only: it runs them one by one)."""
        names = "".join(f"t{i}, " for i in range(self.nargs))
        test = " and ".join(f"({e})" for e, _ in self.checks) or "True"
        source = (f"def guard(args):\n    if len(args) != {self.nargs}:\n        return False\n"
                  f"    ({names}) = args\n    try:\n        return {test}\n"
                  f"    except Exception:  # a variable deleted, an attribute gone: record\n"
                  f"        return False\n"
                  f"CHECKS = [{', '.join(f'lambda {names}: ({e})' for e, _ in self.checks)}]\n")
        env = dict(self.env)
        exec(compile(source, "<glassgrad.compile guard>", "exec"), env)  # noqa: S102
        whats = [w for _, w in self.checks]

        def changed(args: tuple) -> str | None:
            if len(args) != self.nargs:
                return f"the number of arguments ({self.nargs} when recorded)"
            for check, what in zip(env["CHECKS"], whats):
                try:
                    if not check(*args):
                        return what
                except Exception:  # noqa: BLE001  (an exception means "changed")
                    return what
            return None

        return env["guard"], changed


def _contents(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a variable not assigned yet
        return None


def _is_library(fn: types.FunctionType) -> bool:
    return (fn.__module__ or "").split(".")[0] == "glassgrad"


def _is_data(v: Any) -> bool:
    from ..nn import Module

    return isinstance(v, Tensor | np.ndarray | Module)


def _global_names(code: types.CodeType) -> set[str]:
    """Names ``code`` may load as globals, nested functions and comprehensions included."""
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _global_names(c)
    return names

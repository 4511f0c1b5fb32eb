"""Emitting: a step's lines as Python source, written once, at the end; ``exec``'d into the
function a replay calls; and the guard that decides whether a call may replay it."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

import numpy as np

from ..autograd import unbroadcast
from .guards import Guards
from .ir import Line
from .lower import Lowered, Returns


class Namespace:
    """The objects a step's source names (its functions, the seed, attribute constants),
    each bound to a readable name."""

    def __init__(self, arg_arrays: dict[int, str] | None = None) -> None:
        self.env: dict[str, Any] = {"unbroadcast": unbroadcast}
        self.arg_arrays = arg_arrays or {}  # id(argument's array) -> its name, a0, ...
        self._constants: dict[int, str] = {}  # id(attribute constant) -> its name

    def bind(self, name: str, obj: Any) -> str:
        """``name`` for ``obj`` (``name_2``, ... if ``name`` is another object's)."""
        if name in self.env and self.env[name] is not obj:
            k = 2
            while f"{name}_{k}" in self.env and self.env[f"{name}_{k}"] is not obj:
                k += 1
            name = f"{name}_{k}"
        self.env[name] = obj
        return name

    def attrs(self, attrs: dict[str, Any] | None) -> str:
        return "".join(f", {k}={self.attr(v)}" for k, v in (attrs or {}).items())

    def attr(self, v: Any) -> str:
        """An op attribute as source: an argument's array by the argument's name (an index
        passed in is read on every call, not frozen), a literal as itself, else a constant
        (one name per object)."""
        if isinstance(v, np.ndarray) and id(v) in self.arg_arrays:
            return self.arg_arrays[id(v)]
        if isinstance(v, tuple) and _has_arg(v, self.arg_arrays):
            return "(" + "".join(f"{self.attr(x)}, " for x in v) + ")"
        if _literal(v):
            return repr(v)
        if isinstance(v, np.dtype):
            return self.bind(str(v), v)
        if id(v) not in self._constants:
            self._constants[id(v)] = self.bind(f"attr{len(self._constants)}", v)
        return self._constants[id(v)]


def expression(line: Line, ns: Namespace) -> str:
    """The value a line computes, as source: the call, indexed, summed down, cast."""
    if line.fn is None:
        expr = line.args[0]
    else:
        args = ", ".join(line.args)
        if line.update is not None:
            args = f"*U[{line.update}], {args}"
        expr = f"{ns.bind(line.name, line.fn)}({args}{ns.attrs(line.attrs)})"
    if line.item is not None:
        expr = f"{expr}[{line.item}]"
    if line.sum_to is not None:
        expr = f"unbroadcast({expr}, {line.sum_to!r})"
    if line.cast is not None:
        expr = f"({expr}).astype({ns.bind(str(line.cast), line.cast)})"
    return expr


def text(line: Line, ns: Namespace) -> str:
    """One line of source (not indented)."""
    if line.kind == "comment":
        return f"# {line.comment}"
    if line.kind == "del":
        code = f"del {', '.join(line.args)}"
    elif not line.target:
        code = expression(line, ns)
    else:
        added = f"{line.target} + " if line.accumulate else ""
        code = f"{line.target} = {added}{expression(line, ns)}"
    return f"{code}  # {line.comment}" if line.comment else code


def program(low: Lowered, lines: list[Line], returns: Returns, extra_arg: str = ""
            ) -> tuple[str, Callable[..., Any]]:
    """The step's source, ``def step(a0, ...):`` with ``lines`` and the return, and the
    function it defines."""
    rec, ns = low.rec, Namespace(low.arg_arrays)
    ns.bind("seed", low.seed)
    params = [*(f"a{i}" for i in range(len(rec.targs))), *extra_arg.split()]
    head = [f"def step({', '.join(params)}):"]
    for k, t in enumerate(rec.params):
        head.append(f"    {low.names[id(t)]} = {ns.bind('P', rec.params)}[{k}]._data"
                    f"  # parameter {t.shape}")
    for k, t in enumerate(low.consts):
        head.append(f"    {low.names[id(t)]} = {ns.bind('C', low.consts)}[{k}]._data"
                    f"  # constant {t.shape}")
    body = ["    " + text(line, ns) for line in lines]
    source = "\n".join([*head, *body, "    " + _return(returns)]) + "\n"
    exec(builtins.compile(source, "<glassgrad.compile>", "exec"), ns.env)  # noqa: S102
    return source, ns.env["step"]  # (our own source, built from the op table)


def _return(r: Returns) -> str:
    grads = [g + ".copy()" if copy else g for g, copy in zip(r.grads, r.copied)]
    aux = "" if r.aux is None else f", ({''.join(a + ', ' for a in r.aux)})"
    return f"return {r.loss}, ({', '.join(grads)}{',' if len(grads) == 1 else ''}){aux}"


def guard(low: Lowered) -> tuple[Callable[[tuple], bool], Callable[[tuple], str | None]]:
    """The checks a call must pass to replay this recording (``guards``): the arguments,
    the tensors the program reads, what the loss function captures (looked at after
    recording, as the recording left it) and the values it read in Python."""
    rec = low.rec
    g = Guards(len(rec.targs))
    g.arguments(rec.targs)
    g.captured(rec.loss_fn, "the loss function")
    g.program_tensors(rec.params, low.consts)
    for read in rec.reads:
        g.value_read(*read)
    return g.build()


def _literal(v: Any) -> bool:
    """Whether ``repr(v)`` is a faithful Python literal for an op attribute."""
    if v is None or isinstance(v, bool | int | float | str):
        return isinstance(v, bool | int | str) or v is None or np.isfinite(v)
    if isinstance(v, tuple):
        return all(_literal(x) for x in v)
    return False


def _has_arg(v: Any, arg_arrays: dict[int, str]) -> bool:
    if isinstance(v, tuple):
        return any(_has_arg(x, arg_arrays) for x in v)
    return isinstance(v, np.ndarray) and id(v) in arg_arrays

"""The compiler's intermediate representation: a step is a list of ``Line`` objects.

Lowering (``lower.py``) turns a recording into lines, each pass (``passes.py``) turns lines
into lines, and the emitter (``emit.py``) writes them as source text once, at the end. A
line names the values it reads and writes; a name is either a temporary of the step (the
target of some line: ``v3``, ``g_p0``, ``all_v2``) or a value the step is given: an argument
``a0``, a parameter ``p0``, a constant ``c0``, the ``seed``.
"""

from __future__ import annotations

import dis
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import numpy as np

from ..rule_reads import positions, read_positions


@dataclass(eq=False)
class Line:
    """One statement: ``target = fn(*args, **attrs)  # comment``, then what the backward walk
    does to the result: ``item`` (one of a variadic rule's gradients), ``sum_to`` (summed
    down to an input's shape), ``cast`` (to its dtype), ``accumulate`` (added to what
    ``target`` already holds).

    ``kind``: "call" as above; "copy" is ``target = args[0]`` (the seed, a variadic rule's
    gradients); "del" deletes ``args``; "comment" is the comment alone. ``update``: a folded
    line, which writes the optimizer's update into ``U[update]`` and has no target.

    For the passes: ``values`` are the arrays ``target`` held in the recording; ``into`` is
    the op's in-place variant (it writes over ``args[0]``, same values); ``reads`` are the
    positions of ``args`` that ``fn`` reads (None: all of them, or cannot tell)."""

    target: str = ""
    fn: Callable[..., Any] | None = None
    name: str = ""  # the name ``fn`` has in the source
    args: list[str] = field(default_factory=list)
    attrs: dict[str, Any] | None = None
    comment: str = ""
    kind: Literal["call", "copy", "del", "comment"] = "call"
    item: int | None = None
    sum_to: tuple[int, ...] | None = None
    cast: np.dtype | None = None
    accumulate: bool = False
    update: int | None = None
    values: list[np.ndarray] = field(default_factory=list)
    into: Callable[..., Any] | None = None
    into_name: str = ""
    reads: frozenset[int] | None = None

    def names(self) -> list[str]:
        """Every name the line mentions: its target and its arguments."""
        return [self.target, *self.args] if self.target else list(self.args)


def args_read(fn: Callable[..., Any], n: int, skip: int = 0) -> frozenset[int] | None:
    """Which of the ``n`` arguments after the first ``skip`` that ``fn`` takes it reads
    (positions counted from ``skip``; None: cannot tell, so all of them).

    The compiler's one question about a function's arguments. A backward rule's answer is
    its op entry's ``reads`` (``rule_reads``; reads of metadata do not count, which is safe:
    an in-place variant never changes an array's shape or dtype). The fold and in-place
    kernels have no declaration, so theirs comes from their bytecode (``loaded_names``)."""
    reads = read_positions(fn, skip + n, values_only=True)
    if reads is None:
        reads = _bytecode_positions(fn, skip + n)
    if reads is None:
        return None
    return frozenset(k - skip for k in reads if k >= skip)


def _bytecode_positions(fn: Callable[..., Any], n: int) -> frozenset[int] | None:
    """Which of the first ``n`` positional parameters ``fn``'s body loads (None: cannot
    tell)."""
    names = loaded_names(fn)
    return None if names is None else positions(fn, n, names)


@cache
def loaded_names(fn: Callable[..., Any]) -> frozenset[str] | None:
    """The local names a function's body loads, counting a name passed on to a helper and a
    read of metadata. None for what bytecode cannot settle: no code object, ``*args`` or
    ``**kwargs``, a parameter captured by an inner function."""
    code = getattr(fn, "__code__", None)
    if code is None or code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS):
        return None
    if code.co_cellvars:
        return None
    loaded: set[str] = set()
    for ins in dis.get_instructions(code):
        if ins.opname.startswith("LOAD_FAST") or ins.opname in ("LOAD_DEREF", "LOAD_CLOSURE"):
            arg = ins.argval  # a tuple where one instruction loads two names (3.13)
            loaded.update(arg if isinstance(arg, tuple) else (arg,))
    return frozenset(loaded)

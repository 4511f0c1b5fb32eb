"""In-place lines for ``gg.compile``: reuse an array the program made when nothing reads it again.

An eager step allocates a fresh array for every result, because any tensor may be read later.
A recording knows the whole step, so it can prove for one line that an array is
- its own: made by an earlier line of this step, not an argument, a parameter, a constant
  or the seed, and no view of one;
- dead afterwards: no later line, and no returned value, reads it or any array sharing its
  memory.
Such a line then calls the op table's in-place variant (``forward_into`` writes over its
input, ``grads_into`` over the incoming gradient). These variants compute the same values
bit for bit, so a replay still equals the eager engine.

A forward op can write over its input even though backward rules still name that input,
provided none of them reads it. relu's rule reads ``out``, not ``x``, and linear's rules never
read ``out``. So in ``linear → relu`` the relu writes over the linear's result, and the step
keeps one array per layer instead of two. Which parameters a rule reads is taken from its
bytecode: a name it loads counts as read, and so does any name passed on to a helper.
"""

from __future__ import annotations

import dis
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from .ops import Op


@dataclass
class Line:
    """What a generated line computes, for the planner: ``target = fn(*args)``.

    ``into`` is the in-place variant, when the op has one; it writes over ``args[0]`` (a
    forward op's input, a rule's ``grad``). ``reads`` is the set of ``args`` positions the
    function reads; None means all of them."""

    target: str
    fn_name: str
    args: list[str]
    into: Callable[..., Any] | None = None
    into_name: str = ""
    reads: frozenset[int] | None = None


TEMPORARY = re.compile(r"\b(?:v\d+|g_\w+|all_v\d+)\b")  # the program's own temporaries


def rule_line(target: str, fn_name: str, args: list[str], rule: Callable[..., Any],
              into: Callable[..., Any] | None, into_name: str) -> Line:
    """A backward line ``target = rule(grad, out, *inputs)``, which may write over ``grad``."""
    return Line(target, fn_name, args, into, into_name, _read_positions(rule, len(args)))


def forward_line(target: str, fn_name: str, args: list[str], op: Op, into_name: str) -> Line:
    """A forward line ``target = op(*inputs)``; it may write over a one-input op's input."""
    into = op.forward_into if len(args) == 1 else None
    return Line(target, fn_name, args, into, into_name, None)


def plan(lines: list[str], meta: list[Line | None], arrays: dict[str, list[np.ndarray]],
         external: list[np.ndarray], returned: list[str],
         bind: Callable[[str, Any], str]) -> list[str]:
    """``lines`` with an in-place variant wherever the conditions above hold.

    ``arrays`` maps each temporary name to the arrays it held in the recording (more than
    one for a gradient that accumulates; such a name is never written over); ``external``
    are the arrays the step does not own; ``returned`` the names the step returns."""
    owner = {name: {_root(a) for a in arrs} for name, arrs in arrays.items()}
    forbidden = {_root(a) for a in external}
    uses = [TEMPORARY.findall(line.split("  #")[0]) for line in lines]
    out = list(lines)
    for i, m in enumerate(meta):
        if m is None or m.into is None:
            continue
        victim = m.args[0]
        if len(arrays.get(victim, ())) != 1 or len(arrays.get(m.target, ())) != 1:
            continue
        (a,), (result,) = arrays[victim], arrays[m.target]
        mem = _root(a)
        if (mem in forbidden or a.shape != result.shape or a.dtype != result.dtype
                or not (a.flags.owndata and a.flags.writeable)):
            continue
        if any(mem in owner.get(n, ()) for n in m.args[1:]):
            continue  # another argument of this very line shares the memory
        if not _dead_after(i, victim, mem, owner, uses, meta, returned, m.target):
            continue
        line = lines[i].replace(f"= {m.fn_name}(", f"= {bind(m.into_name, m.into)}(", 1)
        out[i] = f"{line}, written over {victim}" if "  # " in line \
            else f"{line}  # written over {victim}"
        owner[m.target] = {mem}
    return out


def _dead_after(i: int, victim: str, mem: int, owner: dict[str, set[int]],
                uses: list[list[str]], meta: list[Line | None], returned: list[str],
                target: str) -> bool:
    """Nothing after line ``i`` reads the memory ``mem`` of ``victim``, except ``target``
    (which will hold it) and ``victim`` itself in argument positions its function does not
    read."""
    if any(n != target and mem in owner.get(n, ()) for n in returned):
        return False
    for j in range(i + 1, len(uses)):
        m = meta[j]
        for n in uses[j]:
            if n == target or mem not in owner.get(n, ()):
                continue
            if n != victim or m is None or m.reads is None or m.target == victim:
                return False
            if any(arg == victim and k in m.reads for k, arg in enumerate(m.args)):
                return False
    return True


def fold_line(fn_name: str, args: list[str], fold: Callable[..., Any]) -> Line:
    """A line ``fold(c, α, β, grad, out, *inputs)`` that writes into the optimizer's ``c``
    (no target); its reads are the rule arguments the variant reads."""
    reads = _read_positions(fold, 3 + len(args))
    return Line("", fn_name, args, None, "",
                None if reads is None else frozenset(k - 3 for k in reads if k >= 3))


def unread_after(i: int, name: str, array: np.ndarray, lines: list[str],
                 meta: list[Line | None], arrays: dict[str, list[np.ndarray]],
                 returned: str) -> bool:
    """Whether nothing after line ``i`` (no later line, no returned value) reads ``name``
    or a temporary sharing memory with ``array``: then line ``i`` may change ``array``. A
    line that names it only in argument positions its function does not read is no read."""
    mem = _root(array)
    names = {name, *(n for n, arrs in arrays.items() if any(_root(a) == mem for a in arrs))}
    pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(names))) + r")\b")
    if pattern.search(returned):
        return False
    for j in range(i + 1, len(lines)):
        code = lines[j].split("  #")[0]
        if not pattern.search(code):
            continue
        m = meta[j]
        if m is None or m.reads is None or m.target in names or any(
                arg in names and k in m.reads for k, arg in enumerate(m.args)):
            return False
        if pattern.search(code.split("(", 1)[0].replace(m.target, "", 1)):
            return False  # named outside the call's arguments
    return True


def _root(a: np.ndarray) -> int:
    """The array that owns ``a``'s memory (views lead back to it), as an id."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return id(a)


def _read_positions(fn: Callable[..., Any], n: int) -> frozenset[int] | None:
    """Which of the first ``n`` positional parameters ``fn`` reads (None: cannot tell)."""
    names = _reads(fn)
    if names is None:
        return None
    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()]
    except (TypeError, ValueError):
        return None
    if len(params) < n:
        return None
    return frozenset(k for k in range(n) if params[k] in names)


@cache
def _reads(fn: Callable[..., Any]) -> frozenset[str] | None:
    """The local names a function's body loads. None for what bytecode cannot settle: no
    code object, ``*args``/``**kwargs``, or a parameter captured by an inner function."""
    code = getattr(fn, "__code__", None)
    if code is None or code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS):
        return None
    if code.co_cellvars:
        return None
    loaded: set[str] = set()
    for ins in dis.get_instructions(code):
        if ins.opname.startswith("LOAD_FAST") or ins.opname in ("LOAD_DEREF", "LOAD_CLOSURE"):
            arg = ins.argval
            loaded.update(arg if isinstance(arg, tuple) else (arg,))
    return frozenset(loaded)

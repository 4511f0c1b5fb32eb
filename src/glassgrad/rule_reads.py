"""Which arguments a backward rule reads, taken from its bytecode.

The engine needs this to know whether an in-place write matters (``w -= 1`` after ``w + x``
is harmless: add's rules never read ``w``; after ``w * x`` it is not), and ``gg.compile``
needs it to know which arrays a later line may still read. A name a rule loads counts as
read, and so does any name it passes on to a helper; what bytecode cannot settle (no code
object, ``*args``, a parameter captured by an inner function) counts as reading everything.
With ``values_only``, a name used only for its metadata (``x.shape``, ``x.ndim``, ``x.dtype``,
``x.size``, which no in-place write changes) does not count.
"""

from __future__ import annotations

import dis
import inspect
from collections.abc import Callable
from functools import cache
from typing import Any

_METADATA = frozenset({"shape", "ndim", "dtype", "size"})


def read_positions(fn: Callable[..., Any], n: int, values_only: bool = False
                   ) -> frozenset[int] | None:
    """Which of the first ``n`` positional parameters ``fn`` reads (None: cannot tell)."""
    names = loaded_names(fn, values_only)
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
def loaded_names(fn: Callable[..., Any], values_only: bool = False) -> frozenset[str] | None:
    """The local names a function's body loads (with ``values_only``, not counting a load
    that only reads the metadata). None for what bytecode cannot settle: no code object,
    ``*args``/``**kwargs``, or a parameter captured by an inner function."""
    code = getattr(fn, "__code__", None)
    if code is None or code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS):
        return None
    if code.co_cellvars:
        return None
    loaded: set[str] = set()
    instructions = list(dis.get_instructions(code))
    for ins, after in zip(instructions, [*instructions[1:], None]):
        if ins.opname.startswith("LOAD_FAST") or ins.opname in ("LOAD_DEREF", "LOAD_CLOSURE"):
            arg = ins.argval
            if (values_only and isinstance(arg, str) and after is not None
                    and after.opname == "LOAD_ATTR" and after.argval in _METADATA):
                continue
            loaded.update(arg if isinstance(arg, tuple) else (arg,))
    return frozenset(loaded)

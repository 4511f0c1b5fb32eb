"""Which arguments a backward rule reads by value, as its op-table entry declares (``reads=``).

The engine needs this to know whether an in-place write matters (``w -= 1`` after ``w + x``
is harmless: add's rules never read ``w``; after ``w * x`` it is not). A rule is called
``rule(grad, out, *inputs, **attrs)``; its entry names, per rule, which of ``out`` and the
inputs it reads by value (``grad`` is always read). A use of metadata only (``x.shape``,
``x.ndim``, ``x.dtype``, ``x.size``) does not count: no in-place write changes it.
``tests/test_op_fields.py`` checks every declaration against the rule's bytecode.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import cache
from typing import Any

# rule -> the parameter names it reads by value; filled by ``ops.Op`` from the entries.
_DECLARED: dict[Callable[..., Any], frozenset[str]] = {}


def declare(rule: Callable[..., Any], names: tuple[str, ...]) -> None:
    """Record that ``rule`` reads ``grad`` and ``names`` by value (a rule shared by two
    entries, such as max's and min's, must be declared the same way by both)."""
    reads = frozenset(("grad", *names))
    if _DECLARED.setdefault(rule, reads) != reads:
        raise ValueError(
            f"reads: {getattr(rule, '__name__', rule)!r} is declared as reading "
            f"{sorted(_DECLARED[rule])} by one op entry and {sorted(reads)} by another. "
            f"Fix: declare the same reads in both entries (they share the rule).")


def read_positions(fn: Callable[..., Any], n: int, values_only: bool = False
                   ) -> frozenset[int] | None:
    """Which of the first ``n`` positional parameters of the rule ``fn`` it reads by value.

    None means cannot tell, so the caller must assume every parameter is read: for a rule no
    op entry declares, and without ``values_only`` (a declaration states the values a rule
    reads, not the metadata it looks at). Only the slow path of backward asks, after an
    in-place write."""
    names = _DECLARED.get(fn)
    if names is None or not values_only:
        return None
    return positions(fn, n, names)


@cache
def positions(fn: Callable[..., Any], n: int, names: frozenset[str]) -> frozenset[int] | None:
    """Which of ``fn``'s first ``n`` positional parameters are among ``names`` (None: its
    signature cannot be read, or it has fewer parameters)."""
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None
    if len(params) < n:
        return None
    return frozenset(k for k in range(n) if params[k] in names)

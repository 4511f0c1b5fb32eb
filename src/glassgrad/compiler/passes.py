"""Passes over a step's lines: in-place variants, folded updates, freeing after last use.

An eager step allocates a fresh array for every result, because any tensor may be read later.
A recording knows the whole step, so it can prove for one line that an array is
- its own: made by an earlier line of this step, not an argument, a parameter, a constant
  or the seed, and no view of one;
- dead afterwards: no later line, and no returned value, reads it or any array sharing its
  memory.
Such a line then calls the op's in-place variant from ``kernels.py`` (``FORWARD_INTO``
writes over its input, ``GRADS_INTO`` over the incoming gradient). These compute the same values
bit for bit, so a replay still equals the eager engine.

A forward op can write over its input even though backward rules still name that input,
provided none of them reads it (``Line.reads``, from ``ir.args_read``). relu's rule reads
``out``, not ``x``, and linear's rules never read ``out``. So in ``linear → relu`` the relu
writes over the linear's result, and the step keeps one array per layer instead of two.

When that relu writes over a 2-D linear layer's result, the layer also leaves its bias out
and the relu adds it in its own pass (``bias_relu``): one pass over the layer's array instead
of two, as ``nn.Sequential`` does in the eager engine.

The same proof lets an optimizer's update change a parameter inside its gradient's product
(``fold``): nothing after that line may read the parameter. And a value nobody reads again
is deleted (``free_after_last_use``), as the eager engine drops each one once used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from .. import ops
from . import kernels
from .ir import Line, args_read
from .lower import Foldable


def held(lines: Iterable[Line]) -> dict[str, list[np.ndarray]]:
    """Each temporary with the arrays it held in the recording (more than one for a
    gradient that accumulates)."""
    out: dict[str, list[np.ndarray]] = {}
    for line in lines:
        if line.target:
            out.setdefault(line.target, []).extend(line.values)
    return out


def in_place(lines: list[Line], arrays: dict[str, list[np.ndarray]],
             external: list[np.ndarray], returned: list[str]) -> list[Line]:
    """``lines`` with an in-place variant wherever the conditions above hold.

    ``arrays``: what each temporary held (``held``; a name that held several, a gradient
    that accumulates, is never written over); ``external``: the arrays the step does not
    own; ``returned``: the names the step returns."""
    owner = {name: {_root(a) for a in arrs} for name, arrs in arrays.items()}
    forbidden = {_root(a) for a in external}
    out = list(lines)
    for i, line in enumerate(lines):
        if line.into is None:
            continue
        victim = line.args[0]
        if len(arrays.get(victim, ())) != 1 or len(arrays.get(line.target, ())) != 1:
            continue
        (a,), (result,) = arrays[victim], arrays[line.target]
        mem = _root(a)
        if (mem in forbidden or a.shape != result.shape or a.dtype != result.dtype
                or not (a.flags.owndata and a.flags.writeable)):
            continue
        if any(mem in owner.get(n, ()) for n in line.args[1:]):
            continue  # another argument of this very line shares the memory
        if not _dead_after(lines[i + 1:], victim, mem, owner, returned, line.target):
            continue
        written = f"written over {victim}"
        out[i] = dataclasses.replace(
            line, fn=line.into, name=line.into_name, into=None,
            comment=f"{line.comment}, {written}" if line.comment else written)
        owner[line.target] = {mem}
    return out


def bias_relu(lines: list[Line]) -> list[Line]:
    """``lines`` (after ``in_place``) where a relu writes over a 2-D linear layer's result
    that no line between the two names: the layer's line without its bias
    (``kernels.linear_no_bias``) and the relu adding it in its pass
    (``kernels.bias_relu_into``): one pass over the layer's array instead of two, the same
    bits. The relu's line now names the bias, a parameter the forward reads anyway."""
    out = list(lines)
    relu_into = kernels.FORWARD_INTO["relu"]
    for i, line in enumerate(lines):
        if line.fn is not relu_into or not plain(line):
            continue
        z = line.args[0]
        j = max((j for j in range(i) if lines[j].target == z), default=None)
        if j is None or any(z in lines[t].names() for t in range(j + 1, i)):
            continue
        lin = lines[j]
        if (lin.fn is not ops.linear.forward or not plain(lin) or len(lin.args) != 3
                or len(lin.values) != 1 or lin.values[0].ndim != 2):
            continue
        bias = lin.args[2]  # read later now: no line between may write over it (in_place
        if any(bias in lines[t].names() for t in range(j + 1, i)):  # names its victim)
            continue
        out[j] = dataclasses.replace(
            lin, fn=kernels.linear_no_bias, name="linear_no_bias",
            comment=f"{lin.comment}, its bias added by the relu")
        out[i] = dataclasses.replace(
            line, fn=kernels.bias_relu_into, name="bias_relu_into", args=[z, bias],
            comment=f"{line.comment}, adding {bias} first", reads=None)
    return out


def plain(line: Line) -> bool:
    """Whether ``line`` is a call whose result is its function's as it is: no variadic
    item, no sum to an input's shape, no cast, no accumulation, no folded update."""
    return (line.kind == "call" and line.item is None and line.sum_to is None
            and line.cast is None and not line.accumulate and line.update is None)


def _dead_after(later: list[Line], victim: str, mem: int, owner: dict[str, set[int]],
                returned: list[str], target: str) -> bool:
    """Nothing in ``later`` reads the memory ``mem`` of ``victim``, except ``target`` (which
    will hold it) and ``victim`` itself in argument positions its function does not read."""
    if any(n != target and mem in owner.get(n, ()) for n in returned):
        return False
    for line in later:
        for n in line.names():
            if n == target or mem not in owner.get(n, ()):
                continue
            if n != victim or line.reads is None or line.target == victim:
                return False
            if any(arg == victim and k in line.reads for k, arg in enumerate(line.args)):
                return False
    return True


def fold(lines: list[Line], arrays: dict[str, list[np.ndarray]], returned: list[str],
         candidates: list[tuple[str, np.ndarray, Foldable]]) -> tuple[list[Line], list[int]]:
    """``lines`` with each candidate parameter's gradient line (``(name, array, foldable)``)
    made its folded variant, ``fold(*U[k], grad, out, *inputs)``: c ← α·∂L/∂p + β·c with
    the optimizer's (c, α, β) as ``U[k]``; where no later line and no returned value reads
    the parameter. Returns the new lines and which candidates were folded, in ``U`` order."""
    lines = list(lines)
    folded: list[int] = []
    for k, (name, array, f) in enumerate(candidates):
        if not unread_after(lines[f.index + 1:], name, array, arrays, returned):
            continue  # a later line reads the weights: they must not change before it
        rule = lines[f.index]
        lines[f.index] = Line(
            fn=f.fn, name=f.name, args=rule.args, attrs=rule.attrs, update=len(folded),
            comment=f"the optimizer's update of {name} in ∂L/∂{name}'s product",
            reads=args_read(f.fn, len(rule.args), skip=3))
        folded.append(k)
    return lines, folded


def unread_after(later: list[Line], name: str, array: np.ndarray,
                 arrays: dict[str, list[np.ndarray]], returned: list[str]) -> bool:
    """Whether nothing in ``later`` (and no returned value) reads ``name`` or a temporary
    sharing memory with ``array``: then the line before may change ``array``. A line that
    names it only in argument positions its function does not read is no read."""
    mem = _root(array)
    names = {name, *(n for n, arrs in arrays.items() if any(_root(a) == mem for a in arrs))}
    if any(n in names for n in returned):
        return False
    for line in later:
        if not any(n in names for n in line.names()):
            continue
        if line.reads is None or line.target in names or any(
                arg in names and k in line.reads for k, arg in enumerate(line.args)):
            return False
    return True


def free_after_last_use(lines: list[Line], returned: list[str]) -> list[Line]:
    """``lines`` with a ``del`` after the last line that names a temporary (one not
    returned), as the eager engine drops each value once used: a large network then needs
    memory for a few layers' arrays, not for every array of the step at once."""
    temporaries = {line.target for line in lines if line.target}
    last: dict[str, int] = {}
    for i, line in enumerate(lines):
        for n in line.names():
            if n in temporaries:
                last[n] = i
    frees: dict[int, list[str]] = {}
    for n, i in last.items():
        if n not in returned:
            frees.setdefault(i, []).append(n)
    out = []
    for i, line in enumerate(lines):
        out.append(line)
        if i in frees:
            out.append(Line(kind="del", args=sorted(frees[i])))
    return out


def _root(a: np.ndarray) -> int:
    """The array that owns ``a``'s memory (views lead back to it), as an id."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return id(a)

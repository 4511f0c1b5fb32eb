"""In-place ops recorded in the graph, as PyTorch records them (``h.add_(1)``, ``h[0] = v``,
``h.relu_()`` on a tensor that requires grad, or ``x[0] = w`` writing one that does).

A node is the Tensor object itself, and every op that used ``h`` holds that object in its
``_parents``. So an in-place op on ``h`` (``rebase``):

1. moves ``h``'s node state (op, parents, attributes, stamp) to a fresh Tensor, ``old``,
   that shares ``h``'s memory: the tensor as it was;
2. computes the new value out of place from ``old`` with the ordinary ops (``old + v``);
3. writes it into the memory (``mark_modified``: the version counter) and makes ``h`` that
   new node, with a stamp newer than the write.

Ops that used ``h`` before (made earlier: smaller stamps) must reach ``old``, not ``h``. The
engine finds out in its slow path, which runs only for nodes made before the last in-place
write (``autograd._rebased`` calls ``route``): a parent whose stamp is newer than the node
itself was rebased after the node used it, so the edge is followed back along the
``_previous`` chain to the version the node saw. No cost on the hot path.

Values: ``old`` shares the written memory, so an earlier op whose backward reads the old
value fails the version check, as in PyTorch ("modified by an inplace operation"). The new
node itself may need the old value (``h.mul_(w)``: w's gradient is the old h): then the
computation starts from a copy (a ``cast`` node, PyTorch's saved ``original_self``).

Views: an in-place op on a view writes memory that another tensor may hold (the base, or
other views). PyTorch rewrites the base's graph (``CopySlices``); glassgrad records the op on
the written tensor only, so any other tensor over that memory keeps a graph for its old
values. ``route`` refuses a backward pass through such a tensor if an op used it after the
write (its values then were not what its graph computes). The case the engine cannot see,
a view of a tensor that does not require grad, is refused when written (``check_view``), and
a tensor that does not require grad is refused a value that does while anything else holds
its memory (``_check_alone``: a view made earlier would miss the gradient).
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from . import autograd
from .autograd import GraphError, _owner, _tick, mark_modified
from .tensor import Tensor

# Keyed by id, each entry dropped when its tensor dies (weakref's own dictionaries compare
# keys with ==, which on tensors is elementwise):
# a rebased tensor (and each older state) -> [weakref to it, the state before it];
_previous: dict[int, list] = {}
# the old states ``rebase`` made, reached only through ``route``, never by a new op.
_superseded: dict[int, weakref.ref] = {}
# id(memory owner) -> [clock of the last recorded in-place write into it, weakref to it].
_recorded: dict[int, list] = {}


# --------------------------------------------------------------------------- forward
def rebase(t: Tensor, compute: Callable[[Tensor], Tensor], what: str,
           values: Callable[[Tensor], np.ndarray] | None = None) -> Tensor:
    """Record the in-place op ``t ← compute(t)``: the new values written into ``t``'s
    memory and ``t`` made the node that computed them (see the module docstring).
    ``values``: the values to write when they are not ``compute``'s (``t[i] = v`` with a
    repeated index: the last write wins, as NumPy and PyTorch assign). Checked before
    anything is written or any state moves; returns ``t``."""
    if not t._requires_grad:  # a plain tensor joins the graph: nothing may see it unrecorded
        _check_alone(t, what)
    old = _superseding(t)
    result = _new_value(old, compute)
    if _reads_input(result, old):  # the op needs the old values: start from a copy of them
        orig = autograd.record(_cast_op(), (old,), old._data.copy(), {"dtype": old.dtype})
        result = _new_value(orig, compute)
    _check_fits(t, result, what)
    data = result._data if values is None else values(old)
    np.copyto(t._data, data, casting="unsafe")  # (checked: same kind, or copy_'s rule)
    mark_modified(t)
    _mark_recorded(t._data)
    before = _previous.get(id(t))
    if before is not None:
        _remember(_previous, old, before[1])
    _remember(_previous, t, old)
    key = id(old)
    _superseded[key] = weakref.ref(old, lambda _, k=key: _superseded.pop(k, None))
    t._op, t._parents, t._attrs = result._op, result._parents, result._attrs
    t._requires_grad = True
    t._stamp = _tick()  # newer than the write, so the version check does not flag t itself
    for h in autograd.STATE.hooks:  # observers saw the ops that computed the new value
        f = getattr(h, "on_inplace", None)
        if f is not None:
            f(t, what)
    return t


def _array_refs(t: Tensor) -> int:
    return sys.getrefcount(t._data)  # (the same expression for t and for the calibration)


# The count of an array that only its tensor holds (its slot, and getrefcount's argument),
# measured on this interpreter rather than assumed.
_ALONE = _array_refs(Tensor._wrap(np.empty(1)))


def _check_alone(t: Tensor, what: str) -> None:
    """Refuse to make a plain tensor a graph node while anything else holds its memory: a
    view made before the write (``v = x[:2]``) would see the new values and send no
    gradient (PyTorch tracks views; glassgrad's node is the tensor). Every view holds the
    array it views, so any view, ``.numpy()`` array, alias or source array shows up as one
    reference more (a holder that is not a view is refused too: an error, never a lost
    gradient)."""
    if _array_refs(t) > _ALONE:
        raise RuntimeError(
            f"{what}: writing a value that requires grad into a tensor that does not (shape "
            f"{t.shape}) makes it part of the graph, but its memory is also held elsewhere: a "
            f"view of it (x[:2], x.view(...)), a .numpy() array, a .data or detach() alias, "
            f"or the NumPy array it was made from (from_numpy, as_tensor). A view made before "
            f"this write would see the new values but send no gradient (PyTorch tracks views; "
            f"glassgrad does not). Fix: write into a fresh tensor (x = x.clone() before the "
            f"write, or x = torch.zeros(...)), or drop the other references first.")


def _remember(table: dict[int, list], t: Tensor, old: Tensor) -> None:
    key = id(t)
    table[key] = [weakref.ref(t, lambda _, k=key: table.pop(k, None)), old]


def _superseding(t: Tensor) -> Tensor:
    """A fresh Tensor with ``t``'s node state and memory: ``t`` as it was."""
    old = Tensor._wrap(t._data, t._requires_grad)
    old._op, old._parents, old._attrs = t._op, t._parents, t._attrs
    for slot in ("_stamp", "_ver"):
        if hasattr(t, slot):
            setattr(old, slot, getattr(t, slot))
    return old


def _new_value(src: Tensor, compute: Callable[[Tensor], Tensor]) -> Tensor:
    """``compute(src)``, as a node of ``src``'s dtype that requires grad (a result without
    a gradient, such as a rounded quotient, still replaces the values: its node sends 0)."""
    from . import functional as F

    result = compute(src)
    if result._data.dtype != src._data.dtype and result._data.dtype.kind == "f" == \
            src._data.dtype.kind:
        result = F.cast(result, src._data.dtype)  # PyTorch computes wide, stores narrow
    if not result._requires_grad:
        everywhere = np.ones(src._data.shape, dtype=bool)
        result = F.where(everywhere, result, src)
    return result


def _cast_op() -> Any:
    from .ops import cast

    return cast


def _reads_input(result: Tensor, old: Tensor) -> bool:
    """Whether a backward rule of the nodes just made from ``old`` reads ``old``'s values."""
    stack, seen = [result], set()
    stamp = getattr(old, "_stamp", 0)
    while stack:
        node = stack.pop()
        if id(node) in seen or node._op is None or node._stamp <= stamp:
            continue
        seen.add(id(node))
        parents = node._parents
        if any(p is old for p in parents) and _reads_parent(node, old):
            return True
        stack.extend(parents)
    return False


def _reads_parent(node: Tensor, old: Tensor) -> bool:
    parents = node._parents
    return any(k >= 0 and parents[k] is old for k in autograd.values_read(node, parents))


def _check_fits(t: Tensor, result: Tensor, what: str) -> None:
    shape, arr = result._data.shape, t._data
    if not arr.flags.writeable:
        raise RuntimeError(
            f"{what}: the tensor (shape {arr.shape}) is a read-only view, such as an expand() "
            f"or broadcast result, whose elements share memory (PyTorch: 'more than one "
            f"element of the written-to tensor refers to a single memory location'). Fix: "
            f"write into a copy (t = t.clone()) or use the out-of-place op.")
    if shape != arr.shape:
        raise ValueError(
            f"{what}: the result would have shape {shape}, but an in-place op writes into the "
            f"tensor, of shape {arr.shape}. Fix: give an operand that broadcasts to "
            f"{arr.shape}, or use the out-of-place op.")
    if not np.can_cast(result._data.dtype, arr.dtype, casting="same_kind"):
        raise TypeError(
            f"{what}: the result has dtype {result._data.dtype}, which cannot be written into "
            f"this tensor of dtype {arr.dtype} (shape {arr.shape}) (PyTorch refuses it too). "
            f"Fix: convert the tensor first (x = x.float()), or use the out-of-place op.")


def _mark_recorded(arr: np.ndarray) -> None:
    owner = _owner(arr)
    key = id(owner)
    entry = _recorded.get(key)
    if entry is None:
        _recorded[key] = [0, weakref.ref(owner, lambda _, k=key: _recorded.pop(k, None))]
    _recorded[key][0] = autograd._writes
    autograd._rebased = route  # the engine's slow path now routes edges


# --------------------------------------------------------------------------- checks
def check_view(t: Tensor, what: str) -> None:
    """Refuse a recorded in-place op that the graph could not follow: on a view of a leaf
    that requires grad (PyTorch's error), or on a view of memory no graph node owns."""
    leaf = _viewed_leaf(t)
    if leaf is not None:
        raise RuntimeError(
            f"{what}: a view of a leaf tensor that requires grad (shape {leaf.shape}) is being "
            f"used in an in-place operation (PyTorch: 'a view of a leaf Variable that requires "
            f"grad is being used in an in-place operation'): the leaf's gradient could not be "
            f"computed afterwards. Fix: do the write inside `with gg.no_grad():`, or write "
            f"into a copy (v = w[...].clone(); v.{what.split('(')[0]}(...)).")
    if not t._requires_grad and t._data.base is not None:
        raise RuntimeError(
            f"{what}: writing a value that requires grad into a view (shape {t.shape}) of a "
            f"tensor that does not: glassgrad records the op on the view only, so the tensor "
            f"it views (which sees the new values) would send no gradient to the value "
            f"(PyTorch records it on both). Fix: write through the tensor itself with an "
            f"index (x[:2] = w, or x[:2] = x[:2] + w for x[:2] += w).")


def _viewed_leaf(t: Tensor) -> Tensor | None:
    """A leaf that requires grad and shares ``t``'s memory, reached through ``t``'s
    parents that share it too (``w[:2]``, ``w.view(3)``)."""
    if t._op is None or t._data.base is None:
        return None
    owner = _owner(t._data)
    stack, seen = list(t._parents or ()), set()
    while stack:
        p = stack.pop()
        if id(p) in seen or not p._requires_grad or _owner(p._data) is not owner:
            continue
        seen.add(id(p))
        if p._op is None:
            return p
        stack.extend(p._parents or ())
    return None


# --------------------------------------------------------------------------- backward
def route(node: Tensor, walked: list[Tensor]) -> tuple[Tensor, ...]:
    """``node``'s parents as ``node`` used them: a parent rebased since (its stamp is newer
    than ``node``'s) is followed back to its state then; the routed tuple is kept. Raises if
    a parent is another tensor's alias that an op used after a recorded write through it.
    Called by ``run_backward`` for nodes made before the last in-place write only."""
    parents = node._parents
    routed = as_used(node)
    if any(a is not b for a, b in zip(routed, parents)):
        node._parents = parents = routed
    _check_not_stale(node, walked)
    return parents


def as_used(node: Tensor) -> tuple[Tensor, ...]:
    """``node``'s parents as ``node`` used them (each rebased one followed back to its
    state then), without changing the node: for readers of the graph (grad_fn, explain)."""
    stamp = node._stamp
    return tuple(_as_seen(p, stamp) for p in node._parents or ())


def _as_seen(p: Tensor, stamp: int) -> Tensor:
    while getattr(p, "_stamp", 0) > stamp:  # a parent made after its user: rebased since
        p = _previous[id(p)][1]
    return p


def _check_not_stale(node: Tensor, walked: list[Tensor]) -> None:
    """Raise if ``node``'s memory took a recorded in-place write that ``node``'s graph does
    not include (a write through a view of it, or through the tensor it views), and an op
    made after that write used ``node``: that op read values ``node``'s graph did not
    compute, so the gradient through ``node`` would be wrong."""
    entry = _recorded.get(id(_owner(node._data)))
    if entry is None or entry[0] < node._stamp or id(node) in _superseded:
        return
    for user in walked:
        if user._stamp > entry[0] and any(p is node for p in user._parents):
            raise GraphError(
                f"backward(): the tensor computed by '{node._op.name}' (shape {node.shape}) "
                f"shares memory with a tensor that was changed by an in-place op after it "
                f"was made (a view of it, or the tensor it is a view of), and "
                f"'{user._op.name}' used it after that write. PyTorch rewrites the graph of "
                f"every view of the memory; glassgrad records the op only on the tensor "
                f"written, so the gradient through this one would be wrong. Fix: write "
                f"through the tensor you use afterwards (h[:2] *= 3 instead of v = h[:2]; "
                f"v *= 3), or clone the view before writing into it (v = h[:2].clone()).")

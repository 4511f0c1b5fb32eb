"""The backward walk's per-edge work has one definition: ``autograd.to_input``.

The engine tests its conditions inline before calling it (a call per edge costs about 1% of
a small eager step), and ``gg.compile``'s lowering writes its steps as source
(``unbroadcast(...)``, ``.astype(...)``). These tests run both over every op case of the
table, with float64, float32 and mixed inputs, and require every gradient sent along every
edge, in the walk's order, to be the same bits.
"""

from __future__ import annotations

import numpy as np

import glassgrad as gg
from glassgrad import autograd
from glassgrad.compiler import emit
from glassgrad.compiler.lower import lower
from glassgrad.compiler.record import record


class _Edges:
    """Engine observer: the gradients sent along each edge, in the walk's order."""

    def __init__(self) -> None:
        self.sent: list[np.ndarray] = []

    def on_backward(self, node, grad, sent) -> None:
        self.sent.extend(g for g in sent if g is not None)


def _engine_edges(loss: gg.Tensor) -> list[np.ndarray]:
    obs = _Edges()
    with autograd.hook(obs):
        loss.backward(retain_graph=True)
    return obs.sent


def _compiler_edges(low) -> list[np.ndarray]:
    """Run the lowered lines one by one (no pass applied), as the emitted source computes
    them; the value of each gradient line before it is added to what its target holds."""
    ns = emit.Namespace(low.arg_arrays)
    ns.bind("seed", low.seed)
    rec = low.rec
    for t in (*rec.targs, *rec.params, *low.consts):
        ns.env[low.names[id(t)]] = t._data
    edges = []
    for line in low.lines:
        if line.kind == "comment":
            continue
        value = eval(emit.expression(line, ns), ns.env)  # noqa: S307  (our own lines)
        if line.target.startswith("g_") and line.args != ["seed"]:
            edges.append(value)
        ns.env[line.target] = ns.env[line.target] + value if line.accumulate else value
    return edges


def _lowered(fn, args):
    targs = tuple(a if isinstance(a, gg.Tensor) else gg.Tensor._wrap(np.asarray(a))
                  for a in args)
    rec = record(fn, targs)
    return rec, lower(rec)


def _assert_same_edges(fn, args) -> list:
    rec, low = _lowered(fn, args)
    mine = _compiler_edges(low)
    theirs = _engine_edges(rec.loss)
    assert len(mine) == len(theirs) > 0
    for k, (a, b) in enumerate(zip(mine, theirs)):
        a, b = np.asarray(a), np.asarray(b)
        assert (a.shape, a.dtype) == (b.shape, b.dtype), k
        np.testing.assert_array_equal(a, b, err_msg=f"edge {k}")
    return low.lines


def test_every_edge_sends_the_engines_gradient(op_case, cases) -> None:
    name, shapes, attrs = op_case
    op = gg.OPS[name]
    index = attrs.get("index")
    if isinstance(index, np.ndarray) and index.dtype == np.bool_:
        return  # refused by gg.compile (tests/test_compile.py checks that)
    for dtypes in ("float64", "float32", "mixed"):
        rng = np.random.default_rng(5)
        dtype = np.float32 if dtypes == "float32" else np.float64
        args = cases.sample(op, shapes, rng, dtype=dtype)
        floats = [i for i, a in enumerate(args) if isinstance(a, gg.Tensor)]
        if dtypes == "mixed":  # float32 meets float64: that input's gradients are cast
            if len(floats) < 2:
                continue
            args[floats[0]] = gg.tensor(args[floats[0]].numpy().astype(np.float32),
                                        requires_grad=True)
        weights = rng.standard_normal(op(*args, **attrs).shape)
        _assert_same_edges(lambda *xs, w=weights: (op(*xs, **attrs) * w).sum(), args)


def test_a_broadcast_and_cast_edge_is_summed_and_cast_as_the_engine_does() -> None:
    x = gg.tensor(np.arange(3, dtype=np.float32).reshape(3, 1), requires_grad=True)
    y = gg.tensor(np.linspace(-1, 1, 4), requires_grad=True)  # float64: x's gradient is cast
    lines = _assert_same_edges(lambda x, y: ((x + y) * y).sum(), [x, y])
    (x_line,) = [line for line in lines if line.target == "g_a0"]
    assert x_line.sum_to == (3, 1) and x_line.cast == np.float32
    text = emit.text(x_line, emit.Namespace())
    assert text == "g_a0 = (unbroadcast(add_grad_a(g_v0, v0, a0, a1), (3, 1))).astype(float32)"

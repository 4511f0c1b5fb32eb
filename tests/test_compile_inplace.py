"""gg.compile writes over an array only where its recording proves nothing reads it again.

Each case would give wrong numbers if an in-place line were used where it must not be; the
eager engine (which never writes over anything) is the oracle, bit for bit.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import ops
from glassgrad.compiler import emit, kernels, passes
from glassgrad.compiler.ir import Line, args_read, loaded_names


def _params(rng, *shapes):
    return [gg.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]


def _same_as_eager(fn, params, calls):
    """Compile fn, run it on each argument tuple, compare loss and gradients with eager."""
    step = gg.compile(fn)
    for args in calls:
        for p in params:
            p.grad = None
        loss = fn(*args)
        loss.backward()
        want = [p.grad.numpy().copy() for p in params]
        for p in params:
            p.grad = None
        got_loss = step(*args)
        assert got_loss.item() == loss.item()
        for p, w in zip(params, want):
            np.testing.assert_array_equal(p.grad.numpy(), w)
    return step.source


def _calls(rng, n=3, shape=(5, 3)):
    return [(gg.tensor(rng.standard_normal(shape)),) for _ in range(n)]


def test_an_mlp_step_writes_activations_and_their_gradients_in_place() -> None:
    rng = np.random.default_rng(0)
    model = gg.nn.MLP([3, 4, 4, 2], activation="relu", seed=0)
    y = np.array([0, 1, 1, 0, 1])
    src = _same_as_eager(lambda X: gg.nn.functional.cross_entropy(model(X), y),
                         list(model.parameters()), _calls(rng))
    assert src.count("relu_into(") == 2 and src.count("relu_grad_x_into(") == 2
    # each relu writes over its linear layer's result and adds the layer's bias in its pass
    # (passes.bias_relu): the layer's line leaves the bias out
    assert src.count("bias_relu_into(") == 2 and src.count("linear_no_bias(") == 2
    assert re.search(r"v(\d+) = bias_relu_into\(v(\d+), (p\d+)\)  # \(5, 4\) relu, written "
                     r"over v\2, adding \3 first", src)


def test_a_bias_written_over_before_the_relu_stays_in_the_layer() -> None:
    """A bias that is the step's own array, written over (tanh in place) between the layer
    and its relu: the relu must not read it later, so the layer adds its own bias."""
    rng = np.random.default_rng(6)
    W, b = _params(rng, (4, 3), (4,))

    def fn(X):
        b2 = b * 2.0
        h = gg.nn.functional.linear(X, W, b2)
        t = gg.tanh(b2)  # (linear's rules never read the bias: b2 is dead here)
        return gg.relu(h).sum() + t.sum()

    src = _same_as_eager(fn, [W, b], _calls(rng))
    assert "tanh_into(" in src and "relu_into(" in src
    assert "bias_relu_into(" not in src and "linear_no_bias" not in src


def test_a_relu_after_a_3d_linear_keeps_the_bias_in_the_layer() -> None:
    """passes.bias_relu takes 2-D layers only: here the relu writes over the layer's result
    as before, and the layer adds its own bias."""
    rng = np.random.default_rng(5)
    W, b = _params(rng, (4, 3), (4,))

    def fn(X):
        return gg.relu(gg.nn.functional.linear(X.reshape(1, 5, 3), W, b)).sum()

    src = _same_as_eager(fn, [W, b], _calls(rng))
    assert "relu_into(" in src and "bias_relu_into(" not in src and "linear_no_bias" not in src


def test_a_pre_activation_read_again_forward_is_not_written_over() -> None:
    rng = np.random.default_rng(1)
    W, b = _params(rng, (4, 3), (4,))

    def fn(X):
        h = gg.nn.functional.linear(X, W, b)
        return ((h.relu() + h) ** 2).sum()  # a skip connection reads h after relu

    src = _same_as_eager(fn, [W, b], _calls(rng))
    assert "relu_into(" not in src and "relu(" in src


def test_an_input_whose_producer_reads_it_in_backward_is_not_written_over() -> None:
    rng = np.random.default_rng(2)
    (w,) = _params(rng, (3,))

    def fn(X):
        h = (X * w).exp()  # exp's rule reads its result, h, in backward
        return (h.relu() * X).sum()

    src = _same_as_eager(fn, [w], _calls(rng))
    assert "relu_into(" not in src


def test_a_gradient_shared_by_two_branches_is_not_written_over() -> None:
    rng = np.random.default_rng(3)
    w1, w2 = _params(rng, (3,), (3,))

    def fn(X):
        s = (X * w1).relu() + (X * w2).relu()  # add passes one gradient array to both
        return (s * X).sum()

    src = _same_as_eager(fn, [w1, w2], _calls(rng))
    # The first relu backward must not write over the shared gradient; the second may,
    # since nothing reads it afterwards.
    assert src.count("relu_grad_x_into(") <= 1


def test_an_argument_or_parameter_is_never_written_over() -> None:
    rng = np.random.default_rng(4)
    (w,) = _params(rng, (5, 3))
    X = gg.tensor(rng.standard_normal((5, 3)))
    before_x, before_w = X.numpy().copy(), w.numpy().copy()
    src = _same_as_eager(lambda X: (w.relu() * X.relu()).sum(), [w], [(X,), (X,)])
    assert "relu_into(" not in src  # relu of a parameter and of the data: not its own arrays
    np.testing.assert_array_equal(X.numpy(), before_x)
    np.testing.assert_array_equal(w.numpy(), before_w)


def test_an_array_the_step_returns_is_never_written_over() -> None:
    a, b = np.ones(3), np.ones(3)
    line = Line("v1", ops.relu.forward, "relu", ["v0"], comment="(3,) relu", values=[b],
                into=kernels.FORWARD_INTO["relu"], into_name="relu_into")
    lines = ["v1 = relu(v0)  # (3,) relu"]

    def plan(returned, external=()):
        planned = passes.in_place([line], {"v0": [a], "v1": [b]}, list(external), returned)
        return [emit.text(x, emit.Namespace()) for x in planned]

    assert plan(["v1"]) == ["v1 = relu_into(v0)  # (3,) relu, written over v0"]
    assert plan(["v0", "v1"]) == lines  # v0 is returned: its values must survive
    assert plan(["v1"], external=[a]) == lines  # not the step's own


@pytest.mark.parametrize(("rule", "reads"), [
    (ops.relu.rules[0], {"grad", "out"}),
    (ops.linear.rules[0], {"grad", "weight"}),
    (ops.linear.rules[1], {"grad", "x"}),
    (ops.tanh.rules[0], {"grad", "out"}),
])
def test_which_parameters_a_rule_reads_comes_from_its_bytecode(rule, reads) -> None:
    names = loaded_names(rule)
    assert names is not None and reads <= names
    assert "out" not in names or "out" in reads


def test_a_rule_that_cannot_be_inspected_counts_as_reading_everything() -> None:
    assert args_read(np.add, 3) is None
    assert args_read(lambda *a: a[0], 3) is None


def test_in_place_variants_give_the_same_bits_as_the_rules() -> None:
    rng = np.random.default_rng(6)
    assert set(kernels.FORWARD_INTO) <= set(ops.OPS) and set(kernels.GRADS_INTO) <= set(ops.OPS)
    for op in (ops.OPS[name] for name in kernels.FORWARD_INTO):
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal((7, 5)).astype(dtype)
            g = rng.standard_normal((7, 5)).astype(dtype)
            out = op.forward(x)
            np.testing.assert_array_equal(kernels.forward_into(op)(x.copy()), out)
            np.testing.assert_array_equal(kernels.grad_into(op, 0)(g.copy(), out, x),
                                          op.rules[0](g, out, x))


@pytest.mark.parametrize("write", [
    lambda h: h.add_(1.0),
    lambda h: h.relu_(),
    lambda h: h.__setitem__((slice(None), 0), 0.0),
    lambda h: gg.nn.ReLU(inplace=True)(h),
], ids=["add_", "relu_", "setitem", "ReLU(inplace=True)"])
def test_a_recorded_inplace_op_in_the_loss_function_is_refused_with_the_fix(write) -> None:
    lin = gg.nn.Linear(3, 2)
    before = [p.detach().numpy().copy() for p in lin.parameters()]

    def loss_fn(x):
        h = lin(x)
        write(h)
        return (h * h).sum()

    step = gg.compile(loss_fn, optimizer=gg.optim.SGD(lin.parameters(), lr=0.1))
    x = np.ones((4, 3), np.float32)
    with pytest.raises(gg.CompileError, match=r"wrote in place .* out-of-place form"):
        step(x)
    for p, b in zip(lin.parameters(), before):  # nothing was updated
        np.testing.assert_array_equal(p.detach().numpy(), b)
    loss_fn(gg.tensor(x)).backward()  # eager still works: no observer left behind
    assert lin.weight.grad is not None

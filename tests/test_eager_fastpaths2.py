"""The second round of eager shortcuts gives what the general path gives: values, dtypes,
graphs, gradients, walk order and error messages.

Shortcuts checked: ``x.sum()`` / ``x.mean()`` without ``ops.apply`` (against ``reductions``'
functions, which go through apply), ``apply``'s attribute path spelled out per arity and
the optimizer's memo of its parameters' arrays (against ``mark_modified``), and the
backward walk holding a lone waiting node outside the heap (against ``topological_order``,
the heap's order, and the cleanup after an error).
"""

from __future__ import annotations

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import autograd, ops, reductions
from glassgrad.ops import apply

_SHAPES = [(), (4,), (2, 3), (2, 1, 3)]
_DTYPES = [np.float32, np.float64, np.int32, np.int64, np.bool_]


def _tensor(shape, dtype, grad):
    values = np.random.default_rng(0).uniform(-2, 2, shape).astype(dtype)
    return gg.tensor(values, requires_grad=grad and np.dtype(dtype).kind == "f")


def _same_tensor(fast, general) -> None:
    assert type(fast) is type(general)
    assert fast.dtype == general.dtype
    assert fast.shape == general.shape
    np.testing.assert_array_equal(fast.numpy(), general.numpy())
    assert fast.op == general.op
    assert fast._attrs == general._attrs
    assert fast.requires_grad == general.requires_grad
    # the same inputs: the very tensors, or (a cast first) nodes of the same op and value
    assert len(fast._parents) == len(general._parents)
    for a, b in zip(fast._parents, general._parents):
        assert a is b or (a.op == b.op and np.array_equal(a.numpy(), b.numpy()))


@pytest.mark.parametrize("name", ["sum", "mean"])
@pytest.mark.parametrize("shape", _SHAPES)
@pytest.mark.parametrize("dtype", _DTYPES)
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_and_mean_methods_match_the_general_path(name, shape, dtype, keepdim) -> None:
    x = _tensor(shape, dtype, grad=True)
    general = getattr(reductions, name)
    try:
        expected = general(x, keepdim=keepdim)
    except RuntimeError as e:  # the mean of integers: the same refusal, word for word
        with pytest.raises(RuntimeError) as got:
            getattr(x, name)(keepdim=keepdim)
        assert str(got.value) == str(e)
        return
    got = getattr(x, name)(keepdim=keepdim)
    _same_tensor(got, expected)
    if x.requires_grad:
        got.sum().backward()
        fast_grad = x.grad.numpy().copy()
        x.grad = None
        expected.sum().backward()
        np.testing.assert_array_equal(fast_grad, x.grad.numpy())


@pytest.mark.parametrize("name", ["sum", "mean"])
@pytest.mark.parametrize("kwargs", [{"dim": 0}, {"axis": 1}, {"dtype": gg.float64},
                                    {"keepdims": True}, {"dim": (0, 1), "keepdim": True}])
def test_sum_and_mean_methods_with_arguments_take_the_general_path(name, kwargs) -> None:
    x = _tensor((2, 3), np.float32, grad=True)
    _same_tensor(getattr(x, name)(**kwargs), getattr(reductions, name)(x, **kwargs))


@pytest.mark.parametrize("name", ["sum", "mean"])
@pytest.mark.parametrize("kwargs", [{"dim": 2}, {"dim": 0, "axis": 0}, {"dtype": "nope"}])
def test_sum_and_mean_method_errors_match_the_general_path(name, kwargs) -> None:
    x = _tensor((2, 3), np.float32, grad=True)
    with pytest.raises(Exception) as expected:
        getattr(reductions, name)(x, **kwargs)
    with pytest.raises(type(expected.value)) as got:
        getattr(x, name)(**kwargs)
    assert str(got.value) == str(expected.value)


class _Watcher:
    def __init__(self) -> None:
        self.forward: list[tuple] = []
        self.backward: list[int] = []

    def on_forward(self, op, inputs, out) -> None:
        self.forward.append((op.name, tuple(map(id, inputs)), out.shape, dict(out._attrs)))

    def on_backward(self, node, grad, sent) -> None:
        self.backward.append(node._stamp)


@pytest.mark.parametrize("name", ["sum", "mean"])
def test_sum_and_mean_methods_tell_observers_and_respect_no_grad(name) -> None:
    x = _tensor((2, 3), np.float32, grad=True)
    fast, general = _Watcher(), _Watcher()
    with autograd.hook(fast):
        getattr(x, name)()
    with autograd.hook(general):
        getattr(reductions, name)(x)
    assert fast.forward == general.forward
    assert fast.forward[0][0] == name
    with gg.no_grad():
        y = getattr(x, name)()
    assert not y.requires_grad and y.op is None


@pytest.mark.parametrize("inputs", [1, 2, 3])
def test_apply_with_attributes_gives_each_arity_its_inputs(inputs) -> None:
    a = gg.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    b = gg.tensor([[5.0, 6.0], [7.0, 8.0]])
    if inputs == 1:
        out = apply(ops.sum, a, axis=0, keepdims=False)
        expected = [4.0, 6.0]
    elif inputs == 2:
        out = apply(ops.mse_loss, a, b, reduction="sum")
        expected = 4 * 16.0
    else:  # (no three-input op has attributes: the concatenation takes the general call)
        out = apply(ops.concatenate, a, b, a, axis=0)
        expected = np.concatenate([a.numpy(), b.numpy(), a.numpy()])
    np.testing.assert_allclose(out.numpy(), expected)
    assert out.op is not None and out._attrs


@pytest.mark.parametrize("case", ["sum", "mse_loss"])
def test_apply_with_attributes_keeps_its_error_message(case) -> None:
    a = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    message = r"^(sum|mse_loss): cannot apply to inputs of shapes"
    with pytest.raises((ValueError, IndexError), match=message):
        if case == "sum":
            apply(ops.sum, a, axis=3, keepdims=False)
        else:
            apply(ops.mse_loss, a, gg.tensor([1.0, 2.0]), reduction="mean")


# --------------------------------------------------------------------------- the walk
def _chain():
    x = gg.tensor([0.5, -1.0, 2.0], requires_grad=True)
    return [x], ((x * 2).tanh() * 3).exp().sum()


def _diamond():
    x = gg.tensor([0.5, -1.0, 2.0], requires_grad=True)
    w = gg.tensor([1.5, 0.25, -0.5], requires_grad=True)
    h = (x * w).tanh()
    return [x, w], ((h * h) + h.exp() * w).sum()


def _fan_out():
    x = gg.tensor([0.5, -1.0, 2.0], requires_grad=True)
    a, b, c = x * 2, x.exp(), x.tanh()
    return [x], ((a * b) + c).mean()


def _mlp():
    gg.manual_seed(0)
    model = gg.nn.MLP([2, 3, 1], activation="tanh")
    X = gg.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = gg.tensor([[0.0], [1.0], [1.0], [0.0]])
    return list(model.parameters()), gg.nn.functional.mse_loss(model(X), y)


@pytest.mark.parametrize("build", [_chain, _diamond, _fan_out, _mlp])
def test_walk_visits_nodes_in_the_heap_order(build) -> None:
    _, loss = build()
    expected = [n._stamp for n in autograd.topological_order([loss]) if n._op is not None]
    watcher = _Watcher()
    with autograd.hook(watcher):
        loss.backward()
    assert watcher.backward == expected


@pytest.mark.parametrize("build", [_chain, _diamond, _fan_out, _mlp])
def test_walk_gives_the_gradients_of_the_general_api(build) -> None:
    leaves, loss = build()
    expected = autograd.grad(loss, leaves, retain_graph=True)
    loss.backward()
    for leaf, g in zip(leaves, expected):
        np.testing.assert_array_equal(leaf.grad.numpy(), g.numpy())


class _Boom(Exception):
    pass


class _RaiseAt:
    def __init__(self, op_name: str) -> None:
        self.op_name = op_name

    def on_backward(self, node, grad, sent) -> None:
        if node.op == self.op_name:
            raise _Boom


@pytest.mark.parametrize("op_name", ["exp", "mul", "tanh"])
def test_an_error_mid_walk_leaves_no_partial_gradient(op_name) -> None:
    # The node waiting outside the heap when the observer raises must be cleared too: else
    # the next backward pass would add the old partial gradient to its own.
    x = gg.tensor([0.5, -1.0, 2.0], requires_grad=True)
    h = (x * 2).tanh()
    loss = h.exp().sum()
    with pytest.raises(_Boom), autograd.hook(_RaiseAt(op_name)):
        loss.backward(retain_graph=True)
    assert x.grad is None
    assert h._g is None and loss._g is None
    loss.backward()
    t = np.tanh(2 * x.numpy())
    np.testing.assert_allclose(x.grad.numpy(), np.exp(t) * (1 - t * t) * 2, rtol=1e-6)


# --------------------------------------------------------------------------- optimizer marks
def _sgd_setup():
    gg.manual_seed(0)
    model = gg.nn.MLP([2, 3, 1], activation="tanh")
    params = list(model.parameters())
    return model, params, gg.optim.SGD(params, lr=0.1)


def _step(model, opt) -> None:
    X = gg.tensor([[0.0, 1.0], [1.0, 0.0]])
    opt.zero_grad()
    model(X).sum().backward()
    opt.step()


def test_memo_marks_as_mark_modified_does() -> None:
    _, params, _ = _sgd_setup()
    memo: list = []
    for _ in range(2):  # first call fills the memo, the second uses it
        autograd.mark_modified_memo(params, memo)
        clock = autograd._writes
        assert [autograd.version(p) for p in params] == [clock] * len(params)
        autograd.mark_modified(*params)
        assert [autograd.version(p) for p in params] == [autograd._writes] * len(params)


@pytest.mark.parametrize("change", ["new_array", "view_of_new_array", "fewer_params"])
def test_a_step_after_a_change_still_refuses_an_old_graph(change) -> None:
    # A graph reading memory the step writes must refuse to go backward, also when the
    # parameter got another array since the memo was filled (the memo would mark the old one)
    model, params, opt = _sgd_setup()
    _step(model, opt)  # fills the memo
    p = params[0]
    if change == "new_array":
        p.data = np.ones_like(p.numpy())
    elif change == "view_of_new_array":
        p.data = np.ones((2, *p.shape), p.numpy().dtype)[1]
    else:
        params[1].grad = None
    w = gg.tensor(np.ones(p.shape, np.float32), requires_grad=True)
    y = (w * p.detach()).sum()  # reads p's memory through another tensor
    p.grad = gg.tensor(np.ones(p.shape, np.float32))
    opt.step()
    with pytest.raises(autograd.GraphError, match="modified in place"):
        y.backward()


def test_steps_with_the_memo_match_steps_with_mark_modified() -> None:
    model, params, opt = _sgd_setup()
    model2, params2, opt2 = _sgd_setup()
    opt2._marks = None  # (not a list: would raise if used) the reference marks by hand
    for _ in range(3):
        _step(model, opt)
        opt2.zero_grad()
        model2(gg.tensor([[0.0, 1.0], [1.0, 0.0]])).sum().backward()
        updated = opt2._check_grads()
        for group in opt2.param_groups:
            opt2._update(group)
        autograd.mark_modified(*updated)
    for p, q in zip(params, params2):
        np.testing.assert_array_equal(p.numpy(), q.numpy())

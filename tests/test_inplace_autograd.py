"""In-place ops recorded in the graph (``inplace_graph.py``), against PyTorch 2.13.

Each program below is written once and run twice, with ``lib`` glassgrad and with ``lib``
torch; it returns the values and gradients it computed, or raises. The two must agree:
the same numbers, or both an error (never a gradient where PyTorch refuses).
"""

from __future__ import annotations

import numpy as np
import pytest

import glassgrad as gg

A = np.array([[0.5, -1.25, 2.0], [-0.75, 1.5, 0.25]], dtype=np.float32)
W = np.array([1.5, -0.5, 2.0], dtype=np.float32)
C = np.array([[1.0, 2.0, -1.0], [0.5, -3.0, 1.5]], dtype=np.float32)  # weights the output


def _run(lib, program):
    """``program``'s (values, gradients) as arrays: h's values, then a.grad and w.grad."""
    a = lib.tensor(A, requires_grad=True)
    w = lib.tensor(W, requires_grad=True)
    h = program(lib, a, w)
    (h * lib.tensor(C)).sum().backward()
    return [h.detach().numpy().copy()] + [
        t.grad.numpy().copy() if t.grad is not None else np.zeros_like(t.detach().numpy())
        for t in (a, w)]


def _both(program):
    return _run(gg, program), _run(__import__("torch"), program)


def _setitem(h, index, value):
    h[index] = value
    return h


def _aug(h, op, v):
    if op == "+":
        h += v
    elif op == "-":
        h -= v
    elif op == "*":
        h *= v
    else:
        h /= v
    return h


# Programs on h = a * 2 (a computed tensor that requires grad), each ending in h.
PROGRAMS = {
    "add_ scalar": lambda lib, a, w: (a * 2).add_(1.0),
    "add_ tensor alpha": lambda lib, a, w: (a * 2).add_(w, alpha=-3.0),
    "sub_ tensor": lambda lib, a, w: (a * 2).sub_(w),
    "mul_ scalar": lambda lib, a, w: (a * 2).mul_(3.0),
    "mul_ tensor (reads the old value)": lambda lib, a, w: (a * 2).mul_(w),
    "div_ tensor": lambda lib, a, w: (a * 2).div_(w),
    "div_ floor": lambda lib, a, w: (a * 2).div_(w, rounding_mode="floor"),
    "pow_ scalar": lambda lib, a, w: (a * 2).pow_(2.0),
    "pow_ tensor": lambda lib, a, w: (a.abs() + 1).pow_(w),
    "clamp_": lambda lib, a, w: (a * 2).clamp_(-1.0, 2.0),
    "clamp_ min only": lambda lib, a, w: (a * 2).clamp_(min=0.0),
    "relu_": lambda lib, a, w: (a * 2).relu_(),
    "sigmoid_": lambda lib, a, w: (a * 2).sigmoid_(),
    "tanh_": lambda lib, a, w: (a * 2).tanh_(),
    "exp_": lambda lib, a, w: (a * 2).exp_(),
    "neg_": lambda lib, a, w: (a * 2).neg_(),
    "fill_ scalar": lambda lib, a, w: (a * 2).fill_(0.5),
    "fill_ 0-d tensor with grad": lambda lib, a, w: (a * 2).fill_(w[1]),
    "zero_": lambda lib, a, w: (a * 2).zero_(),
    "copy_ broadcast": lambda lib, a, w: (a * 2).copy_(w * 3),
    "copy_ float64": lambda lib, a, w: (a * 2).copy_(w.double() * 3),
    "masked_fill_ scalar": lambda lib, a, w: (a * 2).masked_fill_(lib.tensor(A > 0), -1.0),
    "masked_fill_ 0-d tensor": lambda lib, a, w: (a * 2).masked_fill_(
        lib.tensor(W > 0), w.sum()),
    "setitem column": lambda lib, a, w: _setitem(a * 2, (slice(None), 0), w[:2]),
    "setitem row scalar": lambda lib, a, w: _setitem(a * 2, 1, 0.0),
    "setitem int index tensor": lambda lib, a, w: _setitem(a * 2, lib.tensor([1, 0]), w),
    "setitem repeated index": lambda lib, a, w: _setitem(
        a * 2, (lib.tensor([0, 0]), lib.tensor([2, 2])), w[:2]),
    "setitem bool mask": lambda lib, a, w: _setitem(a * 2, lib.tensor(A > 0), w[0]),
    "setitem += on a column": lambda lib, a, w: _aug_column(a * 2, w),
    "+= tensor": lambda lib, a, w: _aug(a * 2, "+", w),
    "-= scalar": lambda lib, a, w: _aug(a * 2, "-", 0.5),
    "*= tensor": lambda lib, a, w: _aug(a * 2, "*", w),
    "/= tensor": lambda lib, a, w: _aug(a * 2, "/", w),
    "the issue's chain": lambda lib, a, w: _issue_chain(a),
    "chain of writes": lambda lib, a, w: (a * 2).add_(w).mul_(w).sub_(1.0).clamp_(max=3.0),
    "plain tensor receives a value": lambda lib, a, w: _plain_receives(lib, a, w),
    "plain tensor += a value": lambda lib, a, w: _aug(lib.zeros(2, 3), "+", a * w),
    "earlier user keeps the old value": lambda lib, a, w: _earlier_user(a, w),
    "earlier user reads h, later write": lambda lib, a, w: _earlier_reader(a, w),
    "retain_grad then write": lambda lib, a, w: _retained(a),
    "write through a detached alias": lambda lib, a, w: _detached_write(a),
    # PyTorch refuses these (a backward rule saved the value written over): so must we.
    "exp_ then add_ (exp saved its result)": lambda lib, a, w: (a * 2).exp_().add_(1.0),
    "sigmoid_ then mul_": lambda lib, a, w: (a * 2).sigmoid_().mul_(2.0),
    "relu_ then setitem": lambda lib, a, w: _setitem((a * 2).relu_(), (slice(None), 0), 0.0),
    "earlier user saved h": lambda lib, a, w: _earlier_saver(a, w),
    "plain tensor saved, then receives": lambda lib, a, w: _plain_saved(lib, a, w),
}


def _aug_column(h, w):
    h[:, 1] += w[:2]  # getitem, an in-place add on the view, then setitem back
    return h


def _issue_chain(a):
    h = a * 2
    h.add_(1)
    h[:, 0] = 0  # (after relu_, PyTorch refuses this: relu saved its result)
    h.relu_()
    return h


def _plain_receives(lib, a, w):
    x = lib.zeros(2, 3)
    x[0] = w
    x[1, 1:] = a[0, :2] * 2
    return x


def _earlier_user(a, w):
    h = a * 2
    y = h + w  # add never reads h: its edge stays with the old h
    h.mul_(3.0)
    return y * 2 + h


def _earlier_reader(a, w):
    h = a * 2
    y = h.sum(0) * w  # reads w only for h's side... and h-side reads w
    h.add_(1.0)
    return h * y


def _retained(a):
    h = a * 2
    h.retain_grad()
    h.add_(1.0)
    return h * h


def _detached_write(a):
    h = a * 2
    h.detach().add_(1.0)  # values change; PyTorch: nothing saved h, so no error
    return h.add_(1.0)


def _earlier_saver(a, w):
    h = a * 2
    y = h * w  # w's gradient needs the old h
    h.add_(1.0)
    return y + h


def _plain_saved(lib, a, w):
    x = lib.zeros(2, 3)
    y = x * a  # a's gradient needs x
    x.add_(w)
    return y + x


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_inplace_op_values_and_gradients_are_torchs(torch, name):
    program = PROGRAMS[name]
    try:
        theirs = _run(torch, program)
    except RuntimeError:
        with pytest.raises((gg.GraphError, RuntimeError), match="modified in place"):
            _run(gg, program)
        return
    ours = _run(gg, program)
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o, t, rtol=1e-5, atol=1e-6)


def test_refused_programs_are_refused_by_torch_too(torch):
    """The error branch above must not be the only one taken: these four are errors."""
    for name in ("exp_ then add_ (exp saved its result)", "relu_ then setitem",
                 "earlier user saved h", "plain tensor saved, then receives"):
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            _run(torch, PROGRAMS[name])


# --------------------------------------------------------------------------- graph facts
def test_the_tensor_becomes_the_in_place_node_and_its_version_advances(torch):
    for lib in (gg, torch):
        a = lib.tensor(A, requires_grad=True)
        h = a * 2
        v0 = h._version
        same = h.add_(1.0)
        assert same is h and h._version > v0 and not h.is_leaf
        assert h.grad_fn.name() == "AddBackward0"
        assert h.grad_fn.next_functions[0][0].name() == "MulBackward0"


def test_backward_twice_through_an_in_place_node(torch):
    def run(lib):
        a = lib.tensor(A, requires_grad=True)
        h = (a * 2).relu_()
        h.sum().backward(retain_graph=True)
        h.sum().backward()
        return a.grad.numpy()

    np.testing.assert_allclose(run(gg), run(torch))
    a = gg.tensor(A, requires_grad=True)
    h = (a * 2).relu_()
    h.sum().backward()
    with pytest.raises(gg.GraphError, match="second time"):
        h.sum().backward()


def test_second_derivative_through_an_in_place_op(torch):
    def run(lib):
        a = lib.tensor(A, requires_grad=True)
        h = a * a
        h.mul_(2.0)
        (g,) = lib.autograd.grad(h.sum(), a, create_graph=True)
        g.sum().backward()
        return g.detach().numpy(), a.grad.numpy()

    for o, t in zip(run(gg), run(torch)):
        np.testing.assert_allclose(o, t)


# --------------------------------------------------------------------------- refusals
LEAF_WRITES = {
    "add_": lambda w: w.add_(1.0), "relu_": lambda w: w.relu_(),
    "setitem": lambda w: w.__setitem__(0, 1.0), "+=": lambda w: _aug(w, "+", 1.0),
    "masked_fill_": lambda w: w.masked_fill_(w > 0, 0.0),
}


@pytest.mark.parametrize("name", list(LEAF_WRITES))
def test_a_leaf_that_requires_grad_is_refused_and_left_unchanged(torch, name):
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        LEAF_WRITES[name](torch.tensor(W, requires_grad=True))
    w = gg.tensor(W, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        LEAF_WRITES[name](w)
    np.testing.assert_array_equal(w.numpy(), W)
    assert w.is_leaf and w._version == 0


VIEWS = {"slice": lambda w: w[:2], "view": lambda w: w.view(3), "row": lambda w: w[None][0]}


@pytest.mark.parametrize("view", list(VIEWS))
def test_a_view_of_a_leaf_that_requires_grad_is_refused(torch, view):
    with pytest.raises(RuntimeError, match="a view of a leaf Variable"):
        VIEWS[view](torch.tensor(W, requires_grad=True)).mul_(2.0)
    w = gg.tensor(W, requires_grad=True)
    with pytest.raises(RuntimeError, match="view of a leaf tensor that requires grad") as e:
        VIEWS[view](w).mul_(2.0)
    assert "no_grad" in str(e.value) and "clone" in str(e.value)
    np.testing.assert_array_equal(w.numpy(), W)
    with gg.no_grad():
        VIEWS[view](w).mul_(2.0)  # allowed, as in PyTorch
    assert w.numpy()[0] == W[0] * 2


@pytest.mark.parametrize("use_after", ["base after writing the view", "view after writing "
                                       "the base"])
def test_an_alias_used_after_a_recorded_write_is_an_error_not_a_wrong_gradient(use_after):
    """PyTorch rewrites the graph of every view of the memory (and gets a gradient here);
    glassgrad records the op on the tensor written, so it must refuse, not answer."""
    a = gg.tensor(W, requires_grad=True)
    h = a * 2
    v = h[:2]
    if use_after.startswith("base"):
        v.mul_(3.0)
        loss = h.sum()
    else:
        h.mul_(3.0)
        loss = v.sum()
    with pytest.raises(gg.GraphError, match="shares memory with a tensor that was changed"):
        loss.backward()
    assert a.grad is None


def test_a_view_used_before_the_write_is_fine(torch):
    def run(lib):
        a = lib.tensor(W, requires_grad=True)
        h = a * 2
        y = h[:2] + 1  # made before the write: it used the old values, as its graph says
        h.add_(1.0)
        (y.sum() + h.sum()).backward()
        return a.grad.numpy()

    np.testing.assert_allclose(run(gg), run(torch))


@pytest.mark.parametrize(("call", "error", "match"), [
    (lambda h, w: h.add_(gg.ones(4, 2, 3)), ValueError, r"shape \(4, 2, 3\)"),
    (lambda h, w: h.mul_(gg.ones(5)), ValueError, "broadcast"),
    (lambda h, w: h.copy_(gg.ones(4, 3)), RuntimeError, r"does not broadcast"),
    (lambda h, w: h.__setitem__((slice(None), 0), w), ValueError, "cannot write"),
    (lambda h, w: h.fill_(w), RuntimeError, "0-d tensor"),
    (lambda h, w: h.clamp_(min=w), RuntimeError, "bound that requires grad"),
    (lambda h, w: h.masked_fill_(gg.tensor([1, 0, 1]), 0.0), RuntimeError, "boolean"),
], ids=["add_ too big", "mul_ not broadcastable", "copy_ too big", "setitem bad shape",
        "fill_ vector", "clamp_ bound with grad", "masked_fill_ int mask"])
def test_a_refused_write_leaves_the_tensor_and_its_graph_as_they_were(call, error, match):
    a = gg.tensor(A, requires_grad=True)
    w = gg.tensor(W, requires_grad=True)
    h = a * 2
    op, parents, version = h._op, h._parents, h._version
    with pytest.raises(error, match=match):
        call(h, w)
    np.testing.assert_array_equal(h.numpy(), A * 2)
    assert h._op is op and h._parents is parents and h._version == version
    h.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.full_like(A, 2.0))


def test_an_integer_tensor_cannot_take_a_value_that_requires_grad(torch):
    with pytest.raises(RuntimeError):
        torch.tensor([1, 2, 3]).add_(torch.tensor(W, requires_grad=True))
    x = gg.tensor([1, 2, 3])
    with pytest.raises(TypeError, match="int64"):
        x.add_(gg.tensor(W, requires_grad=True))
    assert x.numpy().tolist() == [1, 2, 3] and not x.requires_grad


def test_a_plain_view_cannot_take_a_value_that_requires_grad():
    """The tensor it views does not require grad, so no graph would carry the gradient
    (PyTorch records the write on both): refused, with the spelling that works."""
    x = gg.zeros(4)
    w = gg.tensor(W, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"x\[:2\] = w") as e:
        x[1:].copy_(w)
    assert "view" in str(e.value)
    del e  # (its traceback still holds the view x[1:], which would hold x's memory too)
    np.testing.assert_array_equal(x.numpy(), np.zeros(4))
    x[1:] = w  # through the tensor itself: recorded
    x.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.ones(3))


def test_inside_no_grad_nothing_is_recorded(torch):
    def run(lib):
        a = lib.tensor(A, requires_grad=True)
        h = a * 2
        with lib.no_grad():
            h.mul_(5.0)
        (h * lib.tensor(C)).sum().backward()
        return h.detach().numpy(), a.grad.numpy()

    for o, t in zip(run(gg), run(torch)):
        np.testing.assert_allclose(o, t)


# --------------------------------------------------------------------------- nn inplace=True
def _layer_run(lib, make):
    lin = lib.nn.Linear(3, 4)
    with lib.no_grad():
        lin.weight.copy_(lib.tensor(np.arange(12, dtype=np.float32).reshape(4, 3) / 6 - 1))
        lin.bias.copy_(lib.tensor([0.1, -0.2, 0.3, -0.4]))
    x = lib.tensor(A, requires_grad=True)
    h = lin(x)
    out = make(lib)(h)
    assert out is h  # written into the layer's output
    (out * out).sum().backward()
    return [out.detach().numpy(), x.grad.numpy(), lin.weight.grad.numpy()]


LAYERS = {
    "nn.ReLU(inplace=True)": lambda lib: lib.nn.ReLU(inplace=True),
    "F.relu(inplace=True)": lambda lib: lambda h: lib.nn.functional.relu(h, inplace=True),
    "F.relu_": lambda lib: lib.nn.functional.relu_,
    "nn.LeakyReLU(0.2, inplace=True)": lambda lib: lib.nn.LeakyReLU(0.2, inplace=True),
    "F.leaky_relu(inplace=True)": lambda lib: lambda h: lib.nn.functional.leaky_relu(
        h, 0.1, inplace=True),
    "nn.Dropout(0.5, inplace=True) in eval": lambda lib: lib.nn.Dropout(0.5, True).eval(),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_inplace_layers_give_torchs_numbers(torch, name):
    for o, t in zip(_layer_run(gg, LAYERS[name]), _layer_run(torch, LAYERS[name])):
        np.testing.assert_allclose(o, t, rtol=1e-5, atol=1e-6)


def test_inplace_dropout_writes_the_masked_values_and_scales_the_gradient():
    """The mask is random (NumPy's, not PyTorch's): checked against its own definition,
    out = x·mask/(1 − p) written into x, and the gradient mask/(1 − p)."""
    a = gg.tensor(np.linspace(1, 2, 200, dtype=np.float32), requires_grad=True)
    h = a * 1
    out = gg.nn.Dropout(0.25, inplace=True, seed=0)(h)
    assert out is h
    kept = out.numpy() != 0
    assert 100 < kept.sum() < 200
    np.testing.assert_allclose(out.numpy()[kept], a.numpy()[kept] / 0.75, rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), kept / np.float32(0.75), rtol=1e-6)


def test_inplace_relu_on_a_leaf_that_requires_grad_is_refused_as_in_torch(torch):
    with pytest.raises(RuntimeError, match="leaf Variable"):
        torch.nn.ReLU(inplace=True)(torch.tensor(W, requires_grad=True))
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        gg.nn.ReLU(inplace=True)(gg.tensor(W, requires_grad=True))
    x = gg.tensor(W)  # a plain input: written, no graph
    assert gg.nn.ReLU(inplace=True)(x) is x and x.numpy().min() == 0.0


def test_grad_fn_and_parents_show_an_input_as_it_was_used_before_an_inplace_op(torch):
    def structure(lib):
        a = lib.tensor([1.0, 2.0], requires_grad=True)
        x = a * 2
        y = x * 3
        x.add_(1)
        z = x * 5
        return [type(f).__name__ if lib is torch else f.name()
                for f in (y.grad_fn.next_functions[0][0], z.grad_fn.next_functions[0][0])]

    assert structure(gg) == structure(torch) == ["MulBackward0", "AddBackward0"]
    a = gg.tensor([1.0, 2.0], requires_grad=True)
    x = a * 2
    y = x * 3
    x.add_(1)
    assert y.parents[0] is not x and y.parents[0].op == "mul" and x.op == "add"
    assert [n.op for n in gg.autograd.topological_order((y,))][:2] == ["mul", "mul"]


@pytest.mark.parametrize("hold", [
    lambda x: x[:2],
    lambda x: x.view(3),
    lambda x: x.numpy(),
    lambda x: x.detach(),
], ids=["slice view", "view()", ".numpy()", "detach()"])
@pytest.mark.parametrize("write", [
    lambda x, w: x.copy_(w),
    lambda x, w: x.__setitem__(0, w[0]),
    lambda x, w: x.add_(w),
], ids=["copy_", "setitem", "add_"])
def test_a_plain_tensor_whose_memory_is_held_elsewhere_does_not_join_the_graph(hold, write):
    # A view made before the write would see the new values and send no gradient.
    w = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = gg.zeros(3)
    held = hold(x)
    with pytest.raises(RuntimeError, match=r"held elsewhere.*x = x.clone\(\)"):
        write(x, w)
    assert not x.requires_grad and x.grad_fn is None  # nothing changed
    np.testing.assert_array_equal(x.numpy(), np.zeros(3, np.float32))
    del held
    write(x, w)  # nothing else holds it now: recorded
    (x * gg.tensor([1.0, 2.0, 4.0])).sum().backward()
    assert w.grad is not None and np.abs(w.grad.numpy()).sum() > 0

"""In-place methods (``add_``, ``zero_``, ``clamp_``, ...), ``.data`` as a tensor, and the
small Tensor conveniences (``clamp``, ``abs(t)``, ``format``), compared with PyTorch."""

import numpy as np
import pytest

import glassgrad as gg

X = np.array([[0.5, -1.25, 2.0], [-0.75, 1.5, 0.25]], dtype=np.float32)
OTHER = np.array([1.5, -0.5, 2.0], dtype=np.float32)  # broadcasts over X's rows

# (method, args, kwargs): each written into a copy of X; "T" stands for OTHER as a tensor.
CASES = [
    ("add_", ("T",), {}), ("add_", (2.0,), {}), ("add_", ("T",), {"alpha": -3.0}),
    ("sub_", ("T",), {}), ("sub_", (0.5,), {"alpha": 2.0}), ("mul_", ("T",), {}),
    ("mul_", (3.0,), {}), ("div_", ("T",), {}), ("div_", ("T",), {"rounding_mode": "trunc"}),
    ("div_", ("T",), {"rounding_mode": "floor"}), ("pow_", (2.0,), {}),
    ("clamp_", (), {"min": 0.0}), ("clamp_", (), {"max": 0.6}),
    ("clamp_", (-0.8, 0.8), {}), ("zero_", (), {}), ("fill_", (3.5,), {}),
    ("copy_", ("T",), {}), ("neg_", (), {}), ("exp_", (), {}), ("abs_", (), {}),
    ("tanh_", (), {}), ("sigmoid_", (), {}), ("sin_", (), {}), ("cos_", (), {}),
]
IDS = [f"{m}{a}{k}".replace("'", "") for m, a, k in CASES]


def _args(lib, args):
    return [lib.tensor(OTHER) if a == "T" else a for a in args]


@pytest.mark.parametrize(("method", "args", "kwargs"), CASES, ids=IDS)
def test_inplace_method_writes_torchs_values_into_the_same_memory(torch, method, args, kwargs):
    ours, theirs = gg.tensor(X), torch.tensor(X)
    array = ours.numpy()
    view = ours[0]  # a view of the first row sees the write too
    returned = getattr(ours, method)(*_args(gg, args), **kwargs)
    getattr(theirs, method)(*_args(torch, args), **kwargs)
    assert returned is ours and ours.numpy() is array
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(view.numpy(), theirs[0].numpy(), rtol=1e-6, atol=1e-7)
    assert ours.dtype == np.float32


@pytest.mark.parametrize("method", ["log_", "sqrt_"])
def test_inplace_log_and_sqrt_match_torch_on_positive_values(torch, method):
    ours, theirs = gg.tensor(np.abs(X) + 0.1), torch.tensor(np.abs(X) + 0.1)
    getattr(ours, method)()
    getattr(theirs, method)()
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


@pytest.mark.parametrize(("method", "args", "kwargs"), CASES, ids=IDS)
def test_each_inplace_method_bumps_the_version_so_backward_refuses_like_torch(
        torch, method, args, kwargs):
    """y = Σ w·x reads x for w's gradient; changing x in place after that must raise."""
    def run(lib, error):
        w = lib.tensor(X, requires_grad=True)
        x = lib.tensor(X)
        y = (w * x).sum()
        before = x._version
        getattr(x, method)(*_args(lib, args), **kwargs)
        assert x._version > before
        with pytest.raises(error, match="modified") as info:
            y.backward()
        return str(info.value)

    ours = run(gg, gg.GraphError)
    run(torch, RuntimeError)
    assert "'mul'" in ours and "(2, 3)" in ours  # names the op and the tensor's shape


@pytest.mark.parametrize(("method", "args", "kwargs"), CASES, ids=IDS)
def test_a_write_through_data_is_not_tracked_and_backward_uses_the_new_values_like_torch(
        torch, method, args, kwargs):
    def run(lib):
        w = lib.tensor(X, requires_grad=True)
        x = lib.tensor(X)
        y = (w * x).sum()
        getattr(x.data, method)(*_args(lib, args), **kwargs)
        y.backward()  # PyTorch's .data bypasses the version counter: no error, new values
        return w.grad.numpy(), x.numpy()

    (grad, x), (tgrad, tx) = run(gg), run(torch)
    np.testing.assert_allclose(grad, tgrad, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(x, tx, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("call", [
    lambda w: w.add_(1.0), lambda w: w.mul_(2.0), lambda w: w.zero_(), lambda w: w.fill_(1.0),
    lambda w: w.clamp_(min=0.0), lambda w: w.copy_(gg.tensor(OTHER)), lambda w: w.exp_(),
    lambda w: w.normal_(), lambda w: w.uniform_(), lambda w: w.__setitem__(0, 1.0),
], ids=["add_", "mul_", "zero_", "fill_", "clamp_", "copy_", "exp_", "normal_", "uniform_",
        "setitem"])
def test_inplace_on_a_leaf_that_requires_grad_is_refused_outside_no_grad(torch, call):
    w = gg.tensor(X, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad .* in-place") as e:
        call(w)
    assert "gg.no_grad()" in str(e.value) and ".data" in str(e.value)
    np.testing.assert_array_equal(w.numpy(), X)  # nothing written
    assert w._version == 0
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        torch.tensor(X, requires_grad=True).add_(1.0)  # PyTorch's own rule
    with gg.no_grad():
        call(w)
    assert w.requires_grad and w.is_leaf and w._version > 0


def test_inplace_in_no_grad_matches_torchs_manual_update(torch):
    def run(lib):
        w = lib.tensor(X, requires_grad=True)
        (w * w).sum().backward()
        with lib.no_grad():
            w.sub_(w.grad, alpha=0.1).clamp_(-1.0, 1.0)
        w.grad.zero_()
        return w.detach().numpy(), w.grad.numpy()

    for a, b in zip(run(gg), run(torch)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_inplace_on_a_computed_tensor_that_requires_grad_is_recorded():
    # (was: refused; PyTorch records it, and so does glassgrad now: tests/test_inplace_autograd.py)
    w = gg.tensor(X, requires_grad=True)
    y = w * 2
    y.add_(1.0)
    assert y.op == "add" and y.requires_grad
    np.testing.assert_array_equal(y.numpy(), X * 2 + 1)
    with gg.no_grad():
        y.add_(1.0)  # allowed, as in PyTorch, and tracked
    np.testing.assert_array_equal(y.numpy(), X * 2 + 2)


def test_writing_a_value_that_requires_grad_records_it_as_torch_does(torch):
    # (was: refused; PyTorch records the write, so the value gets its gradient)
    def run(lib):
        v = lib.tensor(OTHER, requires_grad=True)
        x = lib.tensor(X)
        x.add_(v)
        x.copy_(v * 2)
        x[0] = v
        (x * x).sum().backward()
        return x.detach().numpy(), v.grad.numpy()

    for a, b in zip(run(gg), run(torch)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


BAD = [
    ("int tensor, float result", lambda: gg.tensor([1, 2, 3]), lambda t: t.add_(0.5),
     TypeError, "dtype float64.*int64"),
    ("result does not fit", lambda: gg.tensor(OTHER), lambda t: t.add_(gg.tensor(X)),
     ValueError, r"shape \(2, 3\).*shape \(3,\)"),
    ("not broadcastable", lambda: gg.tensor(X), lambda t: t.mul_(gg.ones(4)),
     ValueError, "not broadcastable"),
    ("clamp_ without bounds", lambda: gg.tensor(X), lambda t: t.clamp_(),
     RuntimeError, "at least one of 'min' or 'max'"),
    ("clamp_ with a bad max", lambda: gg.tensor(X), lambda t: t.clamp_(0.0, gg.ones(4)),
     ValueError, "not broadcastable"),
    ("fill_ with a vector", lambda: gg.tensor(X), lambda t: t.fill_(gg.tensor(OTHER)),
     RuntimeError, "0-d tensor"),
    ("copy_ of a bigger source", lambda: gg.tensor(OTHER), lambda t: t.copy_(gg.tensor(X)),
     RuntimeError, r"shape \(2, 3\).*\(3,\)"),
    ("div_ rounding mode", lambda: gg.tensor(X), lambda t: t.div_(2.0, rounding_mode="up"),
     ValueError, "rounding_mode"),
    ("setitem of a wrong shape", lambda: gg.tensor(X), lambda t: t.__setitem__(0, [1.0, 2.0]),
     ValueError, r"shape \(2,\) into tensor of shape \(2, 3\)"),
    ("normal_ with a bad generator", lambda: gg.tensor(X),
     lambda t: t.normal_(generator="x"), TypeError, "generator"),
]


@pytest.mark.parametrize(("make", "call", "error", "match"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_a_refused_inplace_write_says_why_and_changes_nothing(make, call, error, match):
    t = make()
    before, version = t.numpy().copy(), t._version
    with pytest.raises(error, match=match):
        call(t)
    np.testing.assert_array_equal(t.numpy(), before)
    assert t._version == version


def test_torch_refuses_the_same_dtype_and_shape_writes(torch):
    with pytest.raises(RuntimeError, match="can't be cast"):
        torch.tensor([1, 2, 3]).add_(0.5)
    with pytest.raises(RuntimeError):
        torch.tensor(OTHER).add_(torch.tensor(X))
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max'"):
        torch.tensor(X).clamp_()


def test_random_fills_follow_the_distribution_and_a_generator_reproduces_them():
    t = gg.zeros(20000)
    t.normal_(2.0, 0.5, generator=1)
    assert abs(t.mean().item() - 2.0) < 0.02 and abs(t.numpy().std() - 0.5) < 0.02
    first = t.numpy().copy()
    assert np.array_equal(t.normal_(2.0, 0.5, generator=1).numpy(), first)
    t.uniform_(-3.0, -1.0, generator=np.random.default_rng(2))
    assert t.numpy().min() >= -3.0 and t.numpy().max() < -1.0
    assert abs(t.mean().item() + 2.0) < 0.03 and t.dtype == np.float32


def test_setitem_writes_like_torch_with_ints_slices_and_masks(torch):
    ours, theirs = gg.tensor(X), torch.tensor(X)
    for lib, t in ((gg, ours), (torch, theirs)):
        t[0, 1] = 9.0
        t[:, 2] = lib.tensor([7.0, 8.0])
        t[t < 0] = 0.0
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


# --------------------------------------------------------------------------- .data
def test_data_is_a_tensor_sharing_memory_without_history_like_torch(torch):
    for lib in (gg, torch):
        w = lib.tensor(X, requires_grad=True)
        y = w * 2
        d = y.data
        assert isinstance(d, lib.Tensor) and not d.requires_grad and d.grad_fn is None
        assert d.is_leaf and np.shares_memory(np.asarray(d), np.asarray(y.detach()))
        np.testing.assert_array_equal(np.asarray(w.data), X)
        np.testing.assert_allclose((w.data * 2 + 1).numpy(), X * 2 + 1)
    assert gg.tensor(X).data.numpy() is not None and gg.tensor(X).data.shape == (2, 3)


def test_sgd_through_data_changes_the_parameter_in_place_without_a_version_bump(torch):
    def run(lib):
        w = lib.tensor(X, requires_grad=True)
        array = np.asarray(w.detach())
        (w * w).sum().backward()
        w.data -= 0.1 * w.grad.data
        w.grad.data.zero_()
        return w.detach().numpy().copy(), w._version, np.shares_memory(
            array, np.asarray(w.detach())), w.grad.numpy()

    ours, theirs = run(gg), run(torch)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6)
    np.testing.assert_allclose(ours[0], X * 0.8, rtol=1e-6)
    assert ours[1] == theirs[1] == 0 and ours[2] and theirs[2]
    assert not ours[3].any()


def test_detach_shares_memory_and_its_writes_are_tracked_like_torch(torch):
    for lib, error in ((gg, gg.GraphError), (torch, RuntimeError)):
        w = lib.tensor(X, requires_grad=True)
        y = (w * w).sum()
        w.detach().zero_()
        assert not np.asarray(w.detach()).any()
        with pytest.raises(error, match="modified"):
            y.backward()


def test_data_setter_replaces_values_from_a_tensor_or_array():
    w = gg.tensor(X, requires_grad=True)
    w.data = gg.tensor(OTHER)  # any shape, as in PyTorch
    assert w.shape == (3,) and w.requires_grad
    w.data = np.zeros((2, 2), np.float64)
    assert w.shape == (2, 2) and w.dtype == np.float64


@pytest.mark.parametrize(("value", "error", "match"), [
    (np.array([1, 2]), TypeError, "only floating-point tensors can require gradients"),
    (gg.tensor([True, False]), TypeError, "only floating-point"),
    (np.array(["a", "b"]), TypeError, "NumPy array of dtype <U1"),
], ids=["int array", "bool tensor", "strings"])
def test_data_setter_refuses_values_a_parameter_cannot_hold(value, error, match):
    w = gg.tensor(X, requires_grad=True)
    with pytest.raises(error, match=match):
        w.data = value
    np.testing.assert_array_equal(w.numpy(), X)


# --------------------------------------------------------------------------- conveniences
@pytest.mark.parametrize("kwargs", [{"min": 0.0}, {"max": 0.6}, {"min": -0.8, "max": 0.8}])
def test_clamp_matches_torch_as_method_and_function_with_gradients(torch, kwargs):
    ours, theirs = gg.tensor(X, requires_grad=True), torch.tensor(X, requires_grad=True)
    a, b = gg.clamp(ours, **kwargs), torch.clamp(theirs, **kwargs)
    np.testing.assert_array_equal(ours.clamp(**kwargs).numpy(), b.detach().numpy())
    (a * a).sum().backward()
    (b * b).sum().backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy())
    with pytest.raises(RuntimeError, match="at least one of 'min' or 'max'"):
        gg.clamp(ours)


def test_abs_pow_tolist_and_comparisons_match_torch(torch):
    ours, theirs = gg.tensor(X, requires_grad=True), torch.tensor(X, requires_grad=True)
    a, b = abs(ours).pow(3).sum(), abs(theirs).pow(3).sum()
    a.backward()
    b.backward()
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-6)
    assert ours.tolist() == theirs.tolist() and gg.tensor(2.5).tolist() == 2.5
    for op in (lambda t: t > 0, lambda t: t <= 0.5, lambda t: t == 2.0, lambda t: t != 2.0):
        res = op(gg.tensor(X))
        assert res.dtype == np.bool_
        np.testing.assert_array_equal(res.numpy(), op(torch.tensor(X)).numpy())


def test_format_takes_a_spec_for_0d_tensors_only_like_torch(torch):
    assert format(gg.tensor(3.14159), ".3f") == format(torch.tensor(3.14159), ".3f") == "3.142"
    assert f"{gg.tensor(2.0, requires_grad=True) * 2:.2f}" == "4.00"
    for lib in (gg, torch):
        with pytest.raises(TypeError, match="unsupported format string"):
            format(lib.tensor([1.0, 2.0]), ".3f")
    assert format(gg.tensor([1.0, 2.0])) == repr(gg.tensor([1.0, 2.0]))


def test_requires_grad_detach_and_retain_grad_behave_like_torch(torch):
    def run(lib):
        x = lib.tensor(X).requires_grad_()
        h = x * 3
        h.retain_grad()
        d = h.detach()
        (h * h).sum().backward()
        return x.requires_grad, d.requires_grad, h.grad.numpy(), x.grad.numpy()

    ours, theirs = run(gg), run(torch)
    assert ours[:2] == theirs[:2] == (True, False)
    for a, b in zip(ours[2:], theirs[2:]):
        np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize("fill", ["normal_", "uniform_"])
def test_random_fills_draw_from_the_generator_manual_seed_seeds(fill):
    gg.manual_seed(7)
    a = getattr(gg.zeros(5), fill)().numpy()
    b = getattr(gg.zeros(5), fill)().numpy()
    gg.manual_seed(7)
    np.testing.assert_array_equal(getattr(gg.zeros(5), fill)().numpy(), a)
    assert not np.array_equal(a, b)  # the global stream moved on


def test_nn_init_through_data_leaves_the_version_alone_as_pytorch(torch):
    w = gg.zeros(3, requires_grad=True)
    y = (w * w).sum()
    gg.nn.init.normal_(w.data)  # PyTorch: .data writes are not seen by w's version check
    y.backward()
    tw = torch.zeros(3, requires_grad=True)
    ty = (tw * tw).sum()
    torch.nn.init.normal_(tw.data)
    ty.backward()  # no error in PyTorch either
    assert w.grad is not None and tw.grad is not None
    x = gg.zeros(3, requires_grad=True)
    z = (x * x).sum()
    gg.nn.init.normal_(x.detach())  # a detached tensor shares the version: backward refuses
    with pytest.raises(gg.GraphError):
        z.backward()


def _aug(lib, which):
    """Run one augmented-assignment program under ``lib`` and return what it observes."""
    if which == "alias":  # another name for the tensor sees the write
        y = lib.zeros(3)
        z = y
        y += 1
        y *= 3
        y -= 0.5
        y /= 2
        return z.numpy().tolist()
    if which == "loss_sum":  # loss += l on a tensor that requires grad: values and grads
        w = lib.ones(3, requires_grad=True)
        loss = 0
        for k in range(1, 4):
            loss += (w * k).sum()
        loss.backward()
        return [float(loss.item()), *w.grad.numpy().tolist()]
    if which == "plain_plus_grad":  # a plain tensor += one that requires grad
        w = lib.ones(2, requires_grad=True)
        acc = lib.zeros(2)
        acc += w * 2
        acc.sum().backward()
        return w.grad.numpy().tolist()
    raise AssertionError(which)


@pytest.mark.parametrize("which", ["alias", "loss_sum", "plain_plus_grad"])
def test_augmented_assignment_means_what_it_means_in_torch(torch, which):
    assert _aug(gg, which) == pytest.approx(_aug(torch, which))


def test_augmented_assignment_on_a_saved_plain_tensor_makes_backward_refuse(torch):
    for lib, error in ((gg, gg.GraphError), (torch, RuntimeError)):
        x = lib.ones(3)
        w = lib.ones(3, requires_grad=True)
        y = (w * x).sum()
        x += 1  # mul saved x for w's gradient
        with pytest.raises(error):
            y.backward()


def test_int_tensor_true_division_in_place_is_refused_and_changes_nothing(torch):
    i = gg.tensor([1, 2])
    with pytest.raises(TypeError, match="div_.*int64.*x = x.float"):
        i /= 2
    assert i.numpy().tolist() == [1, 2] and i._version == 0
    ti = torch.tensor([1, 2])
    with pytest.raises(RuntimeError):
        ti /= 2

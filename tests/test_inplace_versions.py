"""In-place writes that backward needs are detected, as PyTorch's version counter does: a
graph whose values were overwritten refuses to go backward instead of giving a wrong number."""

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.autograd import GraphError


def make():
    w = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x = gg.tensor([4.0, 5.0, 6.0], requires_grad=True)
    return w, x


def update_in_no_grad(w):
    with gg.no_grad():
        w -= 1.0


def assign_data(w):
    w.data = np.full(3, 100.0, np.float32)


def add_in_place_in_no_grad(w):
    with gg.no_grad():
        w += gg.tensor([1.0, 1.0, 1.0])


@pytest.mark.parametrize("write", [update_in_no_grad, assign_data, add_in_place_in_no_grad])
def test_a_write_to_a_value_the_rule_reads_is_refused_and_changes_nothing(write):
    w, x = make()
    y = (w * x).sum()  # dy/dx = w: mul's rule for x reads w
    write(w)
    with pytest.raises(GraphError, match=r"modified in place.*shape \(3,\).*input 0 of 'mul'"):
        y.backward()
    assert x.grad is None and w.grad is None  # nothing half-done
    y2 = (w * x).sum()  # the fix the message gives: the forward pass again
    y2.backward()
    np.testing.assert_array_equal(x.grad.numpy(), w.numpy())


def test_the_error_names_the_tensor():
    w, x = make()
    w.name = "w1"
    y = (w * x).sum()
    update_in_no_grad(w)
    with pytest.raises(GraphError, match="'w1'"):
        y.backward()


def test_a_write_no_rule_reads_is_harmless_as_in_pytorch():
    w, x = make()
    y = (w + x).sum()  # add's rules read neither input
    update_in_no_grad(w)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1, 1, 1])
    np.testing.assert_array_equal(w.grad.numpy(), [1, 1, 1])


def test_only_the_rules_that_run_count():
    w, x = make()
    x.requires_grad = False
    y = (w * x).sum()  # only w's rule runs, and it reads x, not w
    update_in_no_grad(w)
    y.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [4, 5, 6])


def test_writes_before_the_forward_pass_are_fine():
    w, x = make()
    update_in_no_grad(w)
    assign_data(w)
    y = (w * x).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [100, 100, 100])


def test_a_result_the_rule_reads_is_checked_too():
    w, _ = make()
    e = w.exp()  # exp's rule reads its own result
    loss = (e * 2.0).sum()
    e.data = np.zeros(3, np.float32)
    with pytest.raises(GraphError, match="the result of 'exp'"):
        loss.backward()


def test_views_and_detached_copies_share_the_check():
    w, x = make()
    r = w.reshape(3, 1)  # a view of w's memory
    y = (r * x.reshape(3, 1)).sum()
    update_in_no_grad(w)
    with pytest.raises(GraphError, match="modified in place"):
        y.backward()
    w, x = make()
    d = w.detach()  # shares w's memory, as in PyTorch
    y = (d * x).sum()
    update_in_no_grad(w)
    with pytest.raises(GraphError, match="modified in place"):
        y.backward()


def test_version_moves_with_every_write_glassgrad_sees():
    w, _ = make()
    v0 = w._version
    update_in_no_grad(w)
    v1 = w._version
    assign_data(w)
    assert v0 < v1 < w._version


def test_load_state_dict_between_forward_and_backward_is_refused():
    net = gg.nn.Linear(3, 2)
    state = {k: v.numpy() * 2 for k, v in net.state_dict().items()}
    x = gg.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    loss = net(x).sum()  # dloss/dx reads the weight
    net.load_state_dict(state)
    with pytest.raises(GraphError, match="modified in place"):
        loss.backward()
    assert x.grad is None


def test_retained_graph_after_a_manual_step_is_refused():
    w, x = make()
    y = (w * x).sum()
    y.backward(retain_graph=True)
    with gg.no_grad():
        x -= 0.1 * x.grad  # a step on x between two passes over the same graph
    with pytest.raises(GraphError, match="modified in place"):
        y.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [4, 5, 6])  # the first pass's, untouched


def test_create_graph_rules_are_checked_as_well():
    w, x = make()
    y = (w * w * x).sum()
    (gw,) = gg.grad(y, w, create_graph=True)  # 2·w·x: its x-side rule reads w
    update_in_no_grad(w)
    with pytest.raises(GraphError, match="modified in place"):
        gw.sum().backward()


# PyTorch's classification of which in-place writes after which ops break backward: where
# PyTorch answers, glassgrad answers the same numbers. (Where PyTorch refuses, glassgrad may
# answer when its rule does not need the written value, e.g. ∂(a/b)/∂b = −grad·out/b reads
# no a; then the numbers are those of the graph as it was computed.)
CASES = {
    "mul": lambda a, b: a * b, "add": lambda a, b: a + b, "sub": lambda a, b: a - b,
    "div": lambda a, b: a / b, "matmul": lambda a, b: a.reshape(1, 3) @ b.reshape(3, 1),
    "exp": lambda a, b: a.exp() + b, "tanh": lambda a, b: a.tanh() * 1.0 + b,
    "pow2": lambda a, b: a ** 2 + b, "sum": lambda a, b: a.sum() + b,
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("which", [0, 1])
def test_refuses_exactly_where_pytorch_refuses(torch, name, which):
    f = CASES[name]

    def run(lib, a, b):
        y = f(a, b).sum()
        with lib.no_grad():
            (a, b)[which].sub_(0.5) if lib is torch else (a, b)[which].__isub__(0.5)
        try:
            y.backward()
            return "ok", a.grad.numpy().copy(), b.grad.numpy().copy()
        except RuntimeError:
            return "refused", None, None

    vals = ([0.5, 1.0, 1.5], [2.0, -1.0, 3.0])
    ours = run(gg, *(gg.tensor(v, requires_grad=True) for v in vals))
    theirs = run(torch, *(torch.tensor(v, requires_grad=True) for v in vals))
    if theirs[0] == "refused":  # the answer from the graph as computed, before the write
        a, b = (torch.tensor(v, requires_grad=True) for v in vals)
        f(a, b).sum().backward()
        theirs = ("refused", a.grad.numpy(), b.grad.numpy())
    if theirs[0] == "ok":
        assert ours[0] == "ok"
    if ours[0] == "ok":
        np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-6)
        np.testing.assert_allclose(ours[2], theirs[2], rtol=1e-6)



def test_a_folded_compiled_step_marks_the_weights_it_updates():
    net = gg.nn.Linear(256, 128)  # large enough to fold (see gg.blas.BLAS_MIN)
    opt = gg.optim.SGD(net.parameters(), lr=0.1)
    X = gg.tensor(np.random.default_rng(0).standard_normal((8, 256)).astype(np.float32))
    step = gg.compile(lambda x: net(x).square().mean(), optimizer=opt)
    for _ in range(3):
        step(X)
    x = gg.tensor(np.ones((1, 256), np.float32), requires_grad=True)
    out = net(x).sum()  # dout/dx reads the weight
    step(X)  # updates the weight in place, inside the product
    assert "_fold(" in step.source  # (the update really was folded)
    with pytest.raises(GraphError, match="modified in place"):
        out.backward()


def test_load_state_dict_refuses_integers_for_float_weights():
    net = gg.nn.Linear(2, 2)
    before = net.weight.numpy().copy()
    state = {"weight": np.ones((2, 2), np.int64), "bias": np.zeros(2, np.float32)}
    with pytest.raises(TypeError, match="'weight' holds int64 values"):
        net.load_state_dict(state)
    np.testing.assert_array_equal(net.weight.numpy(), before)

"""The third round of eager shortcuts gives what the general path gives: values, graphs,
gradients, hook calls and error messages.

Shortcuts checked: ``Module.__call__`` passing one positional input on as such, and
``Sequential`` calling a child's ``forward`` directly when the child has no hooks and the
base class's ``__call__`` (against calling each layer, hooks registered or ``__call__``
overridden); ``mse_loss`` and ``Linear`` recording their node without ``ops.apply``
(against apply).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import autograd, nn, ops
from glassgrad.ops import apply


def _same_node(fast: gg.Tensor, general: gg.Tensor) -> None:
    """The same value (to the bit), dtype, op, attributes and inputs."""
    assert type(fast) is type(general)
    assert fast.dtype == general.dtype and fast.shape == general.shape
    np.testing.assert_array_equal(fast.numpy(), general.numpy())
    assert fast.op == general.op and fast._attrs == general._attrs
    assert fast.requires_grad == general.requires_grad
    assert len(fast._parents) == len(general._parents)
    for a, b in zip(fast._parents, general._parents):
        assert a is b or (a.op == b.op and np.array_equal(a.numpy(), b.numpy()))


def _grads_of(root: gg.Tensor, leaves: list[gg.Tensor]) -> list[np.ndarray | None]:
    for t in leaves:
        t.grad = None
    root.backward()
    return [None if t.grad is None else t.grad.numpy().copy() for t in leaves]


def _arrays(shape: tuple[int, ...], dtype: Any, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.uniform(-2, 2, shape).astype(dtype) for _ in range(n)]


# --------------------------------------------------------------------------- Module.__call__
class _Recorder(nn.Module):
    """forward records what it received, so a test sees how the call reached it."""

    def __init__(self) -> None:
        self.got: list[tuple[tuple, dict]] = []

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self.got.append((args, kwargs))
        return args[0] if args else kwargs.get("x", 0)


@pytest.mark.parametrize("args, kwargs", [
    ((1,), {}), ((1, 2), {}), ((), {}), ((), {"x": 3}), ((1,), {"scale": 2}),
    ((None,), {}), ((1, 2, 3), {"x": 4}),
])
def test_module_call_passes_arguments_as_given(args, kwargs) -> None:
    m = _Recorder()
    m(*args, **kwargs)
    assert m.got == [(args, kwargs)]  # a keyword named x stays a keyword


@pytest.mark.parametrize("args", [(gg.ones(2),), (gg.ones(2), 5)])
def test_forward_hooks_see_the_positional_inputs_and_may_replace_the_output(args) -> None:
    m = _Recorder()
    seen = []

    def hook(module: nn.Module, inputs: tuple, out: Any) -> Any:
        seen.append((module, inputs, out))
        return "replaced"

    handle = m.register_forward_hook(hook)
    assert m(*args) == "replaced"
    assert seen[0][0] is m and seen[0][2] is args[0]
    assert len(seen[0][1]) == len(args) and all(a is b for a, b in zip(seen[0][1], args))
    handle.remove()
    assert m(*args) is args[0]
    assert len(seen) == 1


def test_module_without_forward_still_says_so() -> None:
    with pytest.raises(NotImplementedError, match="has no forward"):
        nn.Module()(gg.ones(2))


# --------------------------------------------------------------------------- Sequential
def _xor_model() -> nn.Sequential:
    model = nn.MLP([2, 3, 1], activation="tanh", seed=0)
    return model


def _layer_by_layer(model: nn.Sequential, x: gg.Tensor) -> gg.Tensor:
    for m in model:
        x = m(x)
    return x


class _Doubling(nn.Linear):
    """A layer whose own __call__ doubles the output: Sequential must call it."""

    def __call__(self, x: Any) -> Any:
        return super().__call__(x) * 2


def test_sequential_gives_the_layer_by_layer_values_and_gradients() -> None:
    model = _xor_model()
    x = gg.tensor(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32))
    fast = model(x)
    general = _layer_by_layer(model, x)
    np.testing.assert_array_equal(fast.numpy(), general.numpy())
    assert fast.op == general.op == "linear"
    fast.sum().backward()
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    general.sum().backward()
    for g, p in zip(grads, model.parameters()):
        np.testing.assert_array_equal(g, p.grad.numpy())


def test_sequential_runs_a_childs_hooks_and_its_own_call() -> None:
    x = gg.ones(1, 2)
    plain = nn.Sequential(nn.Linear(2, 2, seed=0), nn.Tanh())
    base = plain(x).numpy().copy()
    calls = []
    plain[1].register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape) or out * 3)
    np.testing.assert_allclose(plain(x).numpy(), base * 3, rtol=1e-6)
    assert calls == [(1, 2)]
    doubled = nn.Sequential(_Doubling(2, 2, seed=0), nn.Tanh())
    expected = np.tanh(2 * (x.numpy() @ doubled[0].weight.numpy().T + doubled[0].bias.numpy()))
    np.testing.assert_allclose(doubled(x).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("bad, kind, words", [
    (gg.ones(4, 3), ValueError, "Sequential layer (0): Linear"),
    (gg.tensor(1.0), ValueError, "got shape ()"),
])
def test_sequential_names_the_failing_layer(bad, kind, words) -> None:
    model = _xor_model()
    with pytest.raises(kind) as got:
        model(bad)
    assert words in str(got.value)


# --------------------------------------------------------------------------- mse_loss
def _mse_general(x: gg.Tensor, y: gg.Tensor, reduction: str) -> gg.Tensor:
    return apply(ops.mse_loss, x, y, reduction=reduction)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(), (4,), (4, 1), (2, 3)])
@pytest.mark.parametrize("target_grad", [False, True])
def test_mse_loss_matches_apply(reduction, dtype, shape, target_grad) -> None:
    a, b = _arrays(shape, dtype, 2)
    x = gg.tensor(a, requires_grad=True)
    y = gg.tensor(b, requires_grad=target_grad)
    fast = nn.functional.mse_loss(x, y, reduction=reduction)
    general = _mse_general(x, y, reduction)
    _same_node(fast, general)
    for f, g in zip(_grads_of(fast, [x, y]), _grads_of(general, [x, y])):
        np.testing.assert_array_equal(f, g)


def test_mse_loss_on_non_contiguous_inputs_and_parameters() -> None:
    a, b = _arrays((3, 4), np.float32, 2)
    x = nn.Parameter(a).T  # a node over a transposed view
    y = gg.tensor(b).T[:, ::2]
    x2 = x[:, ::2]
    _same_node(nn.functional.mse_loss(x2, y), _mse_general(x2, y, "mean"))


def test_mse_loss_in_no_grad_and_under_an_observer() -> None:
    a, b = _arrays((4, 1), np.float32, 2)
    x, y = gg.tensor(a, requires_grad=True), gg.tensor(b)
    with gg.no_grad():
        off = nn.functional.mse_loss(x, y)
    assert not off.requires_grad and off.op is None
    np.testing.assert_array_equal(off.numpy(), _mse_general(x, y, "mean").numpy())
    seen = []

    class Watch:
        def on_forward(self, op, inputs, out):
            seen.append((op.name, inputs, out._attrs))

    with autograd.hook(Watch()):
        nn.functional.mse_loss(x, y)
    assert seen == [("mse_loss", (x, y), {"reduction": "mean"})]


@pytest.mark.parametrize("case", ["float64 target", "array target", "list target", "none"])
def test_mse_loss_other_calls_take_the_general_path(case) -> None:
    a, b = _arrays((2, 2), np.float32, 2)
    x = gg.tensor(a, requires_grad=True)
    target, reduction = {
        "float64 target": (gg.tensor(b.astype(np.float64)), "mean"),
        "array target": (b, "mean"), "list target": (b.tolist(), "sum"),
        "none": (gg.tensor(b), "none"),
    }[case]
    got = nn.functional.mse_loss(x, target, reduction=reduction)
    d = a - np.asarray(target, np.float64).astype(np.float32)
    want = {"mean": (d * d).mean(), "sum": (d * d).sum(), "none": d * d}[reduction]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)


@pytest.mark.parametrize("x, y, kwargs, kind, words", [
    (gg.ones(4, 1), gg.ones(4), {}, ValueError, "input shape (4, 1) and target shape (4,)"),
    (gg.ones(2, dtype=gg.int64), gg.ones(2, dtype=gg.int64), {}, TypeError,
     "the input (predictions) must be floating point"),
    (gg.ones(2), gg.ones(2), {"reduction": "avg"}, ValueError, "reduction must be one of"),
    (gg.ones(2), gg.ones(2), {"reduction": "sum", "weight": gg.ones(3)}, ValueError, "weight"),
    (gg.ones(2), gg.ones(2), {"size_average": "sum"}, TypeError, "reduction='sum'"),
])
def test_mse_loss_errors_are_the_general_paths(x, y, kwargs, kind, words) -> None:
    with pytest.raises(kind) as got:
        nn.functional.mse_loss(x, y, **kwargs)
    assert words in str(got.value) and "mse_loss" in str(got.value)


# --------------------------------------------------------------------------- Linear
def _linear_general(layer: nn.Linear, x: gg.Tensor) -> gg.Tensor:
    return apply(ops.linear, x, layer.weight, layer.bias)


@pytest.mark.parametrize("shape", [(4, 3), (3,), (2, 4, 3), (70, 3)])
@pytest.mark.parametrize("x_grad", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_layer_matches_apply(shape, x_grad, dtype) -> None:
    layer = nn.Linear(3, 5, seed=0, dtype=dtype)
    (a,) = _arrays(shape, dtype, 1)
    x = gg.tensor(a, requires_grad=x_grad)
    fast, general = layer(x), _linear_general(layer, x)
    _same_node(fast, general)
    leaves = [x, layer.weight, layer.bias]
    for f, g in zip(_grads_of(fast.sum(), leaves), _grads_of(general.sum(), leaves)):
        np.testing.assert_array_equal(f, g)


def test_linear_layer_on_a_non_contiguous_input_and_mixed_dtypes() -> None:
    layer = nn.Linear(3, 2, seed=0)
    x = gg.tensor(_arrays((3, 6), np.float32, 1)[0], requires_grad=True).T[::2]
    _same_node(layer(x), _linear_general(layer, x))
    # a float64 input that requires grad meets float32 weights: apply's promotion, as before
    x64 = gg.tensor(_arrays((4, 3), np.float64, 1)[0], requires_grad=True)
    fast, general = layer(x64), _linear_general(layer, x64)
    assert fast.dtype == general.dtype == np.float64
    _same_node(fast, general)
    # a float64 bias with float32 weights and input: x's and b's dtypes differ from the result
    mixed = nn.Linear(3, 2, seed=0)
    mixed.bias = nn.Parameter(mixed.bias.numpy().astype(np.float64))
    x32 = gg.tensor(_arrays((4, 3), np.float32, 1)[0], requires_grad=True)
    _same_node(mixed(x32), _linear_general(mixed, x32))


def test_linear_layer_in_no_grad() -> None:
    layer = nn.Linear(3, 2, seed=0)
    x = gg.ones(4, 3)
    with gg.no_grad():
        y = layer(x)
    assert not y.requires_grad and y.op is None
    np.testing.assert_array_equal(y.numpy(), _linear_general(layer, x).numpy())


def test_linear_layer_forward_error_is_applys() -> None:
    layer = nn.Linear(3, 2, seed=0)
    layer.bias = nn.Parameter(np.zeros(4, np.float32))  # a bias of the wrong size
    x = gg.ones(5, 3)
    with pytest.raises(ValueError) as general:
        _linear_general(layer, x)
    with pytest.raises(ValueError) as fast:
        layer(x)
    assert str(fast.value) == str(general.value)
    assert "linear: cannot apply to inputs of shapes (5, 3), (2, 3), (4,)" in str(fast.value)


# --------------------------------------------------------------------------- backward's start
class _Order:
    """Records the nodes in the order backward reaches them."""

    def __init__(self) -> None:
        self.nodes: list[gg.Tensor] = []

    def on_backward(self, node, grad, sent):
        self.nodes.append(node)


def _diamond() -> tuple[gg.Tensor, list[gg.Tensor]]:
    a = gg.tensor([0.5, -1.0, 2.0], requires_grad=True)
    b = gg.tensor([1.5, 0.25, -0.75], requires_grad=True)
    h = a * b
    u, v = h.tanh(), h * a  # h and a each have two users
    return (u + v).sum(), [a, b]


def _diamond_grads() -> list[np.ndarray]:
    a = np.array([0.5, -1.0, 2.0], np.float32)
    b = np.array([1.5, 0.25, -0.75], np.float32)
    h = a * b
    dh = (1 - np.tanh(h) ** 2) + a
    return [dh * b + h, dh * a]


@pytest.mark.parametrize("how", ["method", "function", "twice, halves", "under an observer"])
def test_one_root_backward_matches_the_general_start(how) -> None:
    root, leaves = _diamond()
    order = _Order()
    if how == "method":
        root.backward()
    elif how == "function":
        autograd.backward(root)
    elif how == "twice, halves":  # two roots (the same node): the general start, summed seeds
        half = np.full((), 0.5, np.float32)
        autograd.backward([root, root], [half, half])
    else:
        expected = [t for t in autograd.topological_order([root]) if t.op is not None]
        with autograd.hook(order):
            root.backward()
        assert [id(n) for n in order.nodes] == [id(n) for n in expected]
    for t, want in zip(leaves, _diamond_grads()):
        np.testing.assert_allclose(t.grad.numpy(), want, rtol=1e-6)
        assert t.grad.dtype == np.float32


def test_one_root_backward_in_no_grad_and_with_retain_graph() -> None:
    root, leaves = _diamond()
    with gg.no_grad():
        root.backward(retain_graph=True)
    first = [t.grad.numpy().copy() for t in leaves]
    root.backward()  # the graph was kept: accumulates
    for t, g in zip(leaves, first):
        np.testing.assert_allclose(t.grad.numpy(), 2 * g, rtol=1e-6)
    with pytest.raises(autograd.GraphError, match="a second time"):
        root.backward()


def test_a_leaf_root_gets_a_copy_of_its_seed() -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    seed = np.array([3.0, 4.0], np.float32)
    x.backward(seed)
    np.testing.assert_array_equal(x.grad.numpy(), seed)
    assert not np.shares_memory(x.grad.numpy(), seed)


@pytest.mark.parametrize("roots", [1, 2])
def test_seeds_handed_through_are_copied(roots) -> None:
    a = gg.tensor([1.0, 2.0], requires_grad=True)
    b = gg.tensor([3.0, 5.0], requires_grad=True)
    y = a + b  # add hands the seed itself to both inputs
    seeds = [np.array([1.0, -1.0], np.float32) for _ in range(roots)]
    autograd.backward([y] * roots, seeds)
    for t in (a, b):
        np.testing.assert_array_equal(t.grad.numpy(), sum(seeds))
        assert not any(np.shares_memory(t.grad.numpy(), s) for s in seeds)
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())


# --------------------------------------------------------------------------- x.sum()
@pytest.mark.parametrize("name", ["sum", "mean"])
@pytest.mark.parametrize("keepdim", [False, True])
def test_sum_of_a_non_contiguous_tensor_matches_the_general_path(name, keepdim) -> None:
    from glassgrad import reductions

    x = gg.tensor(_arrays((4, 6), np.float32, 1)[0], requires_grad=True)
    view = x.T[::2]
    fast = getattr(view, name)(keepdim=keepdim)
    _same_node(fast, getattr(reductions, name)(view, keepdim=keepdim))
    assert fast._attrs == {"axis": None, "keepdims": keepdim}
    with gg.no_grad():
        off = getattr(view, name)(keepdim=keepdim)
    assert off.op is None and not off.requires_grad
    np.testing.assert_array_equal(off.numpy(), fast.numpy())


# --------------------------------------------------------------------------- SGD's step
def _sgd_params(dtypes: tuple[Any, ...]) -> list[nn.Parameter]:
    params = []
    for i, dt in enumerate(dtypes):
        w, g = _arrays((3, 2), dt, 2 + i)[-2:]
        p = nn.Parameter(w)
        p.grad = gg.tensor(g)
        params.append(p)
    return params


@pytest.mark.parametrize("dtypes", [(np.float32,), (np.float32, np.float64, np.float32),
                                    (np.float16, np.float32)])
def test_sgd_keeps_lr_as_an_array_only_while_lr_is_the_same(dtypes) -> None:
    params = _sgd_params(dtypes)
    opt = gg.optim.SGD(params, lr=0.1)
    group = opt.param_groups[0]
    for lr in (0.1, 0.1, 0.05, 0.05, 0.3, np.float32(0.2), 0.1):
        group["lr"] = lr  # as a schedule sets it
        before = [(p.numpy().copy(), p.grad.numpy()) for p in params]
        opt.step()
        for p, (w, g) in zip(params, before):
            np.testing.assert_array_equal(p.numpy(), w - float(lr) * g)  # to the bit
            assert p.dtype == w.dtype


def test_sgd_after_load_state_dict_uses_the_loaded_lr() -> None:
    params = _sgd_params((np.float32,))
    opt = gg.optim.SGD(params, lr=0.1)
    opt.step()
    state = opt.state_dict()
    state["param_groups"][0]["lr"] = 0.25
    opt.load_state_dict(state)
    w, g = params[0].numpy().copy(), params[0].grad.numpy()
    opt.step()
    np.testing.assert_array_equal(params[0].numpy(), w - 0.25 * g)


# --------------------------------------------------------------------------- hold / release
@pytest.fixture
def default_sigint():
    import signal

    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield signal
    signal.signal(signal.SIGINT, old)


def test_hold_delivers_one_sigint_at_the_outermost_release(default_sigint) -> None:
    from glassgrad.interrupt import DeferredInterrupt, hold, release

    signal = default_sigint
    reached = []
    outer = hold()
    try:
        with DeferredInterrupt():
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
            reached.append("inner end")
        reached.append("after inner")  # the inner block leaves it to the outer one
    except KeyboardInterrupt:
        reached.append("raised early")
    with pytest.raises(KeyboardInterrupt):
        release(outer)
    assert reached == ["inner end", "after inner"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    release(hold())  # nothing held: nothing delivered, nothing left behind
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("handler", ["ignored", "thread"])
def test_hold_holds_nothing_where_it_cannot(default_sigint, handler) -> None:
    import threading

    from glassgrad.interrupt import hold, release

    signal = default_sigint
    got = []
    if handler == "ignored":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        got.append(hold())
    else:
        t = threading.Thread(target=lambda: got.append(hold()))
        t.start()
        t.join()
    assert got == [None]
    release(None)
    assert signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.default_int_handler)


@pytest.mark.parametrize("x", [
    gg.ones(4, 2), gg.ones(4, 2, requires_grad=True), gg.ones(4, 2, dtype=gg.float64),
    gg.tensor(1.0), gg.ones(5), gg.ones(2, 3, 4), [[1.0, 2.0]], np.ones((3, 2)), 3.0,
], ids=["data", "requires grad", "float64 data (cast first)", "0-d", "1-D", "3-D", "list",
        "array", "number"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_layer_names_a_wrong_width_before_anything_else(x, bias) -> None:
    layer = nn.Linear(3, 2, bias=bias, seed=0)
    shape = np.shape(x.numpy() if isinstance(x, gg.Tensor) else x)
    with pytest.raises(ValueError) as got:
        layer(x)
    assert str(got.value).startswith(
        f"Linear(in_features=3, out_features=2, bias={bias}): expected input whose last "
        f"dimension is in_features = 3, got shape {shape}.")


@pytest.mark.parametrize("shared_copied", [False, True])
def test_store_grads_copies_views_and_arrays_handed_out_twice(shared_copied) -> None:
    leaves = [gg.tensor(np.zeros(4, np.float32), requires_grad=True) for _ in range(4)]
    base = np.arange(8, dtype=np.float32)
    view, plain, seed = base[::2], np.ones(4, np.float32), np.full(4, 2.0, np.float32)
    done = [(leaves[0], view), (leaves[1], view), (leaves[2], plain), (leaves[3], plain)]
    autograd.store_grads(done, [seed, plain] if shared_copied else [seed],
                         shared_copied=shared_copied)
    grads = [t.grad.numpy() for t in leaves]
    for g, want in zip(grads, (view, view, plain, plain)):
        np.testing.assert_array_equal(g, want)
    assert not any(np.shares_memory(g, base) for g in grads)  # views: always copied
    shared = np.shares_memory(grads[2], grads[3])
    assert shared == shared_copied  # (compile's caller copied them already)
    assert not np.shares_memory(grads[0], grads[1])


def test_a_reshaped_seed_sent_to_two_leaves_is_copied_for_each() -> None:
    a = gg.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    b = gg.tensor([5.0, 6.0, 7.0, 8.0], requires_grad=True)
    seed = np.arange(4, dtype=np.float32).reshape(2, 2)
    (a + b).reshape(2, 2).backward(seed)  # reshape's rule gives a view of the seed to add
    for t in (a, b):
        np.testing.assert_array_equal(t.grad.numpy(), seed.ravel())
        assert not np.shares_memory(t.grad.numpy(), seed)
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())

"""gg.compile: a recorded step must do exactly what the eager forward + backward does."""

from __future__ import annotations

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.nn import functional as F


def _eager_grads(fn, args):
    """Gradients of fn(*args) w.r.t. the args that require grad, by the eager engine."""
    fresh = [gg.tensor(a.numpy().copy(), requires_grad=True) if isinstance(a, gg.Tensor)
             and a.requires_grad else a for a in args]
    loss = fn(*fresh)
    loss.backward()
    return loss.item(), [t.grad.numpy() for t in fresh if isinstance(t, gg.Tensor)
                         and t.requires_grad]


def _check_against_eager(fn, args, new_args):
    step = gg.compile(fn)
    for call_args in (args, new_args):  # the first call records, the second replays
        want_loss, want = _eager_grads(fn, call_args)
        for a in call_args:
            if isinstance(a, gg.Tensor):
                a.grad = None
        loss = step(*call_args)
        got = [a.grad.numpy() for a in call_args if isinstance(a, gg.Tensor) and a.requires_grad]
        assert loss.item() == pytest.approx(want_loss, rel=1e-12, abs=1e-12)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    assert len(step._programs) == 1  # same shapes: one recording, replayed
    return step


def _weights_for(out, rng):
    """A fixed random weighting, so every output element has its own gradient."""
    return rng.standard_normal(out.shape)


def test_every_op_replays_like_the_engine(op_case: tuple, cases) -> None:
    name, shapes, attrs = op_case
    op = gg.OPS[name]
    rng = np.random.default_rng(5)
    args = cases.sample(op, shapes, rng)
    new_args = cases.sample(op, shapes, np.random.default_rng(6))
    weights = _weights_for(op(*args, **attrs), rng)

    def fn(*xs):
        return (op(*xs, **attrs) * weights).sum()

    index = attrs.get("index")
    if isinstance(index, np.ndarray) and index.dtype == np.bool_:
        with pytest.raises(gg.CompileError, match="boolean mask"):
            gg.compile(fn)(*args)
        return
    _check_against_eager(fn, args, new_args)


def test_every_composite_replays_like_the_engine(composite_case: tuple, cases) -> None:
    name, shapes, kw = composite_case
    f = cases.COMPOSITES[name][0]
    rng = np.random.default_rng(8)
    args = cases.sample_composite(shapes, rng)
    new_args = cases.sample_composite(shapes, np.random.default_rng(9))
    weights = _weights_for(f(*args, **kw), rng)
    _check_against_eager(lambda *xs: (f(*xs, **kw) * weights).sum(), args, new_args)


def _step_matches_eager(step, model, loss_fn, X, y) -> None:
    """One compiled call gives the loss and .grad that loss_fn + backward() give."""
    for p in model.parameters():
        p.grad = None
    loss = step(X, y)
    got = [p.grad.numpy().copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    ref = loss_fn(X, y)
    ref.backward()
    assert loss.item() == ref.item()
    for g, p in zip(got, model.parameters()):
        np.testing.assert_array_equal(g, p.grad.numpy())


def _xor_model(dtype=np.float32, seed=0):
    model = gg.nn.MLP([2, 3, 1], activation="tanh", seed=seed)
    for p in model.parameters():
        p.data = p.data.astype(dtype)
    return model


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_with_a_compiled_step_matches_eager_training(dtype) -> None:
    X, y = gg.data.xor()
    X, y = X.astype(dtype), y.reshape(-1, 1).astype(dtype)
    runs = []
    for compiled in (False, True):
        model = _xor_model(dtype)
        opt = gg.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)

        def loss_fn(X, y, model=model):
            return F.mse_loss(model(X), y)

        step = gg.compile(loss_fn) if compiled else None
        losses = []
        for _ in range(30):
            opt.zero_grad()
            if compiled:
                loss = step(X, y)
            else:
                loss = loss_fn(gg.tensor(X), gg.tensor(y))
                loss.backward()
            opt.step()
            losses.append(loss.item())
        runs.append((losses, [p.numpy().copy() for p in model.parameters()]))
        assert all(p.dtype == dtype for p in model.parameters())
    (l_eager, w_eager), (l_comp, w_comp) = runs
    assert l_comp == l_eager  # the same NumPy calls in the same order: identical numbers
    for a, b in zip(w_eager, w_comp):
        np.testing.assert_array_equal(a, b)
    assert l_comp[-1] < l_comp[0]


def test_the_source_is_the_step_written_out_in_numpy() -> None:
    model = _xor_model()
    step = gg.compile(lambda X, y: F.mse_loss(model(X), y))
    X, y = gg.data.xor()
    step(X, y.reshape(-1, 1).astype(np.float32))
    src = step.source
    assert src.startswith("def step(a0, a1):")
    for piece in ("linear(a0, p0, p1)", "v1 = tanh_into(v0)", "mse_loss(", "# backward",
                  "linear_grad_weight(", "linear_grad_bias(", "tanh_grad_x_into(",
                  "return v3, (g_p0, g_p1, g_p2, g_p3)"):
        assert piece in src, piece
    assert "linear_grad_x(g_v0" not in src  # no gradient for the data X: never computed


def test_a_new_shape_records_again_and_the_old_recording_is_kept() -> None:
    model = _xor_model()
    def loss_fn(X, y):
        return F.mse_loss(model(X), y)

    step = gg.compile(loss_fn)
    rng = np.random.default_rng(0)
    for n in (4, 7, 4, 7):
        X = rng.standard_normal((n, 2)).astype(np.float32)
        y = rng.standard_normal((n, 1)).astype(np.float32)
        _step_matches_eager(step, model, loss_fn, X, y)
    assert len(step._programs) == 2


def test_a_parameter_given_another_shape_is_recorded_again() -> None:
    w = gg.tensor(np.ones(3), requires_grad=True)
    step = gg.compile(lambda x: (x * w).sum())
    step(gg.tensor(np.ones(3)))
    np.testing.assert_array_equal(w.grad.numpy(), np.ones(3))
    w.data = np.ones(1)  # broadcasts now: the recorded un-broadcasting no longer applies
    w.grad = None
    step(gg.tensor(np.arange(3.0)))
    np.testing.assert_array_equal(w.grad.numpy(), [3.0])


def test_gradients_accumulate_like_backward_and_never_share_memory() -> None:
    p = gg.tensor(np.ones(3), requires_grad=True)
    q = gg.tensor(np.ones(3), requires_grad=True)
    step = gg.compile(lambda: (p + q).sum())  # add sends one array to both sides
    step()
    step()
    np.testing.assert_array_equal(p.grad.numpy(), [2.0, 2.0, 2.0])
    assert not np.shares_memory(p.grad.numpy(), q.grad.numpy())
    p.grad.data[0] = 99.0
    assert q.grad.numpy()[0] == 2.0


def test_arguments_that_require_grad_receive_gradients() -> None:
    x = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    step = gg.compile(lambda x: (x ** 3).sum())
    step(x)
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.array([1.0, 4.0, 9.0]))
    x2 = gg.tensor([2.0, 0.0, -1.0], requires_grad=True)
    step(x2)
    np.testing.assert_allclose(x2.grad.numpy(), [12.0, 0.0, 3.0])


def test_class_targets_are_read_on_every_call_not_frozen() -> None:
    model = gg.nn.MLP([4, 5, 3], activation="relu", seed=1)
    step = gg.compile(lambda X, y: F.cross_entropy(model(X), y))
    rng = np.random.default_rng(2)
    X = rng.standard_normal((6, 4)).astype(np.float32)
    step(X, np.zeros(6, dtype=np.int64))
    y = np.array([2, 1, 0, 2, 1, 0])
    loss = step(X, y)
    assert loss.item() == pytest.approx(F.cross_entropy(model(gg.tensor(X)), y).item())


def test_a_side_computation_is_not_replayed() -> None:
    w = gg.tensor(np.ones(2), requires_grad=True)
    seen = []

    def fn(x):
        seen.append(1)
        _metric = (x > 0).sum()  # not part of the loss
        return (x * w).sum()

    step = gg.compile(fn)
    step(gg.tensor([1.0, 2.0]))
    assert len(seen) == 2  # recorded on the data, and once more on other values (a check)
    step(gg.tensor([3.0, 4.0]))
    step(gg.tensor([5.0, 4.0]))
    assert len(seen) == 2  # then replayed, without running the Python function
    assert "greater" not in step.source and "gt" not in step.source.split("# backward")[0]


def test_with_an_observer_attached_the_step_runs_eagerly() -> None:
    model = _xor_model()
    step = gg.compile(lambda X, y: F.mse_loss(model(X), y))
    X, y = gg.data.xor()
    y = y.reshape(-1, 1).astype(np.float32)
    step(X, y)
    with gg.explain.trace() as tr:
        step(X, y)
    assert {n.op for n in tr.nodes} >= {"linear", "tanh", "mse_loss"}  # it saw every op
    assert len(tr.steps) >= 4  # and every backward step


# --------------------------------------------------------------------------- refused input
def test_dropout_in_training_mode_is_refused_with_the_fix() -> None:
    model = gg.nn.Sequential(gg.nn.Linear(2, 3), gg.nn.Dropout(0.5), gg.nn.Linear(3, 1))
    step = gg.compile(lambda X: model(X).sum())
    X = np.ones((4, 2), np.float32)
    with pytest.raises(gg.CompileError, match=r"Dropout drew random numbers.*model\.eval\(\)"):
        step(X)
    model.eval()
    step.reset()
    step(X)  # in eval mode Dropout is the identity: nothing random to freeze
    assert model[0].weight.grad is not None


@pytest.mark.parametrize(("fn", "message"), [
    (lambda x: x * 2, r"shape \(3,\).*must return the scalar loss"),
    (lambda x: 3.0, r"returned float"),
    (lambda x: (x * 2).sum(), r"does not depend on any tensor with requires_grad=True"),
])
def test_a_loss_function_that_returns_no_scalar_loss_is_refused(fn, message) -> None:
    with pytest.raises(gg.CompileError, match=message):
        gg.compile(fn)(np.ones(3))


def test_not_callable_and_no_grad_are_refused() -> None:
    with pytest.raises(TypeError, match="expected a function"):
        gg.compile(3)
    w = gg.tensor(np.ones(2), requires_grad=True)
    step = gg.compile(lambda: (w * w).sum())
    with gg.no_grad(), pytest.raises(gg.GraphError, match="gradients are off"):
        step()
    assert w.grad is None


def test_a_loss_through_a_tensor_computed_outside_is_refused() -> None:
    w = gg.tensor(np.ones(2), requires_grad=True)
    w2 = w * 2  # part of a graph built before the compiled function runs
    with pytest.raises(gg.CompileError, match="computed by 'mul'"):
        gg.compile(lambda: (w2 * w2).sum())()
    with pytest.raises(gg.CompileError, match="argument 0"):
        gg.compile(lambda x: (x * x).sum())(w2)


def test_source_before_any_call_says_so() -> None:
    with pytest.raises(gg.CompileError, match="call the compiled step once"):
        _ = gg.compile(lambda: None).source


@pytest.mark.parametrize("fn", [
    lambda x, w: (gg.tensor(x.numpy() * 2) * w).sum(),  # NumPy on the data: frozen values
    lambda x, w: (x * w).sum() if x.numpy()[0] > 0 else (x * w * 2).sum(),  # if on a value
    lambda x, w: (x * w * float(x.numpy().sum())).sum(),  # a number taken out of the data
])
def test_values_computed_outside_the_ops_are_caught_when_recording(fn) -> None:
    w = gg.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(gg.CompileError, match="glassgrad ops on tensors"):
        gg.compile(fn)(gg.tensor([1.0, -2.0, 5.0]), w)
    assert w.grad is None  # refused before any gradient was stored


@pytest.mark.parametrize("x_dtype", [np.float64, np.int64])
def test_data_of_another_dtype_is_cast_on_every_call(x_dtype) -> None:
    model = gg.nn.MLP([3, 4, 1], activation="leaky_relu", seed=0)  # float32 parameters
    def loss_fn(X, y):
        return F.mse_loss(model(X), y)

    step = gg.compile(loss_fn)
    rng = np.random.default_rng(1)
    for _ in range(3):
        X = (rng.standard_normal((5, 3)) * 3).astype(x_dtype)
        y = rng.standard_normal((5, 1))  # float64 targets for a float32 network
        _step_matches_eager(step, model, loss_fn, X, y)


def test_extra_outputs_are_returned_detached_and_replayed() -> None:
    model = _xor_model()
    X, y = gg.data.xor()
    t = gg.tensor(y.reshape(-1, 1).astype(np.float32))

    def fn(X, y):
        out = model(X)
        return F.mse_loss(out, y), out, (out > 0.5)

    step = gg.compile(fn)
    opt = gg.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):  # the recording, then replays on new weights
        opt.zero_grad()
        loss, out, positive = step(X, t)
        want_out = model(X)
        np.testing.assert_array_equal(out.numpy(), want_out.numpy())
        np.testing.assert_array_equal(positive.numpy(), want_out.numpy() > 0.5)
        assert loss.item() == F.mse_loss(want_out, t).item()
        assert not out.requires_grad and not loss.requires_grad
        opt.step()


@pytest.mark.parametrize(("extra", "message"), [
    (lambda out: 3.0, "item 1 is a float"),
    (lambda out: gg.tensor([1.0, 2.0]), "not computed from its arguments"),
])
def test_extra_outputs_that_cannot_be_replayed_are_refused(extra, message) -> None:
    model = _xor_model()
    X, y = gg.data.xor()
    step = gg.compile(lambda X, y: (F.mse_loss(model(X), y), extra(model(X))))
    with pytest.raises(gg.CompileError, match=message):
        step(X, gg.tensor(y.reshape(-1, 1).astype(np.float32)))

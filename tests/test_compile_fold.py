"""gg.compile(loss_fn, optimizer=opt): a whole training step, the optimizer's update folded
into the product that makes each gradient where it is linear in it (Optimizer.fold).

The oracle is the eager loop ``opt.zero_grad(); loss.backward(); opt.step()`` from the same
weights. A folded update rounds differently (one product-and-add instead of a product, a
scaling and a subtraction), so folded steps are compared to float32 rounding; unfolded ones
bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import blas, ops
from glassgrad.compiler import kernels

F = gg.nn.functional


@pytest.fixture(autouse=True)
def blas_for_small_matrices(monkeypatch):
    """These models are small; fold their products on BLAS all the same."""
    monkeypatch.setattr(blas, "BLAS_MIN", 0)


def _data(rng, n=32, d=6, classes=3):
    return (gg.tensor(rng.standard_normal((n, d)).astype(np.float32)),
            rng.integers(0, classes, n))


def _twins(make_opt, sizes=(6, 8, 8, 3), dtype=np.float32):
    """Two identical MLPs with an optimizer each: one for eager steps, one compiled."""
    models = [gg.nn.MLP(list(sizes), activation="relu", init="kaiming", seed=0)
              for _ in range(2)]
    if dtype != np.float32:
        for m in models:
            for p in m.parameters():
                p.data = p.data.astype(dtype)
    return models, [make_opt(m.parameters()) for m in models]


def _train_both(models, opts, batches, loss_fn=F.cross_entropy):
    (m1, m2), (o1, o2) = models, opts
    step = gg.compile(lambda X, y: loss_fn(m2(X), y), optimizer=o2)
    for X, y in batches:
        o1.zero_grad()
        want = loss_fn(m1(X), y)
        want.backward()
        o1.step()
        got = step(X, y)
        np.testing.assert_allclose(got.item(), want.item(), rtol=1e-5)
        assert all(p.grad is None for p in m2.parameters())  # used up by the update
    return step


@pytest.mark.parametrize("kwargs", [
    dict(lr=0.1), dict(lr=0.1, weight_decay=0.05), dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01),
])
def test_sgd_folds_into_every_linear_layer_and_trains_as_eager(kwargs) -> None:
    rng = np.random.default_rng(0)
    models, opts = _twins(lambda ps: gg.optim.SGD(ps, **kwargs))
    step = _train_both(models, opts, [_data(rng) for _ in range(6)])
    assert len(step._last.folded) == 6  # three weights, three biases
    assert step.source.count("_fold(*U[") == 6
    assert "linear_grad_weight_fold(*U[0], g_v0, v0, a0, p0, p1)  # the optimizer's update " \
           "of p0 in ∂L/∂p0's product" in step.source
    for p1, p2 in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_allclose(p2.numpy(), p1.numpy(), rtol=1e-5, atol=1e-6)
    if kwargs.get("momentum"):
        for p1, p2 in zip(models[0].parameters(), models[1].parameters()):
            np.testing.assert_allclose(opts[1].state[p2]["momentum_buffer"],
                                       opts[0].state[p1]["momentum_buffer"], rtol=1e-5,
                                       atol=1e-6)


@pytest.mark.parametrize("make_opt", [
    lambda ps: gg.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    lambda ps: gg.optim.Adam(ps, lr=0.01), lambda ps: gg.optim.RMSprop(ps, lr=0.01),
])
def test_updates_that_do_not_fold_run_the_optimizer_bit_for_bit(make_opt) -> None:
    rng = np.random.default_rng(1)
    models, opts = _twins(make_opt)
    step = _train_both(models, opts, [_data(rng) for _ in range(4)])
    assert "_fold(" not in step.source  # the plain program ran
    for p1, p2 in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_array_equal(p2.numpy(), p1.numpy())


def test_a_learning_rate_schedule_is_read_on_every_step() -> None:
    rng = np.random.default_rng(2)
    models, opts = _twins(lambda ps: gg.optim.SGD(ps, lr=0.5))
    scheds = [gg.optim.StepLR(o, step_size=1, gamma=0.1) for o in opts]
    step = gg.compile(lambda X, y: F.cross_entropy(models[1](X), y), optimizer=opts[1])
    for X, y in [_data(rng) for _ in range(4)]:
        opts[0].zero_grad()
        F.cross_entropy(models[0](X), y).backward()
        opts[0].step()
        step(X, y)
        for s in scheds:
            s.step()
    for p1, p2 in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_allclose(p2.numpy(), p1.numpy(), rtol=1e-5, atol=1e-7)


def test_float64_folds_too() -> None:
    rng = np.random.default_rng(3)
    models, opts = _twins(lambda ps: gg.optim.SGD(ps, lr=0.1), dtype=np.float64)
    batches = [(gg.tensor(rng.standard_normal((16, 6))), rng.integers(0, 3, 16))
               for _ in range(3)]
    step = _train_both(models, opts, batches)
    assert len(step._last.folded) == 6
    for p1, p2 in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_allclose(p2.numpy(), p1.numpy(), rtol=1e-12)


def test_a_weight_read_after_its_gradient_is_not_folded() -> None:
    # In A @ B, A's gradient G @ Bᵀ is taken before B's, Aᵀ @ G, which reads A: updating A
    # inside its own product would hand B's rule the new A. B may fold; A must not.
    rng = np.random.default_rng(4)
    A0, B0 = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    pairs = [[gg.tensor(A0.copy(), requires_grad=True), gg.tensor(B0.copy(), requires_grad=True)]
             for _ in range(2)]
    opts = [gg.optim.SGD(p, lr=0.1) for p in pairs]

    def loss(A, B, X):
        return ((A @ B - X) ** 2).mean()

    X = gg.tensor(rng.standard_normal((3, 5)))
    step = gg.compile(lambda X: loss(*pairs[1], X), optimizer=opts[1])
    for _ in range(3):
        opts[0].zero_grad()
        loss(*pairs[0], X).backward()
        opts[0].step()
        step(X)
    A, B = pairs[1]
    assert [id(t) for t in step._last.folded] == [id(B)]
    for p1, p2 in zip(*pairs):
        np.testing.assert_allclose(p2.numpy(), p1.numpy(), rtol=1e-12)


def test_a_shared_weight_is_updated_once_from_its_summed_gradient() -> None:
    rng = np.random.default_rng(5)
    layers = [gg.nn.Linear(4, 4, seed=0) for _ in range(2)]
    opts = [gg.optim.SGD(layer.parameters(), lr=0.1) for layer in layers]

    def loss(layer, X):
        return (layer(layer(X).tanh()) ** 2).mean()  # the same weights used twice

    step = gg.compile(lambda X: loss(layers[1], X), optimizer=opts[1])
    for _ in range(3):
        X = gg.tensor(rng.standard_normal((5, 4)).astype(np.float32))
        opts[0].zero_grad()
        loss(layers[0], X).backward()
        opts[0].step()
        step(X)
    assert step._last.folded == []  # summed gradients: no single product to fold into
    for p1, p2 in zip(layers[0].parameters(), layers[1].parameters()):
        np.testing.assert_array_equal(p2.numpy(), p1.numpy())


def test_parameters_outside_the_optimizer_and_arguments_keep_their_gradients() -> None:
    rng = np.random.default_rng(6)
    model = gg.nn.MLP([3, 4, 2], activation="tanh", seed=0)
    first, last = model[0], model[2]
    opt = gg.optim.SGD(last.parameters(), lr=0.1)  # only the last layer is trained
    X = gg.tensor(rng.standard_normal((5, 3)).astype(np.float32), requires_grad=True)
    y = rng.integers(0, 2, 5)
    frozen = first.weight.numpy().copy()
    before = last.weight.numpy().copy()
    step = gg.compile(lambda X, y: F.cross_entropy(model(X), y), optimizer=opt)
    step(X, y)
    step(X, y)
    np.testing.assert_array_equal(first.weight.numpy(), frozen)
    assert first.weight.grad is not None and X.grad is not None  # accumulated, as backward()
    assert last.weight.grad is None and not np.array_equal(last.weight.numpy(), before)
    assert [id(p) for p in step._last.folded] == [id(p) for p in last.parameters()]


def test_the_numpy_fallback_folds_the_same_update(monkeypatch) -> None:
    rng = np.random.default_rng(7)
    batches = [_data(rng) for _ in range(3)]
    results = []
    for env in ("", "numpy"):
        monkeypatch.setenv("GLASSGRAD_BLAS", env)
        blas._reset()
        models, opts = _twins(lambda ps: gg.optim.SGD(ps, lr=0.1, momentum=0.5))
        _train_both(models, opts, batches)
        results.append([p.numpy().copy() for p in models[1].parameters()])
    blas._reset()
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_a_wrong_folded_product_is_caught_when_recorded(monkeypatch) -> None:
    monkeypatch.setattr(kernels, "gemm", lambda alpha, a, b, beta, c: None)  # forgets to update
    models, opts = _twins(lambda ps: gg.optim.SGD(ps, lr=0.1))
    step = gg.compile(lambda X, y: F.cross_entropy(models[1](X), y), optimizer=opts[1])
    before = [p.numpy().copy() for p in models[1].parameters()]
    with pytest.raises(gg.CompileError, match="folded update of a parameter of shape"):
        step(*_data(np.random.default_rng(8)))
    for p, b in zip(models[1].parameters(), before):  # nothing moved
        np.testing.assert_array_equal(p.numpy(), b)


def test_an_unused_fold_leaves_no_momentum_state() -> None:
    w = gg.tensor(np.ones((2, 2), np.float32), requires_grad=True)
    opt = gg.optim.SGD([w], lr=0.1, momentum=0.9)
    c, alpha, beta, then = opt.fold(w)
    assert (alpha, beta) == (1.0, 0.0) and opt.state == {}  # b ← ∇ on the first step
    c[...] = 2.0
    then()
    np.testing.assert_allclose(w.numpy(), np.full((2, 2), 0.8))
    assert opt.state[w]["momentum_buffer"] is c


def test_under_an_observer_the_step_runs_eagerly_with_the_optimizer() -> None:
    rng = np.random.default_rng(9)
    models, opts = _twins(lambda ps: gg.optim.SGD(ps, lr=0.1))
    step = gg.compile(lambda X, y: F.cross_entropy(models[1](X), y), optimizer=opts[1])
    X, y = _data(rng)
    with gg.detect_anomaly():
        step(X, y)
    opts[0].zero_grad()
    F.cross_entropy(models[0](X), y).backward()
    opts[0].step()
    for p1, p2 in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_array_equal(p2.numpy(), p1.numpy())
        assert p2.grad is None


def test_an_optimizer_that_is_not_one_is_refused() -> None:
    model = gg.nn.MLP([2, 2], seed=0)
    with pytest.raises(TypeError, match=r"must be a glassgrad optimizer .*got Sequential"):
        gg.compile(lambda X: model(X).sum(), optimizer=model)


@pytest.mark.parametrize("op", [ops.OPS[name] for name in kernels.GRADS_FOLD],
                         ids=lambda op: op.name)
def test_every_folded_variant_is_alpha_rule_plus_beta_c(op) -> None:
    rng = np.random.default_rng(10)
    checked = 0
    for shapes, attrs in op.cases:
        for dtype in (np.float32, np.float64):
            xs = [rng.standard_normal(s).astype(dtype) for s in shapes]
            out = op.forward(*xs, **attrs)
            g = rng.standard_normal(out.shape).astype(dtype)
            for i, fold in enumerate(kernels.GRADS_FOLD[op.name]):
                if fold is None:
                    continue
                grad = op.rules[i](g, out, *xs, **attrs)
                if grad.shape != xs[i].shape:
                    continue  # summed over broadcast axes first: compile does not fold those
                c = rng.standard_normal(xs[i].shape).astype(dtype)
                want = -0.3 * grad + 0.7 * c
                fold(c, -0.3, 0.7, g, out, *xs, **attrs)
                tol = 1e-5 if dtype == np.float32 else 1e-12
                np.testing.assert_allclose(c, want, rtol=tol, atol=tol)
                checked += 1
    assert checked >= len(op.cases)


def test_a_nan_in_the_data_trains_into_nan_as_eager_without_a_compile_error() -> None:
    # loss = Σ (x @ Wᵀ + b): ∂L/∂W = 1ᵀx, so one NaN feature makes one column of the gradient
    # NaN and leaves the rest finite; the record-time checks must compare the rest as usual.
    rng = np.random.default_rng(11)
    layers = [gg.nn.Linear(6, 5, seed=0) for _ in range(2)]
    opts = [gg.optim.SGD(layer.parameters(), lr=0.1) for layer in layers]
    X = gg.tensor(rng.standard_normal((8, 6)).astype(np.float32))
    X.data[3, 2] = np.nan
    step = gg.compile(lambda X: layers[1](X).sum(), optimizer=opts[1])
    step(X)
    opts[0].zero_grad()
    layers[0](X).sum().backward()
    opts[0].step()
    assert len(step._last.folded) == 2
    w1, w2 = layers[0].weight.numpy(), layers[1].weight.numpy()
    assert np.isnan(w1[:, 2]).all() and np.isfinite(np.delete(w1, 2, axis=1)).all()
    np.testing.assert_allclose(w2, w1, rtol=1e-6)  # NaN where eager has NaN


def test_a_network_of_small_parameters_is_not_folded(monkeypatch) -> None:
    monkeypatch.setattr(blas, "BLAS_MIN", 1 << 14)  # the library's own threshold
    rng = np.random.default_rng(12)
    models, opts = _twins(lambda ps: gg.optim.SGD(ps, lr=0.1))
    step = _train_both(models, opts, [_data(rng) for _ in range(3)])
    assert step._last.fused is None and "_fold(" not in step.source
    for p1, p2 in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_array_equal(p2.numpy(), p1.numpy())


def test_the_lowerings_gradients_are_let_go_before_the_first_calls_checks(monkeypatch) -> None:
    """The lowering computes every gradient on the recorded values for the passes to read;
    the first call's checks then run the step twice more. Those arrays must be freed before
    (at batch 1024 they were 10 MiB of that call's peak): none is alive when the checks run,
    and the step still trains as the eager loop does."""
    import weakref

    from glassgrad.compiler import program

    lowered = []
    real_lower, real_check = program.lower, program._check_gradients

    def lower(rec):
        low = real_lower(rec)
        lowered.append([weakref.ref(low.sent[id(p)]) for p in low.leaves])
        return low

    alive = []

    def check(low, grads):
        alive.append(sum(r() is not None for r in lowered[-1]))
        return real_check(low, grads)

    monkeypatch.setattr(program, "lower", lower)
    monkeypatch.setattr(program, "_check_gradients", check)
    models, opts = _twins(lambda ps: gg.optim.SGD(ps, lr=0.1, momentum=0.9))
    step = _train_both(models, opts, [_data(np.random.default_rng(s)) for s in range(3)])
    assert step._last.fused is not None  # (the folded program was checked too)
    assert len(lowered[-1]) == 6 and alive == [0]

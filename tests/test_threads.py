"""Grad mode and engine observers are per thread, as in PyTorch: one thread evaluating inside
``no_grad`` never stops another thread's training from recording its graph."""

import threading

import numpy as np

import glassgrad as gg
from glassgrad import autograd


def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4)).astype(np.float32)
    y = (X[:, :1] * 2 - X[:, 1:2]).astype(np.float32)
    return X, y


def train(steps, on_step=None):
    model = gg.nn.MLP([4, 8, 1], activation="tanh", seed=0)
    opt = gg.optim.SGD(model.parameters(), lr=0.05)
    X, y = data()
    graphs = 0
    for _ in range(steps):
        loss = gg.nn.functional.mse_loss(model(gg.tensor(X)), gg.tensor(y))
        graphs += loss.requires_grad
        opt.zero_grad()
        loss.backward()
        opt.step()
        if on_step:
            on_step()
    return model, graphs


def test_training_beside_an_evaluating_thread_records_every_step():
    reference, _ = train(300)
    stop = threading.Event()
    evaluated = []

    def evaluate():
        model = gg.nn.MLP([4, 8, 1], activation="tanh", seed=1)
        X, _ = data()
        while not stop.is_set():
            with gg.no_grad():
                out = model(gg.tensor(X))
            evaluated.append(out.requires_grad)

    def let_it_evaluate():
        """Every 50 steps, wait until the other thread has evaluated again: the two
        interleave however fast a step is (the interpreter switches threads only every
        few milliseconds, and 300 small steps can take less)."""
        nonlocal steps
        steps += 1
        if steps % 50 == 0:
            seen = len(evaluated)
            for _ in range(10_000):
                if len(evaluated) > seen:
                    break
                threading.Event().wait(0.001)

    steps = 0
    t = threading.Thread(target=evaluate)
    t.start()
    try:
        while not evaluated:  # the evaluation is running before training starts
            threading.Event().wait(0.001)
        before = len(evaluated)
        model, graphs = train(300, on_step=let_it_evaluate)
        during = len(evaluated) - before
    finally:
        stop.set()
        t.join(timeout=30)
    assert during > 0 and not any(evaluated)
    assert graphs == 300
    for a, b in zip(model.parameters(), reference.parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    assert gg.is_grad_enabled() and autograd._threads_changed == 0


def test_out_of_order_exits_leave_each_thread_its_own_mode():
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def thread_a():
        with gg.no_grad():
            a_in.set()
            b_in.wait(10)
        a_out.set()
        seen["a after"] = gg.is_grad_enabled()

    def thread_b():
        a_in.wait(10)
        with gg.no_grad():
            b_in.set()
            a_out.wait(10)  # a left its no_grad first
            seen["b inside, after a left"] = gg.is_grad_enabled()
        seen["b after"] = gg.is_grad_enabled()

    threads = [threading.Thread(target=f) for f in (thread_a, thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"a after": True, "b inside, after a left": False, "b after": True}
    assert gg.is_grad_enabled() and autograd._threads_changed == 0


def test_a_new_thread_starts_with_grad_enabled_even_inside_no_grad():
    seen = []
    with gg.no_grad():
        t = threading.Thread(target=lambda: seen.append(
            (gg.is_grad_enabled(), (gg.tensor([1.0], requires_grad=True) * 2).requires_grad)))
        t.start()
        t.join(10)
        assert not gg.is_grad_enabled()
    assert seen == [(True, True)]


def test_observers_see_only_their_own_thread():
    class Count:
        def __init__(self):
            self.ops = []

        def on_forward(self, op, inputs, out):
            self.ops.append(op.name)

    watcher = Count()
    go, done = threading.Event(), threading.Event()

    def other():
        go.wait(10)
        x = gg.tensor([1.0, 2.0], requires_grad=True)
        (x.exp() * 3).sum().backward()
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with autograd.hook(watcher):
        go.set()
        done.wait(10)
        (gg.tensor([1.0], requires_grad=True) * 2).sum()
    t.join(10)
    assert watcher.ops == ["mul", "sum"]


def test_no_grad_as_a_decorator_is_safe_from_two_threads():
    barrier = threading.Barrier(2)
    results = []

    @gg.no_grad()
    def evaluate():
        barrier.wait(10)
        results.append(gg.is_grad_enabled())
        barrier.wait(10)

    threads = [threading.Thread(target=evaluate) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [False, False] and gg.is_grad_enabled()


def test_the_same_no_grad_object_nests():
    ng = gg.no_grad()
    with ng:
        with ng:
            assert not gg.is_grad_enabled()
        assert not gg.is_grad_enabled()
    assert gg.is_grad_enabled()

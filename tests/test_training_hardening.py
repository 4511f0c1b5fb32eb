"""Hardening of optimizers and fit: atomic steps under Ctrl-C, gradient checks, argument checks.

A Ctrl-C is simulated deterministically: ``signal.raise_signal(SIGINT)`` from inside the update
of one parameter, which runs Python's handler at once (as a real Ctrl-C would at the next
bytecode).
"""

import signal
import threading

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import optim

SHAPES = [(5, 4), (5,), (3, 5), (3,)]

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.5, amsgrad=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.05)),
]
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)]


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return [gg.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True)
            for s in SHAPES]


def _set_grads(params, step):
    rng = np.random.default_rng(100 + step)
    for p in params:
        p.grad = gg.tensor(rng.standard_normal(p.shape).astype(np.float32))


def _run(name, kwargs, steps):
    """(params, optimizer) after ``steps`` clean steps."""
    params = _params()
    opt = getattr(optim, name)(params, **kwargs)
    for k in range(steps):
        _set_grads(params, k)
        opt.step()
    return params, opt


def _assert_same(params, opt, ref_params, ref_opt):
    for p, q in zip(params, ref_params):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    ours, theirs = opt.state_dict()["state"], ref_opt.state_dict()["state"]
    assert ours.keys() == theirs.keys()
    for i in ours:
        assert ours[i].keys() == theirs[i].keys()
        for k, v in ours[i].items():
            np.testing.assert_array_equal(v, theirs[i][k], err_msg=f"state[{i}][{k!r}]")


@pytest.fixture
def sigint_default():
    """Python's default SIGINT handler during the test, whatever the runner installed."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def _interrupt_at(opt, index):
    """Send SIGINT from inside the update of parameter ``index`` (just before its write)."""
    held = opt._params
    apply = opt._apply

    def apply_with_signal(p, *args):
        if p is held[index]:
            signal.raise_signal(signal.SIGINT)
        apply(p, *args)

    opt._apply = apply_with_signal


# ----------------------------------------------------------------------------- Ctrl-C
@pytest.mark.parametrize("prior_steps", [0, 2])  # 0: the state is created during that step
@pytest.mark.parametrize("index", [0, 2])
@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=IDS)
def test_ctrl_c_mid_step_takes_effect_after_the_whole_step(sigint_default, name, kwargs,
                                                            index, prior_steps):
    params, opt = _run(name, kwargs, prior_steps)
    _set_grads(params, prior_steps)
    _interrupt_at(opt, index)
    with pytest.raises(KeyboardInterrupt):
        opt.step()
    ref_params, ref_opt = _run(name, kwargs, prior_steps + 1)
    _assert_same(params, opt, ref_params, ref_opt)  # every parameter and state entry: new
    steps = [s["step"] for s in opt.state_dict()["state"].values() if "step" in s]
    assert steps in ([], [prior_steps + 1] * 4)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_custom_sigint_handler_is_called_once_after_the_step():
    calls = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        params, opt = _run("Adam", dict(lr=0.01), 1)
        _set_grads(params, 1)
        _interrupt_at(opt, 1)
        opt.step()  # the handler raises nothing, so the step returns
        assert calls == [signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, old)
    _assert_same(params, opt, *_run("Adam", dict(lr=0.01), 2))


def test_an_ignored_sigint_stays_ignored():
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        params, opt = _run("SGD", dict(lr=0.1, momentum=0.9), 0)
        _set_grads(params, 0)
        _interrupt_at(opt, 2)
        opt.step()
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, old)
    _assert_same(params, opt, *_run("SGD", dict(lr=0.1, momentum=0.9), 1))


def test_step_in_a_worker_thread_is_not_deferred_and_still_correct():
    params, opt = _run("Adam", dict(lr=0.01), 1)
    _set_grads(params, 1)
    errors = []
    worker = threading.Thread(target=lambda: _call(opt.step, errors))
    worker.start()
    worker.join()
    assert errors == []
    _assert_same(params, opt, *_run("Adam", dict(lr=0.01), 2))


def _call(f, errors):
    try:
        f()
    except BaseException as e:  # noqa: BLE001  (reported to the main thread)
        errors.append(e)


# ----------------------------------------------------------------------------- bad .grad
BAD_GRADS = [
    (lambda p: gg.tensor(np.ones(p.shape[1:], np.float32)), ValueError,
     r"parameter 2 has shape \(3, 5\) but its \.grad has shape \(5,\).*Fix: give it a "
     r"gradient of shape \(3, 5\)"),
    (lambda p: gg.tensor(np.ones(p.shape[::-1], np.float32)), ValueError,
     r"parameter 2 has shape \(3, 5\) but its \.grad has shape \(5, 3\)"),
    (lambda p: gg.tensor(np.ones(p.shape, np.int64)), TypeError,
     r"parameter 2 has dtype float32 but its \.grad has dtype int64.*floating point"),
    (lambda p: gg.tensor(np.ones(p.shape, bool)), TypeError,
     r"parameter 2 has dtype float32 but its \.grad has dtype bool"),
    (lambda p: np.ones(p.shape, np.float32), TypeError,
     r"parameter 2 has a \.grad of type ndarray, not a Tensor"),
]


@pytest.mark.parametrize("make, error, match", BAD_GRADS)
@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=IDS)
def test_a_bad_grad_is_refused_before_anything_changes(name, kwargs, make, error, match):
    params, opt = _run(name, kwargs, 2)
    _set_grads(params, 2)
    params[2].grad = make(params[2])
    before = [p.numpy().copy() for p in params]
    state = opt.state_dict()["state"]
    with pytest.raises(error, match=f"{name}.step\\(\\): " + match):
        opt.step()
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.numpy(), b)
    for i, s in opt.state_dict()["state"].items():
        for k, v in s.items():
            np.testing.assert_array_equal(v, state[i][k])


def test_a_float64_grad_of_a_float32_parameter_is_accepted():
    params, opt = _run("Adam", dict(lr=0.01), 0)
    _set_grads(params, 0)
    for p in params:
        p.grad = gg.tensor(p.grad.numpy().astype(np.float64))
    opt.step()
    ref_params, _ = _run("Adam", dict(lr=0.01), 1)
    for p, q in zip(params, ref_params):
        assert p.dtype == np.float32
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-6)

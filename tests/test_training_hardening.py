"""Hardening of optimizers and fit: atomic steps under Ctrl-C, gradient checks, argument checks.

A Ctrl-C is simulated deterministically: ``signal.raise_signal(SIGINT)`` from inside the update
of one parameter, which runs Python's handler at once (as a real Ctrl-C would at the next
bytecode).
"""

import re
import signal
import threading

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import optim
from glassgrad.training import EarlyStopping

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
    params[2]._grad = make(params[2])  # (the slot: assigning .grad refuses these itself)
    before = [p.numpy().copy() for p in params]
    state = opt.state_dict()["state"]
    with pytest.raises(error, match=f"{name}.step\\(\\): " + match):
        opt.step()
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.numpy(), b)
    for i, s in opt.state_dict()["state"].items():
        for k, v in s.items():
            np.testing.assert_array_equal(v, state[i][k])


@pytest.mark.parametrize("make, match", [
    (lambda ps: optim.SGD(ps, lr="0.1"), r"SGD: lr must be a number, got '0.1' \(a str\)"),
    (lambda ps: optim.Adam(ps, lr=True), r"Adam: lr must be a number, got True \(a bool\)"),
    (lambda ps: optim.RMSprop(ps, momentum="0.9"), r"RMSprop: momentum must be a number"),
    (lambda ps: optim.AdamW(ps, betas=("0.9", 0.999)), r"AdamW: betas\[0\] must be a number"),
])
def test_hyperparameters_given_as_text_or_bools_are_refused(make, match):
    with pytest.raises(TypeError, match=match):
        make(_params())


def test_numpy_hyperparameters_are_accepted():
    params, opt = _run("Adam", dict(lr=np.float32(0.01), betas=(np.float64(0.9), 0.999)), 2)
    ref_params, _ = _run("Adam", dict(lr=0.01), 2)
    for p, q in zip(params, ref_params):
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-6)


def test_a_float64_grad_of_a_float32_parameter_is_accepted():
    params, opt = _run("Adam", dict(lr=0.01), 0)
    _set_grads(params, 0)
    for p in params:
        p._grad = gg.tensor(p.grad.numpy().astype(np.float64))  # (.grad = refuses float64)
    opt.step()
    ref_params, _ = _run("Adam", dict(lr=0.01), 1)
    for p, q in zip(params, ref_params):
        assert p.dtype == np.float32
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-6)


# ----------------------------------------------------------------------------- fit arguments
def _data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    return X, (X[:, 0] - X[:, 1] > 0).astype(np.int64)


def _weights(model):
    return [p.numpy().copy() for p in model.parameters()]


def _fit(model, **kwargs):
    X, y = _data()
    args = {"loss": "cross_entropy", "epochs": 2, "verbose": 0, "seed": 0, **kwargs}
    return gg.fit(model, X, y, **args)


def test_numpy_scalars_are_accepted_for_counts_and_rates():
    py = gg.nn.MLP([3, 4, 2], seed=0)
    h_py = _fit(py, epochs=3, batch_size=4, lr=0.05, validation_split=0.25,
                early_stopping=EarlyStopping(patience=2, min_delta=0.0), shuffle=True)
    npy = gg.nn.MLP([3, 4, 2], seed=0)
    h_np = _fit(npy, epochs=np.int64(3), batch_size=np.int32(4), lr=np.float32(0.05),
                validation_split=np.float64(0.25), shuffle=np.bool_(True),
                early_stopping=EarlyStopping(patience=np.int64(2), min_delta=np.float32(0)))
    for a, b in zip(_weights(npy), _weights(py)):
        np.testing.assert_array_equal(a, b)
    assert h_np.history == h_py.history and len(h_np.epoch) == 3
    assert type(h_np.params["epochs"]) is int and type(h_np.params["batch_size"]) is int
    assert _fit(gg.nn.MLP([3, 4, 2], seed=0), early_stopping=np.int16(1)).epoch == [1, 2]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"epochs": "10"}, TypeError, r"epochs must be an integer >= 1, got '10' \(a str\)"),
    ({"epochs": True}, TypeError, r"epochs must be an integer >= 1, got True \(a bool\)"),
    ({"epochs": 2.5}, TypeError, r"epochs must be an integer >= 1, got 2.5"),
    ({"epochs": np.float64(3.0)}, TypeError, r"epochs must be an integer >= 1, got"),
    ({"epochs": 0}, ValueError, r"epochs must be an integer >= 1, got 0"),
    ({"epochs": np.int64(-3)}, ValueError, r"epochs must be an integer >= 1, got -3"),
    ({"batch_size": "32"}, TypeError, r"batch_size \(None for the full batch\) must be an int"),
    ({"batch_size": 0}, ValueError, r"batch_size .* must be an integer >= 1, got 0"),
    ({"batch_size": -4}, ValueError, r"batch_size .* got -4"),
    ({"batch_size": False}, TypeError, r"batch_size .* got False \(a bool\)"),
    ({"lr": "0.1"}, TypeError, r"lr must be a number, got '0.1' \(a str\)"),
    ({"lr": True}, TypeError, r"lr must be a number, got True \(a bool\)"),
    ({"lr": float("nan")}, ValueError, r"lr must be a finite number, got nan"),
    ({"lr": np.float32(-0.1)}, ValueError, r"lr=-0.1 must be >= 0"),
    ({"validation_split": "0.2"}, TypeError, r"validation_split must be a number"),
    ({"validation_split": True}, TypeError, r"validation_split must be a number"),
    ({"validation_split": np.float64(1.0)}, ValueError, r"validation_split is a fraction"),
    ({"early_stopping": "5"}, TypeError, r"early_stopping \(a patience in epochs, or an "),
    ({"early_stopping": -1}, ValueError, r"early_stopping .* must be an integer >= 0, got -1"),
    ({"early_stopping": True}, TypeError, r"early_stopping .* got True \(a bool\)"),
    ({"shuffle": "false"}, TypeError, r"shuffle must be True or False, got 'false'"),
    ({"compile": "yes"}, ValueError, r"compile is True, False or the name of a gg.compile "
                                     r"back end \('numpy', 'numba', 'c'\), got 'yes'"),
    ({"compile": 1.0}, TypeError, r"compile must be True or False, got 1.0"),
    ({"verbose": -1}, ValueError, r"verbose \(0, 1 or 2\) must be an integer >= 0, got -1"),
    ({"verbose": "1"}, TypeError, r"verbose \(0, 1 or 2\) must be an integer"),
])
def test_bad_fit_arguments_are_refused_naming_them(kwargs, error, match):
    model = gg.nn.MLP([3, 4, 2], seed=0)
    before = _weights(model)
    with pytest.raises(error, match="fit\\(\\): " + match):
        _fit(model, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(_weights(model), before))
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("kwargs, error, match", [
    ({"patience": "5"}, TypeError, r"patience \(in epochs\) must be an integer >= 0"),
    ({"patience": -1}, ValueError, r"patience \(in epochs\) must be an integer >= 0, got -1"),
    ({"patience": True}, TypeError, r"patience .* got True \(a bool\)"),
    ({"min_delta": "0.1"}, TypeError, r"min_delta must be a number, got '0.1'"),
    ({"monitor": 3}, TypeError, r"monitor must be a name"),
    ({"restore_best_weights": "no"}, TypeError, r"restore_best_weights must be True or False"),
])
def test_bad_early_stopping_arguments(kwargs, error, match):
    with pytest.raises(error, match="EarlyStopping: " + match):
        EarlyStopping(**kwargs)


@pytest.mark.parametrize("monitor, validation, hint", [
    ("val_acc", True, r"\(did you mean 'val_accuracy'\?\)"),
    ("acc", False, r"\(did you mean 'accuracy'\?\)"),
    ("val_loss", False, r"\(val_ values need validation_split= or validation_data=\)"),
])
def test_early_stopping_on_a_name_that_will_not_exist_is_refused_before_any_step(
        monitor, validation, hint):
    model = gg.nn.MLP([3, 4, 2], seed=0)
    before = _weights(model)
    steps = []
    cb = gg.training.LambdaCallback(on_batch_start=lambda t, s: steps.append(s))
    names = ("['loss', 'accuracy', 'val_loss', 'val_accuracy']" if validation
             else "['loss', 'accuracy']")
    with pytest.raises(ValueError, match=(
            rf"EarlyStopping: monitor='{monitor}' will not be in this run's logs, which hold "
            rf"{re_escape(names)} {hint}; no weight was changed")):
        _fit(model, callbacks=[cb], early_stopping=EarlyStopping(monitor=monitor),
             validation_split=0.25 if validation else None)
    assert steps == []
    assert all(np.array_equal(a, b) for a, b in zip(_weights(model), before))


def re_escape(s):
    return re.escape(s)


def test_reduce_lr_on_plateau_monitor_is_checked_at_fit_start():
    model = gg.nn.MLP([3, 4, 2], seed=0)
    opt = gg.optim.SGD(model.parameters(), lr=0.1)
    cb = gg.training.LRSchedulerCallback(optim.ReduceLROnPlateau(opt), monitor="val_acc")
    before = _weights(model)
    with pytest.raises(ValueError, match=r"LRSchedulerCallback: monitor='val_acc' will not"):
        _fit(model, optimizer=opt, callbacks=[cb], validation_split=0.25)
    assert all(np.array_equal(a, b) for a, b in zip(_weights(model), before))


def test_a_known_monitor_still_works():
    h = _fit(gg.nn.MLP([3, 4, 2], seed=0), epochs=4, validation_split=0.25,
             early_stopping=EarlyStopping(patience=10, monitor="val_accuracy"))
    assert h.epoch == [1, 2, 3, 4]


# ----------------------------------------------------------------------------- labels
@pytest.mark.parametrize("labels, expect, refuse", [
    ([0, 1, -1, 1], r"y\[2\] = -1 .* labels from -1 to 1 \(1 out of range\)\. Fix: relabel "
                    r"the classes 0\.\.C-1, e\.g\. np\.unique", "give the model"),
    ([0, 1, 3, 2], r"y\[2\] = 3 .* labels from 0 to 3 \(2 out of range\)\. Fix: relabel the "
                   r"classes 0\.\.C-1, or give the model 4 outputs", "np.unique"),
])
def test_out_of_range_labels_get_the_right_hint(labels, expect, refuse):
    X, _ = _data(4)
    with pytest.raises(ValueError, match=expect) as err:
        gg.fit(gg.nn.MLP([3, 4, 2], seed=0), X, np.array(labels), verbose=0)
    assert refuse not in str(err.value)


@pytest.mark.parametrize("labels, expect, refuse", [
    ([0, -1, 1], r"label -1 at position 1.* labels range from -1 to 1\. Fix: relabel",
     "give the model"),
    ([0, 5, 1], r"label 5 at position 1.* from 0 to 5\. Fix: give the model 6 outputs",
     "negative"),
    ([-100, 3, 1], r"label 3 at position 1.* from 1 to 3\. Fix: give the model 4 outputs",
     "negative"),  # ignore_index -100 is not a label
])
def test_loss_functions_give_the_right_hint_for_labels(labels, expect, refuse):
    logits = gg.tensor(np.zeros((3, 2), np.float32))
    with pytest.raises(IndexError, match=expect) as err:
        gg.nn.functional.cross_entropy(logits, np.array(labels))
    assert refuse not in str(err.value)

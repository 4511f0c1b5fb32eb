"""The optimizers' steps in C (``sgd_step``, ``adam_step`` and ``rmsprop_step`` in
``_optim.c``) against their definitions, the Python ``Optimizer.step`` with ``SGD._update``,
``Adam._update`` and ``RMSprop._update``.

Each test runs the same steps twice, once with the C step and once with it switched off
(``optimizers._native_sgd_step`` and the others set to None), and compares the
parameters and the optimizer's state bit for bit, the writes recorded, and what is left when
the C step declines (it must change nothing).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import autograd
from glassgrad.optim import optimizers
from glassgrad.tensor import Tensor

try:
    from glassgrad import _backward
except ImportError:  # not built here (no C compiler at install time)
    _backward = None
else:  # (autograd did this at import, unless GLASSGRAD_NATIVE=0 kept it from loading it)
    _backward.setup(Tensor, autograd.__dict__)


@pytest.fixture
def c_step(built_extension):
    """The C step (conftest's ``built_extension``), called as plain SGD calls it:
    c_step(params, lr, limit, memo)."""
    return lambda params, lr, limit, memo, state=None, momentum=0.0, dampening=0.0, \
        weight_decay=0.0, nesterov=False: _backward.sgd_step(
            params, lr, limit, memo, state, momentum, dampening, weight_decay, nesterov)


def _params(dtype, shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [gg.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in shapes]


def _set_grads(params, seed, skip=()):
    rng = np.random.default_rng(seed)
    for i, p in enumerate(params):
        g = rng.standard_normal(p.shape).astype(p.numpy().dtype)
        p.grad = None if i in skip else gg.tensor(g)


def _run(native, dtype, shapes, lr, steps=4, skip=(), **kwargs):
    saved = optimizers._native_sgd_step
    optimizers._native_sgd_step = native
    try:
        params = _params(dtype, shapes)
        opt = gg.optim.SGD(params, lr=lr, **kwargs)
        python_steps = 0
        for k in range(steps):  # (the skipped parameter has no gradient on odd steps)
            _set_grads(params, k, [i for i in skip if k % 2])
            python_steps += _declined(opt) > 0
        if native is not None:  # C ran every step but the one that makes momentum buffers
            assert python_steps == (1 if kwargs.get("momentum") else 0)
        state = {i: {key: v.tobytes() for key, v in st.items()}
                 for i, st in opt.state_dict()["state"].items()}
        return ([p.numpy().copy() for p in params], [autograd.version(p) > 0 for p in params],
                state)
    finally:
        optimizers._native_sgd_step = saved


SHAPES = [(3, 2), (3,), (1, 3), (1,), (0, 4), (7, 5, 2)]  # (0-d: see the test below)
SGD_CONFIGS = [{}, dict(momentum=0.9), dict(momentum=0.5, dampening=0.3),
               dict(momentum=0.9, nesterov=True), dict(weight_decay=0.01),
               dict(momentum=0.8, weight_decay=0.1), dict(momentum=1, weight_decay=2)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lr", [0.1, 1e-3, 0.0, 3.0, 1e30])
@pytest.mark.parametrize("kwargs", SGD_CONFIGS, ids=str)
def test_c_step_has_the_python_steps_bits(c_step, dtype, lr, kwargs) -> None:
    with np.errstate(all="ignore"):
        c, c_marked, c_state = _run(optimizers._native_sgd_step, dtype, SHAPES, lr,
                                    skip=(1,), **kwargs)
        py, py_marked, py_state = _run(None, dtype, SHAPES, lr, skip=(1,), **kwargs)
    for a, b in zip(c, py):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()  # bits, not approximately (inf and nan alike)
    assert c_marked == py_marked == [True] * len(SHAPES)
    assert c_state == py_state


def test_c_step_runs_for_the_usual_call_and_records_the_writes(c_step) -> None:
    params = _params(np.float32, [(3, 2), (3,)])
    opt = gg.optim.SGD(params, lr=0.5)
    _set_grads(params, 0)
    w0 = params[0].numpy().copy()
    y = (params[0] * params[0]).sum()  # a graph made before the step reads the weight
    assert c_step(opt.param_groups[0]["params"], 0.5, 1 << 15, opt._marks) == params
    np.testing.assert_array_equal(params[0].numpy(), w0 - np.float32(0.5) * params[0].grad.numpy())
    with pytest.raises(autograd.GraphError, match="modified in place"):
        y.backward()


def test_usual_call_does_not_run_python_update(c_step, monkeypatch) -> None:
    """optim.SGD.step takes the C step: the Python update is not called."""
    params = _params(np.float32, [(3, 2), (3,)])
    opt = gg.optim.SGD(params, lr=0.1)
    _set_grads(params, 0)

    def fail(*args):
        raise AssertionError("the Python update ran")

    monkeypatch.setattr(gg.optim.SGD, "_update", fail)
    monkeypatch.setattr(optimizers, "_native_sgd_step", c_step)
    opt.step()


def _declined(opt):
    """Run opt.step() with the Python update counting its calls; return that count."""
    calls = []
    update = opt._update

    def counting(group):
        calls.append(group)
        update(group)

    opt._update = counting
    try:
        opt.step()
    finally:
        del opt._update  # (the class's own again)
    return len(calls)


def _big():
    return np.ones(1 << 15, np.float32)


# Arrays the C step declines: (what is unusual, how to set it up on the two parameters)
UNUSUAL_ARRAYS = {
    "float64 grad of a float32 weight": lambda ps: setattr(
        ps[0], "_grad", gg.tensor(ps[0].numpy().astype(np.float64))),  # (past the setter)
    "transposed weight": lambda ps: setattr(ps[0], "data", ps[0].numpy().T.copy().T),
    "big weight": lambda ps: (setattr(ps[1], "data", _big()),
                              setattr(ps[1], "grad", gg.tensor(_big()))),
    "read-only weight": lambda ps: ps[0].numpy().setflags(write=False),
    "byte-swapped weight": lambda ps: setattr(ps[1], "_data", ps[1].numpy().astype(">f4")),
    "a .grad that is not a Tensor": lambda ps: setattr(ps[1], "_grad", ps[1].numpy()),
}


@pytest.mark.parametrize("case", list(UNUSUAL_ARRAYS))
def test_unusual_arrays_change_nothing_in_c_and_run_in_python(c_step, case,
                                                              monkeypatch) -> None:
    monkeypatch.setattr(optimizers, "_native_sgd_step", c_step)
    params = _params(np.float32, [(2, 3), (3,)])
    _set_grads(params, 0)
    UNUSUAL_ARRAYS[case](params)
    before = [p.numpy().copy() for p in params]
    clock = autograd._writes
    assert c_step(params, 0.1, 1 << 15, []) is None  # declined: nothing written or marked
    for p, b in zip(params, before):
        assert p.numpy().tobytes() == b.tobytes()
    assert autograd._writes == clock
    opt = gg.optim.SGD(params, lr=0.1)
    if case == "read-only weight":  # the Python step then fails as before, naming NumPy's error
        with pytest.raises(ValueError, match="read-only"):
            opt.step()
    elif case == "a .grad that is not a Tensor":  # and Python's check names the parameter
        with pytest.raises(TypeError, match="parameter 1"):
            opt.step()
    else:
        assert _declined(opt) == 1


# Steps that optim.SGD gives to Python without asking C: (what, SGD's keyword arguments)
UNUSUAL_GROUPS = {
    "a NumPy lr": dict(lr=np.float32(0.1)),
    "an integer lr": dict(lr=1),
    "a NumPy momentum": dict(lr=0.1, momentum=np.float32(0.9)),
    "momentum, on the step that makes the buffers": dict(lr=0.1, momentum=0.9),
}


@pytest.mark.parametrize("case", list(UNUSUAL_GROUPS))
def test_other_hyperparameters_run_in_python(c_step, case, monkeypatch) -> None:
    monkeypatch.setattr(optimizers, "_native_sgd_step", c_step)
    params = _params(np.float32, [(2, 3), (3,)])
    _set_grads(params, 0)
    assert _declined(gg.optim.SGD(params, **UNUSUAL_GROUPS[case])) == 1


def test_momentum_runs_in_c_once_the_buffers_exist(c_step, monkeypatch) -> None:
    monkeypatch.setattr(optimizers, "_native_sgd_step", c_step)
    params = _params(np.float32, [(2, 3), (3,)])
    opt = gg.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True)
    _set_grads(params, 0)
    assert _declined(opt) == 1  # the first step makes the buffers in Python
    _set_grads(params, 1)
    assert _declined(opt) == 0
    for case in ("transposed", "float64", "the gradient itself"):
        buffers = [opt.state[p]["momentum_buffer"] for p in params]
        before = [b.copy() for b in buffers]
        if case == "transposed":
            opt.state[params[0]]["momentum_buffer"] = np.zeros((3, 2), np.float32).T
        elif case == "float64":
            opt.state[params[1]]["momentum_buffer"] = np.zeros(3, np.float64)
        else:
            opt.state[params[1]]["momentum_buffer"] = params[1].grad.numpy()
        weights = [p.numpy().copy() for p in params]
        assert c_step(params, 0.1, 1 << 15, [], opt.state, 0.9, 0.0, 0.0, True) is None, case
        assert [b.tobytes() for b in buffers] == [b.tobytes() for b in before]  # unwritten
        assert [p.numpy().tobytes() for p in params] == [w.tobytes() for w in weights]
        for p, b in zip(params, buffers):
            opt.state[p]["momentum_buffer"] = b


def test_a_0d_parameter_goes_to_python(c_step, c_adam) -> None:
    """NumPy 1.x computes a 0-d float32 array times a Python float in float64 (NumPy 2 in
    float32, as C does): a 0-d parameter is left to Python's step, whatever NumPy runs."""
    params = _params(np.float32, [(3,), ()])
    _set_grads(params, 0)
    assert c_step(params, 0.1, 1 << 15, []) is None
    opt = gg.optim.Adam(params, lr=0.1)
    opt.step()
    g = opt.param_groups[0]
    assert c_adam(params, opt.state, 0.1, *g["betas"], g["eps"], 0.0, False, []) is None


def test_an_unpickled_dtype_is_the_same_dtype(c_step) -> None:
    """A copy of the float32 dtype object (pickle makes one) is float32 all the same."""
    import pickle

    p = gg.tensor(np.ones(3, np.float32), requires_grad=True)
    p.grad = gg.tensor(np.ones(3, np.float32))
    p.grad._data = p.grad._data.view(pickle.loads(pickle.dumps(np.dtype(np.float32))))
    assert p.grad._data.dtype is not p._data.dtype
    assert c_step([p], 0.5, 1 << 15, []) == [p]
    np.testing.assert_array_equal(p.numpy(), np.float32([0.5, 0.5, 0.5]))


def test_partly_overlapping_memory_is_declined(c_step) -> None:
    base = np.arange(8, dtype=np.float32)
    p = gg.tensor(np.zeros(4, np.float32), requires_grad=True)
    p.grad = gg.tensor(np.zeros(4, np.float32))
    p._data, p.grad._data = base[:4], base[2:6]  # (the gradient overlaps two elements)
    assert c_step([p], 0.1, 1 << 15, []) is None
    p.grad._data = p._data  # the same memory: w ← w − lr·w, element by element, as NumPy
    assert c_step([p], 0.5, 1 << 15, []) == [p]
    np.testing.assert_array_equal(p.numpy(), np.float32([0, 0.5, 1, 1.5]))


def test_other_calls_take_python(c_step, monkeypatch) -> None:
    monkeypatch.setattr(optimizers, "_native_sgd_step", c_step)
    params = _params(np.float32, [(2, 3), (3,)])

    class MySGD(gg.optim.SGD):
        pass

    _set_grads(params, 0)
    assert _declined(MySGD(params, lr=0.1)) == 1  # a subclass may change any part
    two = gg.optim.SGD([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.2}], lr=0.1)
    assert _declined(two) == 2  # two groups
    opt = gg.optim.SGD(params, lr=0.1)
    calls = []
    opt.step(lambda: calls.append(1))  # a closure: Python's step calls it
    assert calls == [1]
    opt._apply = lambda p, delta, scale=1.0: calls.append(2)  # a patched write is honoured
    opt.step()
    assert calls == [1, 2, 2]


def test_a_bad_gradient_still_gets_pythons_error(c_step, monkeypatch) -> None:
    monkeypatch.setattr(optimizers, "_native_sgd_step", c_step)
    params = _params(np.float32, [(2, 3), (3,)])
    _set_grads(params, 0)
    params[1]._grad = gg.tensor(np.ones(4, np.float32))  # (past the setter's own check)
    before = [p.numpy().copy() for p in params]
    with pytest.raises(ValueError, match="shape"):
        gg.optim.SGD(params, lr=0.1).step()
    for p, b in zip(params, before):  # nothing changed: the first parameter neither
        np.testing.assert_array_equal(p.numpy(), b)


def test_an_interrupt_while_marking_leaves_the_weights(c_step, monkeypatch) -> None:
    """A Ctrl-C (or any error) in mark_modified_memo, looked up by name at each call: the
    weights are not written, and the error reaches the caller."""
    monkeypatch.setattr(optimizers, "_native_sgd_step", c_step)
    params = _params(np.float32, [(2, 3), (3,)])
    _set_grads(params, 0)
    before = [p.numpy().copy() for p in params]

    def interrupted(tensors, memo):
        raise KeyboardInterrupt

    monkeypatch.setattr(autograd, "mark_modified_memo", interrupted)
    with pytest.raises(KeyboardInterrupt):
        gg.optim.SGD(params, lr=0.1).step()
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.numpy(), b)


def test_reference_counts_are_kept(c_step) -> None:
    params = _params(np.float32, [(2, 3), (3,)])
    _set_grads(params, 0)
    opt = gg.optim.SGD(params, lr=0.1)
    arrays = [p._data for p in params] + [p._grad._data for p in params]
    grads = [p._grad for p in params]
    c_step(params, 0.1, 1 << 15, opt._marks)  # (fills the memo, which holds the parameters)
    counts = [sys.getrefcount(x) for x in params + arrays + grads]
    for _ in range(200):
        assert c_step(params, 0.1, 1 << 15, opt._marks) is not None
    assert [sys.getrefcount(x) for x in params + arrays + grads] == counts


def test_bad_arguments_raise(c_step) -> None:
    with pytest.raises(TypeError, match="sgd_step"):
        c_step((), 0.1, 10, [])
    with pytest.raises(TypeError, match="sgd_step"):
        _backward.sgd_step([], 0.1, 10, [])  # (too few arguments)
    assert c_step([], 1, 10, []) is None  # an int lr: Python's step decides
    assert c_step([object()], 0.1, 10, []) is None  # not a Tensor: Python's step decides


def test_native_off_leaves_python() -> None:
    """GLASSGRAD_NATIVE=0 (the whole suite runs that way once on CI) means no C step."""
    if os.environ.get("GLASSGRAD_NATIVE", "").strip() == "0":
        assert optimizers._native_sgd_step is None
    elif _backward is not None:
        assert optimizers._native_sgd_step is _backward.sgd_step


# ----------------------------------------------------------------------------- Adam, AdamW
def _adam_run(native, cls, dtype, kwargs, steps=6, attr="_native_adam_step"):
    saved = getattr(optimizers, attr)
    setattr(optimizers, attr, native)
    try:
        params = _params(dtype, SHAPES)
        opt = cls(params, **kwargs)
        python_steps = 0
        for k in range(steps):  # parameter 1 has no gradient on odd steps: its count lags
            _set_grads(params, k, skip=(1,) if k % 2 else ())
            python_steps += _declined(opt) > 0
        if native is not None:  # C ran every step but the first, which makes the state
            assert python_steps == 1
        state = {i: {key: (v.tobytes() if isinstance(v, np.ndarray) else v)
                     for key, v in s.items()}
                 for i, s in opt.state_dict()["state"].items()}
        return [p.numpy().tobytes() for p in params], state
    finally:
        setattr(optimizers, attr, saved)


ADAM_CONFIGS = [
    (gg.optim.Adam, dict(lr=1e-3)),
    (gg.optim.Adam, dict(lr=0.1, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    (gg.optim.AdamW, dict(lr=1e-2)),
    (gg.optim.AdamW, dict(lr=0.3, weight_decay=0.0)),
    (gg.optim.Adam, dict(lr=1e30)),
]


@pytest.fixture
def c_adam(built_extension):
    return built_extension.adam_step


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls, kwargs", ADAM_CONFIGS)
def test_c_adam_has_the_python_steps_bits_and_state(c_adam, cls, kwargs, dtype) -> None:
    with np.errstate(all="ignore"):
        c = _adam_run(c_adam, cls, dtype, kwargs)
        py = _adam_run(None, cls, dtype, kwargs)
    assert c == py


RMSPROP_CONFIGS = [dict(lr=1e-2), dict(lr=0.1, alpha=0.9, eps=1e-6, weight_decay=0.05),
                   dict(lr=1e-2, momentum=0.9), dict(lr=1e-2, centered=True),
                   dict(lr=3e-3, momentum=0.5, centered=True, weight_decay=0.01)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kwargs", RMSPROP_CONFIGS, ids=str)
def test_c_rmsprop_has_the_python_steps_bits_and_state(c_adam, kwargs, dtype) -> None:
    c = _backward.rmsprop_step
    with np.errstate(all="ignore"):
        ours = _adam_run(c, gg.optim.RMSprop, dtype, kwargs, attr="_native_rmsprop_step")
        py = _adam_run(None, gg.optim.RMSprop, dtype, kwargs, attr="_native_rmsprop_step")
    assert ours == py


def test_unusual_rmsprop_states_run_in_python(c_adam, monkeypatch) -> None:
    monkeypatch.setattr(optimizers, "_native_rmsprop_step", _backward.rmsprop_step)
    params = _params(np.float32, [(2, 3), (3,)])
    opt = gg.optim.RMSprop(params, lr=0.01, momentum=0.9, centered=True)
    _set_grads(params, 0)
    opt.step()
    g = opt.param_groups[0]
    args = (opt.state, 0.01, g["alpha"], g["eps"], 0.0, 0.9, True, [])
    _set_grads(params, 1)
    s = opt.state[params[1]]
    for key, bad in (("grad_avg", None), ("momentum_buffer", s["square_avg"]),
                     ("grad_avg", np.zeros((3, 2), np.float32)[:, 0]),  # (not contiguous)
                     ("step", 1.0)):
        kept = s[key]
        s[key] = bad
        before = [p.numpy().tobytes() for p in params]
        assert _backward.rmsprop_step(params, *args) is None, key
        assert [p.numpy().tobytes() for p in params] == before
        s[key] = kept
    assert _declined(opt) == 0  # with the state restored: C


def test_c_adam_runs_after_the_first_step(c_adam, monkeypatch) -> None:
    monkeypatch.setattr(optimizers, "_native_adam_step", c_adam)
    params = _params(np.float32, [(2, 3), (3,)])
    opt = gg.optim.Adam(params, lr=0.1)
    _set_grads(params, 0)
    assert _declined(opt) == 1  # the first step makes the state in Python
    _set_grads(params, 1)
    assert _declined(opt) == 0  # the second runs in C
    assert [s["step"] for s in opt.state.values()] == [2, 2]
    y = (params[0] * params[0]).sum()
    _set_grads(params, 2)
    opt.step()
    with pytest.raises(autograd.GraphError, match="modified in place"):
        y.backward()


_overlapping = np.zeros(4, np.float32)
ADAM_UNUSUAL = {
    "amsgrad": lambda opt, ps: opt.param_groups[0].update(amsgrad=True),
    "a NumPy lr": lambda opt, ps: opt.param_groups[0].update(lr=np.float32(0.1)),
    "a step that is not an int": lambda opt, ps: opt.state[ps[0]].update(step=2.0),
    "a transposed buffer": lambda opt, ps: opt.state[ps[0]].update(
        exp_avg=np.zeros((3, 2), np.float32).T),
    "a float64 buffer": lambda opt, ps: opt.state[ps[1]].update(
        exp_avg_sq=np.zeros(3, np.float64)),
    "one buffer twice": lambda opt, ps: opt.state[ps[1]].update(
        exp_avg_sq=opt.state[ps[1]]["exp_avg"]),
    "a buffer that is the weight": lambda opt, ps: opt.state[ps[1]].update(
        exp_avg=ps[1]._data),
    "buffers that overlap": lambda opt, ps: opt.state[ps[1]].update(
        exp_avg=_overlapping[:3], exp_avg_sq=_overlapping[1:4]),
    "a parameter without state": lambda opt, ps: opt.state.pop(ps[1]),
    "two groups": lambda opt, ps: opt.add_param_group(
        {"params": [gg.tensor(np.ones(2, np.float32), requires_grad=True)]}),
}


def _adam_after_a_step(c_adam, monkeypatch):
    """(params, opt): Adam with the C step, after its first step made the state, and new
    gradients for the next."""
    monkeypatch.setattr(optimizers, "_native_adam_step", c_adam)
    params = _params(np.float32, [(2, 3), (3,)])
    opt = gg.optim.Adam(params, lr=0.1)
    _set_grads(params, 0)
    opt.step()
    _set_grads(params, 1)
    return params, opt


@pytest.mark.parametrize("case", list(ADAM_UNUSUAL))
def test_unusual_adam_steps_run_in_python(c_adam, case, monkeypatch) -> None:
    params, opt = _adam_after_a_step(c_adam, monkeypatch)
    ADAM_UNUSUAL[case](opt, params)
    before = [p.numpy().copy() for p in params]
    g = opt.param_groups[0]
    if case not in ("two groups", "amsgrad"):  # (those the Python side keeps from C)
        assert c_adam(g["params"], opt.state, g["lr"], *g["betas"], g["eps"],
                      g["weight_decay"], False, opt._marks) is None
        for p, b in zip(params, before):
            assert p.numpy().tobytes() == b.tobytes()
    if case in ("a step that is not an int", "one buffer twice",
                "a buffer that is the weight", "buffers that overlap"):
        return  # (Python's own step then does what it does with such a state)
    assert _declined(opt) >= 1


def test_an_interrupt_while_marking_leaves_adam_as_it_was(c_adam, monkeypatch) -> None:
    params, opt = _adam_after_a_step(c_adam, monkeypatch)
    before = opt.state_dict()["state"]
    weights = [p.numpy().copy() for p in params]

    def interrupted(tensors, memo):
        raise KeyboardInterrupt

    monkeypatch.setattr(autograd, "mark_modified_memo", interrupted)
    with pytest.raises(KeyboardInterrupt):
        opt.step()
    after = opt.state_dict()["state"]
    for i in before:
        assert before[i]["step"] == after[i]["step"] == 1
        for k in ("exp_avg", "exp_avg_sq"):
            assert before[i][k].tobytes() == after[i][k].tobytes()
    for p, w in zip(params, weights):
        assert p.numpy().tobytes() == w.tobytes()


def test_adam_reference_counts_are_kept(c_adam) -> None:
    params = _params(np.float32, [(2, 3), (3,)])
    opt = gg.optim.Adam(params, lr=0.1)
    _set_grads(params, 0)
    opt.step()
    g = opt.param_groups[0]
    args = (g["params"], opt.state, g["lr"], *g["betas"], g["eps"], g["weight_decay"], False,
            opt._marks)
    c_adam(*args)
    watched = params + [p._data for p in params] + [p._grad._data for p in params] + [
        a for s in opt.state.values() for a in (s["exp_avg"], s["exp_avg_sq"])] + list(
        opt.state.values())
    counts = [sys.getrefcount(x) for x in watched]
    for _ in range(100):
        assert c_adam(*args) is not None
    assert [sys.getrefcount(x) for x in watched] == counts
    assert [s["step"] for s in opt.state.values()] == [102, 102]


# ----------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop",
                                       gg.optim.SGD, "momentum"])
def test_fit_trains_the_same_bits_with_and_without_c(c_step, c_adam, optimizer,
                                                     monkeypatch) -> None:
    """gg.fit on moons, the C paths on (steps, .grad, relu's rule) and then all off: the same
    weights and history to the last bit."""
    from glassgrad import ops  # noqa: PLC0415

    X, y = gg.data.moons(120, seed=3)
    results = []
    for native in (True, False):
        for mod, name, c in ((optimizers, "_native_sgd_step", _backward.sgd_step),
                             (optimizers, "_native_adam_step", c_adam),
                             (optimizers, "_native_rmsprop_step", _backward.rmsprop_step),
                             (ops, "_one_pass", _backward.activation_grad)):
            monkeypatch.setattr(mod, name, c if native else None)
        monkeypatch.setattr(autograd, "_native_walk", _backward.walk if native else None)
        model = gg.nn.MLP([2, 16, 16, 2], activation="relu", seed=0)
        if optimizer is gg.optim.SGD:
            opt = gg.optim.SGD(model.parameters(), lr=0.05, weight_decay=1e-3)
        elif optimizer == "momentum":
            opt = gg.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
        else:
            opt = optimizer
        history = gg.fit(model, X, y, optimizer=opt, epochs=5, batch_size=16, verbose=0,
                         seed=0)
        results.append(([p.numpy().tobytes() for p in model.parameters()],
                        [float(v) for v in history.history["loss"]]))
    assert results[0] == results[1]

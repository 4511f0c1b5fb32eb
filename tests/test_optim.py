"""Optimizers vs torch.optim step by step, hyperparameter checks, state dicts."""

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import nn, optim

SHAPES = [(5, 4), (5,), (3, 5), (3,)]

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.5, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.05)),
]


def _pair(torch, name, kwargs, seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    ours = [gg.tensor(a, requires_grad=True) for a in init]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]
    return ours, theirs, getattr(optim, name)(ours, **kwargs), \
        getattr(torch.optim, name)(theirs, **kwargs)


@pytest.mark.parametrize("name, kwargs", CONFIGS)
def test_first_steps_match_torch_with_identical_gradients(name, kwargs, torch):
    ours, theirs, opt, topt = _pair(torch, name, kwargs)
    rng = np.random.default_rng(1)
    for step in range(5):
        for i, (p, tp) in enumerate(zip(ours, theirs)):
            if step == 2 and i == 1:  # a parameter without a gradient is skipped by both
                p.grad, tp.grad = None, None
                continue
            g = rng.standard_normal(p.shape).astype(np.float32)
            p.grad = gg.tensor(g)
            tp.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
        for p, tp in zip(ours, theirs):
            assert p.dtype == np.float32
            np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name, kwargs", [CONFIGS[1], CONFIGS[6], CONFIGS[10], CONFIGS[14]])
def test_training_a_model_matches_torch(name, kwargs, torch):
    net = nn.MLP([4, 6, 3], activation="tanh", seed=0)
    tnet = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    tnet.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                          for k, v in net.state_dict().items()})
    opt = getattr(optim, name)(net.parameters(), **kwargs)
    topt = getattr(torch.optim, name)(tnet.parameters(), **kwargs)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 4)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(net(X), y).backward()
        opt.step()
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tnet(torch.from_numpy(X)), torch.from_numpy(y)).backward()
        topt.step()
    for k, v in tnet.state_dict().items():
        np.testing.assert_allclose(net.state_dict()[k].numpy(), v.numpy(), rtol=1e-5, atol=1e-6)


def test_param_groups_with_their_own_lr():
    a = gg.tensor([1.0], requires_grad=True)
    b = gg.tensor([1.0], requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1, momentum=0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]
    assert opt.param_groups[1]["momentum"] == 0.5
    a.grad, b.grad = gg.tensor([1.0]), gg.tensor([1.0])
    opt.step()
    np.testing.assert_allclose([a.item(), b.item()], [0.9, 0.0], atol=1e-7)


def test_zero_grad():
    p = gg.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.Adam([p])
    (p * p).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert np.array_equal(p.grad.numpy(), [0.0, 0.0])
    opt.zero_grad()
    assert p.grad is None
    opt.step()  # no gradients: nothing happens, no state is created
    assert opt.state == {} and np.array_equal(p.numpy(), [1.0, 2.0])


def test_step_does_not_touch_the_gradients_or_record_a_graph():
    p = gg.tensor([1.0, -2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True)
    (p * p).sum().backward()
    g = p.grad.numpy().copy()
    opt.step()
    np.testing.assert_array_equal(p.grad.numpy(), g)
    assert p.is_leaf and p.requires_grad


def test_closure_is_evaluated_and_returned():
    p = gg.tensor([3.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 9.0
    assert p.item() == 1.5


@pytest.mark.parametrize("make, match", [
    (lambda ps: optim.SGD(ps, lr=-0.1), r"SGD: invalid lr=-0.1: it must be >= 0"),
    (lambda ps: optim.Adam(ps, lr=-1), r"Adam: invalid lr=-1"),
    (lambda ps: optim.AdamW(ps, betas=(0.9, 1.0)), r"AdamW: invalid betas\[1\]=1.0: it must "
     r"be in \[0.0, 1.0\)"),
    (lambda ps: optim.Adam(ps, eps=-1e-8), "invalid eps"),
    (lambda ps: optim.RMSprop(ps, momentum=-0.5), r"RMSprop: invalid momentum=-0.5"),
    (lambda ps: optim.RMSprop(ps, alpha=1.5), "invalid alpha"),
    (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1), "invalid weight_decay"),
    (lambda ps: optim.SGD(ps, lr=0.1, nesterov=True), "nesterov=True needs momentum > 0"),
    (lambda ps: optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda ps: optim.SGD(ps + ps, lr=0.1), "appears twice"),
])
def test_bad_hyperparameters_are_rejected(make, match):
    ps = [gg.tensor([1.0], requires_grad=True)]
    with pytest.raises(ValueError, match=match):
        make(ps)


def test_bad_parameters_are_rejected():
    net = nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"got a model \(Linear\).*SGD\(model.parameters\(\)"):
        optim.SGD(net, lr=0.1)
    with pytest.raises(TypeError, match="parameter 0 is a ndarray, not a Tensor"):
        optim.SGD([np.zeros(2)], lr=0.1)
    w = gg.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="computed by 'mul', so it is not a leaf"):
        optim.SGD([w * 2], lr=0.1)


@pytest.mark.parametrize("name, kwargs", [CONFIGS[1], CONFIGS[8], CONFIGS[14]])
def test_state_dict_round_trip_resumes_exactly(name, kwargs, torch):
    def run(steps, opt, ps, rng):
        for _ in range(steps):
            for p in ps:
                p.grad = gg.tensor(rng.standard_normal(p.shape).astype(np.float32))
            opt.step()

    ours, _, opt, topt = _pair(torch, name, kwargs)
    run(5, opt, ours, np.random.default_rng(3))
    ours2, _, opt2, _ = _pair(torch, name, kwargs)
    rng = np.random.default_rng(3)
    run(3, opt2, ours2, rng)
    sd = opt2.state_dict()
    ours3 = [gg.tensor(p.numpy().copy(), requires_grad=True) for p in ours2]
    opt3 = getattr(optim, name)(ours3, lr=123.0)
    opt3.load_state_dict(sd)
    assert opt3.param_groups[0]["lr"] == kwargs["lr"]
    run(2, opt3, ours3, rng)
    for a, b in zip(ours, ours3):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # PyTorch's layout: the same keys for the groups and the buffers
    tsd = topt.state_dict()
    assert set(sd["param_groups"][0]) <= set(tsd["param_groups"][0])
    assert sd["param_groups"][0]["params"] == [0, 1, 2, 3]
    tp = [torch.tensor(p.numpy(), requires_grad=True) for p in ours]
    topt2 = getattr(torch.optim, name)(tp, **kwargs)
    for p in tp:
        p.grad = torch.ones_like(p)
    topt2.step()
    assert set(sd["state"][0]) == set(topt2.state_dict()["state"][0])


def test_load_state_dict_rejects_mismatches_and_changes_nothing():
    ps = [gg.tensor(np.ones((2, 2), np.float32), requires_grad=True)]
    opt = optim.SGD(ps, lr=0.1, momentum=0.9)
    ps[0].grad = gg.ones(2, 2)
    opt.step()
    before = opt.state_dict()
    bad = {"state": {0: {"momentum_buffer": np.zeros((3, 3))}},
           "param_groups": [{**before["param_groups"][0], "lr": 0.5}]}
    with pytest.raises(ValueError, match=r"buffer 'momentum_buffer' of parameter 0 has shape "
                       r"\(3, 3\), but the parameter has shape \(2, 2\)"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match="group 0 has 2 parameters in the state but 1 here"):
        opt.load_state_dict({"state": {}, "param_groups": [{"lr": 1.0, "params": [0, 1]}]})
    with pytest.raises(ValueError, match="invalid lr=-1"):
        opt.load_state_dict({"state": {}, "param_groups": [{**before["param_groups"][0],
                                                            "lr": -1}]})
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    np.testing.assert_array_equal(after["state"][0]["momentum_buffer"],
                                  before["state"][0]["momentum_buffer"])


def test_state_dict_is_a_copy():
    p = gg.tensor([1.0], requires_grad=True)
    opt = optim.Adam([p])
    p.grad = gg.tensor([1.0])
    opt.step()
    sd = opt.state_dict()
    m = sd["state"][0]["exp_avg"].copy()
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], m)

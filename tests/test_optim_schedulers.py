"""Learning-rate schedules and gradient clipping vs PyTorch."""

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import nn, optim


def _opts(torch=None, lr=0.5, groups=1):
    """glassgrad's SGD and, given the torch module, torch's (else None) on the same groups."""
    ps = [gg.tensor([1.0], requires_grad=True) for _ in range(groups)]
    opt = optim.SGD([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(ps)], lr=lr)
    if torch is None:
        return opt, None
    tps = [torch.tensor([1.0], requires_grad=True) for _ in range(groups)]
    topt = torch.optim.SGD([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(tps)],
                           lr=lr)
    return opt, topt


@pytest.mark.parametrize("name, kwargs", [
    ("StepLR", dict(step_size=3)),
    ("StepLR", dict(step_size=2, gamma=0.5)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=10)),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01)),
])
def test_schedules_match_torch(name, kwargs, torch):
    opt, topt = _opts(torch, groups=2)
    sched = getattr(optim.lr_scheduler, name)(opt, **kwargs)
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kwargs)
    ours, theirs = [], []
    for _ in range(25):  # past T_max: the cosine goes back up, as PyTorch's does
        opt.step()
        topt.step()
        sched.step()
        tsched.step()
        ours.append(sched.get_last_lr())
        theirs.append(tsched.get_last_lr())
        assert [g["lr"] for g in opt.param_groups] == sched.get_last_lr()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    assert ours[0] != ours[-1]


def test_cosine_reaches_eta_min_at_t_max():
    opt, _ = _opts(lr=1.0)
    sched = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(4):
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    np.testing.assert_allclose(lrs, [1.0, 0.1 + 0.45 * (1 + np.cos(np.pi / 4)), 0.55,
                                     0.1 + 0.45 * (1 - np.cos(np.pi / 4)), 0.1])


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(patience=2, factor=0.5),
    dict(mode="max", patience=1, threshold=0.1, threshold_mode="abs"),
    dict(patience=0, cooldown=2, min_lr=0.1, factor=0.5),
    dict(patience=1, threshold=0.05),
])
def test_reduce_on_plateau_matches_torch(kwargs, torch):
    opt, topt = _opts(torch, lr=1.0, groups=2)
    sched = optim.ReduceLROnPlateau(opt, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    rng = np.random.default_rng(0)
    metrics = list(np.linspace(1.0, 0.5, 6)) + [0.5] * 14 + list(rng.uniform(0.3, 0.6, 20))
    ours, theirs = [], []
    for m in metrics:
        sched.step(m)
        tsched.step(m)
        ours.append(sched.get_last_lr())
        theirs.append(tsched.get_last_lr())
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert ours[-1] != ours[0]


def test_scheduler_state_dict_resumes():
    opt, _ = _opts()
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        sched.step()
    sd = sched.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == 3
    opt2, _ = _opts()
    opt2.load_state_dict(opt.state_dict())
    sched2 = optim.StepLR(opt2, step_size=2, gamma=0.5)
    sched2.load_state_dict(sd)
    sched.step()
    sched2.step()
    assert sched2.get_last_lr() == sched.get_last_lr() == [0.125]


def test_scheduler_errors():
    opt, _ = _opts()
    with pytest.raises(ValueError, match="step_size must be a positive integer"):
        optim.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="factor must be < 1"):
        optim.ReduceLROnPlateau(opt, factor=2.0)
    with pytest.raises(TypeError, match="expects an Optimizer"):
        optim.ExponentialLR("sgd", gamma=0.5)
    with pytest.raises(KeyError, match="no 'initial_lr'"):
        optim.ExponentialLR(_opts()[0], gamma=0.5, last_epoch=3)


def _grads(torch=None, seed=0):
    """Parameters with gradients, and the same in torch given its module (else None)."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s).astype(np.float32) * 3 for s in [(30, 20), (20,), (5, 30)]]
    ps = [gg.tensor(a, requires_grad=True) for a in arrays]
    grads = [rng.standard_normal(p.shape).astype(np.float32) for p in ps]
    for p, g in zip(ps, grads):
        p.grad = gg.tensor(g)
    if torch is None:
        return ps, None
    tps = [torch.tensor(a, requires_grad=True) for a in arrays]
    for tp, g in zip(tps, grads):
        tp.grad = torch.from_numpy(g.copy())
    return ps, tps


@pytest.mark.parametrize("max_norm", [0.5, 1e6])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
def test_clip_grad_norm_matches_torch(max_norm, norm_type, torch):
    ps, tps = _grads(torch)
    total = optim.clip_grad_norm_(ps, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type)
    assert isinstance(total, gg.Tensor)
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=1e-5)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-5, atol=1e-7)
    if max_norm < 1:
        norm = np.sqrt(sum((p.grad.numpy().astype(np.float64) ** 2).sum() for p in ps))
        if norm_type == 2.0:
            assert norm == pytest.approx(max_norm, rel=1e-5)


def test_clip_grad_norm_edge_cases():
    assert optim.clip_grad_norm_([gg.tensor([1.0], requires_grad=True)], 1.0).item() == 0.0
    ps, _ = _grads()
    ps[0].grad.data[0, 0] = np.nan
    with pytest.raises(RuntimeError, match="total norm of order 2.0 of the gradients is nan"):
        optim.clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    net = nn.Linear(3, 2, seed=0)
    net(np.ones((1, 3), np.float32)).sum().backward()
    norm = nn.utils.clip_grad_norm_(net, 0.1)  # a Module: all its parameters
    assert norm.item() > 0.1
    total = np.sqrt(sum((p.grad.numpy() ** 2).sum() for p in net.parameters()))
    assert total == pytest.approx(0.1, rel=1e-4)


def test_clip_grad_value_matches_torch(torch):
    ps, tps = _grads(torch, 1)
    optim.clip_grad_value_(ps, 0.5)
    torch.nn.utils.clip_grad_value_(tps, 0.5)
    for p, tp in zip(ps, tps):
        np.testing.assert_array_equal(p.grad.numpy(), tp.grad.numpy())
    assert max(np.abs(p.grad.numpy()).max() for p in ps) == 0.5
    with pytest.raises(ValueError, match="clip_value must be >= 0"):
        optim.clip_grad_value_(ps, -1.0)

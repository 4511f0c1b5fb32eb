"""autograd.zero_grad: the one definition of "forget the gradients" (Module and Optimizer)."""

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import nn
from glassgrad.autograd import zero_grad


def _params_with_grads() -> list:
    a = gg.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    b = gg.tensor(np.ones(3, np.float64), requires_grad=True)
    c = gg.tensor(np.ones(2, np.float32), requires_grad=True)  # never used: no gradient
    ((a * 2).sum() + (b * 3).sum()).backward()
    return [a, b, c]


def test_set_to_none_forgets_every_gradient() -> None:
    params = _params_with_grads()
    zero_grad(params)
    assert [p.grad for p in params] == [None, None, None]


def test_zeros_keep_the_gradient_tensor_its_shape_and_dtype() -> None:
    a, b, c = _params_with_grads()
    grads = a.grad, b.grad
    zero_grad(iter([a, b, c]), set_to_none=False)  # any iterable, e.g. Module.parameters()
    assert a.grad is grads[0] and b.grad is grads[1]  # written in place, as PyTorch does
    for p in (a, b):
        assert p.grad.shape == p.shape and p.grad.dtype == p.dtype
        assert not p.grad.numpy().any()
    assert c.grad is None  # no gradient before: none made up


@pytest.mark.parametrize("set_to_none", [True, False])
def test_module_zero_grad_is_the_same(set_to_none: bool) -> None:
    net = nn.Linear(3, 2, seed=0)
    net(np.ones((4, 3), np.float32)).sum().backward()
    assert all(p.grad.numpy().any() for p in net.parameters())
    net.zero_grad(set_to_none=set_to_none)
    for p in net.parameters():
        assert (p.grad is None) if set_to_none else not p.grad.numpy().any()

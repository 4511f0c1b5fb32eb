"""erf (an op of the table) and GELU built on it, against PyTorch."""

import numpy as np
import pytest

import glassgrad as gg

X = np.linspace(-5.0, 5.0, 41)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_values_and_gradients_match_torch(torch, approximate, dtype):
    a = gg.tensor(X.astype(dtype), requires_grad=True)
    b = torch.tensor(X.astype(dtype), requires_grad=True)
    ya = gg.nn.functional.gelu(a, approximate=approximate)
    yb = torch.nn.functional.gelu(b, approximate=approximate)
    (ya * ya).sum().backward()
    (yb * yb).sum().backward()
    # float32: 1 + erf(x/√2) cancels for x ≪ 0 in both libraries, so compare at the scale of
    # the outputs (up to 5), not of the tiny values there
    tol = 1e-6 if dtype == np.float32 else 1e-12
    assert ya.dtype == dtype
    np.testing.assert_allclose(ya.numpy(), yb.detach().numpy(), rtol=10 * tol, atol=tol)
    np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=10 * tol, atol=tol)


def test_gelu_module_matches_torch_and_refuses_unknown_forms(torch):
    x = X.astype(np.float32)
    for approximate in ("none", "tanh"):
        got = gg.nn.GELU(approximate)(gg.tensor(x)).numpy()
        want = torch.nn.GELU(approximate)(torch.tensor(x)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        gg.nn.GELU("fast")
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh'"):
        gg.nn.functional.gelu(gg.tensor(x), approximate="exact")


def test_erf_is_exact_and_its_second_derivative_works(torch):
    x = gg.tensor(X, requires_grad=True)
    (g,) = gg.grad(gg.erf(x).sum(), x, create_graph=True)
    g.sum().backward()
    t = torch.tensor(X, requires_grad=True)
    (tg,) = torch.autograd.grad(torch.erf(t).sum(), t, create_graph=True)
    tg.sum().backward()
    np.testing.assert_allclose(gg.erf(x).numpy(), torch.erf(t).detach().numpy(), rtol=1e-15)
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-15)
    assert x.erf().numpy() == pytest.approx(gg.erf(x).numpy())

"""nn.functional losses and penalties: values and gradients vs PyTorch and finite differences,
stability at extreme inputs, and the errors for bad targets."""

import functools

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import nn
from glassgrad.nn import functional as F

RNG = np.random.default_rng(0)
N, C = 6, 4
X = RNG.standard_normal((N, C))
Y_REAL = RNG.standard_normal((N, C))
Y_BIN = (RNG.random((N, C)) > 0.5).astype(np.float64)
P = RNG.uniform(0.05, 0.95, (N, C))
LABELS = RNG.integers(0, C, N)
W_CLASS = RNG.uniform(0.5, 2.0, C)

# name: (ours, theirs, input, target); extra keyword arguments are bound in the lambdas.
# theirs is a name in torch.nn.functional or a function of (torch, input, target), resolved
# at test time by _theirs, so that this file imports without torch.
CASES = {
    "mse": (F.mse_loss, "mse_loss", X, Y_REAL),
    "l1": (F.l1_loss, "l1_loss", X, Y_REAL),
    "bce": (F.binary_cross_entropy, "binary_cross_entropy", P, Y_BIN),
    "bce_weighted": (lambda x, y, **k: F.binary_cross_entropy(x, y, weight=W_CLASS, **k),
                     lambda torch, x, y, **k: torch.nn.functional.binary_cross_entropy(
                         x, y, weight=torch.from_numpy(W_CLASS), **k), P, Y_BIN),
    "bce_logits": (F.binary_cross_entropy_with_logits, "binary_cross_entropy_with_logits",
                   X, Y_BIN),
    "bce_logits_pos_weight": (
        lambda x, y, **k: F.binary_cross_entropy_with_logits(x, y, pos_weight=W_CLASS, **k),
        lambda torch, x, y, **k: torch.nn.functional.binary_cross_entropy_with_logits(
            x, y, pos_weight=torch.from_numpy(W_CLASS), **k), X, Y_BIN),
    "cross_entropy": (F.cross_entropy, "cross_entropy", X, LABELS),
    "cross_entropy_weighted": (
        lambda x, y, **k: F.cross_entropy(x, y, weight=W_CLASS, **k),
        lambda torch, x, y, **k: torch.nn.functional.cross_entropy(
            x, y, weight=torch.from_numpy(W_CLASS), **k),
        X, LABELS),
    "cross_entropy_ignore": (
        lambda x, y, **k: F.cross_entropy(x, np.where(np.arange(N) % 3 == 0, -100, y), **k),
        lambda torch, x, y, **k: torch.nn.functional.cross_entropy(
            x, torch.where(torch.arange(N) % 3 == 0, -100, y), **k), X, LABELS),
    "cross_entropy_probs": (F.cross_entropy, "cross_entropy", X,
                            np.exp(Y_REAL) / np.exp(Y_REAL).sum(1, keepdims=True)),
    "nll": (F.nll_loss, "nll_loss", np.log(P / P.sum(1, keepdims=True)), LABELS),
}


def _theirs(spec, torch):
    """The torch oracle of a CASES entry."""
    if isinstance(spec, str):
        return getattr(torch.nn.functional, spec)
    return functools.partial(spec, torch)


@pytest.fixture
def TF(torch):
    return torch.nn.functional


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", list(CASES))
def test_loss_matches_torch_value_and_gradient(case, reduction, torch):
    ours, theirs, x, y = CASES[case]
    theirs = _theirs(theirs, torch)
    xg = gg.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    out = ours(xg, y, reduction=reduction)
    tout = theirs(xt, torch.from_numpy(np.asarray(y)), reduction=reduction)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = RNG.standard_normal(out.shape)
    out.backward(g)
    tout.backward(torch.from_numpy(g))
    np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("case", list(CASES))
def test_loss_gradient_matches_finite_differences(case):
    ours, _, x, y = CASES[case]
    xg = gg.tensor(x, requires_grad=True)
    assert gg.gradcheck(lambda t: ours(t, y, reduction="none"), [xg], atol=1e-7, rtol=1e-5)


def test_target_gradient_flows_when_it_requires_grad():
    x = gg.tensor(X, requires_grad=True)
    y = gg.tensor(Y_REAL, requires_grad=True)
    assert gg.gradcheck(lambda a, b: F.mse_loss(a, b), [x, y])


def test_half_sse_is_half_the_sum_of_squares_with_gradient_yhat_minus_y():
    yhat = gg.tensor([4.0, 1.0], requires_grad=True)
    loss = F.half_sse_loss(yhat, [0.0, 3.0])
    assert loss.item() == 0.5 * (16 + 4)
    loss.backward()
    np.testing.assert_array_equal(yhat.grad.numpy(), [4.0, -2.0])
    assert F.half_sse_loss(yhat, [0.0, 3.0], reduction="mean").item() == 5.0
    np.testing.assert_array_equal(F.half_sse_loss(yhat, [0.0, 3.0], "none").numpy(), [8, 2])
    assert nn.HalfSSELoss()(yhat, [0.0, 3.0]).item() == 10.0


def test_mse_is_pytorchs_mean_without_a_half():
    assert F.mse_loss(gg.tensor([1.0, 3.0]), [0.0, 0.0]).item() == 5.0


def test_bce_with_logits_is_stable_and_exact_at_zero(torch, TF):
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], np.float32)
    y = np.array([1.0, 0.0, 1.0, 1.0, 0.0], np.float32)
    xg = gg.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    out = F.binary_cross_entropy_with_logits(xg, y, reduction="none")
    tout = TF.binary_cross_entropy_with_logits(xt, torch.from_numpy(y), reduction="none")
    # float32 cannot hold 1 + 1e-22: log(1 + e⁻⁵⁰) is 0 here and 1.9e-22 in torch (log1p)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-6, atol=1e-20)
    out.sum().backward()
    tout.sum().backward()
    # σ(0) − 1 = −0.5 at x = 0 (a max(x,0) + log(1+e^−|x|) composite would give −1 there)
    np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-7)
    assert xg.grad.numpy()[2] == -0.5


def test_cross_entropy_is_stable_for_huge_logits(torch, TF):
    x = np.array([[1000.0, -1000.0, 0.0], [-5e4, 5e4, 1.0]], np.float32)
    xg = gg.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    out, tout = F.cross_entropy(xg, [1, 1]), TF.cross_entropy(xt, torch.tensor([1, 1]))
    assert np.isfinite(out.item())
    np.testing.assert_allclose(out.item(), tout.item(), rtol=1e-6)
    out.backward()
    tout.backward()
    np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), atol=1e-7)


def test_bce_clamps_logs_at_minus_100_like_pytorch(torch, TF):
    p = np.array([0.0, 1.0, 0.0, 1.0], np.float32)
    y = np.array([1.0, 0.0, 0.0, 1.0], np.float32)
    out = F.binary_cross_entropy(gg.tensor(p), y, reduction="none")
    tout = TF.binary_cross_entropy(torch.from_numpy(p), torch.from_numpy(y), reduction="none")
    np.testing.assert_allclose(out.numpy(), tout.numpy())
    np.testing.assert_allclose(out.numpy(), [100, 100, 0, 0])


def test_unbatched_cross_entropy(torch, TF):
    x = gg.tensor([2.0, 0.5, -1.0], requires_grad=True)
    out = F.cross_entropy(x, 0)
    tout = TF.cross_entropy(torch.tensor([2.0, 0.5, -1.0]), torch.tensor(0))
    assert out.shape == () and out.item() == pytest.approx(tout.item(), rel=1e-6)


def test_loss_modules_match_functions():
    x, y = gg.tensor(X), LABELS
    assert nn.CrossEntropyLoss(weight=W_CLASS)(x, y).item() == F.cross_entropy(
        x, y, weight=W_CLASS).item()
    assert nn.MSELoss(reduction="sum")(x, Y_REAL).item() == F.mse_loss(
        x, Y_REAL, reduction="sum").item()
    assert nn.L1Loss()(x, Y_REAL).item() == F.l1_loss(x, Y_REAL).item()
    assert nn.BCELoss()(gg.tensor(P), Y_BIN).item() == F.binary_cross_entropy(P, Y_BIN).item()
    assert nn.BCEWithLogitsLoss()(x, Y_BIN).item() == F.binary_cross_entropy_with_logits(
        x, Y_BIN).item()
    logp = gg.tensor(np.log(P))
    assert nn.NLLLoss()(logp, y).item() == F.nll_loss(logp, y).item()
    with pytest.raises(ValueError, match="reduction must be one of"):
        nn.MSELoss(reduction="avg")


def test_float32_predictions_with_float64_targets_stay_float32():
    x = gg.tensor(X.astype(np.float32), requires_grad=True)
    assert F.mse_loss(x, Y_REAL).dtype == np.float32


@pytest.mark.parametrize("call, error, match", [
    (lambda: F.cross_entropy(X, np.array([0, 1, 2, 9, 0, 1])), IndexError,
     r"label 9 at position 3, but the input has 4 classes, so labels must be in 0..3"),
    (lambda: F.cross_entropy(X, -np.ones(N, int)), IndexError, "label -1 at position 0"),
    (lambda: F.cross_entropy(X, LABELS.astype(float)), TypeError,
     r"integer class indices, got dtype float64.*astype\(np.int64\)"),
    (lambda: F.cross_entropy(X, LABELS[:, None]), ValueError,
     r"input of shape \(6, 4\) needs a target of shape \(6,\).*got \(6, 1\).*reshape\(-1\)"),
    (lambda: F.nll_loss(X, LABELS[:3]), ValueError, r"nll_loss: input of shape \(6, 4\)"),
    (lambda: F.mse_loss(X[:, :1], Y_REAL[:, 0]), ValueError,
     r"mse_loss: input shape \(6, 1\) and target shape \(6,\) differ"),
    (lambda: F.binary_cross_entropy(X, Y_BIN), ValueError, "probabilities in \\[0, 1\\]"),
    (lambda: F.l1_loss(X, Y_REAL, reduction="avg"), ValueError, "reduction must be one of"),
    (lambda: F.mse_loss(np.arange(3), np.arange(3)), TypeError, "must be floating point"),
    (lambda: F.cross_entropy(X, LABELS, weight=np.ones(3)), ValueError,
     r"one entry per class, shape \(4,\)"),
])
def test_bad_targets_get_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_penalties_are_the_prior_terms():
    lin = nn.Linear(3, 2, seed=0)
    w, b = lin.weight.numpy(), lin.bias.numpy()
    l2 = F.l2_penalty(lin)
    np.testing.assert_allclose(l2.item(), 0.5 * ((w**2).sum() + (b**2).sum()), rtol=1e-6)
    l2.backward()
    np.testing.assert_allclose(lin.weight.grad.numpy(), w, rtol=1e-6)  # ∂(½w²)/∂w = w
    lin.zero_grad()
    l1 = F.l1_penalty([lin.weight])
    np.testing.assert_allclose(l1.item(), np.abs(w).sum(), rtol=1e-6)
    l1.backward()
    np.testing.assert_array_equal(lin.weight.grad.numpy(), np.sign(w))
    assert lin.bias.grad is None


def test_l2_penalty_gradient_step_equals_sgd_weight_decay():
    a, b = nn.Linear(3, 2, seed=0), nn.Linear(3, 2, seed=0)
    x = np.ones((4, 3), np.float32)
    (a(x).sum() + 0.1 * F.l2_penalty(a)).backward()
    gg.optim.SGD(a.parameters(), lr=0.5).step()
    b(x).sum().backward()
    gg.optim.SGD(b.parameters(), lr=0.5, weight_decay=0.1).step()
    np.testing.assert_allclose(a.weight.numpy(), b.weight.numpy(), rtol=1e-6)


def test_cross_entropy_with_every_sample_ignored_is_nan_like_torch(torch, TF):
    y = np.full(N, -100)
    out = F.cross_entropy(gg.tensor(X, requires_grad=True), y)
    assert np.isnan(out.item())
    assert np.isnan(TF.cross_entropy(torch.tensor(X), torch.from_numpy(y)).item())
    assert F.cross_entropy(X, y, reduction="sum").item() == 0.0


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_loss_of_0d_tensors_goes_backward_as_in_pytorch(reduction: str) -> None:
    # (0-d arithmetic gives NumPy scalars, not arrays: the rule's element count must take them)
    torch = pytest.importorskip("torch")
    x = gg.tensor(1.5, requires_grad=True)
    F.mse_loss(x, gg.tensor(0.25), reduction=reduction).backward()
    xt = torch.tensor(1.5, requires_grad=True)
    torch.nn.functional.mse_loss(xt, torch.tensor(0.25), reduction=reduction).backward()
    assert float(x.grad.numpy()) == pytest.approx(float(xt.grad))
    (g,) = gg.autograd.grad(F.mse_loss(x, gg.tensor(0.25), reduction=reduction), x,
                            create_graph=True)
    x.grad = None
    g.backward()  # the second derivative, through the rule's Tensor path
    assert float(x.grad.numpy()) == pytest.approx(2.0)  # d²/dx² (x − y)², one element

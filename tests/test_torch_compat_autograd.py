"""Autograd-level PyTorch programs run unchanged: the same source text is exec'd once under
``import torch`` and once under ``import glassgrad as torch``, from the same initial
weights (given as NumPy arrays), and the losses must agree to float32 tolerance."""

import numpy as np
import pytest

TORCH_IMPORTS = "import torch\n"
GLASSGRAD_IMPORTS = "import glassgrad as torch\n"

# Fit a cubic to sin(x) with hand-written updates, as the "learning PyTorch with examples"
# series does: tensors with requires_grad, then `w -= lr * w.grad` and `w.grad.zero_()`.
MANUAL_SGD = """
x = torch.tensor(XS)
y = x.sin()
a, b, c, d = (torch.tensor(v, requires_grad=True) for v in W0)
lr = 2e-5
for t in range(40):
    y_pred = a + b * x + c * x ** 2 + d * x ** 3
    loss = (y_pred - y).pow(2).sum()
    losses.append(loss.item())
    loss.backward()
    with torch.no_grad():
        for w in (a, b, c, d):
            w -= lr * w.grad
            w.grad.zero_()
losses.append(f"{d.item():.3f}")
"""

# The same series' custom autograd Function: y = a + b·P3(c + d·x), P3 the Legendre cubic.
CUSTOM_FUNCTION = """
class LegendrePolynomial3(torch.autograd.Function):
    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)
        return 0.5 * (5 * input ** 3 - 3 * input)

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        return grad_output * 1.5 * (5 * input ** 2 - 1)


x = torch.tensor(XS)
y = x.sin()
a, b, c, d = (torch.tensor(v, requires_grad=True) for v in W0)
for t in range(40):
    P3 = LegendrePolynomial3.apply
    y_pred = a + b * P3(c + d * x)
    loss = (y_pred - y).pow(2).sum()
    losses.append(loss.item())
    loss.backward()
    with torch.no_grad():
        for w in (a, b, c, d):
            w.sub_(5e-6 * w.grad)
            w.grad = None
"""

# An older style: update through .data, clear the gradient through p.grad.data.zero_(),
# clamp the weights in place, and log with a format spec on a 0-d tensor.
THROUGH_DATA = """
w1 = torch.tensor(W1, requires_grad=True)
w2 = torch.tensor(W2, requires_grad=True)
x, y = torch.tensor(XB), torch.tensor(YB)
for step in range(25):
    h = (x @ w1).clamp(min=0)
    out = h @ w2
    loss = ((out - y) ** 2).mean()
    loss.backward()
    for p in (w1, w2):
        p.data -= 0.05 * p.grad.data
        p.data.clamp_(-2.0, 2.0)
        p.grad.data.zero_()
    losses.append(loss.item())
    if step % 5 == 0:
        losses.append(f"{loss:.4f}")
"""

PROGRAMS = {"manual SGD with no_grad and grad.zero_()": MANUAL_SGD,
            "custom autograd.Function (Legendre P3)": CUSTOM_FUNCTION,
            "updates through .data and p.grad.data.zero_()": THROUGH_DATA}


def run_program(source, imports):
    rng = np.random.default_rng(3)
    namespace = {
        "XS": np.linspace(-np.pi, np.pi, 200, dtype=np.float32),
        "W0": [np.float32(v) for v in (0.0, -1.0, 0.0, 0.3)],
        "W1": (rng.standard_normal((4, 8)) * 0.5).astype(np.float32),
        "W2": (rng.standard_normal((8, 2)) * 0.5).astype(np.float32),
        "XB": rng.standard_normal((16, 4)).astype(np.float32),
        "YB": rng.standard_normal((16, 2)).astype(np.float32),
        "losses": [],
    }
    exec(imports + source, namespace)
    return namespace["losses"]


@pytest.mark.parametrize("name", PROGRAMS)
def test_autograd_program_runs_unchanged_with_the_same_losses(torch, name):
    theirs = run_program(PROGRAMS[name], TORCH_IMPORTS)
    ours = run_program(PROGRAMS[name], GLASSGRAD_IMPORTS)
    assert len(ours) == len(theirs) > 0
    numbers = [(a, b) for a, b in zip(ours, theirs) if not isinstance(b, str)]
    assert all(isinstance(a, float) for a, _ in numbers)
    np.testing.assert_allclose(*zip(*numbers), rtol=2e-5, atol=1e-6)
    # Formatted values: compared as numbers (the last printed digit may round either way).
    for a, b in zip(ours, theirs):
        if isinstance(b, str):
            assert float(a) == pytest.approx(float(b), abs=1.5e-3)
    assert numbers[-1][0] < numbers[0][0]  # it learns

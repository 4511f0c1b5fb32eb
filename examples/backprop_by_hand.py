"""Backpropagation by hand, checked by glassgrad: the lecture notes' derivation, step by step.

A 2-layer sigmoid network z¹ = W¹a⁰ + b¹, a¹ = σ(z¹), z² = W²a¹ + b², a² = σ(z²), loss
L = ½‖a² − y‖². By the chain rule:
    δ² = (a² − y) ⊙ σ′(z²)              (output layer)
    δ¹ = (W²ᵀ δ²) ⊙ σ′(z¹)              (the next layer's weights carry δ back)
    ∂L/∂Wˡ = δˡ aˡ⁻¹ᵀ,  ∂L/∂bˡ = δˡ,    σ′(z) = σ(z)(1 − σ(z))
This script computes those by hand in NumPy and compares them with glassgrad's backward().

    python examples/backprop_by_hand.py
"""

import numpy as np

import glassgrad as gg

rng = np.random.default_rng(0)
x = rng.standard_normal(3)  # one sample, 3 features
y = np.array([0.0, 1.0])  # 2 targets
W1, b1 = rng.standard_normal((4, 3)), rng.standard_normal(4)  # standard normal, as the notes
W2, b2 = rng.standard_normal((2, 4)), rng.standard_normal(2)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


# ---- by hand
z1 = W1 @ x + b1
a1 = sigmoid(z1)
z2 = W2 @ a1 + b2
a2 = sigmoid(z2)
d2 = (a2 - y) * a2 * (1 - a2)
d1 = (W2.T @ d2) * a1 * (1 - a1)
hand = {"W1": np.outer(d1, x), "b1": d1, "W2": np.outer(d2, a1), "b2": d2}

# ---- by the engine (float64, the same numbers)
params = {k: gg.tensor(v, requires_grad=True) for k, v in
          {"W1": W1, "b1": b1, "W2": W2, "b2": b2}.items()}
h = gg.sigmoid(params["W1"] @ gg.tensor(x) + params["b1"])
out = gg.sigmoid(params["W2"] @ h + params["b2"])
loss = 0.5 * ((out - gg.tensor(y)) ** 2).sum()
loss.backward()

print(f"loss L = {loss.item():.6f}")
print(f"{'gradient':<8} {'max |hand − engine|':>20}")
for k, g in hand.items():
    diff = np.abs(g - params[k].grad.numpy()).max()
    print(f"{'∂L/∂' + k:<8} {diff:>20.2e}")
    assert diff < 1e-12, k
print("the hand-derived deltas and weight gradients match the engine's backward pass")

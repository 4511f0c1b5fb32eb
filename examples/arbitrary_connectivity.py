"""A network of arbitrary connectivity (seed 001), trained on XOR by batch gradient descent.

Backpropagation is not tied to layers: any directed acyclic wiring of units works, because the
gradient of each unit is the sum over the units it feeds. Here

    x ──► h1 = tanh(W₁·x + b₁)                      (2 hidden units)
    x, h1 ──► h2 = tanh(W₂·[x, h1] + b₂)            (a unit fed by the input *and* h1)
    x, h1, h2 ──► ŷ = W₃·[x, h1, h2] + b₃          (the inputs wired straight to the output)

Run:  python examples/arbitrary_connectivity.py
"""

from __future__ import annotations

import numpy as np

import glassgrad as gg
from glassgrad import nn


def build_network(seed: int = 0, dtype: type = np.float32) -> nn.Graph:
    """The wiring above as an ``nn.Graph``; several inputs are concatenated on the last axis."""
    rng = np.random.default_rng(seed)
    net = nn.Graph(inputs="x")
    net.add("h1_in", nn.Linear(2, 2, seed=rng, dtype=dtype), "x")
    net.add("h1", nn.Tanh(), "h1_in")
    net.add("h2_in", nn.Linear(2 + 2, 1, seed=rng, dtype=dtype), ["x", "h1"])
    net.add("h2", nn.Tanh(), "h2_in")
    net.add("out", nn.Linear(2 + 2 + 1, 1, seed=rng, dtype=dtype), ["x", "h1", "h2"])
    return net


def main(steps: int = 500, lr: float = 0.5, seed: int = 0) -> float:
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    net = build_network(seed)
    print(net)
    opt = gg.optim.SGD(net.parameters(), lr=lr)
    for step in range(steps + 1):
        loss = nn.functional.mse_loss(net(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(f"step {step:4d}  loss {loss.item():.6f}")
    pred = net(X).numpy()
    print("predictions:", np.round(pred.ravel(), 3), " targets:", y.ravel())
    return float(loss.item())


if __name__ == "__main__":
    main()

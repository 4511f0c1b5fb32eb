"""Ready-made set-ups a teacher can open in one click (each a plain ``Config`` mapping)."""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "seeds-xor": {
        "title": "The seeds' XOR network (2-3-1, every weight 1)",
        "config": {"data": "xor-table", "features": "x1,x2", "layers": "3",
                   "activation": "linear", "output": "linear", "loss": "half-sse",
                   "init": "constant", "init_value": "1", "lr": "0.1", "batch": "1",
                   "shuffle": "0", "reg": "none"},
        "note": "The seeds' example: identity activations, every weight and bias 1, loss "
                "½Σ(ŷ − y)², α = 0.1, one step on (0, 0) → 0. Click the edge from a hidden "
                "unit to the output: w goes from 1 to 0.6 (ŷ = 4, δ = ŷ − y = 4, ∂L/∂w = "
                "δ·a = 4). The article's 1.4 is a sign slip: δ = y − ŷ used with W := W − α·δ·a, "
                "which climbs the loss. Identity activations keep the network linear: it can "
                "never fit XOR, however long it trains.",
    },
    "glorot": {
        "title": "Glorot & Bengio (2010): sigmoid + N(0, 1), 6 layers",
        "config": {"data": "circles", "features": "x1,x2", "layers": "8,8,8,8,8,8",
                   "activation": "sigmoid", "init": "normal", "init_value": "1",
                   "lr": "0.03", "batch": "10", "shuffle": "1", "reg": "none"},
        "note": "The set-up Glorot & Bengio criticised: sigmoid units with standard-normal "
                "weights, six layers deep. Press play and watch the gradient-norm bars: the "
                "lower layers get far smaller gradients than the top. Then switch the "
                "initializer to xavier and the activation to tanh, and compare.",
    },
    "deep-spiral": {
        "title": "A spiral that needs depth",
        "config": {"data": "spirals", "noise": "0.1", "features": "x1,x2",
                   "layers": "8,8,8,8", "activation": "tanh", "init": "xavier",
                   "lr": "0.03", "batch": "10", "shuffle": "1", "reg": "none"},
        "note": "Two interleaved spirals from x₁ and x₂ alone: one hidden layer of a few "
                "units cannot bend the boundary enough; four layers of 8 tanh units can. "
                "Try removing layers, or adding sin x₁ and sin x₂ as inputs instead.",
    },
}

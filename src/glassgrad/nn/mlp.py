"""``MLP``: the seeds' layered networks in one line, as a ``Sequential`` of Linear + activation."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..creation import rng as random_generator
from . import init as init_
from .activations import ACTIVATIONS
from .layers import Linear, Sequential
from .module import Module, Parameter

_INITS = ("constant:V", "normal", "normal:STD", "uniform", "uniform:A", "xavier",
          "xavier_normal", "kaiming", "kaiming_uniform", "pytorch")
_KAIMING_GAIN = {"identity": "linear", "linear": "linear", "sigmoid": "sigmoid",
                 "tanh": "tanh", "relu": "relu", "leaky_relu": "leaky_relu"}


def _activation(spec: Any, what: str) -> Module | None:
    if spec is None:
        return None
    if isinstance(spec, Module):
        return spec
    if isinstance(spec, type) and issubclass(spec, Module):
        return spec()
    if isinstance(spec, str) and spec.lower() in ACTIVATIONS:
        return ACTIVATIONS[spec.lower()]()
    raise ValueError(
        f"MLP: unknown {what} {spec!r}. Fix: use one of {sorted(ACTIVATIONS)}, a Module "
        f"instance or a Module class."
    )


def _initializer(spec: Any, activation: Any) -> Callable[[Parameter, Parameter | None, Any], None]:
    """A function (weight, bias, rng) -> None that fills one layer in place."""
    if callable(spec):
        takes_seed = "seed" in inspect.signature(spec).parameters

        def custom(w: Parameter, b: Parameter | None, rng: Any) -> None:
            spec(w, seed=rng) if takes_seed else spec(w)
            if b is not None:
                init_.zeros_(b)

        return custom
    if not isinstance(spec, str):
        raise TypeError(f"MLP: init must be a string or a callable, got {type(spec).__name__}")
    kind, _, arg = spec.partition(":")
    act = activation.lower() if isinstance(activation, str) else "linear"
    try:
        value = float(arg) if arg else None
    except ValueError:
        raise ValueError(f"MLP: cannot read the number in init={spec!r}") from None
    if kind == "constant":
        if value is None:
            raise ValueError("MLP: init='constant:V' needs a value, e.g. init='constant:1'")
        v = value

        def constant(w: Parameter, b: Parameter | None, rng: Any) -> None:
            init_.constant_(w, v)
            if b is not None:  # the seed XOR net has every weight at V, the bias ones too
                init_.constant_(b, v)

        return constant
    fills: dict[str, Callable[[Parameter, Any], Any]] = {
        "normal": lambda w, rng: init_.normal_(w, 0.0, 1.0 if value is None else value, rng),
        "uniform": lambda w, rng: init_.uniform_(
            w, -(1.0 if value is None else value), 1.0 if value is None else value, rng),
        "xavier": lambda w, rng: init_.xavier_uniform_(w, seed=rng),
        "xavier_uniform": lambda w, rng: init_.xavier_uniform_(w, seed=rng),
        "xavier_normal": lambda w, rng: init_.xavier_normal_(w, seed=rng),
        "kaiming": lambda w, rng: init_.kaiming_normal_(
            w, nonlinearity=_KAIMING_GAIN.get(act, "relu"), seed=rng),
        "kaiming_normal": lambda w, rng: init_.kaiming_normal_(
            w, nonlinearity=_KAIMING_GAIN.get(act, "relu"), seed=rng),
        "kaiming_uniform": lambda w, rng: init_.kaiming_uniform_(
            w, nonlinearity=_KAIMING_GAIN.get(act, "relu"), seed=rng),
    }
    if kind == "pytorch":
        return lambda w, b, rng: None  # keep Linear's own (PyTorch's) initialization
    if kind not in fills:
        raise ValueError(f"MLP: unknown init {spec!r}. Fix: use one of {list(_INITS)} "
                         f"or a callable such as nn.init.kaiming_normal_.")
    fill = fills[kind]

    def named(w: Parameter, b: Parameter | None, rng: Any) -> None:
        fill(w, rng)
        if b is not None:
            init_.zeros_(b)

    return named


def MLP(  # noqa: N802 - a constructor, named like a class as in PyTorch-style code
    sizes: Sequence[int],
    activation: Any = "tanh",
    output_activation: Any = None,
    init: str | Callable[..., Any] = "xavier",
    bias: bool = True,
    seed: int | np.random.Generator | None = None,
    dtype: Any = np.float32,
) -> Sequential:
    """A fully connected network: Linear(sizes[0], sizes[1]), activation, ..., Linear(...,
    sizes[-1]), then ``output_activation`` if given. ``activation`` is one of "identity",
    "sigmoid", "tanh", "relu", "leaky_relu" (or a Module); it follows every hidden layer.

    ``init`` fills the weights: "constant:V" (every weight *and bias* = V, as the seed XOR
    example), "normal" (standard normal, as the lecture notes; "normal:0.1" for std 0.1),
    "uniform" (U(−1, 1); "uniform:A" for U(−A, A)), "xavier" (Glorot uniform, gain 1),
    "xavier_normal", "kaiming" (He normal with the activation's gain), "kaiming_uniform",
    "pytorch" (Linear's default), or a callable such as ``nn.init.kaiming_normal_`` (given
    ``seed=`` if it accepts one). Biases start at 0 except with "constant:V" and "pytorch".

    A network with identity activations is linear however many layers it has (a product of
    matrices is a matrix), so ``MLP([2, 3, 1], activation="identity")`` cannot learn XOR.

    >>> import glassgrad as gg
    >>> net = gg.nn.MLP([2, 3, 1], activation="identity", init="constant:1")
    >>> net(gg.tensor([[0.0, 0.0]])).item()  # the seed example's forward pass: 1+1+1+1
    4.0
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or any(s <= 0 for s in sizes):
        raise ValueError(
            f"MLP: sizes must list at least an input and an output size, all positive, got "
            f"{sizes}. Example: MLP([2, 3, 1]) for 2 inputs, 3 hidden units, 1 output."
        )
    rng = random_generator(seed)  # (None: the global one, which gg.manual_seed seeds)
    fill = _initializer(init, activation)
    layers: list[Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer = Linear(n_in, n_out, bias=bias, seed=rng, dtype=dtype)
        fill(layer.weight, layer.bias, rng)
        layers.append(layer)
        if i < len(sizes) - 2:
            act = _activation(activation, "activation")
            if act is not None:
                layers.append(act)
    out = _activation(output_activation, "output_activation")
    if out is not None:
        layers.append(out)
    return Sequential(*layers)

"""The third round of eager shortcuts gives what the general path gives: values, graphs,
gradients, hook calls and error messages.

Shortcuts checked: ``Module.__call__`` passing one positional input on as such, and
``Sequential`` calling a child's ``forward`` directly when the child has no hooks and the
base class's ``__call__`` (against calling each layer, hooks registered or ``__call__``
overridden).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import nn


# --------------------------------------------------------------------------- Module.__call__
class _Recorder(nn.Module):
    """forward records what it received, so a test sees how the call reached it."""

    def __init__(self) -> None:
        self.got: list[tuple[tuple, dict]] = []

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self.got.append((args, kwargs))
        return args[0] if args else kwargs.get("x", 0)


@pytest.mark.parametrize("args, kwargs", [
    ((1,), {}), ((1, 2), {}), ((), {}), ((), {"x": 3}), ((1,), {"scale": 2}),
    ((None,), {}), ((1, 2, 3), {"x": 4}),
])
def test_module_call_passes_arguments_as_given(args, kwargs) -> None:
    m = _Recorder()
    m(*args, **kwargs)
    assert m.got == [(args, kwargs)]  # a keyword named x stays a keyword


@pytest.mark.parametrize("args", [(gg.ones(2),), (gg.ones(2), 5)])
def test_forward_hooks_see_the_positional_inputs_and_may_replace_the_output(args) -> None:
    m = _Recorder()
    seen = []

    def hook(module: nn.Module, inputs: tuple, out: Any) -> Any:
        seen.append((module, inputs, out))
        return "replaced"

    handle = m.register_forward_hook(hook)
    assert m(*args) == "replaced"
    assert seen[0][0] is m and seen[0][2] is args[0]
    assert len(seen[0][1]) == len(args) and all(a is b for a, b in zip(seen[0][1], args))
    handle.remove()
    assert m(*args) is args[0]
    assert len(seen) == 1


def test_module_without_forward_still_says_so() -> None:
    with pytest.raises(NotImplementedError, match="has no forward"):
        nn.Module()(gg.ones(2))


# --------------------------------------------------------------------------- Sequential
def _xor_model() -> nn.Sequential:
    model = nn.MLP([2, 3, 1], activation="tanh", seed=0)
    return model


def _layer_by_layer(model: nn.Sequential, x: gg.Tensor) -> gg.Tensor:
    for m in model:
        x = m(x)
    return x


class _Doubling(nn.Linear):
    """A layer whose own __call__ doubles the output: Sequential must call it."""

    def __call__(self, x: Any) -> Any:
        return super().__call__(x) * 2


def test_sequential_gives_the_layer_by_layer_values_and_gradients() -> None:
    model = _xor_model()
    x = gg.tensor(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32))
    fast = model(x)
    general = _layer_by_layer(model, x)
    np.testing.assert_array_equal(fast.numpy(), general.numpy())
    assert fast.op == general.op == "linear"
    fast.sum().backward()
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    general.sum().backward()
    for g, p in zip(grads, model.parameters()):
        np.testing.assert_array_equal(g, p.grad.numpy())


def test_sequential_runs_a_childs_hooks_and_its_own_call() -> None:
    x = gg.ones(1, 2)
    plain = nn.Sequential(nn.Linear(2, 2, seed=0), nn.Tanh())
    base = plain(x).numpy().copy()
    calls = []
    plain[1].register_forward_hook(lambda m, inp, out: calls.append(inp[0].shape) or out * 3)
    np.testing.assert_allclose(plain(x).numpy(), base * 3, rtol=1e-6)
    assert calls == [(1, 2)]
    doubled = nn.Sequential(_Doubling(2, 2, seed=0), nn.Tanh())
    expected = np.tanh(2 * (x.numpy() @ doubled[0].weight.numpy().T + doubled[0].bias.numpy()))
    np.testing.assert_allclose(doubled(x).numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("bad, kind, words", [
    (gg.ones(4, 3), ValueError, "Sequential layer (0): Linear"),
    (gg.tensor(1.0), ValueError, "got shape ()"),
])
def test_sequential_names_the_failing_layer(bad, kind, words) -> None:
    model = _xor_model()
    with pytest.raises(kind) as got:
        model(bad)
    assert words in str(got.value)

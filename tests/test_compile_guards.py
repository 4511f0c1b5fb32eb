"""gg.compile is never silently stale: a change the recording depended on records again (and
the replay equals the eager step), or is refused with CompileError, the fix in the message."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.compiler import guards as compiler_guards
from glassgrad.nn import functional as F

SCALE = 2.0  # a global the loss function below reads
SCALE_PARAMETER = gg.tensor(2.0, requires_grad=True)


def _global_scaled(x, w):
    return (x * w * SCALE).sum()


def _grads(params):
    return [None if p.grad is None else p.grad.numpy().copy() for p in params]


def _after_change(make):
    """Record ``fn``, make the change, then call it compiled and eagerly on the same
    arguments: ((loss, grads) compiled, (loss, grads) eager, the compiled step)."""
    fn, params, args, change = make()
    step = gg.compile(fn)
    step(*args)
    args = change() or args
    results = []
    for run in (step, fn):
        for p in params:
            p.grad = None
        loss = run(*args)
        if run is fn:
            loss.backward()
        results.append((loss.item(), _grads(params)))
    return results[0], results[1], step


def _same(got, want) -> bool:
    (loss1, g1), (loss2, g2) = got, want
    return np.isclose(loss1, loss2, rtol=1e-6) and len(g1) == len(g2) and all(
        (a is None and b is None) or (a is not None and b is not None and np.allclose(a, b))
        for a, b in zip(g1, g2))


# --------------------------------------------------------------------------- the cases
class Doubler(gg.nn.Module):
    """Doubles its input in training mode only: its forward reads ``self.training``."""

    def forward(self, x):
        return x * 2.0 if self.training else x


def _mode_flipped():
    model = gg.nn.Sequential(gg.nn.Linear(3, 2), Doubler())
    x = gg.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3))

    def change():
        model.eval()

    return (lambda x: model(x).sum()), list(model.parameters()), (x,), change


def _parameter_replaced():
    layer = gg.nn.Linear(3, 2)
    x = gg.tensor(np.ones((2, 3), np.float32))

    def change():
        layer.weight = gg.nn.Parameter(np.full((2, 3), 0.5, np.float32))
        params[0] = layer.weight

    params = [layer.weight, layer.bias]
    return (lambda x: (layer(x) ** 2).sum()), params, (x,), change


def _requires_grad_turned_off():
    layer = gg.nn.Linear(3, 2)
    x = gg.tensor(np.ones((2, 3), np.float32))

    def change():
        layer.weight.requires_grad = False

    return (lambda x: (layer(x) ** 2).sum()), [layer.weight, layer.bias], (x,), change


def _requires_grad_turned_on():
    w = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    c = gg.tensor([0.5, 0.5, 0.5])  # a constant, until it is trained too

    def change():
        c.requires_grad = True

    return (lambda x: (x * w * c).sum()), [w, c], (gg.tensor([1.0, -1.0, 2.0]),), change


def _closure_number_changed():
    w = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    scale = 2.0

    def change():
        nonlocal scale
        scale = 3.0

    return (lambda x: (x * w * scale).sum()), [w], (gg.tensor([1.0, -1.0, 2.0]),), change


def _global_number_changed():
    w = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    module = sys.modules[__name__]

    def change():
        module.SCALE = 3.0

    return _global_scaled, [w], (gg.tensor([1.0, -1.0, 2.0]), w), change


def _closure_tensor_rebound():
    w = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    c = gg.tensor([1.0, 1.0, 1.0])

    def change():
        nonlocal c
        c = gg.tensor([4.0, 5.0, 6.0])

    return (lambda x: (x * w * c).sum()), [w], (gg.tensor([1.0, -1.0, 2.0]),), change


def _closure_mask_given_new_values():
    w = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    mask = gg.tensor([True, False, True])  # gg.where holds the mask's array itself

    def change():
        mask.data = np.array([False, True, True])

    return ((lambda x: gg.where(mask, x * w, 0.0).sum()), [w],
            (gg.tensor([1.0, -1.0, 2.0]),), change)


def _hook_added():
    layer = gg.nn.Linear(3, 2)
    x = gg.tensor(np.ones((2, 3), np.float32))

    def change():
        layer.register_forward_hook(lambda module, inputs, out: out * 3.0)

    return (lambda x: (layer(x) ** 2).sum()), [layer.weight, layer.bias], (x,), change


def _value_of_an_argument_read():
    w = gg.tensor([1.0, 2.0, 3.0], requires_grad=True)

    def fn(x, flag):
        return (x * w).sum() if flag.item() else (x * w * w).sum()

    x = gg.tensor([1.0, -1.0, 2.0])
    return fn, [w], (x, gg.tensor(1)), lambda: (x, gg.tensor(0))


# (case, a word of the guard that catches it: without that guard the replay is stale)
CASES = [
    (_mode_flipped, "training"),
    (_parameter_replaced, ".weight is the same object"),
    (_requires_grad_turned_off, "requires_grad"),
    (_requires_grad_turned_on, "requires_grad"),
    (_closure_number_changed, "scale =="),
    (_global_number_changed, "SCALE =="),
    (_closure_tensor_rebound, "c is the same object"),
    (_closure_mask_given_new_values, "its array"),
    (_hook_added, "forward hooks"),
    (_value_of_an_argument_read, "read with .item()"),
]
IDS = [c.__name__.strip("_") for c, _ in CASES]


@pytest.fixture(autouse=True)
def _restore_scale():
    yield
    sys.modules[__name__].SCALE = 2.0


@pytest.mark.parametrize(("make", "word"), CASES, ids=IDS)
def test_after_a_change_the_compiled_step_equals_the_eager_step(make, word) -> None:
    got, want, step = _after_change(make)
    assert _same(got, want), (got, want)
    assert word in step.why_recorded  # it recorded again, and says what changed


@pytest.mark.parametrize(("make", "word"), CASES, ids=IDS)
def test_without_its_guard_the_replay_would_be_stale(make, word, monkeypatch) -> None:
    add = compiler_guards.Guards.add
    monkeypatch.setattr(compiler_guards.Guards, "add",
                        lambda self, expr, what: None if word in what else add(self, expr, what))
    got, want, _ = _after_change(make)
    assert not _same(got, want)  # so the guard above is what makes the replay right


def test_eval_to_train_with_dropout_is_refused_not_replayed() -> None:
    model = gg.nn.Sequential(gg.nn.Linear(2, 3), gg.nn.Dropout(0.5))
    model.eval()
    step = gg.compile(lambda x: model(x).sum())
    x = np.ones((4, 2), np.float32)
    step(x)
    model.train()
    with pytest.raises(gg.CompileError, match=r"Dropout drew random numbers.*model\.eval\(\)"):
        step(x)
    model.eval()
    model[0].weight.grad = None
    step(x)  # the eval recording still holds: replayed
    assert step.why_recorded.startswith("no recording") and len(step._programs) == 1
    np.testing.assert_allclose(model[0].weight.grad.numpy(), np.full((3, 2), 4.0))


# --------------------------------------------------------------------------- values in Python
def _weights():
    return gg.tensor([1.0, 2.0, 3.0], requires_grad=True)


@pytest.mark.parametrize(("read", "how"), [
    (lambda t: t.item() > 5, r"\.item\(\)"),
    (lambda t: float(t) > 5, r"float\(\)"),
    (lambda t: int(t) > 5, r"int\(\)"),
    (lambda t: bool(t > 5), r"bool\(\)"),
    (lambda t: t.tolist() > 5, r"tolist\(\)"),
    (lambda t: t.numpy() > 5, r"numpy\(\)"),
])
def test_a_python_branch_on_a_computed_value_is_refused(read, how) -> None:
    w = _weights()

    def fn(x):
        loss = (x * w).sum()
        return loss * 2 if read(loss) else loss

    with pytest.raises(gg.CompileError, match=how + r".*computed in the step.*Fix: .*gg\.where"):
        gg.compile(fn)(gg.tensor([1.0, 1.0, 1.0]))
    assert w.grad is None  # refused while recording, before any gradient was stored


@pytest.mark.parametrize(("fn", "what"), [
    (lambda x, w: (x * w).sum() * w.sum().item(), "computed in the step"),
    (lambda x, w: (x * w).sum() * SCALE_PARAMETER.item(), "requires grad"),
    (lambda x, w: (x * w).sum() * float(x.numpy().sum()), "argument 0"),
    (lambda x, w: (x * w).sum() * (x > 0).any().item(), "made outside glassgrad's ops"),
])
def test_a_value_that_changes_between_calls_is_refused(fn, what) -> None:
    w = _weights()
    with pytest.raises(gg.CompileError, match=what):
        gg.compile(fn)(gg.tensor([1.0, -1.0, 2.0]), w)
    assert w.grad is None


def test_reading_the_returned_loss_after_the_step_is_fine() -> None:
    w = _weights()
    step = gg.compile(lambda x: (x * w).sum())
    x = gg.tensor([1.0, 1.0, 1.0])
    assert [step(x).item() for _ in range(3)] == [6.0, 6.0, 6.0]
    assert len(step._programs) == 1


def test_a_python_number_argument_read_as_a_value_records_once_per_value() -> None:
    w = _weights()
    step = gg.compile(lambda x, n: (x[:n] * w[:n]).sum())  # slicing reads n in Python
    x = gg.tensor([1.0, 2.0, 4.0])
    for n, want in ((1, 1.0), (2, 5.0), (1, 1.0), (3, 17.0)):
        assert step(x, n).item() == want
    assert "argument 1" in step.why_recorded
    assert len(step._programs) == 1  # one signature: a new value replaces the recording


# --------------------------------------------------------------------------- index arguments
@pytest.mark.parametrize("index", [2, np.int64(0), np.array([2, 0, 0]), np.array([[1], [2]])])
def test_an_index_argument_is_read_on_every_call_not_frozen(index) -> None:
    w = gg.tensor(np.arange(1.0, 13.0).reshape(4, 3), requires_grad=True)

    def fn(i):
        return (w[i] ** 2).sum()

    step = gg.compile(fn)
    step(index)
    other = (np.asarray(index) + 1) % 4
    w.grad = None
    got = step(other if isinstance(index, np.ndarray) else int(other)).item(), w.grad.numpy()
    w.grad = None
    fn(gg.tensor(other)).backward()
    assert got[0] == pytest.approx((np.arange(1.0, 13.0).reshape(4, 3)[other] ** 2).sum())
    np.testing.assert_array_equal(got[1], w.grad.numpy())
    assert len(step._programs) == 1 and "index=a0" in step.source  # an input, no recording


# --------------------------------------------------------------------------- the cache
def test_the_cache_keeps_the_least_recently_used_recordings_up_to_its_size() -> None:
    model = gg.nn.Linear(2, 1)
    step = gg.compile(lambda x: F.mse_loss(model(x), gg.zeros((len(x), 1))))
    assert step.cache_size == 8
    shapes = [(n, 2) for n in range(1, 10)]
    for s in shapes[:8]:
        step(np.ones(s, np.float32))
    kept = step._programs[next(iter(step._programs))]
    step(np.ones(shapes[0], np.float32))  # the oldest, used again: now the most recent
    assert step._programs[next(reversed(step._programs))] is kept
    step(np.ones(shapes[8], np.float32))  # a ninth shape: the least recently used goes
    sizes = [key[0][0][0] for key in step._programs]
    assert len(sizes) == 8 and 2 not in sizes and 1 in sizes and 9 in sizes
    step(np.ones(shapes[1], np.float32))
    assert step.why_recorded.startswith("no recording for these argument shapes")

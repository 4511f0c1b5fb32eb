"""gradcheck itself: it passes right rules and catches wrong ones with a readable report."""

from __future__ import annotations

import re

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.ops import Op, apply

# Deliberately wrong rules, built with Op directly (not defop) so they never enter gg.OPS.
HALF_SQUARE = Op("bad_square", "d(x²)/dx = x  (wrong: misses the 2)", np.square,
                 lambda grad, out, x: grad * x)
WRONG_SIGN_SUB = Op("bad_sub", "wrong sign on b", np.subtract,
                    (lambda grad, out, a, b: grad, lambda grad, out, a, b: grad))
NO_PATH = Op("bad_mul", "forgets a", np.multiply, (None, lambda grad, out, a, b: grad * a))

_REPORT = re.compile(r"input (\d+)(?: \('[^']*'\))? element \(([\d, ]*)\): "
                     r"numeric ([-+][\d.e+-]+)  analytic ([-+][\d.e+-]+)")


def _failures(msg: str) -> list[tuple[int, tuple[int, ...], float, float]]:
    return [(int(i), tuple(int(k) for k in e.replace(" ", "").split(",") if k), float(n),
             float(a)) for i, e, n, a in _REPORT.findall(msg)]


def test_wrong_rule_is_caught_with_input_element_and_both_values() -> None:
    assert "bad_square" not in gg.OPS
    x = gg.tensor([[0.5, -1.5], [2.0, 1.0]], requires_grad=True)
    with pytest.raises(gg.GradcheckError) as info:
        gg.gradcheck(lambda x: apply(HALF_SQUARE, x), [x])
    msg = str(info.value)
    fails = _failures(msg)
    assert {f[1] for f in fails} == {(0, 0), (0, 1), (1, 0), (1, 1)}, msg
    assert all(i == 0 for i, *_ in fails)
    for _, _, numeric, analytic in fails:
        assert analytic == pytest.approx(numeric / 2, rel=1e-5)  # the missing factor 2
    assert "at 4 element(s)" in msg and "missing constant" in msg


def test_report_names_the_failing_input_by_index_and_name() -> None:
    a = gg.tensor([1.0, 2.0], requires_grad=True)
    b = gg.tensor([3.0, 4.0], requires_grad=True)
    b.name = "bias"
    with pytest.raises(gg.GradcheckError) as info:
        gg.gradcheck(lambda a, b: apply(WRONG_SIGN_SUB, a, b), [a, b])
    fails = _failures(str(info.value))
    assert {(i, e) for i, e, _, _ in fails} == {(1, (0,)), (1, (1,))}  # only b is wrong
    assert "input 1 ('bias')" in str(info.value)
    for _, _, numeric, analytic in fails:
        assert analytic == pytest.approx(-numeric, rel=1e-5)


def test_missing_path_reports_analytic_zero() -> None:
    a = gg.tensor([1.0, 2.0], requires_grad=True)
    b = gg.tensor([3.0, -4.0], requires_grad=True)
    with pytest.raises(gg.GradcheckError) as info:
        gg.gradcheck(lambda a, b: apply(NO_PATH, a, b), [a, b])
    fails = _failures(str(info.value))
    assert {(i, e) for i, e, _, _ in fails} == {(0, (0,)), (0, (1,))}
    assert all(analytic == 0 and numeric != 0 for _, _, numeric, analytic in fails)


def test_scalar_input_element_is_reported() -> None:
    x = gg.tensor(1.5, requires_grad=True)
    with pytest.raises(gg.GradcheckError) as info:
        gg.gradcheck(lambda x: apply(HALF_SQUARE, x), [x])
    assert _failures(str(info.value))[0][:2] == (0, ())


def test_raise_exception_false_returns_false() -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    assert gg.gradcheck(lambda x: apply(HALF_SQUARE, x), [x], raise_exception=False) is False


@pytest.mark.parametrize("fn", [
    lambda x: (x * x.sin()).sum(),
    lambda x: x.softmax(axis=-1),
    lambda x: (x @ x.T).tanh(),
    lambda x: [x.exp(), x.sum(axis=0)],  # several outputs
], ids=["x·sin(x)", "softmax", "tanh(xxᵀ)", "two-outputs"])
def test_correct_functions_pass(fn) -> None:
    x = gg.tensor(np.random.default_rng(0).uniform(-1, 1, (3, 4)), requires_grad=True)
    assert gg.gradcheck(fn, [x]) is True


def test_float32_inputs_are_checked_in_float64_and_left_untouched() -> None:
    x = gg.tensor([0.3, -0.7], requires_grad=True)
    seen = []

    def fn(x):
        seen.append(x.dtype)
        return (x ** 3).sum()

    assert gg.gradcheck(fn, [x])
    assert set(seen) == {np.dtype(np.float64)}
    assert x.dtype == np.float32 and x.grad is None
    np.testing.assert_array_equal(x.numpy(), np.array([0.3, -0.7], dtype=np.float32))


def test_inputs_without_requires_grad_are_constants() -> None:
    c = gg.tensor([2.0, 3.0])
    x = gg.tensor([1.0, 1.0], requires_grad=True)
    assert gg.gradcheck(lambda c, x: (c * x * x).sum(), [c, x])
    with pytest.raises(ValueError, match="nothing to check"):
        gg.gradcheck(lambda c: c.sum(), [c])

"""Anomaly mode: planted NaN/Inf traps are caught at the op that made them, with the user's
source line; finite work is untouched; the hook is gone after the block."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.autograd import STATE

HERE = os.path.basename(__file__)


def next_line() -> int:
    """The caller's next source line: where the planted op is written."""
    return sys._getframe(1).f_lineno + 1


def _assert_points_at(msg: str, line: int, code: str) -> None:
    assert f"{__file__}:{line}: " in msg and f"{HERE}:{line}: {code}" in msg, msg


def test_log_of_zero_is_caught_in_forward() -> None:
    x = gg.tensor([0.0, 1.0], requires_grad=True)
    y = x * 2  # finite: not blamed
    with gg.detect_anomaly(), pytest.raises(gg.AnomalyError) as info:
        line = next_line()
        y.log()
    msg = str(info.value)
    assert msg.startswith("forward: 'log' produced")
    assert "1 Inf" in msg and "log of 0" in msg and "Fix:" in msg
    assert "input 0: shape (2,), range [0, 2]" in msg
    _assert_points_at(msg, line, "y.log()")


def test_exp_overflow_is_caught_at_exp_not_downstream() -> None:
    x = gg.tensor([100.0, 1.0], requires_grad=True)  # float32: exp overflows above 88.7
    with gg.detect_anomaly(), pytest.raises(gg.AnomalyError) as info:
        line = next_line()
        big = x.exp()
        big - big  # would be NaN, but the first culprit is exp
    msg = str(info.value)
    assert msg.startswith("forward: 'exp'") and "overflows above 88.7 in float32" in msg
    _assert_points_at(msg, line, "big = x.exp()")


def test_division_by_zero() -> None:
    a = gg.tensor([1.0, 2.0], requires_grad=True)
    b = gg.tensor([0.5, 0.0])
    with gg.detect_anomaly(), pytest.raises(gg.AnomalyError) as info:
        line = next_line()
        a / b
    msg = str(info.value)
    assert msg.startswith("forward: 'div'") and "division by zero" in msg
    assert "input 1: shape (2,), range [0, 0.5]" in msg
    _assert_points_at(msg, line, "a / b")


def test_where_sqrt_trap_is_caught_in_backward_at_sqrt() -> None:
    x = gg.tensor([0.0, 4.0], requires_grad=True)
    with gg.detect_anomaly():
        line = next_line()
        root = x.sqrt()
        y = gg.where(x > 0, root, 0.0).sum()  # forward is finite: [0, 2]
        assert y.item() == 2.0
        with pytest.raises(gg.AnomalyError) as info:
            y.backward()
    msg = str(info.value)
    assert msg.startswith("backward: the gradient that 'sqrt' sends to its input 0")
    assert "1 NaN" in msg and "where(mask, sqrt(x), 0) trap" in msg
    assert "sqrt(where(mask, x, 1))" in msg  # the fix
    _assert_points_at(msg, line, "root = x.sqrt()")
    assert x.grad is None  # the failed backward stored nothing


def test_plain_sqrt_at_zero_is_not_called_the_where_trap() -> None:
    x = gg.tensor([0.0, 1.0], requires_grad=True)
    with gg.detect_anomaly():
        y = x.sqrt().sum()
        with pytest.raises(gg.AnomalyError) as info:
            y.backward()
    msg = str(info.value)
    assert "'sqrt'" in msg and "1 Inf" in msg and "derivative of sqrt at 0" in msg
    assert "trap" not in msg


def test_failed_backward_leaves_grads_and_graph_intact() -> None:
    w = gg.tensor([1.0, 2.0], requires_grad=True)
    x = gg.tensor([0.0, 1.0], requires_grad=True)
    w.grad = gg.tensor([5.0, 5.0])
    loss = (w * 3).sum() + x.sqrt().sum()
    with gg.detect_anomaly(), pytest.raises(gg.AnomalyError):
        loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [5.0, 5.0])
    assert x.grad is None
    with np.errstate(divide="ignore"):  # outside anomaly mode the same backward runs
        loss.backward()
    np.testing.assert_array_equal(w.grad.numpy(), [8.0, 8.0])
    assert np.isinf(x.grad.numpy()[0])


def test_non_finite_data_is_reported_as_an_input() -> None:
    x = gg.tensor([np.nan, 1.0], requires_grad=True)
    with gg.detect_anomaly(), pytest.raises(gg.AnomalyError) as info:
        x * 2
    msg = str(info.value)
    assert "'mul' received a non-finite value in input 0" in msg and "1 NaN" in msg


def test_node_created_outside_the_block() -> None:
    x = gg.tensor([0.0, 1.0], requires_grad=True)
    y = x.sqrt().sum()  # recorded before anomaly mode was on
    with gg.detect_anomaly(), pytest.raises(gg.AnomalyError, match="created outside"):
        y.backward()


def test_finite_work_is_unchanged_and_raises_nothing() -> None:
    def run() -> tuple[float, np.ndarray]:
        x = gg.tensor([0.5, -1.0, 2.0], requires_grad=True)
        loss = (x.tanh() * x.exp() / (x * x + 1)).log_softmax().sum() + x.abs().sqrt().sum()
        loss.backward()
        return loss.item(), x.grad.numpy()

    plain = run()
    with gg.detect_anomaly():
        watched = run()
    assert watched[0] == plain[0]
    np.testing.assert_array_equal(watched[1], plain[1])


def test_hook_is_removed_after_the_block() -> None:
    before = np.geterr()
    with gg.detect_anomaly():
        assert len(STATE.hooks) == 1
    assert STATE.hooks == () and np.geterr() == before
    with pytest.raises(gg.AnomalyError), gg.detect_anomaly():
        gg.tensor([0.0], requires_grad=True).log()
    assert STATE.hooks == () and np.geterr() == before
    with pytest.warns(RuntimeWarning, match="divide by zero"):  # off: NumPy's usual warning
        y = gg.tensor([0.0], requires_grad=True).log()
    assert np.isneginf(y.item())

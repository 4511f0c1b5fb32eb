"""Error messages say what happened, why, and the fix, naming the op and the shapes; and a
failed call changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

import glassgrad as gg


def _message(excinfo: pytest.ExceptionInfo) -> str:
    return str(excinfo.value)


def test_matmul_shape_mismatch_names_op_shapes_and_fix() -> None:
    a = gg.tensor(np.ones((3, 4)), requires_grad=True)
    b = gg.tensor(np.ones((5, 6)))
    with pytest.raises(ValueError) as info:
        a @ b
    msg = _message(info)
    assert msg.startswith("matmul:")
    assert "(3, 4)" in msg and "(5, 6)" in msg
    assert "last dimension of a (4)" in msg and "second-to-last dimension of b (5)" in msg
    assert "Fix:" in msg


def test_matmul_with_a_vector_names_the_first_dimension() -> None:
    with pytest.raises(ValueError, match=r"matmul:.*\(2, 3\), \(4,\).*first dimension of b \(4\)"):
        gg.matmul(gg.tensor(np.ones((2, 3))), gg.tensor(np.ones(4)))


@pytest.mark.parametrize("fn", [gg.add, gg.sub, gg.mul, gg.div, gg.maximum, gg.pow],
                         ids=lambda f: f.__name__)
def test_non_broadcastable_shapes(fn) -> None:
    a = gg.tensor(np.ones((3, 4)), requires_grad=True)
    b = gg.tensor(np.ones((2, 4)))
    with pytest.raises(ValueError) as info:
        fn(a, b)
    msg = _message(info)
    assert msg.startswith(f"{fn.__name__}:")
    assert "(3, 4)" in msg and "(2, 4)" in msg
    assert "broadcast" in msg and "Fix:" in msg


def test_linear_shape_mismatch_names_in_features() -> None:
    x = gg.tensor(np.ones((3, 4)))
    w, b = gg.tensor(np.ones((2, 3)), requires_grad=True), gg.tensor(np.ones(2))
    with pytest.raises(ValueError) as info:
        gg.linear(x, w, b)
    msg = _message(info)
    assert msg.startswith("linear:") and "(3, 4), (2, 3), (2,)" in msg
    assert "in_features (3)" in msg and "Fix:" in msg


def test_backward_on_a_tensor_that_does_not_require_grad() -> None:
    y = (gg.tensor([1.0, 2.0]) * 3).sum()
    with pytest.raises(gg.GraphError) as info:
        y.backward()
    msg = _message(info)
    assert "does not require grad" in msg and "requires_grad=True" in msg
    assert "no_grad" in msg and "Fix:" in msg


def test_backward_on_a_result_computed_under_no_grad() -> None:
    w = gg.tensor([1.0], requires_grad=True)
    with gg.no_grad():
        y = (w * 2).sum()
    with pytest.raises(gg.GraphError, match="does not require grad"):
        y.backward()
    assert w.grad is None


def test_int_tensor_cannot_require_grad() -> None:
    with pytest.raises(TypeError) as info:
        gg.tensor([1, 2, 3], requires_grad=True)
    msg = _message(info)
    assert "only floating-point tensors can require gradients" in msg
    assert "int64" in msg and "(3,)" in msg and "Fix:" in msg


def test_backward_twice_names_the_op_and_the_fix() -> None:
    x = gg.tensor([1.0, 2.0], requires_grad=True)
    y = x.tanh().sum()
    y.backward()
    with pytest.raises(gg.GraphError) as info:
        y.backward()
    msg = _message(info)
    assert "second time" in msg and "'sum'" in msg
    assert "retain_graph=True" in msg and "Fix:" in msg


def test_non_scalar_backward_error_suggests_a_reduction() -> None:
    y = gg.tensor(np.ones((2, 3)), requires_grad=True) * 2
    with pytest.raises(gg.GraphError) as info:
        y.backward()
    msg = _message(info)
    assert "(2, 3)" in msg and "explicit gradient" in msg and ".sum().backward()" in msg


def test_grad_needs_inputs_that_require_grad() -> None:
    x = gg.tensor([1.0], requires_grad=True)
    with pytest.raises(gg.GraphError, match=r"requires_grad=True.*shape \(1,\)"):
        gg.grad(x.sum(), gg.tensor([1.0]))


def test_unsupported_operand_type() -> None:
    with pytest.raises(TypeError, match="type str.*Fix:"):
        gg.tensor([1.0]) + "x"


def test_reshape_and_concatenate_errors_name_the_op() -> None:
    with pytest.raises(ValueError, match=r"^reshape:.*\(6,\).*\(4, 2\)"):
        gg.tensor(np.ones(6)).reshape(4, 2)
    with pytest.raises(ValueError, match=r"^concatenate:.*\(2, 3\), \(2, 4\)"):
        gg.concatenate([gg.tensor(np.ones((2, 3))), gg.tensor(np.ones((2, 4)))])


def test_failed_forward_leaves_no_trace_in_the_graph() -> None:
    a = gg.tensor(np.ones((3, 4)), requires_grad=True)
    with pytest.raises(ValueError):
        a @ gg.tensor(np.ones((5, 6)))
    (a * 2).sum().backward()  # the engine is in a clean state
    np.testing.assert_array_equal(a.grad.numpy(), np.full((3, 4), 2.0))
    assert gg.is_grad_enabled()

"""Higher-order gradients (create_graph=True): second derivatives against their closed forms,
every op's vector-Jacobian product differentiated again, and a Hessian-vector product of a
small network against finite differences of its gradient."""

from __future__ import annotations

import numpy as np
import pytest

import glassgrad as gg

X = np.array([-1.3, -0.4, 0.2, 0.9, 1.7])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


# name -> (function, its second derivative in closed form, points)
SECOND_DERIVATIVES = {
    "tanh": (gg.tanh, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2), X),
    "sigmoid": (gg.sigmoid,
                lambda x: _sigmoid(x) * (1 - _sigmoid(x)) * (1 - 2 * _sigmoid(x)), X),
    "exp": (gg.exp, np.exp, X),
    "cube": (lambda x: x ** 3, lambda x: 6 * x, X),
    "sin": (gg.sin, lambda x: -np.sin(x), X),
    "cos": (gg.cos, lambda x: -np.cos(x), X),
    "log": (gg.log, lambda x: -1 / x ** 2, np.abs(X) + 0.1),
    "sqrt": (gg.sqrt, lambda x: -0.25 * x ** -1.5, np.abs(X) + 0.1),
    "reciprocal": (lambda x: 1 / x, lambda x: 2 / x ** 3, np.abs(X) + 0.1),
    "x*sin(x)": (lambda x: x * gg.sin(x), lambda x: 2 * np.cos(x) - x * np.sin(x), X),
}


@pytest.mark.parametrize("name", list(SECOND_DERIVATIVES))
def test_grad_of_grad_matches_closed_form(name: str) -> None:
    fn, d2, points = SECOND_DERIVATIVES[name]
    x = gg.tensor(points, requires_grad=True)
    (dx,) = gg.grad(fn(x).sum(), x, create_graph=True)
    assert dx.requires_grad
    (dxx,) = gg.grad(dx.sum(), x)
    np.testing.assert_allclose(dxx.numpy(), d2(points), rtol=1e-10, atol=1e-12)


def test_third_derivative_of_a_power() -> None:
    x = gg.tensor(2.0, dtype=gg.float64, requires_grad=True)
    (d1,) = gg.grad(x ** 4, x, create_graph=True)
    (d2,) = gg.grad(d1, x, create_graph=True)
    (d3,) = gg.grad(d2, x)
    assert (d1.item(), d2.item(), d3.item()) == (32.0, 48.0, 48.0)  # 4x³, 12x², 24x


def test_backward_with_create_graph_gives_differentiable_grad() -> None:
    x = gg.tensor([1.0, 2.0], dtype=gg.float64, requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    g = x.grad  # 3x², itself a graph
    assert g.requires_grad
    (gx,) = gg.grad(g.sum(), x)
    np.testing.assert_array_equal(gx.numpy(), [6.0, 12.0])


def test_every_op_has_a_correct_second_derivative(op_case: tuple, cases) -> None:
    """The vector-Jacobian product g(x, v) = ∂⟨op(x), v⟩/∂x, computed with create_graph=True,
    checked against finite differences in both x and v: every rule of the table must also
    run on Tensors, and be right, for grad of grad (v makes g non-constant for linear ops)."""
    name, shapes, attrs = op_case
    op = gg.OPS[name]
    inputs = cases.sample(op, shapes, np.random.default_rng(11))
    out_shape = op(*inputs, **attrs).shape
    v = gg.tensor(np.random.default_rng(12).standard_normal(out_shape), requires_grad=True)

    def vjp(*args):
        *xs, v = args
        wrt = [x for x in xs if isinstance(x, gg.Tensor) and x.requires_grad]
        return list(gg.grad((op(*xs, **attrs) * v).sum(), wrt, create_graph=True))

    grads = vjp(*inputs, v)
    assert grads and all(g.requires_grad for g in grads)
    assert gg.gradcheck(vjp, [*inputs, v])


def _mlp(params: list[gg.Tensor], x: gg.Tensor, y: gg.Tensor) -> gg.Tensor:
    w1, b1, w2, b2 = params
    h = gg.linear(x, w1, b1).tanh()
    out = gg.linear(h, w2, b2).sigmoid()
    return ((out - y) ** 2).mean()


def test_hessian_vector_product_of_a_small_mlp() -> None:
    rng = np.random.default_rng(0)
    x = gg.tensor(rng.standard_normal((6, 3)))
    y = gg.tensor(rng.random((6, 2)))
    shapes = [(4, 3), (4,), (2, 4), (2,)]
    values = [rng.standard_normal(s) for s in shapes]
    vs = [rng.standard_normal(s) for s in shapes]

    params = [gg.tensor(p, requires_grad=True) for p in values]
    grads = gg.grad(_mlp(params, x, y), params, create_graph=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vs))
    hvp = [h.numpy() for h in gg.grad(dot, params)]

    def gradient_at(t: float) -> list[np.ndarray]:
        ps = [gg.tensor(p + t * v, requires_grad=True) for p, v in zip(values, vs)]
        return [g.numpy() for g in gg.grad(_mlp(ps, x, y), ps)]

    eps = 1e-5
    plus, minus = gradient_at(eps), gradient_at(-eps)
    for h, gp, gm in zip(hvp, plus, minus):
        np.testing.assert_allclose(h, (gp - gm) / (2 * eps), rtol=1e-6, atol=1e-9)
    assert max(np.abs(h).max() for h in hvp) > 1e-3  # not trivially zero

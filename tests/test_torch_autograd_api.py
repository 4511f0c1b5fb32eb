"""The autograd API under PyTorch's names: ``backward(gradient=, retain_graph=,
create_graph=, inputs=)``, ``autograd.backward``/``grad``, ``grad_fn`` and
``autograd.Function``, compared with PyTorch."""

import inspect

import numpy as np
import pytest

import glassgrad as gg

X = np.array([[0.5, -1.25, 2.0], [-0.75, 1.5, 0.25]], dtype=np.float32)
G = np.array([[1.0, 2.0, -1.0], [0.5, -3.0, 1.5]], dtype=np.float32)


def names(fn):
    return [p for p in inspect.signature(fn).parameters if p != "self"]


# --------------------------------------------------------------------------- signatures
def test_backward_and_grad_take_torchs_parameters_in_torchs_order(torch):
    assert names(gg.Tensor.backward)[:4] == names(torch.Tensor.backward)  # (+ grad= alias)
    assert names(gg.autograd.backward) == names(torch.autograd.backward)
    assert names(gg.autograd.grad) == names(torch.autograd.grad)
    ours = inspect.signature(gg.autograd.grad).parameters
    theirs = inspect.signature(torch.autograd.grad).parameters
    assert [p.default for p in ours.values()][2:] == [p.default for p in theirs.values()][2:]


# --------------------------------------------------------------------------- backward
@pytest.mark.parametrize("how", ["positional", "gradient=", "grad="])
def test_backward_with_an_explicit_gradient_matches_torch(torch, how):
    def run(lib, keyword):
        x = lib.tensor(X, requires_grad=True)
        y = x * x
        g = lib.tensor(G)
        if how == "positional":
            y.backward(g)
        else:
            y.backward(**{keyword: g})
        return x.grad.numpy()

    ours = run(gg, how[:-1])
    theirs = run(torch, "gradient")
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    np.testing.assert_allclose(ours, 2 * X * G, rtol=1e-6)


def test_backward_refuses_gradient_and_its_alias_together():
    x = gg.tensor(X, requires_grad=True)
    with pytest.raises(TypeError, match="both gradient= and grad="):
        (x * 2).backward(gradient=gg.tensor(G), grad=gg.tensor(G))
    assert x.grad is None


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_retain_graph_defaults_to_create_graph_like_torch(torch):
    for lib, error in ((gg, gg.GraphError), (torch, RuntimeError)):
        x = lib.tensor(2.0, requires_grad=True)
        y = x ** 3
        y.backward(create_graph=True)  # keeps the graph: a second pass works
        y.backward()
        assert x.grad.item() == pytest.approx(24.0)
        with pytest.raises(error, match="second time"):
            y.backward()


def test_backward_inputs_accumulates_only_into_those_like_torch(torch):
    def run(lib):
        a = lib.tensor(X, requires_grad=True)
        b = lib.tensor(G, requires_grad=True)
        h = a * b
        h.retain_grad()
        (h * a).sum().backward(inputs=[b], retain_graph=True)
        (h * a).sum().backward(inputs=b)  # a single tensor too; accumulates
        return a.grad, b.grad.numpy()

    (a_ours, b_ours), (a_theirs, b_theirs) = run(gg), run(torch)
    assert a_ours is None and a_theirs is None
    np.testing.assert_allclose(b_ours, 2 * X * X, rtol=1e-6)  # twice d(a·b·a)/db = a²
    np.testing.assert_allclose(b_theirs, 2 * X * X, rtol=1e-6)
    with pytest.raises(gg.GraphError, match=r"inputs\[0\] must be a Tensor that requires"):
        (gg.tensor(X, requires_grad=True) * 2).sum().backward(inputs=[gg.tensor(X)])


def test_autograd_backward_with_several_roots_matches_torch(torch):
    def run(lib):
        x = lib.tensor(X, requires_grad=True)
        y1, y2 = (x * x).sum(), x.exp()
        lib.autograd.backward([y1, y2], [None, lib.tensor(G)])
        return x.grad.numpy()

    np.testing.assert_allclose(run(gg), run(torch), rtol=1e-6)


@pytest.mark.parametrize(("call", "match"), [
    (lambda y: gg.autograd.backward([y, y], [None]), "2 tensors but 1 grad_tensors"),
    (lambda y: gg.autograd.backward(y, gg.tensor(G), grad_variables=gg.tensor(G)),
     "both grad_tensors and grad_variables"),
    (lambda y: gg.autograd.backward(y * 2), "needs an explicit gradient"),
], ids=["count", "alias twice", "no gradient for a matrix"])
def test_autograd_backward_refuses_bad_arguments(call, match):
    x = gg.tensor(X, requires_grad=True)
    with pytest.raises((ValueError, TypeError, gg.GraphError), match=match):
        call(x * 1)
    assert x.grad is None


def test_grad_materializes_unused_inputs_as_zeros_like_torch(torch):
    for lib in (gg, torch):
        x, u = lib.tensor(X, requires_grad=True), lib.tensor(G, requires_grad=True)
        dx, du = lib.autograd.grad((x * x).sum(), [x, u], materialize_grads=True)
        np.testing.assert_allclose(dx.numpy(), 2 * X)
        assert du.shape == (2, 3) and not du.numpy().any()
        (dx, du) = lib.autograd.grad((x * x).sum(), [x, u], allow_unused=True)
        assert du is None
    with pytest.raises(NotImplementedError, match="is_grads_batched"):
        gg.autograd.grad((x * 1).sum(), x, is_grads_batched=True)


# --------------------------------------------------------------------------- grad_fn
EXPRESSIONS = {
    "add": lambda lib, x: x + 1, "sub": lambda lib, x: x - 1, "mul": lambda lib, x: x * 2,
    "div": lambda lib, x: x / 2, "neg": lambda lib, x: -x, "pow": lambda lib, x: x ** 2,
    "exp": lambda lib, x: x.exp(), "log": lambda lib, x: (x * x).log(),
    "tanh": lambda lib, x: x.tanh(), "sigmoid": lambda lib, x: x.sigmoid(),
    "relu": lambda lib, x: x.relu(), "abs": lambda lib, x: abs(x),
    "sum": lambda lib, x: x.sum(), "mean": lambda lib, x: x.mean(),
    "sin": lambda lib, x: x.sin(), "cos": lambda lib, x: x.cos(),
}


@pytest.mark.parametrize("name", EXPRESSIONS)
def test_grad_fn_names_match_torch(torch, name):
    ours = EXPRESSIONS[name](gg, gg.tensor(X, requires_grad=True)).grad_fn
    theirs = EXPRESSIONS[name](torch, torch.tensor(X, requires_grad=True)).grad_fn
    assert ours.name() == theirs.name()
    assert repr(ours) == f"<{theirs.name()}>"


def _structure(fn):
    """The graph below a grad_fn as nested (name, children) tuples."""
    if fn is None:
        return None
    if type(fn).__name__ == "AccumulateGrad":  # (PyTorch names it torch::autograd::...)
        return ("AccumulateGrad", ())
    return (fn.name(), tuple(_structure(f) for f, _ in fn.next_functions))


def test_grad_fn_next_functions_has_torchs_structure(torch):
    def build(lib):
        w = lib.tensor(X, requires_grad=True)
        c = lib.tensor(G)
        return w, ((w * c).exp() + w).sum()

    (w, ours), (_, theirs) = build(gg), build(torch)
    assert _structure(ours.grad_fn) == _structure(theirs.grad_fn)
    assert _structure(ours.grad_fn) == ("SumBackward0", (("AddBackward0", (
        ("ExpBackward0", (("MulBackward0", (("AccumulateGrad", ()), None)),)),
        ("AccumulateGrad", ()))),))
    leaf = ours.grad_fn.next_functions[0][0].next_functions[1][0]
    assert leaf.variable is w and w.grad_fn is None and gg.tensor(X).grad_fn is None
    assert ours.grad_fn == ours.grad_fn and hash(ours.grad_fn) == hash(ours.grad_fn)
    ours.backward()
    assert ours.grad_fn.next_functions == ()  # glassgrad frees the structure with the graph


# --------------------------------------------------------------------------- Function
def legendre(lib):
    class LegendrePolynomial3(lib.autograd.Function):
        """P₃(x) = ½(5x³ − 3x), P₃′(x) = 1.5(5x² − 1)."""

        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return 0.5 * (5 * x ** 3 - 3 * x)

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * 1.5 * (5 * x ** 2 - 1)

    return LegendrePolynomial3


def straight_through_clamp(lib):
    class ClampST(lib.autograd.Function):
        """Forward clamps to [lo, hi]; backward passes the gradient straight through."""

        @staticmethod
        def forward(ctx, x, lo, hi):
            ctx.lo = lo
            return x.clamp(min=lo, max=hi)

        @staticmethod
        def backward(ctx, grad_output):
            return grad_output, None, None

    return ClampST


def scaled_product(lib):
    class ScaledProduct(lib.autograd.Function):
        """a·b·k with a scalar k; records which inputs need a gradient."""

        @staticmethod
        def forward(ctx, a, b, k):
            ctx.save_for_backward(a, b)
            ctx.k = k
            ctx.seen = ctx.needs_input_grad
            return a * b * k

        @staticmethod
        def backward(ctx, grad_output):
            a, b = ctx.saved_tensors
            return (grad_output * b * ctx.k if ctx.needs_input_grad[0] else None,
                    grad_output * a * ctx.k if ctx.needs_input_grad[1] else None, None)

    return ScaledProduct


def test_a_custom_function_matches_torchs_values_and_gradients(torch):
    def run(lib):
        x = lib.tensor(X, requires_grad=True)
        y = legendre(lib).apply(x)
        (y * lib.tensor(G)).sum().backward()
        return y.detach().numpy(), x.grad.numpy(), y.grad_fn.name()

    ours, theirs = run(gg), run(torch)
    for a, b in zip(ours[:2], theirs[:2]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert ours[2] == theirs[2] == "LegendrePolynomial3Backward"


def test_a_custom_function_passes_gradcheck():
    x = gg.tensor(X.astype(np.float64), requires_grad=True)
    assert gg.gradcheck(lambda x: legendre(gg).apply(x), [x])


def test_a_wrong_custom_backward_fails_gradcheck():
    class Wrong(gg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * 2 * x ** 2  # should be 3x²

    x = gg.tensor(X.astype(np.float64), requires_grad=True)
    with pytest.raises(gg.GradcheckError):
        gg.gradcheck(lambda x: Wrong.apply(x), [x])


def test_straight_through_and_needs_input_grad_match_torch(torch):
    def run(lib):
        a = lib.tensor(X, requires_grad=True)
        b = lib.tensor(G)
        y = straight_through_clamp(lib).apply(a, -0.5, 0.5)
        z = scaled_product(lib).apply(y, b, 3.0)
        z.sum().backward()
        return y.detach().numpy(), a.grad.numpy(), z.grad_fn.name()

    ours, theirs = run(gg), run(torch)
    np.testing.assert_allclose(ours[0], theirs[0])
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-6)
    np.testing.assert_allclose(ours[1], G * 3.0, rtol=1e-6)  # straight through the clamp
    assert ours[2] == theirs[2]
    sp = scaled_product(gg)
    a, b = gg.tensor(X, requires_grad=True), gg.tensor(G)
    assert sp.apply(a, b, 2.0).grad_fn is not None
    with gg.no_grad():
        assert sp.apply(a, b, 2.0).grad_fn is None


def test_a_custom_function_takes_a_second_derivative_like_torch(torch):
    def run(lib):
        x = lib.tensor(X, requires_grad=True)
        (dx,) = lib.autograd.grad(legendre(lib).apply(x).sum(), x, create_graph=True)
        (ddx,) = lib.autograd.grad(dx.sum(), x)
        return dx.detach().numpy(), ddx.numpy()

    ours, theirs = run(gg), run(torch)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours[1], 15 * X, rtol=1e-5)  # P₃″ = 15x


def test_a_saved_tensor_written_in_place_makes_backward_raise_like_torch(torch):
    for lib in (gg, torch):
        w = lib.tensor(X, requires_grad=True)
        h = w * 1.0
        y = legendre(lib).apply(h).sum()
        with lib.no_grad():
            h.mul_(2.0)
        with pytest.raises(RuntimeError, match="modified"):
            y.backward()


def test_mark_non_differentiable_gives_an_output_without_grad(torch):
    def make(lib):
        class Sign(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                out = x.sign()
                ctx.mark_non_differentiable(out)
                return out

            @staticmethod
            def backward(ctx, grad_output):
                return None

        return Sign

    for lib in (gg, torch):
        y = make(lib).apply(lib.tensor(X, requires_grad=True))
        assert not y.requires_grad and y.grad_fn is None


def _bad(backward):
    class Bad(gg.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            return x * k

    Bad.backward = staticmethod(backward)
    return Bad


@pytest.mark.parametrize(("backward", "error", "match"), [
    (lambda ctx, g: g, RuntimeError, r"Bad.backward returned 1 gradient\(s\), but forward "
                                     r"took 2"),
    (lambda ctx, g: (g, None, g), RuntimeError, "returned 3 gradient"),
    (lambda ctx, g: (g.sum(axis=0), None), RuntimeError,
     r"shape \(3,\) for argument 0, whose shape is \(2, 3\)"),
    (lambda ctx, g: (g.numpy(), None), TypeError, "returned a ndarray as gradient 0"),
], ids=["too few", "too many", "wrong shape", "not a tensor"])
def test_a_custom_backward_with_wrong_gradients_gets_a_clear_error(backward, error, match):
    x = gg.tensor(X, requires_grad=True)
    y = _bad(backward).apply(x, 2.0)
    with pytest.raises(error, match=match):
        y.sum().backward()
    assert x.grad is None  # nothing half-done


def test_a_custom_forward_returning_several_tensors_is_refused():
    class Two(gg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1, x * 2

    with pytest.raises(TypeError, match="Two.forward returned a tuple.*one output tensor"):
        Two.apply(gg.tensor(X, requires_grad=True))


def test_a_custom_function_is_refused_by_compile_with_its_name():
    LP3 = legendre(gg)
    x = gg.tensor(X, requires_grad=True)
    step = gg.compile(lambda x: LP3.apply(x).sum())
    with pytest.raises(gg.CompileError, match="LegendrePolynomial3"):
        for _ in range(3):
            step(x)

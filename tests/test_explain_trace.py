"""explain.trace: the op-level record of forward nodes and backward steps, via the engine hook."""

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.autograd import STATE
from glassgrad.explain import explain_expr, trace
from glassgrad.ops import OPS, Op, apply


def leaf(v, name):
    t = gg.tensor(np.asarray(v, dtype=np.float64), requires_grad=True)
    t.name = name
    return t


def test_seed_graph_values_and_every_step():
    # The lecture notes' example: q = x + y, f = q·z at (−2, 5, −4).
    x, y, z = leaf(-2.0, "x"), leaf(5.0, "y"), leaf(-4.0, "z")
    with trace() as tr:
        q = x + y
        q.name = "q"
        f = q * z
        f.name = "f"
        f.backward()
    assert [n.name for n in tr.nodes] == ["x", "y", "q", "z", "f"]
    assert tr.node("q").value == 3 and tr.node("f").value == -12
    assert tr.node("q").expr == "x + y" and tr.node("f").expr == "q · z"
    assert [tr.grad(v).item() for v in "xyzq"] == [-4.0, -4.0, 3.0, -4.0]
    kinds = [s.kind for s in tr.steps]
    assert kinds == ["seed", "chain", "chain", "chain", "chain"]
    by_edge = {(tr.nodes[s.node - 1].name, tr.nodes[s.parent - 1].name): s
               for s in tr.steps if s.kind == "chain"}
    fq, fz, qx = by_edge["f", "q"], by_edge["f", "z"], by_edge["q", "x"]
    assert (fq.upstream, fq.local, fq.product) == (1, -4, -4)  # ∂f/∂q = z
    assert fq.formula == "∂(a·b)/∂a = b" and fz.formula == "∂(a·b)/∂b = a"
    assert (fz.local, fz.product) == (3, 3)
    assert (qx.upstream, qx.local, qx.product) == (-4, 1, -4)
    assert tr.root.name == "f"
    assert tr.checks[0].name == "gradcheck" and tr.checks[0].ok is True


def test_node_used_twice_shows_the_accumulation():
    x = leaf(2.0, "x")
    with trace() as tr:
        (x * x + x * 3).backward()  # d/dx = 2x + 3 = 7
    acc = [s for s in tr.steps if s.kind == "accumulate"]
    assert len(acc) == 2 and all(tr.nodes[s.parent - 1].name == "x" for s in acc)
    assert [(s.previous.item(), s.added.item(), s.product.item()) for s in acc] == [
        (3.0, 2.0, 5.0), (5.0, 2.0, 7.0)]
    assert tr.grad("x") == 7 and x.grad.item() == 7.0


def test_every_chain_step_is_upstream_times_local():
    tr = explain_expr("f = tanh(w * x + b) * sigmoid(x) - exp(-x) / sqrt(w)",
                      "x=0.3,w=1.7,b=-0.2")
    chains = [s for s in tr.steps if s.kind == "chain"]
    assert len(chains) >= 10
    for s in chains:
        assert s.local_kind == "elementwise"
        np.testing.assert_allclose(s.upstream * s.local, s.product, rtol=1e-12)
    assert tr.checks[0].ok is True


def test_broadcast_step_is_summed_and_said():
    a = leaf(np.arange(6.0).reshape(2, 3), "a")
    b = leaf(np.array([1.0, 2.0, 3.0]), "b")
    with trace() as tr:
        (a * b).sum().backward()
    step = next(s for s in tr.steps if s.kind == "chain" and tr.nodes[s.parent - 1].name == "b")
    assert step.local.shape == (2, 3) and step.product.shape == (3,)
    assert "summed over broadcast dimensions" in step.note
    np.testing.assert_array_equal(step.product, [3.0, 5.0, 7.0])  # column sums of a


def test_matmul_and_linear_steps_are_matrix_kind():
    x = gg.tensor(np.ones((2, 3)))
    W, bias = leaf(np.full((4, 3), 0.5), "W"), leaf(np.zeros(4), "b")
    with trace() as tr:
        gg.linear(x, W, bias).sum().backward()
    steps = {tr.nodes[s.parent - 1].name: s for s in tr.steps if s.kind == "chain"}
    assert steps["W"].local_kind == "matrix" and steps["W"].formula == "∂/∂W = Gᵀ@x"
    np.testing.assert_array_equal(steps["W"].product, np.full((4, 3), 2.0))  # Σ over 2 rows
    np.testing.assert_array_equal(steps["b"].product, np.full(4, 2.0))
    assert tr.checks[0].ok is True


def test_derivative_gives_each_inputs_part():
    assert OPS["sub"].derivative(1) == "∂(a − b)/∂b = −1"
    assert OPS["linear"].derivative(0) == "∂/∂x = G@W"
    assert OPS["where"].derivative(2) == "∂/∂b = ¬c  (c is not differentiable)"
    assert OPS["tanh"].derivative(0) == OPS["tanh"].formula


def test_names_from_a_module_and_a_dict():
    net = gg.nn.Linear(2, 1, dtype=np.float64)
    x = gg.tensor(np.ones((1, 2)))
    with trace(names=net) as tr:
        net(x).sum().backward()
    assert {"weight", "bias"} <= {n.name for n in tr.nodes}
    w = gg.tensor(2.0, requires_grad=True)
    with trace(names={"w": w}) as tr:
        (w * w).backward()
    assert tr.grad("w") == 4


def test_an_optimizer_update_records_the_new_value_as_a_new_node():
    w = leaf(1.0, "w")
    with trace() as tr:
        for _ in range(2):
            (w * w).backward()
            w.data = w.data - 0.25 * w.grad.numpy()
            w.grad = None
    ws = [n for n in tr.nodes if n.name == "w"]
    assert [n.value.item() for n in ws] == [1.0, 0.5]
    assert [s.pass_index for s in tr.steps if s.kind == "seed"] == [1, 2]
    assert ws[0].grad == 2 and ws[1].grad == 1


def test_gradcheck_catches_a_wrong_hand_derived_rule():
    wrong = Op("square_wrong", "∂x²/∂x = x  (missing the 2)", np.square,
               lambda grad, out, x: grad * x)
    x = leaf(3.0, "x")
    with trace() as tr:
        apply(wrong, x).backward()
    check = tr.checks[0]
    assert check.ok is False and "FAILED" in check.title
    assert "traced 3, finite differences 6" in check.detail[0]


def test_tracing_leaves_nothing_attached_and_records_nothing_when_off():
    x = leaf(1.0, "x")
    with trace() as tr:
        assert len(STATE.hooks) == 1
    assert STATE.hooks == ()
    (x * 2).backward()  # after the block: not recorded
    assert tr.nodes == [] and tr.steps == []
    with pytest.raises(ZeroDivisionError), trace() as tr2:
        x * 3
        raise ZeroDivisionError
    assert STATE.hooks == () and len(tr2.nodes) == 3 and tr2.checks == []


def test_node_lookup_error_lists_names():
    tr = explain_expr("x * y", "x=1,y=2")
    with pytest.raises(KeyError, match="names: x, y, f"):
        tr.node("nope")

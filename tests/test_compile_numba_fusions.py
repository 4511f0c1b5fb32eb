"""The numba back end's fused passes: a linear layer's bias added in its relu's pass, relu's
rule written over a dead gradient and giving the layer below its bias gradient in the same
pass (``fusion_plan.fusions``), and an optimizer's update inside its gradient's BLAS
product (``Source.fold``, ``gemm_update``). Each applies only where the NumPy replay's proofs
hold and nothing reads the unfused value; every case must equal the NumPy replay."""

from __future__ import annotations

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.nn import functional as F


def _params(seed: int, sizes: list[int], dtype=np.float32) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        out += [(rng.standard_normal((b, a)) * 0.3).astype(dtype),
                (rng.standard_normal(b) * 0.3).astype(dtype)]
    return out


def _both(loss_fn, sizes, steps=3, lr=0.05, n=9, dtype=np.float32, params=None, **opt_kw):
    """The same training steps compiled for NumPy and for numba, checked equal; the numba
    step's source."""
    X = gg.tensor(np.random.default_rng(7).standard_normal((n, sizes[0])).astype(dtype))
    y = np.random.default_rng(8).integers(0, sizes[-1], n)
    out = {}
    for backend in ("numpy", "numba"):
        ps = [gg.tensor(a.copy(), requires_grad=True)
              for a in (params if params is not None else _params(0, sizes, dtype))]
        opt = gg.optim.SGD(ps, lr=lr, **opt_kw)
        step = gg.compile(lambda X, y, ps=ps: loss_fn(ps, X, y), optimizer=opt, backend=backend)
        losses = [step(X, y).item() for _ in range(steps)]
        out[backend] = (step.source, losses, [p.numpy().copy() for p in ps])
    np.testing.assert_allclose(out["numba"][1], out["numpy"][1], rtol=1e-5)
    for a, b in zip(out["numba"][2], out["numpy"][2], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    return out["numba"][0]


def _mlp(ps, X, y):
    h = F.relu(F.linear(X, ps[0], ps[1]))
    h = F.relu(F.linear(h, ps[2], ps[3]))
    return F.cross_entropy(F.linear(h, ps[4], ps[5]), y)


def test_relu_layers_fuse_and_equal_the_numpy_replay(nb) -> None:
    src = _both(_mlp, [6, 8, 7, 3])
    assert src.count("bias_relu_(") == 2
    # both incoming gradients are products read by nothing else: written over, and each
    # relu's rule gives the bias gradient of the layer below it
    assert src.count("relu_grad_sums_(") == 2
    assert src.count("column_sums(") == 1  # only the top layer's bias gradient is a pass


def test_a_gradient_read_after_relus_rule_is_not_written_over(nb) -> None:
    def loss(ps, X, y):
        z2 = F.linear(X, ps[2], ps[3])  # made first, so its rules run after relu's: the
        h = F.relu(F.linear(X, ps[0], ps[1])) + z2  # gradient of the sum is read again then
        return F.cross_entropy(F.linear(h, ps[4], ps[5]), y)

    ps = _params(0, [40, 36]) + _params(1, [40, 36]) + _params(2, [36, 24])
    src = _both(loss, [40, 36, 24], params=ps)
    assert "relu_grad_sums(" in src and "relu_grad_sums_(" not in src


def test_a_linear_result_read_again_keeps_its_bias_and_its_own_array(nb) -> None:
    def loss(ps, X, y):
        z = F.linear(X, ps[0], ps[1])
        h = F.relu(z) * z  # z is read after the relu: relu must not write over it
        return F.cross_entropy(F.linear(h, ps[2], ps[3]), y)

    src = _both(loss, [6, 8, 3])
    assert "bias_relu_(" not in src and "relu_(" not in src


def test_a_linear_result_read_before_its_relu_keeps_its_bias(nb) -> None:
    def loss(ps, X, y):
        z = F.linear(X, ps[0], ps[1])
        s = (z * 0.5).sum()  # reads z (with its bias) before the relu does
        h = F.relu(z)
        return F.cross_entropy(F.linear(h, ps[2], ps[3]), y) + s * 0.01

    src = _both(loss, [6, 8, 3])
    assert "bias_relu_(" not in src


def test_a_bias_written_over_before_the_relu_stays_in_the_layer(nb) -> None:
    """The layer's bias is the step's own array, and a relu between the layer and its relu
    writes over it (dead: linear's rules never read the bias): the relu below must not add
    it later (``passes.bias_relu``'s proof, which the numba fusions share)."""
    import warnings  # noqa: PLC0415

    def loss(ps, X, y):
        b2 = ps[1] * 2.0
        z = F.linear(X, ps[0], b2)
        r = F.relu(b2)  # written over b2
        h = F.relu(z)
        return F.cross_entropy(F.linear(h, ps[2], ps[3]), y) + r.sum() * 0.01

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (a kernel that differed would fall back, warning)
        src = _both(loss, [6, 8, 3])
    assert "bias_relu_(" not in src and "relu_(" in src


def test_an_accumulating_gradient_gets_no_fused_bias_sums(nb) -> None:
    def loss(ps, X, y):
        z = F.linear(X, ps[0], ps[1])
        h = F.relu(z)
        t = gg.tanh(z)  # z has two consumers: its gradient accumulates after relu's rule
        return F.cross_entropy(F.linear(h + t, ps[2], ps[3]), y)

    src = _both(loss, [6, 8, 3])
    assert "relu_grad_sums" not in src and "sums_" not in src


# --------------------------------------------------------------------------- folded updates
# (products above LOOPS_MAX multiply-adds run on BLAS, where an update can be folded in)
BIG = [40, 48, 36, 24]  # with a batch of 64: every product is above LOOPS_MAX


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weight_updates_run_inside_their_gradient_products(nb, dtype) -> None:
    src = _both(_mlp, BIG, n=64, dtype=dtype)
    assert src.count("gemm_update(") == 3  # every weight: its gradient is one product
    assert src.count("axpby(") == 3  # the biases: column sums, updated at the end
    src = _both(_mlp, BIG, n=64, dtype=dtype, momentum=0.9)  # c: the momentum buffer
    assert src.count("gemm_update(") == 3


def test_a_gradient_that_accumulates_is_not_folded(nb) -> None:
    def loss(ps, X, y):  # one weight for two layers; the data needs no gradient, so nothing
        h = F.relu(F.linear(X, ps[0], ps[1]))  # reads W after its first product: only the
        h = F.relu(F.linear(h, ps[0], ps[1]))  # second term of its gradient tells
        return F.cross_entropy(F.linear(h, ps[2], ps[3]), y)

    src = _both(loss, [36, 36, 24], n=64)
    assert "g_p0 = g_p0 + " in src and "axpby(al0, g_p0," in src
    assert "gemm_update(al0, g_v" in src  # p2: folded


def test_a_parameter_read_after_its_gradient_is_not_folded(nb) -> None:
    def loss(ps, X, y):  # W's values (detached) are read in backward after W's gradient
        h = F.relu(F.linear(X, ps[0], ps[1]))
        z = F.linear(h @ ps[2].detach(), ps[2], ps[3])
        return F.cross_entropy(F.linear(F.relu(z), ps[4], ps[5]), y)

    src = _both(loss, [40, 36, 36, 24], n=64)
    assert "g_p2 = g_p2 + " not in src and "axpby(al0, g_p2," in src
    assert "gemm_update(al0, g_v" in src  # p0, p4: folded


def test_a_plain_group_beside_a_momentum_group_is_not_folded_where_read_after(nb) -> None:
    # With one group on momentum the step takes the per-parameter variant, where c is the
    # momentum buffer for that group but the parameter itself for the plain group: W (in the
    # plain group) is read after its gradient, so its update must wait for the end.
    def loss(ps, X, y):
        h = F.relu(F.linear(X, ps[0], ps[1]))
        z = F.linear(h @ ps[2].detach(), ps[2], ps[3])
        return F.cross_entropy(F.linear(F.relu(z), ps[4], ps[5]), y)

    sizes = [40, 36, 36, 24]
    X = gg.tensor(np.random.default_rng(7).standard_normal((64, 40)).astype(np.float32))
    y = np.random.default_rng(8).integers(0, 24, 64)
    out = {}
    for backend in ("numpy", "numba"):
        ps = [gg.tensor(a, requires_grad=True) for a in _params(0, sizes)]
        opt = gg.optim.SGD([{"params": [ps[2]]},
                            {"params": [p for k, p in enumerate(ps) if k != 2],
                             "momentum": 0.9}], lr=0.05)
        step = gg.compile(lambda X, y, ps=ps: loss(ps, X, y), optimizer=opt, backend=backend)
        losses = [step(X, y).item() for _ in range(3)]
        out[backend] = (step.source, losses, [p.numpy().copy() for p in ps])
    assert "axpby(al2, g_p2, be2, u2)" in out["numba"][0]
    np.testing.assert_allclose(out["numba"][1], out["numpy"][1], rtol=1e-5)
    for a, b in zip(out["numba"][2], out["numpy"][2], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

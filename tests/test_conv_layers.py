"""Convolution, pooling, normalization and embedding layers against PyTorch.

Each layer and its functional form: the forward values and every gradient (input, weight,
bias) for a random vector-Jacobian product, in float64, over several shapes and settings;
BatchNorm in train and eval mode with its running statistics; the argument checks.
(The primitives themselves are also swept by tests/test_ops_table.py and test_ops_torch.py.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import glassgrad as gg

nn, F = gg.nn, gg.nn.functional  # (PyTorch comes from the ``torch`` fixture: tests that
# compare with it skip without it, the argument checks still run)


def _copy_params(module: Any, tmodule: Any) -> None:
    """The torch module's state (parameters and buffers) into the glassgrad one."""
    own = dict(module.named_parameters())
    assert set(own) == {n for n, _ in tmodule.named_parameters()}
    module.load_state_dict({n: p.detach().numpy() for n, p in tmodule.state_dict().items()})


def _check(torch: Any, fn: Any, tfn: Any, x: np.ndarray, params: tuple = (),
           tparams: tuple = (), input_grad: bool = True, rtol: float = 1e-9) -> None:
    """Same forward, and the same gradient for the input and each parameter."""
    gx = gg.tensor(x, requires_grad=input_grad)
    tx = torch.tensor(x, requires_grad=input_grad)
    out, tout = fn(gx), tfn(tx)
    assert out.shape == tuple(tout.shape)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=rtol, atol=1e-10)
    v = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(v)
    tout.backward(torch.tensor(v))
    pairs = [(gx, tx)] if input_grad else []
    for i, (a, b) in enumerate([*pairs, *zip(params, tparams)]):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=1e-10,
                                   err_msg=f"gradient {i}")


def _double(module: Any) -> Any:
    """``module.to(float64)``, running statistics included (Module.to converts parameters)."""
    module.to(np.float64)
    for m in module.modules():
        for name in ("running_mean", "running_var"):
            if getattr(m, name, None) is not None:
                getattr(m, name).data = getattr(m, name).numpy().astype(np.float64)
    return module


def _images(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def _module_check(torch: Any, module: Any, tmodule: Any, x: np.ndarray,
                  input_grad: bool = True) -> None:
    tmodule = tmodule.double()
    module.to(np.float64)
    _copy_params(module, tmodule)
    names = [n for n, _ in tmodule.named_parameters()]
    own = dict(module.named_parameters())
    _check(torch, module, tmodule, x, tuple(own[n] for n in names),
           tuple(dict(tmodule.named_parameters())[n] for n in names), input_grad)


# --------------------------------------------------------------------------- Conv2d
CONV_SETTINGS = [
    dict(),
    dict(stride=2),
    dict(padding=2),
    dict(stride=(2, 1), padding=(1, 0)),
    dict(dilation=2, padding=1),
    dict(groups=2),
    dict(groups=4, stride=2, padding=1),  # depthwise
    dict(padding="same", dilation=(1, 2)),
    dict(padding="valid", bias=False),
]


@pytest.mark.parametrize("kw", CONV_SETTINGS, ids=[str(k) for k in CONV_SETTINGS])
@pytest.mark.parametrize("shape", [(2, 4, 9, 8), (1, 4, 6, 6)], ids=["9x8", "6x6"])
def test_conv2d_matches_torch(torch: Any, kw: dict, shape: tuple) -> None:
    kernel = (3, 2) if "padding" not in kw or kw["padding"] != "same" else 3
    conv = nn.Conv2d(4, 6 if kw.get("groups") != 4 else 8, kernel, seed=0, **kw)
    tconv = torch.nn.Conv2d(4, conv.out_channels, kernel, **kw)
    _module_check(torch, conv, tconv, _images(*shape))


def test_conv2d_functional_unbatched_and_data_input(torch: Any) -> None:
    x, w, b = _images(3, 7, 7), _images(5, 3, 3, 3, seed=1), _images(5, seed=2)
    gw, gb = gg.tensor(w, requires_grad=True), gg.tensor(b, requires_grad=True)
    tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
    _check(torch, lambda t: F.conv2d(t, gw, gb, padding=1),
           lambda t: torch.nn.functional.conv2d(t, tw, tb, padding=1), x, (gw, gb), (tw, tb),
           input_grad=False)


def test_conv2d_second_derivative_matches_torch(torch: Any) -> None:
    """conv2d's backward is made of ops, so a gradient of a gradient works (create_graph)."""
    x, w = _images(2, 2, 5, 5), _images(3, 2, 3, 3, seed=1)
    gx, gw = gg.tensor(x, requires_grad=True), gg.tensor(w, requires_grad=True)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    (gdx,) = gg.grad((F.conv2d(gx, gw, stride=2, padding=1) ** 2).sum(), [gx],
                     create_graph=True)
    ty = torch.nn.functional.conv2d(tx, tw, stride=2, padding=1)
    (tdx,) = torch.autograd.grad((ty**2).sum(), [tx], create_graph=True)
    (gdx * gdx).sum().backward()
    (tdx * tdx).sum().backward()
    np.testing.assert_allclose(gw.grad.numpy(), tw.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), rtol=1e-9)


def test_conv2d_init_is_pytorchs() -> None:
    """kaiming_uniform_(a=√5): U(±1/√fan_in) for the weight, and the bias alike."""
    conv = nn.Conv2d(6, 16, 5, groups=2, seed=0)
    bound = 1 / math.sqrt(3 * 5 * 5)
    for p in (conv.weight, conv.bias):
        assert p.dtype == np.float32
        assert np.abs(p.numpy()).max() <= bound
        assert np.abs(p.numpy()).max() > 0.8 * bound  # spread over the whole range
    assert not np.array_equal(conv.weight.numpy(), nn.Conv2d(6, 16, 5, groups=2).weight.numpy())
    np.testing.assert_array_equal(conv.weight.numpy(),
                                  nn.Conv2d(6, 16, 5, groups=2, seed=0).weight.numpy())


def test_conv2d_loads_a_torch_state_dict_and_casts_float64_data(torch: Any) -> None:
    tconv = torch.nn.Conv2d(3, 4, 3, padding=1)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    conv.load_state_dict({k: v.numpy() for k, v in tconv.state_dict().items()})
    x = _images(2, 3, 6, 6)
    out = conv(x)  # float64 data meets a float32 layer: computed in float32
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.numpy(), tconv(torch.tensor(x, dtype=torch.float32))
                               .detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: F.conv2d(np.ones((1, 3, 8, 8)), np.ones((4, 2, 3, 3))), "has 3 channels"),
    (lambda: F.conv2d(np.ones((8, 8)), np.ones((4, 1, 3, 3))), "(N, C, H, W)"),
    (lambda: F.conv2d(np.ones((1, 1, 2, 2)), np.ones((1, 1, 3, 3))), "smaller than the kernel"),
    (lambda: F.conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), stride=0), "stride"),
    (lambda: F.conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), padding=-1), "padding"),
    (lambda: F.conv2d(np.ones((1, 1, 5, 5)), np.ones((2, 1, 3, 3)), np.ones(3)), "bias"),
    (lambda: F.conv2d(np.ones((1, 1, 5, 5)), np.ones((1, 1, 2, 2)), padding="same"), "same"),
    (lambda: F.conv2d(np.ones((1, 4, 5, 5)), np.ones((3, 2, 3, 3)), groups=2), "groups"),
    (lambda: nn.Conv2d(3, 4, 3, groups=2), "divisible by groups"),
    (lambda: nn.Conv2d(3, 4, (3, 3, 3)), "kernel_size"),
], ids=["channels", "rank", "too-small", "stride", "padding", "bias", "same", "groups",
        "layer-groups", "kernel"])
def test_conv2d_bad_arguments_say_what_and_how(call: Any, message: str) -> None:
    with pytest.raises((ValueError, TypeError)) as e:
        call()
    assert message in str(e.value)


# --------------------------------------------------------------------------- pooling
POOLS = [
    (dict(kernel_size=2), "max"), (dict(kernel_size=3, stride=2, padding=1), "max"),
    (dict(kernel_size=(2, 3), stride=1), "max"), (dict(kernel_size=2, dilation=2), "max"),
    (dict(kernel_size=2, ceil_mode=True), "max"),
    (dict(kernel_size=2), "avg"), (dict(kernel_size=3, stride=2, padding=1), "avg"),
    (dict(kernel_size=3, stride=2, padding=1, count_include_pad=False), "avg"),
    (dict(kernel_size=(2, 3), stride=1), "avg"), (dict(kernel_size=2, divisor_override=3), "avg"),
]


@pytest.mark.parametrize(("kw", "kind"), POOLS, ids=[f"{k}-{kw}" for kw, k in POOLS])
@pytest.mark.parametrize("shape", [(2, 3, 7, 6), (3, 8, 8)], ids=["batch", "unbatched"])
def test_pooling_matches_torch(torch: Any, kw: dict, kind: str, shape: tuple) -> None:
    name = {"max": "MaxPool2d", "avg": "AvgPool2d"}[kind]
    layer, tlayer = getattr(nn, name)(**kw), getattr(torch.nn, name)(**kw)
    _check(torch, layer, tlayer, _images(*shape))


def test_max_pool_gives_a_tie_to_the_first_maximum_like_torch(torch: Any) -> None:
    x = np.array([[[[1.0, 3.0, 3.0, 0.0], [3.0, 2.0, 1.0, 3.0]]]])
    _check(torch, nn.MaxPool2d(2), torch.nn.MaxPool2d(2), x)
    gx = gg.tensor(x, requires_grad=True)
    F.max_pool2d(gx, 2).sum().backward()
    np.testing.assert_array_equal(gx.grad.numpy(), [[[[0, 1, 1, 0], [0, 0, 0, 0]]]])


@pytest.mark.parametrize("size", [1, 3, (2, 4), (None, 2), (5, 7)], ids=str)
def test_adaptive_avg_pool_matches_torch(torch: Any, size: Any) -> None:
    _check(torch, nn.AdaptiveAvgPool2d(size), torch.nn.AdaptiveAvgPool2d(size),
           _images(2, 3, 7, 9))


@pytest.mark.parametrize(("call", "message"), [
    (lambda: F.max_pool2d(np.ones((1, 1, 4, 4)), 2, padding=2), "at most half"),
    (lambda: F.max_pool2d(np.ones((1, 1, 4, 4)), 5), "smaller than the kernel"),
    (lambda: F.max_pool2d(np.ones((1, 1, 4, 4)), 2, return_indices=True), "return_indices"),
    (lambda: F.avg_pool2d(np.ones((1, 1, 4, 4)), 0), "kernel_size"),
    (lambda: F.avg_pool2d(np.ones((1, 1, 5, 5)), 2, ceil_mode=True), "ceil_mode"),
    (lambda: F.adaptive_avg_pool2d(np.ones((1, 1, 4, 4)), (1, 2, 3)), "output_size"),
], ids=["padding", "kernel", "indices", "zero-kernel", "ceil", "size"])
def test_pooling_bad_arguments(call: Any, message: str) -> None:
    with pytest.raises((ValueError, TypeError, NotImplementedError)) as e:
        call()
    assert message in str(e.value)


# --------------------------------------------------------------------------- BatchNorm
BN = [
    ("BatchNorm2d", (4, 3, 5, 6), {}),
    ("BatchNorm2d", (2, 3, 4, 4), dict(momentum=0.3, eps=1e-3)),
    ("BatchNorm2d", (3, 3, 2, 2), dict(momentum=None)),
    ("BatchNorm2d", (3, 3, 2, 2), dict(affine=False)),
    ("BatchNorm1d", (8, 3), {}),
    ("BatchNorm1d", (4, 3, 7), dict(track_running_stats=False)),
]


@pytest.mark.parametrize(("cls", "shape", "kw"), BN, ids=[f"{c}-{s}-{kw}" for c, s, kw in BN])
def test_batch_norm_train_then_eval_matches_torch(torch: Any, cls: str, shape: tuple,
                                                  kw: dict) -> None:
    bn, tbn = _double(getattr(nn, cls)(3, **kw)), getattr(torch.nn, cls)(3, **kw).double()
    if bn.affine:  # weights that are not ones/zeros, so the affine part is really checked
        with torch.no_grad():
            tbn.weight.uniform_(0.5, 1.5)
            tbn.bias.uniform_(-1, 1)
        _copy_params(bn, tbn)
    ps = tuple(bn.parameters())
    tps = tuple(tbn.parameters())
    for step in range(3):  # three batches: running statistics move each time
        for p in (*ps, *tps):
            p.grad = None
        _check(torch, bn, tbn, _images(*shape, seed=step) * 2 + 1, ps, tps)
        if bn.track_running_stats:
            np.testing.assert_allclose(bn.running_mean.numpy(), tbn.running_mean.numpy())
            np.testing.assert_allclose(bn.running_var.numpy(), tbn.running_var.numpy())
            assert int(bn.num_batches_tracked.item()) == int(tbn.num_batches_tracked) == step + 1
    bn.eval()
    tbn.eval()
    for p in (*ps, *tps):
        p.grad = None
    _check(torch, bn, tbn, _images(*shape, seed=9), ps, tps)


def test_batch_norm_eval_uses_running_statistics_and_leaves_them() -> None:
    bn = nn.BatchNorm2d(2)
    bn.running_mean.data[...] = [1.0, -1.0]
    bn.running_var.data[...] = [4.0, 0.25]
    bn.eval()
    y = bn(np.full((1, 2, 1, 1), 3.0, np.float32))
    np.testing.assert_allclose(y.numpy().ravel(), [2 / math.sqrt(4 + 1e-5),
                                                  4 / math.sqrt(0.25 + 1e-5)], rtol=1e-6)
    np.testing.assert_array_equal(bn.running_mean.numpy(), [1.0, -1.0])
    assert int(bn.num_batches_tracked.item()) == 0


@pytest.mark.parametrize(("x", "message"), [
    (np.ones((1, 3, 1, 1)), "more than 1 value per channel"),
    (np.ones((2, 4, 3, 3)), "3 channels"),
    (np.ones((2, 3)), "expected input of 4"),
], ids=["one-value", "channels", "rank"])
def test_batch_norm_bad_input_changes_nothing(x: np.ndarray, message: str) -> None:
    bn = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match=message):
        bn(x)
    np.testing.assert_array_equal(bn.running_mean.numpy(), np.zeros(3))
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(3))
    assert int(bn.num_batches_tracked.item()) == 0


def test_batch_norm_training_step_refuses_to_compile() -> None:
    """A replay would skip the running-statistics update: compile says so (eval is fine)."""
    bn = nn.BatchNorm1d(3)
    step = gg.compile(lambda x: bn(x).sum())
    with pytest.raises(gg.CompileError, match="running-statistics"):
        step(gg.tensor(_images(4, 3)))
    assert int(bn.num_batches_tracked.item()) == 0


# --------------------------------------------------------------------------- LayerNorm
@pytest.mark.parametrize(("shape", "normalized", "kw"), [
    ((4, 5), 5, {}), ((2, 3, 4), (3, 4), {}), ((2, 3, 4), 4, dict(elementwise_affine=False)),
    ((3, 6), 6, dict(bias=False, eps=1e-3)),
], ids=["last", "two-dims", "no-affine", "no-bias"])
def test_layer_norm_matches_torch(torch: Any, shape: tuple, normalized: Any, kw: dict) -> None:
    ln, tln = nn.LayerNorm(normalized, **kw), torch.nn.LayerNorm(normalized, **kw).double()
    if ln.weight is not None:
        with torch.no_grad():
            tln.weight.uniform_(0.5, 1.5)
    ln.to(np.float64)
    _copy_params(ln, tln)
    _check(torch, ln, tln, _images(*shape), tuple(ln.parameters()), tuple(tln.parameters()))


def test_layer_norm_bad_shape() -> None:
    with pytest.raises(ValueError, match="last dimensions"):
        nn.LayerNorm(4)(np.ones((2, 5), np.float32))


# --------------------------------------------------------------------------- Embedding
@pytest.mark.parametrize("padding_idx", [None, 0, 3, -1], ids=str)
def test_embedding_matches_torch(torch: Any, padding_idx: int | None) -> None:
    emb = nn.Embedding(6, 4, padding_idx=padding_idx, seed=0)
    temb = torch.nn.Embedding(6, 4, padding_idx=padding_idx).double()
    with torch.no_grad():  # a non-zero padding row: its gradient must stay 0 all the same
        temb.weight.normal_()
    emb.to(np.float64)
    _copy_params(emb, temb)
    idx = np.array([[0, 3, 5, 3], [5, 1, 0, 2]])
    out, tout = emb(idx), temb(torch.tensor(idx))
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy())
    v = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(v)
    tout.backward(torch.tensor(v))
    np.testing.assert_allclose(emb.weight.grad.numpy(), temb.weight.grad.numpy())
    if padding_idx is not None:
        assert not emb.weight.grad.numpy()[padding_idx].any()


def test_embedding_init_zeroes_the_padding_row() -> None:
    w = nn.Embedding(5, 3, padding_idx=2, seed=0).weight.numpy()
    assert not w[2].any() and w[[0, 1, 3, 4]].all()


@pytest.mark.parametrize(("idx", "error", "message"), [
    (np.array([0, 6]), IndexError, "out of range"),
    (np.array([-1]), IndexError, "out of range"),
    (np.array([0.0, 1.0]), TypeError, "integer indices"),
], ids=["too-large", "negative", "float"])
def test_embedding_bad_indices(idx: np.ndarray, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        nn.Embedding(6, 2)(idx)


# --------------------------------------------------------------------------- Dropout2d
def test_dropout2d_zeroes_whole_channels_and_scales() -> None:
    x = np.ones((8, 16, 3, 3), np.float32)
    layer = nn.Dropout2d(0.25, seed=0)
    y = layer(x).numpy()
    per_channel = y.reshape(8, 16, -1)
    np.testing.assert_allclose(np.unique(per_channel), [0.0, 1 / 0.75], rtol=1e-6)
    assert (per_channel.min(axis=2) == per_channel.max(axis=2)).all()  # whole channels
    assert 0.1 < (per_channel[..., 0] == 0).mean() < 0.4
    layer.eval()
    assert layer(x) is x


def test_dropout2d_gradient_is_the_mask() -> None:
    x = gg.tensor(np.ones((2, 3, 2, 2)), requires_grad=True)
    y = F.dropout2d(x, 0.5, seed=3)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())


# --------------------------------------------------------------------------- a small CNN
def test_lenet_step_matches_torch(torch: Any) -> None:
    """A LeNet-5 forward and backward, with weights copied from PyTorch."""
    def build(m: Any) -> Any:
        return m.Sequential(m.Conv2d(1, 6, 5, padding=2), m.ReLU(), m.MaxPool2d(2),
                            m.Conv2d(6, 16, 5), m.ReLU(), m.AvgPool2d(2),
                            m.BatchNorm2d(16), m.Dropout2d(0.0))

    net, tnet = _double(build(nn)), build(torch.nn).double()
    _copy_params(net, tnet)
    _check(torch, net, tnet, _images(3, 1, 28, 28), tuple(net.parameters()),
           tuple(tnet.parameters()), input_grad=False)


def test_max_pool_second_derivative_matches_torch(torch: Any) -> None:
    """On Tensors (create_graph) the rule scatters with index_add: differentiable again."""
    x, v = _images(2, 2, 6, 5), _images(2, 2, 3, 3, seed=1)
    gx, gv = gg.tensor(x, requires_grad=True), gg.tensor(v, requires_grad=True)
    tx, tv = torch.tensor(x, requires_grad=True), torch.tensor(v, requires_grad=True)
    (gdx,) = gg.grad((F.max_pool2d(gx, 3, 2, 1) * gv).sum(), [gx], create_graph=True)
    (tdx,) = torch.autograd.grad((torch.nn.functional.max_pool2d(tx, 3, 2, 1) * tv).sum(), [tx],
                                 create_graph=True)
    np.testing.assert_allclose(gdx.numpy(), tdx.detach().numpy())
    (gdx * gdx).sum().backward()
    (tdx * tdx).sum().backward()
    np.testing.assert_allclose(gv.grad.numpy(), tv.grad.numpy())


def test_compiled_cnn_step_matches_eager() -> None:
    """gg.compile replays conv2d, max_pool2d, avg_pool2d and an eval-mode BatchNorm."""
    def build() -> Any:
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, seed=0), nn.BatchNorm2d(4),
                             nn.ReLU(), nn.MaxPool2d(2), nn.AvgPool2d(2),
                             nn.Conv2d(4, 3, 2, seed=1)).eval()

    x = gg.tensor(_images(4, 1, 8, 8).astype(np.float32))
    losses = []
    for compiled in (False, True):
        model = build()
        opt = gg.optim.SGD(model.parameters(), lr=0.1)

        def loss_fn(x: Any, model: Any = model) -> Any:
            return (model(x) ** 2).mean()

        def eager(x: Any, loss_fn: Any = loss_fn, opt: Any = opt) -> Any:
            opt.zero_grad()
            loss = loss_fn(x)
            loss.backward()
            opt.step()
            return loss

        step = gg.compile(loss_fn, optimizer=opt) if compiled else eager
        losses.append([float(step(x)) for _ in range(3)])
    assert losses[0][2] < losses[0][0]  # it learns
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)

"""torch.nn compatibility: containers, buffers, Module methods, nn.init and nn.functional
under PyTorch's names and signatures, with values and gradients compared against PyTorch."""

import inspect

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import nn
from glassgrad.nn import functional as F
from glassgrad.nn import init

RNG = np.random.default_rng(0)


def params_of(sig_fn):
    return [p for p in inspect.signature(sig_fn).parameters if p not in ("self", "args",
                                                                        "kwargs")]


def to_torch(torch, arr, grad=False):
    return torch.tensor(np.asarray(arr), requires_grad=grad)


# --------------------------------------------------------------------------- signatures
FUNCTIONAL = ["relu", "leaky_relu", "softmax", "log_softmax", "softmin", "cross_entropy",
              "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
              "binary_cross_entropy", "binary_cross_entropy_with_logits", "dropout", "elu",
              "silu", "hardtanh", "relu6", "normalize", "mish"]
INIT = ["uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_",
        "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
        "orthogonal_", "sparse_", "calculate_gain"]
MODULE_METHODS = ["to", "apply", "register_buffer", "state_dict", "load_state_dict",
                  "named_modules", "named_buffers", "buffers", "add_module",
                  "register_parameter", "named_parameters", "get_submodule", "parameters"]
CLASSES = ["Flatten", "Unflatten", "ModuleList", "ModuleDict", "CrossEntropyLoss", "MSELoss",
           "NLLLoss", "BCELoss", "BCEWithLogitsLoss", "L1Loss", "SmoothL1Loss", "HuberLoss",
           "ReLU", "LeakyReLU", "ELU", "Softplus", "Hardtanh", "ReLU6", "SiLU", "LogSoftmax"]


@pytest.mark.parametrize("name", FUNCTIONAL)
def test_functional_takes_torchs_arguments_in_torchs_order(torch, name):
    ours = [p for p in params_of(getattr(F, name)) if p != "seed"]  # seed: glassgrad's extra
    assert ours == params_of(getattr(torch.nn.functional, name))


@pytest.mark.parametrize("name", INIT)
def test_init_takes_torchs_arguments_in_torchs_order(torch, name):
    ours = [p for p in params_of(getattr(init, name)) if p != "seed"]
    assert ours == params_of(getattr(torch.nn.init, name))


@pytest.mark.parametrize("name", MODULE_METHODS)
def test_module_methods_take_torchs_arguments(torch, name):
    assert params_of(getattr(nn.Module, name)) == params_of(getattr(torch.nn.Module, name))


@pytest.mark.parametrize("name", CLASSES)
def test_classes_take_torchs_arguments(torch, name):
    assert params_of(getattr(nn, name).__init__) == params_of(getattr(torch.nn, name).__init__)


# --------------------------------------------------------------------------- containers
class Tower:
    """The same model in both libraries: a ModuleList trunk and ModuleDict heads."""

    def __init__(self, lib):
        class Net(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.trunk = lib.nn.ModuleList([lib.nn.Linear(4, 8), lib.nn.Linear(8, 8)])
                self.heads = lib.nn.ModuleDict({"cls": lib.nn.Linear(8, 3),
                                                "reg": lib.nn.Linear(8, 1)})
                self.register_buffer("scale", lib.tensor([2.0]))
                self.register_buffer("steps", lib.tensor([0]))
                self.register_buffer("cache", lib.tensor([1.0]), persistent=False)

            def forward(self, x):
                for layer in self.trunk:
                    x = lib.tanh(layer(x)) if hasattr(lib, "tanh") else layer(x).tanh()
                return self.heads["cls"](x) * self.scale, self.heads["reg"](x)

        self.model = Net()


def test_modulelist_moduledict_and_buffers_match_torch_names_order_and_outputs(torch):
    ours, theirs = Tower(gg).model, Tower(torch).model
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert ours.get_submodule("heads.cls").out_features == 3
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = RNG.standard_normal((5, 4)).astype(np.float32)
    for a, b in zip(ours(gg.tensor(x)), theirs(torch.from_numpy(x))):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_modulelist_edits_keep_torchs_numbering(torch):
    def edits(lib):
        ml = lib.nn.ModuleList([lib.nn.Identity(), lib.nn.Linear(1, 2), lib.nn.Tanh()])
        ml.append(lib.nn.Linear(2, 3))
        ml.insert(1, lib.nn.Linear(3, 4))
        del ml[0]
        ml[0] = lib.nn.Linear(5, 6)
        ml.extend([lib.nn.ReLU()])
        ml += [lib.nn.Linear(6, 7)]
        popped = ml.pop(2)
        return ([type(m).__name__ for m in ml], list(ml.state_dict()), len(ml[1:3]),
                type(popped).__name__)

    assert edits(gg) == edits(torch)


def test_sequential_edits_keep_torchs_numbering(torch):
    def edits(lib):
        seq = lib.nn.Sequential(lib.nn.Linear(2, 2), lib.nn.ReLU())
        seq.insert(0, lib.nn.Linear(2, 2))
        seq.extend([lib.nn.Tanh(), lib.nn.Linear(2, 2)])
        del seq[1]
        seq.add_module("out", lib.nn.Linear(2, 1))
        return [type(m).__name__ for m in seq], list(seq.state_dict())

    assert edits(gg) == edits(torch)


def test_moduledict_methods_match_torch(torch):
    def use(lib):
        md = lib.nn.ModuleDict([("a", lib.nn.Linear(1, 1)), ("b", lib.nn.ReLU())])
        md["c"] = lib.nn.Tanh()
        md.update({"a": lib.nn.Linear(2, 2)})
        popped = md.pop("b")
        return (list(md), list(md.keys()), "c" in md, len(md), type(popped).__name__,
                list(md.state_dict()))

    assert use(gg) == use(torch)


@pytest.mark.parametrize("action, error", [
    (lambda ml: ml.append(gg.tanh), TypeError),
    (lambda ml: ml.extend([nn.ReLU(), "relu"]), TypeError),
    (lambda ml: ml[5], IndexError),
    (lambda ml: ml.__setitem__(0, 3), TypeError),
    (lambda ml: ml["0"], TypeError),
])
def test_modulelist_refuses_bad_items_and_changes_nothing(action, error):
    ml = nn.ModuleList([nn.Linear(2, 2, seed=0)])
    with pytest.raises(error, match="ModuleList"):
        action(ml)
    assert len(ml) == 1 and isinstance(ml[0], nn.Linear)


@pytest.mark.parametrize("modules, error", [
    ({"a.b": nn.ReLU()}, KeyError),
    ({1: nn.ReLU()}, KeyError),
    ({"ok": nn.ReLU(), "bad": 3}, TypeError),
    ([("a", nn.ReLU(), 3)], ValueError),
])
def test_moduledict_refuses_bad_entries_and_adds_none(modules, error):
    md = nn.ModuleDict({"x": nn.Tanh()})
    with pytest.raises(error, match="ModuleDict"):
        md.update(modules)
    assert list(md) == ["x"]


# --------------------------------------------------------------------------- Module methods
def test_apply_visits_children_first_as_torch(torch):
    def order(lib):
        net = lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.Sequential(lib.nn.ReLU(),
                                                                       lib.nn.Linear(3, 1)))
        seen = []
        assert net.apply(lambda m: seen.append(type(m).__name__)) is net
        return seen

    assert order(gg) == order(torch)


def test_apply_initializes_weights():
    net = nn.Sequential(nn.Linear(3, 4, seed=0), nn.ReLU(), nn.Linear(4, 2, seed=0))

    def init_fn(m):
        if isinstance(m, nn.Linear):
            init.constant_(m.weight, 0.5)
            init.zeros_(m.bias)

    net.apply(init_fn)
    assert all(np.all(p.numpy() == (0.5 if p.ndim == 2 else 0.0)) for p in net.parameters())


def test_to_converts_floating_parameters_and_buffers_only():
    m = Tower(gg).model
    m.layer_grad_probe = None
    assert m.to("cpu") is m and m.cpu() is m
    m.to(gg.float64)
    assert {p.dtype for p in m.parameters()} == {np.dtype(np.float64)}
    assert m.scale.dtype == np.float64 and m.cache.dtype == np.float64
    assert m.steps.dtype == np.int64  # an integer buffer keeps its type, as PyTorch
    m.to(device="cpu", dtype=gg.float32)
    assert m.scale.dtype == np.float32
    m.to(gg.zeros(1, dtype=gg.float64))  # to(tensor): that tensor's dtype
    assert m.trunk[0].weight.dtype == np.float64


@pytest.mark.parametrize("call, error, words", [
    (lambda m: m.to("cuda"), RuntimeError, "CPU only"),
    (lambda m: m.to("cuda:0", gg.float64), RuntimeError, "CPU only"),
    (lambda m: m.to(0), RuntimeError, "CPU only"),
    (lambda m: m.cuda(), RuntimeError, "CPU only"),
    (lambda m: m.to(device="mps"), RuntimeError, "CPU only"),
    (lambda m: m.to(gg.int64), TypeError, "floating-point"),
    (lambda m: m.to(object()), TypeError, "neither a device nor a dtype"),
    (lambda m: m.to(gg.float64, colour="red"), TypeError, "unexpected keyword"),
])
def test_to_refuses_other_devices_and_non_float_dtypes_and_changes_nothing(call, error, words):
    m = nn.Linear(2, 2, seed=0)
    with pytest.raises(error, match=words):
        call(m)
    assert m.weight.dtype == np.float32


@pytest.mark.parametrize("name, value, error", [
    ("a.b", gg.zeros(1), KeyError),
    ("", gg.zeros(1), KeyError),
    ("weight", gg.zeros(1), KeyError),  # an existing attribute that is no buffer
    ("w", nn.Parameter([1.0]), TypeError),
    ("n", 3, TypeError),
])
def test_register_buffer_refuses_bad_names_and_values(name, value, error):
    m = nn.Linear(2, 2, seed=0)
    with pytest.raises(error, match="register_buffer"):
        m.register_buffer(name, value)
    assert list(m.named_buffers()) == [] and list(m.state_dict()) == ["weight", "bias"]


def test_buffers_round_trip_through_state_dict_and_reassignment():
    a, b = Tower(gg).model, Tower(gg).model
    a.steps = gg.tensor([7])  # plain assignment keeps it a buffer, as PyTorch
    b.load_state_dict(a.state_dict())
    assert b.steps.tolist() == [7] and "cache" not in a.state_dict()
    a.register_buffer("scale", None)  # a None buffer is left out of the state dict
    assert "scale" not in a.state_dict()
    with pytest.raises(KeyError, match="missing keys \\['scale'\\]"):
        b.load_state_dict(a.state_dict())


def test_state_dict_prefix_and_keep_vars(torch):
    lin = nn.Linear(2, 2, seed=0)
    sd = lin.state_dict(prefix="enc.", keep_vars=True)
    assert list(sd) == ["enc.weight", "enc.bias"] and sd["enc.weight"] is lin.weight
    assert list(torch.nn.Linear(2, 2).state_dict(prefix="enc.")) == list(sd)


def test_load_state_dict_assign_uses_the_given_arrays():
    lin = nn.Linear(2, 2, seed=0)
    w = np.full((2, 2), 3.0, np.float32)
    lin.load_state_dict({"weight": w, "bias": np.zeros(2, np.float32)}, assign=True)
    assert lin.weight._data is w


def test_register_parameter_and_add_module():
    m = nn.Module()
    m.register_parameter("w", nn.Parameter([1.0, 2.0]))
    m.add_module("sub", nn.Linear(2, 1, seed=0))
    m.register_parameter("b", None)
    assert [n for n, _ in m.named_parameters()] == ["w", "sub.weight", "sub.bias"]
    with pytest.raises(TypeError, match="not a Parameter"):
        m.register_parameter("x", gg.tensor([1.0]))
    with pytest.raises(AttributeError, match="no submodule 'nope'"):
        m.get_submodule("nope")


# --------------------------------------------------------------------------- layers
@pytest.mark.parametrize("shape, start, end", [
    ((2, 3, 4, 5), 1, -1), ((2, 3, 4, 5), 0, 1), ((2, 3, 4, 5), 2, 3), ((6,), 0, -1),
    ((2, 3), 1, 1),
])
def test_flatten_matches_torch_with_gradient(torch, shape, start, end):
    x = RNG.standard_normal(shape).astype(np.float32)
    g = gg.tensor(x, requires_grad=True)
    out = nn.Flatten(start, end)(g)
    t = to_torch(torch, x, grad=True)
    ref = torch.nn.Flatten(start, end)(t)
    assert out.shape == tuple(ref.shape)
    w = RNG.standard_normal(out.shape).astype(np.float32)
    (out * w).sum().backward()
    (ref * torch.from_numpy(w)).sum().backward()
    np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1e-6)


def test_unflatten_matches_torch(torch):
    x = RNG.standard_normal((2, 12)).astype(np.float32)
    for sizes in [(3, 4), (3, -1), (-1, 2, 2)]:
        assert nn.Unflatten(1, sizes)(gg.tensor(x)).shape == tuple(
            torch.nn.Unflatten(1, sizes)(torch.from_numpy(x)).shape)


@pytest.mark.parametrize("layer, shape, error", [
    (nn.Flatten(2, 1), (2, 3, 4), ValueError),
    (nn.Flatten(1, 5), (2, 3), IndexError),
    (nn.Unflatten(1, (5, 3)), (2, 12), ValueError),
    (nn.Unflatten(1, (-1, -1)), (2, 12), ValueError),
    (nn.Unflatten(3, (2, 6)), (2, 12), IndexError),
])
def test_flatten_unflatten_refuse_bad_dims(layer, shape, error):
    with pytest.raises(error, match=f"{type(layer).__name__}.*{shape}|dimension"):
        layer(gg.zeros(*shape))


def test_identity_ignores_its_arguments():
    x = gg.tensor([1.0, 2.0])
    assert nn.Identity(54, unused="x")(x) is x


# --------------------------------------------------------------------------- init
def test_init_generator_and_seed_are_one_thing_and_reproducible():
    a, b = gg.zeros(3, 4), gg.zeros(3, 4)
    init.kaiming_uniform_(a, generator=np.random.default_rng(3))
    init.kaiming_uniform_(b, seed=3)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    init.xavier_normal_(b, 1.0, 4)  # generator positionally, as PyTorch
    assert not np.array_equal(a.numpy(), b.numpy())
    with pytest.raises(TypeError, match="not both"):
        init.normal_(a, generator=1, seed=1)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        init.normal_(a, generator="torch")


@pytest.mark.parametrize("fill, shape", [
    (lambda t, lib: lib.nn.init.eye_(t), (3, 5)),
    (lambda t, lib: lib.nn.init.dirac_(t), (4, 2, 3)),
    (lambda t, lib: lib.nn.init.dirac_(t, 2), (4, 2, 3, 3)),
    (lambda t, lib: lib.nn.init.dirac_(t), (2, 3, 1, 3, 3)),
])
def test_deterministic_inits_equal_torchs(torch, fill, shape):
    ours = fill(gg.zeros(*shape), gg).numpy()
    theirs = fill(torch.full(shape, 7.0), torch).numpy()
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 2, 3)])
def test_orthogonal_is_orthogonal_times_gain(shape):
    w = init.orthogonal_(gg.zeros(*shape), gain=2.0, generator=0).numpy().reshape(shape[0], -1)
    small = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    np.testing.assert_allclose(small, 4.0 * np.eye(min(w.shape)), atol=1e-5)


def test_trunc_normal_stays_in_bounds_with_the_truncated_moments():
    w = init.trunc_normal_(gg.zeros(200, 200), mean=1.0, std=2.0, a=-1.0, b=3.0, generator=0)
    v = w.numpy()
    assert v.min() >= -1.0 and v.max() <= 3.0 and v.std() < 2.0 * 0.8
    # N(1, 2²) truncated to [-1, 3] is symmetric about 1: mean 1
    assert abs(v.mean() - 1.0) < 0.02
    with pytest.raises(ValueError, match="1%"):
        init.trunc_normal_(gg.zeros(3), a=6.0, b=7.0)


def test_sparse_zeroes_that_many_entries_per_column():
    w = init.sparse_(gg.zeros(10, 6), 0.25, std=1.0, generator=0).numpy()
    assert ((w == 0).sum(axis=0) == 3).all()  # ceil(0.25 · 10)


@pytest.mark.parametrize("call", [
    lambda: init.eye_(gg.zeros(2, 2, 2)),
    lambda: init.dirac_(gg.zeros(2, 2)),
    lambda: init.dirac_(gg.zeros(3, 2, 3), groups=2),
    lambda: init.orthogonal_(gg.zeros(3)),
    lambda: init.sparse_(gg.zeros(3), 0.1),
    lambda: init.calculate_gain("gelu"),
])
def test_init_refuses_shapes_it_cannot_fill(call):
    with pytest.raises(ValueError, match="nn.init|calculate_gain"):
        call()


def test_calculate_gain_matches_torch(torch):
    for name in ["linear", "conv3d", "conv_transpose2d", "sigmoid", "tanh", "relu", "selu"]:
        assert init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(
        torch.nn.init.calculate_gain("leaky_relu", 0.2))


def test_init_counts_as_an_in_place_write():
    w = nn.Parameter(np.ones((2, 2), np.float32))
    loss = (w * w).sum()
    init.zeros_(w)  # the graph saw the old values: backward must refuse, as PyTorch
    with pytest.raises(Exception, match="modified|in place|in-place"):
        loss.backward()


# --------------------------------------------------------------------------- functional
ACTIVATIONS = [
    ("softplus", {}, {}), ("softplus", {"beta": 2.0, "threshold": 3.0}, {}),
    ("logsigmoid", {}, {}), ("silu", {}, {}), ("mish", {}, {}), ("elu", {"alpha": 0.7}, {}),
    ("hardtanh", {"min_val": -0.5, "max_val": 1.0}, {}), ("relu6", {}, {}),
    ("softmin", {"dim": 1}, {}), ("softmax", {"dim": 0}, {}), ("log_softmax", {"dim": -1}, {}),
    ("leaky_relu", {"negative_slope": 0.2}, {}), ("relu", {}, {}),
    ("normalize", {}, {}), ("normalize", {"p": 1.0, "dim": 0}, {}),
]


@pytest.mark.parametrize("name, kwargs, _", ACTIVATIONS)
def test_activation_values_and_gradients_match_torch(torch, name, kwargs, _):
    x = (RNG.standard_normal((4, 5)) * 4).astype(np.float32)
    x[0, :3] = [-0.5, 1.0, 6.0]  # hardtanh's and relu6's bounds: gradient 0 there in torch
    x[1] = 0.0  # normalize's all-zero row
    g = gg.tensor(x, requires_grad=True)
    t = to_torch(torch, x, grad=True)
    out, ref = getattr(F, name)(g, **kwargs), getattr(torch.nn.functional, name)(t, **kwargs)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    w = RNG.standard_normal(x.shape).astype(np.float32)
    (out * w).sum().backward()
    (ref * torch.from_numpy(w)).sum().backward()
    np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_activation_modules_match_functions():
    x = gg.tensor(RNG.standard_normal((3, 4)).astype(np.float32))
    pairs = [(nn.SiLU(), F.silu(x)), (nn.ELU(0.5), F.elu(x, 0.5)), (nn.Mish(), F.mish(x)),
             (nn.Softplus(2.0), F.softplus(x, 2.0)), (nn.ReLU6(), F.relu6(x)),
             (nn.LogSoftmax(1), F.log_softmax(x, 1)), (nn.Softmin(0), F.softmin(x, 0)),
             (nn.LogSigmoid(), F.logsigmoid(x)), (nn.ReLU(inplace=True), F.relu(x))]
    for module, expected in pairs:
        np.testing.assert_array_equal(module(x).numpy(), expected.numpy())


def test_softmax_without_dim_warns_and_picks_torchs_dim(torch):
    x = RNG.standard_normal((2, 3, 4)).astype(np.float32)
    with pytest.warns(UserWarning, match="Implicit dimension"):
        out = F.softmax(gg.tensor(x))
    with pytest.warns(UserWarning):
        ref = torch.nn.functional.softmax(torch.from_numpy(x))
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-6)


def test_one_hot_matches_torch(torch):
    y = np.array([[0, 2], [1, 3]], dtype=np.int64)
    for n in (-1, 6):
        ours = F.one_hot(gg.tensor(y), n)
        assert ours.dtype == np.int64
        np.testing.assert_array_equal(ours.numpy(),
                                      torch.nn.functional.one_hot(torch.from_numpy(y), n))


@pytest.mark.parametrize("labels, n, words", [
    (np.array([0, 1], np.int32), -1, "int64"),
    (np.array([0.0, 1.0]), -1, "int64"),
    (np.array([1, 5]), 3, "smaller than num_classes=3"),
    (np.array([-1, 2]), -1, "non-negative"),
    (np.array([], np.int64), -1, "empty"),
])
def test_one_hot_refuses_what_torch_refuses(torch, labels, n, words):
    with pytest.raises(RuntimeError, match=words):
        F.one_hot(gg.tensor(labels) if labels.dtype != np.int32 else labels, n)
    with pytest.raises(RuntimeError):
        torch.nn.functional.one_hot(torch.from_numpy(labels), n)


CE_CASES = [
    {"label_smoothing": 0.1},
    {"label_smoothing": 0.2, "reduction": "sum"},
    {"label_smoothing": 0.3, "reduction": "none"},
    {"label_smoothing": 0.1, "weight": [1.0, 2.0, 0.5, 1.0]},
    {"label_smoothing": 0.1, "ignore_index": 2},
    {"label_smoothing": 0.1, "weight": [1.0, 2.0, 0.5, 1.0], "ignore_index": 1,
     "reduction": "sum"},
    {"label_smoothing": 0.25, "probs": True},
    {"label_smoothing": 0.25, "probs": True, "weight": [1.0, 2.0, 0.5, 1.0]},
]


@pytest.mark.parametrize("case", CE_CASES)
def test_cross_entropy_label_smoothing_matches_torch(torch, case):
    case = dict(case)
    probs = case.pop("probs", False)
    x = RNG.standard_normal((6, 4)).astype(np.float32)
    y = (RNG.dirichlet(np.ones(4), 6).astype(np.float32) if probs
         else np.array([0, 1, 2, 3, 2, 1], np.int64))
    w = case.pop("weight", None)
    g, t = gg.tensor(x, requires_grad=True), to_torch(torch, x, grad=True)
    out = F.cross_entropy(g, y, None if w is None else np.float32(w), **case)
    ref = torch.nn.functional.cross_entropy(
        t, torch.from_numpy(y), None if w is None else torch.tensor(w), **case)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    out.sum().backward()
    ref.sum().backward()
    np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-6)
    module = nn.CrossEntropyLoss(None if w is None else np.float32(w), **case)
    np.testing.assert_allclose(module(gg.tensor(x), y).numpy(), out.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name, kwargs", [
    ("mse_loss", {"weight": True}), ("mse_loss", {"weight": True, "reduction": "sum"}),
    ("l1_loss", {"weight": True}), ("huber_loss", {"weight": True}), ("smooth_l1_loss", {}),
    ("smooth_l1_loss", {"beta": 0.5}),
    ("smooth_l1_loss", {"beta": 0.0}), ("huber_loss", {"delta": 0.7}),
    ("huber_loss", {"delta": 2.0, "reduction": "none"}),
])
def test_regression_losses_match_torch(torch, name, kwargs):
    x = (RNG.standard_normal((5, 3)) * 2).astype(np.float32)
    y = RNG.standard_normal((5, 3)).astype(np.float32)
    kw = dict(kwargs)
    if kw.get("weight"):
        kw["weight"] = RNG.random((5, 3)).astype(np.float32)
    g, t = gg.tensor(x, requires_grad=True), to_torch(torch, x, grad=True)
    out = getattr(F, name)(g, y, **kw)
    tkw = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    ref = getattr(torch.nn.functional, name)(t, torch.from_numpy(y), **tkw)
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    out.sum().backward()
    ref.sum().backward()
    np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size_average, reduce", [(False, None), (None, False), (True, True),
                                                  (False, True)])
def test_deprecated_size_average_and_reduce_mean_what_they_mean_in_torch(torch, size_average,
                                                                         reduce):
    x = RNG.standard_normal((4, 3)).astype(np.float32)
    y = np.array([0, 2, 1, 1])
    with pytest.warns(UserWarning, match="size_average and reduce"):
        out = F.cross_entropy(gg.tensor(x), y, size_average=size_average, reduce=reduce)
    with pytest.warns(UserWarning):
        ref = torch.nn.functional.cross_entropy(torch.from_numpy(x), torch.from_numpy(y),
                                                size_average=size_average, reduce=reduce)
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-6)
    with pytest.warns(UserWarning):
        assert nn.MSELoss(size_average, reduce).reduction == torch.nn.MSELoss(
            size_average, reduce).reduction


@pytest.mark.parametrize("call", [
    lambda x: F.mse_loss(x, x, "sum"),
    lambda x: F.l1_loss(x, x, None, "none"),
    lambda x: nn.MSELoss("sum"),
])
def test_a_reduction_in_size_averages_place_is_refused_not_misread(call):
    with pytest.raises(TypeError, match="reduction='(sum|none)'"):
        call(gg.tensor([1.0, 2.0]))


@pytest.mark.parametrize("call, error", [
    (lambda x: F.cross_entropy(x, [0, 1], label_smoothing=1.5), ValueError),
    (lambda x: F.mse_loss(x, x, weight=np.ones(3, np.float32)), ValueError),
    (lambda x: F.huber_loss(x, x, delta=-1.0), ValueError),
    (lambda x: F.normalize(x, out=x), TypeError),
])
def test_functional_refuses_bad_settings(call, error):
    with pytest.raises(error):
        call(gg.tensor([[1.0, 2.0], [3.0, 4.0]]))


# --------------------------------------------------------------------------- save / load
@pytest.mark.parametrize("kwargs", [
    {}, {"map_location": "cpu"}, {"weights_only": True}, {"weights_only": False},
    {"map_location": {"cuda:0": "cpu"}}, {"map_location": lambda storage, loc: storage},
    {"mmap": True},
])
def test_torch_style_save_and_load_round_trip(tmp_path, kwargs):
    model = nn.Sequential(nn.Linear(3, 4, seed=0), nn.Tanh(), nn.Linear(4, 2, seed=1))
    gg.save(model.state_dict(), tmp_path / "model.pt")
    fresh = nn.Sequential(nn.Linear(3, 4, seed=5), nn.Tanh(), nn.Linear(4, 2, seed=6))
    fresh.load_state_dict(gg.load(tmp_path / "model.pt", **kwargs))
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)


def test_a_pt_file_is_safetensors_that_torch_reads(tmp_path, torch, safetensors_torch):
    model = nn.Linear(3, 2, seed=0)
    gg.save(model.state_dict(), tmp_path / "model.pt")
    theirs = torch.nn.Linear(3, 2)
    theirs.load_state_dict(safetensors_torch.load_file(str(tmp_path / "model.pt")))
    np.testing.assert_array_equal(theirs.weight.detach().numpy(), model.weight.numpy())


@pytest.mark.parametrize("call, error, words", [
    (lambda p: gg.load(p, map_location="cuda"), RuntimeError, "CPU only"),
    (lambda p: gg.load(p, map_location={"cpu": "cuda:1"}), RuntimeError, "CPU only"),
    (lambda p: gg.load(p, pickle_module=object()), TypeError, "never pickles"),
    (lambda p: gg.load(p, encoding="latin1"), TypeError, "never pickles"),
    (lambda p: gg.save({"w": gg.zeros(2)}, p, pickle_protocol=4), TypeError, "never pickles"),
])
def test_pickle_options_and_gpu_locations_are_refused(tmp_path, call, error, words):
    path = tmp_path / "model.pt"
    gg.save({"w": gg.ones(2)}, path)
    with pytest.raises(error, match=words):
        call(path)
    assert gg.load(path)["w"].tolist() == [1.0, 1.0]  # a refused save wrote nothing


def test_a_nested_checkpoint_dict_is_refused_with_what_to_do(tmp_path):
    model, path = nn.Linear(2, 1, seed=0), tmp_path / "ckpt.pt"
    with pytest.raises(TypeError, match="'model_state_dict' is a OrderedDict.*own file"):
        gg.save({"epoch": 3, "model_state_dict": model.state_dict()}, path)
    assert not path.exists()


# --------------------------------------------------------------------------- programs
# Each program is PyTorch code; it runs once under `import torch` and once under
# `import glassgrad as torch` (the same text), and the losses must agree to float32
# tolerance. `start(model)` stands in for "the same initial weights": under PyTorch it
# records the model's fresh state dict, under glassgrad it loads that record.
TORCH_IMPORTS = """
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import torch.utils.data as data
"""
GLASSGRAD_IMPORTS = """
import glassgrad as torch
import glassgrad.nn as nn
import glassgrad.nn.functional as F
import glassgrad.optim as optim
import glassgrad.utils.data as data
"""

DATALOADER_LOOP = """
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
start(model)
dataset = data.TensorDataset(torch.tensor(X), torch.tensor(Y))
loader = data.DataLoader(dataset, batch_size=16, shuffle=False)
optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
for epoch in range(3):
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
"""

CONTAINERS_AND_CUSTOM_DATASET = """
class Samples(data.Dataset):
    def __init__(self, X, Y):
        self.X, self.Y = X, Y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], int(self.Y[i])


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(4, 8), nn.Linear(8, 8)])
        self.heads = nn.ModuleDict({"cls": nn.Linear(8, 3), "aux": nn.Linear(8, 3)})
        self.register_buffer("temperature", torch.tensor([2.0]))

    def forward(self, x):
        for block in self.blocks:
            x = F.silu(block(x))
        return self.heads["cls"](x) / self.temperature + 0.1 * self.heads["aux"](x)


model = Net()
start(model)
loader = data.DataLoader(data.Subset(Samples(X, Y), range(48)), batch_size=12)
optimizer = optim.Adam(model.parameters(), lr=0.01)
for epoch in range(4):
    model.train()
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = F.nll_loss(F.log_softmax(model(xb), dim=1), yb)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        losses.append(F.cross_entropy(model(torch.tensor(X)), torch.tensor(Y)).item())
"""

INIT_SAVE_LOAD = """
def make():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4), nn.Tanh(),
                        nn.Linear(4, 1))

    def init_weights(m):
        if isinstance(m, nn.Linear):
            if m.weight.shape[0] == m.weight.shape[1]:
                nn.init.eye_(m.weight)
            else:
                nn.init.constant_(m.weight, 0.1)
            nn.init.zeros_(m.bias)

    return net.apply(init_weights)


def train(net, steps):
    optimizer = optim.SGD(net.parameters(), lr=0.05)
    x, target = torch.tensor(X.reshape(-1, 2, 2)), torch.tensor(T)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.mse_loss(net(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())


model = make()
train(model, 5)
torch.save(model.state_dict(), path)
restored = make()
restored.load_state_dict(torch.load(path, weights_only=True))
train(restored, 5)
"""

ONE_HOT_AND_LOSSES = """
model = nn.Sequential(nn.Linear(4, 8), nn.ELU(), nn.Linear(8, 3))
start(model)
x, y = torch.tensor(X), torch.tensor(Y)
optimizer = optim.SGD(model.parameters(), lr=0.2)
for step in range(10):
    optimizer.zero_grad()
    out = model(x)
    target = F.one_hot(y, num_classes=3).float()
    loss = (F.smooth_l1_loss(F.softmax(out, dim=1), target, beta=0.5)
            + F.binary_cross_entropy_with_logits(out, target)
            + 0.01 * F.softplus(out).mean())
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
"""

PROGRAMS = {"dataloader loop": DATALOADER_LOOP,
            "ModuleList, ModuleDict, buffer, custom Dataset": CONTAINERS_AND_CUSTOM_DATASET,
            "nn.init, apply, save/load": INIT_SAVE_LOAD,
            "one_hot and functional losses": ONE_HOT_AND_LOSSES}


def run_program(source, imports, start, path):
    data_rng = np.random.default_rng(7)
    namespace = {"X": data_rng.standard_normal((60, 4)).astype(np.float32),
                 "Y": data_rng.integers(0, 3, 60), "start": start, "path": str(path),
                 "losses": []}
    namespace["T"] = (namespace["X"] @ np.array([[1.0], [-2.0], [0.5], [0.3]])).astype(
        np.float32)
    exec(imports + source, namespace)
    return namespace["losses"]


@pytest.mark.parametrize("name", PROGRAMS)
def test_pytorch_program_runs_unchanged_with_the_same_losses(torch, tmp_path, name):
    recorded = {}

    def record(model):
        recorded.update({k: v.detach().numpy().copy() for k, v in model.state_dict().items()})

    def replay(model):
        model.load_state_dict(recorded)

    theirs = run_program(PROGRAMS[name], TORCH_IMPORTS, record, tmp_path / "torch.pt")
    ours = run_program(PROGRAMS[name], GLASSGRAD_IMPORTS, replay, tmp_path / "gg.pt")
    assert len(ours) == len(theirs) > 0
    np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=1e-6)

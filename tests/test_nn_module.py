"""nn.Module and nn.Parameter: the attribute walk, names, modes, state dicts (vs PyTorch)."""

from collections import OrderedDict

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import nn


class Block(nn.Module):
    def __init__(self):
        self.fc = nn.Linear(3, 4, seed=0)
        self.act = nn.Tanh()
        self.layers = [nn.Linear(4, 4, seed=1), nn.Linear(4, 2, seed=2)]
        self.heads = {"a": nn.Linear(2, 1, seed=3)}
        self.scale = nn.Parameter(np.ones(2, dtype=np.float32))
        self.note = "not a parameter"
        self.plain = gg.tensor([1.0], requires_grad=True)  # a plain Tensor is not registered

    def forward(self, x):
        h = self.act(self.fc(x))
        for layer in self.layers:
            h = layer(h)
        return self.heads["a"](h * self.scale)


def test_parameters_are_found_by_walking_attributes_in_definition_order():
    names = [n for n, _ in Block().named_parameters()]
    assert names == [
        "scale", "fc.weight", "fc.bias", "layers.0.weight", "layers.0.bias",
        "layers.1.weight", "layers.1.bias", "heads.a.weight", "heads.a.bias",
    ]
    assert [n for n, _ in Block().named_modules()] == [
        "", "fc", "act", "layers.0", "layers.1", "heads.a",
    ]
    assert len(list(Block().children())) == 5


def test_shared_parameter_is_listed_once_but_state_dict_keeps_both_names():
    lin = nn.Linear(2, 2, seed=0)
    net = nn.Sequential(lin, nn.Tanh(), lin)
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias"]
    assert list(net.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_a_module_that_refers_to_its_parent_does_not_loop():
    outer = nn.Sequential(nn.Linear(2, 2, seed=0))
    outer[0].owner = outer
    assert len(list(outer.parameters())) == 2


def test_state_dict_matches_torch_sequential_keys_and_shapes(torch):
    net = nn.MLP([5, 7, 3, 2], activation="relu", seed=0)
    tnet = torch.nn.Sequential(
        torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3), torch.nn.ReLU(),
        torch.nn.Linear(3, 2),
    )
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in tnet.state_dict().items()}
    assert list(ours.items()) == list(theirs.items())
    # and the values move between the two: same outputs
    tnet.load_state_dict({k: torch.from_numpy(v.numpy().copy())
                          for k, v in net.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(net(x).numpy(), tnet(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    net2 = nn.MLP([5, 7, 3, 2], activation="relu", seed=1)
    net2.load_state_dict({k: v.detach().numpy() for k, v in tnet.state_dict().items()})
    np.testing.assert_array_equal(net2(x).numpy(), net(x).numpy())


def test_state_dict_shares_memory_and_is_detached():
    net = nn.Linear(2, 3, seed=0)
    sd = net.state_dict()
    assert not sd["weight"].requires_grad and sd["weight"].op is None
    net.weight.data[0, 0] = 42.0
    assert sd["weight"].numpy()[0, 0] == 42.0


def _snapshot(m):
    return {k: v.numpy().copy() for k, v in m.state_dict().items()}


@pytest.mark.parametrize("change, match", [
    (lambda sd: sd.pop("2.bias"), r"missing keys \['2.bias'\]"),
    (lambda sd: sd.__setitem__("9.weight", np.zeros((1, 1))), r"unexpected keys \['9.weight'\]"),
    (lambda sd: sd.__setitem__("2.weight", np.zeros((1, 4))), r"'2.weight' has shape \(1, 4\)"),
])
def test_load_state_dict_rejects_bad_dicts_and_leaves_the_model_unchanged(change, match):
    net = nn.MLP([2, 3, 1], seed=0)
    before = _snapshot(net)
    sd = OrderedDict((k, np.full(v.shape, 7.0, np.float32)) for k, v in net.state_dict().items())
    change(sd)
    with pytest.raises((KeyError, ValueError), match=match):
        net.load_state_dict(sd)
    after = _snapshot(net)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_load_state_dict_non_strict_reports_and_loads_the_rest():
    net = nn.MLP([2, 3, 1], seed=0)
    res = net.load_state_dict({"0.weight": np.ones((3, 2)), "extra": np.zeros(1)}, strict=False)
    assert res.missing_keys == ["0.bias", "2.weight", "2.bias"]
    assert res.unexpected_keys == ["extra"]
    assert net[0].weight.dtype == np.float32 and (net[0].weight.numpy() == 1).all()


def test_load_state_dict_copies_in_place():
    net = nn.Linear(2, 2, seed=0)
    w = net.weight._data
    net.load_state_dict({"weight": np.eye(2), "bias": np.zeros(2)})
    assert net.weight._data is w and np.array_equal(w, np.eye(2))


def test_train_eval_zero_grad_and_requires_grad():
    net = nn.Sequential(nn.Linear(2, 2, seed=0), nn.Dropout(0.5), nn.Linear(2, 1, seed=1))
    assert all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert net[1].training
    net(np.ones((3, 2), np.float32)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.numpy() == 0) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_to_double_converts_parameters():
    net = nn.MLP([2, 3, 1], seed=0).double()
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net(np.ones((1, 2))).dtype == np.float64


def test_parameter_is_a_float_tensor_that_requires_grad():
    p = nn.Parameter([1, 2])
    assert isinstance(p, gg.Tensor) and p.requires_grad and p.dtype == np.float32
    arr = np.zeros(3)
    assert nn.Parameter(arr)._data is arr  # shares memory, as torch.nn.Parameter
    with pytest.raises(TypeError, match="only floating-point"):
        nn.Parameter(np.array([1, 2]))
    assert repr(p).startswith("Parameter containing:\ntensor([1., 2.]")
    # ops on a Parameter give plain Tensors
    assert type(p * 2) is gg.Tensor


def test_forward_hook_sees_output_and_can_be_removed():
    net = nn.MLP([2, 3, 1], seed=0)
    seen = []
    handle = net[0].register_forward_hook(lambda m, inp, out: seen.append(out.shape))
    net(np.ones((5, 2), np.float32))
    handle.remove()
    net(np.ones((5, 2), np.float32))
    assert seen == [(5, 3)]
    assert nn.Linear(1, 1)._forward_hooks == []  # no hook leaked onto other instances


def test_repr_looks_like_pytorch():
    net = nn.MLP([2, 3, 1], activation="tanh", output_activation="sigmoid", seed=0)
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
        "  (1): Tanh()\n"
        "  (2): Linear(in_features=3, out_features=1, bias=True)\n"
        "  (3): Sigmoid()\n"
        ")"
    )


def test_module_without_forward_explains_itself():
    class Empty(nn.Module):
        pass

    with pytest.raises(NotImplementedError, match="Empty has no forward"):
        Empty()(1)

"""save/load: exact round trips in the safetensors format, readable by PyTorch; clear errors."""

import os

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.serialization import load_metadata, load_model

# Every test here saves or loads, which needs the safetensors package.
pytestmark = pytest.mark.usefixtures("safetensors")


def mlp(seed=0, sizes=(3, 5, 2)):
    return gg.nn.MLP(list(sizes), activation="tanh", seed=seed)


def test_round_trip_is_exact_and_keeps_order(tmp_path):
    model = mlp()
    path = tmp_path / "m.safetensors"
    gg.save(model, path)
    state = gg.load(path)
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    for name, t in model.state_dict().items():
        assert isinstance(state[name], gg.Tensor)
        assert state[name].dtype == t.dtype
        np.testing.assert_array_equal(state[name].numpy(), t.numpy())
    other = mlp(seed=1)
    other.load_state_dict(state)
    x = gg.tensor(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32))
    np.testing.assert_array_equal(other(x).numpy(), model(x).numpy())


def test_loaded_tensors_own_writable_memory(tmp_path):
    gg.save({"w": np.arange(6.0).reshape(2, 3)}, tmp_path / "s.safetensors")
    w = gg.load(tmp_path / "s.safetensors")["w"]
    w.numpy()[0, 0] = 42.0  # would fail on a read-only view of the file
    assert w.dtype == np.float64 and w.numpy()[0, 0] == 42.0


def test_state_dict_of_arrays_and_non_contiguous(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4).T  # a transposed view
    gg.save({"a": a, "b": gg.tensor([1, 2, 3])}, tmp_path / "s.safetensors")
    state = gg.load(tmp_path / "s.safetensors")
    np.testing.assert_array_equal(state["a"].numpy(), a)
    assert state["b"].dtype == np.int64


def test_file_loads_into_an_equivalent_torch_model(tmp_path, torch, safetensors_torch):
    model = mlp()
    path = tmp_path / "m.safetensors"
    gg.save(model, path)
    sd = safetensors_torch.load_file(str(path))
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    net.load_state_dict(sd)  # strict: same names and shapes as PyTorch's
    x = np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(gg.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_torch_written_file_loads_into_glassgrad(tmp_path, torch, safetensors_torch):
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    path = tmp_path / "t.safetensors"
    safetensors_torch.save_file(net.state_dict(), str(path))
    model = mlp(seed=3)
    model.load_state_dict(gg.load(path))
    np.testing.assert_array_equal(model[0].weight.numpy(), net[0].weight.detach().numpy())


def test_load_model_rebuilds_architecture(tmp_path):
    model = gg.nn.Sequential(gg.nn.Linear(2, 4, seed=0), gg.nn.LeakyReLU(0.2),
                             gg.nn.Linear(4, 3, bias=False, seed=1), gg.nn.Softmax(dim=1))
    path = tmp_path / "m.safetensors"
    gg.save(model, path, metadata={"note": "hello"})
    meta = load_metadata(path)
    assert meta["note"] == "hello" and meta["glassgrad.version"] == gg.__version__
    rebuilt = load_model(path)
    assert rebuilt[1].negative_slope == 0.2 and rebuilt[2].bias is None
    x = gg.tensor([[0.5, -1.0], [2.0, 0.1]])
    np.testing.assert_array_equal(rebuilt(x).numpy(), model(x).numpy())


def test_load_model_keeps_float64(tmp_path):
    model = gg.nn.MLP([2, 3, 1], seed=0).double()
    gg.save(model, tmp_path / "d.safetensors")
    assert load_model(tmp_path / "d.safetensors")[0].weight.dtype == np.float64


def test_load_model_of_a_custom_model_explains(tmp_path):
    gg.save(mlp().state_dict(), tmp_path / "w.safetensors")  # a plain dict: no architecture
    with pytest.raises(ValueError, match=r"weights only .*load_state_dict"):
        load_model(tmp_path / "w.safetensors")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupted_file_gives_a_clear_error(tmp_path, damage):
    path = tmp_path / "m.safetensors"
    gg.save(mlp(), path)
    data = path.read_bytes()
    path.write_bytes({"truncate": data[:-7], "garbage": b"\x00not a model" * 3,
                      "empty": b""}[damage])
    with pytest.raises(ValueError, match=r"not a valid safetensors file .* save the model again"):
        gg.load(path)


def test_mismatched_state_dict_names_tensor_and_shapes(tmp_path):
    path = tmp_path / "m.safetensors"
    gg.save(mlp(sizes=(3, 5, 2)), path)
    wrong = mlp(sizes=(3, 6, 2))
    before = [p.numpy().copy() for p in wrong.parameters()]
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(5, 3\) .* \(6, 3\)"):
        wrong.load_state_dict(gg.load(path))
    for p, b in zip(wrong.parameters(), before):
        np.testing.assert_array_equal(p.numpy(), b)  # nothing half-loaded
    with pytest.raises(KeyError, match="missing keys"):
        gg.nn.MLP([3, 5, 5, 2], seed=0).load_state_dict(gg.load(path))


def test_failed_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    gg.save(mlp(seed=0), path)
    old = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        gg.save(mlp(seed=1), path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["m.safetensors"]


def test_unserializable_input_is_rejected_before_writing(tmp_path):
    with pytest.raises(TypeError, match="a model .* or a dict"):
        gg.save([1, 2, 3], tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="numbers and bools"):
        gg.save({"s": np.array(["a"])}, tmp_path / "x.safetensors")
    assert not os.listdir(tmp_path)


def test_saved_files_get_the_usual_permissions(tmp_path):
    """Atomic writes go through a 0600 temp file; the result must honour the umask like open()."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = tmp_path / "m.safetensors"
        gg.save(gg.nn.Linear(2, 1, seed=0), path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(old)

"""Files and loading, hardened: atomic saves keep a file's mode, follow symlinks and clean up
after killed saves; loads check a file before they trust anything it claims."""

import json
import os
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import fileio

# Every test here saves or loads a safetensors file (the `train` extra).
pytestmark = pytest.mark.usefixtures("safetensors")

TAG = ".glassgrad-tmp-"
SRC = os.path.dirname(os.path.dirname(os.path.abspath(gg.__file__)))


def temps(folder):
    return sorted(n for n in os.listdir(folder) if TAG in n)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process's umask for one test and restore it after."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ----------------------------------------------------------------------------- saving
@pytest.mark.parametrize("bits", [0o640, 0o600, 0o604, 0o664])
def test_saving_over_a_file_keeps_its_mode(tmp_path, umask, bits):
    path = tmp_path / "m.safetensors"
    gg.save({"w": np.zeros(2)}, path)
    os.chmod(path, bits)
    gg.save({"w": np.ones(2)}, path)
    assert mode(path) == bits
    np.testing.assert_array_equal(gg.load(path)["w"].numpy(), [1.0, 1.0])


@pytest.mark.parametrize("mask, bits", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_mode_open_would_give(tmp_path, umask, mask, bits):
    umask(mask)
    gg.save({"w": np.zeros(2)}, tmp_path / "m.safetensors")
    with open(tmp_path / "plain", "wb"):
        pass
    assert mode(tmp_path / "m.safetensors") == mode(tmp_path / "plain") == bits


@pytest.mark.parametrize("chain", [1, 2])
def test_saving_through_a_symlink_replaces_its_target_atomically(tmp_path, monkeypatch, chain):
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "r.safetensors"
    gg.save({"w": np.zeros(3)}, real)
    os.chmod(real, 0o640)
    link = tmp_path / "link0.safetensors"
    os.symlink(os.path.join("real", "r.safetensors"), link)  # a relative link
    for i in range(1, chain):
        os.symlink(f"link{i - 1}.safetensors", tmp_path / f"link{i}.safetensors")
        link = tmp_path / f"link{i}.safetensors"
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append((a, b)), real_replace(a, b)))
    gg.save({"w": np.ones(3)}, link)
    [(src, dst)] = replaced
    assert dst == str(real) and os.path.dirname(src) == str(real.parent)
    assert os.path.islink(link) and os.readlink(tmp_path / "link0.safetensors") == os.path.join(
        "real", "r.safetensors")
    np.testing.assert_array_equal(gg.load(real)["w"].numpy(), np.ones(3))
    assert mode(real) == 0o640
    assert temps(tmp_path) == temps(real.parent) == []


def test_a_dangling_symlink_gets_its_target_created_as_open_does(tmp_path):
    os.symlink("target.safetensors", tmp_path / "link.safetensors")
    gg.save({"w": np.ones(2)}, tmp_path / "link.safetensors")
    assert os.path.islink(tmp_path / "link.safetensors")
    np.testing.assert_array_equal(gg.load(tmp_path / "target.safetensors")["w"].numpy(), [1, 1])


@pytest.mark.parametrize("where, error, words", [
    ("folder", IsADirectoryError, r"'.*folder': it is a folder, not a file\. Fix: name a file"),
    ("missing/m.safetensors", FileNotFoundError, r"the folder '.*missing' does not exist"),
    ("loop", OSError, r"'.*loop': its symbolic links form a loop"),
])
def test_a_target_that_cannot_be_a_file_is_refused_first(tmp_path, where, error, words):
    (tmp_path / "folder").mkdir()
    os.symlink("loop2", tmp_path / "loop")
    os.symlink("loop", tmp_path / "loop2")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(error, match=words):
        gg.save({"w": np.ones(2)}, str(tmp_path / where))
    assert sorted(os.listdir(tmp_path)) == before and os.listdir(tmp_path / "folder") == []


@pytest.mark.parametrize("kind", [str, os.fsencode, lambda p: p], ids=["str", "bytes", "Path"])
def test_paths_may_be_str_bytes_or_pathlike(tmp_path, kind):
    path = tmp_path / "m.safetensors"
    given = kind(path)
    gg.save(gg.nn.Linear(2, 1, seed=0), given)
    assert gg.load(given)["weight"].shape == (1, 2)
    assert gg.serialization.load_model(given).in_features == 2
    assert gg.serialization.load_metadata(given)["glassgrad.keys"] == '["weight", "bias"]'


@pytest.mark.parametrize("bad", [3, None, ["m.safetensors"]])
def test_a_path_of_another_type_is_a_type_error(bad):
    with pytest.raises(TypeError, match=r"save: the path must be a str, bytes or os.PathLike"):
        gg.save({"w": np.ones(2)}, bad)
    with pytest.raises(TypeError, match=r"load: the path must be a str, bytes or os.PathLike"):
        gg.load(bad)


@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_an_interrupted_write_removes_its_temp_and_keeps_the_old_file(tmp_path, monkeypatch,
                                                                      failure):
    path = tmp_path / "m.safetensors"
    gg.save({"w": np.zeros(2)}, path)
    old = path.read_bytes()

    def broken_fsync(fd):
        raise failure

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(type(failure)):
        gg.save({"w": np.ones(2)}, path)
    assert path.read_bytes() == old and os.listdir(tmp_path) == ["m.safetensors"]


def test_a_killed_save_leaves_a_named_temp_that_the_next_save_removes(tmp_path):
    path = tmp_path / "m.safetensors"
    gg.save({"w": np.zeros(2)}, path)
    killer = ("import os, signal, sys\nimport glassgrad as gg\n"
              "os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
              "gg.save({'w': [5.0, 5.0]}, sys.argv[1])\n")
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run([sys.executable, "-c", killer, str(path)], env=env, timeout=120)
    assert done.returncode == -signal.SIGKILL
    [left] = temps(tmp_path)
    assert left.startswith(f".m.safetensors{TAG}")  # recognisably ours, and whose
    gg.save({"w": np.ones(2)}, path)
    assert temps(tmp_path) == []
    np.testing.assert_array_equal(gg.load(path)["w"].numpy(), [1.0, 1.0])


def test_only_temps_whose_writer_is_gone_are_removed(tmp_path):
    host = fileio._host()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = dead_pid()
        names = {
            "dead writer": f".m.safetensors{TAG}{host}-{dead}-0a1b2c3d",
            "this process, not saving now": f".m.safetensors{TAG}{host}-{os.getpid()}-0a1b2c3e",
            "running writer": f".m.safetensors{TAG}{host}-{sleeper.pid}-0a1b2c3f",
            "another target": f".n.safetensors{TAG}{host}-{dead}-0a1b2c40",
            "another machine": f".m.safetensors{TAG}elsewhere-{dead}-0a1b2c41",
            "not our naming": f".m.safetensors.tmp-{dead}-0a1b2c42",
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"half a file")
        gg.save({"w": np.ones(2)}, tmp_path / "m.safetensors")
    finally:
        sleeper.kill()
        sleeper.wait()
    kept = set(os.listdir(tmp_path))
    assert {what for what, name in names.items() if name not in kept} == {
        "dead writer", "this process, not saving now"}


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_a_device_is_written_into_not_replaced(monkeypatch):
    def no_replace(src, dst):
        raise AssertionError(f"would replace the device {dst} by a file")

    monkeypatch.setattr(os, "replace", no_replace)
    gg.save({"w": np.ones(2)}, "/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


# ----------------------------------------------------------------------------- loading
ARCH = "glassgrad.architecture"


def linear(n_in, n_out, bias=True):
    return ["Linear", {"in_features": n_in, "out_features": n_out, "bias": bias}, []]


def craft(path, arch, tensors=None, keys=None):
    """A file with ``tensors`` (default: one 2x2 '0.weight') and an architecture text that
    claims whatever the test wants, as an edited or malicious file would."""
    tensors = {"0.weight": np.zeros((2, 2), np.float32)} if tensors is None else tensors
    meta = {ARCH: arch if isinstance(arch, str) else json.dumps(arch)}
    if keys is not None:
        meta["glassgrad.keys"] = keys
    from safetensors.numpy import save  # (installed: see pytestmark)

    path.write_bytes(save(tensors, metadata=meta))
    return path


@pytest.fixture
def nothing_built(monkeypatch):
    """Fail the test if load_model constructs any layer."""
    def built(*args, **kwargs):
        raise AssertionError("a layer was built from an unchecked architecture")

    for cls in ("Linear", "Sequential", "Tanh", "Dropout", "LeakyReLU"):
        monkeypatch.setattr(getattr(gg.nn, cls), "__init__", built)


def test_a_huge_declared_layer_fails_before_anything_is_allocated(tmp_path, nothing_built):
    import tracemalloc

    path = craft(tmp_path / "m.safetensors", ["Sequential", {}, [linear(3000, 3000)]])
    tracemalloc.start()
    try:
        with pytest.raises(gg.serialization.FileFormatError) as info:
            gg.serialization.load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # the declared weight alone is 36 MB
    message = str(info.value)
    assert "layer '0' (Linear(3000, 3000)) declares '0.weight' of shape (3000, 3000), but the " \
           "file stores shape (2, 2)" in message
    assert "'0.bias' of shape (3000,), which the file does not hold" in message
    assert "Nothing was built" in message and str(path) in message


def test_a_37_gib_declaration_loads_nothing_in_a_small_address_space(tmp_path):
    """Linear(100000, 100000) in a 300-byte file: refused in a process limited to 1 GiB."""
    path = craft(tmp_path / "m.safetensors", linear(100000, 100000, bias=False),
                 {"weight": np.zeros((2, 2), np.float32)})
    assert path.stat().st_size < 400
    probe = ("import resource, sys\n"
             "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
             "from glassgrad.serialization import FileFormatError, load_model\n"
             "try:\n    load_model(sys.argv[1])\n"
             "except FileFormatError as e:\n    print(e)\n")
    env = {**os.environ, "PYTHONPATH": SRC, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", probe, str(path)], env=env, timeout=120,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "(Linear(100000, 100000)) declares 'weight' of shape (100000, 100000), but the file " \
           "stores shape (2, 2)" in done.stdout


@pytest.mark.parametrize("text", [
    "[" * 100_000,
    "[" * 100_000 + "]" * 100_000,
    '{"a": ' * 100_000 + "1" + "}" * 100_000,
    '["Sequential", {}, ["x]]]]]]]]]]", ' + "[" * 100_000 + "]" * 100_000 + "]]",
], ids=["open", "closed", "objects", "after-brackets-in-a-string"])
def test_deeply_nested_json_is_refused_without_recursion(tmp_path, nothing_built, text):
    path = craft(tmp_path / "m.safetensors", text)
    with pytest.raises(gg.serialization.FileFormatError, match=r"nested more than \d+ deep"):
        gg.serialization.load_model(path)


def test_sequential_nested_too_deep_is_refused_but_a_deep_one_loads(tmp_path):
    def nest(depth):
        spec = linear(2, 2)
        for _ in range(depth):
            spec = ["Sequential", {}, [spec]]
        return spec

    name = ".".join(["0"] * 32 + ["weight"])
    tensors = {name: np.ones((2, 2), np.float32), name[:-6] + "bias": np.zeros(2, np.float32)}
    model = gg.serialization.load_model(craft(tmp_path / "ok.safetensors", nest(32), tensors))
    np.testing.assert_array_equal(model(gg.ones(1, 2)).numpy(), [[2.0, 2.0]])
    with pytest.raises(gg.serialization.FileFormatError, match=r"at most 32 deep"):
        gg.serialization.load_model(craft(tmp_path / "deep.safetensors", nest(33),
                                          {"0." + k: v for k, v in tensors.items()}))


@pytest.mark.parametrize("arch, words", [
    ("not json", r"not valid JSON"),
    pytest.param("x" * (1 << 21), r"2097152 characters, more than 1048576", id="2-MiB-text"),
    ({"a": 1}, r"the model is \{'a': 1\}, not \[class, settings, children\]"),
    (["Sequential", {}, [["Conv2d", {}, []]]], r"layer '0': unknown layer 'Conv2d'"),
    (["Sequential", {"x": 1}, []], r"Sequential takes no settings"),
    (linear(True, 2), r"Linear in_features=True, not an integer >= 0"),
    (linear(-1, 2), r"in_features=-1, not an integer >= 0"),
    (linear(2.0, 2), r"in_features=2.0, not an integer >= 0"),
    (linear(2, 2, bias=1), r"bias=1, not true or false"),
    (["Linear", {"in_features": 2, "out_features": 2}, []], r"it takes \['in_features'"),
    (["Linear", {**linear(2, 2)[1], "seed": 0}, []], r"it takes \['in_features'"),
    (["Linear", linear(2, 2)[1], [["Tanh", {}, []]]], r"and 1 children"),
    (["Sequential", {}, [["LeakyReLU", {"negative_slope": 1e999}, []]]],
     r"negative_slope=inf, not a finite number"),
    (["Sequential", {}, [["Dropout", {"p": 2}, []]]], r"p=2, not a number in \[0, 1\]"),
])
def test_a_malformed_architecture_is_refused_before_building(tmp_path, nothing_built, arch,
                                                             words):
    path = craft(tmp_path / "m.safetensors", arch)
    with pytest.raises(gg.serialization.FileFormatError,
                       match=r"architecture in its header cannot be rebuilt: .*" + words):
        gg.serialization.load_model(path)


@pytest.mark.parametrize("tensors, words", [
    ({"0.weight": np.zeros((3, 2), np.float32)}, r"declares '0.bias' of shape \(3,\), which the "
                                                 r"file does not hold"),
    ({"0.weight": np.zeros((3, 2), np.float32), "0.bias": np.zeros(3, np.float32),
      "1.weight": np.zeros(1, np.float32)}, r"holds tensors no layer declares: \['1.weight'\]"),
    ({"0.weight": np.zeros((2, 3), np.float32), "0.bias": np.zeros(3, np.float32)},
     r"declares '0.weight' of shape \(3, 2\), but the file stores shape \(2, 3\)"),
    ({"0.weight": np.zeros((3, 2), np.int64), "0.bias": np.zeros(3, np.float32)},
     r"'0.weight' is stored as I64, but a parameter holds floats"),
    ({"0.weight": np.zeros((3, 2), np.float32), "0.bias": np.zeros(3, bool)},
     r"'0.bias' is stored as BOOL"),
])
def test_the_architecture_must_match_the_stored_tensors(tmp_path, nothing_built, tensors, words):
    path = craft(tmp_path / "m.safetensors", ["Sequential", {}, [linear(2, 3)]], tensors)
    with pytest.raises(gg.serialization.FileFormatError,
                       match=r"does not match the tensors stored in it: .*" + words):
        gg.serialization.load_model(path)


def test_a_nested_model_with_every_layer_kind_round_trips(tmp_path):
    model = gg.nn.Sequential(
        gg.nn.Linear(3, 4, seed=0), gg.nn.Sequential(gg.nn.Tanh(), gg.nn.Dropout(0.25)),
        gg.nn.Sequential(gg.nn.Linear(4, 2, bias=False, seed=1), gg.nn.LeakyReLU(0.3)),
        gg.nn.Identity(), gg.nn.Sigmoid(), gg.nn.ReLU(), gg.nn.Softmax(dim=0)).eval()
    gg.save(model, tmp_path / "m.safetensors")
    rebuilt = gg.serialization.load_model(tmp_path / "m.safetensors").eval()
    assert list(rebuilt.state_dict()) == ["0.weight", "0.bias", "2.0.weight"]
    assert rebuilt[1][1].p == 0.25 and rebuilt[2][1].negative_slope == 0.3
    x = gg.tensor(np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32))
    np.testing.assert_array_equal(rebuilt(x).numpy(), model(x).numpy())


def test_a_sequential_with_named_children_is_saved_as_weights_only(tmp_path):
    from collections import OrderedDict

    model = gg.nn.Sequential(OrderedDict(inp=gg.nn.Linear(2, 3, seed=0), act=gg.nn.Tanh()))
    gg.save(model, tmp_path / "m.safetensors")
    with pytest.raises(gg.serialization.FileFormatError, match="holds weights only"):
        gg.serialization.load_model(tmp_path / "m.safetensors")
    assert list(gg.load(tmp_path / "m.safetensors")) == ["inp.weight", "inp.bias"]


@pytest.mark.parametrize("keys", ["[" * 100_000, '[1, "0.weight"]', '["0.weight", "x"]', "{"],
                         ids=["deep", "not-strings", "other-names", "not-json"])
def test_an_unusable_key_order_falls_back_to_the_file_order(tmp_path, keys):
    tensors = {"0.weight": np.ones((2, 2), np.float32), "0.bias": np.zeros(2, np.float32)}
    path = craft(tmp_path / "m.safetensors", "[]", tensors, keys=keys)
    assert sorted(gg.load(path)) == ["0.bias", "0.weight"]


def test_a_folder_or_a_missing_file_is_a_clear_os_error(tmp_path):
    gg.save({"w": np.ones(2)}, tmp_path / "inside.safetensors")
    with pytest.raises(IsADirectoryError, match=r"is a folder; .* e\.g\. '.*inside.safetensors'"):
        gg.load(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"load_model: no file '.*nope.safetensors'"):
        gg.serialization.load_model(tmp_path / "nope.safetensors")


def header(entries, data, length=None):
    text = entries if isinstance(entries, bytes) else json.dumps(entries).encode()
    return (len(text) if length is None else length).to_bytes(8, "little") + text + data


F32 = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}


@pytest.mark.parametrize("content", [
    b"\x01\x02",  # shorter than the length prefix
    header({"a": F32}, b"\0" * 4, length=10**9),  # a header longer than the file
    header({"a": {**F32, "data_offsets": [0, 8]}}, b"\0" * 4),  # data beyond the end
    header({"a": F32, "b": F32}, b"\0" * 4),  # two tensors on the same bytes
    header({"a": {**F32, "dtype": "Q99"}}, b"\0" * 4),  # an unknown dtype
    header(b'{"a\xff": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', b"\0" * 4),
    header({"a": {**F32, "shape": [100000, 100000]}}, b"\0" * 4),  # shape beyond the bytes
], ids=["short", "long-header", "out-of-range", "overlap", "dtype", "utf8", "shape"])
def test_a_damaged_header_is_one_clear_error_naming_the_file(tmp_path, content):
    path = tmp_path / "m.safetensors"
    path.write_bytes(content)
    for read in (gg.load, gg.serialization.load_model, gg.serialization.load_metadata):
        with pytest.raises(gg.serialization.FileFormatError,
                           match=r"cannot read '.*m.safetensors' \(\d+ bytes\): it is not a "
                                 r"valid safetensors file"):
            read(path)


def test_bfloat16_loads_as_float32_with_a_note(tmp_path, torch, safetensors_torch):
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    sd = {k: v.to(torch.bfloat16) for k, v in net.state_dict().items()}
    gg.save(gg.nn.MLP([3, 4, 2], activation="tanh", seed=0), tmp_path / "gg.safetensors")
    meta = gg.serialization.load_metadata(tmp_path / "gg.safetensors")
    safetensors_torch.save_file(sd, str(tmp_path / "bf.safetensors"), metadata=meta)
    with pytest.warns(UserWarning, match=r"stored as bfloat16, .* loaded as float32"):
        state = gg.load(tmp_path / "bf.safetensors")
    for k, v in sd.items():
        assert state[k].dtype == np.float32
        np.testing.assert_array_equal(state[k].numpy(), v.float().numpy())
    with pytest.warns(UserWarning, match="bfloat16"):
        model = gg.serialization.load_model(tmp_path / "bf.safetensors")
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    net.load_state_dict({k: v.float() for k, v in sd.items()})  # the weights, rounded
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert model[0].weight.dtype == np.float32
    np.testing.assert_allclose(model(gg.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_float16_stays_float16(tmp_path):
    model = gg.nn.MLP([2, 3, 1], seed=0).to(np.float16)
    gg.save(model, tmp_path / "h.safetensors")
    assert gg.load(tmp_path / "h.safetensors")["0.weight"].dtype == np.float16
    rebuilt = gg.serialization.load_model(tmp_path / "h.safetensors")
    assert {p.dtype for p in rebuilt.parameters()} == {np.dtype(np.float16)}
    np.testing.assert_array_equal(rebuilt[0].weight.numpy(), model[0].weight.numpy())


@pytest.mark.parametrize("value, stored", [
    (lambda torch: torch.ones(2, dtype=torch.complex64), "C64"),
    (lambda torch: torch.ones(2).to(torch.float8_e4m3fn), "F8_E4M3"),
])
def test_a_dtype_numpy_cannot_hold_is_refused_by_name(tmp_path, torch, safetensors_torch,
                                                      value, stored):
    value = value(torch)
    path = tmp_path / "t.safetensors"
    safetensors_torch.save_file({"w": torch.ones(2), "odd": value}, str(path))
    with pytest.raises(gg.serialization.FileFormatError,
                       match=rf"stores \{{'odd': '{stored}'\}}: .* Fix: convert them"):
        gg.load(path)


def test_save_refuses_an_architecture_too_long_for_load_model(tmp_path):
    model = gg.nn.Sequential(*(gg.nn.Identity() for _ in range(60_000)), gg.nn.Linear(2, 1))
    with pytest.raises(ValueError, match=r"architecture takes \d+ characters, more than the "
                                         r"1048576 load_model reads. Fix: save model.state_dict"):
        gg.save(model, tmp_path / "m.safetensors")
    assert os.listdir(tmp_path) == []

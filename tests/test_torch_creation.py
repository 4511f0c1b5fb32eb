"""Creation functions, dtypes and devices under PyTorch's names, compared with PyTorch:
values, dtypes and shapes from the same calls, the refusals, and manual_seed's
reproducibility (the random numbers themselves differ from PyTorch's by design)."""

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import nn
from glassgrad.utils.data import DataLoader

DTYPE_NAMES = ["float", "float32", "float64", "double", "half", "float16", "long", "int64",
               "int", "int32", "int16", "short", "int8", "uint8", "bool"]


def dtype_name(dtype) -> str:
    """'float32' for gg.float32, np.dtype('float32') or torch.float32."""
    return str(dtype).removeprefix("torch.") if "torch" in str(dtype) else np.dtype(dtype).name


@pytest.fixture
def default_float32(torch):
    """Restores both libraries' default dtype after a test that changes it."""
    yield
    gg.set_default_dtype(gg.float32)
    torch.set_default_dtype(torch.float32)


# --------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("name", DTYPE_NAMES)
def test_dtype_attributes_name_torchs_dtypes(torch, name):
    assert dtype_name(getattr(gg, name)) == dtype_name(getattr(torch, name))


def test_dtypes_compare_equal_to_numpys_and_to_a_tensors_dtype():
    assert gg.float32 == np.float32 and gg.float == np.float32 and gg.long == np.int64
    assert gg.zeros(2).dtype == gg.float32 and gg.tensor([1]).dtype == gg.long
    assert gg.tensor([True]).dtype == gg.bool and gg.tensor([1.0]).dtype != gg.float64


def test_default_dtype_decides_python_floats_and_float_creation(torch, default_float32):
    for lib in (gg, torch):
        lib.set_default_dtype(lib.float64)
        assert dtype_name(lib.get_default_dtype()) == "float64"
        made = [lib.tensor([1.5]), lib.zeros(2), lib.rand(2), lib.arange(0.0, 1.0, 0.5),
                lib.linspace(0, 1, 3), lib.tensor([1])]
        assert [dtype_name(t.dtype) for t in made] == ["float64"] * 5 + ["int64"]


@pytest.mark.parametrize("bad", [gg.int64, "int32", gg.bool])
def test_set_default_dtype_refuses_non_floats_and_keeps_the_default(torch, bad):
    with pytest.raises(TypeError, match="only floating-point types"):
        gg.set_default_dtype(bad)
    assert gg.get_default_dtype() is gg.float32 and gg.zeros(1).dtype == np.float32
    with pytest.raises((TypeError, AttributeError)):
        torch.set_default_dtype(getattr(torch, bad) if isinstance(bad, str) else torch.int64)


# --------------------------------------------------------------------------- devices
@pytest.mark.parametrize("spec", [("cpu",), ("cpu:0",), ("cuda",), ("cuda", 1), ("mps",)])
def test_device_objects_match_torchs(torch, spec):
    ours, theirs = gg.device(*spec), torch.device(*spec)
    assert (repr(ours), str(ours), ours.type, ours.index) == (
        repr(theirs), str(theirs), theirs.type, theirs.index)
    assert ours == gg.device(*spec) and ours != gg.device("meta")


def test_tensors_live_on_the_cpu_and_no_gpu_is_available(torch):
    x = gg.ones(2)
    assert x.device == gg.device("cpu") and str(x.device) == str(torch.ones(2).device) == "cpu"
    assert x.cpu() is x and not x.is_cuda
    assert gg.cuda.is_available() is False and gg.cuda.device_count() == 0
    device = "cuda" if gg.cuda.is_available() else "cpu"
    assert gg.zeros(2, device=device).to(device).device == gg.device("cpu")
    gg.set_default_device("cpu")
    assert gg.get_default_device() == gg.device("cpu")


@pytest.mark.parametrize("call", [
    lambda: gg.zeros(2, device="cuda"),
    lambda: gg.tensor([1.0], device="cuda:0"),
    lambda: gg.arange(3, device=gg.device("mps")),
    lambda: gg.randn(2, device="cuda"),
    lambda: gg.ones(2).to("cuda"),
    lambda: gg.ones(2).to(gg.device("cuda", 0), gg.float64),
    lambda: gg.ones(2).cuda(),
    lambda: gg.set_default_device("cuda"),
])
def test_a_gpu_request_is_refused_naming_the_cpu(call):
    with pytest.raises(RuntimeError, match="glassgrad runs on the CPU only.*only device is 'cpu'"):
        call()


@pytest.mark.parametrize("spec, error", [("foo", RuntimeError), ("cuda:x", RuntimeError),
                                         (3, TypeError)])
def test_device_refuses_what_torch_refuses(torch, spec, error):
    with pytest.raises(error, match="device"):
        gg.device(spec)
    with pytest.raises((RuntimeError, TypeError)):
        torch.device(spec + "x" if spec == "cuda:x" else spec)


# --------------------------------------------------------------------------- creation
CREATIONS = {
    "zeros(2, 3)": lambda t: t.zeros(2, 3),
    "zeros((2, 3), float64)": lambda t: t.zeros((2, 3), dtype=t.float64),
    "zeros(size=[4])": lambda t: t.zeros(size=[4]),
    "ones(3, long)": lambda t: t.ones(3, dtype=t.long),
    "ones(2, 1, bool)": lambda t: t.ones([2, 1], dtype=t.bool),
    "ones(0)": lambda t: t.ones(0),
    "full int": lambda t: t.full((2, 2), 7),
    "full float": lambda t: t.full((2,), 1.5),
    "full bool": lambda t: t.full((3,), True),
    "full dtype": lambda t: t.full([2], 3, dtype=t.float64),
    "arange(5)": lambda t: t.arange(5),
    "arange(1, 4, 0.5)": lambda t: t.arange(1, 4, 0.5),
    "arange(0, 1, 0.1)": lambda t: t.arange(0, 1, 0.1),
    "arange(10, 0, -3)": lambda t: t.arange(10, 0, -3),
    "arange(end=3.0)": lambda t: t.arange(3.0),
    "arange float64": lambda t: t.arange(4, dtype=t.float64),
    "linspace(-1, 1, 7)": lambda t: t.linspace(-1, 1, 7),
    "linspace(0, 1, 1)": lambda t: t.linspace(0, 1, steps=1),
    "linspace(0, 10, 4, float64)": lambda t: t.linspace(0, 10, 4, dtype=t.float64),
    "eye(3)": lambda t: t.eye(3),
    "eye(2, 4, int64)": lambda t: t.eye(2, 4, dtype=t.int64),
    "zeros_like int": lambda t: t.zeros_like(t.ones(2, dtype=t.int64)),
    "ones_like float64": lambda t: t.ones_like(t.zeros(2, 2), dtype=t.float64),
    "full_like": lambda t: t.full_like(t.zeros(3), 2.5),
    "tensor ints": lambda t: t.tensor([1, 2]),
    "tensor float64": lambda t: t.tensor([[1.5]], dtype=t.float64),
    "tensor bool": lambda t: t.tensor(True),
    "tensor of float64 array": lambda t: t.tensor(np.array([1.0, 2.0])),
    "as_tensor list": lambda t: t.as_tensor([1.0, 2.0]),
    "as_tensor dtype": lambda t: t.as_tensor(np.arange(3), dtype=t.float32),
}


@pytest.mark.parametrize("name", CREATIONS)
def test_creation_gives_torchs_values_dtype_and_shape(torch, name):
    ours, theirs = CREATIONS[name](gg), CREATIONS[name](torch)
    assert ours.shape == tuple(theirs.shape)
    assert dtype_name(ours.dtype) == dtype_name(theirs.dtype)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["empty", "rand", "randn"])
def test_shape_only_creations_match_torchs_shape_and_dtype(torch, name):
    for args, kw in (((2, 3), {}), (((4,),), {"dtype": "float64"})):
        kw_ours = {k: getattr(gg, v) for k, v in kw.items()}
        kw_theirs = {k: getattr(torch, v) for k, v in kw.items()}
        ours, theirs = getattr(gg, name)(*args, **kw_ours), getattr(torch, name)(*args, **kw_theirs)
        assert (ours.shape, dtype_name(ours.dtype)) == (tuple(theirs.shape),
                                                        dtype_name(theirs.dtype))


def test_requires_grad_makes_a_leaf_that_learns():
    w = gg.zeros(3, requires_grad=True)
    (w * gg.arange(3.0)).sum().backward()
    assert w.is_leaf and w.grad.tolist() == [0.0, 1.0, 2.0]
    assert gg.ones(2, requires_grad=False).requires_grad is False


def test_as_tensor_shares_memory_where_torch_does(torch):
    arr = np.zeros(3, dtype=np.float32)
    ours, theirs = gg.as_tensor(arr), torch.as_tensor(arr)
    arr[0] = 5.0
    assert ours[0].item() == theirs[0].item() == 5.0
    t = gg.ones(2)
    assert gg.as_tensor(t) is t and gg.as_tensor(t, dtype=gg.float64).dtype == np.float64


def test_is_tensor_and_numel_match_torch(torch):
    for lib in (gg, torch):
        x = lib.zeros(2, 3, 4)
        assert lib.is_tensor(x) and not lib.is_tensor(x.numpy()) and not lib.is_tensor(3)
        assert lib.numel(x) == x.numel() == 24
    assert gg.is_tensor(nn.Parameter(gg.zeros(1)))


@pytest.mark.parametrize("call, error, words", [
    (lambda t: t.zeros(-1, 2), RuntimeError, "negative dimension"),
    (lambda t: t.zeros(2.5), TypeError, "size must be ints"),
    (lambda t: t.ones((2, "3")), TypeError, "size must be ints"),
    (lambda t: t.zeros(2, dtype="floot"), TypeError, "not a dtype"),
    (lambda t: t.arange(0, 5, 0), RuntimeError, "step must be nonzero"),
    (lambda t: t.arange(5, 0, 1), RuntimeError, "inconsistent with step sign"),
    (lambda t: t.linspace(0, 1, -1), RuntimeError, "steps must be a non-negative int"),
    (lambda t: t.randint(5, 2, (3,)), RuntimeError, "less than"),
    (lambda t: t.tensor([1, 2], requires_grad=True), (TypeError, RuntimeError), "floating"),
    (lambda t: t.normal(0.0, -1.0, size=(2,)), RuntimeError, "std must be >= 0"),
    (lambda t: t.randn(2, generator="seven"), TypeError, "generator"),
    (lambda t: t.manual_seed("seven"), TypeError, "seed must be an int"),
])
def test_bad_creation_arguments_are_refused_like_torch(torch, call, error, words):
    with pytest.raises(error, match=words):
        call(gg)
    with pytest.raises(Exception):  # noqa: B017 - PyTorch's types vary; it refuses too
        call(torch)


def test_out_is_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"out= is not supported.*x = zeros\(\.\.\.\)"):
        gg.zeros(2, out=gg.zeros(2))


# --------------------------------------------------------------------------- random
RANDOM = {
    "rand": lambda t: t.rand(3, 4),
    "randn": lambda t: t.randn((5,), dtype=t.float64),
    "randint(high, size)": lambda t: t.randint(10, (3, 2)),
    "randint(low, high, size)": lambda t: t.randint(-3, 3, size=(6,)),
    "randperm": lambda t: t.randperm(7),
    "normal floats": lambda t: t.normal(2.0, 0.5, size=(4,)),
    "normal tensors": lambda t: t.normal(t.zeros(3, 1), t.ones(1, 2)),
    "normal mean tensor": lambda t: t.normal(t.arange(3.0), 1.0),
    "rand_like": lambda t: t.rand_like(t.zeros(2, dtype=t.float64)),
    "randn_like": lambda t: t.randn_like(t.zeros(3)),
}


@pytest.mark.parametrize("name", RANDOM)
def test_random_functions_match_torchs_shape_and_dtype_and_reproduce(torch, name):
    theirs = RANDOM[name](torch)
    gg.manual_seed(3)
    ours = RANDOM[name](gg)
    assert (ours.shape, dtype_name(ours.dtype)) == (tuple(theirs.shape), dtype_name(theirs.dtype))
    again = RANDOM[name](gg)
    gg.manual_seed(3)
    assert np.array_equal(RANDOM[name](gg).numpy(), ours.numpy())
    assert not np.array_equal(again.numpy(), ours.numpy())  # the stream moved on


def test_random_values_lie_where_they_should():
    gg.manual_seed(0)
    u, k = gg.rand(10_000).numpy(), gg.randint(-3, 4, (10_000,)).numpy()
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.02
    assert set(np.unique(k)) == set(range(-3, 4))
    assert sorted(gg.randperm(50).tolist()) == list(range(50))
    z = gg.normal(2.0, 3.0, size=(20_000,)).numpy()
    assert abs(z.mean() - 2.0) < 0.1 and abs(z.std() - 3.0) < 0.1


def test_manual_seed_equals_generator_and_seed_keywords():
    gg.manual_seed(11)
    a = gg.randn(4)
    assert np.array_equal(a.numpy(), gg.randn(4, generator=11).numpy())
    assert np.array_equal(a.numpy(), gg.randn(4, seed=11).numpy())  # glassgrad's old keyword
    g = np.random.default_rng(11)
    assert np.array_equal(a.numpy(), gg.randn(4, generator=g).numpy())
    with pytest.raises(TypeError, match="generator= or seed=, not both"):
        gg.randn(2, generator=1, seed=1)


def run_program():
    """Weights, an initializer, dropout and shuffling, all from the global generator."""
    layer = nn.Linear(4, 3)
    extra = nn.init.normal_(gg.zeros(5))
    dropped = nn.Dropout(0.5)(gg.ones(8))
    order = [b.tolist() for b in DataLoader(list(range(10)), batch_size=5, shuffle=True)]
    return layer.weight.numpy().copy(), extra.numpy(), dropped.numpy(), order


def test_manual_seed_makes_a_program_reproducible_run_to_run():
    gg.manual_seed(42)
    first = run_program()
    gg.manual_seed(42)
    second = run_program()
    third = run_program()  # no reseed: fresh numbers
    for a, b, c in zip(first[:3], second[:3], third[:3]):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    assert first[3] == second[3]


# --------------------------------------------------------------------------- conversions
CONVERSIONS = {
    "to(float64)": lambda x, t: x.to(t.float64),
    "to(device, dtype)": lambda x, t: x.to("cpu", t.float64),
    "to(keywords)": lambda x, t: x.to(device="cpu", dtype=t.float16, non_blocking=True),
    "to(other)": lambda x, t: x.to(t.zeros(1, dtype=t.float64)),
    "double()": lambda x, t: x.double(),
    "float()": lambda x, t: x.double().float(),
    "half()": lambda x, t: x.half(),
    "long()": lambda x, t: x.long(),
    "int()": lambda x, t: x.int(),
    "bool()": lambda x, t: x.bool(),
    "type(float64)": lambda x, t: x.type(t.float64),
    "type('torch.DoubleTensor')": lambda x, t: x.type("torch.DoubleTensor"),
}


@pytest.mark.parametrize("name", CONVERSIONS)
def test_conversions_match_torch_and_float_casts_pass_the_gradient_back(torch, name):
    data = np.array([[-1.5, 0.0], [2.25, 3.0]], dtype=np.float32)
    xg, xt = gg.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    ours, theirs = CONVERSIONS[name](xg, gg), CONVERSIONS[name](xt, torch)
    assert dtype_name(ours.dtype) == dtype_name(theirs.dtype)
    np.testing.assert_array_equal(ours.numpy(), theirs.detach().numpy())
    assert ours.requires_grad == theirs.requires_grad
    if theirs.requires_grad:
        weights = np.array([[1.0, 2.0], [3.0, 4.0]])
        (ours * gg.tensor(weights, dtype=ours.dtype)).sum().backward()
        (theirs * torch.tensor(weights, dtype=theirs.dtype)).sum().backward()
        assert xg.grad.dtype == np.float32
        np.testing.assert_array_equal(xg.grad.numpy(), xt.grad.numpy())


def test_to_returns_self_unless_something_changes_or_copy_is_asked(torch):
    for lib in (gg, torch):
        x = lib.ones(3)
        assert x.to("cpu") is x and x.to(lib.float32) is x and x.to(x) is x
        copied = x.to(lib.float32, copy=True)
        assert copied is not x
        copied[0:1].numpy()[...] = 7.0  # writes the copy's memory only
        assert x[0].item() == 1.0


def test_type_names_match_torch(torch):
    for name in ("float32", "float64", "int64", "int32", "bool", "uint8", "float16"):
        assert gg.zeros(1, dtype=getattr(gg, name)).type() == torch.zeros(
            1, dtype=getattr(torch, name)).type()


@pytest.mark.parametrize("call, error, words", [
    (lambda x: x.to(object()), TypeError, "neither a device nor a dtype"),
    (lambda x: x.to(colour="red"), TypeError, "unexpected keyword 'colour'"),
    (lambda x: x.type("torch.Fancy"), TypeError, "not a dtype"),
])
def test_bad_conversions_are_refused(call, error, words):
    x = gg.ones(2)
    with pytest.raises(error, match=words):
        call(x)
    assert x.dtype == np.float32

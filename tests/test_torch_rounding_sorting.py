"""floor/ceil/round/trunc, ``//`` and ``%``, sort/argsort/topk: values, dtypes and
gradients against PyTorch."""

import numpy as np
import pytest

import glassgrad as gg

A = np.array([[5.5, -3.25, 7.0, 0.5], [-2.5, 1.5, -0.75, 2.5]])
B = np.array([[2.0, 2.0, -4.0, 0.3], [1.5, -2.0, 0.5, 2.0]])


@pytest.mark.parametrize("name", ["floor", "ceil", "round", "trunc"])
def test_rounding_matches_torch_and_passes_no_gradient(torch, name):
    ours = getattr(gg.tensor(A), name)()
    theirs = getattr(torch.tensor(A), name)()
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    np.testing.assert_array_equal(getattr(gg, name)(gg.tensor(A)).numpy(), theirs.numpy())
    x = gg.tensor(A, requires_grad=True)
    assert not getattr(gg, name)(x).requires_grad  # derivative 0: nothing flows


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_floor_divide_and_remainder_values_and_dtypes(torch, dtype):
    a, b = (A * 4).astype(dtype), np.where(B == 0, 1, B * 4).astype(dtype)
    b = np.where(b == 0, 3, b).astype(dtype)
    for ours, theirs in (
        (gg.tensor(a) // gg.tensor(b), torch.tensor(a) // torch.tensor(b)),
        (gg.tensor(a) % gg.tensor(b), torch.tensor(a) % torch.tensor(b)),
        (gg.tensor(a) // 3, torch.tensor(a) // 3),
        (7 % gg.tensor(b), 7 % torch.tensor(b)),
    ):
        assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch.")
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_remainder_gradients_are_torchs(torch):
    x, y = gg.tensor(A, requires_grad=True), gg.tensor(B, requires_grad=True)
    (x % y * gg.tensor(A)).sum().backward()
    tx, ty = torch.tensor(A, requires_grad=True), torch.tensor(B, requires_grad=True)
    (tx % ty * torch.tensor(A)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    np.testing.assert_allclose(y.grad.numpy(), ty.grad.numpy())


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_and_argsort_match_torch_with_gradients(torch, dim, descending):
    data = np.array([[3.0, 1.0, 4.0, 1.0], [5.0, 9.0, 2.0, 6.0]])
    x = gg.tensor(data, requires_grad=True)
    values, indices = x.sort(dim=dim, descending=descending)
    t = torch.tensor(data, requires_grad=True)
    tv, ti = t.sort(dim=dim, descending=descending, stable=True)
    np.testing.assert_array_equal(values.detach().numpy(), tv.detach().numpy())
    np.testing.assert_array_equal(indices.numpy(), ti.numpy())
    theirs = torch.argsort(t, dim=dim, descending=descending, stable=True)
    np.testing.assert_array_equal(gg.argsort(x, dim, descending).numpy(), theirs.numpy())
    weights = np.arange(data.size, dtype=float).reshape(data.shape)
    (values * gg.tensor(weights)).sum().backward()
    (tv * torch.tensor(weights)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())


@pytest.mark.parametrize(("k", "dim", "largest"), [(2, -1, True), (1, 0, True), (3, 1, False)])
def test_topk_matches_torch_with_gradients(torch, k, dim, largest):
    data = np.array([[3.0, 1.0, 4.0, 1.5], [5.0, 9.0, 2.0, 6.0]])
    x, t = gg.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    ours, theirs = x.topk(k, dim=dim, largest=largest), t.topk(k, dim=dim, largest=largest)
    np.testing.assert_array_equal(ours.values.detach().numpy(), theirs.values.detach().numpy())
    np.testing.assert_array_equal(ours.indices.numpy(), theirs.indices.numpy())
    ours.values.sum().backward()
    theirs.values.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), t.grad.numpy())
    with pytest.raises(RuntimeError, match="topk: k=5 is out of range for dimension 1 of size 4"):
        gg.topk(gg.tensor(data), 5, dim=1)

"""PyTorch's shape API (size(), view, expand, repeat, chunk, split, gather, masked_fill,
indexing with tensors, ...) compared with PyTorch: values, shapes, gradients and refusals."""

import numpy as np
import pytest

import glassgrad as gg

DATA = np.random.default_rng(0).standard_normal((3, 4))
IDX = np.array([[0, 3], [1, 1], [2, 0]])  # for gather along dim 1 (a repeat in row 1)


def compare(torch, fn, data=DATA):
    """fn on a glassgrad and a torch leaf holding ``data``: the same outputs (one or a
    tuple) and, after backward of Σ vᵢ·outᵢ for random v, the same gradient."""
    xg, xt = gg.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
    outs_g, outs_t = fn(xg, gg), fn(xt, torch)
    if not isinstance(outs_t, tuple | list):
        outs_g, outs_t = (outs_g,), (outs_t,)
    assert len(outs_g) == len(outs_t)
    rng = np.random.default_rng(1)
    total_g, total_t = 0, 0
    for og, ot in zip(outs_g, outs_t):
        assert og.shape == tuple(ot.shape) and og.dtype == np.float64
        np.testing.assert_allclose(og.numpy(), ot.detach().numpy(), rtol=1e-12)
        v = rng.standard_normal(og.shape)
        total_g = total_g + (og * gg.tensor(v)).sum()
        total_t = total_t + (ot * torch.tensor(v)).sum()
    total_g.backward()
    total_t.backward()
    np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------- size
def test_size_is_a_callable_returning_a_size_tuple(torch):
    x, t = gg.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    assert x.size() == tuple(t.size()) == (2, 3, 4) and isinstance(x.size(), gg.Size | tuple)
    assert [x.size(d) for d in (0, 1, 2, -1, -3)] == [t.size(d) for d in (0, 1, 2, -1, -3)]
    assert x.size()[1:] == (3, 4) and isinstance(x.size()[1:], gg.Size)
    assert x.size().numel() == t.size().numel() == 24 and repr(x.size()) == "Size([2, 3, 4])"
    assert (x.numel(), x.dim(), x.ndimension()) == (t.numel(), t.dim(), t.ndimension())
    assert x.shape == x.size() and gg.tensor(5.0).size() == ()


@pytest.mark.parametrize("dim", [3, -4, 1.0])
def test_size_of_a_missing_dimension_is_an_index_error(torch, dim):
    with pytest.raises(IndexError, match=r"size: dimension out of range.*\[-3, 2\]"):
        gg.zeros(2, 3, 4).size(dim)
    with pytest.raises((IndexError, TypeError)):
        torch.zeros(2, 3, 4).size(dim)


# --------------------------------------------------------------------------- views
VIEWS = {
    "view(4, 3)": lambda x, t: x.view(4, 3),
    "view(-1)": lambda x, t: x.view(-1),
    "view((2, -1, 2))": lambda x, t: x.view((2, -1, 2)),
    "view_as": lambda x, t: x.view_as(t.zeros(6, 2)),
    "reshape_as": lambda x, t: x.T.reshape_as(t.zeros(2, 6)),
    "expand": lambda x, t: x[:, :1].expand(3, 5),
    "expand(-1) and a new dim": lambda x, t: x[:1].expand(2, -1, 4),
    "expand_as": lambda x, t: x[1].expand_as(t.zeros(2, 3, 4)),
    "repeat(2, 1)": lambda x, t: x.repeat(2, 1),
    "repeat(2, 1, 3)": lambda x, t: x.repeat(2, 1, 3),
    "repeat((1, 2))": lambda x, t: x[0].repeat((1, 2)),
    "contiguous after T": lambda x, t: x.T.contiguous().view(-1),
    "chunk(2)": lambda x, t: x.chunk(2),
    "chunk(3, dim=1)": lambda x, t: x.chunk(3, dim=1),
    "chunk(5, 1) gives fewer": lambda x, t: x.chunk(5, 1),
    "split(2, 1)": lambda x, t: x.split(2, 1),
    "split([1, 2])": lambda x, t: x.split([1, 2]),
    "split 3 of 4": lambda x, t: t.split(x, 3, dim=-1),
    "unbind(1)": lambda x, t: x.unbind(1),
    "gg.chunk / torch.chunk": lambda x, t: t.chunk(x, 2, 1),
    "narrow": lambda x, t: x.narrow(1, 1, 2),
    "narrow negative start": lambda x, t: t.narrow(x, 0, -2, 2),
    "flip(0)": lambda x, t: x.flip(0),
    "flip([0, 1])": lambda x, t: t.flip(x, [0, 1]),
    "gather(1)": lambda x, t: x.gather(1, t.tensor(IDX)),
    "gather(0)": lambda x, t: t.gather(x, 0, t.tensor([[2, 0, 1, 1], [2, 2, 0, 1]])),
    "gather smaller index": lambda x, t: x.gather(1, t.tensor([[3], [0]])),
    "index_select(1)": lambda x, t: x.index_select(1, t.tensor([3, 0, 3])),
    "index_select(0)": lambda x, t: t.index_select(x, 0, t.tensor([2])),
    "masked_fill": lambda x, t: x.masked_fill(x > 0.5, -1.0),
    "masked_fill broadcast mask": lambda x, t: x.masked_fill(t.tensor([True, False, False,
                                                                       True]), 2.0),
    "masked_fill 0-d tensor": lambda x, t: t.masked_fill(x, x < 0, t.tensor(0.25)),
    "masked_fill larger mask": lambda x, t: x.masked_fill(t.tensor([[[True]], [[False]]]), 0.0),
    "scatter_add": lambda x, t: x.scatter_add(1, t.tensor(IDX), x[:, :2] * 2),
    "x[int tensor]": lambda x, t: x[t.tensor([2, 0, 2])],
    "x[:, int tensor]": lambda x, t: x[:, t.tensor([1, 1, 3])],
    "x[bool mask]": lambda x, t: x[x > 0],
    "x[row mask]": lambda x, t: x[t.tensor([True, False, True])],
    "x[int tensor, int tensor]": lambda x, t: x[t.tensor([0, 2]), t.tensor([3, 3])],
}


@pytest.mark.parametrize("name", VIEWS)
def test_shape_methods_match_torch_values_and_gradients(torch, name):
    compare(torch, VIEWS[name])


def test_view_shares_memory_and_expand_does_not_copy():
    x = gg.zeros(3, 4)
    v, e = x.view(12), x[:1].expand(5, 4)
    x.numpy()[0, 1] = 7.0
    assert v[1].item() == 7.0 and e[4, 1].item() == 7.0
    assert np.shares_memory(e.numpy(), x.numpy())


def test_contiguous_is_the_same_tensor_when_already_contiguous():
    x = gg.zeros(3, 4)
    assert x.contiguous() is x
    assert x.T.contiguous().numpy().flags.c_contiguous


@pytest.mark.parametrize("shape", [(4, 3), (2, 2, 3), (12,), (3, 2, 2), (2, 6), (4, 1, 3)])
def test_view_after_a_transpose_is_refused_exactly_where_torch_refuses(torch, shape):
    ours, theirs = gg.tensor(DATA).T, torch.tensor(DATA).T
    try:
        expected = theirs.view(*shape).numpy()
    except RuntimeError:
        with pytest.raises(RuntimeError, match=r"view: view size .* not compatible.*reshape"):
            ours.view(*shape)
    else:
        np.testing.assert_array_equal(ours.view(*shape).numpy(), expected)


@pytest.mark.parametrize("call, error, words", [
    (lambda x: x.view(5, -1), RuntimeError, r"shape \[5, -1\] is invalid for input of size 12"),
    (lambda x: x.view(-1, -1), RuntimeError, "at most one -1"),
    (lambda x: x.view(2, 2), RuntimeError, r"invalid for input of size 12 \(shape \[3, 4\]\)"),
    (lambda x: x.view(2.0, 6), TypeError, "sizes must be ints"),
    (lambda x: x.expand(3, 5), RuntimeError, r"expanded size .* \(5\) must match the existing "
                                             r"size \(4\) at non-singleton dimension 1"),
    (lambda x: x.expand(4), RuntimeError, "number of sizes provided"),
    (lambda x: x.expand(-1, -1, 4), RuntimeError, "must match"),
    (lambda x: x.repeat(2), RuntimeError, "can not be smaller than the number of dimensions"),
    (lambda x: x.split([1, 1]), RuntimeError, r"sum exactly to 3 .*split_sizes=\[1, 1\]"),
    (lambda x: x.split(0), RuntimeError, "split_size must be a positive"),
    (lambda x: x.chunk(0), RuntimeError, "chunks must be a positive"),
    (lambda x: x.unbind(2), IndexError, "unbind: dimension out of range"),
    (lambda x: x.narrow(1, 3, 2), IndexError, r"start \(3\) \+ length \(2\) exceeds"),
    (lambda x: x.flip(2), IndexError, "flip: dimension out of range"),
])
def test_bad_shapes_are_refused_like_torch(torch, call, error, words):
    x = gg.tensor(DATA)
    with pytest.raises(error, match=words):
        call(x)
    with pytest.raises((RuntimeError, IndexError, TypeError)):
        call(torch.tensor(DATA))


@pytest.mark.parametrize("make_index, error, words", [
    (lambda t: t.tensor([[0, 4], [1, 1], [2, 0]]), IndexError,
     r"gather: index 4 is out of bounds for dimension 1 with size 4 \(input shape \[3, 4\]\)"),
    (lambda t: t.tensor([[0, -5], [1, 1], [2, 0]]), IndexError, "index -5 is out of bounds"),
    (lambda t: t.tensor([[0.0, 1.0]] * 3), TypeError, "integer .* index, got dtype float"),
    (lambda t: t.tensor([0, 1, 2]), RuntimeError, "same number of dimensions"),
    (lambda t: t.tensor([[0, 1]] * 4), RuntimeError, r"size of index \[4, 2\] does not match"),
])
def test_bad_gather_index_is_refused_naming_op_and_shapes(torch, make_index, error, words):
    with pytest.raises(error, match=words):
        gg.tensor(DATA).gather(1, make_index(gg))
    with pytest.raises(RuntimeError):
        torch.tensor(DATA).gather(1, make_index(torch))


@pytest.mark.parametrize("call, error, words", [
    (lambda x, t: x.masked_fill(t.tensor([1, 0, 0, 1]), 0.0), RuntimeError,
     "only supports boolean masks, but got mask with dtype int64"),
    (lambda x, t: x.masked_fill(t.ones(3, dtype=t.bool), 0.0), RuntimeError,
     r"mask of shape \[3\] does not broadcast with the tensor's shape \[3, 4\]"),
    (lambda x, t: x.index_select(1, t.tensor([4])), IndexError,
     "index_select: index 4 is out of bounds for dimension 1 with size 4"),
    (lambda x, t: x.index_select(0, t.tensor([[0]])), RuntimeError, "index must be 1-D"),
])
def test_bad_masks_and_indices_are_refused_like_torch(torch, call, error, words):
    with pytest.raises(error, match=words):
        call(gg.tensor(DATA), gg)
    with pytest.raises((RuntimeError, IndexError)):
        call(torch.tensor(DATA), torch)


def test_gather_has_a_second_derivative_like_torch(torch):
    """gather's backward is index_add, itself differentiable: grad of grad flows."""
    def second(lib, x):
        y = (x.gather(1, lib.tensor(IDX)) ** 3).sum()
        (g,) = lib.autograd.grad(y, x, create_graph=True) if lib is torch else gg.grad(
            y, x, create_graph=True)
        return (g * g).sum()

    xg, xt = gg.tensor(DATA, requires_grad=True), torch.tensor(DATA, requires_grad=True)
    second(gg, xg).backward()
    second(torch, xt).backward()
    np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), rtol=1e-12)


def test_the_gather_op_is_in_the_table_with_its_formula():
    op = gg.OPS["gather"]
    assert "scatter-added" in op.formula and op.kind == "custom" and op.cases
    out = gg.tensor(DATA, requires_grad=True).gather(1, gg.tensor(IDX))
    assert out.op == "gather"

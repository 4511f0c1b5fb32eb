"""scatter / scatter_ (overwriting, src tensor or a number, reduce=), scatter_add(_),
index_add(_) and index_select: values and gradients against PyTorch 2.13."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import glassgrad as gg

X = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7 - 1
S = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 5 + 2
G = np.cos(np.arange(24, dtype=np.float32)).reshape(2, 3, 4)  # weights the output


def _run(lib, call):
    x = lib.tensor(X, requires_grad=True)
    s = lib.tensor(S, requires_grad=True)
    out = call(lib, x * 1, s)  # (x * 1: the in-place forms write into a computed tensor)
    (out * lib.tensor(G[tuple(slice(0, n) for n in out.shape)])).sum().backward()
    return [out.detach().numpy(), x.grad.numpy(),
            s.grad.numpy() if s.grad is not None else np.zeros_like(S)]


def _i(lib, rows):
    return lib.tensor(np.array(rows, dtype=np.int64))


I1 = [[[0, 3, 1, 1], [2, 2, 0, 3]], [[1, 0, 3, 2], [0, 0, 0, 0]]]  # dim=2, repeats included
I0 = [[[1, 0, 1, 0]], [[0, 0, 1, 1]]]  # dim=0, (2, 1, 4)


def _r(s, rows):
    """src cut to the index's shape: PyTorch 2.13's scatter backward returns a gradient of
    the index's shape for a larger src, and then refuses it (glassgrad pads it with 0s)."""
    return s[tuple(slice(0, n) for n in np.shape(rows))]

CALLS = {
    "scatter dim=2 src, repeated index": lambda lib, x, s: lib.scatter(x, 2, _i(lib, I1),
                                                                       _r(s, I1)),
    "scatter dim=-1 method": lambda lib, x, s: x.scatter(-1, _i(lib, I1), _r(s, I1)),
    "scatter dim=0": lambda lib, x, s: x.scatter(0, _i(lib, I0), _r(s, I0)),
    "scatter dim=1": lambda lib, x, s: x.scatter(1, _i(lib, I0[::-1]), _r(s, I0)),
    "scatter a number": lambda lib, x, s: x.scatter(2, _i(lib, I1), 0.5),
    "scatter value=": lambda lib, x, s: lib.scatter(x, 2, _i(lib, I1), value=-2.0),
    "scatter_ src": lambda lib, x, s: x.scatter_(2, _i(lib, I1), _r(s, I1)),
    "scatter_ a number": lambda lib, x, s: x.scatter_(0, _i(lib, I0), 3.0),
    "scatter_add": lambda lib, x, s: lib.scatter_add(x, 2, _i(lib, I1), _r(s, I1)),
    "scatter_add_": lambda lib, x, s: x.scatter_add_(0, _i(lib, I0), _r(s, I0)),
    "index_add dim=1": lambda lib, x, s: x.index_add(1, _i(lib, [2, 0, 2]), s),
    "index_add alpha": lambda lib, x, s: lib.index_add(x, 2, _i(lib, [3, 3, 0, 1]), s,
                                                       alpha=-1.5),
    "index_add_": lambda lib, x, s: x.index_add_(0, _i(lib, [1, 1]), s),
    "index_select": lambda lib, x, s: x.index_select(2, _i(lib, [3, 0, 3])) * s[:, :, :3],
}


@pytest.mark.parametrize("name", list(CALLS))
def test_values_and_gradients_are_torchs(torch, name):
    for o, t in zip(_run(gg, CALLS[name]), _run(torch, CALLS[name])):
        np.testing.assert_allclose(o, t, rtol=1e-6, atol=1e-6)


def test_repeated_index_last_write_wins_and_every_repeat_gets_the_gradient(torch):
    """The values PyTorch's CPU scatter writes (the last repeat), and its gradient rule
    (G gathered at the index: each repeat gets the gradient of its place)."""
    def run(lib):
        src = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        out = lib.zeros(4).scatter(0, lib.tensor([1, 1, 1]), src)
        (out * lib.tensor([1.0, 10.0, 100.0, 1000.0])).sum().backward()
        return out.detach().numpy(), src.grad.numpy()

    (ours, ours_grad), (theirs, theirs_grad) = run(gg), run(torch)
    np.testing.assert_array_equal(ours, [0.0, 3.0, 0.0, 0.0])
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(ours_grad, [10.0, 10.0, 10.0])
    np.testing.assert_array_equal(ours_grad, theirs_grad)


def test_a_src_larger_than_the_index_gets_zeros_where_it_was_not_read():
    s = gg.tensor(S, requires_grad=True)
    gg.scatter(gg.tensor(X), 2, _i(gg, [[[1]], [[2]]]), s).sum().backward()
    expected = np.zeros_like(S)
    expected[:, 0, 0] = 1.0
    np.testing.assert_array_equal(s.grad.numpy(), expected)


@pytest.mark.parametrize("reduce", ["add", "multiply"])
def test_reduce_gives_torchs_values_and_refuses_backward_as_torch(torch, reduce):
    results = []
    for lib in (gg, torch):
        x, s = lib.tensor(X, requires_grad=True), lib.tensor(S)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = x.scatter(2, _i(lib, I1), s, reduce=reduce)
        results.append(out.detach().numpy())
        if lib is gg:  # (PyTorch's own warning is issued once per process, from C++)
            assert any("scatter_reduce" in str(w.message) for w in caught)
        with pytest.raises(RuntimeError, match="derivative for aten::scatter"):
            out.sum().backward()
    np.testing.assert_allclose(results[0], results[1], rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a number with reduce: no deprecation warning
        ours = gg.tensor(X).scatter(2, _i(gg, I1), 2.0, reduce=reduce).numpy()
    theirs = torch.tensor(X).scatter(2, _i(torch, I1), 2.0, reduce=reduce).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


BAD = [
    ("index out of range", lambda x: x.scatter(2, _i(gg, [[[4]]]), 1.0), IndexError,
     "index 4 is out of bounds for dimension 2 with size 4"),
    ("negative index", lambda x: x.scatter_add(0, _i(gg, [[[-3]]]), gg.tensor(S)), IndexError,
     "out of bounds"),
    ("float index", lambda x: x.scatter(1, gg.tensor([[[0.0]]]), 1.0), TypeError,
     "integer"),
    ("index of another rank", lambda x: x.scatter(1, _i(gg, [0, 1]), 1.0), RuntimeError,
     "same number of dimensions"),
    ("index larger than src", lambda x: x.scatter(2, _i(gg, [[[0, 1, 2]]]),
                                                  gg.tensor(S[:, :, :2])),
     RuntimeError, "smaller size than src"),
    ("src of another dtype", lambda x: x.scatter(2, _i(gg, I1),
                                                 gg.tensor(S, dtype=gg.float64)),
     RuntimeError, "self.dtype to be equal to src.dtype"),
    ("both src and value", lambda x: x.scatter(2, _i(gg, I1), gg.tensor(S), value=1.0),
     TypeError, "not both"),
    ("unknown reduce", lambda x: x.scatter(2, _i(gg, I1), 1.0, reduce="max"), RuntimeError,
     "'add' or 'multiply'"),
    ("index_add source shape", lambda x: x.index_add(1, _i(gg, [0, 1]), gg.tensor(S)),
     RuntimeError, r"must be \[2, 2, 4\]"),
    ("index_add index range", lambda x: x.index_add(0, _i(gg, [0, 2]), gg.tensor(S)),
     IndexError, "out of bounds"),
]


@pytest.mark.parametrize(("call", "error", "match"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_bad_arguments_are_refused_and_an_in_place_form_changes_nothing(call, error, match):
    x = gg.tensor(X)
    with pytest.raises(error, match=match):
        call(x)
    np.testing.assert_array_equal(x.numpy(), X)
    y = gg.tensor(X)
    inplace = {"scatter": "scatter_", "scatter_add": "scatter_add_", "index_add": "index_add_"}

    class Redirect:  # the same call through the in-place method of the same name
        def __getattr__(self, name):
            return getattr(y, inplace.get(name, name))

    with pytest.raises(error, match=match):
        call(Redirect())
    np.testing.assert_array_equal(y.numpy(), X)
    assert y._version == 0


def test_scatter_into_a_leaf_that_requires_grad_is_refused_in_place_only(torch):
    w = gg.tensor(X, requires_grad=True)
    assert w.scatter(2, _i(gg, I1), 0.0).requires_grad  # out of place: fine
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        w.scatter_(2, _i(gg, I1), 0.0)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        torch.tensor(X, requires_grad=True).scatter_(2, _i(torch, I1), 0.0)
    np.testing.assert_array_equal(w.numpy(), X)


def test_the_functions_are_torchs_names(torch):
    for name in ("scatter", "scatter_add", "index_add", "index_select"):
        assert callable(getattr(gg, name)) and callable(getattr(torch, name))
    for name in ("scatter", "scatter_", "scatter_add", "scatter_add_", "index_add",
                 "index_add_", "index_select"):
        assert callable(getattr(gg.Tensor, name)) and callable(getattr(torch.Tensor, name))

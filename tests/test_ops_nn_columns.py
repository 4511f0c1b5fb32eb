"""conv2d's forward hands its im2col columns to the weight's gradient (ops_nn._COLUMNS):
kept under the forward's own result, taken once, never kept past that result."""

import gc

import numpy as np

import glassgrad as gg
from glassgrad import ops_nn


def _grads(x, conv):
    conv.zero_grad()
    conv(x).square().sum().backward()
    return conv.weight.grad.numpy().copy()


def test_the_weight_gradient_is_the_same_with_and_without_the_kept_columns(monkeypatch):
    gg.manual_seed(0)
    x = gg.randn(2, 4, 7, 6)
    conv = gg.nn.Conv2d(4, 6, 3, stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
    kept = _grads(x, conv)
    monkeypatch.setattr(ops_nn, "_keep_columns", lambda *a: None)
    np.testing.assert_array_equal(_grads(x, conv), kept)


def test_columns_are_taken_once_and_dropped_with_their_result():
    gg.manual_seed(0)
    conv = gg.nn.Conv2d(1, 2, 3)
    x = gg.randn(1, 1, 5, 5)
    y = conv(x).sum()
    assert len(ops_nn._COLUMNS) == 1
    y.backward()
    assert not ops_nn._COLUMNS  # taken by the weight's gradient
    with gg.no_grad():
        conv(x)
    assert not ops_nn._COLUMNS  # nothing kept when no gradient can be asked for
    conv(x)  # kept (grad mode on), its result never used ...
    gc.collect()
    assert not ops_nn._COLUMNS  # ... and dropped with that result


def test_an_input_changed_between_calls_never_meets_old_columns():
    # Finite differences change the input array in place between forward calls: each
    # weight gradient must come from its own forward's windows.
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 6)).astype(np.float64)
    w = np.random.default_rng(1).standard_normal((3, 2, 3, 3))
    xt, wt = gg.tensor(x), gg.tensor(w, requires_grad=True)
    first = gg.ops_nn.conv2d(xt, wt, np.zeros(3))
    xt._data += 1.0
    second = gg.ops_nn.conv2d(xt, wt, np.zeros(3))
    second.sum().backward()
    expected = ops_nn._conv2d_weight(xt._data, np.ones((1, 3, 4, 4)), size=(3, 3))
    np.testing.assert_allclose(wt.grad.numpy(), expected)
    del first


def test_columns_kept_without_a_backward_stay_under_the_limit(monkeypatch):
    monkeypatch.setattr(ops_nn, "COLUMNS_LIMIT", 3 * 9 * 36 * 4 * 2)  # two (9, 36) float32
    gg.manual_seed(0)
    conv = gg.nn.Conv2d(3, 2, 3)
    kept = [conv(gg.randn(1, 3, 8, 8)) for _ in range(5)]  # predictions held, no backward
    assert len(ops_nn._COLUMNS) == 2  # the two newest; the older three were dropped
    sizes = [entry[1].nbytes for entry in ops_nn._COLUMNS.values()]
    assert sum(sizes) <= ops_nn.COLUMNS_LIMIT
    kept[-1].sum().backward()  # the newest still finds its columns ...
    assert len(ops_nn._COLUMNS) == 1
    kept[0].sum().backward()  # ... an evicted one recomputes them (same gradient either way)
    del kept
    gc.collect()
    assert not ops_nn._COLUMNS

"""nn.init: statistics match the formulas on large tensors; reproducible from a seed; in place."""

import math

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import nn
from glassgrad.nn import init

SHAPE = (400, 600)  # fan_in 600, fan_out 400: 240,000 samples, std known to ~0.3%
FAN_IN, FAN_OUT = SHAPE[1], SHAPE[0]


def _param():
    return nn.Parameter(np.zeros(SHAPE, np.float32))


@pytest.mark.parametrize("fill, mean, std, bound", [
    (lambda p: init.normal_(p, seed=0), 0.0, 1.0, None),
    (lambda p: init.normal_(p, mean=2.0, std=0.5, seed=0), 2.0, 0.5, None),
    (lambda p: init.uniform_(p, -3.0, 1.0, seed=0), -1.0, 4 / math.sqrt(12), (-3.0, 1.0)),
    (lambda p: init.xavier_uniform_(p, seed=0), 0.0, math.sqrt(2 / (FAN_IN + FAN_OUT)),
     math.sqrt(6 / (FAN_IN + FAN_OUT))),
    (lambda p: init.xavier_normal_(p, gain=2.0, seed=0), 0.0,
     2 * math.sqrt(2 / (FAN_IN + FAN_OUT)), None),
    (lambda p: init.kaiming_uniform_(p, nonlinearity="relu", seed=0), 0.0,
     math.sqrt(2 / FAN_IN), math.sqrt(6 / FAN_IN)),
    (lambda p: init.kaiming_normal_(p, nonlinearity="relu", seed=0), 0.0,
     math.sqrt(2 / FAN_IN), None),
    (lambda p: init.kaiming_normal_(p, mode="fan_out", nonlinearity="tanh", seed=0), 0.0,
     5 / 3 / math.sqrt(FAN_OUT), None),
    (lambda p: init.kaiming_uniform_(p, a=math.sqrt(5), seed=0), 0.0,
     1 / math.sqrt(3 * FAN_IN), 1 / math.sqrt(FAN_IN)),
])
def test_statistics_match_formulas(fill, mean, std, bound):
    p = _param()
    data = p._data
    assert fill(p) is p and p._data is data  # in place, returns its argument
    w = p.numpy().astype(np.float64)
    assert abs(w.mean() - mean) < 0.01 * std
    assert abs(w.std() - std) < 0.01 * std
    if bound is not None:
        lo, hi = bound if isinstance(bound, tuple) else (-bound, bound)
        assert lo <= w.min() and w.max() <= hi and w.max() > hi - 0.01 * (hi - lo)


@pytest.mark.parametrize("name", ["normal_", "uniform_", "xavier_uniform_", "xavier_normal_",
                                  "kaiming_uniform_", "kaiming_normal_"])
def test_reproducible_from_a_seed_or_generator(name):
    fn = getattr(init, name)
    a, b, c = _param(), _param(), _param()
    fn(a, seed=11)
    fn(b, seed=11)
    fn(c, seed=12)
    assert np.array_equal(a.numpy(), b.numpy()) and not np.array_equal(a.numpy(), c.numpy())
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    x, y = fn(_param(), seed=g1), fn(_param(), seed=g2)
    assert np.array_equal(x.numpy(), y.numpy())
    # a Generator advances: two draws from it differ
    assert not np.array_equal(fn(_param(), seed=g1).numpy(), x.numpy())


def test_constants():
    p = nn.Parameter(np.zeros((2, 3), np.float32))
    assert (init.constant_(p, 1.0).numpy() == 1).all()
    assert (init.zeros_(p).numpy() == 0).all()
    assert (init.ones_(p).numpy() == 1).all()
    arr = np.zeros(4)
    assert init.constant_(arr, 2.5) is arr and (arr == 2.5).all()  # arrays work too
    assert p.dtype == np.float32


@pytest.mark.parametrize("nl, param", [("linear", None), ("sigmoid", None), ("tanh", None),
                                       ("relu", None), ("leaky_relu", None),
                                       ("leaky_relu", 0.2), ("selu", None)])
def test_calculate_gain_matches_torch(nl, param, torch):
    assert init.calculate_gain(nl, param) == pytest.approx(torch.nn.init.calculate_gain(nl, param))


def test_fan_needs_a_matrix_and_errors_are_clear():
    with pytest.raises(ValueError, match=r"xavier_uniform_: .*at least 2 dimensions.*\(5,\)"):
        init.xavier_uniform_(nn.Parameter(np.zeros(5, np.float32)))
    with pytest.raises(ValueError, match="unknown nonlinearity 'gelu'"):
        init.kaiming_normal_(_param(), nonlinearity="gelu")
    with pytest.raises(ValueError, match="mode must be"):
        init.kaiming_normal_(_param(), mode="fan_avg")
    with pytest.raises(TypeError, match="expects a Tensor or a NumPy array"):
        init.normal_([1.0, 2.0])
    # fans of a conv-shaped weight include the receptive field, as PyTorch
    w4 = gg.tensor(np.zeros((8, 4, 3, 3), np.float32))
    assert init._calculate_fan_in_and_fan_out(w4) == (36, 72)

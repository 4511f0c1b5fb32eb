"""Small semantic gaps of issue #12, against PyTorch 2.13: the mean of an integer tensor,
softmax / log_softmax / softmin without ``dim``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.nn import functional as F

MEANS = {
    "x.mean()": lambda lib, x: x.mean(),
    "torch.mean(x)": lambda lib, x: lib.mean(x),
    "x.mean(0)": lambda lib, x: x.mean(0),
    "x.mean(dim=1, keepdim=True)": lambda lib, x: x.mean(dim=1, keepdim=True),
}
NOT_FLOAT = {"int64": [[1, 2], [3, 5]], "bool": [[True, False], [True, True]]}


@pytest.mark.parametrize("call", list(MEANS))
@pytest.mark.parametrize("dtype", list(NOT_FLOAT))
def test_mean_of_an_integer_or_bool_tensor_is_refused_as_torch(torch, call, dtype):
    with pytest.raises(RuntimeError, match="could not infer output dtype") as theirs:
        MEANS[call](torch, torch.tensor(NOT_FLOAT[dtype]))
    with pytest.raises(RuntimeError, match="could not infer output dtype") as ours:
        MEANS[call](gg, gg.tensor(NOT_FLOAT[dtype]))
    assert "floating point" in str(theirs.value) and "floating point" in str(ours.value)
    assert dtype in str(ours.value) and "x.float().mean()" in str(ours.value)


def test_mean_of_integers_with_a_float_dtype_is_torchs(torch):
    x = [[1, 2], [3, 5]]
    np.testing.assert_allclose(gg.tensor(x).mean(dtype=gg.float32).numpy(),
                               torch.tensor(x).mean(dtype=torch.float32).numpy())
    np.testing.assert_allclose(gg.tensor(x).float().mean(1).numpy(),
                               torch.tensor(x).float().mean(1).numpy())


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmin"])
@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (2, 3, 4), (2, 3, 2, 2)])
def test_softmax_without_dim_warns_and_takes_torchs_implicit_dim(torch, name, shape):
    """PyTorch's rule (_get_softmax_dim): dim 0 for 0, 1 or 3 dimensions, else dim 1."""
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    with pytest.warns(UserWarning, match=f"Implicit dimension choice for {name}"):
        ours = getattr(F, name)(gg.tensor(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(torch.nn.functional, name)(torch.from_numpy(x))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=1e-6)
    implicit = 0 if len(shape) in (0, 1, 3) else 1
    if len(shape) > 1:  # the other dimension would give other numbers
        other = getattr(F, name)(gg.tensor(x), dim=1 - implicit)
        assert not np.allclose(other.numpy(), theirs.numpy())

"""``gg.tensor`` refuses NumPy data that is not numbers (strings, objects, complex) as it
refuses Python lists of them, with the fix, instead of failing later inside an op."""

import numpy as np
import pytest

import glassgrad as gg


@pytest.mark.parametrize("arr", [
    np.array(["a", "b"]), np.array([1.0, "x"], dtype=object), np.array([1 + 2j]),
    np.array(["1.5"]), np.str_("3"), np.complex64(1),
], ids=["str", "object", "complex", "numeric-str", "str-scalar", "complex-scalar"])
@pytest.mark.parametrize("make", [gg.tensor, gg.Tensor, gg.from_numpy,
                                  lambda a: gg.tensor(a, dtype=np.float32)],
                         ids=["tensor", "Tensor", "from_numpy", "tensor-dtype"])
def test_non_numeric_numpy_data_is_refused_as_lists_of_it_are(make, arr):
    with pytest.raises(TypeError, match=r"only floats, ints and bools|expects a NumPy array"):
        make(arr)

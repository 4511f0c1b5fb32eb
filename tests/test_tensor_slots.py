"""Every way a Tensor is made sets up the same slots (``Tensor._wrap`` is the definition).

``_ver`` and ``_stamp`` are deliberately left unset until needed (see autograd's in-place
writes section); a graph node gets ``_stamp`` when it is linked in.
"""

import numpy as np
import pytest

from glassgrad import autograd, ops
from glassgrad.tensor import Tensor

ARR = np.arange(3, dtype=np.float32)


_UNSET = object()


def _slots(t: Tensor) -> dict:
    """The slots that are set, arrays by identity (an ndarray has no plain ==)."""
    found = {}
    for s in Tensor.__slots__:
        v = getattr(t, s, _UNSET)
        if s != "__weakref__" and v is not _UNSET:
            found[s] = id(v) if isinstance(v, np.ndarray) else v
    return found


LEAF = {"_data", "_grad", "_requires_grad", "_op", "_parents", "_attrs", "_retain", "name",
        "_g"}


@pytest.mark.parametrize("make", [
    lambda: Tensor._wrap(ARR),
    lambda: Tensor(ARR),
    lambda: autograd.record(ops.OPS["add"], (Tensor._wrap(ARR), Tensor._wrap(ARR)), ARR, None),
], ids=["_wrap", "__init__", "record, no grad"])
def test_a_tensor_without_graph_has_exactly_the_leaf_slots(make) -> None:
    t = make()
    assert _slots(t) == _slots(Tensor._wrap(ARR))
    assert set(_slots(t)) == LEAF  # not _ver, not _stamp
    assert t._data is ARR and t._parents == () and t._op is None and not t._requires_grad


def test_a_graph_node_adds_only_its_link_and_stamp() -> None:
    x = Tensor._wrap(ARR, requires_grad=True)
    attrs = {"axis": None}
    out = autograd.record(ops.OPS["add"], (x, x), ARR, attrs)
    leaf = _slots(Tensor._wrap(ARR))
    assert set(_slots(out)) == LEAF | {"_stamp"}
    changed = {k for k, v in _slots(out).items() if leaf.get(k, _UNSET) != v}
    assert changed == {"_requires_grad", "_op", "_parents", "_attrs", "_stamp"}
    assert out._op is ops.OPS["add"] and out._parents == (x, x) and out._attrs is attrs

"""``default_collate`` (samples -> a batch) and ``default_convert`` (one sample, unbatched)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ... import functional as F
from ...tensor import Tensor


def default_collate(batch: list) -> Any:
    """Samples -> one batch, as PyTorch: tensors and arrays stacked on a new first dim,
    Python floats to a float64 tensor, ints to int64, bools to bool, strings kept in a list,
    and tuples, lists and dicts collated field by field (a tuple becomes a list)."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        if any(isinstance(b, Tensor) and b._requires_grad for b in batch):
            return F.stack(batch)  # differentiable, as torch.stack
        return Tensor._wrap(np.stack([b._data if isinstance(b, Tensor) else b for b in batch]))
    if isinstance(elem, np.ndarray | np.number | np.bool_):
        if isinstance(elem, np.ndarray) and elem.dtype.kind not in "fiub":
            raise TypeError(f"default_collate: NumPy arrays of dtype {elem.dtype} cannot "
                            f"become tensors (numbers and bools only).")
        return Tensor._wrap(np.stack(batch) if isinstance(elem, np.ndarray) else np.array(batch))
    if isinstance(elem, bool):
        return Tensor._wrap(np.array(batch, dtype=np.bool_))
    if isinstance(elem, float):
        return Tensor._wrap(np.array(batch, dtype=np.float64))
    if isinstance(elem, int):
        return Tensor._wrap(np.array(batch, dtype=np.int64))
    if isinstance(elem, str | bytes):
        return batch
    if isinstance(elem, Mapping):
        return {key: default_collate([d[key] for d in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # a namedtuple keeps its type
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, Sequence):
        if any(len(s) != len(elem) for s in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        return [default_collate(list(s)) for s in zip(*batch)]
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, "
                    f"dicts or lists; found {type(elem)}. Fix: return those from "
                    f"__getitem__, or pass collate_fn=.")


def default_convert(data: Any) -> Any:
    """One sample as ``batch_size=None`` yields it: arrays to tensors, tuples to lists."""
    if isinstance(data, np.ndarray) and data.dtype.kind in "fiub":
        return Tensor._wrap(data)
    if isinstance(data, Mapping):
        return {k: default_convert(v) for k, v in data.items()}
    if isinstance(data, tuple) and not hasattr(data, "_fields"):
        return [default_convert(d) for d in data]
    if isinstance(data, list):
        return [default_convert(d) for d in data]
    return data

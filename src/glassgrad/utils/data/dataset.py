"""Datasets: ``Dataset``, ``IterableDataset``, ``TensorDataset``, ``Subset``, ``ConcatDataset``
and ``random_split``, as in ``torch.utils.data``."""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from ...tensor import Tensor
from .sampler import Seed, _rng


class Dataset:
    """A map-style dataset: subclass it and define ``__getitem__(i)`` and ``__len__()``."""

    def __getitem__(self, index: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(self, i) "
                                  f"returning sample i (and __len__).")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset read as a stream: subclass it and define ``__iter__``."""

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__.")


class TensorDataset(Dataset):
    """Samples are rows of the given tensors: ``ds[i] == (X[i], y[i])``.

    >>> import glassgrad as gg
    >>> ds = TensorDataset(gg.zeros(5, 2), gg.tensor([0, 1, 0, 1, 1]))
    >>> len(ds), [tuple(t.shape) for t in ds[0]]
    (5, [(2,), ()])
    """

    def __init__(self, *tensors: Any) -> None:
        ts = tuple(t if isinstance(t, Tensor) else Tensor._wrap(np.asarray(t)) for t in tensors)
        if not ts or any(t.ndim == 0 for t in ts):
            raise ValueError("TensorDataset: give one or more tensors with a first dimension "
                             "(one row per sample).")
        sizes = [t.shape[0] for t in ts]
        if len(set(sizes)) > 1:
            raise ValueError(
                f"TensorDataset: the tensors hold {sizes} rows; each row is one sample, so "
                f"they must hold the same number (shapes {[t.shape for t in ts]}). Fix: pass "
                f"matching tensors, e.g. X of shape (n, features) and y of shape (n,)."
            )
        self.tensors = ts

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset, self.indices = dataset, indices

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Several datasets one after another."""

    def __init__(self, datasets: Iterable[Any]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]).tolist())

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int) -> Any:
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"ConcatDataset: index {idx} is out of range for {n} samples.")
        idx %= n
        d = bisect.bisect_right(self.cumulative_sizes, idx)
        return self.datasets[d][idx - (self.cumulative_sizes[d - 1] if d else 0)]


def random_split(dataset: Any, lengths: Sequence[int | float],
                 generator: Seed = None) -> list[Subset]:
    """Split into non-overlapping random ``Subset``s of the given lengths, or fractions
    summing to 1 (each floor(f·n), the remainder given one by one from the first, as
    PyTorch).

    >>> [len(s) for s in random_split(range(10), [0.33, 0.33, 0.34], generator=0)]
    [4, 3, 3]
    """
    n = len(dataset)
    lengths = list(lengths)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        if any(not 0 <= f <= 1 for f in lengths):
            raise ValueError(f"random_split: fractions must be in [0, 1], got {lengths}")
        counts = [math.floor(n * f) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if any(not isinstance(k, int | np.integer) or k < 0 for k in lengths) or sum(lengths) != n:
        raise ValueError(
            f"random_split: the lengths {lengths} must be counts summing to the dataset's "
            f"{n} samples, or fractions summing to 1. Fix: e.g. [{n - n // 5}, {n // 5}] or "
            f"[0.8, 0.2]."
        )
    order = _rng(generator, "random_split").permutation(n).tolist()
    ends = np.cumsum(lengths).tolist()
    return [Subset(dataset, order[end - k:end]) for k, end in zip(lengths, ends)]



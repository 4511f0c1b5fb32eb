"""``DataLoader``: a dataset read in (shuffled) mini-batches, one epoch per ``for`` loop."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from ...tensor import Tensor
from .collate import default_collate, default_convert
from .dataset import IterableDataset, Subset, TensorDataset
from .sampler import BatchSampler, RandomSampler, Seed, SequentialSampler


def _tensor_rows(dataset: Any) -> tuple[TensorDataset, list[int] | None] | None:
    """(the TensorDataset under ``dataset``, the index map of the Subsets around it), or None
    when ``dataset`` is something else (then samples are read one by one)."""
    indices = None
    while type(dataset) is Subset:
        inner = list(dataset.indices)
        indices = inner if indices is None else [inner[i] for i in indices]
        dataset = dataset.dataset
    if type(dataset) is not TensorDataset or any(t._requires_grad for t in dataset.tensors):
        return None
    return dataset, indices


class DataLoader:
    """Batches of ``dataset`` with PyTorch's arguments and results.

    ``for xb, yb in DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True)`` is one
    epoch: a new order each time with ``shuffle``, the last batch shorter unless
    ``drop_last``; ``collate_fn`` turns a list of samples into a batch (``default_collate``
    by default). ``generator`` (an int seed or a ``numpy.random.Generator``) makes the order
    reproducible. ``num_workers``, ``pin_memory`` and the other multiprocessing options are
    accepted and change nothing: samples are read in this process.

    >>> import glassgrad as gg
    >>> from glassgrad.utils.data import TensorDataset
    >>> loader = DataLoader(TensorDataset(gg.zeros(10, 2), gg.arange(10)), batch_size=4)
    >>> len(loader), [tuple(xb.shape) for xb, yb in loader]
    (3, [(4, 2), (4, 2), (2, 2)])
    """

    def __init__(
        self, dataset: Any, batch_size: int | None = 1, shuffle: bool | None = None,
        sampler: Iterable | None = None, batch_sampler: Iterable | None = None,
        num_workers: int = 0, collate_fn: Callable[[list], Any] | None = None,
        pin_memory: bool = False, drop_last: bool = False, timeout: float = 0,
        worker_init_fn: Callable | None = None, multiprocessing_context: Any = None,
        generator: Seed = None, *, prefetch_factor: int | None = None,
        persistent_workers: bool = False, pin_memory_device: str = "", in_order: bool = True,
    ) -> None:
        if batch_size is not None and (not isinstance(batch_size, int | np.integer)
                                       or isinstance(batch_size, bool) or batch_size <= 0):
            raise ValueError(f"DataLoader: batch_size should be a positive integer value (or "
                             f"None for unbatched samples), but got batch_size={batch_size!r}")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers option should be non-negative; got "
                             f"{num_workers!r}")
        self._iterable = isinstance(dataset, IterableDataset)
        if self._iterable and (shuffle or sampler is not None or batch_sampler is not None):
            raise ValueError("DataLoader with IterableDataset: expected unspecified shuffle, "
                             "sampler and batch_sampler options (the dataset sets the order).")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None
                                          or drop_last):
            raise ValueError("DataLoader: batch_sampler option is mutually exclusive with "
                             "batch_size, shuffle, sampler, and drop_last")
        if batch_size is None and drop_last:
            raise ValueError("DataLoader: batch_size=None option disables auto-batching and "
                             "is mutually exclusive with drop_last")
        self.dataset, self.num_workers, self.pin_memory = dataset, num_workers, pin_memory
        self.timeout, self.worker_init_fn, self.generator = timeout, worker_init_fn, generator
        self.prefetch_factor, self.persistent_workers = prefetch_factor, persistent_workers
        self.drop_last = bool(drop_last)
        if batch_sampler is not None:
            batch_size, self.drop_last = None, False
        self.batch_size = None if batch_size is None else int(batch_size)
        if not self._iterable and sampler is None:
            sampler = (RandomSampler(dataset, generator=generator) if shuffle
                       else SequentialSampler(dataset))
        if batch_sampler is None and self.batch_size is not None and not self._iterable:
            batch_sampler = BatchSampler(sampler, self.batch_size, self.drop_last)
        self.sampler, self.batch_sampler = sampler, batch_sampler
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if self.batch_size is not None or batch_sampler is not None
            else default_convert)
        self._rows = _tensor_rows(dataset) if self.collate_fn is default_collate else None

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)

    def __iter__(self) -> Iterator[Any]:
        if self._iterable:
            return self._iter_stream()
        if self.batch_sampler is None:  # batch_size=None: one sample at a time
            return (self.collate_fn(self.dataset[i]) for i in self.sampler)
        if self._rows is not None:
            return self._iter_rows(*self._rows)
        return (self.collate_fn([self.dataset[i] for i in batch])
                for batch in self.batch_sampler)

    def _iter_rows(self, ds: TensorDataset, index_map: list[int] | None) -> Iterator[list]:
        # default_collate of TensorDataset samples is each tensor's rows stacked: one gather
        arrays = [t._data for t in ds.tensors]
        for batch in self.batch_sampler:
            idx = np.asarray(batch if index_map is None else [index_map[i] for i in batch],
                             dtype=np.intp)
            yield [Tensor._wrap(a[idx]) for a in arrays]

    def _iter_stream(self) -> Iterator[Any]:
        if self.batch_size is None:
            yield from (self.collate_fn(s) for s in self.dataset)
            return
        batch: list = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self.collate_fn(batch)
                batch = []
        if batch and not self.drop_last:
            yield self.collate_fn(batch)

    def __repr__(self) -> str:
        return f"DataLoader({type(self.dataset).__name__}, batch_size={self.batch_size})"

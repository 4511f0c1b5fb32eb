"""Samplers: the order in which ``DataLoader`` reads a dataset's indices."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from ...creation import rng as global_rng

Seed = int | np.random.Generator | None


def _rng(generator: Seed, who: str) -> np.random.Generator:
    if isinstance(generator, np.random.Generator):
        return generator
    if generator is None:  # the global generator, which gg.manual_seed seeds
        return global_rng()
    if isinstance(generator, int | np.integer) and not isinstance(generator, bool):
        return np.random.default_rng(generator)
    raise TypeError(f"{who}: generator must be an int seed or a numpy.random.Generator, got "
                    f"{type(generator).__name__}. Fix: pass e.g. generator=0.")


class Sampler:
    """Yields dataset indices; ``DataLoader(sampler=...)`` batches them."""

    def __iter__(self) -> Iterator[int]:
        raise NotImplementedError


class SequentialSampler(Sampler):
    def __init__(self, data_source: Any) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A new random order of the indices each pass (with ``replacement``: independent
    draws, ``num_samples`` of them)."""

    def __init__(self, data_source: Any, replacement: bool = False,
                 num_samples: int | None = None, generator: Seed = None) -> None:
        self.data_source, self.replacement = data_source, replacement
        self._num_samples = num_samples
        if num_samples is not None and (not isinstance(num_samples, int) or num_samples <= 0):
            raise ValueError(f"RandomSampler: num_samples should be a positive integer, got "
                             f"{num_samples!r}")
        self._rng = _rng(generator, "RandomSampler")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n, k = len(self.data_source), self.num_samples
        if self.replacement:
            return iter(self._rng.integers(0, n, k).tolist())
        # whole permutations, then part of one, when more samples than data are asked for
        parts = [self._rng.permutation(n) for _ in range(-(-k // n))] if n else []
        return iter(np.concatenate(parts)[:k].tolist() if parts else [])

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a new random order each pass."""

    def __init__(self, indices: Sequence[int], generator: Seed = None) -> None:
        self.indices = indices
        self._rng = _rng(generator, "SubsetRandomSampler")

    def __iter__(self) -> Iterator[int]:
        return (self.indices[i] for i in self._rng.permutation(len(self.indices)).tolist())

    def __len__(self) -> int:
        return len(self.indices)


class BatchSampler(Sampler):
    """Groups a sampler's indices into lists of ``batch_size`` (the last one shorter unless
    ``drop_last``)."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, bool(drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        batch: list[int] = []
        for i in self.sampler:
            batch.append(int(i))
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)



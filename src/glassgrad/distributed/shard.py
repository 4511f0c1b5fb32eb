"""Which samples each rank trains on: a disjoint part of every global batch.

Every rank draws the same permutation of the data for an epoch (from the same seed), cuts it
into global batches of ``batch_size`` exactly as one process would, and takes its contiguous
part of each batch. Parts differ in size by at most one sample (the first ``B % N`` ranks take
one more, as ``np.array_split``); no sample is dropped or repeated. A global batch smaller than
the number of ranks (the last one of an epoch, say) leaves some ranks an empty part: they then
contribute nothing to that step, and the gradient mean is weighted by each part's size, so the
step is the one a single process would take on the whole batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..tensor import Tensor
from .comm import _group, broadcast_object, check_same, data_digest


def shard_bounds(n: int, rank: int, size: int) -> tuple[int, int]:
    """``[start, stop)`` of ``rank``'s contiguous part of ``n`` items split over ``size`` ranks.

    >>> [shard_bounds(10, r, 4) for r in range(4)]
    [(0, 3), (3, 6), (6, 8), (8, 10)]
    """
    q, extra = divmod(n, size)
    start = rank * q + min(rank, extra)
    return start, start + q + (rank < extra)


def batch_plan(n: int, batch_size: int, rank: int, size: int
               ) -> list[tuple[int, int, int, int]]:
    """``(lo, hi, start, stop)`` per global batch of an epoch: the batch is rows ``[lo, hi)``
    of the epoch's order, and this rank's part of it is rows ``[start, stop)``."""
    plan = []
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)
        a, b = shard_bounds(hi - lo, rank, size)
        plan.append((lo, hi, lo + a, lo + b))
    return plan


def positions(n: int, batch_size: int, rank: int, size: int) -> np.ndarray:
    """Where, in the epoch's order, ``rank``'s rows are, step after step."""
    parts = [np.arange(a, b) for _, _, a, b in batch_plan(n, batch_size, rank, size)]
    return np.concatenate(parts) if parts else np.arange(0)


class ShardedLoader:
    """Mini-batches like ``data.DataLoader``, each rank getting its part of every global batch.

    ``batch_size`` is the global batch (the one a single process would use). Each ``for`` loop
    is one epoch; with ``shuffle`` every epoch draws a new permutation from ``seed``, the same
    on every rank (without a seed, rank 0 picks one for all). All ranks get the same number
    of batches; a part may be empty (see the module's docstring): skip the forward pass
    then, and still call the optimizer's ``step``, which all ranks must reach. Pass
    ``count=len(xb)`` to ``DistributedOptimizer.step`` so the gradient mean is weighted by
    part sizes. Checks at construction that every rank has the same data, batch size and
    seed (``RankMismatchError`` otherwise).

    >>> loader = ShardedLoader(np.zeros((10, 2), np.float32), np.arange(10), batch_size=4)
    >>> len(loader), [len(xb) for xb, yb in loader]   # one process: the whole batches
    (3, [4, 4, 2])
    """

    def __init__(self, X: Any, y: Any = None, batch_size: int = 1, shuffle: bool = False,
                 seed: int | None = None) -> None:
        self.X = X._data if isinstance(X, Tensor) else np.asarray(X)
        self.y = None if y is None else y._data if isinstance(y, Tensor) else np.asarray(y)
        if self.y is not None and len(self.y) != len(self.X):
            raise ValueError(f"ShardedLoader(): X and y must have the same number of rows, got "
                             f"X of shape {self.X.shape} and y of shape {self.y.shape}.")
        if not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise ValueError(f"ShardedLoader(): batch_size (the global batch) must be a "
                             f"positive integer, got {batch_size!r}.")
        if seed is not None and not isinstance(seed, int | np.integer):
            raise TypeError(f"ShardedLoader(): seed must be an int (the same on every rank), "
                            f"got {type(seed).__name__}.")
        self.batch_size, self.shuffle = int(batch_size), shuffle
        if shuffle and seed is None:  # a fresh seed, but one permutation for all ranks
            seed = broadcast_object(int(np.random.SeedSequence().entropy) % 2**63)
        self._rng = np.random.default_rng(seed)
        check_same("ShardedLoader()", data=data_digest(self.X, self.y),
                   batch_size=self.batch_size, shuffle=shuffle, seed=seed)

    def __len__(self) -> int:
        return math.ceil(len(self.X) / self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        g = _group()
        n = len(self.X)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        for _, _, a, b in batch_plan(n, self.batch_size, g.rank, g.size):
            idx = order[a:b]
            xb = Tensor._wrap(self.X[idx])
            yield xb if self.y is None else (xb, Tensor._wrap(self.y[idx]))

    def __repr__(self) -> str:
        g = _group()
        return (f"ShardedLoader({len(self.X)} samples, global batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, {len(self)} batches, rank {g.rank} of {g.size})")

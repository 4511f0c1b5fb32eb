"""Synchronous data-parallel training over MPI, as Horovod and PyTorch's DDP do it.

Every rank holds the same model, computes gradients on its part of each global batch, the
gradients are averaged with one all-reduce, and every rank applies the same update::

    mpiexec -n 4 python -m mpi4py train.py          # your script
    mpiexec -n 4 python -m mpi4py -m glassgrad train digits --distributed

``gg.fit(..., distributed=True)`` does all of it; for a loop of your own, use
``broadcast_parameters``, ``ShardedLoader`` and ``DistributedOptimizer``. Without ``mpiexec``
a script runs as one rank, unchanged. See docs/distributed.md.
"""

from .comm import (
    RankMismatchError,
    abort,
    all_reduce,
    barrier,
    broadcast_parameters,
    check_in_sync,
    check_same,
    init,
    is_main,
    parameters_digest,
    rank,
    world_size,
)
from .reduce import DistributedOptimizer, GradientReducer, NonFiniteGradientStep
from .shard import ShardedLoader, shard_bounds

__all__ = [
    "DistributedOptimizer", "GradientReducer", "NonFiniteGradientStep", "RankMismatchError",
    "ShardedLoader", "abort", "all_reduce", "barrier", "broadcast_parameters", "check_in_sync",
    "check_same", "init", "is_main", "parameters_digest", "rank", "shard_bounds", "world_size",
]

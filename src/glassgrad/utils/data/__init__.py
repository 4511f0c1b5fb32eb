"""``torch.utils.data`` for glassgrad: datasets, samplers, ``DataLoader``, ``random_split``.

The same classes, arguments and batches as PyTorch's (a batch of ``(x, y)`` samples is the
list ``[X, Y]``, Python floats collate to float64, ints to int64), so a training loop written
for PyTorch runs as it is. Differences: loading happens in this process (``num_workers`` and
``pin_memory`` are accepted and change nothing), and shuffling draws from a NumPy generator
(``generator=`` an int seed or a ``numpy.random.Generator``), so the order differs from
PyTorch's for the same seed. A ``TensorDataset`` (or a ``Subset`` of one) with the default
collate is batched with one gather per tensor instead of one ``__getitem__`` per sample:
the same batches, without the Python loop.
"""

from .collate import default_collate, default_convert
from .dataloader import DataLoader
from .dataset import (
    ConcatDataset,
    Dataset,
    IterableDataset,
    Subset,
    TensorDataset,
    random_split,
)
from .sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
)

__all__ = [
    "BatchSampler", "ConcatDataset", "DataLoader", "Dataset", "IterableDataset",
    "RandomSampler", "Sampler", "SequentialSampler", "Subset", "SubsetRandomSampler",
    "TensorDataset", "default_collate", "default_convert", "random_split",
]

"""Data for training: the classic teaching sets, CSV loading, splitting and batching.

Generators return NumPy ``(X, y)``: X float32 (n_samples, n_features), y int64 labels or
float32 targets, reproducible from ``seed``.

>>> import glassgrad as gg
>>> X, y = gg.data.moons(100, seed=0)
>>> X.shape, X.dtype, y.dtype
((100, 2), dtype('float32'), dtype('int64'))
"""

from .csv import load_csv
from .datasets import blobs, circles, load_digits, moons, regression, sine, spirals, xor
from .loader import DataLoader, batches, train_test_split

# Names the CLI accepts for `glassgrad train DATASET` (each a function of seed=).
DATASETS = {
    "xor": xor, "circles": circles, "moons": moons, "spirals": spirals, "blobs": blobs,
    "regression": regression, "sine": sine, "digits": load_digits,
}

__all__ = [
    "DATASETS", "DataLoader", "batches", "blobs", "circles", "load_csv", "load_digits", "moons",
    "regression", "sine", "spirals", "train_test_split", "xor",
]

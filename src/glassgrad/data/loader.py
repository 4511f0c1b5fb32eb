"""Splitting and batching: ``train_test_split``, ``batches`` (NumPy), ``DataLoader`` (Tensors)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..creation import rng as random_generator
from ..tensor import Tensor

Seed = int | np.random.Generator | None


def _rng(seed: Seed) -> np.random.Generator:
    return random_generator(seed)  # (None: the global one, which gg.manual_seed seeds)


def _as_array(a: Any) -> np.ndarray:
    return a._data if isinstance(a, Tensor) else np.asarray(a)


def _check_xy(fn: str, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray | None]:
    X = _as_array(X)
    if X.ndim == 0:
        raise ValueError(f"{fn}(): X must have one row per sample, got a scalar.")
    if y is None:
        return X, None
    y = _as_array(y)
    if y.ndim == 0 or len(y) != len(X):
        raise ValueError(
            f"{fn}(): X and y must have the same number of rows (one per sample), got X of "
            f"shape {X.shape} and y of shape {y.shape}. Fix: pass matching arrays."
        )
    return X, y


def train_test_split(
    X: Any, y: Any, test_size: float | int = 0.2, seed: Seed = 0, stratify: Any = None,
    shuffle: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split into ``X_train, X_test, y_train, y_test`` (scikit-learn's order).

    ``test_size`` is a fraction in (0, 1) (rounded up to whole samples, as scikit-learn) or a
    number of samples. ``stratify`` is an array of class labels (usually ``y``), or True for
    ``y``: each class then keeps its share in both parts.

    >>> X_tr, X_te, y_tr, y_te = train_test_split(np.arange(10)[:, None], np.arange(10))
    >>> len(X_tr), len(X_te)
    (8, 2)
    """
    X, y = _check_xy("train_test_split", X, y)
    n = len(X)
    if isinstance(test_size, float):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"train_test_split(): test_size={test_size} must be in (0, 1) as a "
                             f"fraction, or an integer number of samples.")
        n_test = math.ceil(test_size * n)
    else:
        n_test = int(test_size)
    if not 0 < n_test < n:
        raise ValueError(
            f"train_test_split(): test_size={test_size!r} leaves {n_test} of {n} samples for "
            f"testing; both parts need at least one. Fix: use more data or another test_size."
        )
    rng = _rng(seed)
    if stratify is None or stratify is False:
        order = rng.permutation(n) if shuffle else np.arange(n)
        test, train = order[:n_test], order[n_test:]
    else:
        labels = y if stratify is True else _as_array(stratify)
        if len(labels) != n:
            raise ValueError(f"train_test_split(): stratify has {len(labels)} labels for {n} "
                             f"samples. Fix: pass stratify=y.")
        test, train = _stratified(labels, n_test, rng)
    return X[train], X[test], y[train], y[test]


def _stratified(labels: np.ndarray, n_test: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-class test counts proportional to class sizes (largest remainders fill the rest)."""
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    share = counts * n_test / len(labels)
    k = np.floor(share).astype(int)
    for c in np.argsort(-(share - k), kind="stable")[: n_test - k.sum()]:
        k[c] += 1
    test, train = [], []
    for c in range(len(classes)):
        members = rng.permutation(np.flatnonzero(inverse == c))
        test.append(members[: k[c]])
        train.append(members[k[c]:])
    return rng.permutation(np.concatenate(test)), rng.permutation(np.concatenate(train))


def batches(
    X: Any, y: Any = None, batch_size: int = 32, shuffle: bool = True, seed: Seed = None,
    drop_last: bool = False,
) -> Iterator[Any]:
    """Yield ``(X_batch, y_batch)`` NumPy arrays (or ``X_batch`` alone when ``y`` is None).

    One pass over the data; with ``shuffle`` the rows come in a random order drawn from
    ``seed``. The last batch is smaller unless ``drop_last``.
    """
    X, y = _check_xy("batches", X, y)
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batches(): batch_size must be a positive integer, got {batch_size!r}.")
    n = len(X)
    order = _rng(seed).permutation(n) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:  # contiguous slices are views: no copy
            sl = slice(start, start + batch_size)
            xb, yb = X[sl], None if y is None else y[sl]
        else:
            idx = order[start:start + batch_size]
            xb, yb = X[idx], None if y is None else y[idx]
        yield xb if y is None else (xb, yb)


class DataLoader:
    """Re-iterable mini-batches as Tensors, like ``torch.utils.data.DataLoader``.

    Each ``for`` loop over it is one epoch; with ``shuffle`` every epoch draws a new order
    from one generator seeded by ``seed``, so a run is reproducible.

    >>> loader = DataLoader(np.zeros((10, 2), np.float32), np.arange(10), batch_size=4)
    >>> len(loader), [tuple(xb.shape) for xb, yb in loader]
    (3, [(4, 2), (4, 2), (2, 2)])
    """

    def __init__(self, X: Any, y: Any = None, batch_size: int = 1, shuffle: bool = False,
                 seed: Seed = None, drop_last: bool = False) -> None:
        self.X, self.y = _check_xy("DataLoader", X, y)
        if not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise ValueError(f"DataLoader(): batch_size must be a positive integer, "
                             f"got {batch_size!r}.")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self._rng = _rng(seed)

    def __len__(self) -> int:
        n = len(self.X)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        for b in batches(self.X, self.y, self.batch_size, self.shuffle, self._rng,
                         self.drop_last):
            if self.y is None:
                yield Tensor._wrap(b)
            else:
                yield Tensor._wrap(b[0]), Tensor._wrap(b[1])

    def __repr__(self) -> str:
        return (f"DataLoader({len(self.X)} samples, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, {len(self)} batches)")

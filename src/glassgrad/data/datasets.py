"""The classic teaching data sets, generated from a seed.

Every generator returns ``(X, y)`` NumPy arrays: ``X`` float32 of shape (n_samples, n_features);
``y`` int64 class labels (classification) or float32 targets (regression), shape (n_samples,).
The same ``seed`` always gives the same arrays; rows come shuffled, so a split that takes the
last rows still sees every class.
"""

from __future__ import annotations

import numpy as np

Seed = int | np.random.Generator | None


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check_n(name: str, n_samples: int, minimum: int = 1) -> None:
    if not isinstance(n_samples, int | np.integer) or n_samples < minimum:
        raise ValueError(
            f"{name}(): n_samples must be an integer >= {minimum}, got {n_samples!r}."
        )


def _check_noise(name: str, noise: float) -> None:
    if not noise >= 0:  # also rejects NaN
        raise ValueError(f"{name}(): noise is a standard deviation and must be >= 0, "
                         f"got {noise!r}.")


def _finish(X: np.ndarray, y: np.ndarray, rng: np.random.Generator,
            shuffle: bool = True) -> tuple[np.ndarray, np.ndarray]:
    if shuffle:
        order = rng.permutation(len(X))
        X, y = X[order], y[order]
    return np.ascontiguousarray(X, dtype=np.float32), y


def _split(n_samples: int, parts: int) -> list[int]:
    """``n_samples`` divided into ``parts`` sizes differing by at most one (sklearn's rule)."""
    return [n_samples // parts + (i < n_samples % parts) for i in range(parts)]


def xor(n_samples: int = 4, noise: float = 0.0, seed: Seed = 0) -> tuple[np.ndarray, np.ndarray]:
    """The XOR truth table: label 1 when exactly one input is 1.

    With the defaults, the four rows (0,0)->0, (0,1)->1, (1,0)->1, (1,1)->0 in that order.
    With more samples, the corners are repeated in turn (then shuffled) and ``noise`` adds
    Gaussian jitter of that standard deviation to the inputs.

    >>> X, y = xor()
    >>> X.tolist(), y.tolist()
    ([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], [0, 1, 1, 0])
    """
    _check_n("xor", n_samples)
    _check_noise("xor", noise)
    rng = _rng(seed)
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    idx = np.arange(n_samples) % 4
    X = corners[idx]
    y = (idx == 1) | (idx == 2)
    if noise:
        X = X + rng.normal(0.0, noise, X.shape)
    return _finish(X, y.astype(np.int64), rng, shuffle=n_samples != 4)


def circles(n_samples: int = 200, noise: float = 0.05, factor: float = 0.5,
            seed: Seed = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric circles: the outer (radius 1) is class 0, the inner (radius ``factor``) 1.

    Not linearly separable; a network with one hidden layer separates them.
    """
    _check_n("circles", n_samples, 2)
    _check_noise("circles", noise)
    if not 0 < factor < 1:
        raise ValueError(f"circles(): factor is the inner radius relative to the outer one and "
                         f"must be in (0, 1), got {factor!r}.")
    rng = _rng(seed)
    n_out, n_in = _split(n_samples, 2)
    t_out = np.linspace(0, 2 * np.pi, n_out, endpoint=False)
    t_in = np.linspace(0, 2 * np.pi, n_in, endpoint=False)
    X = np.concatenate([
        np.stack([np.cos(t_out), np.sin(t_out)], 1),
        factor * np.stack([np.cos(t_in), np.sin(t_in)], 1),
    ])
    y = np.repeat(np.array([0, 1], dtype=np.int64), [n_out, n_in])
    X += rng.normal(0.0, noise, X.shape)
    return _finish(X, y, rng)


def moons(n_samples: int = 200, noise: float = 0.1,
          seed: Seed = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (scikit-learn's ``make_moons``): classes 0 and 1."""
    _check_n("moons", n_samples, 2)
    _check_noise("moons", noise)
    rng = _rng(seed)
    n_a, n_b = _split(n_samples, 2)
    t_a = np.linspace(0, np.pi, n_a)
    t_b = np.linspace(0, np.pi, n_b)
    X = np.concatenate([
        np.stack([np.cos(t_a), np.sin(t_a)], 1),
        np.stack([1 - np.cos(t_b), 0.5 - np.sin(t_b)], 1),
    ])
    y = np.repeat(np.array([0, 1], dtype=np.int64), [n_a, n_b])
    X += rng.normal(0.0, noise, X.shape)
    return _finish(X, y, rng)


def spirals(n_samples: int = 300, n_classes: int = 3, noise: float = 0.2,
            seed: Seed = 0) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class (the CS231n spiral set).

    Arm ``k`` at radius ``r`` in [0, 1] has angle ``4r + 2πk/K`` plus noise of std ``noise``
    (in radians), so the arms wind around each other and need a non-linear boundary.
    """
    _check_n("spirals", n_samples, n_classes)
    _check_noise("spirals", noise)
    if not isinstance(n_classes, int | np.integer) or n_classes < 2:
        raise ValueError(f"spirals(): n_classes must be an integer >= 2, got {n_classes!r}.")
    rng = _rng(seed)
    sizes = _split(n_samples, n_classes)
    r = np.concatenate([np.linspace(0.0, 1.0, m) for m in sizes])
    y = np.repeat(np.arange(n_classes, dtype=np.int64), sizes)
    theta = 4.0 * r + 2 * np.pi * y / n_classes + rng.normal(0.0, noise, n_samples)
    X = np.stack([r * np.sin(theta), r * np.cos(theta)], 1)
    return _finish(X, y, rng)


def blobs(n_samples: int = 300, centers: int | np.ndarray = 3, n_features: int = 2,
          cluster_std: float = 1.0, center_box: tuple[float, float] = (-10.0, 10.0),
          seed: Seed = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs (scikit-learn's ``make_blobs``): class ``k`` is N(center_k, std² I).

    ``centers`` is a number of classes (centers drawn uniformly in ``center_box``) or an
    array of shape (n_classes, n_features).
    """
    _check_noise("blobs", cluster_std)
    rng = _rng(seed)
    if isinstance(centers, int | np.integer):
        if centers < 1:
            raise ValueError(f"blobs(): centers must be >= 1, got {centers}.")
        lo, hi = center_box
        c = rng.uniform(lo, hi, (int(centers), n_features))
    else:
        c = np.asarray(centers, dtype=np.float64)
        if c.ndim != 2:
            raise ValueError(f"blobs(): centers must be an int or an array of shape "
                             f"(n_classes, n_features), got shape {c.shape}.")
    _check_n("blobs", n_samples, len(c))
    sizes = _split(n_samples, len(c))
    y = np.repeat(np.arange(len(c), dtype=np.int64), sizes)
    X = c[y] + rng.normal(0.0, cluster_std, (n_samples, c.shape[1]))
    return _finish(X, y, rng)


def regression(n_samples: int = 100, n_features: int = 1, noise: float = 0.1,
               bias: float = 0.0, seed: Seed = 0,
               return_coef: bool = False) -> tuple[np.ndarray, ...]:
    """A linear target plus noise: ``y = X·w + bias + ε``, ε ~ N(0, noise²).

    X ~ N(0, 1) and w ~ U(-2, 2); with ``return_coef=True`` also returns ``w`` (float32), the
    answer a linear model should recover.
    """
    _check_n("regression", n_samples)
    _check_noise("regression", noise)
    rng = _rng(seed)
    X = rng.normal(0.0, 1.0, (n_samples, n_features))
    w = rng.uniform(-2.0, 2.0, n_features)
    y = (X @ w + bias + rng.normal(0.0, noise, n_samples)).astype(np.float32)
    X = X.astype(np.float32)
    return (X, y, w.astype(np.float32)) if return_coef else (X, y)


def sine(n_samples: int = 200, noise: float = 0.1, periods: float = 1.0,
         seed: Seed = 0) -> tuple[np.ndarray, np.ndarray]:
    """A non-linear 1-D regression: ``y = sin(2π·periods·x) + ε`` for x uniform in [-1, 1]."""
    _check_n("sine", n_samples)
    _check_noise("sine", noise)
    rng = _rng(seed)
    x = rng.uniform(-1.0, 1.0, n_samples)
    y = np.sin(2 * np.pi * periods * x) + rng.normal(0.0, noise, n_samples)
    return x[:, None].astype(np.float32), y.astype(np.float32)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled handwritten digits: 1797 images of 8×8 pixels, labels 0-9.

    Returns X of shape (1797, 64) scaled to [0, 1] (the pixels are 0-16) and int64 labels.
    No download: the set ships with scikit-learn, which is needed
    (``pip install "glassgrad[digits]"``).
    """
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError:
        raise ImportError(
            "load_digits() reads the digits set that ships with scikit-learn, which is not "
            "installed. Fix: pip install \"glassgrad[digits]\" (or pip install scikit-learn)."
        ) from None
    X, y = _load(return_X_y=True)
    return (X / 16.0).astype(np.float32), y.astype(np.int64)

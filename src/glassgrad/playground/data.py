"""The playground's data: the library's generated sets placed on one plane, the user's CSV,
the train/test split and the input features (x₁, x₂, x₁², x₂², x₁x₂, sin x₁, sin x₂).

Generated sets are scaled to about [−5, 5]² and drawn on [−6, 6]², as in TensorFlow
Playground, so that sin x₁ and x₁² differ from x₁ over the plane. The seeds' XOR table keeps its
own four points, (0, 0) first, so its first step is the seeds' example.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np

from .. import data as gdata
from .config import Config

BOX = 6.0  # the plane shown: [-BOX, BOX]²
MAX_CSV_BYTES = 1 << 20
MAX_CSV_ROWS = 5000
FEATURE_LABELS = {"x1": "x₁", "x2": "x₂", "x1sq": "x₁²", "x2sq": "x₂²", "x1x2": "x₁x₂",
                  "sinx1": "sin x₁", "sinx2": "sin x₂"}
_FEATURES = {
    "x1": lambda X: X[:, 0], "x2": lambda X: X[:, 1],
    "x1sq": lambda X: X[:, 0] ** 2, "x2sq": lambda X: X[:, 1] ** 2,
    "x1x2": lambda X: X[:, 0] * X[:, 1],
    "sinx1": lambda X: np.sin(X[:, 0]), "sinx2": lambda X: np.sin(X[:, 1]),
}


@dataclass
class Points:
    """All points of a data set on the plane (``X``: (n, 2)) and their targets (``y``: (n,))."""

    X: np.ndarray
    y: np.ndarray
    problem: str
    domain: tuple[float, float, float, float]  # x_min, x_max, y_min, y_max of the plot
    name: str


@dataclass
class Split:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def features(X: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """The network's inputs for points ``X`` (n, 2): one column per chosen feature."""
    return np.stack([_FEATURES[f](X) for f in names], axis=1).astype(np.float64)


def generate(cfg: Config) -> Points:
    """The generated set ``cfg.data`` with ``cfg.points`` points, ``cfg.noise`` and ``cfg.seed``."""
    n, noise, seed = cfg.points, cfg.noise, cfg.seed
    box = (-BOX, BOX, -BOX, BOX)
    if cfg.data == "xor-table":
        X, y = gdata.xor()
        return Points(X.astype(np.float64), y.astype(np.float64), "classification",
                      (-0.5, 1.5, -0.5, 1.5), cfg.data)
    if cfg.data == "xor":
        X, y = gdata.xor(n, noise, seed)
        X = (X - 0.5) * 8  # corners at ±4
    elif cfg.data == "circles":
        X, y = gdata.circles(n, noise, seed=seed)
        X = X * 5
    elif cfg.data == "moons":
        X, y = gdata.moons(n, noise, seed)
        X = (X - np.array([0.5, 0.25])) * 3
    elif cfg.data == "spirals":
        X, y = gdata.spirals(n, 2, noise, seed)
        X = X * 5
    elif cfg.data == "gaussians":
        X, y = gdata.blobs(n, np.array([[2.0, 2.0], [-2.0, -2.0]]), cluster_std=0.5 + 3 * noise,
                           seed=seed)
    elif cfg.data == "plane":
        X, y = gdata.regression(n, 2, noise, seed=seed)
        X, y = X * 2.5, y / max(float(np.abs(y).max()), 1e-12)
    elif cfg.data == "sine":
        x, y = gdata.sine(n, noise, seed=seed)
        other = np.random.default_rng(seed).uniform(-1, 1, n)
        X = np.stack([x[:, 0], other], 1) * 5
    else:
        raise ValueError(f"data: {cfg.data!r} is not generated; upload the CSV file again")
    problem = "regression" if cfg.data in ("plane", "sine") else "classification"
    return Points(np.asarray(X, np.float64), np.asarray(y, np.float64), problem, box, cfg.data)


def split(points: Points, cfg: Config) -> Split:
    """Train and test parts: ``cfg.train_ratio`` of the points, chosen by ``cfg.seed``.

    The seeds' XOR table trains and tests on its four rows, in the table's order.
    """
    if points.name == "xor-table":
        return Split(points.X, points.y, points.X, points.y)
    n = len(points.X)
    order = np.random.default_rng(cfg.seed + 1).permutation(n)
    k = min(max(1, round(cfg.train_ratio * n)), n - 1)
    tr, te = order[:k], order[k:]
    return Split(points.X[tr], points.y[tr], points.X[te], points.y[te])


def from_csv(body: bytes, filename: str = "upload.csv") -> Points:
    """The user's CSV: two feature columns and a target (0/1 labels, or numbers to regress).

    Parsed by ``glassgrad.data.load_csv`` (its messages name the line and column); raises
    ``ValueError`` saying what is wrong and how to fix it.
    """
    name = os.path.basename(filename) or "upload.csv"
    if len(body) > MAX_CSV_BYTES:
        raise ValueError(f"{name}: {len(body):,} bytes is more than the {MAX_CSV_BYTES:,} the "
                         f"playground reads. Fix: upload at most {MAX_CSV_ROWS} rows.")
    if b"\0" in body:
        raise ValueError(f"{name}: this is not a text file (it contains NUL bytes). Fix: "
                         f"export the table as CSV (comma-separated text).")
    fd, path = tempfile.mkstemp(suffix=".csv")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        try:
            X, y = gdata.load_csv(path)
        except UnicodeDecodeError:
            raise ValueError(f"{name}: the file is not UTF-8 text. Fix: save it as CSV "
                             f"(UTF-8).") from None
        except ValueError as e:  # the library's message, with the user's file name
            raise ValueError(str(e).replace(repr(path), repr(name))) from None
    finally:
        os.unlink(path)
    return _check_csv(X, y, name)


def _check_csv(X: np.ndarray, y: np.ndarray, name: str) -> Points:
    if X.shape[1] != 2:
        raise ValueError(f"{name}: found {X.shape[1]} feature column"
                         f"{'s' if X.shape[1] != 1 else ''} plus the target; the playground "
                         f"draws points on a plane and needs exactly 2 (x₁, x₂) and a last "
                         f"column with the label. Fix: keep three columns: x1,x2,label.")
    if len(X) < 4 or len(X) > MAX_CSV_ROWS:
        raise ValueError(f"{name}: {len(X)} rows; the playground needs 4 to {MAX_CSV_ROWS}. "
                         f"Fix: add rows or keep a sample.")
    labels = np.unique(y)
    if y.dtype.kind in "iu" and set(labels.tolist()) <= {0, 1}:
        problem = "classification"
    elif y.dtype.kind in "iu" and len(labels) == 2:
        y = (y == labels[1]).astype(np.int64)  # two class names/numbers: 0 and 1
        problem = "classification"
    elif y.dtype.kind in "iu" and len(labels) > 2 and len(labels) <= 10:
        raise ValueError(f"{name}: the label column has {len(labels)} classes "
                         f"{labels.tolist()}; the playground's network has one output, so it "
                         f"separates two classes. Fix: keep two classes (0 and 1).")
    else:
        problem = "regression"
    X = X.astype(np.float64)
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = np.maximum((hi - lo) * 0.1, 0.5)
    domain = (float(lo[0] - pad[0]), float(hi[0] + pad[0]),
              float(lo[1] - pad[1]), float(hi[1] + pad[1]))
    return Points(X, y.astype(np.float64), problem, domain, "csv")

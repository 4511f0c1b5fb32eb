"""glassgrad.data: seeded generators, CSV loading with located errors, splitting and batching."""

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.data import (
    DataLoader,
    batches,
    blobs,
    circles,
    load_csv,
    load_digits,
    moons,
    regression,
    sine,
    spirals,
    train_test_split,
    xor,
)

CLASSIFIERS = [
    (circles, {}, 2), (moons, {}, 2), (spirals, {"n_classes": 3}, 3), (blobs, {"centers": 4}, 4),
]


# ----------------------------------------------------------------------------- generators
def test_xor_is_the_truth_table():
    X, y = xor()
    assert X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(X, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y, [0, 1, 1, 0])


def test_xor_with_noise_keeps_labels_of_the_nearest_corner():
    X, y = xor(400, noise=0.1, seed=3)
    assert X.shape == (400, 2) and np.bincount(y).tolist() == [200, 200]
    np.testing.assert_array_equal((X.round().sum(1) == 1).astype(np.int64), y)


@pytest.mark.parametrize("gen,kw,k", CLASSIFIERS)
def test_classification_sets_are_seeded_shaped_and_balanced(gen, kw, k):
    X, y = gen(n_samples=301, seed=7, **kw)
    X2, y2 = gen(n_samples=301, seed=7, **kw)
    X3, _ = gen(n_samples=301, seed=8, **kw)
    assert X.shape == (301, 2) and X.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(X, X3)
    counts = np.bincount(y, minlength=k)
    assert counts.max() - counts.min() <= 1 and len(counts) == k
    assert y[:k * 3].min() != y[:k * 3].max()  # rows are shuffled, not sorted by class


def test_circles_radii():
    X, y = circles(400, noise=0.0, factor=0.3)
    r = np.hypot(X[:, 0], X[:, 1])
    np.testing.assert_allclose(r[y == 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(r[y == 1], 0.3, atol=1e-6)


def test_blobs_center_on_given_points():
    centers = np.array([[0.0, 0.0], [10.0, 5.0]])
    X, y = blobs(2000, centers=centers, cluster_std=0.5, seed=1)
    for c in range(2):
        np.testing.assert_allclose(X[y == c].mean(0), centers[c], atol=0.06)
        np.testing.assert_allclose(X[y == c].std(0), 0.5, atol=0.05)


def test_regression_recovers_its_coefficients_by_least_squares():
    X, y, w = regression(500, n_features=3, noise=0.01, bias=2.0, seed=0, return_coef=True)
    assert X.shape == (500, 3) and y.shape == (500,) and y.dtype == np.float32
    A = np.c_[X, np.ones(500)]
    sol = np.linalg.lstsq(A, y, rcond=None)[0]
    np.testing.assert_allclose(sol, [*w, 2.0], atol=0.01)


def test_sine_without_noise_is_the_sine():
    X, y = sine(50, noise=0.0, periods=2, seed=0)
    assert X.shape == (50, 1)
    np.testing.assert_allclose(y, np.sin(4 * np.pi * X[:, 0]), atol=1e-5)


def test_generators_reject_bad_arguments():
    with pytest.raises(ValueError, match="n_samples"):
        moons(0)
    with pytest.raises(ValueError, match="noise"):
        circles(noise=-1)
    with pytest.raises(ValueError, match="factor"):
        circles(factor=1.5)


@pytest.mark.usefixtures("sklearn")
def test_load_digits_scaled_to_unit_interval():
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32 and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0 and sorted(set(y.tolist())) == list(range(10))


def test_lazy_attribute():
    assert gg.data.xor is xor


# ----------------------------------------------------------------------------- CSV
def write(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_header_target_by_name_and_int_labels(tmp_path):
    p = write(tmp_path, "a,label,b\n1,0,2.5\n3,1,4\n\n5,1,6\n")
    X, y, info = load_csv(p, target="label", return_info=True)
    np.testing.assert_array_equal(X, [[1, 2.5], [3, 4], [5, 6]])
    assert X.dtype == np.float32 and y.dtype == np.int64 and y.tolist() == [0, 1, 1]
    assert info == {"feature_names": ["a", "b"], "target_name": "label", "classes": None}


def test_csv_without_header_float_target_and_semicolons(tmp_path):
    X, y = load_csv(write(tmp_path, "1;2;0.5\n3;4;1.5\n"))
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert y.dtype == np.float32 and y.tolist() == [0.5, 1.5]


def test_csv_word_labels_become_sorted_class_indices(tmp_path):
    p = write(tmp_path, "x,y,species\n1,2,versicolor\n3,4,setosa\n5,6,versicolor\n")
    X, y, info = load_csv(p, return_info=True)
    assert y.tolist() == [1, 0, 1] and info["classes"] == ["setosa", "versicolor"]


@pytest.mark.parametrize("text,match", [
    ("a,b,c\n1,2,0\n3,,1\n", r"line 3, column 2 \('b'\): the value is missing"),
    ("a,b,c\n1,2,0\n3,NA,1\n", r"line 3, column 2 \('b'\): the value is missing \('NA'\)"),
    ("a,b,c\n1,2,0\n3,abc,1\n", r"line 3, column 2 \('b'\): 'abc' is not a number"),
    ("1,2,0\n3,4\n", r"line 2 has 2 fields but the first row has 3"),
    ("1,2,0\n3,4,x\n", r"line 2, column 3: 'x' is not a number"),
    ("", "the file is empty"),
    ("\n\n", "the file is empty"),
    ("a,b,c\n", "header but no data rows"),
])
def test_csv_errors_name_line_and_column(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        load_csv(write(tmp_path, text))


def test_csv_bad_target(tmp_path):
    p = write(tmp_path, "a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"no column named 'c'; the columns are \['a', 'b'\]"):
        load_csv(p, target="c")
    with pytest.raises(ValueError, match="not a column index"):
        load_csv(p, target=5)
    with pytest.raises(ValueError, match="no header row"):
        load_csv(write(tmp_path, "1,2\n3,4\n", "n.csv"), target="b")


# ----------------------------------------------------------------------------- split, batch
def test_train_test_split_partitions_the_rows():
    X = np.arange(20, dtype=np.float32)[:, None]
    y = np.arange(20)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, seed=1)
    assert len(X_te) == 5 and len(X_tr) == 15
    np.testing.assert_array_equal(X_tr[:, 0], y_tr)  # rows stay paired
    assert sorted(np.r_[y_tr, y_te].tolist()) == list(range(20))
    again = train_test_split(X, y, test_size=0.25, seed=1)
    np.testing.assert_array_equal(again[3], y_te)


def test_stratified_split_keeps_class_shares():
    y = np.array([0] * 80 + [1] * 20)
    X = np.zeros((100, 1))
    _, _, y_tr, y_te = train_test_split(X, y, test_size=0.2, seed=0, stratify=y)
    assert np.bincount(y_te).tolist() == [16, 4] and np.bincount(y_tr).tolist() == [64, 16]


def test_split_errors():
    with pytest.raises(ValueError, match="same number of rows"):
        train_test_split(np.zeros((3, 1)), np.zeros(4))
    with pytest.raises(ValueError, match="both parts need at least one"):
        train_test_split(np.zeros((1, 1)), np.zeros(1))


def test_batches_cover_every_row_once_and_reshuffle_by_seed():
    X = np.arange(10)[:, None]
    y = np.arange(10)
    got = list(batches(X, y, batch_size=4, shuffle=True, seed=0))
    assert [len(b[0]) for b in got] == [4, 4, 2]
    assert sorted(np.concatenate([b[1] for b in got]).tolist()) == list(range(10))
    assert all(np.array_equal(xb[:, 0], yb) for xb, yb in got)
    plain = [yb.tolist() for _, yb in batches(X, y, 4, shuffle=False)]
    assert plain == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [len(b) for b in batches(X, batch_size=3, shuffle=False, drop_last=True)] == [3, 3, 3]


def test_dataloader_yields_tensors_and_new_order_each_epoch():
    loader = DataLoader(np.arange(8, dtype=np.float32)[:, None], np.arange(8), batch_size=8,
                        shuffle=True, seed=0)
    first = [yb.tolist() for _, yb in loader][0]
    second = [yb.tolist() for _, yb in loader][0]
    assert isinstance(next(iter(loader))[0], gg.Tensor)
    assert sorted(first) == sorted(second) == list(range(8)) and first != second
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(np.zeros((2, 1)), batch_size=0)

"""load_csv's chunked reader: the same values as a line-by-line parse across chunk boundaries,
errors that name the right line far into a file, no silent wrap-around or overflow, and memory
near the size of the arrays returned (no timing assertions: see benchmarks/csv_load.py)."""

import csv
import io
import os
import tracemalloc

import numpy as np
import pytest

from glassgrad.data import csv_body, load_csv


@pytest.fixture
def small_chunks(monkeypatch):
    """2 KB chunks, so that a file of a few hundred lines crosses many chunk boundaries."""
    monkeypatch.setattr(csv_body, "_CHUNK", 2048)


@pytest.fixture
def fast_only(monkeypatch):
    """Fail if any chunk needs the line-by-line parser (a clean file must not)."""
    def refuse(self, text, first_line):
        raise AssertionError(f"the exact parser ran on the chunk at line {first_line}")
    monkeypatch.setattr(csv_body.Body, "_exact", refuse)


def write(tmp_path, text, name="d.csv"):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def table(n, width, seed=0):
    rng = np.random.default_rng(seed)
    return np.round(rng.standard_normal((n, width)) * 100, 3)


def csv_text(values, delim=",", header=None, newline="\n", labels=None, target=-1):
    """The table as CSV text; ``labels`` (strings) replace the ``target`` column."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delim, lineterminator=newline)
    if header:
        w.writerow(header)
    for i, row in enumerate(values.tolist()):
        row = [repr(v) for v in row]
        if labels is not None:
            row[target] = labels[i]
        w.writerow(row)
    return buf.getvalue()


# ----------------------------------------------------------------------------- values
@pytest.mark.parametrize("delim, newline, header, target", [
    (",", "\n", True, -1),
    (";", "\r\n", False, 0),
    ("\t", "\n", True, 2),
    (",", "\r\n", False, 4),
])
def test_every_value_is_read_exactly_across_chunk_boundaries(
        tmp_path, small_chunks, fast_only, delim, newline, header, target):
    values = table(700, 5)
    names = [f"c{j}" for j in range(5)] if header else None
    p = write(tmp_path, csv_text(values, delim, names, newline))
    assert os.path.getsize(p) > 10 * 2048  # many chunks
    X, y = load_csv(p, target=target)
    np.testing.assert_array_equal(X, np.delete(values, target, axis=1).astype(np.float32))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, values[:, target].astype(np.float32))


def test_blank_lines_and_a_bom_do_not_shift_rows(tmp_path, small_chunks):
    values = table(300, 3)
    lines = csv_text(values).splitlines(keepends=True)
    text = "".join(line + ("\n" if i % 7 == 0 else "") + (" ,  ,\n" if i % 11 == 0 else "")
                   for i, line in enumerate(lines))
    X, y = load_csv(write(tmp_path, b"\xef\xbb\xbf" + text.encode()))
    np.testing.assert_array_equal(X, values[:, :2].astype(np.float32))
    np.testing.assert_array_equal(y, values[:, 2].astype(np.float32))


def test_word_labels_get_one_sorted_code_across_chunks(tmp_path, small_chunks, fast_only):
    values = table(900, 3)
    words = ["virginica", "setosa", "versicolor"]
    labels = [words[(i // 200) % 3] for i in range(900)]  # each chunk meets them in a new order
    p = write(tmp_path, csv_text(values, header=["a", "b", "species"], labels=labels))
    X, y, info = load_csv(p, return_info=True)
    assert info["classes"] == ["setosa", "versicolor", "virginica"]
    assert y.dtype == np.int64
    assert [info["classes"][k] for k in y] == labels
    np.testing.assert_array_equal(X, values[:, :2].astype(np.float32))


@pytest.mark.parametrize("column, dtype, expect", [
    (["0", "2", "1"], np.int64, [0, 2, 1]),
    (["0.0", "2.0", "1.0"], np.int64, [0, 2, 1]),  # whole numbers are labels, as before
    (["9007199254740992", "1", "0"], np.int64, [2**53, 1, 0]),  # exact in float64
    (["99999999999999999999", "1", "0"], np.float32, [1e20, 1, 0]),  # beyond int64: a float
    (["1e30", "1", "0"], np.float32, [1e30, 1, 0]),  # whole, but a float, never -2**63
    (["0.5", "2", "1"], np.float32, [0.5, 2, 1]),
])
def test_target_dtype_never_wraps_around(tmp_path, column, dtype, expect):
    text = "".join(f"{i},{v}\n" for i, v in enumerate(column))
    X, y = load_csv(write(tmp_path, text))
    assert y.dtype == dtype
    np.testing.assert_allclose(y.astype(np.float64), expect, rtol=1e-7)
    assert (y >= 0).all()


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("bad, match", [
    ("abc", r"line 1234, column 2 \('b'\): 'abc' is not a number"),
    ("", r"line 1234, column 2 \('b'\): the value is missing \(''\)"),
    ("nan", r"line 1234, column 2 \('b'\): the value is missing \('nan'\)"),
    ("inf", r"line 1234, column 2 \('b'\): 'inf' is not a finite number \(NaN and Inf are "
            r"refused"),
    ("-1e999", r"line 1234, column 2 \('b'\): '-1e999' is not a finite number"),
    ("1e300", r"line 1234, column 2 \('b'\): 1e300 is beyond float32's range \(±3.4e\+38\)"),
    ("1,5", r"line 1234 has 4 fields but the first row has 3"),
    ("x" * 140_000, r"line 1234: a field is longer than 131072 characters \(128 KB, the csv "
                    r"module's limit per value\)"),
])
def test_an_error_deep_in_the_file_names_its_line_and_column(tmp_path, small_chunks, bad,
                                                            match):
    lines = ["a,b,c"] + [f"{i},{i % 7}.5,{i % 3}" for i in range(2000)]
    lines[1233] = f"1,{bad},0"  # line 1234 of the file
    with pytest.raises(ValueError, match=match):
        load_csv(write(tmp_path, "\n".join(lines) + "\n"))


def test_a_bad_byte_deep_in_the_file_names_its_line(tmp_path, small_chunks):
    body = "".join(f"{i},{i},1\n" for i in range(999)).encode()
    p = write(tmp_path, b"a,b,c\n" + body + b"1,caf\xe9,0\n")
    with pytest.raises(ValueError, match=r"line 1001, character 6: byte 0xE9 is not UTF-8 "
                                         r"text.*Fix: save the file as UTF-8"):
        load_csv(p)


@pytest.mark.parametrize("text, match", [
    (",,,\n,,,\n\n", "the file holds only delimiters and blanks, no values"),
    (";;\n", "the file holds only delimiters and blanks"),
    ("1,2," + "7" * 140_000 + "\n", r"line 1: a field is longer than 131072 characters"),
    (b"a,b\n\xff\xfe1,2\n", r"line 2, character 1: byte 0xFF is not UTF-8"),
    ("a,b,c\n1,2,x\n3,4,NA\n", r"line 3, column 3 \('c'\): the class name is missing"),
    ("a,b,c\n1,2,x\n3,4,7\n", r"line 3, column 3 \('c'\): '7' is a number, but this column "
                              r"holds class names"),
])
def test_clear_errors(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        load_csv(write(tmp_path, text))


def test_a_directory_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"this is a directory, not a file. Fix: pass the path "
                                         r"of the CSV file inside it"):
        load_csv(tmp_path)


@pytest.mark.parametrize("kwargs, match", [
    ({"delimiter": ";;"}, r"delimiter=';;' must be one character"),
    ({"delimiter": '"'}, r"delimiter='\"' must be one character \(not a quote"),
    ({"target": True}, r"target=True is not a column index"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_csv(write(tmp_path, "1,2\n3,4\n"), **kwargs)


def test_classic_mac_line_ends_are_read(tmp_path):
    X, y = load_csv(write(tmp_path, "a,b\r1,2\r3,4\r"))
    assert X.tolist() == [[1], [3]] and y.tolist() == [2, 4]


# ----------------------------------------------------------------------------- memory
def test_memory_of_a_20_mb_file_stays_near_its_arrays(tmp_path):
    values = np.random.default_rng(0).standard_normal((5000, 20))
    buf = io.StringIO()
    np.savetxt(buf, values, fmt="%.6g", delimiter=",")
    block = buf.getvalue().encode()
    p = tmp_path / "big.csv"
    with open(p, "wb") as f:
        for _ in range(20 * 2**20 // len(block) + 1):
            f.write(block)
    size = os.path.getsize(p)
    tracemalloc.start()
    try:
        X, y = load_csv(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert X.shape == (size // len(block) * 5000, 19) and X.dtype == np.float32
    np.testing.assert_allclose(X[-5000:], values[:, :19], rtol=1e-5)
    # ~0.6x measured; the line-by-line reader it replaces took ~12x
    assert peak < 1.5 * size, f"peak {peak / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"

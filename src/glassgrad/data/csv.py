"""``load_csv``: the user's own table of numbers as ``(X, y)``.

Every error names the line and the column, so a bad value can be found in an editor. The rows
are read by NumPy's C reader in chunks (``csv_body.py``): a 200 MB file takes seconds and
little more memory than the arrays it returns.
"""

from __future__ import annotations

import csv as _csv
import io
import os
from typing import Any, BinaryIO

import numpy as np

from .csv_body import (
    MISSING,
    Body,
    Layout,
    chunks,
    count_lines,
    csv_error,
    decode,
    is_number,
)

_BOM = b"\xef\xbb\xbf"


def _sniff_delimiter(line: str) -> str:
    """The most frequent of ``, ; tab`` in the first line (``,`` when none appears)."""
    counts = {d: line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def _resolve_target(target: int | str, names: list[str] | None, width: int, path: str) -> int:
    if isinstance(target, str):
        if names is None:
            raise ValueError(
                f"load_csv({path!r}): target={target!r} is a column name, but the file has no "
                f"header row. Fix: pass the column's index instead (e.g. target=-1 for the last)."
            )
        if target not in names:
            raise ValueError(
                f"load_csv({path!r}): no column named {target!r}; the columns are {names}. "
                f"Fix: pass one of these names, or an index."
            )
        return names.index(target)
    if (isinstance(target, bool) or not isinstance(target, int | np.integer)
            or not -width <= target < width):
        raise ValueError(
            f"load_csv({path!r}): target={target!r} is not a column index of a table with "
            f"{width} columns. Fix: use an index in [-{width}, {width - 1}] or a column name."
        )
    return int(target) % width


def _open(path: str, delimiter: str | None) -> BinaryIO:
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1
                                  or delimiter in "\"\r\n"):
        raise ValueError(f"load_csv({path!r}): delimiter={delimiter!r} must be one character "
                         f"(not a quote or a newline), e.g. ',' or ';' or '\\t'.")
    if os.path.isdir(path):
        raise ValueError(f"load_csv({path!r}): this is a directory, not a file. Fix: pass the "
                         f"path of the CSV file inside it.")
    f = open(path, "rb")  # noqa: SIM115  (closed by load_csv's with)
    head = f.read(1 << 16)
    if b"\r" in head and b"\n" not in head:  # classic Mac OS line ends: make them \n
        with f:
            data = head + f.read()
        return io.BytesIO(data.replace(b"\r", b"\n"))
    f.seek(0)
    return f


_Row = tuple[list[str], int, str, int]  # fields, line number, delimiter, offset of the line


def _next_row(f: BinaryIO, path: str, delimiter: str | None, line_no: int
              ) -> tuple[_Row | None, bool]:
    """The next line that holds a value (blank lines and lines of delimiters only are
    skipped), or None at the end; and whether a line of delimiters only was skipped."""
    only_delims = False
    while True:
        start = f.tell()
        raw = f.readline()
        if not raw:
            return None, only_delims
        line_no += 1
        if start == 0 and raw.startswith(_BOM):
            raw, start = raw[len(_BOM):], len(_BOM)
        text = decode(raw, line_no, path)
        if not text.strip():
            continue
        delim = delimiter or _sniff_delimiter(text)
        try:
            fields = [c.strip() for c in next(_csv.reader([text], delimiter=delim))]
        except _csv.Error as e:
            raise csv_error(None, e, line_no, path, delim) from None
        if any(fields):
            return (fields, line_no, delim, start), only_delims
        only_delims = True


def load_csv(
    path: str | os.PathLike,
    target: int | str = -1,
    header: bool | str = "auto",
    delimiter: str | None = None,
    return_info: bool = False,
) -> tuple[Any, ...]:
    """Read a CSV of numbers: the ``target`` column becomes ``y``, the others ``X``.

    ``target`` is a column index (``-1``, the last, by default) or a header name. ``header``
    is True, False or ``"auto"`` (the first row is a header when none of its fields is a
    number). ``delimiter`` is guessed among ``,``, ``;`` and tab unless given. The file is
    read as UTF-8; blank lines are skipped.

    ``X`` is float32. ``y`` is int64 when every target value is a whole number of at most
    2⁵³ in size (class labels), float32 otherwise; a target column of words (e.g. ``setosa``)
    becomes class indices 0, 1, ... in sorted order of the words. With ``return_info=True`` a
    third value is a dict with ``feature_names``, ``target_name`` and ``classes`` (the words,
    or None).

    Missing values (empty, NA, NaN, ?, ...), non-numeric features, Inf, values beyond
    float32's range and rows of another length raise ``ValueError`` naming the line and
    column: glassgrad does not guess a fill value for you.
    """
    path = os.fspath(path)
    with _open(path, delimiter) as f:
        first, delim, data = _header_and_first_data_row(f, path, delimiter, header)
        names = None if first is data else first[0]
        width = len(first[0])
        if width < 2:
            raise ValueError(f"load_csv({path!r}): found a single column (delimiter {delim!r}); "
                             f"a data set needs feature columns and a target column. Fix: check "
                             f"the delimiter (pass delimiter=...).")
        t = _resolve_target(target, names, width, path)
        row, line_no, _, start = data
        words = len(row) > t and row[t].lower() not in MISSING and not is_number(row[t])
        layout = Layout(path, delim, width, t, names, words)
        f.seek(start)
        body = Body(layout, count_lines(f) + 1)
        f.seek(start)
        for raw, first_line in chunks(f, line_no):
            body.add(raw, first_line)
    X, y, classes = body.finish()
    if not return_info:
        return X, y
    info = {
        "feature_names": [n for j, n in enumerate(names) if j != t] if names else None,
        "target_name": names[t] if names else None,
        "classes": classes,
    }
    return X, y, info


def _header_and_first_data_row(f: BinaryIO, path: str, delimiter: str | None,
                               header: bool | str) -> tuple[_Row, str, _Row]:
    """(first row, delimiter, first data row): the same row when there is no header."""
    first, only_delims = _next_row(f, path, delimiter, 0)
    if first is None:
        what = ("holds only delimiters and blanks, no values" if only_delims else "is empty")
        raise ValueError(f"load_csv({path!r}): the file {what}. Fix: point to a CSV with a row "
                         f"per sample and a column per feature plus the target.")
    fields, line_no, delim, _ = first
    has_header = not any(is_number(c) for c in fields) if header == "auto" else bool(header)
    if not has_header:
        return first, delim, first
    data, _ = _next_row(f, path, delim, line_no)
    if data is None:
        raise ValueError(f"load_csv({path!r}): the file has a header but no data rows. Fix: add "
                         f"at least one row of numbers below the header.")
    return first, delim, data

"""``load_csv``: the user's own table of numbers as ``(X, y)``.

Every error names the line and the column, so a bad value can be found in an editor.
"""

from __future__ import annotations

import csv as _csv
import os
from typing import Any

import numpy as np

_MISSING = {"", "na", "n/a", "nan", "null", "none", "?", "-"}


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _sniff_delimiter(line: str) -> str:
    """The most frequent of ``, ; tab`` in the first line (``,`` when none appears)."""
    counts = {d: line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def _column_label(names: list[str] | None, j: int) -> str:
    return f"column {j + 1} ({names[j]!r})" if names else f"column {j + 1}"


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
    if not isinstance(target, int | np.integer) or not -width <= target < width:
        raise ValueError(
            f"load_csv({path!r}): target={target!r} is not a column index of a table with "
            f"{width} columns. Fix: use an index in [-{width}, {width - 1}] or a column name."
        )
    return int(target) % width


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
    number). ``delimiter`` is guessed among ``,``, ``;`` and tab unless given.

    ``X`` is float32. ``y`` is int64 when every target value is a whole number (class labels),
    float32 otherwise; a target column of words (e.g. ``setosa``) becomes class indices
    0, 1, ... in sorted order of the words. With ``return_info=True`` a third value is a dict
    with ``feature_names``, ``target_name`` and ``classes`` (the words, or None).

    Missing values (empty, NA, NaN, ?, ...) and non-numeric features raise ``ValueError``
    naming the line and column: glassgrad does not guess a fill value for you.
    """
    path = os.fspath(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        text = f.read()
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), None)
    if first is None:
        raise ValueError(f"load_csv({path!r}): the file is empty. Fix: point to a CSV with a "
                         f"row per sample and a column per feature plus the target.")
    delim = delimiter or _sniff_delimiter(first)
    # Keep the 1-based line number of each row for error messages; skip blank lines.
    rows = [(i + 1, [c.strip() for c in r]) for i, r in
            enumerate(_csv.reader(lines, delimiter=delim)) if r and any(c.strip() for c in r)]
    # "auto": a header is a first row with no number in it
    auto = not any(_is_number(c) for c in rows[0][1])
    has_header = auto if header == "auto" else bool(header)
    names = rows[0][1] if has_header else None
    data = rows[1:] if has_header else rows
    width = len(rows[0][1])
    if not data:
        raise ValueError(f"load_csv({path!r}): the file has a header but no data rows. Fix: add "
                         f"at least one row of numbers below the header.")
    if width < 2:
        raise ValueError(f"load_csv({path!r}): found a single column (delimiter {delim!r}); a "
                         f"data set needs feature columns and a target column. Fix: check the "
                         f"delimiter (pass delimiter=...).")
    t = _resolve_target(target, names, width, path)
    for line_no, r in data:
        if len(r) != width:
            raise ValueError(f"load_csv({path!r}): line {line_no} has {len(r)} fields but the "
                             f"first row has {width}. Fix: give every row the same columns.")
    features = [j for j in range(width) if j != t]
    X = np.empty((len(data), len(features)), dtype=np.float32)
    for i, (line_no, r) in enumerate(data):
        for k, j in enumerate(features):
            X[i, k] = _parse(r[j], line_no, j, names, path)
    y, classes = _parse_target([r[t] for _, r in data], [n for n, _ in data], t, names, path)
    if not return_info:
        return X, y
    info = {
        "feature_names": [names[j] for j in features] if names else None,
        "target_name": names[t] if names else None,
        "classes": classes,
    }
    return X, y, info


def _parse(s: str, line_no: int, j: int, names: list[str] | None, path: str) -> float:
    where = f"line {line_no}, {_column_label(names, j)}"
    if s.lower() in _MISSING:
        raise ValueError(f"load_csv({path!r}): {where}: the value is missing ({s!r}). Fix: "
                         f"fill it in or drop that row; glassgrad does not guess values.")
    try:
        v = float(s)
    except ValueError:
        raise ValueError(f"load_csv({path!r}): {where}: {s!r} is not a number. Fix: encode it "
                         f"as a number or remove the column.") from None
    if not np.isfinite(v):
        raise ValueError(f"load_csv({path!r}): {where}: {s!r} is not a finite number. Fix: "
                         f"replace it with a finite value or drop that row.")
    return v


def _parse_target(values: list[str], line_nos: list[int], t: int, names: list[str] | None,
                  path: str) -> tuple[np.ndarray, list[str] | None]:
    words = [v for v in values if v.lower() not in _MISSING and not _is_number(v)]
    if words and len(words) == len(values):  # a column of class names
        classes = sorted(set(values))
        index = {c: i for i, c in enumerate(classes)}
        return np.array([index[v] for v in values], dtype=np.int64), classes
    y = np.array([_parse(v, n, t, names, path) for v, n in zip(values, line_nos)])
    if np.all(y == np.round(y)):
        return y.astype(np.int64), None
    return y.astype(np.float32), None

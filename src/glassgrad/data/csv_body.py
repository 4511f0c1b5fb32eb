"""The rows of a CSV below its header, read in chunks: NumPy's C reader (``np.loadtxt``) for
speed, and the ``csv`` module line by line for the chunk where that reader stops or finds a
value glassgrad refuses, so that the error names the line and the column.

Memory stays near the result's size: the rows are counted first (a byte count of newlines),
``X`` is allocated once in float32, and each chunk of ``_CHUNK`` bytes is parsed in float64
and copied in.
"""

from __future__ import annotations

import csv as _csv
import io
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

# Bytes per np.loadtxt call. Its temporaries are a few times this; larger chunks are no
# faster (measured: ~130 MB/s from 1 to 8 MiB).
_CHUNK = 1 << 20
MISSING = {"", "na", "n/a", "nan", "null", "none", "?", "-"}
_F32_MAX = float(np.finfo(np.float32).max)
_EXACT_INT = 2**53  # every whole float64 up to this is exactly an integer


@dataclass
class Layout:
    """What the header row decided: where to read and what each column is."""

    path: str
    delim: str
    width: int
    target: int
    names: list[str] | None
    words: bool  # the target column holds class names, not numbers

    def at(self, line: int, j: int) -> str:
        """Where a value is, as an editor shows it: "line 3, column 2 ('b')"."""
        name = f" ({self.names[j]!r})" if self.names else ""
        return f"line {line}, column {j + 1}{name}"

    def error(self, where: str, message: str) -> ValueError:
        return ValueError(f"load_csv({self.path!r}): {where}: {message}")


def is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def decode(raw: bytes, first_line: int, path: str) -> str:
    """``raw`` as UTF-8 text; an error names the line and the byte that is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = first_line + raw.count(b"\n", 0, e.start)
        col = e.start - raw.rfind(b"\n", 0, e.start)
        raise ValueError(
            f"load_csv({path!r}): line {line}, character {col}: byte 0x{raw[e.start]:02X} is "
            f"not UTF-8 text, and glassgrad reads CSV files as UTF-8. Fix: save the file as "
            f"UTF-8 (e.g. iconv -f latin1 -t utf-8 in.csv > out.csv)."
        ) from None


def count_lines(f: BinaryIO) -> int:
    """Newlines from the current position to the end (the file position is left at the end)."""
    n = 0
    while block := f.read(_CHUNK):
        n += block.count(b"\n")
    return n


def chunks(f: BinaryIO, first_line: int) -> Iterator[tuple[bytes, int]]:
    """(whole lines, number of the first), about ``_CHUNK`` bytes at a time."""
    rest = b""
    line = first_line
    while block := f.read(_CHUNK):
        block = rest + block
        cut = block.rfind(b"\n") + 1  # whole lines only: a newline never splits a character
        if cut == 0:
            rest = block
            continue
        piece, rest = block[:cut], block[cut:]
        yield piece, line
        line += piece.count(b"\n")
    if rest:
        yield rest, line


def csv_error(lay: Layout | None, e: Exception, line: int, path: str = "", delim: str = ","
              ) -> ValueError:
    """The ``csv`` module's complaint about ``line``, with the limit it refers to."""
    path, delim = (lay.path, lay.delim) if lay else (path, delim)
    if "field limit" in str(e):
        limit = _csv.field_size_limit()
        why = (f"a field is longer than {limit} characters ({limit // 1024} KB, the csv "
               f"module's limit per value); no number is that long. Fix: check the delimiter "
               f"(this file is read with {delim!r}).")
    else:
        why = f"this is not valid CSV ({e}). Fix: check the file and the delimiter."
    return ValueError(f"load_csv({path!r}): line {line}: {why}")


class Body:
    """Fills ``X`` (float32) and the target column (float64 values, or class codes) chunk by
    chunk; ``finish()`` returns ``(X, y, classes)``."""

    def __init__(self, layout: Layout, max_rows: int) -> None:
        self.lay = layout
        self.X = np.empty((max_rows, layout.width - 1), dtype=np.float32)
        self.y = np.empty(max_rows, dtype=np.int64 if layout.words else np.float64)
        self.n = 0
        self.codes: dict[str, int] = {}  # class name -> code in order of appearance

    def add(self, raw: bytes, first_line: int) -> None:
        """Parse and store the rows of ``raw`` (whole lines, the first numbered
        ``first_line``)."""
        if not raw.strip():
            return
        parsed = self._fast(raw)
        if parsed is None or not self._store(*parsed):
            text = decode(raw, first_line, self.lay.path)
            self._store(*self._exact(text, first_line))  # raises, naming the line

    # ------------------------------------------------------------------ parsing
    def _fast(self, raw: bytes) -> tuple[np.ndarray, np.ndarray] | None:
        """(rows of all columns as float64, target column) by NumPy's C reader, or None when it
        refuses the chunk (a word, a missing value, ragged rows, blank-looking lines...)."""
        lay = self.lay
        try:
            with warnings.catch_warnings():  # (NumPy's note that blank lines are not rows)
                warnings.simplefilter("ignore", UserWarning)
                rows = np.loadtxt(io.BytesIO(raw), delimiter=lay.delim, ndmin=2,
                                  comments=None, quotechar='"', encoding="utf-8",
                                  dtype=str if lay.words else np.float64)
        except ValueError:  # (UnicodeDecodeError included: the exact pass locates it)
            return None
        if rows.shape[1] != lay.width:
            return None
        if not lay.words:
            return rows, rows[:, lay.target]
        target = np.char.strip(rows[:, lay.target])
        rows[:, lay.target] = "0"  # (a placeholder, so that one cast converts the rest)
        try:
            return rows.astype(np.float64), target
        except ValueError:
            return None

    def _exact(self, text: str, first_line: int) -> tuple[np.ndarray, list]:
        """The chunk parsed line by line with the ``csv`` module, every value checked: raises
        ValueError naming the line and the column of the first bad value."""
        lay = self.lay
        reader = _csv.reader(text.splitlines(), delimiter=lay.delim)
        rows, targets = [], []
        while True:
            try:
                r = next(reader)
            except StopIteration:
                break
            except _csv.Error as e:
                raise csv_error(lay, e, first_line + reader.line_num - 1) from None
            line = first_line + reader.line_num - 1
            r = [c.strip() for c in r]
            if not any(r):
                continue
            if len(r) != lay.width:
                raise ValueError(f"load_csv({lay.path!r}): line {line} has {len(r)} fields but "
                                 f"the first row has {lay.width}. Fix: give every row the same "
                                 f"columns (check for a missing or an extra delimiter).")
            rows.append([0.0 if j == lay.target and lay.words else self._value(s, line, j)
                         for j, s in enumerate(r)])
            targets.append(self._word(r[lay.target], line) if lay.words else
                           rows[-1][lay.target])
        return np.array(rows, dtype=np.float64).reshape(-1, lay.width), targets

    def _value(self, s: str, line: int, j: int) -> float:
        lay = self.lay
        where = lay.at(line, j)
        if s.lower() in MISSING:
            raise lay.error(where, f"the value is missing ({s!r}). Fix: fill it in or "
                                  f"drop that row; glassgrad does not guess values.")
        try:
            v = float(s)
        except ValueError:
            raise lay.error(where, f"{s!r} is not a number. Fix: encode it as a number "
                                  f"or remove the column.") from None
        if not math.isfinite(v):
            raise lay.error(where, f"{s!r} is not a finite number (NaN and Inf are "
                                  f"refused: they would make every gradient NaN). Fix: replace "
                                  f"it with a finite value or drop that row.")
        if abs(v) > _F32_MAX:
            raise lay.error(where, f"{s} is beyond float32's range (±{_F32_MAX:.3g}), "
                                  f"the precision glassgrad trains in. Fix: rescale the column "
                                  f"(e.g. to its logarithm).")
        return v

    def _word(self, s: str, line: int) -> str:
        lay = self.lay
        where = lay.at(line, lay.target)
        if s.lower() in MISSING:
            raise lay.error(where, f"the class name is missing ({s!r}). Fix: fill it "
                                  f"in or drop that row.")
        if is_number(s):
            raise lay.error(where, f"{s!r} is a number, but this column holds class "
                                  f"names (the first row has a word). Fix: use one kind of "
                                  f"label in the column.")
        return s

    # ------------------------------------------------------------------ storing
    def _store(self, rows: np.ndarray, target: np.ndarray | list) -> bool:
        """Copy one chunk in; False (nothing kept) when a value is non-finite or beyond
        float32, which only the exact parser can locate."""
        lay, n, k = self.lay, self.n, len(rows)
        X = self.X[n:n + k]
        with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused just below
            X[:, :lay.target] = rows[:, :lay.target]  # (slices, not a fancy index: no copy)
            X[:, lay.target:] = rows[:, lay.target + 1:]
        if not lay.words:
            y = np.asarray(target, dtype=np.float64)
            if not (np.isfinite(X).all() and np.isfinite(y).all()
                    and (k == 0 or np.abs(y).max() <= _F32_MAX)):
                return False
            self.y[n:n + k] = y
        else:
            codes = self._encode(target)
            if codes is None:
                return False
            self.y[n:n + k] = codes
        self.n += k
        return True

    def _encode(self, words: np.ndarray | list) -> np.ndarray | None:
        """Class codes (in order of first appearance) of a chunk's class names; None if one
        is missing or a number."""
        uniq, inverse = np.unique(np.asarray(words, dtype=str), return_inverse=True)
        names = uniq.tolist()
        if any(w.lower() in MISSING or is_number(w) for w in names if w not in self.codes):
            return None
        for w in names:
            self.codes.setdefault(w, len(self.codes))
        return np.array([self.codes[w] for w in names], dtype=np.int64)[inverse]

    def finish(self) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
        n = self.n
        self.X.resize((n, self.X.shape[1]), refcheck=False)  # shrinks in place
        y = self.y[:n]
        if self.lay.words:
            classes = sorted(self.codes)
            rank = np.empty(len(classes), dtype=np.int64)
            rank[[self.codes[c] for c in classes]] = np.arange(len(classes))
            return self.X, rank[y], classes
        whole = bool(np.all(y == np.round(y))) and (n == 0 or np.abs(y).max() <= _EXACT_INT)
        return self.X, y.astype(np.int64 if whole else np.float32), None

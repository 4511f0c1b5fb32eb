"""Numbers and arrays as short, stable text: the one place every renderer formats values.

Values print with ``precision`` significant digits (``%g``), so the seeds' numbers read as
they do by hand (``-12``, ``0.6``), ``-0`` never appears, and large arrays are summarized.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def sup(n: int) -> str:
    """``3`` -> ``³`` (layer numbers in textbook notation: W¹, δ²)."""
    return str(n).translate(SUPERSCRIPT)


def num(x: Any, precision: int = 6) -> str:
    """One number with ``precision`` significant digits; ``-0`` prints as ``0``."""
    x = float(x)
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    s = f"{x:.{precision}g}"
    return "0" if s in ("-0", "0", "-0.0") else s


def arr(a: Any, precision: int = 6, limit: int = 8) -> str:
    """An array as ``[1, 2, 3]`` (nested for matrices); more than ``limit`` entries per axis
    are summarized as first three, ``…``, last two."""
    a = np.asarray(a)
    if a.ndim == 0:
        return num(a, precision)
    if a.size == 0:
        return "[]"
    if a.ndim > 2:
        return f"array of shape {a.shape}, range [{num(a.min(), 4)}, {num(a.max(), 4)}]"
    idx = pick(len(a), limit)
    parts = ["…" if i is None else arr(a[i], precision, limit) for i in idx]
    return "[" + ", ".join(parts) + "]"


def pick(n: int, limit: int) -> list[int | None]:
    """Indices to show out of ``n``: all if ``n <= limit``, else the first three, ``None``
    (an ellipsis) and the last two, so a 512-unit layer prints as 6 rows."""
    if n <= limit:
        return list(range(n))
    return [0, 1, 2, None, n - 2, n - 1]


def table(headers: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    """Rows padded into aligned columns (``align``: one ``l`` or ``r`` per column)."""
    align = align or "l" * len(headers)
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: list[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            pad = cell.rjust if align[i] == "r" else cell.ljust
            out.append(pad(widths[i]))
        return "  ".join(out).rstrip()

    return [line(headers), line(["─" * w for w in widths])] + [line(r) for r in rows]

"""The named tuples some functions return, as ``torch.return_types``: ``x.max(dim)`` is
``max(values=..., indices=...)``, usable as a tuple (``values, indices = x.max(1)``) or by
field (``x.max(1).indices``)."""

from __future__ import annotations

from collections import namedtuple

max = namedtuple("max", ["values", "indices"])  # noqa: A001, PYI024
min = namedtuple("min", ["values", "indices"])  # noqa: A001, PYI024
sort = namedtuple("sort", ["values", "indices"])  # PYI024
topk = namedtuple("topk", ["values", "indices"])  # PYI024

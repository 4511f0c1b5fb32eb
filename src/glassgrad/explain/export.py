"""JSON export of a trace, in the stable, documented schema ``schema.json`` (next to this file).

The schema id ``glassgrad.explain/1`` is in every document; fields are only ever added
within version 1. Arrays are nested lists of numbers; NaN and ±Inf, which JSON lacks, are
the strings "nan", "inf" and "-inf". ``validate`` needs the optional ``jsonschema`` package.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import numpy as np

from .records import Check

SCHEMA_ID = "glassgrad.explain/1"


def _v(a: Any) -> Any:
    """An array (or None) as JSON: nested lists, non-finite numbers as strings."""
    if a is None:
        return None
    a = np.asarray(a)
    if a.dtype.kind == "b":
        a = a.astype(np.int64)
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        return _nonfinite(a.astype(object).tolist())
    return a.tolist()


def _nonfinite(x: Any) -> Any:
    if isinstance(x, list):
        return [_nonfinite(y) for y in x]
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return x


def _check(c: Check) -> dict:
    return {"name": c.name, "ok": c.ok, "title": c.title, "detail": list(c.detail)}


def to_dict(tr: Any) -> dict:
    """The trace as a JSON-ready dict (see ``schema.json``)."""
    head = {"schema": SCHEMA_ID, "kind": tr.kind, "title": tr.title}
    checks = [_check(c) for c in tr.checks]
    if tr.kind == "net":
        return {**head, "network": {"sizes": list(tr.sizes), "activations": list(tr.activations)},
                "loss": {"name": tr.loss.name, "formula": tr.loss.formula,
                         "derivative": tr.loss.derivative, "reduction": tr.loss.reduction},
                "lr": tr.lr, "samples": tr.n,
                "steps": [_net_step(s) for s in tr.steps], "checks": checks}
    root = tr.root
    return {
        **head,
        "root": root.id if root else None,
        "nodes": [{"id": n.id, "name": n.name, "kind": n.kind, "op": n.op,
                   "inputs": list(n.inputs), "expr": n.expr, "formula": n.formula,
                   "shape": list(n.value.shape), "dtype": str(n.value.dtype),
                   "value": _v(n.value), "grad": _v(n.grad)} for n in tr.nodes],
        "steps": [{"id": s.id, "kind": s.kind, "pass": s.pass_index, "node": s.node,
                   "parent": s.parent, "position": s.position, "upstream": _v(s.upstream),
                   "formula": s.formula, "local": _v(s.local), "local_kind": s.local_kind,
                   "product": _v(s.product), "previous": _v(s.previous),
                   "added": _v(s.added), "note": s.note} for s in tr.steps],
        "checks": checks,
    }


def _net_step(st: Any) -> dict:
    return {
        "index": st.index, "x": _v(st.x), "y": _v(st.y), "yhat": _v(st.yhat),
        "loss": _v(st.loss), "sample_losses": _v(st.sample_losses),
        "loss_after": _v(st.loss_after),
        "layers": [{"index": ly.index, "module": ly.module, "activation": ly.activation,
                    **{k: _v(getattr(ly, k)) for k in (
                        "W", "b", "a_in", "z", "a", "fprime", "back", "delta", "dW", "db",
                        "W_after", "b_after")}, "frozen": list(ly.frozen)}
                   for ly in st.layers],
    }


def to_json(tr: Any, indent: int | None = 2) -> str:
    return json.dumps(to_dict(tr), indent=indent, ensure_ascii=False) + "\n"


def load_schema() -> dict:
    """The JSON Schema (draft 2020-12) that every exported trace validates against."""
    text = resources.files(__package__).joinpath("schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def validate(doc: dict | str) -> None:
    """Raise ``jsonschema.ValidationError`` if ``doc`` (a dict or JSON text) does not follow
    the schema. Needs ``jsonschema`` (``pip install jsonschema``)."""
    try:
        import jsonschema
    except ImportError:
        raise ImportError("validating a trace needs the jsonschema package: "
                          "pip install jsonschema") from None
    if isinstance(doc, str):
        doc = json.loads(doc)
    jsonschema.validate(doc, load_schema())

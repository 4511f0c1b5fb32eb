"""The computational graph as a picture: Graphviz DOT text always, SVG/PNG through the
``graphviz`` package and the ``dot`` program.

Op level, in the style of the seeds' figures: each value is a box with its name, its value
(green) and its gradient (red); each op is a circle; every edge carries, in red, the gradient
that flowed back along it (so a node used twice shows both parts of its sum). Layer level:
units in columns, each with its bias (before → after the update), z, a (green) and δ (red);
each edge carries its weight (before → after) and, in red, the weight's gradient ∂L/∂w; the
outputs and the targets meet in the loss node, whose edges carry ∂L/∂ŷ (∂ℓᵢ/∂ŷ per sample of
a batch).
"""

from __future__ import annotations

import os
from html import escape
from typing import Any

from ..fileio import write_atomic
from ..ops import OPS
from .fmt import arr, pick, sup

GREEN, RED = "#1a7f37", "#cf222e"


def _s(a: Any, p: int) -> str:
    text = arr(a, p, limit=4)
    return escape(text if len(text) <= 48 else text[:45] + "…")


def to_dot(tr: Any, precision: int = 4, show_all: bool = False) -> str:
    """The trace's graph as DOT text (render it with ``dot -Tsvg``)."""
    if tr.kind == "net":
        return _net_dot(tr, precision, show_all)
    return _op_dot(tr, precision)


def _head(name: str) -> list[str]:
    return [
        f"digraph {name} {{",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=10, color="#555555"];',
    ]


def _op_dot(tr: Any, p: int) -> str:
    lines = _head("trace")
    for n in tr.nodes:
        grad = (f'<td><font color="{RED}">grad {_s(n.grad, p)}</font></td>'
                if n.grad is not None else "")
        style = ' style="dashed"' if n.kind == "constant" else ""
        lines.append(
            f'  v{n.id} [shape=plain, label=<<table border="0" cellborder="1" cellspacing="0" '
            f'cellpadding="4"><tr><td{style}><b>{escape(n.name)}</b></td>'
            f'<td><font color="{GREEN}">{_s(n.value, p)}</font></td>{grad}</tr></table>>];'
        )
        if n.op is not None:
            entry = OPS.get(n.op)  # a binary op's infix symbol (Op.infix), else its name
            sym = escape(entry.infix if entry is not None and entry.infix else n.op)
            lines.append(f'  o{n.id} [shape=circle, label="{sym}", width=0.4, fixedsize=false];')
            lines.append(f"  o{n.id} -> v{n.id};")
    sent: dict[tuple[int, int, int], Any] = {}
    for s in tr.steps:
        if s.kind == "chain" and s.pass_index == (tr.steps[-1].pass_index if tr.steps else 1):
            sent[(s.node, s.parent, s.position)] = s.product
    for n in tr.nodes:
        for pos, i in enumerate(n.inputs):
            g = sent.get((n.id, i, pos))
            label = f' [label=<<font color="{RED}">{_s(g, p)}</font>>]' if g is not None else ""
            lines.append(f"  v{i} -> o{n.id}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _net_dot(tr: Any, p: int, show_all: bool) -> str:
    st = tr.steps[0]
    limit = 10 ** 9 if show_all else 6
    lines = _head("network")
    lines.append("  splines=line; nodesep=0.3; ranksep=1.2; newrank=true;")

    def cell(v: Any) -> str:
        return _s(v if tr.n > 1 else v[0], p)

    def column(ids: list[str]) -> None:  # one layer per column, units top to bottom
        if len(ids) > 1:
            lines.append("  { rank=same; " + " -> ".join(ids) + " [style=invis]; }")

    prev: list[tuple[int, str]] = []
    for k in pick(st.x.shape[1], limit):
        nid = f"x_{'gap' if k is None else k}"
        text = "…" if k is None else f"x{k + 1} = {cell(st.x[:, k])}"
        lines.append(f'  {nid} [shape=box, style=rounded, label="{text}"];')
        if k is not None:
            prev.append((k, nid))
    column([f"x_{'gap' if k is None else k}" for k in pick(st.x.shape[1], limit)])
    for ly in st.layers:
        cur: list[tuple[int, str]] = []
        ids = []
        for j in pick(ly.z.shape[1], limit):
            nid = f"u{ly.index}_{'gap' if j is None else j}"
            ids.append(nid)
            if j is None:
                lines.append(f'  {nid} [shape=plaintext, label="…"];')
                continue
            rows = [f"<b>layer {ly.index}, unit {j + 1}</b>"]
            if ly.b is not None:
                rows.append(f"b {_w(ly.b[j], ly.b_after[j], p)}")
            rows += [f"z = {cell(ly.z[:, j])}", f'<font color="{GREEN}">a = {cell(ly.a[:, j])}'
                     f"</font>", f'<font color="{RED}">δ = {cell(ly.delta[:, j])}</font>']
            body = "".join(f"<tr><td>{r}</td></tr>" for r in rows)
            lines.append(f'  {nid} [shape=plain, label=<<table border="0" cellborder="1" '
                         f'cellspacing="0" cellpadding="3">{body}</table>>];')
            cur.append((j, nid))
            for k, src in prev:
                lines.append(f"  {src} -> {nid} [label=<{_edge(ly, j, k, p)}>];")
        column(ids)
        prev = cur
    lines += _loss_nodes(tr, st, prev, p, cell)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _edge(ly: Any, j: int, k: int, p: int) -> str:
    """Weight Wˡ[j,k] on its edge: before → after, and its gradient in red."""
    return (f"W{sup(ly.index)}[{j + 1},{k + 1}] {_w(ly.W[j, k], ly.W_after[j, k], p)}<br/>"
            f'<font color="{RED}">∂L/∂w = {_s(ly.dW[j, k], p)}</font>')


def _loss_nodes(tr: Any, st: Any, outputs: list[tuple[int, str]], p: int,
                cell: Any) -> list[str]:
    """The loss node, fed by every output unit (edge: ∂ℓ/∂ŷ) and by its target."""
    out = st.layers[-1]
    ell = "ℓᵢ" if tr.n > 1 else "L"  # as the tables say it
    formula = escape(tr.loss.formula.split("  ")[0])  # "L = ½ Σ (ŷ − y)²", no comment
    lines = [f'  loss [shape=box, style="rounded,bold", label="{formula} = {_s(st.loss, p)}"];']
    if st.y.ndim != 2:  # ce: one class index per sample, one target node
        lines.append(f'  y_0 [shape=box, style="rounded,dashed", label="y = class '
                     f'{_s(st.y if tr.n > 1 else st.y[0], p)}"];')
        lines.append("  y_0 -> loss [style=dashed];")
    for j, nid in outputs:
        lines.append(f'  {nid} -> loss [label=<<font color="{RED}">∂{ell}/∂ŷ = '
                     f'{cell(out.back[:, j])}</font>>];')
        if st.y.ndim == 2:
            lines.append(f'  y_{j} [shape=box, style="rounded,dashed", '
                         f'label="y{j + 1} = {cell(st.y[:, j])}"];')
            lines.append(f"  y_{j} -> loss [style=dashed];")
    return lines


def _w(before: Any, after: Any, p: int) -> str:
    return escape(f"{arr(before, p, 4)} → {arr(after, p, 4)}")


def render_graph(tr: Any, format: str = "svg", path: str | os.PathLike | None = None,
                 precision: int = 4, show_all: bool = False) -> bytes:
    """The graph rendered by Graphviz as ``format`` ("svg", "png", "pdf"); written to
    ``path`` (atomically) when given. Needs ``pip install "glassgrad[plot]"`` and the
    Graphviz ``dot`` program."""
    try:
        import graphviz
    except ImportError:
        raise ImportError('drawing the graph as SVG or PNG needs the graphviz package: '
                          'pip install "glassgrad[plot]" (DOT text works without it: '
                          'trace.to_dot())') from None
    dot = to_dot(tr, precision=precision, show_all=show_all)
    try:
        data = graphviz.Source(dot).pipe(format=format)
    except graphviz.ExecutableNotFound:
        raise RuntimeError("the Graphviz 'dot' program is not installed or not on PATH. "
                           "Fix: apt-get install graphviz (Debian/Ubuntu), brew install "
                           "graphviz (macOS), or write DOT text with --format dot") from None
    if path is not None:
        write_atomic(path, data)
    return data

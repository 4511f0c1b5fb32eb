"""LaTeX-ready formulas: an ``align*`` environment to paste into a document or a notebook.

Op level: each forward node's definition and value, then each backward step as
upstream × local = sent, and each accumulation. Layer level: the textbook equations with the
numbers plugged in, vectors as columns (one column per sample for a batch).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..ops import OPS
from .fmt import num, pick

_CHARS = {
    "∂": r"\partial ", "·": r"\cdot ", "−": "-", "×": r"\times ", "σ": r"\sigma ",
    "Σ": r"\sum ", "√": r"\sqrt", "≤": r"\le ", "≥": r"\ge ", "½": r"\tfrac{1}{2}",
    "⊙": r"\odot ", "¬": r"\neg ", "δ": r"\delta ", "α": r"\alpha ", "ŷ": r"\hat y",
    "′": "'", "→": r"\to ", "ᵢ": "_i", "ⱼ": "_j", "ₖ": "_k", "@": r"\,",
}
_SUPERS = dict(zip("⁰¹²³⁴⁵⁶⁷⁸⁹⁻ᵀᵇˣᶻ", ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "-",
                                       r"\top", "b", "x", "z"]))
_FUNCS = {"ln", "log", "exp", "sin", "cos", "tanh", "max", "min"}


def tex(s: str) -> str:
    """A Unicode formula (``∂(a·b)/∂a = b``) as LaTeX math: for an op without a LaTeX form
    in the table (a user's ``autograd.Function``); the table's ops have their own."""
    s = re.sub(r"([#$%&_{}])", r"\\\1", s)
    s = re.sub(f"[{''.join(_SUPERS)}]+", lambda m: "^{" + "".join(_SUPERS[c] for c in
                                                                 m.group()) + "}", s)
    s = "".join(_CHARS.get(c, c) for c in s)
    return re.sub(r"(?<![\\A-Za-z])([A-Za-z]{2,})",
                  lambda m: f"\\{m.group(1)} " if m.group(1) in _FUNCS
                  else f"\\text{{ {m.group(1)} }}", s)


def name(s: str) -> str:
    """A node name as a LaTeX symbol: ``t1`` -> ``t_{1}``, ``x`` -> ``x``."""
    m = re.fullmatch(r"([A-Za-z])(\d+)", s)
    if m:
        return f"{m.group(1)}_{{{m.group(2)}}}"
    if re.fullmatch(r"[A-Za-z]|-?\d+(\.\d+)?", s):
        return s
    return r"\mathrm{" + re.sub(r"([#$%&_{}])", r"\\\1", s) + "}"


def _n(x: Any, p: int) -> str:
    t = num(x, p)
    if "e" in t:
        mant, exp = t.split("e")
        t = rf"{mant}\times 10^{{{int(exp)}}}"
    return f"({t})" if t.startswith("-") else t


def mat(a: Any, p: int = 6, limit: int = 6, bare: bool = False) -> str:
    """A scalar, or an array as a ``bmatrix`` (vectors as columns), summarized past ``limit``."""
    a = np.asarray(a)
    if a.ndim == 0:
        return num(a, p) if bare else _n(a, p)
    if a.ndim == 1:
        a = a.reshape(-1, 1)
    rows = []
    for i in pick(a.shape[0], limit):
        if i is None:
            rows.append(" & ".join(r"\vdots" if j is not None else r"\ddots"
                                   for j in pick(a.shape[1], limit)))
            continue
        rows.append(" & ".join(r"\cdots" if j is None else num(a[i, j], p)
                               for j in pick(a.shape[1], limit)))
    return r"\begin{bmatrix}" + r" \\ ".join(rows) + r"\end{bmatrix}"


def render_latex(tr: Any, precision: int = 6, show_all: bool = False) -> str:
    lines = _net(tr, precision, show_all) if tr.kind == "net" else _ops(tr, precision)
    return "\\begin{align*}\n" + " \\\\\n".join(lines) + "\n\\end{align*}\n"


def _ops(tr: Any, p: int) -> list[str]:
    nodes = {n.id: n for n in tr.nodes}
    out = []
    for n in tr.nodes:
        if n.op is None:
            if n.kind == "input":
                out.append(f"{name(n.name)} &= {mat(n.value, p, bare=True)}")
            continue
        out.append(f"{name(n.name)} &= {_expr(n, nodes)} = {mat(n.value, p, bare=True)}")
    root = tr.root
    if root is None:
        return out
    r = name(root.name)
    for s in tr.steps:
        if s.kind == "seed":
            out.append(rf"\frac{{\partial {r}}}{{\partial {r}}} &= {mat(s.product, p, bare=True)}")
        elif s.kind == "chain":
            src, dst = name(nodes[s.node].name), name(nodes[s.parent].name)
            local = (mat(s.local, p) if s.local is not None and s.local_kind == "elementwise"
                     else r"\cdots")
            op = r"\cdot" if s.local_kind == "elementwise" else r"\;\text{with}\;"
            sent = mat(s.product, p, bare=True)
            out.append(
                rf"\frac{{\partial {r}}}{{\partial {dst}}} &\mathrel{{+}}= "
                rf"\underbrace{{{mat(s.upstream, p)}}}_{{\partial {r}/\partial {src}}} {op} "
                rf"\underbrace{{{local}}}_{{{s.formula_latex or tex(s.formula or '')}}} = {sent}"
            )
        else:
            dst = name(nodes[s.parent].name)
            out.append(rf"\frac{{\partial {r}}}{{\partial {dst}}} &= {mat(s.previous, p)} + "
                       rf"{mat(s.added, p)} = {mat(s.product, p, bare=True)}")
    return out


# The op table's infix symbols (Op.infix) in LaTeX; a product of matrices is written by
# juxtaposition, a power as a superscript.
_LATEX_INFIX = {"+": "+", "−": "-", "·": r"\cdot", "/": "/", "@": ""}


def _expr(n: Any, nodes: dict) -> str:
    args = [name(nodes[i].name) for i in n.inputs]
    entry = OPS.get(n.op)
    infix = entry.infix if entry is not None and len(args) == 2 else ""
    if infix == "^":
        return f"{{{args[0]}}}^{{{args[1]}}}"
    if infix:
        return f"{args[0]} {_LATEX_INFIX.get(infix, infix)} {args[1]}"
    if n.op == "neg":
        return f"-{args[0]}"
    op = n.op.replace("_", "\\_")
    return rf"\operatorname{{{op}}}({', '.join(args)})"


def _net(tr: Any, p: int, show_all: bool) -> list[str]:
    limit = 10 ** 9 if show_all else 6
    c = "" if tr.loss.reduction == "sum" or tr.n == 1 else rf"\tfrac{{1}}{{{tr.n}}}"
    out = [rf"\text{{loss: }} & {tr.loss.latex}", rf"\alpha &= {num(tr.lr, p)}"]
    steps = tr.steps if show_all or len(tr.steps) <= 3 else [tr.steps[0], tr.steps[-1]]

    def m(a: Any) -> str:  # samples as columns, the textbooks' layout
        a = np.asarray(a)
        return mat(a.T if a.ndim == 2 else a, p, limit)

    for st in steps:
        out.append(rf"\text{{step {st.index}: }} & a^{{(0)}} = x = {m(st.x)}")
        for ly in st.layers:
            k, j = ly.index, ly.index - 1
            b = rf" + {m(ly.b)}" if ly.b is not None else ""
            bk = rf" + b^{{({k})}}" if ly.b is not None else ""
            out.append(rf"z^{{({k})}} &= W^{{({k})}} a^{{({j})}}{bk}"
                       rf" = {mat(ly.W, p, limit)} {m(ly.a_in)}{b} = {m(ly.z)}")
            out.append(rf"a^{{({k})}} &= f(z^{{({k})}}) = {m(ly.a)}")
        out.append(rf"L &= {_n(st.loss, p)}")
        last = len(st.layers)
        for ly in reversed(st.layers):
            k = ly.index
            fp = m(ly.fprime) if ly.fprime is not None else r"J_{\mathrm{softmax}}"
            if k == last:
                out.append(rf"\delta^{{({k})}} &= \frac{{\partial \ell}}{{\partial a^{{({k})}}}}"
                           rf" \odot f'(z^{{({k})}}) = {m(ly.back)} \odot {fp} = {m(ly.delta)}")
            else:
                out.append(rf"\delta^{{({k})}} &= (W^{{({k + 1})\top}} \delta^{{({k + 1})}}) "
                           rf"\odot f'(z^{{({k})}}) = {m(ly.back)} \odot {fp} = {m(ly.delta)}")
        for ly in st.layers:
            k, j = ly.index, ly.index - 1
            out.append(rf"\frac{{\partial L}}{{\partial W^{{({k})}}}} &= {c}\delta^{{({k})}} "
                       rf"a^{{({j})\top}} = {mat(ly.dW, p, limit)}")
            step = (r"\quad\text{(frozen)}" if "weight" in ly.frozen else
                    rf" - \alpha \frac{{\partial L}}{{\partial W^{{({k})}}}}")
            out.append(rf"W^{{({k})}} &\leftarrow W^{{({k})}}{step} = "
                       rf"{mat(ly.W_after, p, limit)}")
            if ly.b is not None:
                out.append(rf"\frac{{\partial L}}{{\partial b^{{({k})}}}} &= {c}\sum_i "
                           rf"\delta^{{({k})}}_i = {mat(ly.db, p, limit)}, \quad b^{{({k})}} "
                           rf"\leftarrow {mat(ly.b_after, p, limit)}"
                           + (r"\quad\text{(frozen)}" if "bias" in ly.frozen else ""))
        out.append(rf"L_{{\text{{after}}}} &= {_n(st.loss_after, p)}")
    return out

"""What a trace says, as a list of blocks (headings, paragraphs, formulas, tables, checks).

Built once here; ``render_text``, ``render_markdown`` and ``render_html`` only decide how
each kind of block looks, so the three formats always say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .fmt import arr, num, pick, sup
from .records import ACTIVATION_FORMULAS, Check


@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Para:
    text: str


@dataclass
class Formula:
    text: str


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    align: str


@dataclass
class CheckBlock:
    check: Check


Block = Heading | Para | Formula | Table | CheckBlock
ROW_LIMIT = 40  # op-level tables longer than this are cut to the first 25 and last 10 rows


def blocks(tr: Any, precision: int = 6, show_all: bool = False) -> list[Block]:
    if tr.kind == "net":
        return _net_blocks(tr, precision, show_all)
    return _op_blocks(tr, precision, show_all)


def _step_count(steps: list) -> str:
    """"6 backward steps: 1 start, 5 chain-rule": the count matches the table's rows."""
    kinds = [("start", "seed"), ("chain-rule", "chain"), ("accumulation", "accumulate")]
    parts = [f"{n} {word}" for word, kind in kinds
             if (n := sum(s.kind == kind for s in steps))]
    return f"{len(steps)} backward steps: {', '.join(parts)}" if steps else "no backward pass"


def _cut(rows: list[list[str]], show_all: bool) -> list[list[str]]:
    if show_all or len(rows) <= ROW_LIMIT:
        return rows
    hidden = len(rows) - 35
    gap = ["…"] + [""] * (len(rows[0]) - 2) + [f"{hidden} more rows (show_all=True or --all)"]
    return rows[:25] + [gap] + rows[-10:]


def _checks(checks: list[Check]) -> list[Block]:
    if not checks:
        return []
    return [Heading(2, "Checks"), *[CheckBlock(c) for c in checks]]


# --------------------------------------------------------------------------- op level
# In op-level tables a value bigger than this prints as its shape and range unless show_all:
# every number of a hand-sized example, a readable line for a layer's 64×16 matrix.
OP_VALUE_LIMIT = 12


def _op_blocks(tr: Any, p: int, show_all: bool) -> list[Block]:
    def v(x: Any) -> str:
        if x is None:
            return ""
        a = np.asarray(x)
        if show_all or a.size <= OP_VALUE_LIMIT:
            return arr(a, p)
        return f"{'×'.join(map(str, a.shape))} values in [{num(a.min(), 4)}, {num(a.max(), 4)}]"

    name = {n.id: n.name for n in tr.nodes}
    out: list[Block] = [
        Heading(1, tr.title),
        Para(f"{len(tr.nodes)} values in the forward pass; {_step_count(tr.steps)}."),
        Heading(2, "Forward pass"),
        Table(["node", "computes", "value"],
              _cut([[n.name, n.expr, v(n.value)] for n in tr.nodes], show_all), "llr"),
    ]
    if not tr.steps:
        return out + [Para("No backward pass was traced (call .backward() inside the block)."),
                      *_checks(tr.checks)]
    rows = []
    for s in tr.steps:
        if s.kind == "seed":
            rows.append([str(s.id), name[s.node], "", f"start: ∂{name[s.node]}/∂"
                         f"{name[s.node]} = 1", "", v(s.product)])
        elif s.kind == "chain":
            formula = s.formula or ""
            if s.local_kind == "matrix":
                formula += "  (G = upstream)"
            if s.note:
                formula += f"  ({s.note})"
            rows.append([str(s.id), f"{name[s.node]} → {name[s.parent]}", v(s.upstream),
                         formula, v(s.local) if s.local is not None else "—", v(s.product)])
        else:
            rows.append([str(s.id), f"Σ {name[s.parent]}", "",
                         f"{name[s.parent]} is used more than once: its gradients add up", "",
                         f"{v(s.previous)} + {v(s.added)} = {v(s.product)}"])
    root = tr.root
    out += [
        Heading(2, "Backward pass"),
        Formula("gradient sent to an input = upstream gradient × local derivative"),
        Table(["step", "from → to", "upstream", "local derivative", "local", "sent"],
              _cut(rows, show_all), "rlrlrr"),
        Heading(2, f"Gradients of {root.name}" if root else "Gradients"),
    ]
    grads = [n for n in tr.nodes if n.grad is not None and n.kind == "input"]
    grads += [n for n in tr.nodes if n.grad is not None and n.kind == "op"]
    r = root.name if root else "L"
    out.append(Table([f"∂{r}/∂·", "value"],
                     _cut([[f"∂{r}/∂{n.name}", v(n.grad)] for n in grads], show_all), "lr"))
    return out + _checks(tr.checks)


# --------------------------------------------------------------------------- layer level
def _net_blocks(tr: Any, p: int, show_all: bool) -> list[Block]:
    limit = 10 ** 9 if show_all else 6
    first = tr.steps[0]
    batch = tr.n > 1

    def cell(col: np.ndarray) -> str:  # one value per sample
        return arr(col, p, limit) if batch else num(col[0], p)

    if len(set(tr.activations)) == 1:
        a = tr.activations[0]
        acts = f"{a} in every layer ({ACTIVATION_FORMULAS[a]})"
    else:
        acts = "; ".join(f"layer {i + 1}: {a} ({ACTIVATION_FORMULAS[a]})"
                         for i, a in enumerate(tr.activations))
    data = (f"One sample: x = {arr(first.x[0], p, limit)}, target y = "
            f"{arr(first.y[0], p, limit)}." if not batch else
            f"A batch of {tr.n} samples; a cell lists one value per sample, in order. "
            f"x = {arr(first.x, p, limit)}, y = {arr(first.y, p, limit)}.")
    out: list[Block] = [
        Heading(1, tr.title),
        Para(f"Loss {tr.loss.formula}, so {tr.loss.derivative}. Learning rate α = "
             f"{num(tr.lr, p)}. Activations: {acts}."),
        Para(data),
        Para("Layers count from 1 (nearest the input), as diagnose's warnings do: "
             + ", ".join(f"layer {ly.index} is the model's Linear '{ly.module}'"
                         for ly in first.layers) + "."),
    ]
    shown = list(range(len(tr.steps)))
    if len(shown) > 3 and not show_all:
        shown = [0, len(tr.steps) - 1]
    for k in shown:
        out += _step_blocks(tr, tr.steps[k], p, limit, cell)
        if k == 0 and len(shown) == 2 and len(tr.steps) > 2:
            out.append(Para(f"Steps 2–{len(tr.steps) - 1} are left out (show_all=True or "
                            f"--all shows every step)."))
    if len(tr.steps) > 1:
        out += [Heading(2, "Loss per step"),
                Table(["step", "L before", "L after"],
                      [[str(s.index), num(s.loss, p), num(s.loss_after, p)] for s in tr.steps],
                      "rrr")]
    hidden = any(len(pick(n, limit)) < n for n in tr.sizes)
    if hidden:
        out.append(Para("Large layers are summarized (first and last units); show_all=True "
                        "or --all shows every unit."))
    return out + _checks(tr.checks)


def _step_blocks(tr: Any, st: Any, p: int, limit: int, cell: Any) -> list[Block]:
    L = len(st.layers)
    avg = ("" if tr.n == 1 else " summed over the samples" if tr.loss.reduction == "sum"
           else f" averaged over the {tr.n} samples: (1/{tr.n}) Σᵢ")
    sums = tr.n == 1 and any(ly.W.shape[1] <= SUM_LIMIT for ly in st.layers)
    width = 5 if sums else 4
    fwd = [["0 (x)", str(j + 1)] + [""] * (width - 3) + [cell(st.x[:, j])]
           if j is not None else _gap(width) for j in pick(st.x.shape[1], limit)]
    for ly in st.layers:
        for j in pick(ly.z.shape[1], limit):
            if j is None:
                fwd.append(_gap(width))
                continue
            sum_cell = [_weighted_sum(ly, j, p)] if sums else []
            fwd.append([str(ly.index), str(j + 1), *sum_cell, cell(ly.z[:, j]),
                        cell(ly.a[:, j])])
    loss_line = (f"Output ŷ = a{sup(L)} = {arr(st.yhat[0] if tr.n == 1 else st.yhat, p, limit)}"
                 f", target y = {arr(st.y[0] if tr.n == 1 else st.y, p, limit)}: "
                 f"L = {num(st.loss, p)}.")
    if tr.n > 1:
        c = "Σᵢ ℓᵢ" if tr.loss.reduction == "sum" else f"(1/{tr.n}) Σᵢ ℓᵢ"
        loss_line += f" Per-sample losses ℓᵢ = {arr(st.sample_losses, p, limit)}; L = {c}."
    bwd = []
    for ly in reversed(st.layers):
        for j in pick(ly.z.shape[1], limit):
            if j is None:
                bwd.append(_gap(5))
                continue
            fp = "—" if ly.fprime is None else cell(ly.fprime[:, j])
            bwd.append([str(ly.index), str(j + 1), cell(ly.back[:, j]), fp,
                        cell(ly.delta[:, j])])
    # One sample: its loss ℓ is the loss L, so call it L as the loss line does; ℓᵢ only
    # where a batch has several.
    ell = "ℓ" if tr.n > 1 else "L"
    out_rule = f"∂{ell}/∂ŷ" if tr.loss.name != "ce" else f"∂{ell}/∂z (softmax − onehot)"
    wrows = []
    for ly in st.layers:
        s = sup(ly.index)
        for j in pick(ly.W.shape[0], limit):
            if j is None:
                wrows.append(_gap(7))
                continue
            for k in pick(ly.W.shape[1], limit):
                if k is None:
                    wrows.append(_gap(7))
                    continue
                wrows.append([f"W{s}[{j + 1},{k + 1}]{_held(ly, 'weight')}", num(ly.W[j, k], p),
                              cell(ly.a_in[:, k]), cell(ly.delta[:, j]), num(ly.dW[j, k], p),
                              num(ly.W_after[j, k] - ly.W[j, k], p), num(ly.W_after[j, k], p)])
            if ly.b is not None:
                wrows.append([f"b{s}[{j + 1}]{_held(ly, 'bias')}", num(ly.b[j], p),
                              "1" if tr.n == 1 else "1 each", cell(ly.delta[:, j]),
                              num(ly.db[j], p), num(ly.b_after[j] - ly.b[j], p),
                              num(ly.b_after[j], p)])
    return [
        Heading(2, f"Step {st.index}"),
        Heading(3, "Forward pass"),
        Formula("zˡ = Wˡ aˡ⁻¹ + bˡ,   aˡ = f(zˡ),   a⁰ = x" + (
            ";   weighted sum zˡ[j] = Σₖ Wˡ[j,k]·aˡ⁻¹[k] + bˡ[j]·1" if sums else "")),
        Table(["layer", "unit", *(["weighted sum"] if sums else []), "z", "a"], fwd,
              "rr" + "l" * sums + "rr"),
        Para(loss_line),
        Heading(3, "Backward pass"),
        Formula(f"output layer: δ{sup(L)} = {out_rule} ⊙ f′(z{sup(L)});   hidden layers: "
                f"δˡ = (Wˡ⁺¹ᵀ δˡ⁺¹) ⊙ f′(zˡ)" + ("" if tr.n == 1 else
                                                  ";   per sample (δ of ℓᵢ)")),
        Table(["layer", "unit", "from above", "f′(z)", "δ"], bwd, "rrrrr"),
        Heading(3, "Weight gradients and update"),
        Formula(f"∂L/∂Wˡ[j,k] = δˡ[j] · aˡ⁻¹[k]{avg},   ∂L/∂bˡ[j] = δˡ[j]{avg},   "
                f"Δw = −α · ∂L/∂w,   w ← w + Δw"),
        Table(["weight", "before", "aˡ⁻¹[k]", "δˡ[j]", "∂L/∂w", "Δw", "after"], wrows,
              "lrrrrrr"),
        *([Para("A frozen weight keeps its value: its gradient is computed but not applied "
                "(Δw = 0).")] if any(ly.frozen for ly in st.layers) else []),
        Para(f"Loss after the update: {num(st.loss_after, p)} (before: {num(st.loss, p)})."),
    ]


# A layer with at most this many inputs shows each unit's weighted sum written out, as
# textbook worked examples do (0.15·0.05 + 0.2·0.1 + 0.35·1 = 0.3775); wider ones would not
# fit a line. One sample only: a batch has one sum per sample.
SUM_LIMIT = 4


def _weighted_sum(ly: Any, j: int, p: int) -> str:
    """Unit j's z written out with its numbers, or "" for a layer too wide to write out."""
    if ly.W.shape[1] > SUM_LIMIT:
        return ""

    def factor(x: float) -> str:
        s = num(x, p)
        return f"({s})" if s.startswith("-") else s

    terms = [f"{factor(ly.W[j, k])}·{factor(ly.a_in[0, k])}" for k in range(ly.W.shape[1])]
    if ly.b is not None:
        terms.append(f"{factor(ly.b[j])}·1")
    return " + ".join(terms) + f" = {num(ly.z[0, j], p)}"


def _held(ly: Any, part: str) -> str:
    return " (frozen)" if part in ly.frozen else ""


def _gap(n: int) -> list[str]:
    return ["…"] * n

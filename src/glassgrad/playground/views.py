"""The numbers behind a clicked unit or edge, and a whole step for step-through mode.

Every value comes from ``gg.explain.trace_net`` of the session's next step (its current
weights, its next batch): z, a, f′(z), ∂ℓ/∂a, δ, ∂L/∂W, W before and after. Here they are only
arranged as the formulas a textbook writes, with the numbers plugged in (4 significant
digits; the raw values travel alongside for anyone who wants more).
"""

from __future__ import annotations

from typing import Any

from ..explain import trace_net
from .session import Session

FMT = ".4g"
MAX_TERMS = 8  # sums longer than this are shown with "…"
MAX_ROWS = 32  # per-sample rows listed for the whole batch
_F = {  # activation: (a = f(z), f with the number plugged in, f′(z))
    "tanh": ("a = tanh(z)", "tanh({})", "1 − tanh²(z)"),
    "sigmoid": ("a = σ(z) = 1/(1 + e⁻ᶻ)", "σ({})", "σ(z)(1 − σ(z))"),
    "relu": ("a = max(0, z)", "max(0, {})", "1 if z > 0 else 0"),
    "identity": ("a = z", "{}", "1"),
}
_DLOSS = {"bce": "∂ℓ/∂ŷ = (ŷ − y) / (ŷ(1 − ŷ))", "mse": "∂ℓ/∂ŷ = 2(ŷ − y)",
          "half-sse": "∂ℓ/∂ŷ = ŷ − y"}


def f(v: float) -> str:
    """A number as the page prints it: 4 significant digits."""
    return format(float(v), FMT)


def _p(v: float) -> str:
    """A number in a product: negative ones in parentheses."""
    s = f(v)
    return f"({s})" if s.startswith("-") else s


def _sum(terms: list[str]) -> str:
    shown = terms[:MAX_TERMS]
    more = f" + … ({len(terms)} terms)" if len(terms) > MAX_TERMS else ""
    return " + ".join(shown) + more


def _line(label: str, formula: str, numbers: str, value: float) -> dict[str, str]:
    return {"label": label, "formula": formula, "numbers": numbers, "value": f(value),
            "raw": repr(float(value))}


def _scale(tr: Any) -> str:
    return "1" if tr.scale == 1 else f"1/{tr.n}"


def _layer_name(s: Session, layer: int) -> str:
    last = len(s.cfg.sizes) - 1
    return "the output layer" if layer == last else f"hidden layer {layer}"


def unit_view(s: Session, layer: int, unit: int, sample: int | None) -> dict[str, Any]:
    """Unit ``unit`` of ``layer`` (1 = first hidden): z, a, δ, its bias's gradient and update."""
    tr = s.trace()
    st = tr.steps[0]
    ly = st.layers[layer - 1]
    j = unit
    db = float(ly.db[j])
    lines = []
    if sample is not None:
        lines += _unit_sample_lines(tr, layer, j, sample)
    lines.append(_line("∂L/∂b", f"∂L/∂b = c · Σₛ δ⁽ˢ⁾   (c = {_scale(tr)})",
                       f"= {_scale(tr)} · ({_sum([f(d) for d in ly.delta[:, j]])})", db))
    b_after = float(ly.b_after[j])
    lines.append(_line("b after", "b ← b − η ∂L/∂b",
                       f"= {f(ly.b[j])} − {f(tr.lr)} · {_p(db)}", b_after))
    rows = [{"sample": i, "z": f(ly.z[i, j]), "a": f(ly.a[i, j]), "delta": f(ly.delta[i, j])}
            for i in range(min(len(ly.z), MAX_ROWS))]
    values = {"db": db, "b": float(ly.b[j]), "b_after": b_after}
    if sample is not None:
        values.update(z=float(ly.z[sample, j]), a=float(ly.a[sample, j]),
                      delta=float(ly.delta[sample, j]), back=float(ly.back[sample, j]),
                      fprime=float(ly.fprime[sample, j]))
    return {"type": "inspect", "what": "unit", "layer": layer, "unit": unit, "sample": sample,
            "title": f"Unit {unit + 1} of {_layer_name(s, layer)} ({ly.activation})",
            "step": s.steps + 1, "loss": tr.loss.name, "lines": lines, "rows": rows,
            "values": values}


def _unit_sample_lines(tr: Any, layer: int, j: int, i: int) -> list[dict]:
    st = tr.steps[0]
    ly = st.layers[layer - 1]
    terms = [f"{_p(w)}·{_p(a)}" for w, a in zip(ly.W[j], ly.a_in[i])]
    z, a, fp = ly.z[i, j], ly.a[i, j], ly.fprime[i, j]
    formula, plugged, deriv = _F[ly.activation]
    lines = [
        _line("z", "z = Σᵢ wᵢ aᵢ + b", f"= {_sum(terms + [_p(ly.b[j])])}", z),
        _line("a", formula, "= " + plugged.format(f(z)), a),
        _line("f′(z)", f"f′(z) = {deriv}", f"at z = {f(z)}", fp),
    ]
    back = ly.back[i, j]
    if layer == len(st.layers):
        yhat, y = st.yhat[i, 0], st.y[i, 0]
        lines.append(_line("∂ℓ/∂a", _DLOSS.get(tr.loss.name, "∂ℓ/∂ŷ"),
                           f"with ŷ = {f(yhat)}, y = {f(y)}", back))
        lines.append(_line("δ", "δ = ∂ℓ/∂a · f′(z)", f"= {_p(back)} · {_p(fp)}",
                           ly.delta[i, j]))
    else:
        nxt = st.layers[layer]
        terms = [f"{_p(w)}·{_p(d)}" for w, d in zip(nxt.W[:, j], nxt.delta[i])]
        lines.append(_line("Σ wδ", "(Wᵀδ)ⱼ = Σₖ wₖⱼ δₖ   (next layer)", f"= {_sum(terms)}",
                           back))
        lines.append(_line("δ", "δ = (Wᵀδ)ⱼ ⊙ f′(z)", f"= {_p(back)} · {_p(fp)}",
                           ly.delta[i, j]))
    return lines


def edge_view(s: Session, layer: int, src: int, dst: int, sample: int | None) -> dict[str, Any]:
    """The weight from unit ``src`` of layer ``layer − 1`` to ``dst`` of ``layer``."""
    tr = s.trace()
    ly = tr.steps[0].layers[layer - 1]
    reg = float(s.reg_grads()[layer - 1][dst, src])
    w, dw = float(ly.W[dst, src]), float(ly.dW[dst, src])
    step = -tr.lr * (dw + reg)
    terms = [f"{_p(d)}·{_p(a)}" for d, a in zip(ly.delta[:, dst], ly.a_in[:, src])]
    lines = [
        _line("w", "w (before the step)", "", w),
        _line("∂L/∂w", f"∂L/∂w = c · Σₛ δ⁽ˢ⁾ a⁽ˢ⁾   (c = {_scale(tr)})",
              f"= {_scale(tr)} · ({_sum(terms)})", dw),
    ]
    values = {"w": w, "dW": dw, "reg": reg, "delta_w": step, "w_after": w + step}
    if sample is not None:
        term = float(ly.delta[sample, dst] * ly.a_in[sample, src])
        lines.append(_line("δ·a", f"sample {sample + 1}'s term δ·a",
                           f"= {_p(ly.delta[sample, dst])}·{_p(ly.a_in[sample, src])}", term))
        values["term"] = term
    cfg = s.cfg
    if cfg.reg != "none" and cfg.reg_rate:
        what = "λ·sign(w)" if cfg.reg == "l1" else "λ·w"
        lines.append(_line("λ∂R/∂w", f"λ ∂R/∂w = {what}   ({cfg.reg.upper()})",
                           f"= {f(cfg.reg_rate)}·{_p(w)}" if cfg.reg == "l2" else
                           f"= {f(cfg.reg_rate)}·sign({f(w)})", reg))
        lines.append(_line("Δw", "Δw = −η (∂L/∂w + λ ∂R/∂w)",
                           f"= −{f(tr.lr)} · ({f(dw)} + {_p(reg)})", step))
    else:
        lines.append(_line("Δw", "Δw = −η ∂L/∂w", f"= −{f(tr.lr)} · {_p(dw)}", step))
    lines.append(_line("w after", "w ← w + Δw", f"= {f(w)} + {_p(step)}", w + step))
    frm = "input" if layer == 1 else f"hidden layer {layer - 1}"
    return {"type": "inspect", "what": "edge", "layer": layer, "from": src, "to": dst,
            "sample": sample, "step": s.steps + 1,
            "title": f"Weight from unit {src + 1} of the {frm} to unit {dst + 1} of "
                     f"{_layer_name(s, layer)}",
            "lines": lines, "values": values}


def step_view(s: Session, sample: int) -> dict[str, Any]:
    """The next step, layer by layer, for step-through mode (forward, loss, backward, update)."""
    with s.lock:
        idx = s.next_batch()
        tr = trace_net(s.b.model, s.b.X_train[idx], s.b.y_train[idx], loss=s.cfg.loss_name,
                       lr=s.cfg.lr, update=False, check=True)
        regs = s.reg_grads()
        version = s.version
    st = tr.steps[0]
    layers = []
    for ly, reg in zip(st.layers, regs):
        W_after = ly.W - tr.lr * (ly.dW + reg)
        layers.append({
            "activation": ly.activation, "a_in": ly.a_in[sample].tolist(),
            "z": ly.z[sample].tolist(), "a": ly.a[sample].tolist(),
            "delta": ly.delta[sample].tolist(), "W": ly.W.tolist(), "dW": ly.dW.tolist(),
            "W_after": W_after.tolist(), "b": ly.b.tolist(), "db": ly.db.tolist(),
            "b_after": ly.b_after.tolist(),
        })
    return {
        "type": "trace", "version": version, "step": s.steps + 1, "sample": sample,
        "batch_size": int(len(idx)), "y": float(st.y[sample, 0]),
        "yhat": float(st.yhat[sample, 0]), "loss": st.loss, "loss_after": st.loss_after,
        "loss_name": tr.loss.name, "loss_formula": tr.loss.formula, "lr": tr.lr,
        "layers": layers,
        "checks": [{"name": c.name, "ok": c.ok, "title": c.title, "detail": list(c.detail)}
                   for c in tr.checks],
    }


def step_markdown(s: Session) -> str:
    """The next step's full trace as Markdown (the library's own rendering)."""
    return _full_trace(s).to_markdown(precision=6)


def step_json(s: Session) -> str:
    """The next step's full trace as JSON (schema ``glassgrad.explain/1``)."""
    return _full_trace(s).to_json()


def _full_trace(s: Session) -> Any:
    with s.lock:
        idx = s.next_batch()
        return trace_net(s.b.model, s.b.X_train[idx], s.b.y_train[idx], loss=s.cfg.loss_name,
                         lr=s.cfg.lr, update=False, check=True)


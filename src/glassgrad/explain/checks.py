"""Checks that teach, printed under a trace when they apply.

- ``gradcheck``: every traced gradient against central finite differences in float64, so a
  wrong hand-derived rule or sign shows at once;
- ``textbook``: the layer trace's δ and ∂L/∂W recomputed by the textbook formulas
  (δˡ = (Wˡ⁺¹ᵀ δˡ⁺¹) ⊙ f′(zˡ), ∂L/∂W = δ·aᵀ) agree with the engine's backward pass;
- ``symmetry``: hidden units that start identical (constant init) get identical updates and
  stay identical forever;
- ``linear``: with identity activations only, the network is one affine map and cannot fit XOR;
- ``sign``: δ at the output is ŷ − y; the opposite sign moves the weights uphill (the slip of
  the seed XOR article, whose weights become 1.4 instead of 0.6).

Checks read only records (``records.py``); what they need of a trace is passed in (the
nodes and steps, or the layer steps and a function giving the batch loss), so this module
imports neither ``trace`` nor ``net_trace``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..gradcheck import central_differences
from ..ops import OPS
from .fmt import arr, num, sup
from .records import Check, LossSpec, Node, Step, StepTrace

# A network's weights, (W, b) per layer (b None for a layer without bias).
Params = list[tuple[np.ndarray, np.ndarray | None]]
# The batch loss L for given weights on (x, y): the layer-level trace passes its own, so the
# checks need not know how a network is run.
LossOf = Callable[[Params, np.ndarray, np.ndarray], float]


def _tolerance(float64: bool) -> tuple[float, float]:
    return (1e-6, 1e-5) if float64 else (1e-3, 1e-2)


def _close(numeric: float, analytic: float, float64: bool) -> tuple[bool, float]:
    atol, rtol = _tolerance(float64)
    diff = abs(numeric - analytic)
    return diff <= atol + rtol * abs(numeric), diff


def _sample(size: int, budget: int) -> list[int]:
    """Up to ``budget`` flat indices spread evenly over ``size`` entries."""
    if size <= budget:
        return list(range(size))
    return sorted({int(i) for i in np.linspace(0, size - 1, budget)})


def _gradcheck(fn: Callable[[list[np.ndarray]], float],
               params: list[tuple[str, np.ndarray, np.ndarray]], float64: bool,
               budget: int = 64, eps: float = 1e-6) -> Check:
    """Central differences of the scalar ``fn(values)`` for each (name, value, analytic grad)."""
    per = max(1, budget // max(1, len(params)))
    # float64 copies, which central_differences nudges in place (one entry at a time)
    vals = [np.array(v, dtype=np.float64, order="C") for _, v, _ in params]
    checked = total = 0
    worst = 0.0
    bad: list[str] = []
    for (name, value, grad), x in zip(params, vals):
        total += value.size
        indices = _sample(value.size, per)
        numerics = central_differences(lambda: fn(vals), x, indices, eps)
        for i, numeric in zip(indices, numerics.tolist()):
            ok, diff = _close(numeric, float(grad.flat[i]), float64)
            worst = max(worst, diff)
            checked += 1
            if not ok and len(bad) < 5:
                where = (f"[{', '.join(map(str, np.unravel_index(i, value.shape)))}]"
                         if value.ndim else "")
                bad.append(f"{name}{where}: traced {num(grad.flat[i], 9)}, "
                           f"finite differences {num(numeric, 9)}")
    names = ", ".join(n for n, _, _ in params)
    scope = f"{checked} of {total} entries" if checked < total else f"all {total} entries"
    atol, rtol = _tolerance(float64)
    where = (f"checked {scope} of {names} (ε = {eps:g}; tolerance |numeric − traced| ≤ "
             f"{atol:g} + {rtol:g}·|numeric|)")
    metrics = {"max_abs_diff": worst, "checked": checked, "total": total}
    if bad:
        return Check("gradcheck", False, "numerical gradient check FAILED: the traced "
                     "gradients differ from central finite differences", [*bad, where],
                     metrics)
    return Check("gradcheck", True, "numerical gradient check: the traced gradients match "
                 "central finite differences", [where], metrics)


# --------------------------------------------------------------------------- op traces
def replay(nodes: list[Node], leaf_values: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Recompute every op node of a trace from leaf values (node id -> array) with the op
    table's forward functions; leaves not given keep their recorded values."""
    vals: dict[int, np.ndarray] = {}
    with np.errstate(all="ignore"):
        for n in nodes:
            if not n.in_graph:  # a leaf, or computed from constants only: fixed
                vals[n.id] = leaf_values.get(n.id, n.value)
                continue
            args = [vals[i] for i in n.inputs]
            forward = n.forward or OPS[n.op].forward
            vals[n.id] = forward(*args, **(n.attrs or {}))
    return vals


def gradcheck_trace(nodes: list[Node], steps: list[Step], budget: int = 64) -> Check:
    """Replay the recorded graph with each input nudged by ±ε and compare ∂root/∂input."""
    seeds = [s for s in steps if s.kind == "seed"]
    last = seeds[-1].pass_index
    root, seed = seeds[-1].node, seeds[-1].product.astype(np.float64)
    reached = {s.parent for s in steps if s.kind == "chain" and s.pass_index == last}
    leaves = [n for n in nodes if n.kind == "input" and n.id in reached]
    if not leaves:
        return Check("gradcheck", None, "numerical gradient check: no input requires a "
                     "gradient, nothing to check")
    base = {n.id: n.value.astype(np.float64) for n in nodes
            if not n.in_graph and n.value.dtype.kind == "f"}
    float64 = all(n.value.dtype == np.float64 for n in leaves)

    def fn(vals: list[np.ndarray]) -> float:
        given = dict(base)
        given.update({n.id: v for n, v in zip(leaves, vals)})
        return float(np.sum(seed * replay(nodes, given)[root]))

    return _gradcheck(fn, [(n.name, n.value, n.grad) for n in leaves], float64, budget)


# --------------------------------------------------------------------------- layer traces
def gradcheck_net(st: StepTrace, loss_of: LossOf, budget: int = 64) -> Check:
    """Step ``st``'s ∂L/∂W and ∂L/∂b against central differences of ``loss_of``."""
    params: list[tuple[str, np.ndarray, np.ndarray]] = []
    for ly in st.layers:
        params.append((f"W{sup(ly.index)}", ly.W, ly.dW))
        if ly.b is not None:
            params.append((f"b{sup(ly.index)}", ly.b, ly.db))

    def fn(vals: list[np.ndarray]) -> float:
        it = iter(vals)
        ps = [(next(it), next(it) if ly.b is not None else None) for ly in st.layers]
        return loss_of(ps, st.x, st.y)

    return _gradcheck(fn, params, True, budget)


def textbook_check(st: StepTrace, scale: float) -> Check | None:
    """Recompute δ and ∂L/∂W with the textbook formulas from the traced z, a and W
    (``scale``: c in L = c Σᵢ ℓᵢ)."""
    if any(ly.fprime is None for ly in st.layers):
        return None  # a softmax layer: f′ is a Jacobian, the elementwise formula does not apply
    worst = 0.0
    delta = st.layers[-1].back * st.layers[-1].fprime
    for k in range(len(st.layers) - 1, -1, -1):
        ly = st.layers[k]
        if k < len(st.layers) - 1:
            above = st.layers[k + 1]
            delta = (delta @ above.W) * ly.fprime  # rows are samples: (Wᵀδ)ᵀ = δᵀW
        dW = scale * delta.T @ ly.a_in
        worst = max(worst, float(np.abs(delta - ly.delta).max()), float(np.abs(dW - ly.dW).max()))
    ok = worst <= 1e-9 * max(1.0, max(float(np.abs(ly.dW).max()) for ly in st.layers))
    title = ("textbook formulas δˡ = (Wˡ⁺¹ᵀ δˡ⁺¹) ⊙ f′(zˡ) and ∂L/∂W = δ·aᵀ "
             + ("agree with the engine's backward pass" if ok else "DISAGREE with the engine"))
    return Check("textbook", ok, title, ["recomputed with NumPy from the z, a and W above; "
                 "they agree to 1e-9 relative" if ok else f"largest difference {worst:.3g}"],
                 {"max_abs_diff": worst})


def symmetry_check(steps: list[StepTrace]) -> Check | None:
    """Hidden units with identical incoming and outgoing weights stay identical."""
    first, last = steps[0], steps[-1]
    found = []
    for k, ly in enumerate(first.layers[:-1]):
        nxt = first.layers[k + 1]
        groups = _identical_units(ly.W, ly.b, nxt.W)
        for g in groups:
            after = _identical_units(last.layers[k].W_after, last.layers[k].b_after,
                                     last.layers[k + 1].W_after)
            still = any(set(g) <= set(h) for h in after)
            found.append((ly.index, g, still))
    if not found:
        return None
    detail = []
    for index, g, still in found:
        units = ", ".join(str(j + 1) for j in g)
        row = last.layers[index - 1].W_after[g[0]]
        detail.append(
            f"layer {index}, units {units}: same incoming weights, bias and outgoing weights, "
            f"so the same z, a and δ, hence the same update; after {len(steps)} step(s) "
            f"they are {'still identical' if still else 'no longer identical'} "
            f"(each row of W{sup(index)} is now {arr(row)})"
        )
    detail.append("Gradient descent never breaks this symmetry: the layer acts as one unit. "
                  "Fix: random initialization (init='xavier', 'kaiming' or 'normal').")
    return Check("symmetry", None, "constant initialization: identical hidden units stay "
                 "identical forever", detail)


def _identical_units(W: np.ndarray, b: np.ndarray | None, W_next: np.ndarray) -> list[list[int]]:
    """Groups (2 or more) of units whose incoming row, bias and outgoing column are equal."""
    groups: dict[bytes, list[int]] = {}
    for j in range(W.shape[0]):
        parts = [W[j], W_next[:, j]] + ([b[j:j + 1]] if b is not None else [])
        groups.setdefault(np.concatenate(parts).tobytes(), []).append(j)
    return [g for g in groups.values() if len(g) > 1]


def linear_check(last: StepTrace) -> Check | None:
    """A network whose activations are all the identity is a single affine map (``last``:
    the trace's last step, whose updated weights are composed)."""
    layers = last.layers
    if any(ly.activation != "identity" for ly in layers):
        return None
    W = np.eye(layers[0].W.shape[1])
    b = np.zeros(layers[0].W.shape[1])
    for ly in layers:  # compose x -> Wx + b, layer after layer (weights after the last step)
        W = ly.W_after @ W
        b = ly.W_after @ b + (ly.b_after if ly.b_after is not None else 0)
    detail = [
        f"the whole network computes ŷ = W·x + b with W = {arr(W)} and b = {arr(b)} "
        f"(the product of its layers), so extra layers add nothing.",
        "An affine f cannot fit XOR: f(0,0) + f(1,1) = f(0,1) + f(1,0) for every affine f, "
        "but XOR needs 0 + 0 on the left and 1 + 1 on the right. Fix: a nonlinear "
        "activation (tanh, sigmoid, relu).",
    ]
    return Check("linear", None, "identity activations only: the network is linear", detail)


def sign_check(st: StepTrace, loss: LossSpec, lr: float, loss_of: LossOf) -> Check | None:
    """δ at the output is ŷ − y; with y − ŷ the same update rule climbs the loss."""
    if loss.name not in ("half-sse", "mse"):
        return None
    out = st.layers[-1]
    # the step actually taken, reversed (a frozen part stays where it is)
    uphill = [(2 * ly.W - ly.W_after, None if ly.b is None else 2 * ly.b - ly.b_after)
              for ly in st.layers]
    loss_up = loss_of(uphill, st.x, st.y)
    bias = ""
    if out.b is not None and "bias" not in out.frozen:
        bias = (f" (e.g. b{sup(out.index)}[1] = {num(out.b[0])} would become "
                f"{num(uphill[-1][1][0])} instead of {num(out.b_after[0])})")
    delta = out.delta[0] if len(out.delta) == 1 else out.delta
    slip = (f"here δ{sup(out.index)} = {arr(delta)}. Writing δ = y − ŷ but still updating "
            f"W := W − α·a·δ moves every weight uphill{bias}: the loss would rise from "
            f"{num(st.loss)} to {num(loss_up)} instead of falling to {num(st.loss_after)}.")
    fix = ("This is the sign slip of the seed XOR article, whose updated weights are 1.4; the "
           "correct ones are 0.6 (and 1.0 for the weights from the zero inputs)."
           if _is_seed_xor(st) else
           "Either keep δ = ŷ − y with W := W − α·∂L/∂W, or δ = y − ŷ with W := W + α·a·δ.")
    return Check("sign", None, "sign of δ: δ at the output is ŷ − y, the derivative of the "
                 "loss with respect to the output", [slip, fix])


def _is_seed_xor(st: StepTrace) -> bool:
    sizes = [st.layers[0].W.shape[1]] + [ly.W.shape[0] for ly in st.layers]
    return (sizes == [2, 3, 1] and st.x.shape == (1, 2) and not st.x.any()
            and all(np.all(ly.W == 1) and ly.b is not None and np.all(ly.b == 1)
                    for ly in st.layers))


def net_checks(steps: list[StepTrace], loss: LossSpec, lr: float, loss_of: LossOf,
               gradcheck: bool = True) -> list[Check]:
    """The checks that apply to a layer-level trace's ``steps``, in the order printed."""
    first = steps[0]
    checks = [gradcheck_net(first, loss_of)] if gradcheck else []
    for c in (textbook_check(first, loss.scale(len(first.x))), symmetry_check(steps),
              linear_check(steps[-1]), sign_check(first, loss, lr, loss_of)):
        if c is not None:
            checks.append(c)
    return checks

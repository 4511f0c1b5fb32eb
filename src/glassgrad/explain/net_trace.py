"""Layer-level trace, in textbook notation, of a network of Linear layers and activations.

For layer l = 1..L (a⁰ = x; rows are samples, W is (out, in) as in PyTorch):

    zˡ = Wˡ aˡ⁻¹ + bˡ,   aˡ = f(zˡ)
    δᴸ = ∂ℓ/∂aᴸ ⊙ f′(zᴸ)                 (output layer)
    δˡ = (Wˡ⁺¹ᵀ δˡ⁺¹) ⊙ f′(zˡ)            (hidden layers)
    ∂L/∂Wˡ = c Σᵢ δˡᵢ aˡ⁻¹ᵢᵀ,  ∂L/∂bˡ = c Σᵢ δˡᵢ,   Wˡ ← Wˡ − α ∂L/∂Wˡ

where ℓᵢ is sample i's loss and the batch loss is L = c Σᵢ ℓᵢ (c = 1 for a summed loss,
1/n for a mean: the averaging of a batch). The numbers are not re-derived here: z, a, δ and
∂L/∂W are read from the engine's own forward and backward pass (``retain_grad``) on float64
copies of the weights; ``checks.textbook_check`` then recomputes δ and ∂L/∂W with the
formulas above and confirms they agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import functional as F
from ..autograd import no_grad
from ..nn import Linear, Sequential
from ..nn import functional as nnf
from ..tensor import Tensor, tensor
from .checks import Params, net_checks
from .records import ACTIVATION_NAMES, Check, LayerStep, LossSpec, StepTrace, loss_spec
from .rendering import Rendered


@dataclass
class NetTrace(Rendered):
    """The layer-level record: one ``StepTrace`` per gradient-descent step, and the checks."""

    sizes: list[int]
    activations: list[str]
    loss: LossSpec
    lr: float
    n: int
    steps: list[StepTrace] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    title: str = "Layer-level trace"
    frozen: list[tuple[str, ...]] = field(default_factory=list)  # per layer, see freeze_of
    _layers: list = field(default_factory=list, repr=False)

    kind = "net"

    @property
    def loss_name(self) -> str:
        return self.loss.name

    @property
    def scale(self) -> float:
        """c in L = c Σᵢ ℓᵢ: 1 for a summed loss, 1/n for a mean over the batch."""
        return self.loss.scale(self.n)


# --------------------------------------------------------------------------- the model
def _flatten(model: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(model, Sequential):
        out = []
        for name, m in model.named_children():
            out.extend(_flatten(m, f"{prefix}{name}."))
        return out
    if isinstance(model, list | tuple):
        return [x for i, m in enumerate(model) for x in _flatten(m, f"{prefix}{i}.")]
    return [(prefix.rstrip("."), model)]


def layers_of(model: Any) -> list[tuple[str, Any, Any, str]]:
    """(module name, Linear, activation module or None, activation name) per layer."""
    layers: list[list[Any]] = []
    for pos, (name, m) in enumerate(_flatten(model)):
        act = ACTIVATION_NAMES.get(type(m).__name__)
        if isinstance(m, Linear):
            layers.append([name, m, None, "identity"])
        elif act is not None and layers and layers[-1][2] is None:
            layers[-1][2], layers[-1][3] = m, act
        else:
            what = (f"activation {type(m).__name__} without a Linear layer before it"
                    if act is not None else f"module {type(m).__name__}")
            raise ValueError(
                f"explain: cannot trace {what} at position {pos} ({name or 'the model'}): a "
                f"layer-level trace needs a Sequential of Linear layers, each followed by at "
                f"most one activation (Identity, Sigmoid, Tanh, ReLU, LeakyReLU, Softmax). "
                f"Fix: build the network with nn.MLP or nn.Sequential, or use the op-level "
                f"explain.trace() for any other model."
            )
    if not layers:
        raise ValueError("explain: the model has no Linear layer to trace")
    for k in range(1, len(layers)):
        prev, cur = layers[k - 1][1], layers[k][1]
        if prev.out_features != cur.in_features:
            raise ValueError(f"explain: layer {k} has {prev.out_features} outputs but layer "
                             f"{k + 1} expects {cur.in_features} inputs")
    return [tuple(x) for x in layers]  # type: ignore[misc]


def _loss_fn(spec: LossSpec) -> Any:
    return getattr(nnf, spec.function)


def forward(layers: list, params: list, X: np.ndarray) -> tuple[list[Tensor], list[Tensor]]:
    """z and a of every layer, through the engine (params: (W, b) Tensors or arrays)."""
    a = Tensor._wrap(X)
    zs, acts = [], []
    for (_, _, act, _), (W, b) in zip(layers, params):
        z = F.linear(a, W, b) if b is not None else F.matmul(a, F.transpose(W))
        a = act(z) if act is not None else z
        zs.append(z)
        acts.append(a)
    return zs, acts


def batch_loss(tr: NetTrace, params: Params, X: np.ndarray, Y: np.ndarray) -> float:
    """The batch loss L for weights ``params``, (W, b) per layer (the checks' ``loss_of``)."""
    with no_grad():
        _, acts = forward(tr._layers, [(Tensor._wrap(np.asarray(W)),
                                        None if b is None else Tensor._wrap(np.asarray(b)))
                                       for W, b in params], X)
        return float(_loss_fn(tr.loss)(acts[-1], Y).item())


def _fprime(act: Any, name: str, z: np.ndarray) -> np.ndarray | None:
    """f′(z) elementwise, through the engine (the activation's op-table rule)."""
    if name == "softmax":
        return None
    if act is None or name == "identity":
        return np.ones_like(z)
    zt = tensor(z, requires_grad=True)
    act(zt).sum().backward()
    return zt.grad.numpy()


def _prepare(layers: list, spec: LossSpec, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    n_in, n_out = layers[0][1].in_features, layers[-1][1].out_features
    sizes = "-".join(str(s) for s in [n_in] + [ly[1].out_features for ly in layers])
    X = np.asarray(x._data if isinstance(x, Tensor) else x, dtype=np.float64)
    if X.ndim == 1:
        X = X.reshape(1, -1)
    if X.ndim != 2 or X.shape[1] != n_in:
        per = X.shape[-1] if X.ndim else 1
        raise ValueError(
            f"explain: the input has {per} value{'s' if per != 1 else ''} per sample but the "
            f"network {sizes} expects {n_in}. Fix: give {n_in} numbers per sample, e.g. "
            f"--input {','.join(['0'] * n_in)} (samples separated by ';')."
        )
    n = X.shape[0]
    Y = np.asarray(y._data if isinstance(y, Tensor) else y)
    if spec.name == "ce":
        Y = Y.reshape(-1)
        if Y.dtype.kind == "f" and np.all(np.round(Y) == Y):
            Y = Y.astype(np.int64)
        if Y.shape != (n,) or Y.dtype.kind not in "iu" or Y.min() < 0 or Y.max() >= n_out:
            raise ValueError(
                f"explain: loss 'ce' needs one integer class in [0, {n_out - 1}] per sample "
                f"({n} sample{'s' if n > 1 else ''}), got {Y.tolist()}"
            )
        return X, Y
    Y = Y.astype(np.float64)
    if Y.ndim <= 1:
        Y = Y.reshape(n, -1) if Y.size == n * n_out else Y.reshape(1, -1)
    if Y.shape != (n, n_out):
        raise ValueError(
            f"explain: the target has shape {Y.shape} but the network {sizes} gives {n_out} "
            f"output{'s' if n_out > 1 else ''} for each of {n} sample{'s' if n > 1 else ''}, "
            f"so the target needs shape ({n}, {n_out}). Fix: give {n_out} target value"
            f"{'s' if n_out > 1 else ''} per sample."
        )
    return X, Y


PARTS = {"weight": "weight", "weights": "weight", "bias": "bias", "biases": "bias"}


def freeze_of(layers: list, freeze: Sequence[str]) -> list[tuple[str, ...]]:
    """Per layer, the parts a step holds fixed: those named in ``freeze`` ("weight",
    "bias") and any parameter frozen in the model (``requires_grad`` False)."""
    if isinstance(freeze, str):
        freeze = [freeze]
    bad = [f for f in freeze if f not in PARTS]
    if bad:
        raise ValueError(
            f"explain: cannot freeze {bad[0]!r}: freeze names the parts of every layer that a "
            f"step leaves unchanged, 'weight' and/or 'bias'. Fix: freeze=('bias',) updates "
            f"only the weights, as many textbook examples do.")
    names = {PARTS[f] for f in freeze}
    out = []
    for _, lin, _, _ in layers:
        parts = [p for p, t in (("weight", lin.weight), ("bias", lin.bias))
                 if t is not None and (p in names or not t.requires_grad)]
        out.append(tuple(parts))
    return out


def _step(tr: NetTrace, index: int, params: list, X: np.ndarray, Y: np.ndarray) -> StepTrace:
    leaves = [(tensor(W, requires_grad=True), None if b is None else tensor(b, requires_grad=True))
              for W, b in params]
    zs, acts = forward(tr._layers, leaves, X)
    for z, a in zip(zs, acts):
        z.retain_grad()
        if a is not z:
            a.retain_grad()
    fn = _loss_fn(tr.loss)
    L = fn(acts[-1], Y)
    L.backward()
    with no_grad():
        per = fn(Tensor._wrap(acts[-1].numpy()), Y, reduction="none").numpy()
    if per.ndim == 2:
        per = per.sum(axis=1) if tr.loss.reduction == "sum" else per.mean(axis=1)
    c = tr.scale
    steps = []
    a_in = X
    for k, ((name, _, act, act_name), (W, b), z, a) in enumerate(zip(tr._layers, leaves, zs,
                                                                     acts)):
        dW = W.grad.numpy()
        db = None if b is None else b.grad.numpy()
        frozen = tr.frozen[k]
        lr_W = 0.0 if "weight" in frozen else tr.lr
        lr_b = 0.0 if "bias" in frozen else tr.lr
        steps.append(LayerStep(
            index=k + 1, module=name, activation=act_name, W=W.numpy(),
            b=None if b is None else b.numpy(), a_in=a_in, z=z.numpy(), a=a.numpy(),
            fprime=_fprime(act, act_name, z.numpy()), back=a.grad.numpy() / c,
            delta=z.grad.numpy() / c, dW=dW, db=db, W_after=W.numpy() - lr_W * dW,
            b_after=None if b is None else b.numpy() - lr_b * db, frozen=frozen,
        ))
        a_in = a.numpy()
    st = StepTrace(index=index, x=X, y=Y, yhat=acts[-1].numpy(), loss=float(L.item()),
                   sample_losses=per, loss_after=float("nan"), layers=steps)
    st.loss_after = batch_loss(tr, [(ly.W_after, ly.b_after) for ly in steps], X, Y)
    return st


def trace_net(model: Any, x: Any, y: Any, loss: str = "half-sse", lr: float = 0.1,
              steps: int = 1, update: bool = True, check: bool = True,
              freeze: Sequence[str] = ()) -> NetTrace:
    """Trace ``steps`` steps of gradient descent on (x, y) in textbook notation.

    ``model``: an ``nn.Sequential`` (e.g. ``nn.MLP``) of Linear layers and activations.
    ``x``: one sample (a vector) or a batch (rows); ``y``: its target(s) (class indices for
    ``loss="ce"``). ``loss``: "half-sse" (½Σ(ŷ − y)², the seeds'), "mse", "bce" or "ce".
    Computed in float64 on copies of the weights; with ``update`` the model's weights are set
    to the final ones afterwards (in their own dtype), as an SGD step would.
    ``freeze``: parts every step leaves unchanged, ``("bias",)`` to update only the weights
    as many textbook examples do; a parameter with ``requires_grad=False`` is frozen too.
    A frozen part's gradient is still shown; its Δw is 0.

    >>> import glassgrad as gg
    >>> net = gg.nn.MLP([2, 3, 1], activation="identity", init="constant:1")
    >>> tr = trace_net(net, [0, 0], [0], loss="half-sse", lr=0.1)
    >>> tr.steps[0].yhat.item(), tr.steps[0].layers[1].W_after.tolist()
    (4.0, [[0.6, 0.6, 0.6]])
    """
    spec = loss_spec(loss)
    if not np.isfinite(lr) or lr < 0:
        raise ValueError(f"explain: the learning rate must be a number >= 0, got {lr}")
    if int(steps) < 1:
        raise ValueError(f"explain: steps must be at least 1, got {steps}")
    layers = layers_of(model)
    X, Y = _prepare(layers, spec, x, y)
    params = [(ly[1].weight.numpy().astype(np.float64),
               None if ly[1].bias is None else ly[1].bias.numpy().astype(np.float64))
              for ly in layers]
    tr = NetTrace(sizes=[layers[0][1].in_features] + [ly[1].out_features for ly in layers],
                  activations=[ly[3] for ly in layers], loss=spec, lr=float(lr), n=len(X),
                  frozen=freeze_of(layers, freeze), _layers=layers)
    held = sorted({p for parts in tr.frozen for p in parts})
    tr.title = (f"Layer-level trace of a {'-'.join(map(str, tr.sizes))} network "
                f"({', '.join(dict.fromkeys(tr.activations))}), loss {spec.name}, α = {lr:g}"
                + (f", {' and '.join(p + 'es' if p == 'bias' else p + 's' for p in held)} "
                   f"frozen" if held else ""))
    for s in range(int(steps)):
        st = _step(tr, s + 1, params, X, Y)
        tr.steps.append(st)
        params = [(ly.W_after, ly.b_after) for ly in st.layers]
    if check:
        tr.checks = net_checks(tr.steps, spec, tr.lr,
                               lambda params, X, Y: batch_loss(tr, params, X, Y))
    if update:
        for (_, lin, _, _), (W, b) in zip(layers, params):
            np.copyto(lin.weight.numpy(), W, casting="same_kind")  # in place: state_dict views
            if b is not None:                                     # and optimizers keep seeing it
                np.copyto(lin.bias.numpy(), b, casting="same_kind")
    return tr

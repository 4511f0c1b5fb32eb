"""gg.compile(..., backend="c"): the whole step as one C function, compiled with the system's
C compiler. Its replays equal the NumPy replay's to float rounding; its guards and optimizer
variants are the numba back end's; arrays it was not written for make that call replay in
NumPy (never a read or write outside an array); an op without loops, or no compiler, falls
back with a warning; a compiled library is kept on disk and loaded by the next process.

Without the extension (GLASSGRAD_NATIVE=0) the same tests run the ctypes caller."""

from __future__ import annotations

import math
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest

import glassgrad as gg
from glassgrad import autograd
from glassgrad.compiler import c_backend, c_build
from glassgrad.compiler.native_program import JitFallbackWarning
from glassgrad.nn import functional as F

RTOL = 2e-6
XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
XOR_Y = np.array([[0], [1], [1], [0]], np.float32)

pytestmark = [pytest.mark.skipif(bool(c_build.unavailable()), reason="no C compiler here"),
              pytest.mark.usefixtures("c_step_cache")]  # (conftest.py)


def _pair(make_model, loss, optimizer=None, **opt_kw):
    """Two identical models, each with its compiled step: NumPy's and C's."""
    out = []
    for backend in ("numpy", "c"):
        model = make_model()
        opt = optimizer(model.parameters(), **opt_kw) if optimizer else None
        step = gg.compile(lambda X, y, m=model: loss(m(X), y), optimizer=opt, backend=backend)
        out.append((model, step))
    return out


def _params(model):
    return [p.numpy().copy() for p in model.parameters()]


def _grads(model):
    return [p.grad.numpy().copy() for p in model.parameters()]


def _assert_close(a, b, rtol=RTOL):
    for x, y in zip(a, b, strict=True):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * max(1.0, np.abs(y).max()))


def _xor_model(dtype=np.float32):
    model = gg.nn.MLP([2, 3, 1], activation="tanh", seed=0)
    if dtype != np.float32:
        for p in model.parameters():
            p.data = p.numpy().astype(dtype)
    return model


def _small_mlp():
    return gg.nn.MLP([5, 8, 4], activation="relu", seed=1)


def _mlp_data(n=6, classes=4, features=5, seed=0):
    rng = np.random.default_rng(seed)
    return (gg.tensor(rng.standard_normal((n, features)).astype(np.float32)),
            rng.integers(0, classes, n))


# --------------------------------------------------------------------------- same numbers
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_xor_training_equals_the_numpy_replay(dtype) -> None:
    (m_np, s_np), (m_c, s_c) = _pair(lambda: _xor_model(dtype), F.mse_loss, gg.optim.SGD,
                                     lr=0.5)
    X, Y = gg.tensor(XOR_X.astype(dtype)), gg.tensor(XOR_Y.astype(dtype))
    losses = [(float(s_np(X, Y)), float(s_c(X, Y))) for _ in range(30)]
    assert type(s_c._last) is c_backend.CProgram
    assert "gg_step" in s_c.source and "/* update p0 */" in s_c.source
    assert s_c._last.jit_coef is not None  # the direct variant: updates inside the C call
    np.testing.assert_allclose(*zip(*losses), rtol=1e-5)
    assert losses[-1][1] < losses[0][1]  # it trains
    _assert_close(_params(m_c), _params(m_np), rtol=1e-5)
    assert all(p.grad is None for p in m_c.parameters())  # used up, as the NumPy step does


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_relu_mlp_with_cross_entropy_gradients_equal_the_numpy_replay(reduction) -> None:
    loss = lambda out, y: F.cross_entropy(out, y, reduction=reduction)  # noqa: E731
    (m_np, s_np), (m_c, s_c) = _pair(_small_mlp, loss)
    for seed in range(3):  # replays on new data, the same recording
        X, y = _mlp_data(seed=seed)
        for m in (m_np, m_c):
            m.zero_grad()
        l_np, l_c = s_np(X, y), s_c(X, y)
        np.testing.assert_allclose(l_c.numpy(), l_np.numpy(), rtol=RTOL)
        _assert_close(_grads(m_c), _grads(m_np))
    assert type(s_c._last) is c_backend.CProgram


def _adam(params, **kw):
    return gg.optim.Adam(params, lr=0.01)


OPTIMIZERS = [  # every update the compiler folds, and two it cannot
    (gg.optim.SGD, {"lr": 0.1}),
    (gg.optim.SGD, {"lr": 0.1, "weight_decay": 0.01}),
    (gg.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    (gg.optim.SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    (gg.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    (_adam, {}),
]


@pytest.mark.parametrize(("optimizer", "kw"), OPTIMIZERS,
                         ids=["sgd", "sgd-wd", "momentum", "momentum-damp-wd", "nesterov", "adam"])
def test_every_optimizer_trains_the_same_weights(optimizer, kw) -> None:
    (m_np, s_np), (m_c, s_c) = _pair(_small_mlp, F.cross_entropy, optimizer, **kw)
    for seed in range(5):
        X, y = _mlp_data(seed=seed)
        np.testing.assert_allclose(s_c(X, y).numpy(), s_np(X, y).numpy(), rtol=1e-5)
    _assert_close(_params(m_c), _params(m_np), rtol=1e-5)
    assert type(s_c._last) is c_backend.CProgram
    kernels = s_c._last.jit_kernels
    assert ("direct" in kernels) == (kw in ({"lr": 0.1}, {"lr": 0.1, "weight_decay": 0.01}))


def test_large_products_call_blas_fold_the_update_and_agree() -> None:
    make = lambda: gg.nn.MLP([64, 96, 4], activation="relu", seed=2)  # noqa: E731
    (m_np, s_np), (m_c, s_c) = _pair(make, F.cross_entropy, gg.optim.SGD, lr=0.05)
    for seed in range(3):
        X, y = _mlp_data(n=48, classes=4, features=64, seed=seed)
        np.testing.assert_allclose(s_c(X, y).numpy(), s_np(X, y).numpy(), rtol=1e-5)
    source = s_c.source
    # 48·64·96 multiply-adds is above LOOPS_MAX (BLAS, the update inside it), 48·96·4 below
    assert "gg_sgemm(101, 112, 111, 96, 64, 48, al0," in source
    assert "update p0 in ∂L/∂p0's product" in source
    assert "for (int64_t t = 0; t < 96; t++)" in source  # the small product's loops
    _assert_close(_params(m_c), _params(m_np), rtol=1e-5)


def _elementwise_loss(x, w, b):
    """Every elementwise op and reduction the loops have, with broadcasting both ways."""
    h = gg.sigmoid(x @ w) * b - gg.exp(x.sum() * 0.01) / (b + 2.0)
    return (h * h).mean() + gg.relu(h - b).sum() - (gg.tanh(h) * 0.5).mean()


def test_elementwise_ops_and_broadcast_gradients_equal_the_numpy_replay() -> None:
    rng = np.random.default_rng(3)
    x = gg.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    w0, b0 = (rng.standard_normal(s).astype(np.float32) for s in ((3, 5), (1, 5)))
    results = []
    for backend in ("numpy", "c"):
        w = gg.tensor(w0.copy(), requires_grad=True)
        b = gg.tensor(b0.copy(), requires_grad=True)
        step = gg.compile(lambda x, w=w, b=b: _elementwise_loss(x, w, b), backend=backend)
        for _ in range(2):
            w.grad = b.grad = None
            loss = step(x)
        results.append((loss.numpy(), w.grad.numpy(), b.grad.numpy()))
    assert type(step._last) is c_backend.CProgram
    _assert_close(results[1], results[0])


def test_the_workspace_is_the_largest_live_set_and_live_buffers_never_share(monkeypatch):
    """The layout (largest buffer first, each at the lowest offset clear of the buffers it
    lives beside): no two buffers alive on one line share a byte, and for a ReLU MLP's step
    the workspace is the sum of the buffers alive on its busiest line, the least possible."""
    seen = []
    real = c_backend.CSource.layout

    def spy(self, kept, unused=frozenset()):
        offsets, size = real(self, kept, unused)
        last = {}
        for i, line in enumerate(self.low.lines):
            for n in line.names():
                last[n] = i
        end = len(self.low.lines) + 1
        lives = {k: (f, end if names & kept else max([st, *(last.get(n, -1) for n in names)]),
                     sz) for k, (f, st, sz, names) in enumerate(self.buffers) if k not in unused}
        seen.append((offsets, size, lives, end))
        return offsets, size

    monkeypatch.setattr(c_backend.CSource, "layout", spy)
    rng = np.random.default_rng(13)
    X = gg.tensor(rng.standard_normal((64, 40)).astype(np.float32))
    y = rng.integers(0, 5, 64)

    def make():
        return gg.nn.MLP([40, 48, 32, 5], activation="relu", seed=0)

    (_, s_np), (_, s_c) = _pair(make, F.cross_entropy, gg.optim.SGD, lr=0.1)
    for _ in range(3):
        s_np(X, y)
        s_c(X, y)
    assert type(s_c._last) is c_backend.CProgram and seen
    for offsets, size, lives, end in seen:
        busiest = max(sum(sz for f, st, sz in lives.values() if f <= i <= st)
                      for i in range(end + 1))
        assert size == busiest
        for a, (fa, sa, za) in lives.items():
            for b, (fb, sb, zb) in lives.items():
                if a < b and fa <= sb and fb <= sa:  # alive on a common line
                    assert (offsets[a] + za <= offsets[b]
                            or offsets[b] + zb <= offsets[a]), (a, b)


def test_a_computed_bias_added_in_the_relus_pass_is_kept_until_then() -> None:
    """The bias a fused relu adds is read at the relu's line, which does not list it: its
    memory must not go to the temporaries made in between (the layout's liveness)."""
    rng = np.random.default_rng(5)
    x0, x1 = (gg.tensor(rng.standard_normal(s).astype(np.float32)) for s in ((64, 32), (4, 8)))
    # (the temporaries in between are small enough to fit where the bias was)
    w0, v0, b0 = (rng.standard_normal(s).astype(np.float32) for s in ((48, 32), (8, 8), 48))
    results = []
    for backend in ("numpy", "c"):
        # (a frozen layer: no rule of the backward pass names the bias again)
        w, b = gg.tensor(w0.copy()), gg.tensor(b0.copy())
        v = gg.tensor(v0.copy(), requires_grad=True)

        def loss(x, y, w=w, v=v, b=b):
            z = F.linear(x, w, b * 2.0)  # a bias the step computes: a temporary
            other = gg.tanh(y @ v) * 3.0  # temporaries made between the layer and its relu
            return gg.relu(z).sum() + other.sum()

        step = gg.compile(loss, backend=backend)
        step(x0, x1)  # (records; the C step is compiled and checked on the replay)
        v.grad = None
        out = step(x0, x1)
        results.append((out.numpy(), v.grad.numpy()))
    assert "v = gg_r0[i * 48 + j] + gg_r1[j]" in step.source  # (the bias in the relu's pass)
    _assert_close(results[1], results[0], rtol=1e-5)


def test_outputs_and_argument_gradients_are_delivered() -> None:
    seen = []
    for backend in ("numpy", "c"):
        model = _xor_model()
        opt = gg.optim.SGD(model.parameters(), lr=0.5)
        step = gg.compile(lambda X, y, m=model: (F.mse_loss(m(X), y), m(X)), optimizer=opt,
                          backend=backend)
        X = gg.tensor(XOR_X, requires_grad=True)
        for _ in range(3):
            X.grad = None
            loss, out = step(X, gg.tensor(XOR_Y))
        seen.append((loss.numpy(), out.numpy(), X.grad.numpy(), *_params(model)))
    assert step._last.jit_coef is not None
    _assert_close(seen[1], seen[0], rtol=1e-5)


def _c_or_fallback_equals_eager(fn, args, new_args) -> str:
    """Compile ``fn`` with the C back end: it either runs in C or says it falls back; either
    way each call's loss and gradients are the engine's. Returns the program's kind."""
    step = gg.compile(fn, backend="c")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", JitFallbackWarning)
        for call_args in (args, new_args):  # the first call records, the second replays
            fresh = [gg.tensor(a.numpy().copy(), requires_grad=True) if isinstance(a, gg.Tensor)
                     and a.requires_grad else a for a in call_args]
            want = fn(*fresh)
            want.backward()
            for a in call_args:
                if isinstance(a, gg.Tensor):
                    a.grad = None
            loss = step(*call_args)
            np.testing.assert_allclose(loss.numpy(), want.numpy(), rtol=1e-9, atol=1e-9)
            for a, f in zip(call_args, fresh):
                if isinstance(a, gg.Tensor) and a.requires_grad:
                    np.testing.assert_allclose(a.grad.numpy(), f.grad.numpy(), rtol=1e-9,
                                               atol=1e-9)
    kind = type(step._last).__name__
    warned = [str(w.message) for w in caught if issubclass(w.category, JitFallbackWarning)]
    assert (kind == "CProgram") == (not warned), warned  # a fallback always says so
    assert all("is not supported by the C back end" in w for w in warned), warned
    return kind


def test_every_op_case_runs_in_c_or_falls_back_saying_so(op_case, cases) -> None:
    """The op table's cases (float64), each as (op(*xs) * weights).sum(): the ops the loops
    cover give the engine's numbers to float64 rounding, every other says why it falls back."""
    name, shapes, attrs = op_case
    op = gg.OPS[name]
    rng = np.random.default_rng(5)
    args = cases.sample(op, shapes, rng)
    new_args = cases.sample(op, shapes, np.random.default_rng(6))
    weights = rng.standard_normal(op(*args, **attrs).shape)

    def fn(*xs):
        return (op(*xs, **attrs) * weights).sum()

    index = attrs.get("index")
    if isinstance(index, np.ndarray) and index.dtype == np.bool_:
        return  # (refused when recording, for every back end: test_compile.py)
    kind = _c_or_fallback_equals_eager(fn, args, new_args)
    floats = all(a.numpy().dtype == np.float64 for a in args if isinstance(a, gg.Tensor))
    if floats and (name in ("add", "sub", "mul", "div", "tanh", "relu", "sigmoid", "exp",
                            "neg", "log", "abs", "sqrt", "pow", "maximum", "minimum", "sin",
                            "cos", "erf")
                   and not attrs or name in ("reshape", "concatenate", "clip", "sum", "mean",
                                             "log_softmax", "permute", "max", "min",
                                             "getitem")):
        assert kind == "CProgram"
    if name == "where":  # (a bool condition, two float64 branches)
        assert kind == "CProgram"
    if name == "logsumexp" and attrs.get("axis") not in ((0, 2), (-1, 0)):  # (consecutive)
        assert kind == "CProgram"
    if name in ("gather", "embedding", "broadcast_to", "linear") or name == "cumsum" and shapes[0]:
        assert kind == "CProgram"
    # (a vector @ a stack of matrices is not taken)
    if name == "matmul" and not (len(shapes[0]) == 1 and len(shapes[1]) > 2):
        assert kind == "CProgram"
    if name in ("conv2d", "conv2d_input", "conv2d_weight"):  # (any stride, padding, ...)
        assert kind == "CProgram"
    if name in ("max_pool2d", "cast"):  # (any windows; float64 from float32)
        assert kind == "CProgram"


def test_every_composite_runs_in_c_or_falls_back_saying_so(composite_case, cases) -> None:
    name, shapes, kw = composite_case
    f = cases.COMPOSITES[name][0]
    rng = np.random.default_rng(8)
    args = cases.sample_composite(shapes, rng)
    new_args = cases.sample_composite(shapes, np.random.default_rng(9))
    weights = rng.standard_normal(f(*args, **kw).shape)
    _c_or_fallback_equals_eager(lambda *xs: (f(*xs, **kw) * weights).sum(), args, new_args)


SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, np.nan, np.inf, -np.inf, 1e-30, -3.0]


def _edges(rng, shape, dtype):
    v = np.where(rng.random(shape) < 0.4, rng.choice(SPECIAL, shape), rng.standard_normal(shape))
    return v.astype(dtype)


def _comparisons_and_selections(x, w, b):
    """log, abs, neg, clip, where and the comparisons, with broadcasting both ways."""
    h = x * w + b  # (4, 3) from (4, 3), (3,), (4, 1)
    picked = gg.where(h > 0.5, h, -h) + gg.where(x <= b, 0.25 * x, gg.abs(w))
    kept = gg.clip(h, -1.0, 2.0) + gg.clip(w, 0.0) + gg.clip(b, None, 0.5)
    return (gg.log(gg.abs(picked) + 1.0) * kept - (x >= w) * w + (h < b) * h
            + (x == 0.0) * b + (w != 2.0) * x - (-picked) + gg.abs(w) * 1.5).sum()


def _reductions_and_powers(x, w, b):
    """sum and mean over some axes (kept or not), sqrt, pow (both rules), maximum and
    minimum (ties: w holds 0.5, as b's first row does), log_softmax along either axis, max
    and min over an axis, permute, sin, cos, erf and indexing."""
    h = gg.maximum(x, w) - gg.minimum(b, x) + gg.maximum(w, b)
    r = h.sum(axis=0) * w + h.mean(axis=1, keepdims=True) * b + (h * h).sum(axis=(0, 1),
                                                                            keepdims=True)
    p = gg.sqrt(gg.abs(h) + 1.0) + (gg.abs(h) + 0.5) ** w + h ** 2.0 + (b * b + 1.0) ** 0.5
    e = (gg.amax(h, axis=0) * w).sum() + (gg.amin(x, axis=1, keepdims=True) * b).sum()
    e = e + gg.amax(w) + gg.amin(gg.maximum(w, w * 0.0 + 0.5))  # (a tie: 0.5 twice)
    e = e + (gg.amax(gg.clip(h, -1.0, 2.0), axis=0) * w).sum()  # (ties on the bounds)
    # indexing: a view (slices, an int, a reversed axis, a new axis) and positions read twice
    e = e + (h[1:, ::-1] * w).sum() + (h[None, 2, :2] * w[1:]).sum() + (h[:, 1] * b[0]).sum()
    e = e + (h[np.array([0, 3, 3])] * w).sum() + (w[np.array([2, 2, 0])] * 1.5).sum()
    e = e + (gg.broadcast_to(w, (2, 4, 3)) * x).sum()  # (its rule: summed over 2 and 4)
    e = e + (h.permute(1, 0) * w.reshape(3, 1)).sum() + (gg.sin(w) * gg.cos(b) + gg.erf(h)).sum()
    # (either axis; rows of b without a NaN or ∞ keep it finite)
    q = gg.log_softmax(b * w + w, dim=-1) * w + gg.log_softmax(b * w, dim=0) * w
    return (r.mean(axis=-1).sum() + p.mean(axis=0).sum() + (b.sum(axis=1) * 0.5).sum()
            + q.sum() + e)


@pytest.mark.parametrize("loss_fn", [_comparisons_and_selections, _reductions_and_powers])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_comparisons_selections_and_clips_equal_the_numpy_replay(dtype, loss_fn) -> None:
    """NaN, ±0, ±∞ and values on clip's bounds, the comparisons' thresholds and maximum's
    ties included: the C loops give NumPy's values (a NaN where NumPy has one), and run in
    C."""
    rng = np.random.default_rng(11)
    x = gg.tensor(_edges(rng, (4, 3), dtype))
    w0, b0 = np.array([-0.0, 2.0, 0.5], dtype), _edges(rng, (4, 1), dtype)  # |w|' at −0: 0
    b0[0] = 0.5  # on clip's upper bound
    results = []
    for backend in ("numpy", "c"):
        w = gg.tensor(w0.copy(), requires_grad=True)
        b = gg.tensor(b0.copy(), requires_grad=True)
        step = gg.compile(lambda x, w=w, b=b: loss_fn(x, w, b), backend=backend)
        with warnings.catch_warnings():
            warnings.simplefilter("error", JitFallbackWarning)
            warnings.simplefilter("ignore", RuntimeWarning)  # (NaN and ∞ on purpose)
            for _ in range(2):
                w.grad = b.grad = None
                loss = step(x)
        results.append((loss.numpy(), w.grad.numpy(), b.grad.numpy()))
    assert type(step._last) is c_backend.CProgram
    for mine, theirs in zip(results[1], results[0], strict=True):
        assert mine.dtype == theirs.dtype == dtype
        np.testing.assert_allclose(mine, theirs, rtol=2e-6 if dtype == np.float32 else 1e-12,
                                   equal_nan=True)


def _train_both_in_c(pair, X, y, steps=4) -> None:
    """Train ``_pair``'s two models: the C one must run in C (no fallback) and end with the
    NumPy one's weights."""
    (m_np, s_np), (m_c, s_c) = pair
    with warnings.catch_warnings():
        warnings.simplefilter("error", JitFallbackWarning)
        for _ in range(steps):
            s_np(X, y)
            s_c(X, y)
    assert type(s_c._last) is c_backend.CProgram
    _assert_close(_params(m_c), _params(m_np))


@pytest.mark.parametrize(("activation", "loss"), [
    ("leaky_relu", gg.nn.functional.binary_cross_entropy_with_logits),
    ("tanh", lambda out, y: gg.nn.functional.binary_cross_entropy(gg.sigmoid(out), y)),
    ("sigmoid", gg.nn.functional.l1_loss),
])
def test_the_command_lines_activations_and_losses_run_in_c(activation, loss) -> None:
    """leaky_relu (a comparison and where), binary cross-entropy on probabilities (log,
    clip, where) and the L1 loss (abs): steps `glassgrad train` makes, all in C."""
    rng = np.random.default_rng(12)
    X = gg.tensor(rng.standard_normal((16, 2)).astype(np.float32))
    y = gg.tensor((rng.random((16, 1)) > 0.5).astype(np.float32))

    def make():
        return gg.nn.MLP([2, 5, 1], activation=activation, seed=0)

    _train_both_in_c(_pair(make, loss, gg.optim.SGD, lr=0.1), X, y)


# --------------------------------------------------------------------------- declines
def test_a_class_index_out_of_range_raises_the_engines_error_and_changes_nothing() -> None:
    model = _small_mlp()
    opt = gg.optim.SGD(model.parameters(), lr=0.1)
    step = gg.compile(lambda X, y: F.cross_entropy(model(X), y), optimizer=opt, backend="c")
    X, y = _mlp_data()
    step(X, y)
    before = _params(model)
    with pytest.raises(IndexError):
        step(X, np.array([0, 1, 2, 3, 4, 0]))  # 4 is out of range for 4 classes
    _assert_close(_params(model), before, rtol=0)
    step(X, y)
    assert not np.allclose(_params(model)[0], before[0])  # the next good step runs
    assert step._last.jit_coef is not None and not step._last.jit_failed  # (in C)


@pytest.mark.parametrize("x_shape", [(2, 3, 4), (2, 2, 3, 4), (4,)])
def test_linear_layers_on_sequences_and_single_samples_run_in_c(x_shape) -> None:
    """A linear layer's input of other than 2 dimensions is seen as rows (no copy): the same
    products, the SGD update still inside the weight's, as the NumPy replay."""
    rng = np.random.default_rng(15)
    X = gg.tensor(rng.standard_normal(x_shape).astype(np.float32))
    y = gg.tensor(rng.standard_normal((*x_shape[:-1], 1)).astype(np.float32))

    def make():
        gg.manual_seed(0)  # (the same weights for both)
        return gg.nn.Sequential(gg.nn.Linear(4, 5), gg.nn.Tanh(), gg.nn.Linear(5, 1))

    _train_both_in_c(_pair(make, F.mse_loss, gg.optim.SGD, lr=0.1), X, y)


@pytest.mark.parametrize(("a_shape", "b_shape"), [
    ((3, 4, 5), (3, 5, 2)),  # a stack each, small: the products are loops
    ((6, 5), (2, 3, 5, 7)),  # a matrix times a stack: a's gradient summed over the stack
    ((2, 1, 24, 40), (3, 40, 48)),  # stacks broadcast both ways, products through BLAS
])
def test_stacks_of_matrices_multiply_in_c_as_the_engine_does(a_shape, b_shape) -> None:
    """a @ b with b a stack of matrices: one product per matrix of the broadcast stack, and
    the rules' the same way, then summed down to a broadcast operand's shape."""
    rng = np.random.default_rng(16)
    a, b = (gg.tensor(rng.standard_normal(s), requires_grad=True) for s in (a_shape, b_shape))
    a2, b2 = (gg.tensor(rng.standard_normal(s), requires_grad=True) for s in (a_shape, b_shape))
    out_shape = np.broadcast_shapes(a_shape[:-2], b_shape[:-2]) + (a_shape[-2], b_shape[-1])
    weights = rng.standard_normal(out_shape)
    fn = lambda a, b: (gg.tanh(a @ b) * weights).sum()  # noqa: E731
    assert _c_or_fallback_equals_eager(fn, (a, b), (a2, b2)) == "CProgram"
    step = gg.compile(fn, backend="c")
    for _ in range(2):
        step(a, b)
    assert "for (int64_t q = 0; q <" in step.source
    assert ("gg_dgemm(" in step.source) == (math.prod(a_shape[-2:]) * b_shape[-1] > 1 << 15)


def test_casts_run_in_c() -> None:
    """float32 to float64 and back (the gradient cast back by the line), a bool mask and an
    integer array made float32, as the engine computes them."""
    def fn(x, z, k):
        wide = (x.double() * 1.25).tanh().sum()
        return wide.float() + (x * (z > 0).float()).sum() + (x * k.float()).mean()

    def args(seed):
        r = np.random.default_rng(seed)
        return (gg.tensor(r.standard_normal((3, 5)).astype(np.float32), requires_grad=True),
                gg.tensor(r.standard_normal((3, 5)).astype(np.float32)),
                gg.tensor(r.integers(-3, 4, (3, 5))))

    assert _c_or_fallback_equals_eager(fn, args(1), args(2)) == "CProgram"
    step = gg.compile(fn, backend="c")
    for _ in range(2):
        step(*args(3))
    assert "(double)" in step.source and "(float)" in step.source


def _lenet():
    gg.manual_seed(0)  # (the same weights for both)
    return gg.nn.Sequential(
        gg.nn.Conv2d(1, 4, 5, padding=2), gg.nn.ReLU(), gg.nn.MaxPool2d(2),
        gg.nn.Conv2d(4, 6, 5, stride=2), gg.nn.ReLU(),  # (14 × 14 to 5 × 5)
        gg.nn.MaxPool2d(2),  # (to 2 × 2: a row and a column of the 5 × 5 left over)
        gg.nn.Flatten(), gg.nn.Linear(6 * 2 * 2, 10))


def test_a_small_lenet_trains_in_c_as_in_the_numpy_replay() -> None:
    """conv2d (padding, stride, both rules and the bias's) and max-pooling over tiling
    windows, in C: the whole step is one C function, with the NumPy replay's weights."""
    rng = np.random.default_rng(17)
    X = gg.tensor(rng.standard_normal((8, 1, 28, 28)).astype(np.float32))
    y = rng.integers(0, 10, 8)
    pair = _pair(_lenet, F.cross_entropy, gg.optim.SGD, lr=0.05)
    _train_both_in_c(pair, X, y)
    assert "gg_sgemm(" in pair[1][1].source  # (the first convolution's products are BLAS's)


@pytest.mark.parametrize("groups", [2, 4])
def test_grouped_and_depthwise_convolutions_train_in_c(groups) -> None:
    """conv2d with groups (4 groups of one channel: depthwise): each group's product on its
    blocks of the input's channels, the weight and the output, and both rules the same way."""
    rng = np.random.default_rng(18)
    X = gg.tensor(rng.standard_normal((5, 4, 9, 9)).astype(np.float32))
    y = rng.integers(0, 3, 5)

    def make():
        gg.manual_seed(0)  # (the same weights for both)
        return gg.nn.Sequential(
            gg.nn.Conv2d(4, 8, 3, padding=1, groups=groups, stride=2), gg.nn.ReLU(),
            gg.nn.Conv2d(8, 8, 3, groups=groups), gg.nn.ReLU(), gg.nn.Flatten(),
            gg.nn.Linear(8 * 3 * 3, 3))

    _train_both_in_c(_pair(make, F.cross_entropy, gg.optim.SGD, lr=0.05), X, y)


MAX_POOL_X = [[[[1, 3, 3, 0], [2, 3, -0.0, 0.0],
                [np.nan, 1, 5, np.nan], [2, np.nan, np.nan, 5],
                [-np.inf, -np.inf, 7, 7], [-np.inf, -np.inf, 7, 7]]]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [{}, {"stride": 1}, {"kernel_size": 3, "padding": 1},
                                {"stride": 2, "dilation": 2, "ceil_mode": True}])
def test_max_pooling_in_c_keeps_the_engines_ties_and_nans(dtype, kw) -> None:
    """A window's first maximum takes the gradient, also at a tie of −0 and +0; a NaN
    window's maximum is NaN and its last NaN takes the gradient; a −0 gradient lands as +0;
    −∞ inputs beside −∞ padding. Tiling windows (the default), overlapping ones, padding,
    dilation with ceil_mode: the NumPy replay's numbers, bit for bit."""
    x = np.array(MAX_POOL_X, dtype)
    kw = {"kernel_size": 2, **kw}
    shape = gg.nn.functional.max_pool2d(gg.tensor(x), **kw).shape
    g = np.arange(np.prod(shape), dtype=dtype).reshape(shape) - 1.0  # (−1, −0 and more)
    g[g == 0] = -0.0
    seen = []
    for backend in ("numpy", "c"):
        step = gg.compile(lambda x: (gg.nn.functional.max_pool2d(x, **kw) * gg.tensor(g)
                                     ).sum(), backend=backend)
        for _ in range(3):  # (recorded, then checked and replayed in C, then replayed)
            t = gg.tensor(x, requires_grad=True)
            loss = step(t)
        seen.append((loss.numpy(), t.grad.numpy()))
    assert type(step._last) is c_backend.CProgram
    (loss_np, dx_np), (loss_c, dx_c) = seen
    np.testing.assert_array_equal(loss_c, loss_np)
    assert dx_c.dtype == dx_np.dtype == dtype
    np.testing.assert_array_equal(dx_c, dx_np)
    if len(kw) == 1:  # tiling windows, g [[−1, −0], [1, 2], [3, 4]]: where each lands
        assert dx_c[0, 0, 0, 1] == -1 and dx_c[0, 0, 1, 1] == 0  # the first of two 3s
        assert dx_c[0, 0, 0, 2] == 0 and not np.signbit(dx_c[0, 0, 0, 2])  # −0 lands as +0
        assert dx_c[0, 0, 3, 1] == 1 and dx_c[0, 0, 3, 2] == 2  # NaN windows: their last NaN
        assert dx_c[0, 0, 4, 0] == 3 and dx_c[0, 0, 4, 2] == 4  # −∞s and 7s: the first
        assert np.count_nonzero(dx_c) == 5


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_an_embedding_runs_in_c_and_an_index_out_of_range_changes_nothing(padding_idx) -> None:
    """The indices are an argument: checked on every call. In range, the step runs in C
    (padding_idx's row gets no gradient) with the NumPy replay's numbers; out of range, it
    declines and the NumPy replay raises the engine's error, with the weights unchanged."""
    idx = np.array([0, 2, 4, 2, 2, 1])  # (rows repeat)
    runs = []
    for backend in ("numpy", "c"):
        gg.manual_seed(0)
        emb, lin = gg.nn.Embedding(5, 3, padding_idx=padding_idx), gg.nn.Linear(3, 1)
        params = [*emb.parameters(), *lin.parameters()]
        opt = gg.optim.SGD(params, lr=0.5)
        step = gg.compile(lambda i, emb=emb, lin=lin: (lin(emb(i)) ** 2).mean(), optimizer=opt,
                          backend=backend)
        with warnings.catch_warnings():
            warnings.simplefilter("error", JitFallbackWarning)
            for _ in range(3):
                step(gg.tensor(idx))
        runs.append([p.numpy().copy() for p in params])
    assert type(step._last) is c_backend.CProgram
    _assert_close(runs[1], runs[0])
    if padding_idx is not None:  # (its row never moved from where manual_seed put it)
        gg.manual_seed(0)
        np.testing.assert_array_equal(
            runs[1][0][padding_idx],
            gg.nn.Embedding(5, 3, padding_idx=padding_idx).weight.numpy()[padding_idx])
    before = [p.numpy().copy() for p in params]
    with pytest.raises(IndexError):
        step(gg.tensor(np.array([0, 5, 1, 1, 1, 1])))  # 5 is out of range for 5 rows
    _assert_close([p.numpy() for p in params], before, rtol=0)
    step(gg.tensor(idx))
    assert not np.allclose(params[0].numpy(), before[0])  # the next good step runs


def test_a_strided_parameter_is_updated_where_it_lives() -> None:
    """The step writes parameters in place, so it declines one that is not C-contiguous:
    that call replays in NumPy (one warning), and the update lands in the caller's array."""
    (m_np, s_np), (m_c, s_c) = _pair(_xor_model, F.mse_loss, gg.optim.SGD, lr=0.5)
    X, Y = gg.tensor(XOR_X), gg.tensor(XOR_Y)
    for step, model in ((s_np, m_np), (s_c, m_c)):
        step(X, Y)
        w = next(model.parameters())
        w.data = np.ascontiguousarray(w.numpy().T).T  # same values, Fortran order
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            step(X, Y), step(X, Y)
        if step is s_c:
            assert [str(c.message).count("not C-contiguous") for c in caught] == [1]
    assert not next(m_c.parameters()).numpy().flags.c_contiguous
    _assert_close(_params(m_c), _params(m_np), rtol=1e-5)


def test_a_transposed_input_is_read_through_a_contiguous_copy() -> None:
    (m_np, s_np), (m_c, s_c) = _pair(_xor_model, F.mse_loss, gg.optim.SGD, lr=0.5)
    X = gg.tensor(XOR_X.T.copy()).T
    assert not X.numpy().flags.c_contiguous
    for _ in range(3):
        np.testing.assert_allclose(s_c(X, gg.tensor(XOR_Y)).numpy(),
                                   s_np(X, gg.tensor(XOR_Y)).numpy(), rtol=1e-6)
    _assert_close(_params(m_c), _params(m_np), rtol=1e-5)


def test_call_step_checks_every_array_before_calling() -> None:
    """The native caller refuses (NotImplemented, nothing called) an array of the wrong
    size, a strided one, a read-only one the step writes, and a written one that overlaps
    another; the ctypes caller refuses the same."""
    model = _xor_model()
    step = gg.compile(lambda X, y: F.mse_loss(model(X), y), backend="c")
    for _ in range(2):  # (the second call compiles)
        step(gg.tensor(XOR_X), gg.tensor(XOR_Y))
    caller = step._last.jit_kernels["plain"].__globals__  # (the generated caller's)
    fn, sizes_addr = caller["FN"], caller["SIZES"]
    layout = step._last.c_layouts["plain"]["arrays"]
    good = [np.zeros_like(a) for _, a, _ in layout]
    good[layout.index(next(x for x in layout if x[0] == "seed"))][...] = 1
    callers = [c_build._ctypes_call]
    if autograd._native is not None:
        callers.append(autograd._native.call_step)
    written = next(k for k, (_, _, w) in enumerate(layout) if w)
    for call in callers:
        assert call(fn, sizes_addr, tuple(good), ()) == 0
        short = list(good)
        short[0] = good[0][:2]
        strided = list(good)
        strided[0] = np.zeros((2, 4), np.float32).T
        frozen = list(good)
        frozen[written] = good[written].copy()
        frozen[written].flags.writeable = False
        overlapping = list(good)
        overlapping[written] = good[0].reshape(-1)[:good[written].size].reshape(
            good[written].shape)
        for bad in (short, strided, frozen, overlapping):
            assert call(fn, sizes_addr, tuple(bad), ()) is NotImplemented


# --------------------------------------------------------------------------- threads
def test_two_threads_stepping_at_once_each_get_their_own_numbers() -> None:
    """The library's workspace is taken by one call at a time; a call while it is taken
    (the ctypes caller lets two threads in) uses its own memory. The threads call the
    step's function itself, so that most of their time is inside C."""
    model = gg.nn.MLP([64, 128, 4], activation="tanh", seed=1)
    step = gg.compile(lambda X, y: F.cross_entropy(model(X), y), backend="c")
    datas = [_mlp_data(n=32, features=64, seed=s) for s in range(2)]
    step(*datas[0]), step(*datas[0])  # (the second call compiles)
    prog = step._last
    fn = prog.jit_kernels["plain"]
    inputs = [prog.inputs([gg.tensor(x), gg.tensor(y)]) for x, y in datas]
    want = [fn(*args) for args in inputs]
    bad = [0, 0]

    def run(k):
        for _ in range(2000):
            loss, grads = fn(*inputs[k])
            # (close, not equal: BLAS may split a product otherwise when both threads call)
            bad[k] += not all(np.allclose(g, w, rtol=1e-5, atol=1e-7) for g, w in
                              zip((loss, *grads), (want[k][0], *want[k][1])))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == [0, 0]


# --------------------------------------------------------------------------- fallbacks
@pytest.mark.parametrize(("fn", "op"), [
    (lambda x: gg.logsumexp(x.reshape(3, 2, 1), axis=(0, 2)).sum(), "logsumexp"),
    (lambda x: gg.OPS["index_add"](gg.zeros(4), x.reshape(-1)[:4], index=(np.arange(4),)
                                    ).sum(), "index_add"),
])
def test_an_unsupported_op_replays_in_numpy_with_one_warning_naming_it(fn, op) -> None:
    x = gg.tensor(np.ones((3, 2), np.float32), requires_grad=True)
    step = gg.compile(fn, backend="c")
    with pytest.warns(JitFallbackWarning, match=f"op '{op}' is not supported by the C back"):
        loss = step(x)
    assert type(step._last).__name__ == "Program"
    np.testing.assert_allclose(loss.numpy(), fn(x).numpy())


def test_without_a_compiler_the_step_replays_in_numpy_and_says_why(monkeypatch) -> None:
    monkeypatch.setenv("CC", "no-such-compiler-here")
    step = gg.compile(lambda x: gg.tanh(x).sum(), backend="c")
    with pytest.warns(JitFallbackWarning, match="no C compiler was found"):
        step(gg.tensor(np.ones(3, np.float32), requires_grad=True))
    assert type(step._last).__name__ == "Program"


def test_a_compile_error_falls_back_with_the_compilers_message(monkeypatch) -> None:
    monkeypatch.setattr(c_build, "PRELUDE", c_build.PRELUDE + "\nthis is not C;\n")
    step = gg.compile(lambda x: gg.tanh(x).sum(), backend="c")
    x = gg.tensor(np.ones(3, np.float32), requires_grad=True)
    step(x)  # records (the NumPy replay's result): nothing compiled yet
    with pytest.warns(JitFallbackWarning, match="the C compiler failed"):
        loss = step(x)
    assert step._last.jit_failed and not step._last.jit_kernels  # NumPy from now on
    assert float(loss) == pytest.approx(3 * np.tanh(1.0), rel=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert float(step(x)) == pytest.approx(3 * np.tanh(1.0), rel=1e-6)  # (said once)


# --------------------------------------------------------------------------- disk cache
_NEW_PROCESS = """
import numpy as np, glassgrad as gg
from glassgrad.compiler import c_build
model = gg.nn.MLP([2, 3, 1], activation="tanh", seed=0)
opt = gg.optim.SGD(model.parameters(), lr=0.5)
step = gg.compile(lambda X, y: gg.nn.functional.mse_loss(model(X), y), optimizer=opt,
                  backend="c")
calls = []
real = c_build._compile
c_build._compile = lambda *a: calls.append(1) or real(*a)
for _ in range(2):  # (the second call compiles, or loads)
    loss = step(gg.tensor(np.ones((4, 2), np.float32)), gg.tensor(np.zeros((4, 1), np.float32)))
print(type(step._last).__name__, len(calls), float(loss) > 0)
"""


def test_a_new_process_loads_the_compiled_step_from_disk(tmp_path) -> None:
    env = {**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", _NEW_PROCESS], env=env, capture_output=True,
                           text=True, timeout=300) for _ in range(2)]
    # (the direct variant only: plain and fused are compiled when first used)
    assert [r.stdout.split() for r in runs] == [["CProgram", "1", "True"],
                                                ["CProgram", "0", "True"]], runs[0].stderr
    (lib,) = (tmp_path / "glassgrad" / "c-steps").glob("step_*.so")
    assert not list(lib.parent.glob(".step_*"))  # no temporary file left behind


def test_an_unwritable_cache_compiles_into_a_folder_of_its_own(tmp_path, monkeypatch) -> None:
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    monkeypatch.setattr(c_build, "_LOADED", {})
    step = gg.compile(lambda x: (gg.tanh(x) * 3.0).sum(), backend="c")
    x = gg.tensor(np.ones(5, np.float32), requires_grad=True)
    step(x)
    assert float(step(x)) == pytest.approx(15 * np.tanh(1.0), rel=1e-6)
    assert type(step._last) is c_backend.CProgram
    assert list(c_build._OWN_DIR[0].glob("step_*.so"))


def test_the_c_back_end_imports_no_jit(tmp_path) -> None:
    """Its point over numba: a compiled step without numba, LLVM or SciPy in memory."""
    code = ("import sys, numpy as np, glassgrad as gg\n"
            "m = gg.nn.MLP([2, 3, 1], activation='tanh', seed=0)\n"
            "s = gg.compile(lambda X: m(X).sum(), backend='c')\n"
            "s(gg.tensor(np.ones((4, 2), np.float32)))\n"
            "s(gg.tensor(np.ones((4, 2), np.float32)))\n"
            "print(list(s._last.jit_kernels), sorted(k for k in ('numba', 'llvmlite', "
            "'scipy') if k in sys.modules))\n")
    env = {**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.stdout.split() == ["['plain']", "[]"], done.stderr


def test_the_library_name_follows_the_source_and_the_cpu(monkeypatch) -> None:
    paths = []
    for cpu in ("one cpu", "one cpu", "another cpu"):
        monkeypatch.setattr(c_build, "_cpu", lambda cpu=cpu: cpu)
        monkeypatch.setattr(c_build, "_LOADED", {})
        lib = c_build.library(c_build.PRELUDE + "GG_EXPORT int gg_x(void) { return 7; }\n")
        assert lib.gg_x() == 7
        paths.append(lib._name)
    assert paths[0] == paths[1] != paths[2]


def test_a_dropped_step_lets_its_workspace_go():
    """The library stays loaded, its kept workspace is freed with the step's function (a
    Compiled that recorded many shapes keeps none for the recordings it dropped)."""
    import gc

    model = _small_mlp()
    step = gg.compile(lambda X, y: F.cross_entropy(model(X), y), backend="c")
    X, y = _mlp_data(n=7)  # (a shape no other test compiles: a library of its own)
    step(X, y), step(X, y)
    lib = step._last.jit_kernels["plain"].__globals__["lib"]
    assert lib.gg_holds_workspace() == 1
    step.reset()
    del step
    gc.collect()
    assert lib.gg_holds_workspace() == 0

"""gg.compile(..., backend="numba"): the whole step as one numba function. Its replays equal
the NumPy replay's to float rounding (loops sum in order, NumPy pairwise), its guards record
again exactly when the NumPy replay's do, an op without a kernel falls back to NumPy with a
warning naming it, and without numba the back end says how to install it."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.compiler import CompileError
from glassgrad.nn import functional as F

RTOL = 2e-6  # float32 rounding of a few dozen terms summed in another order

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
XOR_Y = np.array([[0], [1], [1], [0]], np.float32)


def _pair(make_model, loss, optimizer=None, **opt_kw):
    """Two identical models, each with its compiled step: the NumPy one and the numba one."""
    out = []
    for backend in ("numpy", "numba"):
        model = make_model()
        opt = optimizer(model.parameters(), **opt_kw) if optimizer else None
        step = gg.compile(lambda X, y, m=model: loss(m(X), y), optimizer=opt, backend=backend)
        out.append((model, step))
    return out


def _grads(model):
    return [p.grad.numpy().copy() for p in model.parameters()]


def _assert_close(a, b, rtol=RTOL):
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * max(1.0, np.abs(y).max()))


def _xor_model():
    model = gg.nn.MLP([2, 3, 1], activation="tanh", seed=0)
    return model


def _small_mlp():
    return gg.nn.MLP([5, 8, 4], activation="relu", seed=1)


def _mlp_data(n=6, classes=4, features=5, seed=0):
    rng = np.random.default_rng(seed)
    return (gg.tensor(rng.standard_normal((n, features)).astype(np.float32)),
            rng.integers(0, classes, n))


# --------------------------------------------------------------------------- same numbers
def test_xor_training_equals_the_numpy_replay(nb) -> None:
    (m_np, s_np), (m_nb, s_nb) = _pair(_xor_model, F.mse_loss, gg.optim.SGD, lr=0.5)
    X, Y = gg.tensor(XOR_X), gg.tensor(XOR_Y)
    losses = [(float(s_np(X, Y)), float(s_nb(X, Y))) for _ in range(30)]
    assert isinstance(s_nb._last, nb.NumbaProgram) and "njit" not in s_np.source
    assert "axpby" in s_nb.source  # the SGD update runs inside the one function
    np.testing.assert_allclose(*zip(*losses), rtol=1e-5)
    assert losses[-1][1] < losses[0][1]  # it trains
    _assert_close([p.numpy() for p in m_nb.parameters()],
                  [p.numpy() for p in m_np.parameters()], rtol=1e-5)
    assert all(p.grad is None for p in m_nb.parameters())  # used up, as the NumPy step does


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_relu_mlp_with_cross_entropy_gradients_equal_the_numpy_replay(nb, reduction) -> None:
    loss = lambda out, y: F.cross_entropy(out, y, reduction=reduction)  # noqa: E731
    (m_np, s_np), (m_nb, s_nb) = _pair(_small_mlp, loss)
    X, y = _mlp_data()
    for seed in range(3):  # replays on new data, the same recording
        X, y = _mlp_data(seed=seed)
        for m in (m_np, m_nb):
            m.zero_grad()
        l_np, l_nb = s_np(X, y), s_nb(X, y)
        np.testing.assert_allclose(l_nb.numpy(), l_np.numpy(), rtol=RTOL)
        _assert_close(_grads(m_nb), _grads(m_np))
    assert isinstance(s_nb._last, nb.NumbaProgram)


def _adam(params, **kw):
    return gg.optim.Adam(params, lr=0.01)


OPTIMIZERS = [  # (factory, its keywords): every update the compiler folds, and two it cannot
    (gg.optim.SGD, {"lr": 0.1}),
    (gg.optim.SGD, {"lr": 0.1, "weight_decay": 0.01}),
    (gg.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    (gg.optim.SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    (gg.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),  # no fold: step() runs
    (_adam, {}),  # no fold
]


@pytest.mark.parametrize(("optimizer", "kw"), OPTIMIZERS,
                         ids=["sgd", "sgd-wd", "momentum", "momentum-damp-wd", "nesterov", "adam"])
def test_every_optimizer_trains_the_same_weights(nb, optimizer, kw) -> None:
    (m_np, s_np), (m_nb, s_nb) = _pair(_small_mlp, F.cross_entropy, optimizer, **kw)
    for seed in range(5):
        X, y = _mlp_data(seed=seed)
        np.testing.assert_allclose(s_nb(X, y).numpy(), s_np(X, y).numpy(), rtol=1e-5)
    _assert_close([p.numpy() for p in m_nb.parameters()],
                  [p.numpy() for p in m_np.parameters()], rtol=1e-5)
    assert isinstance(s_nb._last, nb.NumbaProgram)


def test_large_products_call_blas_and_agree(nb) -> None:
    make = lambda: gg.nn.MLP([64, 96, 4], activation="relu", seed=2)  # noqa: E731
    (m_np, s_np), (m_nb, s_nb) = _pair(make, F.cross_entropy)
    X, y = _mlp_data(n=48, classes=4, features=64)
    s_np(X, y), s_nb(X, y)
    # 48·64·96 multiply-adds is above LOOPS_MAX, 48·96·4 below
    assert "matmul_blas" in s_nb.source and "matmul_loops" in s_nb.source
    _assert_close(_grads(m_nb), _grads(m_np), rtol=1e-5)


def _elementwise_loss(x, w, b):
    """Every elementwise op and reduction the kernels have, with broadcasting both ways."""
    h = gg.sigmoid(x @ w) * b - gg.exp(x.sum() * 0.01) / (b + 2.0)
    return (h * h).mean() + gg.relu(h - b).sum() - (gg.tanh(h) * 0.5).mean()


def test_elementwise_ops_and_broadcast_gradients_equal_the_numpy_replay(nb) -> None:
    rng = np.random.default_rng(3)
    x = gg.tensor(rng.standard_normal((4, 3)).astype(np.float32))
    w0, b0 = (rng.standard_normal(s).astype(np.float32) for s in ((3, 5), (1, 5)))
    ws = [gg.tensor(w0.copy(), requires_grad=True) for _ in range(2)]
    bs = [gg.tensor(b0.copy(), requires_grad=True) for _ in range(2)]
    results = []
    for backend, w, b in zip(("numpy", "numba"), ws, bs):
        step = gg.compile(lambda x, w=w, b=b: _elementwise_loss(x, w, b), backend=backend)
        loss = step(x)
        results.append((loss.numpy(), w.grad.numpy(), b.grad.numpy()))
    assert isinstance(step._last, nb.NumbaProgram)
    _assert_close(results[1], results[0])


# --------------------------------------------------------------------------- guards
def _changes():
    """(name, change(layer, args) -> new args or None): each makes both steps record again
    (or, for new values in place, replay with the new values)."""
    def shape(layer, args):
        return gg.tensor(np.ones((5, 3), np.float32)), gg.tensor(np.zeros((5, 2), np.float32))

    def replaced(layer, args):
        layer.weight = gg.nn.Parameter(np.full((2, 3), 0.5, np.float32))

    def in_place(layer, args):
        with gg.no_grad():
            layer.weight.mul_(3.0)

    def frozen(layer, args):
        layer.weight.requires_grad = False

    return [("shape", shape), ("replaced", replaced), ("in_place", in_place),
            ("frozen", frozen)]


@pytest.mark.parametrize(("name", "change"), _changes(), ids=[n for n, _ in _changes()])
def test_guards_record_again_exactly_as_the_numpy_replay_does(nb, name, change) -> None:
    seen = []
    for backend in ("numpy", "numba"):
        layer = gg.nn.Linear(3, 2, seed=0)
        step = gg.compile(lambda x, t, m=layer: F.mse_loss(gg.tanh(m(x)), t), backend=backend)
        args = (gg.tensor(np.ones((4, 3), np.float32)), gg.tensor(np.zeros((4, 2), np.float32)))
        step(*args)
        step(*args)
        step.why_recorded = ""  # (so that it shows whether the call below records)
        args = change(layer, args) or args
        layer.zero_grad()
        loss = step(*args)
        seen.append((step.why_recorded, repr(step), loss.numpy(),
                     [p.grad.numpy() for p in layer.parameters() if p.grad is not None]))
        if backend == "numba":
            assert isinstance(step._last, nb.NumbaProgram)
    (why_np, rep_np, loss_np, g_np), (why_nb, rep_nb, loss_nb, g_nb) = seen
    assert why_nb == why_np and rep_nb == rep_np  # the same reason, the same recordings
    assert (why_nb == "") == (name == "in_place")  # new values in place: no new recording
    np.testing.assert_allclose(loss_nb, loss_np, rtol=RTOL)
    _assert_close(g_nb, g_np)


def test_a_value_read_in_python_is_refused_as_in_numpy(nb) -> None:
    w = gg.tensor([1.0, 2.0], requires_grad=True)

    def fn(x):
        y = (x * w).sum()
        return y * 2.0 if y.item() > 0 else y

    for backend in ("numpy", "numba"):
        with pytest.raises(CompileError, match="item"):
            gg.compile(fn, backend=backend)(gg.tensor([1.0, 1.0]))


def test_recording_again_with_the_same_source_compiles_nothing_new(nb) -> None:
    layer = gg.nn.Linear(3, 2)
    step = gg.compile(lambda x: gg.tanh(layer(x)).sum(), backend="numba")
    x = gg.tensor(np.ones((4, 3), np.float32))
    step(x)
    kernel = step._last.jit_kernels["plain"]
    layer.weight = gg.nn.Parameter(np.ones((2, 3), np.float32))
    step(x)
    assert "is the same object" in step.why_recorded
    assert step._last.jit_kernels["plain"] is kernel  # the cached function, already compiled


# --------------------------------------------------------------------------- the direct kernel
def _changes_to_the_optimizer():
    """(name, change(opt, model)): each changes what a plain SGD step does; the numba step
    must use the new update on its next call, as the NumPy replay (which folds per call)."""
    def lr(opt, model):
        opt.param_groups[0]["lr"] = 0.02

    def scheduler(opt, model):
        sched = gg.optim.StepLR(opt, step_size=1, gamma=0.1)
        sched.step()

    def weight_decay(opt, model):
        opt.param_groups[0]["weight_decay"] = 0.5

    def momentum(opt, model):  # (the direct kernel cannot: per-parameter folds, then())
        opt.param_groups[0]["momentum"] = 0.9

    def load_state_dict(opt, model):
        state = opt.state_dict()
        state["param_groups"][0]["lr"] = 0.3
        opt.load_state_dict(state)

    def group_replaced(opt, model):
        opt.param_groups[0] = {**opt.param_groups[0], "lr": 0.05}

    return [("lr", lr), ("scheduler", scheduler), ("weight_decay", weight_decay),
            ("momentum", momentum), ("load_state_dict", load_state_dict),
            ("group_replaced", group_replaced)]


@pytest.mark.parametrize(("name", "change"), _changes_to_the_optimizer(),
                         ids=[n for n, _ in _changes_to_the_optimizer()])
def test_a_changed_optimizer_is_seen_on_the_next_call(nb, name, change) -> None:
    (m_np, s_np), (m_nb, s_nb) = _pair(_xor_model, F.mse_loss, gg.optim.SGD, lr=0.5)
    X, Y = gg.tensor(XOR_X), gg.tensor(XOR_Y)
    for step in (s_np, s_nb):
        step(X, Y), step(X, Y)
    assert s_nb._last.jit_coef == (-0.5, 1.0)  # cached: asked once, not per call
    for step, model in ((s_np, m_np), (s_nb, m_nb)):
        change(step.optimizer, model)
        for _ in range(3):
            step(X, Y)
    _assert_close([p.numpy() for p in m_nb.parameters()],
                  [p.numpy() for p in m_np.parameters()], rtol=1e-5)
    assert (s_nb._last.jit_coef is None) == (name in ("momentum", "group_replaced"))


def test_each_group_has_its_own_coefficients(nb) -> None:
    def sgd(params, **kw):
        ps = list(params)
        return gg.optim.SGD([{"params": ps[:2], "lr": 0.5}, {"params": ps[2:]}], lr=0.1,
                            weight_decay=0.01)

    (m_np, s_np), (m_nb, s_nb) = _pair(_xor_model, F.mse_loss, sgd)
    X, Y = gg.tensor(XOR_X), gg.tensor(XOR_Y)
    for _ in range(5):
        np.testing.assert_allclose(s_nb(X, Y).numpy(), s_np(X, Y).numpy(), rtol=1e-5)
    assert "al1, be1" in s_nb.source and "axpby(al1, g_p3, be1, w_p3)" in s_nb.source
    assert s_nb._last.jit_coef == pytest.approx((-0.5, 0.995, -0.1, 0.999))
    _assert_close([p.numpy() for p in m_nb.parameters()],
                  [p.numpy() for p in m_np.parameters()], rtol=1e-5)


def test_a_parameter_added_to_the_optimizer_is_updated(nb) -> None:
    """The optimizer held only the first layer when recorded; after add_param_group the step
    must update the second too (its gradient was returned, now step() uses it)."""
    weights = []
    for compiled in (False, True):
        model = _xor_model()
        params = list(model.parameters())
        opt = gg.optim.SGD(params[:2], lr=0.5)
        fn = lambda X, y, m=model: F.mse_loss(m(X), y)  # noqa: E731
        step = gg.compile(fn, optimizer=opt, backend="numba") if compiled else None
        X, Y = gg.tensor(XOR_X), gg.tensor(XOR_Y)
        for k in range(4):
            if k == 2:
                opt.add_param_group({"params": params[2:], "lr": 0.25})
            if compiled:
                step(X, Y)
            else:
                opt.zero_grad()
                fn(X, Y).backward()
                opt.step()
        weights.append([p.numpy().copy() for p in params])
    _assert_close(weights[1], weights[0], rtol=1e-5)


def test_the_direct_kernel_delivers_outputs_and_argument_gradients(nb) -> None:
    """With the updates inside, the step still returns extra outputs and gives an argument
    that requires grad its gradient, as the NumPy replay does."""
    seen = []
    for backend in ("numpy", "numba"):
        model = _xor_model()
        opt = gg.optim.SGD(model.parameters(), lr=0.5)
        step = gg.compile(lambda X, y, m=model: (F.mse_loss(m(X), y), m(X)), optimizer=opt,
                          backend=backend)
        X = gg.tensor(XOR_X, requires_grad=True)
        for _ in range(3):
            X.grad = None
            loss, out = step(X, gg.tensor(XOR_Y))
        seen.append((loss.numpy(), out.numpy(), X.grad.numpy(),
                     *[p.numpy() for p in model.parameters()]))
    assert step._last.jit_coef is not None  # (the direct kernel ran)
    _assert_close(seen[1], seen[0], rtol=1e-5)


def test_a_strided_parameter_is_updated_where_it_lives(nb) -> None:
    """The kernel reads a contiguous copy of a transposed array; the update must still land
    in the parameter's own array."""
    (m_np, s_np), (m_nb, s_nb) = _pair(_xor_model, F.mse_loss, gg.optim.SGD, lr=0.5)
    X, Y = gg.tensor(XOR_X), gg.tensor(XOR_Y)
    for step, model in ((s_np, m_np), (s_nb, m_nb)):
        step(X, Y)
        w = next(model.parameters())
        w.data = np.ascontiguousarray(w.numpy().T).T  # same values, Fortran order
        step(X, Y), step(X, Y)
    assert not next(m_nb.parameters()).numpy().flags.c_contiguous
    _assert_close([p.numpy() for p in m_nb.parameters()],
                  [p.numpy() for p in m_np.parameters()], rtol=1e-5)


def test_the_version_moves_before_the_weights_do(nb) -> None:
    """An interrupt right before the native call leaves the weights as they were, their
    version moved: a graph made before the step refuses to go backward, never silently
    uses new weights. The call itself is one native call: all the updates or none."""
    model = _xor_model()
    opt = gg.optim.SGD(model.parameters(), lr=0.5)
    step = gg.compile(lambda X, y: F.mse_loss(model(X), y), optimizer=opt, backend="numba")
    X, Y = gg.tensor(XOR_X), gg.tensor(XOR_Y)
    step(X, Y)
    prog = step._last
    real = prog.jit_calls["direct"]

    def interrupted(targs, coef):
        raise KeyboardInterrupt  # (where a Ctrl-C could arrive: before the native call)

    before = [p.numpy().copy() for p in model.parameters()]
    old_graph = F.mse_loss(model(X), Y)
    prog.jit_calls["direct"] = interrupted
    with pytest.raises(KeyboardInterrupt):
        step(X, Y)
    np.testing.assert_array_equal(np.concatenate([p.numpy().ravel() for p in model.parameters()]),
                                  np.concatenate([b.ravel() for b in before]))
    with pytest.raises(gg.autograd.GraphError, match="modified in place"):
        old_graph.backward()
    prog.jit_calls["direct"] = real
    step(X, Y)  # and the next step runs as usual
    assert not np.allclose(next(model.parameters()).numpy(), before[0])


def test_fold_group_gives_one_pair_for_plain_updates_only() -> None:
    w = [gg.tensor(np.ones((2, 2), np.float32), requires_grad=True) for _ in range(2)]
    sgd = gg.optim.SGD(w, lr=0.1, weight_decay=0.5)
    assert sgd.fold_group(sgd.param_groups[0]) == pytest.approx((-0.1, 0.95))
    for opt in (gg.optim.SGD(w, lr=0.1, momentum=0.9), gg.optim.Adam(w),
                gg.optim.SGD(w, lr=0.1, momentum=0.9, nesterov=True)):
        assert opt.fold_group(opt.param_groups[0]) is None


# --------------------------------------------------------------------------- disk cache
_NEW_PROCESS = """
import numpy as np, glassgrad as gg
from glassgrad.compiler import numba_cache
numba_cache.STEP_DIR = numba_cache.Path({folder!r})
model = gg.nn.MLP([2, 3, 1], activation="tanh", seed=0)
opt = gg.optim.SGD(model.parameters(), lr=0.5)
step = gg.compile(lambda X, y: gg.nn.functional.mse_loss(model(X), y), optimizer=opt,
                  backend="numba")
step(gg.tensor(np.ones((4, 2), np.float32)), gg.tensor(np.zeros((4, 1), np.float32)))
stats = step._last.jit_kernels["direct"].stats
print(type(step._last).__name__, sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
"""


def test_a_new_process_loads_the_compiled_step_from_disk(nb, tmp_path) -> None:
    import subprocess

    runs = [subprocess.run([sys.executable, "-c", _NEW_PROCESS.format(folder=str(tmp_path))],
                           capture_output=True, text=True, timeout=600) for _ in range(2)]
    assert [r.stdout.split() for r in runs] == [["NumbaProgram", "0", "1"],
                                                ["NumbaProgram", "1", "0"]], runs[0].stderr
    (file,) = tmp_path.glob("step_*.py")
    assert "def step(a0, a1, p0, p1, p2, p3, seed, al0, be0):" in file.read_text()


def test_a_damaged_or_unwritable_step_file_is_not_trusted(nb, tmp_path) -> None:
    from glassgrad.compiler import numba_cache

    source = "def step(x):\n    return x + 1\n"
    fn = numba_cache._from_file(source, tmp_path)
    (file,) = tmp_path.glob("step_*.py")
    file.write_text(file.read_text().replace("x + 1", "x + 2"))  # damaged, or tampered with
    sys.modules.pop(f"glassgrad_numba_{file.stem}")
    assert numba_cache._from_file(source, tmp_path)(1.0) == fn(1.0) == 2.0  # written again
    assert numba_cache.module_text(source) == file.read_text()
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    assert numba_cache._from_file(source, blocked / "steps") is None  # then compiled in memory


def test_the_step_file_names_the_kernels_it_calls(nb, monkeypatch, optional) -> None:
    numba = optional("numba")
    from glassgrad.compiler import numba_cache, numba_kernels

    before = numba_cache.module_text("def step(x):\n    return x\n")
    monkeypatch.setattr(numba_kernels, "tanh", numba.njit(lambda x: x * 2))
    assert numba_cache.module_text("def step(x):\n    return x\n") != before  # another file


# --------------------------------------------------------------------------- fallbacks
@pytest.mark.parametrize(("fn", "op"), [
    (lambda x, w: gg.log(gg.sigmoid(x @ w)).sum(), "log"),
    (lambda x, w: (x @ w).reshape(-1).sum(), "reshape"),
    (lambda x, w: (x @ w).sum(axis=0).sum(), "sum"),  # an attribute the kernel does not take
])
def test_an_unsupported_op_replays_in_numpy_with_one_warning_naming_it(optional, fn, op
                                                                       ) -> None:
    optional("numba")
    from glassgrad.compiler.numba_backend import JitFallbackWarning, NumbaProgram

    x = gg.tensor(np.ones((4, 3), np.float32))
    w_np, w_nb = (gg.tensor(np.full((3, 2), 0.25, np.float32), requires_grad=True)
                  for _ in range(2))
    want = gg.compile(fn)(x, w_np)
    step = gg.compile(fn, backend="numba")
    with pytest.warns(JitFallbackWarning, match=f"op '{op}'") as caught:
        got = step(x, w_nb)
    assert len(caught) == 1 and not isinstance(step._last, NumbaProgram)
    np.testing.assert_array_equal(got.numpy(), want.numpy())  # the NumPy replay's own bits
    np.testing.assert_array_equal(w_nb.grad.numpy(), w_np.grad.numpy())


def test_a_kernel_that_fails_to_compile_falls_back_with_a_warning(optional, monkeypatch
                                                                   ) -> None:
    optional("numba")
    from glassgrad.compiler import numba_backend, numba_cache

    def broken(source):
        raise RuntimeError("simulated LLVM failure")

    monkeypatch.setattr(numba_cache, "compiled", broken)
    layer = gg.nn.Linear(3, 2)
    step = gg.compile(lambda x: gg.tanh(layer(x)).sum(), backend="numba")
    with pytest.warns(numba_backend.JitFallbackWarning, match="simulated LLVM failure"):
        loss = step(gg.tensor(np.ones((4, 3), np.float32)))
    assert loss.shape == () and layer.weight.grad is not None
    step(gg.tensor(np.ones((4, 3), np.float32)))  # replays in NumPy, with no second warning


def test_a_kernel_that_disagrees_with_numpy_is_not_used(optional, monkeypatch) -> None:
    numba = optional("numba")
    from glassgrad.compiler import numba_backend, numba_cache, numba_kernels

    # a rule that forgets the 1 − tanh² factor
    monkeypatch.setattr(numba_kernels, "tanh_grad", numba.njit(lambda g, out: g.copy()))
    monkeypatch.setattr(numba_cache, "_CACHE", type(numba_cache._CACHE)())
    layer = gg.nn.Linear(3, 2)
    step = gg.compile(lambda x: gg.tanh(layer(x)).sum(), backend="numba")
    with pytest.warns(numba_backend.JitFallbackWarning, match="differs from the NumPy"):
        step(gg.tensor(np.ones((4, 3), np.float32)))
    assert not isinstance(step._last, numba_backend.NumbaProgram)


# --------------------------------------------------------------------------- the API
def test_without_numba_the_back_end_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "glassgrad\[jit\]"'):
        gg.compile(lambda x: x.sum(), backend="numba")


@pytest.mark.parametrize("backend", ["jax", "Numba", "", None])
def test_an_unknown_back_end_is_refused_naming_the_choices(backend) -> None:
    with pytest.raises(ValueError, match="numba") as e:
        gg.compile(lambda x: x.sum(), backend=backend)
    assert repr(backend) in str(e.value)


def test_the_numpy_back_end_is_the_default() -> None:
    step = gg.compile(lambda x: (x * x).sum())
    step(gg.tensor([1.0, 2.0], requires_grad=True))
    assert step.backend == "numpy" and step.jit_seconds == 0.0

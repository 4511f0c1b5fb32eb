"""fit(compile=True) and `glassgrad train --compile`: recorded steps, the eager run's numbers."""

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.cli import main
from glassgrad.training import Callback, NonFiniteLossError


def _weights(model):
    return [p.numpy().copy() for p in model.parameters()]


def _classes(n=50, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(np.int64) + (X[:, 3] > 1)
    return X, y


@pytest.mark.parametrize(("optimizer", "loss", "kw"), [
    ("sgd", None, {"batch_size": 16, "validation_split": 0.2}),  # a smaller last batch
    ("adam", None, {"batch_size": None}),
    ("rmsprop", "mse", {"batch_size": 8, "metrics": ["mae"]}),  # float targets
])
def test_compiled_training_gives_the_eager_run_bit_for_bit(optimizer, loss, kw):
    X, y = _classes()
    if loss == "mse":
        y = (X[:, :2] * 2.0).astype(np.float32)
    runs = []
    for compile in (False, True):
        model = gg.nn.MLP([4, 8, 8, 3 if loss is None else 2], activation="relu", seed=1)
        h = gg.fit(model, X, y, loss=loss, optimizer=optimizer, epochs=4, verbose=0, seed=3,
                   compile=compile, **kw)
        runs.append((h, _weights(model)))
    (h_eager, w_eager), (h_comp, w_comp) = runs
    assert h_comp.params["compile"] and not h_eager.params["compile"]
    assert set(h_comp.history) == set(h_eager.history) and len(h_comp) == 4
    for key, values in h_eager.history.items():
        assert h_comp[key] == values, key  # losses and metrics, every epoch
    for a, b in zip(w_eager, w_comp):
        np.testing.assert_array_equal(a, b)


def test_callbacks_see_gradients_after_a_compiled_backward():
    X, y = _classes(12)
    seen = []

    class Grads(Callback):
        def on_after_backward(self, trainer, step):
            assert len(trainer.compiled._programs) == 1  # a replay, not an eager step
            seen.append([p.grad.numpy().copy() for p in trainer.model.parameters()])

    model = gg.nn.MLP([4, 5, 3], seed=0)
    gg.fit(model, X, y, optimizer="sgd", epochs=2, batch_size=6, verbose=0, compile=True,
           callbacks=[Grads()], shuffle=False)
    assert len(seen) == 4 and all(np.abs(g).sum() > 0 for g in seen[0])
    ref = gg.nn.MLP([4, 5, 3], seed=0)
    gg.nn.functional.cross_entropy(ref(gg.tensor(X[:6])), y[:6]).backward()
    for mine, want in zip(seen[0], ref.parameters()):
        np.testing.assert_array_equal(mine, want.grad.numpy())


def test_a_model_with_dropout_is_refused_before_any_weight_moves():
    X, y = _classes(20)
    model = gg.nn.Sequential(gg.nn.Linear(4, 8), gg.nn.ReLU(), gg.nn.Dropout(0.5),
                             gg.nn.Linear(8, 3))
    before = _weights(model)
    with pytest.raises(gg.CompileError, match=r"fit\(compile=True\).*Dropout.*compile=False"):
        gg.fit(model, X, y, epochs=2, verbose=0, compile=True)
    for a, b in zip(_weights(model), before):
        np.testing.assert_array_equal(a, b)


def test_a_diverging_compiled_run_stops_before_the_bad_step():
    X, y = gg.data.regression(50, noise=0.0, seed=0)
    model = gg.nn.MLP([1, 16, 16, 1], activation="relu", seed=0)
    with pytest.raises(NonFiniteLossError, match=r"lr=1e\+06.*lower the learning rate"):
        gg.fit(model, X, y * 1e3, loss="mse", optimizer="sgd", lr=1e6, epochs=50, verbose=0,
               compile=True)
    assert all(np.isfinite(p.numpy()).all() for p in model.parameters())


def _train(capsys, *argv):
    code = main(["train", *argv])
    return code, capsys.readouterr()


def test_cli_compile_flag_reports_the_same_run(capsys):
    code, plain = _train(capsys, "moons", "--epochs", "30", "-q")
    code2, compiled = _train(capsys, "moons", "--epochs", "30", "-q", "--compile")
    assert code == code2 == 0 and compiled.err == ""
    report = plain.out.split("done in")[1].split("\n", 1)[1]
    assert compiled.out.split("done in")[1].split("\n", 1)[1] == report


def test_cli_compile_trains_the_xor_demo(capsys):
    code, out = _train(capsys, "xor", "--compile", "-q")
    assert code == 0 and "100.0%" in out.out


def test_fit_compile_c_trains_as_eager_does_to_rounding_in_c():
    """compile="c": each step one C function (the plain variant: gradients, then the
    optimizer's step in Python, so callbacks still see .grad); the run's numbers are the
    eager run's to float rounding."""
    from glassgrad.compiler import c_build

    if c_build.unavailable():
        pytest.skip(c_build.unavailable())
    X, y = _classes()
    runs, kinds = [], []

    class Kind(Callback):
        def on_after_backward(self, trainer, step):
            kinds.append(type(trainer.compiled._last).__name__)
            assert all(p.grad is not None for p in trainer.model.parameters())

    for compile in (False, "c"):
        model = gg.nn.MLP([4, 8, 8, 3], activation="relu", seed=1)
        h = gg.fit(model, X, y, optimizer="sgd", epochs=4, verbose=0, seed=3, batch_size=16,
                   compile=compile, callbacks=[Kind()] if compile else None)
        runs.append((h, _weights(model)))
    (h_eager, w_eager), (h_c, w_c) = runs
    assert h_c.params["compile"] == "c" and h_eager.params["compile"] is False
    assert set(kinds) == {"CProgram"} and len(kinds) == 16
    for key, values in h_eager.history.items():
        np.testing.assert_allclose(h_c[key], values, rtol=1e-5, atol=1e-6, err_msg=key)
    for a, b in zip(w_eager, w_c):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("compile", ["C", "jit", "", 2])
def test_fit_refuses_an_unknown_compile_back_end_before_any_weight_moves(compile):
    X, y = _classes(12)
    model = gg.nn.MLP([4, 5, 3], seed=0)
    before = _weights(model)
    with pytest.raises((ValueError, TypeError), match=r"fit\(\): compile"):
        gg.fit(model, X, y, epochs=1, verbose=0, compile=compile)
    for a, b in zip(_weights(model), before):
        np.testing.assert_array_equal(a, b)


def test_cli_compile_c_trains_the_xor_demo(capsys):
    from glassgrad.compiler import c_build

    if c_build.unavailable():
        pytest.skip(c_build.unavailable())
    import warnings

    from glassgrad.compiler.native_program import JitFallbackWarning

    with warnings.catch_warnings():  # (bce_with_logits: reshape, concatenate, logsumexp in C)
        warnings.simplefilter("error", JitFallbackWarning)
        code, out = _train(capsys, "xor", "--compile", "c", "-q")
    assert code == 0 and "100.0%" in out.out and out.err == ""

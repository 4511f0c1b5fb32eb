"""fit(): the loop matches a hand-written one, validates before touching weights, calls
callbacks in order, stops early or on NaN with the right weights, and prints little."""

import math

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.nn import functional as F
from glassgrad.training import (
    Callback,
    EarlyStopping,
    History,
    LambdaCallback,
    NonFiniteLossError,
    evaluate,
)


def data(n=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)
    return X, y


def weights(model):
    return [p.numpy().copy() for p in model.parameters()]


def manual_sgd(model, batches, lr, epochs):
    """The plain loop: zero_grad, forward, loss, backward, step. Returns the loss per step."""
    opt = gg.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        for xb, yb in batches:
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(model(gg.tensor(xb)),
                                                      gg.tensor(yb[:, None].astype(np.float32)))
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


# ----------------------------------------------------------------------------- the loop
@pytest.mark.parametrize("batch_size,expected_steps", [(None, 1), (1, 10), (4, 3)])
def test_matches_a_hand_written_loop(batch_size, expected_steps):
    X, y = data()
    model = gg.nn.MLP([3, 4, 1], seed=0)
    h = gg.fit(model, X, y, loss="bce_with_logits", optimizer="sgd", lr=0.5, epochs=3,
               batch_size=batch_size, shuffle=False, verbose=0)
    ref = gg.nn.MLP([3, 4, 1], seed=0)
    bs = batch_size or len(X)
    pieces = [(X[i:i + bs], y[i:i + bs]) for i in range(0, len(X), bs)]
    losses = manual_sgd(ref, pieces, lr=0.5, epochs=3)
    for a, b in zip(weights(model), weights(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert h.params["steps_per_epoch"] == expected_steps
    # The epoch loss is the batch-size-weighted mean of that epoch's batch losses.
    sizes = np.array([len(p[1]) for p in pieces])
    per_epoch = np.array(losses).reshape(3, -1) @ sizes / len(X)
    np.testing.assert_allclose(h["loss"], per_epoch, rtol=1e-6)


def test_shuffle_is_seeded_and_changes_the_path():
    X, y = data(20)
    runs = []
    for seed in (1, 1, 2):
        model = gg.nn.MLP([3, 4, 1], seed=0)
        gg.fit(model, X, y, loss="bce_with_logits", optimizer="sgd", lr=0.5, epochs=2,
               batch_size=3, seed=seed, verbose=0)
        runs.append(weights(model))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert not np.allclose(runs[0][0], runs[2][0])


def test_full_batch_gd_on_the_seed_network_matches_the_formula():
    """One batch GD step on ½Σ(ŷ−y)²: ∂E/∂b_out = Σ(ŷ−y), so b_out = 1 − lr·Σ(ŷ−y)."""
    X, y = gg.data.xor()
    model = gg.nn.MLP([2, 3, 1], activation="identity", init="constant:1")
    h = gg.fit(model, X, y.astype(np.float32), loss="half_sse", optimizer="sgd", lr=0.01,
               epochs=1, verbose=0)
    yhat = np.array([4, 7, 7, 10])  # 1 + 3·(1 + x1 + x2)
    np.testing.assert_allclose(model[2].bias.numpy(), [1 - 0.01 * (yhat - y).sum()], rtol=1e-6)
    assert h["loss"] == [pytest.approx(0.5 * ((yhat - y) ** 2).sum())]


def test_validation_split_is_stratified_and_scored_each_epoch():
    X, y = data(40)
    model = gg.nn.MLP([3, 8, 1], seed=0)
    h = gg.fit(model, X, y, loss="bce_with_logits", epochs=4, validation_split=0.25,
               verbose=0, seed=0)
    assert list(h.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert h.params["samples"] == 30 and h.params["val_samples"] == 10
    assert all(len(v) == 4 for v in h.history.values()) and h.epoch == [1, 2, 3, 4]
    assert h.monitor == "val_loss"
    assert all(0 <= a <= 1 for a in h["val_accuracy"])


def test_validation_data_scores_the_final_weights():
    X, y = data(30)
    Xv, yv = data(12, seed=5)
    model = gg.nn.MLP([3, 8, 1], seed=0)
    h = gg.fit(model, X, y, loss="bce_with_logits", epochs=3, validation_data=(Xv, yv),
               verbose=0)
    final = evaluate(model, Xv, yv, loss="bce_with_logits")
    assert h["val_loss"][-1] == pytest.approx(final["loss"], rel=1e-6)
    assert h["val_accuracy"][-1] == final["accuracy"]


def test_early_stopping_stops_and_restores_the_best_epoch():
    """12 noisy training points and a 64-unit layer: validation loss turns up within
    a few epochs while the training loss keeps falling."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 5)).astype(np.float32)
    y = (X[:, 0] + 0.5 * rng.normal(size=40) > 0).astype(np.int64)
    model = gg.nn.MLP([5, 64, 2], seed=0)
    h = gg.fit(model, X[:12], y[:12], loss="cross_entropy", lr=0.05, epochs=300,
               validation_data=(X[12:], y[12:]), early_stopping=10, verbose=0, seed=0)
    best = int(np.argmin(h["val_loss"])) + 1
    assert h.best_epoch == best == h.restored_epoch
    assert h.stopped_epoch == best + 10 == len(h.epoch) < 300
    assert h["loss"][-1] < h["loss"][best - 1]  # it was overfitting, not diverging
    now = evaluate(model, X[12:], y[12:], loss="cross_entropy")
    assert now["loss"] == pytest.approx(h["val_loss"][best - 1], rel=1e-6)


def test_early_stopping_on_accuracy_maximizes():
    es = EarlyStopping(patience=0, monitor="accuracy")
    X, y = gg.data.xor()
    gg.fit(gg.nn.MLP([2, 4, 1], seed=0), X, y, loss="bce_with_logits", lr=0.1, epochs=100,
           early_stopping=es, verbose=0)
    assert es._sign == -1.0 and es.stopped_epoch is not None


# ----------------------------------------------------------------------------- NaN
def test_nan_loss_stops_before_the_bad_step_and_names_it():
    X, y = data(8)
    calls = {"n": 0}
    saved = {}

    def flaky(out, target):
        calls["n"] += 1
        loss = F.binary_cross_entropy_with_logits(out, target)
        return loss * (math.nan if calls["n"] == 5 else 1.0)  # step 5: epoch 2, batch 2

    class Snapshot(Callback):
        def on_batch_end(self, trainer, step, loss):
            saved[step] = weights(trainer.model)

    model = gg.nn.MLP([3, 4, 1], seed=0)
    with pytest.raises(NonFiniteLossError, match=r"nan at epoch 2, step 5 \(batch 2 of 3\)"
                       r".*weights are those after step 4") as err:
        gg.fit(model, X, y, loss=flaky, optimizer="sgd", lr=0.1, epochs=3, batch_size=3,
               shuffle=False, callbacks=[Snapshot()], verbose=0)
    assert (err.value.epoch, err.value.step) == (2, 5) and len(err.value.history) == 1
    for a, b in zip(weights(model), saved[4]):
        np.testing.assert_array_equal(a, b)


def test_exploding_learning_rate_gives_a_clear_message():
    X, y = gg.data.regression(50, noise=0.0, seed=0)
    model = gg.nn.MLP([1, 16, 16, 1], activation="relu", seed=0)
    with pytest.raises(NonFiniteLossError, match=r"lr=1e\+06.*lower the learning rate"):
        gg.fit(model, X, y * 1e3, loss="mse", optimizer="sgd", lr=1e6, epochs=50, verbose=0)
    assert all(np.isfinite(p.numpy()).all() for p in model.parameters())


# ----------------------------------------------------------------------------- callbacks
class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_fit_start(self, trainer):
        self.events.append("fit_start")

    def on_epoch_start(self, trainer, epoch):
        self.events.append(f"epoch_start {epoch}")

    def on_batch_start(self, trainer, step):
        self.events.append(f"batch_start {step}")
        self.before = weights(trainer.model)
        assert trainer.last_batch[0].shape[0] in (3, 1)

    def on_after_backward(self, trainer, step):
        self.events.append(f"after_backward {step}")
        assert all(p.grad is not None for p in trainer.model.parameters())
        for a, b in zip(weights(trainer.model), self.before):
            np.testing.assert_array_equal(a, b)  # not yet updated

    def on_batch_end(self, trainer, step, loss):
        self.events.append(f"batch_end {step}")
        assert isinstance(loss, float)
        assert not np.array_equal(weights(trainer.model)[0], self.before[0])

    def on_epoch_end(self, trainer, epoch, logs):
        self.events.append(f"epoch_end {epoch} {sorted(logs)}")

    def on_fit_end(self, trainer):
        self.events.append("fit_end")


def test_callbacks_are_called_in_order_with_the_trainer():
    X, y = data(4)
    rec = Recorder()
    gg.fit(gg.nn.MLP([3, 2, 1], seed=0), X, y, loss="bce_with_logits", optimizer="sgd",
           lr=0.5, epochs=2, batch_size=3, callbacks=[rec], verbose=0)
    batch = ["batch_start {s}", "after_backward {s}", "batch_end {s}"]
    logs = "['accuracy', 'loss']"
    expected = ["fit_start"]
    for epoch, steps in ((1, (1, 2)), (2, (3, 4))):
        expected.append(f"epoch_start {epoch}")
        expected += [e.format(s=s) for s in steps for e in batch]
        expected.append(f"epoch_end {epoch} {logs}")
    assert rec.events == expected + ["fit_end"]


def test_trainer_attributes_and_stop_training():
    X, y = data(10)
    seen = {}

    def stop(trainer, epoch, logs):
        seen.update(model=trainer.model, X=trainer.X, X_val=trainer.X_val, epoch=trainer.epoch,
                    history=trainer.history, optimizer=trainer.optimizer)
        trainer.stop_training = epoch == 2

    model = gg.nn.MLP([3, 2, 1], seed=0)
    h = gg.fit(model, X, y, epochs=10, callbacks=[LambdaCallback(on_epoch_end=stop)],
               verbose=0)
    assert len(h) == 2 and seen["model"] is model and seen["X_val"] is None
    assert seen["epoch"] == 2 and seen["history"] is h and seen["X"].shape == (10, 3)
    assert isinstance(seen["optimizer"], gg.optim.Adam)


def test_a_scheduler_in_callbacks_steps_each_epoch():
    X, y = data(6)
    model = gg.nn.MLP([3, 2, 1], seed=0)
    opt = gg.optim.SGD(model.parameters(), lr=0.4)
    sched = gg.optim.StepLR(opt, step_size=1, gamma=0.5)
    gg.fit(model, X, y, optimizer=opt, epochs=3, callbacks=[sched], verbose=0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)


# ----------------------------------------------------------------------------- bad input
def _untouched(model, before):
    return all(np.array_equal(a, b) for a, b in zip(weights(model), before)) and all(
        p.grad is None for p in model.parameters())


@pytest.mark.parametrize("kwargs,match", [
    ({"X": np.zeros((5, 4), np.float32)}, r"running it on one sample X\[:1\] of shape \(1, 4\)"),
    ({"y": np.array([0, 1, 2, 1, 0])}, r"y\[2\] = 2 is not a class .* 2 outputs"),
    ({"X": np.zeros((0, 3), np.float32), "y": np.zeros(0, np.int64)}, "empty"),
    ({"y": np.array([0, 1, 1])}, r"5 samples in X .* y has shape \(3,\)"),
    ({"X": np.array([[0, 0, 0], [1, np.nan, 0], [0, 0, 0], [1, 1, 1], [0, 1, 0]],
                    np.float32)}, r"X\[1, 1\] is nan"),
    ({"lr": -0.1}, r"lr=-0.1 must be >= 0"),
    ({"epochs": 0}, "epochs must be an integer >= 1"),
    ({"batch_size": 0}, "batch_size"),
    ({"loss": "hinge"}, "unknown loss 'hinge'"),
    ({"optimizer": "adagrad"}, "unknown optimizer 'adagrad'"),
    ({"validation_split": 1.5}, r"validation_split is a fraction in \(0, 1\)"),
    ({"validation_data": (np.zeros((2, 5), np.float32), np.zeros(2, np.int64))},
     r"X_val has shape \(2, 5\)"),
])
def test_bad_input_is_rejected_before_any_weight_moves(kwargs, match):
    X, y = data(5)
    model = gg.nn.MLP([3, 4, 2], seed=0)
    before = weights(model)
    args = {"X": X, "y": y, "loss": "cross_entropy", "epochs": 2, "verbose": 0, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        gg.fit(model, args.pop("X"), args.pop("y"), **args)
    assert _untouched(model, before)


def test_optimizer_instance_checks():
    X, y = data(5)
    model = gg.nn.MLP([3, 2, 1], seed=0)
    other = gg.nn.MLP([3, 2, 1], seed=1)
    with pytest.raises(ValueError, match="holds none of the model's 4 parameters"):
        gg.fit(model, X, y, optimizer=gg.optim.SGD(other.parameters(), lr=0.1), verbose=0)
    with pytest.raises(ValueError, match="lr= only applies"):
        gg.fit(model, X, y, optimizer=gg.optim.SGD(model.parameters(), lr=0.1), lr=0.2,
               verbose=0)


def test_bce_targets_must_be_probabilities():
    X, _ = data(4)
    with pytest.raises(ValueError, match=r"targets in \[0, 1\]"):
        gg.fit(gg.nn.MLP([3, 2, 1], seed=0), X, np.array([0.0, 2.0, 1.0, 0.0]), loss="bce",
               verbose=0)


# ----------------------------------------------------------------------------- losses, metrics
@pytest.mark.parametrize("loss,out,target", [
    ("mse", 1, "float"), ("half_sse", 1, "float"), ("l1", 1, "float"), ("bce", 1, "label"),
    ("bce_with_logits", 1, "label"), ("cross_entropy", 3, "label"), ("nll", 3, "label"),
])
def test_every_loss_name_trains(loss, out, target):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2)).astype(np.float32)
    y = rng.integers(0, out if out > 1 else 2, 30)
    y = y if target == "label" else X.sum(1)
    model = gg.nn.MLP([2, 8, out], seed=0,
                      output_activation={"bce": "sigmoid"}.get(loss))
    if loss == "nll":
        model.append(LogSoftmax())
    h = gg.fit(model, X, y, loss=loss, lr=0.05, epochs=30, verbose=0)
    assert h["loss"][-1] < h["loss"][0]
    assert ("accuracy" in h) == (target == "label")


class LogSoftmax(gg.nn.Module):
    def forward(self, x):
        return gg.log_softmax(x, axis=-1)


def test_loss_is_chosen_from_the_targets():
    X, y = data(6)
    h3 = gg.fit(gg.nn.MLP([3, 2, 3], seed=0), X, y, epochs=1, verbose=0)
    h1 = gg.fit(gg.nn.MLP([3, 2, 1], seed=0), X, y, epochs=1, verbose=0)
    hs = gg.fit(gg.nn.MLP([3, 2, 1], seed=0, output_activation="sigmoid"), X, y, epochs=1,
                verbose=0)
    hr = gg.fit(gg.nn.MLP([3, 2, 1], seed=0), X, X[:, 0], epochs=1, verbose=0)
    assert [h.params["loss"] for h in (h3, h1, hs, hr)] == [
        "cross_entropy", "bce_with_logits", "bce", "mse"]


def test_accuracy_matches_a_direct_count_and_custom_metrics():
    X, y = data(20)
    model = gg.nn.MLP([3, 4, 1], seed=0)
    h = gg.fit(model, X, y, loss="bce_with_logits", epochs=1, shuffle=False, verbose=0,
               optimizer="sgd", lr=0.0, metrics=["accuracy", "mae",
                                                  lambda t, p: float(np.max(p))])
    logits = model(gg.tensor(X)).numpy()[:, 0]  # lr 0: the weights did not move
    assert h["accuracy"][0] == np.mean((logits > 0) == (y == 1))
    assert h["<lambda>"][0] == pytest.approx(logits.max(), rel=1e-6)
    assert h["mae"][0] == pytest.approx(np.mean(np.abs(logits - y)), rel=1e-5)


# ----------------------------------------------------------------------------- output
def test_verbose_zero_prints_nothing_and_one_prints_about_ten_lines(capsys):
    X, y = gg.data.xor()
    gg.fit(gg.nn.MLP([2, 4, 1], seed=0), X, y, epochs=100, verbose=0)
    assert capsys.readouterr() == ("", "")
    gg.fit(gg.nn.MLP([2, 4, 1], seed=0), X, y, epochs=100, verbose=1)
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert len(lines) == 11 and out.err == ""
    assert lines[0].startswith("epoch   1/100  loss ") and "accuracy" in lines[0]
    assert lines[-1].startswith("epoch 100/100")
    gg.fit(gg.nn.MLP([2, 4, 1], seed=0), X, y, epochs=30, verbose=2)
    assert len(capsys.readouterr().out.splitlines()) == 30


@pytest.mark.usefixtures("tqdm")
def test_terminal_gets_a_tqdm_bar_not_lines(capsys, monkeypatch):
    import glassgrad.training.progress as progress

    monkeypatch.setattr(progress, "_isatty", lambda stream: True)
    X, y = gg.data.xor()
    gg.fit(gg.nn.MLP([2, 4, 1], seed=0), X, y, epochs=50, verbose=1)
    out = capsys.readouterr()
    assert out.out == "" and "50/50" in out.err and "epoch" in out.err


def test_early_stopping_message(capsys):
    X, y = data(20)
    gg.fit(gg.nn.MLP([3, 4, 1], seed=0), X, y, optimizer="sgd", lr=0.0, epochs=50,
           early_stopping=3, verbose=1)
    out = capsys.readouterr().out
    assert "early stopping: no improvement in loss for 3 epochs; stopped after epoch 4" in out


# ----------------------------------------------------------------------------- History
def test_history_record_and_summary():
    h = History()
    h.record(1, {"loss": 1.0, "val_loss": 2.0})
    h.record(2, {"loss": 0.5})  # a missing value becomes NaN, lists stay aligned
    h.monitor = "val_loss"
    assert h["loss"] == [1.0, 0.5] and math.isnan(h["val_loss"][1])
    assert h.best_epoch == 1 and h.best() == 2.0 and h.best("loss") == 1.0
    assert h.last("loss") == 0.5
    d = h.to_dict()
    assert d["epoch"] == [1, 2] and d["best_epoch"] == 1 and d["stopped_epoch"] is None
    with pytest.raises(KeyError, match="has no values for 'accuracy'"):
        h.last("accuracy")


def test_fit_is_reachable_from_the_top_level():
    assert gg.fit is gg.training.fit and gg.History is History

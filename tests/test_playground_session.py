"""The playground's session and message handling, without a browser or a server.

Every number the page shows must be the library's: a step of the session equals the
``trace_net`` of that step, the inspector's numbers are the trace's, the seeds' XOR preset
gives 0.6. Bad input gets a message and leaves the session exactly as it was.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import glassgrad as gg
from glassgrad.playground import Config, ConfigError, Session, handle, parse_config
from glassgrad.playground import data as pdata
from glassgrad.playground.messages import MAX_MESSAGE


def replies(s: Session, msg: object) -> list[dict]:
    return handle(s, msg if isinstance(msg, str) else json.dumps(msg))


def weights(s: Session) -> list[np.ndarray]:
    return [p.numpy().copy() for p in s.b.model.parameters()]


def one_error(out: list[dict]) -> str:
    assert [r["type"] for r in out] == ["error"], out
    return out[0]["message"]


@pytest.fixture
def session():
    s = Session(parse_config({"data": "xor", "layers": "4,3", "points": "100"}))
    yield s
    s.close()


# ------------------------------------------------------------------ config
@pytest.mark.parametrize("field,value,words", [
    ("lr", "abc", "'abc' is not a number"),
    ("lr", "-1", "out of range"),
    ("lr", "0", "out of range"),
    ("lr", "nan", "out of range"),
    ("layers", "4,0", "layer 2: 0 is out of range"),
    ("layers", ",".join(["3"] * 50), "50 hidden layers"),
    ("layers", "9", "at most 8"),
    ("layers", "2.5", "not a whole number"),
    ("batch", "0", "batch size"),
    ("features", "", "none selected"),
    ("features", "x3", "unknown ['x3']"),
    ("activation", "softplus", "choose one of relu, tanh, sigmoid, linear"),
    ("init", "ones", "choose one of"),
    ("noise", "2", "out of range"),
    ("train_ratio", "1", "out of range"),
    ("bogus", "1", "unknown setting 'bogus'"),
])
def test_bad_settings_are_named_with_a_fix(field, value, words):
    with pytest.raises(ConfigError) as e:
        parse_config({field: value})
    key = "learning rate" if field == "lr" else field
    assert field in e.value.problems
    assert words in e.value.problems[field] and key in e.value.problems[field]
    assert "Fix" in e.value.problems[field] or "choose" in e.value.problems[field]


def test_config_round_trips_through_the_url():
    cfg = parse_config({"data": "spirals", "layers": "8,8,4", "lr": "0.1", "reg": "l2",
                        "reg_rate": "0.001", "features": "x1,x2,sinx1", "shuffle": "0"})
    again = parse_config(cfg.to_query())
    assert again == cfg and again.sizes == [3, 8, 8, 4, 1]


def test_bce_needs_a_sigmoid_output():
    with pytest.raises(ConfigError) as e:
        parse_config({"loss": "bce", "output": "linear"})
    assert "sigmoid" in e.value.problems["output"]


def test_regression_data_switches_the_problem_and_loss():
    cfg = parse_config({"data": "sine"})
    assert (cfg.problem, cfg.loss_name, cfg.output_activation) == ("regression", "mse", "linear")


# ------------------------------------------------------------------ training = the library
def test_a_step_is_the_trace_of_that_step(session):
    tr = session.trace()
    assert session.step()
    after = [m.weight.numpy() for m in session.b.linears]
    for ly, W in zip(tr.steps[0].layers, after):
        np.testing.assert_allclose(W, ly.W_after, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reg", ["l1", "l2"])
def test_regularized_step_adds_the_penalty_gradient(reg):
    s = Session(parse_config({"data": "circles", "reg": reg, "reg_rate": "0.1",
                              "points": "50"}))
    tr, regs = s.trace(), s.reg_grads()
    W0 = [ly.W for ly in tr.steps[0].layers]
    s.step()
    for ly, W, r, m in zip(tr.steps[0].layers, W0, regs, s.b.linears):
        expect_r = 0.1 * (np.sign(W) if reg == "l1" else W)
        np.testing.assert_allclose(r, expect_r, rtol=1e-12)
        np.testing.assert_allclose(m.weight.numpy(), W - s.cfg.lr * (ly.dW + r), rtol=1e-12)


def test_xor_learns_to_full_test_accuracy():
    s = Session(parse_config({"data": "xor", "layers": "8,8", "lr": "0.1", "points": "200"}))
    for _ in range(1500):
        s.step()
    assert s.evaluate()["test_acc"] == 1.0


def test_epochs_count_passes_over_the_training_set(session):
    n = len(session.b.X_train)
    steps = -(-n // session.cfg.batch)  # the last batch of an epoch may be short
    for _ in range(steps):
        session.step()
    assert session.epoch == 1 and session.pos == 0
    assert session.history["step"] == [0, steps]


def test_divergence_stops_with_the_step_and_keeps_finite_weights():
    s = Session(parse_config({"data": "plane", "layers": "8,8", "activation": "linear",
                              "lr": "10", "init": "normal", "init_value": "3"}))
    for _ in range(200):
        if not s.step():
            break
    assert s.stopped is not None
    assert f"at step {s.steps + 1}" in s.stopped and "learning rate 10" in s.stopped
    assert "try 1" in s.stopped
    assert all(np.isfinite(w).all() for w in weights(s))
    before = s.steps
    assert not s.step() and s.steps == before  # stays stopped until reset
    s.reset()
    assert s.stopped is None and s.steps == 0


# ------------------------------------------------------------------ the inspector
def test_unit_numbers_are_trace_net_on_the_same_weights(session):
    session.step()
    out = replies(session, {"type": "inspect", "what": "unit", "layer": 1, "unit": 2,
                            "sample": 3})
    v = out[0]["values"]
    idx = session.next_batch()
    tr = gg.explain.trace_net(session.b.model, session.b.X_train[idx], session.b.y_train[idx],
                              loss="bce", lr=session.cfg.lr, update=False)
    ly = tr.steps[0].layers[0]
    assert v["z"] == pytest.approx(ly.z[3, 2], rel=1e-12)
    assert v["a"] == pytest.approx(ly.a[3, 2], rel=1e-12)
    assert v["delta"] == pytest.approx(ly.delta[3, 2], rel=1e-12)
    # the δ line writes out (Wᵀδ)ⱼ · f′(z) with the next layer's numbers
    nxt = tr.steps[0].layers[1]
    back = float(nxt.W[:, 2] @ nxt.delta[3])
    assert v["back"] == pytest.approx(back, rel=1e-12)
    lines = {line["label"]: line for line in out[0]["lines"]}
    assert float(lines["δ"]["value"]) == pytest.approx(ly.delta[3, 2], rel=1e-3)


def test_edge_update_is_w_minus_lr_grad(session):
    out = replies(session, {"type": "inspect", "what": "edge", "layer": 2, "from": 1, "to": 0,
                            "sample": None})
    v = out[0]["values"]
    ly = session.trace().steps[0].layers[1]
    assert v["dW"] == pytest.approx(ly.dW[0, 1], rel=1e-12)
    assert v["w_after"] == pytest.approx(ly.W_after[0, 1], rel=1e-12)
    session.step()
    assert session.b.linears[1].weight.numpy()[0, 1] == pytest.approx(v["w_after"], rel=1e-12)


def test_seeds_xor_preset_shows_0_6_not_1_4():
    s = Session()
    out = replies(s, {"type": "preset", "name": "seeds-xor"})
    assert [r["type"] for r in out] == ["config", "data", "info"]
    assert s.b.X_train[s.next_batch()].tolist() == [[0.0, 0.0]]
    edge = replies(s, {"type": "inspect", "what": "edge", "layer": 2, "from": 0, "to": 0,
                       "sample": 0})[0]
    assert edge["values"]["w"] == 1.0
    assert edge["values"]["dW"] == pytest.approx(4.0)
    assert edge["values"]["w_after"] == pytest.approx(0.6)
    lines = {line["label"]: line["value"] for line in edge["lines"]}
    assert lines["w after"] == "0.6"
    first = replies(s, {"type": "inspect", "what": "edge", "layer": 1, "from": 0, "to": 0,
                        "sample": 0})[0]
    assert first["values"]["w_after"] == 1.0  # inputs are 0: their weights do not move
    trace = replies(s, {"type": "stepthrough", "sample": 0})[0]
    sign = next(c for c in trace["checks"] if c["name"] == "sign")
    assert "1.4" in " ".join(sign["detail"]) and "0.6" in " ".join(sign["detail"])


def test_step_view_matches_the_trace_layer_by_layer(session):
    view = replies(session, {"type": "stepthrough", "sample": 1})[0]
    tr = session.trace()
    for got, ly in zip(view["layers"], tr.steps[0].layers):
        np.testing.assert_allclose(got["z"], ly.z[1])
        np.testing.assert_allclose(got["delta"], ly.delta[1])
        np.testing.assert_allclose(got["W_after"], ly.W_after)


# ------------------------------------------------------------------ bad messages
BAD_MESSAGES = [
    ("not json", "not valid JSON"),
    ("[1, 2]", "JSON object with a \"type\""),
    ('{"kind": "step"}', "JSON object with a \"type\""),
    ('{"type": "explode"}', "unknown type 'explode'"),
    ('{"type": "inspect", "what": "unit", "layer": 9, "unit": 0}', "layer=9 is outside"),
    ('{"type": "inspect", "what": "unit", "layer": 1, "unit": 99}', "unit=99 is outside"),
    ('{"type": "inspect", "what": "unit", "layer": "1", "unit": 0}', "must be an integer"),
    ('{"type": "inspect", "what": "edge", "layer": 1, "from": 5, "to": 0}', "from=5"),
    ('{"type": "inspect", "what": "bias", "layer": 1}', "\"unit\" or \"edge\""),
    ('{"type": "inspect", "what": "unit", "layer": 1, "unit": 0, "sample": 999}', "sample"),
    ('{"type": "speed", "value": 7}', "not one of the speeds"),
    ('{"type": "preset", "name": "nope"}', "unknown preset"),
    ('{"type": "config", "config": "lr=1"}', "expected an object"),
    ('{"type": "config", "config": {"lr": "abc"}}', "'abc' is not a number"),
    ('{"type": "config", "config": {"layers": "0"}}', "out of range"),
    ('{"type": "config", "config": {"data": "csv"}}', "no CSV file uploaded"),
    (b"\x00\x01", "binary frames"),
    ("x" * (MAX_MESSAGE + 1), "more than the"),
]


@pytest.mark.parametrize("raw,words", BAD_MESSAGES)
def test_bad_messages_get_an_error_and_change_nothing(session, raw, words):
    before, cfg, version = weights(session), session.cfg, session.version
    out = handle(session, raw)
    assert words in one_error(out)
    assert session.cfg is cfg and session.version == version
    for a, b in zip(before, weights(session)):
        np.testing.assert_array_equal(a, b)


def test_config_error_names_the_fields_for_the_page(session):
    out = replies(session, {"type": "config", "config": {"lr": "-1", "batch": "0"}})
    assert set(out[0]["fields"]) == {"lr", "batch"}


def test_two_sessions_do_not_share_state():
    a, b = Session(), Session()
    wb = weights(b)
    for _ in range(5):
        a.step()
    replies(a, {"type": "config", "config": {"lr": "0.3"}})
    assert b.steps == 0 and b.cfg.lr == 0.03
    for x, y in zip(wb, weights(b)):
        np.testing.assert_array_equal(x, y)


def test_play_trains_in_the_background_and_pause_stops_it():
    s = Session(parse_config({"data": "xor", "points": "40"}))
    s.speed = 0
    s.play()
    for _ in range(500):
        if s.steps >= 20:
            break
        s._halt.wait(0.01)
    s.close()
    stopped_at = s.steps
    assert stopped_at >= 20 and not s.playing
    s._halt.wait(0.05)
    assert s.steps == stopped_at


# ------------------------------------------------------------------ CSV
GOOD_CSV = "x1,x2,label\n" + "\n".join(f"{i % 3},{i % 5},{i % 2}" for i in range(20))


@pytest.mark.parametrize("body,words", [
    (b"x1,x2,label\n1,hello,0\n2,3,1\n", "'hello' is not a number"),
    (b"x1,x2,label\n1,NaN,0\n2,3,1\n", "line 2, column 2 ('x2'): the value is missing"),
    (b"1\n2\n3\n4\n", "single column"),
    (b"x1,label\n1,0\n2,1\n3,0\n4,1\n", "found 1 feature column"),
    (b"a,b\n1,0\n", "found 1 feature column"),
    (b"\xff\xfe\x00", "not a text file"),
    (b"\xff\xfe1,2,3\n", "not UTF-8"),
    (b"", "the file is empty"),
    (b",,,\n,,\n", "only delimiters"),
    (b"x1,x2,y\n1,2,0\n", "1 rows"),
    (b"x1,x2,y\n" + b"1,2,3\n" * 3 + b"4,5,6\n2,2,7\n", "3 classes [3, 6, 7]"),
    (b"1," * (pdata.MAX_CSV_BYTES // 2 + 1), "more than the"),
])
def test_bad_csv_gets_a_message_and_keeps_the_session(session, body, words):
    cfg = session.cfg
    with pytest.raises(ValueError) as e:
        session.load_csv(body, "mine.csv")
    assert words in str(e.value) and "mine.csv" in str(e.value)
    assert session.cfg is cfg


def test_csv_trains_and_regenerate_resplits_it(session):
    session.load_csv(GOOD_CSV.encode(), "mine.csv")
    assert session.cfg.data == "csv" and session.cfg.problem == "classification"
    assert len(session.b.X_train) + len(session.b.X_test) == 20
    first = session.b.split.X_train.copy()
    session.regenerate()
    assert session.cfg.data == "csv" and not np.array_equal(first, session.b.split.X_train)
    assert session.step()


def test_csv_with_real_targets_is_regression(session):
    body = "x1,x2,y\n" + "\n".join(f"{i},{-i},{i * 0.5}" for i in range(8))
    session.load_csv(body.encode(), "r.csv")
    assert session.cfg.problem == "regression" and session.cfg.loss_name == "mse"


# ------------------------------------------------------------------ what the page draws
def test_snapshot_pictures_come_from_one_batched_pass(session):
    snap = session.snapshot()
    assert [len(layer) for layer in snap["units"]] == [4, 3, 1]
    import base64
    q = np.frombuffer(base64.b64decode(snap["units"][0][1]["q"]), np.uint8)
    assert q.size == 50 * 50
    outs = session.unit_outputs(pdata.features(session._grid_points(), session.cfg.features))
    a = outs[0][:, 1]  # tanh: centre 0, scaled by its largest |a|
    half = snap["units"][0][1]["half"]
    np.testing.assert_allclose((q.astype(float) - 127.5) / 127.5 * half, a, atol=half / 120)
    json.dumps(snap, allow_nan=False)


def test_sigmoid_normal_six_layers_is_diagnosed():
    s = Session(parse_config({"data": "circles", "layers": "8,8,8,8,8,8",
                              "activation": "sigmoid", "init": "normal"}))
    for _ in range(300):
        s.step()
    rules = {f["rule"] for f in s.snapshot()["diagnosis"]["findings"]}
    assert rules & {"vanishing", "saturation", "stalled"}, rules


def test_default_config_builds():
    s = Session(Config())
    assert s.cfg.sizes == [2, 4, 2, 1] and s.evaluate()["train_acc"] <= 1

"""End-to-end: the playground in headless Chromium (Debian's ``chromium``, driven by Playwright).

Skipped when Playwright or Chromium is missing, unless ``GLASSGRAD_REQUIRE_BROWSER=1`` (set
by ``.ci/run``), where a missing browser fails instead. Every server binds 127.0.0.1 and
stops at the end of its test; every page is checked for console errors and for requests that
leave the server.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

import numpy as np
import pytest

import glassgrad as gg

REQUIRED = os.environ.get("GLASSGRAD_REQUIRE_BROWSER") == "1"
CHROMIUM = os.environ.get("GLASSGRAD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
TIMEOUT_MS = 60_000


def _need(ok: bool, why: str) -> None:
    if not ok:
        if REQUIRED:
            pytest.fail(why)
        pytest.skip(why)


try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

pytest.importorskip("starlette", reason="needs starlette, which is not installed: "
                                 'pip install "glassgrad[playground]"')
from glassgrad.playground import server  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    _need(sync_playwright is not None, "playwright is not installed (pip install playwright)")
    _need(os.path.exists(CHROMIUM), f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=TIMEOUT_MS)
        yield b
        b.close()


@pytest.fixture
def app():
    with server.running() as running:
        yield running


class Tab:
    """A page with its console errors and the requests it made outside its server."""

    def __init__(self, context, app, query: str = "", applied: bool = True) -> None:
        self.app = app
        self.page = context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.outside: list[str] = []
        origin = app.url.rstrip("/")
        ws_origin = origin.replace("http://", "ws://")
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: None if r.url.startswith((origin, "data:", "blob:"))
                     else self.outside.append(r.url))
        self.page.on("websocket", lambda w: None if w.url.startswith(ws_origin)
                     else self.outside.append(w.url))
        self.page.goto(app.url + query)
        self.wait_step(0)
        if query and applied:  # the first state may come before the URL's set-up is applied
            want = dict(kv.split("=") for kv in query.lstrip("?").split("&"))
            self.page.wait_for_function(
                "want => Object.entries(want).every(([k, v]) => window.__pg.cfg[k] === v)",
                arg=want)

    @property
    def session(self):
        return self.app.playground.sessions[self.page.evaluate("() => window.__pg.sid")]

    def wait_step(self, n: int) -> None:
        self.page.bring_to_front()  # a background tab draws nothing (requestAnimationFrame)
        self.page.wait_for_function(
            f"() => window.__pg.state && window.__pg.state.step >= {n} && document."
            f"querySelector('#stepcount').textContent === String(window.__pg.state.step)")

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text()

    def step_count(self) -> int:
        return int(self.text("#stepcount"))

    def clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.outside == [], self.outside

    def message(self, words: str) -> str:
        self.page.bring_to_front()
        box = self.page.locator("#messages .msg", has_text=words).first
        box.wait_for()
        return box.inner_text()

    def pause(self) -> None:
        self.page.bring_to_front()
        self.page.evaluate("() => window.__pg.state.playing && document.querySelector('#play')"
                           ".click()")
        self.page.wait_for_function("() => !window.__pg.state.playing")


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield ctx
    ctx.close()


def close(value: str, expected: float) -> bool:
    """A number printed with 4 significant digits equals ``expected`` to that precision."""
    return abs(float(value.replace("−", "-")) - expected) <= 5e-4 * abs(expected) + 1e-12


def test_page_loads_clean_and_draws_the_network(context, app):
    tab = Tab(context, app)
    assert tab.page.locator("#net .unit").count() == 2 + 4 + 2 + 1
    assert tab.page.locator("#edges path.hit").count() == 2 * 4 + 4 * 2 + 2
    assert "layers=4%2C2" in tab.page.url  # the set-up is in the address
    tab.clean()


def test_play_trains_xor_to_full_test_accuracy(context, app):
    tab = Tab(context, app, "?data=xor&layers=8,8&lr=0.1&points=200")
    tab.page.select_option("#speed", "0")
    tab.page.click("#play")
    tab.page.wait_for_function(
        "() => document.querySelector('#test-acc').textContent.includes('100.0%')", timeout=120_000)
    tab.pause()
    # A few more steps may run between the 100% frame and the pause (SGD can then lose a
    # point again): the paused page shows the session's own accuracy, and it stays high.
    acc = tab.session.evaluate()["test_acc"]
    assert acc >= 0.95
    tab.page.wait_for_function(
        "want => document.querySelector('#test-acc').textContent.includes(want)",
        arg=f"{100 * acc:.1f}%")
    assert int(tab.text("#epoch")) >= 1
    tab.clean()


def test_layers_and_units_are_added_and_removed(context, app):
    tab = Tab(context, app)
    tab.page.click("#add-layer")
    tab.page.wait_for_selector('#net .unit[data-layer="4"]')
    assert tab.text("#layer-count") == "3 hidden layers"
    assert tab.session.cfg.sizes == [2, 4, 2, 2, 1]
    tab.page.click("#remove-layer")
    tab.page.click("#remove-layer")
    tab.page.wait_for_function("() => document.querySelector('#layer-count').textContent"
                               " === '1 hidden layer'")
    tab.page.locator(".layer-ctl button", has_text="+").first.click()
    tab.page.wait_for_selector('#net .unit[data-layer="1"][data-unit="4"]')
    assert tab.session.cfg.sizes == [2, 5, 1]
    tab.clean()


def test_a_unit_added_on_controls_drawn_before_a_layer_was_removed(context, app):
    """The layer controls are drawn with the network (on each data message), so a click can
    land on ones drawn before the last config answer: it adds the unit to the layers as they
    are when clicked, never bringing back a layer just removed."""
    tab = Tab(context, app, "?layers=4,2")
    tab.page.wait_for_selector('#net .unit[data-layer="2"]')
    tab.page.evaluate("() => { window.stalePlus = [...document.querySelectorAll("
                      "'.layer-ctl button')].find((b) => b.textContent === '+'); }")
    tab.page.click("#remove-layer")
    tab.page.wait_for_function("() => window.__pg.cfg.layers === '4' && !window.__pg.inFlight")
    tab.page.evaluate("() => window.stalePlus.click()")  # (drawn for the layers 4,2)
    tab.page.wait_for_function("() => window.__pg.cfg.layers === '5' && !window.__pg.inFlight")
    assert tab.session.cfg.sizes == [2, 5, 1]
    tab.clean()


def test_a_clicked_unit_shows_trace_net_numbers(context, app):
    tab = Tab(context, app, "?data=moons&layers=5,3")
    for k in range(3):
        tab.page.click("#step")
        tab.wait_step(k + 1)
    tab.page.click('#net .unit[data-layer="1"][data-unit="2"]')
    tab.page.wait_for_selector("#inspector:not([hidden])")
    tab.page.select_option("#sample", "4")
    tab.page.wait_for_function("() => window.__pg.pending === null && document.querySelector("
                               "'#inspector-step').textContent.includes('sample 5')")
    s = tab.session
    idx = s.next_batch()
    tr = gg.explain.trace_net(s.b.model, s.b.X_train[idx], s.b.y_train[idx], loss="bce",
                              lr=s.cfg.lr, update=False)
    ly = tr.steps[0].layers[0]
    shown = {label: tab.text(f'#lines .line[data-label="{label}"] .value')
             for label in ("z", "a", "δ", "∂L/∂b")}
    assert close(shown["z"], ly.z[4, 2]) and close(shown["a"], ly.a[4, 2])
    assert close(shown["δ"], ly.delta[4, 2]) and close(shown["∂L/∂b"], ly.db[2])
    assert "4 of" not in shown["z"]
    tab.clean()


def open_step_through(context, app) -> tuple[Tab, Any, Any]:
    """A tab on circles with 3 layers, in step-through mode; trace_net of its next step and
    that step's batch indices."""
    tab = Tab(context, app, "?data=circles&layers=3")
    s = tab.session
    idx = s.next_batch()
    tr = gg.explain.trace_net(s.b.model, s.b.X_train[idx], s.b.y_train[idx], loss="bce",
                              lr=s.cfg.lr, update=False)
    tab.page.click("#stepthrough")
    tab.page.wait_for_selector("#walk:not([hidden])")
    return tab, tr, idx


def test_step_through_walks_forward_then_backward_and_applies_the_step(context, app):
    tab, tr, idx = open_step_through(context, app)
    s = tab.session
    stages = []
    for _ in range(6):  # forward 1, forward 2, loss, backward 2, backward 1, update
        stages.append(tab.text("#walk-stage"))
        if stages[-1].startswith("Backward, output layer"):
            shown = tab.text('#net .unit[data-layer="2"] .val')
            assert close(shown.split()[-1], tr.steps[0].layers[1].delta[0, 0])
            assert tab.page.locator("#edges path.flow").count() == 3
        if len(stages) < 6:
            tab.page.click("#walk-next")
    assert tab.text("#walk-next").startswith("apply the step")
    assert [st.split(",")[0].split(":")[0] for st in stages] == [
        "Forward", "Forward", "Loss (bce)", "Backward", "Backward", "Update"]
    tab.page.click("#walk-next")  # "apply the step"
    tab.wait_step(1)
    for m, ly in zip(s.b.linears, tr.steps[0].layers):
        np.testing.assert_allclose(m.weight.numpy(), ly.W_after, rtol=1e-12)
    tab.clean()


def test_seeds_xor_preset_shows_0_6_not_1_4(context, app):
    tab = Tab(context, app)
    tab.page.select_option("#preset", "seeds-xor")
    tab.message("sign slip")
    tab.page.wait_for_selector('#edges path.hit[data-layer="2"][data-from="1"]', state="attached")
    tab.page.locator('#edges path.hit[data-layer="2"][data-from="1"][data-to="0"]').dispatch_event(
        "click")
    after = tab.page.locator('#lines .line[data-label="w after"] .value')
    after.wait_for()
    assert after.inner_text() == "0.6"
    assert tab.text('#lines .line[data-label="∂L/∂w"] .value') == "4"
    tab.page.click("#step")
    tab.wait_step(1)
    np.testing.assert_allclose(tab.session.b.linears[1].weight.numpy(), [[0.6, 0.6, 0.6]])
    np.testing.assert_allclose(tab.session.b.linears[0].weight.numpy(), np.ones((3, 2)))
    tab.clean()


def test_two_tabs_train_independently(context, app):
    a, b = Tab(context, app), Tab(context, app)
    a.page.select_option("#speed", "0")
    a.page.click("#play")
    a.wait_step(40)
    b.page.click("#step")
    b.wait_step(1)
    a.pause()
    assert b.step_count() == 1 and b.session.steps == 1
    assert a.session.steps >= 40 and a.session is not b.session
    a.clean()
    b.clean()


def _csv(tab, name: str, body: bytes) -> None:
    tab.page.set_input_files("#csv", files=[{"name": name, "mimeType": "text/csv",
                                             "buffer": body}])


BAD_INPUTS = {
    "lr abc": (lambda t: t.page.fill("#lr", "abc") or t.page.press("#lr", "Enter"),
               "'abc' is not a number"),
    "lr -1": (lambda t: t.page.fill("#lr", "-1") or t.page.press("#lr", "Enter"),
              "out of range"),
    "0 units": (lambda t: t.page.evaluate(
        "() => window.__pg.ws.send(JSON.stringify({type: 'config', config: {layers: '4,0'}}))"),
        "layer 2: 0 is out of range"),
    "csv text": (lambda t: _csv(t, "t.csv", b"x1,x2,y\n1,two,0\n3,4,1\n"),
                 "'two' is not a number"),
    "csv nan": (lambda t: _csv(t, "n.csv", b"x1,x2,y\n1,nan,0\n3,4,1\n"), "value is missing"),
    "csv one column": (lambda t: _csv(t, "o.csv", b"x\n1\n2\n3\n4\n"), "single column"),
    "huge body": (lambda t: _csv(t, "big.csv", b"1,2,0\n" * 300_000), "more than"),
    "malformed message": (lambda t: t.page.evaluate("() => window.__pg.ws.send('{oops')"),
                          "not valid JSON"),
    "wrong message": (lambda t: t.page.evaluate(
        "() => window.__pg.ws.send(JSON.stringify({type: 'inspect', what: 'unit', layer: 7}))"),
        "layer=7 is outside"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_a_message_and_the_other_tab_is_untouched(context, app, case):
    other = Tab(context, app, "?lr=0.1")
    other.page.click("#step")
    other.wait_step(1)
    tab = Tab(context, app)
    cfg = tab.session.cfg
    act, words = BAD_INPUTS[case]
    act(tab)
    assert words in tab.message(words)
    assert tab.session.cfg == cfg
    tab.page.click("#step")  # the tab and its server still work
    tab.wait_step(1)
    assert other.session.steps == 1 and other.session.cfg.lr == 0.1
    # Chromium logs the upload's 400/413 answer itself; anything else is the page's error
    refused = re.compile(r"Failed to load resource: .* status of (400|413)")
    assert [e for e in tab.errors if not refused.match(e)] == [] and tab.outside == []
    other.clean()


@pytest.mark.parametrize("query,words", [
    ("?layers=" + ",".join(["3"] * 50), "50 hidden layers"),
    ("?layers=4,0", "out of range"),
    ("?lr=abc", "'abc' is not a number"),
])
def test_a_bad_url_gets_a_message_and_the_defaults(context, app, query, words):
    tab = Tab(context, app, query, applied=False)
    tab.message(words)
    assert tab.session.cfg.sizes == [2, 4, 2, 1]
    tab.clean()


def test_divergence_stops_training_and_says_why(context, app):
    tab = Tab(context, app, "?data=plane&layers=8,8&activation=linear&lr=10&init=normal"
                            "&init_value=3")
    tab.page.click("#play")
    text = tab.message("Training stopped")
    step = int(re.search(r"at step (\d+)", text).group(1))
    assert "learning rate 10" in text and step == tab.session.steps + 1
    tab.page.wait_for_function("() => !window.__pg.state.playing")
    tab.clean()

"""Playground speed, measured (not asserted in tests): training steps, screen updates and the
time from clicking a unit to its numbers on screen.

    python benchmarks/playground.py            # needs the playground extra, Playwright and
    python benchmarks/playground.py --seconds 5   # Debian's chromium for the browser part

The network is the issue's: 2-8-8-1 tanh on 500 training points (batch 10). Every rate is
counted over a fixed wall-clock window on this machine, with the other parts running (the
browser, the server's snapshot thread); nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
from glassgrad.playground import Session, parse_config  # noqa: E402
from glassgrad.playground.session import GRID  # noqa: E402

QUERY = {"data": "circles", "points": "1000", "train_ratio": "0.5", "layers": "8,8",
         "activation": "tanh", "batch": "10"}
CHROMIUM = os.environ.get("GLASSGRAD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def rate(fn, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - start)


def library_only(seconds: float) -> None:
    s = Session(parse_config(QUERY))
    assert len(s.b.X_train) == 500
    print(f"session alone (no server, no page), {GRID}x{GRID} boundary grid")
    print(f"  training steps/s            {rate(s.step, seconds):8.0f}")
    print(f"  snapshots/s (all pictures)  {rate(s.snapshot, seconds):8.0f}")
    s._trace = None
    print(f"  inspector traces/s          {rate(lambda: (setattr(s, '_trace', None), s.trace()), seconds):8.0f}")  # noqa: E501


def in_browser(seconds: float) -> None:
    try:
        from playwright.sync_api import sync_playwright

        from glassgrad.playground import server
    except ImportError as e:
        print(f"browser part skipped: {e}")
        return
    query = "?" + "&".join(f"{k}={v}" for k, v in QUERY.items())
    with server.running() as app, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app.url + query)
        page.wait_for_function("() => window.__pg.state && window.__pg.cfg.points === '1000'")
        page.select_option("#speed", "0")
        page.click("#play")
        time.sleep(1.0)  # warm up
        read = "() => [window.__pg.state.step, window.__pg.frames, window.__pg.drawn]"
        s0, f0, d0 = page.evaluate(read)
        t0 = time.perf_counter()
        time.sleep(seconds)
        s1, f1, d1 = page.evaluate(read)
        dt = time.perf_counter() - t0
        print("in Chromium, playing at max speed (server thread + page)")
        print(f"  training steps/s            {(s1 - s0) / dt:8.0f}")
        print(f"  state updates received/s    {(f1 - f0) / dt:8.1f}")
        print(f"  frames drawn/s              {(d1 - d0) / dt:8.1f}")
        for speed, label in (("0", "playing at max speed"), ("100", "playing at 100 steps/s"),
                             (None, "paused")):
            if speed is None:
                page.click("#play")
                page.wait_for_function("() => !window.__pg.state.playing")
            else:
                page.select_option("#speed", speed)
            page.evaluate("() => { window.__pg.latency = []; }")
            for k in range(20):
                page.click(f'#net .unit[data-layer="{1 + k % 2}"][data-unit="{k % 8}"]')
                page.wait_for_function(f"() => window.__pg.latency.length > {k}")
            ms = page.evaluate("() => window.__pg.latency")
            print(f"  click -> numbers on screen ({label}): median "
                  f"{statistics.median(ms):.0f} ms, max {max(ms):.0f} ms over {len(ms)} clicks")
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each measurement")
    args = ap.parse_args()
    library_only(args.seconds)
    in_browser(args.seconds)


if __name__ == "__main__":
    main()

"""Regenerate the playground screenshots in docs/ (headless Chromium, Debian's package).

    python docs/playground_screenshots.py
"""

from __future__ import annotations

import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
from playwright.sync_api import sync_playwright  # noqa: E402

from glassgrad.playground import server  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def shot(page, name: str) -> None:
    page.screenshot(path=os.path.join(HERE, f"playground-{name}.png"), full_page=True)
    print("wrote", f"docs/playground-{name}.png")


def until(page, expr: str) -> None:
    page.wait_for_function(f"() => {expr}", timeout=120_000)


def main() -> None:
    with server.running() as app, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # main view: spirals trained by a deep tanh net, a unit open in the inspector
        page.goto(app.url + "?data=xor&layers=6,4&lr=0.1&noise=0.1")
        until(page, "window.__pg.state")
        page.select_option("#speed", "0")
        page.click("#play")
        until(page, "window.__pg.state.test_acc > 0.97 && window.__pg.state.step > 600")
        page.click("#play")
        until(page, "!window.__pg.state.playing")
        page.click('#net .unit[data-layer="1"][data-unit="1"]')
        page.wait_for_selector("#inspector:not([hidden])")
        time.sleep(0.5)
        shot(page, "main")
        # the seeds' XOR preset, the edge whose update the article gets wrong
        page.select_option("#preset", "seeds-xor")
        until(page, "window.__pg.cfg.data === 'xor-table' && window.__pg.state.step === 0")
        page.locator('#edges path.hit[data-layer="2"][data-from="0"]').dispatch_event("click")
        page.wait_for_selector('#lines .line[data-label="w after"]')
        time.sleep(0.5)
        shot(page, "seeds-xor")
        # step-through at the backward pass of the hidden layer
        page.click("#inspector-close")
        page.click("#stepthrough")
        page.wait_for_selector("#walk:not([hidden])")
        for _ in range(4):
            page.click("#walk-next")
        time.sleep(0.5)
        shot(page, "step-through")
        page.click("#walk-close")
        # diagnosis: the Glorot preset after some training
        page.select_option("#preset", "glorot")
        until(page, "window.__pg.cfg.init === 'normal'")
        page.select_option("#speed", "0")
        page.click("#play")
        until(page, "window.__pg.state.step > 400")
        page.click("#play")
        until(page, "!window.__pg.state.playing")
        time.sleep(0.5)
        shot(page, "diagnosis")
        browser.close()


if __name__ == "__main__":
    main()

"""TF Playground parity in headless Chromium: feature thumbnails, the boundary plot's legend
and axes, "discretize output", and choosing the step-through's sample.

Uses the fixtures and ``Tab`` of ``test_playground_browser`` (same skip rules).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest


def _load_browser_tests():
    """``test_playground_browser`` itself: its fixtures, ``Tab`` and ``close`` (the test files
    are not a package, so it is loaded by path)."""
    path = Path(__file__).with_name("test_playground_browser.py")
    spec = importlib.util.spec_from_file_location("_playground_browser_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_b = _load_browser_tests()
Tab, close = _b.Tab, _b.close
browser, app, context = _b.browser, _b.app, _b.context  # the fixtures, used by name

PIXEL = "([id, x, y]) => Array.from(document.querySelector(id).getContext('2d')" \
        ".getImageData(x, y, 1, 1).data.slice(0, 3))"


def _thumb(tab: Tab, feature: str, x: int, y: int) -> list[int]:
    sel = f'#features .feature[data-feature="{feature}"] canvas'
    return tab.page.evaluate(PIXEL.replace("document.querySelector(id)",
                                           f"document.querySelector('{sel}')"),
                             ["", x, y])


def test_each_feature_shows_its_thumbnail_next_to_its_toggle(context, app):
    tab = Tab(context, app)
    assert tab.page.locator("#features .feature canvas").count() == 7
    tab.page.wait_for_function("() => document.querySelector('#features').dataset.painted")
    # x1 grows to the right (blue), x2 upwards; colours: orange low, blue high
    left, right = _thumb(tab, "x1", 1, 25), _thumb(tab, "x1", 48, 25)
    top, bottom = _thumb(tab, "x2", 25, 1), _thumb(tab, "x2", 25, 48)
    assert left[0] > left[2] and right[2] > right[0]
    assert top[2] > top[0] and bottom[0] > bottom[2]
    tab.clean()


@pytest.mark.parametrize("query, words", [
    ("?data=circles", ["class 0", "class 1"]),
    ("?data=plane", ["ŷ = "]),
])
def test_the_boundary_plot_has_a_legend_and_axis_labels(context, app, query, words):
    tab = Tab(context, app, query)
    tab.page.wait_for_function("() => document.querySelector('#legend').children.length")
    legend = tab.text("#legend")
    assert all(w in legend for w in words), legend
    lo, hi = tab.text("#x-range").split(" … ")
    x0, x1, _, _ = tab.session.b.points.domain
    assert close(lo, x0) and close(hi, x1)
    assert tab.text(".plot .xlabel").startswith("x₁") and "x₂" in tab.text(".plot .ylabel")
    tab.clean()


def _pure_share(tab: Tab) -> float:
    """The share of the boundary's pixels painted exactly the low or the high colour."""
    return tab.page.evaluate("""() => {
      const c = document.querySelector('#boundary');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let pure = 0;
      for (let i = 0; i < d.length; i += 4) {
        const rgb = `${d[i]},${d[i + 1]},${d[i + 2]}`;
        if (rgb === '232,131,58' || rgb === '47,127,193') pure += 1;
      }
      return pure / (d.length / 4);
    }""")


def test_discretize_output_paints_each_point_by_its_predicted_class(context, app):
    tab = Tab(context, app, "?data=xor-table")  # 4 points: the plane is nearly all heat map
    before = _pure_share(tab)
    tab.page.check("#discretize")
    tab.page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
    tab.page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
    after = _pure_share(tab)
    assert before < 0.05 and after > 0.9, (before, after)
    tab.clean()


def test_step_through_follows_the_chosen_sample(context, app):
    tab, tr, idx = _b.open_step_through(context, app)
    s = tab.session
    tab.page.click("#walk-next")  # forward, layer 2 (the output)
    assert "sample 1 of" in tab.text("#walk-stage")
    tab.page.select_option("#walk-sample", "2")
    tab.page.wait_for_function(
        "() => document.querySelector('#walk-stage').textContent.includes('sample 3 of')")
    assert tab.text("#walk-stage").startswith("Forward, layer 2")  # the stage is kept
    shown = tab.text('#net .unit[data-layer="2"] .val')
    assert close(shown, tr.steps[0].layers[1].a[2, 0])
    x = [tab.text(f'#net .unit[data-layer="0"][data-unit="{i}"] .val') for i in (0, 1)]
    np.testing.assert_allclose([float(v.replace("−", "-")) for v in x],
                               s.b.X_train[idx[2]], rtol=5e-4)
    tab.clean()

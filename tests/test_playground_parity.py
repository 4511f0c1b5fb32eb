"""TF Playground parity without a browser: every input feature's thumbnail and the data sets."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from glassgrad.playground import Session, parse_config
from glassgrad.playground import data as pdata
from glassgrad.playground.config import FEATURES


def _values(pic: dict) -> np.ndarray:
    q = np.frombuffer(base64.b64decode(pic["q"]), np.uint8).astype(float)
    return (q - 127.5) / 127.5 * pic["half"] + pic["centre"]


@pytest.mark.parametrize("feature", FEATURES)
def test_every_feature_has_its_thumbnail_even_when_off(feature: str) -> None:
    s = Session(parse_config({"features": "x1,x2"}))
    pics = s.data_message()["feature_pictures"]
    assert list(pics) == list(FEATURES)
    want = pdata.features(s._grid_points(), (feature,))[:, 0]
    np.testing.assert_allclose(_values(pics[feature]), want, atol=pics[feature]["half"] / 120)


@pytest.mark.parametrize("name, problem", [
    ("xor", "classification"), ("circles", "classification"), ("moons", "classification"),
    ("spirals", "classification"), ("gaussians", "classification"),
    ("plane", "regression"), ("sine", "regression")])
def test_the_issue_data_sets_exist(name: str, problem: str) -> None:
    s = Session(parse_config({"data": name}))
    assert s.cfg.problem == problem
    y = s.b.points.y
    if problem == "classification":
        assert set(np.unique(y)) == {0.0, 1.0}
    else:
        assert len(np.unique(y)) > 10  # real-valued targets, not labels

"""The playground's set-up: one validated ``Config`` from what the page (or a URL) sends.

Every field arrives as text or JSON; ``parse_config`` checks them all and raises one
``ConfigError`` listing each bad field with what was wrong and what to use instead, so a bad
value never reaches the model and the previous set-up stays in place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

CLASSIFICATION_DATA = ("xor", "circles", "moons", "spirals", "gaussians", "xor-table")
REGRESSION_DATA = ("plane", "sine")
FEATURES = ("x1", "x2", "x1sq", "x2sq", "x1x2", "sinx1", "sinx2")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")
OUTPUTS = ("auto", "sigmoid", "tanh", "linear")
LOSSES = ("auto", "bce", "mse", "half-sse")
INITS = ("xavier", "xavier_normal", "kaiming", "kaiming_uniform", "normal", "uniform",
         "pytorch", "constant")
REGULARIZERS = ("none", "l1", "l2")
MAX_LAYERS, MAX_UNITS = 6, 8
MAX_POINTS = 2000


class ConfigError(ValueError):
    """Bad set-up values: ``problems`` maps each bad field to its message."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems.values()))


@dataclass(frozen=True)
class Config:
    """Everything that defines a run; ``to_query()`` is what the page keeps in its URL."""

    problem: str = "classification"
    data: str = "circles"
    points: int = 500
    noise: float = 0.1
    train_ratio: float = 0.5
    seed: int = 0
    features: tuple[str, ...] = ("x1", "x2")
    layers: tuple[int, ...] = (4, 2)
    activation: str = "tanh"
    output: str = "auto"
    loss: str = "auto"
    init: str = "xavier"
    init_value: float = 1.0  # the V of init "constant"; std of "normal", bound of "uniform"
    init_seed: int = 0
    lr: float = 0.03
    reg: str = "none"
    reg_rate: float = 0.0
    batch: int = 10
    shuffle: bool = True

    @property
    def sizes(self) -> list[int]:
        return [len(self.features), *self.layers, 1]

    @property
    def loss_name(self) -> str:
        """The loss actually used: bce for classification and mse for regression by default."""
        if self.loss != "auto":
            return self.loss
        return "bce" if self.problem == "classification" else "mse"

    @property
    def output_activation(self) -> str:
        if self.output != "auto":
            return self.output
        return "sigmoid" if self.loss_name == "bce" else "linear"

    @property
    def init_spec(self) -> str:
        """The ``init=`` string of ``nn.MLP`` (the library's initializers)."""
        if self.init == "constant":
            return f"constant:{self.init_value:g}"
        if self.init in ("normal", "uniform") and self.init_value != 1.0:
            return f"{self.init}:{self.init_value:g}"
        return self.init

    def to_query(self) -> dict[str, str]:
        """The set-up as URL query parameters (the page writes them into its address)."""
        out = {}
        for k, v in asdict(self).items():
            if isinstance(v, tuple | list):
                v = ",".join(map(str, v))
            elif isinstance(v, bool):
                v = "1" if v else "0"
            elif isinstance(v, float):
                v = f"{v:g}"
            out[k] = str(v)
        return out


def _text(v: Any) -> str:
    return v.strip() if isinstance(v, str) else str(v)


def _number(name: str, v: Any, lo: float, hi: float, what: str, example: str,
            lo_open: bool = False) -> float:
    try:
        x = float(_text(v))
    except ValueError:
        raise ValueError(f"{name}: {_text(v)!r} is not a number. Fix: type {what}, "
                         f"e.g. {example}.") from None
    low_ok = x > lo if lo_open else x >= lo
    if not (math.isfinite(x) and low_ok and x <= hi):
        bound = f"above {lo:g}" if lo_open else f"at least {lo:g}"
        raise ValueError(f"{name}: {_text(v)} is out of range; it must be {bound} and at most "
                         f"{hi:g} ({what}). Fix: use e.g. {example}.")
    return x


def _integer(name: str, v: Any, lo: int, hi: int, what: str) -> int:
    x = _number(name, v, lo, hi, what, str(lo))
    if x != int(x):
        raise ValueError(f"{name}: {_text(v)} is not a whole number ({what}). Fix: use an "
                         f"integer from {lo} to {hi}.")
    return int(x)


def _choice(name: str, v: Any, options: tuple[str, ...]) -> str:
    s = _text(v).lower()
    if s == "identity":
        s = "linear"
    if s not in options:
        raise ValueError(f"{name}: unknown value {_text(v)!r}. Fix: choose one of "
                         f"{', '.join(options)}.")
    return s


def _layers(v: Any) -> tuple[int, ...]:
    items = v if isinstance(v, list | tuple) else [s for s in _text(v).split(",") if s.strip()]
    if len(items) > MAX_LAYERS:
        raise ValueError(f"layers: {len(items)} hidden layers asked, at most {MAX_LAYERS} fit "
                         f"on the screen. Fix: remove layers (the − button).")
    return tuple(_integer(f"layers: layer {i + 1}", s, 1, MAX_UNITS, "units in a hidden layer")
                 for i, s in enumerate(items))


def _features(v: Any) -> tuple[str, ...]:
    items = v if isinstance(v, list | tuple) else [s for s in _text(v).split(",") if s.strip()]
    bad = [s for s in items if _text(s) not in FEATURES]
    if bad:
        raise ValueError(f"features: unknown {bad}. Fix: pick from {', '.join(FEATURES)}.")
    chosen = tuple(f for f in FEATURES if f in {_text(s) for s in items})
    if not chosen:
        raise ValueError("features: none selected; the network needs at least one input. "
                         "Fix: switch on x1 or x2.")
    return chosen


def _flag(v: Any) -> bool:
    s = _text(v).lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"shuffle: {_text(v)!r} is not on or off. Fix: use 1 or 0.")


PARSERS = {
    "problem": lambda v: _choice("problem", v, ("classification", "regression")),
    "data": lambda v: _choice("data", v, (*CLASSIFICATION_DATA, *REGRESSION_DATA, "csv")),
    "points": lambda v: _integer("points", v, 4, MAX_POINTS, "number of data points"),
    "noise": lambda v: _number("noise", v, 0, 0.5, "a standard deviation from 0 to 0.5", "0.1"),
    "train_ratio": lambda v: _number("train_ratio", v, 0.1, 0.9,
                                     "the fraction of points used for training", "0.5"),
    "seed": lambda v: _integer("seed", v, 0, 2**31 - 1, "the data's random seed"),
    "features": _features,
    "layers": _layers,
    "activation": lambda v: _choice("activation", v, ACTIVATIONS),
    "output": lambda v: _choice("output", v, OUTPUTS),
    "loss": lambda v: _choice("loss", v, LOSSES),
    "init": lambda v: _choice("init", v, INITS),
    "init_value": lambda v: _number("init_value", v, -10, 10,
                                    "the constant, std or bound of the initializer", "1"),
    "init_seed": lambda v: _integer("init_seed", v, 0, 2**31 - 1, "the weights' random seed"),
    "lr": lambda v: _number("learning rate", v, 0, 10, "a positive step size", "0.03",
                            lo_open=True),
    "reg": lambda v: _choice("regularization", v, REGULARIZERS),
    "reg_rate": lambda v: _number("regularization rate", v, 0, 10, "λ, 0 for none", "0.001"),
    "batch": lambda v: _integer("batch size", v, 1, MAX_POINTS, "samples per step"),
    "shuffle": _flag,
}


def parse_config(raw: Mapping[str, Any], base: Config | None = None) -> Config:
    """A ``Config`` from ``raw`` (field -> text or JSON value), on top of ``base``.

    Fields missing from ``raw`` keep ``base``'s value; unknown fields are an error (a typo in
    a hand-edited URL should not pass silently). Raises ``ConfigError`` naming every bad field.

    >>> parse_config({"lr": "0.1", "layers": "3"}).sizes
    [2, 3, 1]
    """
    if not isinstance(raw, Mapping):
        raise ConfigError({"config": f"config: expected an object of fields, got "
                                     f"{type(raw).__name__}"})
    base = base or Config()
    values: dict[str, Any] = {f.name: getattr(base, f.name) for f in fields(base)}
    problems: dict[str, str] = {}
    for key, v in raw.items():
        parse = PARSERS.get(key)
        if parse is None:
            problems[str(key)[:40]] = (f"unknown setting {str(key)[:40]!r}. Fix: remove it; the "
                                       f"settings are {', '.join(PARSERS)}.")
            continue
        try:
            values[key] = parse(v)
        except ValueError as e:
            problems[key] = str(e)
    if not problems:
        _check_combination(values, problems)
    if problems:
        raise ConfigError(problems)
    return Config(**values)


def _check_combination(v: dict[str, Any], problems: dict[str, str]) -> None:
    data = v["data"]
    if data in REGRESSION_DATA and v["problem"] != "regression":
        v["problem"] = "regression"  # picking a regression data set switches the problem
    elif data in CLASSIFICATION_DATA and v["problem"] != "classification":
        v["problem"] = "classification"
    loss = v["loss"] if v["loss"] != "auto" else (
        "bce" if v["problem"] == "classification" else "mse")
    out = v["output"]
    if loss == "bce" and out not in ("auto", "sigmoid"):
        problems["output"] = (f"output: the bce loss reads probabilities, so the output unit "
                              f"must be sigmoid, not {out}. Fix: output auto or sigmoid, or "
                              f"the mse loss.")
    if loss == "bce" and v["problem"] == "regression":
        problems["loss"] = ("loss: bce needs labels 0/1 but this is a regression data set. "
                            "Fix: use mse or half-sse.")

"""What the page may say to its session, checked before anything is done.

``handle(session, text)`` reads one WebSocket message (JSON with a ``type``), does it and
returns the replies. Anything malformed (not JSON, too long, an unknown type, a missing or
wrong field, an index outside the network) gets an ``error`` reply that names the problem;
the session is left exactly as it was and the connection stays open.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from . import views
from .config import Config, ConfigError, parse_config
from .presets import PRESETS
from .session import Session

MAX_MESSAGE = 64 * 1024  # characters; the page's largest message (a config) is under 2k
SPEEDS = (0, 1, 5, 10, 30, 100, 300, 1000)


class MessageError(ValueError):
    """A message the page would never send; ``fields`` names the inputs to mark in red."""

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


def error(message: str, fields: dict[str, str] | None = None) -> dict[str, Any]:
    return {"type": "error", "message": message, "fields": fields or {}}


def parse(text: Any) -> dict[str, Any]:
    """The message as a dict with a string ``type``, or ``MessageError``."""
    if not isinstance(text, str):
        raise MessageError("message: binary frames are not part of the playground's protocol; "
                           "the page sends JSON text.")
    if len(text) > MAX_MESSAGE:
        raise MessageError(f"message: {len(text):,} characters is more than the "
                           f"{MAX_MESSAGE:,} a playground message may have; it was ignored.")
    try:
        msg = json.loads(text)
    except ValueError as e:
        raise MessageError(f"message: not valid JSON ({e}); it was ignored.") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise MessageError("message: expected a JSON object with a \"type\" field such as "
                           "{\"type\": \"step\"}; it was ignored.")
    return msg


def _int(msg: dict, key: str, lo: int, hi: int, what: str) -> int:
    v = msg.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise MessageError(f"{msg['type']}: {key} must be an integer ({what}), got {v!r}.")
    if not lo <= v <= hi:
        raise MessageError(f"{msg['type']}: {key}={v} is outside this network: {what} runs "
                           f"from {lo} to {hi}.")
    return v


def _sample(msg: dict, s: Session) -> int | None:
    """The chosen sample of the batch (a row), or None for the whole batch."""
    v = msg.get("sample")
    if v is None or v == "batch":
        return None
    return _int(msg, "sample", 0, len(s.next_batch()) - 1, "a sample of the current batch")


def _config(s: Session, msg: dict) -> list[dict]:
    raw = msg.get("config")
    if not isinstance(raw, dict):
        raise MessageError("config: expected an object of settings, e.g. "
                           "{\"type\": \"config\", \"config\": {\"lr\": \"0.1\"}}.")
    try:
        s.apply(parse_config(raw, s.cfg))
    except ConfigError as e:
        raise MessageError(str(e), e.problems) from None
    return changed(s)


def _preset(s: Session, msg: dict) -> list[dict]:
    name = msg.get("name")
    if name not in PRESETS:
        raise MessageError(f"preset: unknown preset {name!r}; the presets are "
                           f"{', '.join(PRESETS)}.")
    s.pause()
    s.apply(parse_config(PRESETS[name]["config"], Config()))
    return [*changed(s), {"type": "info", "message": PRESETS[name]["note"]}]


def _speed(s: Session, msg: dict) -> list[dict]:
    v = msg.get("value")
    if isinstance(v, bool) or v not in SPEEDS:
        raise MessageError(f"speed: {v!r} is not one of the speeds {list(SPEEDS)} (steps per "
                           f"second, 0 for as fast as possible).")
    s.speed = float(v)
    return []


def _inspect(s: Session, msg: dict) -> list[dict]:
    sizes = s.cfg.sizes
    layer = _int(msg, "layer", 1, len(sizes) - 1, "the layer (1 = first hidden, last = output)")
    sample = _sample(msg, s)
    if msg.get("what") == "unit":
        unit = _int(msg, "unit", 0, sizes[layer] - 1, f"a unit of layer {layer}")
        return [views.unit_view(s, layer, unit, sample)]
    if msg.get("what") == "edge":
        src = _int(msg, "from", 0, sizes[layer - 1] - 1, f"a unit of layer {layer - 1}")
        dst = _int(msg, "to", 0, sizes[layer] - 1, f"a unit of layer {layer}")
        return [views.edge_view(s, layer, src, dst, sample)]
    raise MessageError(f"inspect: what must be \"unit\" or \"edge\", got {msg.get('what')!r}.")


def _step(s: Session, msg: dict) -> list[dict]:
    s.pause()
    s.step()
    return []


def _stepthrough(s: Session, msg: dict) -> list[dict]:
    s.pause()
    return [views.step_view(s, _sample(msg, s) or 0)]


def changed(s: Session) -> list[dict]:
    """The replies after a new set-up: its settings (for the controls and the URL), the data."""
    return [{"type": "config", "config": s.cfg.to_query(), "sizes": s.cfg.sizes},
            s.data_message()]


HANDLERS: dict[str, Callable[[Session, dict], list[dict]]] = {
    "config": _config,
    "preset": _preset,
    "play": lambda s, m: (s.play(), [])[1],
    "pause": lambda s, m: (s.pause(), [])[1],
    "step": _step,
    "reset": lambda s, m: (s.reset(), changed(s))[1],
    "regenerate": lambda s, m: (s.regenerate(), changed(s))[1],
    "speed": _speed,
    "inspect": _inspect,
    "stepthrough": _stepthrough,
}


def handle(s: Session, text: Any) -> list[dict]:
    """Do what one message asks; returns the replies (an ``error`` reply for bad messages)."""
    try:
        msg = parse(text)
        fn = HANDLERS.get(msg["type"])
        if fn is None:
            raise MessageError(f"message: unknown type {msg['type'][:40]!r}; the playground "
                               f"understands {', '.join(HANDLERS)}.")
        return fn(s, msg)
    except MessageError as e:
        return [error(str(e), e.fields)]
    except ValueError as e:  # the library refused a value (e.g. a CSV-only set-up)
        return [error(str(e))]

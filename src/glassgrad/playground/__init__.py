"""glassgrad.playground: train a network in the browser and see every number of backprop.

``glassgrad playground`` serves a local page (Starlette + uvicorn, the ``playground`` extra)
where a learner picks data, features and layers, presses play, and clicks any unit or weight
to see its z, a, δ, ∂L/∂w and update, computed by ``gg.explain.trace_net``. The engine never
imports this package; see README.md in this folder for what lives where.

- ``Config``/``parse_config``: the set-up, validated field by field;
- ``Session``: one tab's data, model, training thread and snapshots;
- ``messages.handle``: the page's WebSocket messages, checked;
- ``server.create_app``/``server.serve``: the web app.
"""

from .config import Config, ConfigError, parse_config
from .messages import handle
from .presets import PRESETS
from .session import Session

__all__ = ["PRESETS", "Config", "ConfigError", "Session", "handle", "parse_config"]

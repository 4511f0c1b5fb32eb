"""``save`` / ``load``: weights in the safetensors format, readable by PyTorch as they are.

A file holds the state dict (name -> array, PyTorch's names and layouts) and a text header
with glassgrad's version, the original key order and, for models built from ``nn`` layers
(``nn.MLP``, ``nn.Sequential``, ``nn.Linear``), the architecture, so ``load_model`` can
rebuild the model without its code. ``safetensors.torch.load_file(path)`` opens the same file.

Writes are atomic: the bytes go to a temporary file in the same directory, which then
replaces the target in one ``os.replace``, so a crash never leaves a half-written file.

Needs the ``safetensors`` package: ``pip install "glassgrad[train]"``.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from .fileio import write_atomic
from .tensor import Tensor

_VERSION_KEY = "glassgrad.version"
_ARCH_KEY = "glassgrad.architecture"
_KEYS_KEY = "glassgrad.keys"

# Layer settings stored for each rebuildable class (constructor keyword -> attribute).
_LAYER_ARGS: dict[str, tuple[str, ...]] = {
    "Linear": ("in_features", "out_features", "bias"), "Identity": (), "Sigmoid": (),
    "Tanh": (), "ReLU": (), "LeakyReLU": ("negative_slope",), "Softmax": ("dim",),
    "Dropout": ("p",),
}


def _safetensors_numpy() -> Any:
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError(
            "glassgrad.save/load use the safetensors format, whose package is not installed. "
            "Fix: pip install \"glassgrad[train]\" (or pip install safetensors)."
        ) from None
    return safetensors.numpy


# ----------------------------------------------------------------------------- architecture
def describe(model: Any) -> list | None:
    """A JSON-able description ``[class name, settings, children]`` of a model made of
    ``glassgrad.nn`` layers (nested ``Sequential`` included), or None when it has any other
    module (a custom class cannot be rebuilt from a file, only its weights loaded)."""
    from . import nn

    cls = type(model).__name__
    if type(model) is nn.Sequential:
        children = [describe(m) for m in model]
        return None if any(c is None for c in children) else ["Sequential", {}, children]
    if cls not in _LAYER_ARGS or type(model) is not getattr(nn, cls, None):
        return None
    args = {}
    for a in _LAYER_ARGS[cls]:
        v = getattr(model, a)
        args[a] = (v is not None) if a == "bias" else v
    return [cls, args, []]


def _build(spec: list) -> Any:
    from . import nn

    cls, args, children = spec
    if cls == "Sequential":
        return nn.Sequential(*(_build(c) for c in children))
    if cls not in _LAYER_ARGS:
        raise ValueError(f"unknown layer {cls!r} in the file's architecture")
    return getattr(nn, cls)(**args)


# ----------------------------------------------------------------------------- save
def _state_arrays(obj: Any) -> OrderedDict[str, np.ndarray]:
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise TypeError(
            f"save() takes a model (with .state_dict()) or a dict of name -> tensor, got "
            f"{type(obj).__name__}. Fix: pass the model or model.state_dict()."
        )
    arrays: OrderedDict[str, np.ndarray] = OrderedDict()
    for name, v in obj.items():
        if not isinstance(name, str):
            raise TypeError(f"save(): state dict keys must be strings, got {name!r}.")
        arr = v._data if isinstance(v, Tensor) else np.asarray(v)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"save(): '{name}' holds {arr.dtype} values; safetensors stores "
                            f"numbers and bools only.")
        arrays[name] = np.ascontiguousarray(arr)
    return arrays


def save(obj: Any, path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> None:
    """Write a model's weights (or a state dict of Tensors/arrays) to a safetensors file.

    ``metadata`` adds your own text entries to the header. The write is atomic: on any
    error the previous file at ``path`` (if any) is left untouched and no partial file remains.
    """
    st = _safetensors_numpy()
    arrays = _state_arrays(obj)
    meta = {_VERSION_KEY: _version(), _KEYS_KEY: json.dumps(list(arrays))}
    arch = describe(obj) if hasattr(obj, "state_dict") else None
    if arch is not None:
        meta[_ARCH_KEY] = json.dumps(arch)
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"save(): metadata must map str to str, got {k!r}: {v!r}.")
        meta[k] = v
    payload = st.save(dict(arrays), metadata=meta)
    write_atomic(path, payload)


def _version() -> str:
    from . import __version__

    return __version__


# ----------------------------------------------------------------------------- load
def _open(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    _safetensors_numpy()
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="np") as f:
            meta = dict(f.metadata() or {})
            arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except SafetensorError as e:
        size = os.path.getsize(path)
        raise ValueError(
            f"cannot read {path!r} ({size} bytes): it is not a valid safetensors file ({e}). "
            f"It may be truncated or corrupted, or not written by glassgrad.save / "
            f"safetensors. Fix: save the model again."
        ) from None
    return arrays, meta


def load(path: str | os.PathLike) -> OrderedDict[str, Tensor]:
    """Read a safetensors file as a state dict: name -> Tensor, in the order it was saved.

    ``model.load_state_dict(gg.load(path))`` restores a model; ``load_model(path)`` also
    rebuilds one saved from ``nn`` layers.
    """
    path = os.fspath(path)
    arrays, meta = _open(path)
    order = list(arrays)
    if _KEYS_KEY in meta:
        try:
            saved = json.loads(meta[_KEYS_KEY])
        except ValueError:
            saved = []
        if sorted(saved) == sorted(order):
            order = saved
    out: OrderedDict[str, Tensor] = OrderedDict()
    for k in order:
        arr = arrays[k]
        if not (arr.flags.writeable and arr.flags.owndata):
            arr = arr.copy()  # parameters must own writable memory, not a view of the file
        out[k] = Tensor._wrap(arr)
    return out


def load_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The text header of a safetensors file (glassgrad's version, architecture, yours)."""
    return _open(os.fspath(path))[1]


def load_model(path: str | os.PathLike) -> Any:
    """Rebuild a model saved from ``glassgrad.nn`` layers and load its weights.

    Raises ``ValueError`` for a file without an architecture (a custom model: build it in
    code and call ``model.load_state_dict(gg.load(path))``).
    """
    path = os.fspath(path)
    state = load(path)
    meta = load_metadata(path)
    if _ARCH_KEY not in meta:
        raise ValueError(
            f"{path!r} holds weights only (no architecture in its header: it was saved from a "
            f"custom model or a plain state dict). Fix: build the model in code, then "
            f"model.load_state_dict(gg.load({path!r}))."
        )
    try:
        model = _build(json.loads(meta[_ARCH_KEY]))
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"{path!r}: cannot rebuild the model from its architecture "
                         f"header ({e}). Fix: save it again with this glassgrad version.") from None
    dtypes = {t.dtype for t in state.values() if t.dtype.kind == "f"}
    if len(dtypes) == 1 and np.float32 not in dtypes:  # e.g. a float64 model stays float64
        model.to(dtypes.pop())
    model.load_state_dict(state)
    return model
